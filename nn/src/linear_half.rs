//! One party's half of a linear layer, whichever protocol runs it: the COP layer
//! ([`crate::linear`], [`crate::linear_offline`]) and the SIP layer ([`crate::sip_linear`],
//! [`crate::sip_offline`]) on either side, single-phase or on offline material. A model
//! family's pass calls [`LinearHalf::run`] with the entry its offline phase filed, or `None`.
//!
//! ```
//! use nn::linear::ClientLinear;
//! use nn::linear_half::LinearHalf;
//! use nn::sip_linear::ClientSipLinear;
//! fn layers_of_a_pass(_: &[&dyn LinearHalf]) {}
//! let params = he_linear::params::HeParams::default_params()?;
//! let sip = ClientSipLinear::new(&params, 8, 4)?;
//! layers_of_a_pass(&[&sip]);
//! # let _: Option<ClientLinear> = None;
//! # Ok::<(), mpc_core::Error>(())
//! ```
use crate::keys::HeKeys;
use crate::linear::{ClientLinear, Rescale, ServerLinear};
use crate::offline::OfflineStore;
use crate::sip_linear::{ClientSipLinear, ServerSipLinear};
use crate::tensor::SharedTensor;
use mpc_core::Result;
use ot_nonlinear::mpc::Session;

/// One party's half of a linear layer (its peer runs the other half in step).
pub trait LinearHalf {
    /// The single-phase layer on this party's share of X.
    fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
    ) -> Result<SharedTensor>;

    /// The online phase on entry `name` of `store` (consumed), filed by the offline phase.
    fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor>;

    /// The offline phase for one use on `k` rows: files this party's material as entry `name`
    /// of `store`.
    fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()>;

    /// [`LinearHalf::online_prepared`] on `prepared` (a store and an entry name) if given,
    /// [`LinearHalf::online`] otherwise.
    fn run(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        prepared: Option<(&OfflineStore, &str)>,
    ) -> Result<SharedTensor> {
        match prepared {
            Some((store, name)) => self.online_prepared(sess, he, x, rescale, store, name),
            None => self.online(sess, he, x, rescale),
        }
    }
}

/// Forwards the trait to the type's own methods of the same names.
macro_rules! linear_half {
    ($($t:ty),*) => {$(
        impl LinearHalf for $t {
            fn online(
                &self,
                sess: &mut Session,
                he: &HeKeys<'_>,
                x: &SharedTensor,
                rescale: Rescale,
            ) -> Result<SharedTensor> {
                <$t>::online(self, sess, he, x, rescale)
            }

            fn online_prepared(
                &self,
                sess: &mut Session,
                he: &HeKeys<'_>,
                x: &SharedTensor,
                rescale: Rescale,
                store: &OfflineStore,
                name: &str,
            ) -> Result<SharedTensor> {
                <$t>::online_prepared(self, sess, he, x, rescale, store, name)
            }

            fn offline(
                &self,
                sess: &mut Session,
                he: &HeKeys<'_>,
                k: usize,
                rescale: Rescale,
                store: &OfflineStore,
                name: &str,
            ) -> Result<()> {
                <$t>::offline(self, sess, he, k, rescale, store, name)
            }
        }
    )*};
}

linear_half!(ServerLinear, ClientLinear, ServerSipLinear, ClientSipLinear);
