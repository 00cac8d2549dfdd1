//! The HE convolution ([`crate::conv_he`]) split into an input-independent offline phase and
//! an online phase with no HE, as the linear layer is ([`crate::linear_offline`]).
//!
//! **Offline**, per layer and inference: the client draws R, uniform over Z_2^64, of the
//! *input's* shape (C × H × W), and runs the COP on im2col(R) (P × C·kh·kw) as its share; both
//! parties file their shares of the window of im2col(R)·W, the client also R.
//!
//! **Online**, on the input shared on the CNN's ring: the same up-cast to Z_2^64 and shift as
//! the single-phase layer, then one flight client → server with D = X_c − R (8·C·H·W bytes and
//! the entry's tag; uniform to the server since R is uniform, secret and used once); the
//! server computes im2col(X_s + D)·W = im2col(X − R)·W in plaintext (im2col is linear) and adds
//! its offline share and the bias; the window's up-cast and the truncation back to the CNN's
//! ring follow as in the single phase. Masking in the input's space rather than the im2col
//! space sends kh·kw/stride² times fewer bytes (9× for a 3 × 3 stride-1 layer).
//!
//! The result is within 3 units below the mirror [`crate::conv::conv2d_mirror`] at the
//! linear layers' scale, hence within 2 after the final truncation (one rounding more than the
//! single phase before it). Costs: [`conv_he_offline_cost`], [`conv_he_online_prepared_cost`].
use crate::cast::{truncate_cost, upcast_cost};
use crate::conv::ConvShape;
use crate::conv_he::{check_format, im2col_rows, run, ClientConvHe, ServerConvHe, PACKING};
use crate::keys::HeKeys;
use crate::linear::{finish, CopLayout, Rescale};
use crate::linear_offline::{linear_offline_cost, masked_send_cost, recv_unmasked, send_masked};
use crate::offline::OfflineStore;
use crate::tensor::SharedTensor;
use he_linear::matrix::{MatDims, RingMatrix};
use he_linear::params::HeParams;
use mpc_core::{AesPrg, FixedPoint, Result, Ring};
use ot_nonlinear::mpc::{Cost, Session};

/// The rescale of every HE convolution's product (its window keeps bits [18, 64)).
const RESCALE: Rescale = Rescale::Truncate;

impl ServerConvHe {
    /// The offline phase of one inference, against [`ClientConvHe::offline`]: files the
    /// server's share of im2col(R)·W as entry `name` of `store`.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let p = self.shape.out_height() * self.shape.out_width();
        self.linear.offline(sess, he, p, RESCALE, store, name)
    }

    /// The server's share of the convolution on offline material (label `conv`), consuming
    /// entry `name`, against [`ClientConvHe::online_prepared`]. No HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let shape = self.shape;
        let p = shape.out_height() * shape.out_width();
        run(sess, &shape, self.format, x, |sess, shifted| {
            let xr = recv_unmasked(sess, store, name, &shifted)?;
            let rows = im2col_rows(&shape, &xr)?;
            self.linear
                .apply_prepared(sess, he, rows.share(), p, RESCALE, store, name)
        })
    }

    /// The digest of the layer's encrypted kernel (keyed by the server's key).
    pub fn digest(&self) -> Result<&[u8; 32]> {
        self.linear.digest()
    }
}

impl ClientConvHe {
    /// The offline phase of one inference, against [`ServerConvHe::offline`]: draws R (from the
    /// session's randomness), runs the COP on im2col(R) and files R and the client's share.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let seed = sess.fresh_seed();
        let r = AesPrg::new(seed.derive(0)).u64s(self.shape.input_shape().len());
        let rows = im2col_rows(&self.shape, &r)?;
        let rows = RingMatrix::new(rows.rows(), rows.cols(), rows.share().to_vec())?;
        self.linear
            .offline_on(sess, he, &rows, &r, RESCALE, store, name, seed.derive(1))
    }

    /// The client's share of the convolution on offline material (label `conv`), consuming
    /// entry `name` (refused before anything is sent when it is missing or used), against
    /// [`ServerConvHe::online_prepared`]. No HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let shape = self.shape;
        let p = shape.out_height() * shape.out_width();
        let n_in = shape.input_shape().len();
        let (r, c) = self
            .linear
            .take_prepared(he, p, n_in, RESCALE, store, name)?;
        let window = RESCALE.window(he.params)?;
        run(sess, &shape, self.format, x, |sess, shifted| {
            send_masked(sess, store, name, &shifted, &r)?;
            finish(sess, c, window, RESCALE)
        })
    }

    /// The digest of the cached encrypted kernel.
    pub fn digest(&self) -> &[u8; 32] {
        self.linear.digest()
    }
}

/// Exact cost of one HE convolution's offline phase (the COP on im2col(R)).
pub fn conv_he_offline_cost(params: &HeParams, shape: &ConvShape) -> Result<Cost> {
    let layout = CopLayout::choose(
        params,
        MatDims {
            rows: shape.patch(),
            cols: shape.out_channels,
        },
        PACKING,
    )?;
    linear_offline_cost(
        params,
        &layout,
        shape.out_height() * shape.out_width(),
        RESCALE,
    )
}

/// Exact online cost of an HE convolution prepared offline (label `conv`).
pub fn conv_he_online_prepared_cost(
    params: &HeParams,
    shape: &ConvShape,
    format: FixedPoint,
) -> Result<Cost> {
    let up = check_format(format)?;
    let ring = format.ring();
    let n_in = shape.input_shape().len();
    let n_out = shape.output_shape().len();
    Ok(truncate_cost(n_in, ring, Ring::R64, 0)?
        .then(masked_send_cost(n_in))
        .then(upcast_cost(n_out, RESCALE.window(params)?)?)
        .then(truncate_cost(n_out, Ring::R64, ring, up)?))
}
