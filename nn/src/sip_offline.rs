//! The SIP linear layer of [`crate::sip_linear`] split into an input-independent offline phase
//! and an online phase with no HE: what a decoder needs so that a generated token waits only
//! for its nonlinear layers.
//!
//! **Offline** (before the input exists), per layer and call, on k rows: the client draws R,
//! uniform over Z_2^64 (k × m), and runs the SIP on R as its share (the server's share is
//! zero): the client's k·⌈m/m_w⌉ seeded ciphertexts of R, then the server's k·⌈n/n_w⌉
//! responses (re-randomized, flooded, masked by the server's uniform output share, revealing
//! only the window the [`Rescale`] keeps). Both parties file their results in their
//! [`OfflineStore`]: the client R and its share C of the window of R·W, the server its share S.
//!
//! **Online**, on the shared input X = X_s + X_c (the same messages as
//! [`crate::linear_offline`], hence the same cost, [`linear_online_cost`]):
//! 1. client → server: the entry's tag (16 bytes) and D = X_c − R (8·k·m bytes), one flight;
//!    D is uniform to the server because R is uniform, secret and used once;
//! 2. the server computes (X_s + D)·W = (X − R)·W in plaintext, brings it into the window and
//!    adds S and its bias; the client's share is C: together ⌊(X·W + b)/2^lo⌋ within 3 units;
//! 3. [`Rescale::Truncate`]: the known-MSB up-cast of the window shares (2 flights).
//!
//! The offline phase costs what the single-phase layer's HE flights cost ([`sip_offline_cost`]);
//! the online phase moves 8·k·m bytes and runs one plaintext k×m·m×n product on the server.
//!
//! ```
//! use he_linear::params::HeParams;
//! use nn::linear::Rescale;
//! use nn::linear_offline::linear_online_cost;
//! use nn::sip_offline::sip_offline_cost;
//! let params = HeParams::default_params()?;
//! // One row of a 576 × 1536 projection: the HE traffic moves offline, 4.6 KB stay online.
//! let offline = sip_offline_cost(&params, 1, 576, 1536, Rescale::Truncate)?;
//! let online = linear_online_cost(&params, 1, 576, 1536, Rescale::Truncate)?;
//! assert!(offline.bytes() > 100 * online.bytes());
//! # Ok::<(), mpc_core::Error>(())
//! ```
use crate::keys::HeKeys;
use crate::linear::{finish, Rescale};
use crate::linear_offline::{prepared_share, recv_unmasked, send_masked};
use crate::offline::OfflineStore;
use crate::sip_linear::{check_input, sip_flights, ClientSipLinear, ServerSipLinear};
use crate::tensor::SharedTensor;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::sip;
use mpc_core::{AesPrg, Result};
use ot_nonlinear::mpc::{Cost, Session};

#[cfg(doc)]
use crate::linear_offline::linear_online_cost;

/// Exact cost of one SIP layer's offline phase on k rows (the SIP on R, no up-cast).
pub fn sip_offline_cost(
    params: &HeParams,
    k: usize,
    m: usize,
    n: usize,
    rescale: Rescale,
) -> Result<Cost> {
    sip_flights(params, k, m, n, rescale.window(params)?)
}

/// The metadata both parties check an entry against: k, m, n and the window.
fn meta(k: usize, m: usize, n: usize, window: Window) -> [u64; 5] {
    [
        k as u64,
        m as u64,
        n as u64,
        window.lo() as u64,
        window.bits() as u64,
    ]
}

impl ServerSipLinear {
    /// The offline phase of one call on `k` rows, against [`ClientSipLinear::offline`]: files
    /// the server's share S of the window of R·W as entry `name` of `store`.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let window = rescale.window(he.params)?;
        let plan = self.plan_rows(he.params, k, window)?;
        let inputs = sip::recv_encrypted_input(&mut sess.ch, he.params, &plan)?;
        let seed = sess.fresh_seed();
        let s = sip::evaluate_and_respond(
            &mut sess.ch,
            he.params,
            he.keys.peer_pk,
            None,
            &plan,
            &inputs,
            self.plain(),
            seed,
        )?;
        let (m, n) = (self.weights().rows(), self.weights().cols());
        store.put(name, self.digest(), &meta(k, m, n, window), s.data())
    }

    /// The server's share of the layer's output on its share of X, using (and consuming)
    /// entry `name` of `store`, against [`ClientSipLinear::online_prepared`]. No HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let (m, n) = (self.weights().rows(), self.weights().cols());
        check_input(x, m)?;
        let k = x.rows();
        let window = rescale.window(he.params)?;
        let xr = recv_unmasked(sess, store, name, x.share())?;
        let s = store.take(name, self.digest(), &meta(k, m, n, window), k * n)?;
        let y = prepared_share(&xr, self.weights(), self.bias(), &s, window)?;
        finish(sess, y, window, rescale)
    }
}

impl ClientSipLinear {
    /// The offline phase of one call on `k` rows, against [`ServerSipLinear::offline`]: draws
    /// R (from the session's randomness), runs the SIP on it and files R and the client's
    /// share of the window of R·W as entry `name` of `store`.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let (m, n) = self.shape();
        let window = rescale.window(he.params)?;
        let plan = self.plan_rows(he.params, k, window)?;
        let seed = sess.fresh_seed();
        let r = RingMatrix::new(k, m, AesPrg::new(seed.derive(0)).u64s(k * m))?;
        sip::send_encrypted_input(
            &mut sess.ch,
            he.params,
            he.keys.my_sk,
            &plan,
            &r,
            seed.derive(1),
        )?;
        sess.ch.flush()?;
        let c = sip::recv_and_open(&mut sess.ch, he.params, he.keys.my_sk, &plan)?;
        let mut data = r.data().to_vec();
        data.extend_from_slice(c.data());
        store.put(name, &self.digest(), &meta(k, m, n, window), &data)
    }

    /// The client's share of the layer's output on its share of X, using (and consuming)
    /// entry `name` of `store`, against [`ServerSipLinear::online_prepared`]: one message, no
    /// HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let (m, n) = self.shape();
        check_input(x, m)?;
        let k = x.rows();
        let window = rescale.window(he.params)?;
        let mut data = store.take(name, &self.digest(), &meta(k, m, n, window), k * (m + n))?;
        let c = RingMatrix::new(k, n, data.split_off(k * m))?;
        send_masked(sess, store, name, x.share(), &data)?;
        finish(sess, c, window, rescale)
    }
}
