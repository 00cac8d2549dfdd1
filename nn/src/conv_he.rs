//! A convolution on the project's HE linear layer ([`crate::linear`], Nimbus's client-side outer
//! product): the im2col matrix X (P × C·kh·kw) times the kernel (C·kh·kw × K), the kernel
//! encrypted by the server once (setup) and cached by the client.
//!
//! The HE layer works on Z_2^64 with 18 fraction bits; the CNN's activations are on a smaller
//! ring with s ≤ 18 fraction bits. Online, per layer (labels inside `conv`):
//! 1. a known-MSB up-cast of the input shares to Z_2^64 (`trunc`), then a local shift by
//!    18 − s bits (exact);
//! 2. im2col on the shares (local), the COP product with the response window that keeps bits
//!    [18, 64) and its up-cast ([`crate::linear::linear_cost`]);
//! 3. a known-MSB truncation by 18 − s down to the CNN's ring (`trunc`).
//!
//! The kernel is the s-fraction-bit kernel shifted by 18 − s and the bias the 2s-bit bias
//! shifted by 36 − 2s, so the product is exactly 2^{2(18−s)} times the direct protocol's and
//! the mirror is [`crate::conv::conv2d_mirror`]; the secure result is within 2 units below it
//! (the window's rounding and two truncations).
//!
//! The kernel keeps one row per ciphertext ([`PACKING`]): a convolution has many output
//! positions (tokens) and few output channels, so packing rows would multiply its online bytes
//! by up to ⌊N/K⌋ to shrink a setup that is already small.
use crate::cast::{truncate, truncate_cost, LINEAR};
use crate::conv::{im2col, ConvShape, ConvWeights};
use crate::keys::HeKeys;
use crate::label::CnnOp;
use crate::linear::{linear_cost, ClientLinear, CopLayout, Packing, Rescale, ServerLinear};
use crate::tensor::SharedTensor;
use he_linear::matrix::{MatDims, RingMatrix};
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use mpc_core::{Channel, Error, FixedPoint, Result, Ring, Seed};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
use ot_nonlinear::mpc::{Cost, CotDemand, Session};
use std::path::Path;

/// The row packing of every HE convolution's kernel (both parties derive the layout from it).
pub const PACKING: Packing = Packing::Online;

pub(crate) fn check_format(format: FixedPoint) -> Result<u32> {
    let s = format.frac_bits();
    if s > LINEAR.frac_bits() || format.ring().bits() > 62 {
        return Err(Error::InvalidArgument(format!(
            "HE convolution on Z_2^{} with {s} fraction bits (at most 18 bits, ring below 2^62)",
            format.ring().bits()
        )));
    }
    Ok(LINEAR.frac_bits() - s)
}

/// The server's HE convolution: the kernel as an HE linear layer.
#[derive(Debug)]
pub struct ServerConvHe {
    pub(crate) shape: ConvShape,
    pub(crate) format: FixedPoint,
    pub(crate) linear: ServerLinear,
}

impl ServerConvHe {
    /// The layer for `weights` (kernel with s fraction bits, bias with 2s, in `format`'s ring).
    pub fn new(weights: &ConvWeights, format: FixedPoint) -> Result<ServerConvHe> {
        let up = check_format(format)?;
        let ring = format.ring();
        let shape = *weights.shape();
        let (k, patch) = (shape.out_channels, shape.patch());
        // W[i][k] = kernel[k][i] · 2^{18−s}, sign-extended to Z_2^64.
        let mut w = vec![0u64; patch * k];
        for kk in 0..k {
            for i in 0..patch {
                w[i * k + kk] = (ring.to_signed(weights.kernel()[kk * patch + i]) << up) as u64;
            }
        }
        let bias = weights
            .bias()
            .iter()
            .map(|&b| (ring.to_signed(b) << (2 * up)) as u64)
            .collect();
        Ok(ServerConvHe {
            shape,
            format,
            linear: ServerLinear::new(RingMatrix::new(patch, k, w)?, bias)?.with_packing(PACKING),
        })
    }

    /// Sends the encrypted kernel (setup), against [`ClientConvHe::setup`]; `seed` (fresh,
    /// secret) seeds the encryptions.
    pub fn setup(
        &self,
        ch: &mut Channel,
        params: &HeParams,
        sk: &SecretKey,
        pk: &PublicKey,
        seed: Seed,
    ) -> Result<()> {
        self.linear.setup(ch, params, sk, pk, seed)
    }

    /// The server's share of the convolution (label `conv`).
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        let shape = self.shape;
        run(sess, &shape, self.format, x, |sess, shifted| {
            let rows = im2col_rows(&shape, &shifted)?;
            self.linear.online(sess, he, &rows, Rescale::Truncate)
        })
    }
}

/// The client's HE convolution: the cached encrypted kernel.
#[derive(Debug)]
pub struct ClientConvHe {
    pub(crate) shape: ConvShape,
    pub(crate) format: FixedPoint,
    pub(crate) linear: ClientLinear,
}

impl ClientConvHe {
    /// Receives (or finds in `cache_dir` under `name`) the encrypted kernel.
    pub fn setup(
        ch: &mut Channel,
        params: &HeParams,
        shape: ConvShape,
        format: FixedPoint,
        cache_dir: &Path,
        name: &str,
    ) -> Result<ClientConvHe> {
        check_format(format)?;
        shape.validate()?;
        Ok(ClientConvHe {
            shape,
            format,
            linear: ClientLinear::setup(ch, params, cache_dir, name)?,
        })
    }

    /// The client's share of the convolution (label `conv`).
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        let shape = self.shape;
        run(sess, &shape, self.format, x, |sess, shifted| {
            let rows = im2col_rows(&shape, &shifted)?;
            self.linear.online(sess, he, &rows, Rescale::Truncate)
        })
    }
}

/// The im2col matrix of `x` (C × H × W) as P × patch rows on the linear layers' format.
pub(crate) fn im2col_rows(shape: &ConvShape, x: &[u64]) -> Result<SharedTensor> {
    let (p, patch) = (shape.out_height() * shape.out_width(), shape.patch());
    let cols = im2col(shape, x);
    let mut rows = vec![0u64; p * patch];
    for i in 0..patch {
        for q in 0..p {
            rows[q * patch + i] = cols[i * p + q];
        }
    }
    SharedTensor::matrix(p, patch, LINEAR, rows)
}

/// Steps 1–3 around the HE product `product`, which maps this party's share of the input on
/// Z_2^64 with 18 fraction bits (C × H × W) to its share of the P × K product.
pub(crate) fn run(
    sess: &mut Session,
    shape: &ConvShape,
    format: FixedPoint,
    x: &SharedTensor,
    product: impl FnOnce(&mut Session, Vec<u64>) -> Result<SharedTensor>,
) -> Result<SharedTensor> {
    let up = check_format(format)?;
    x.expect("HE convolution input", &shape.input_shape(), format)?;
    let (p, k) = (shape.out_height() * shape.out_width(), shape.out_channels);
    sess.reserve(conv_he_cots(shape, format)?)?;
    sess.scope(CnnOp::Conv.label(), |sess| {
        let wide = truncate(sess, x, 0, Ring::R64)?;
        let shifted: Vec<u64> = wide.share().iter().map(|&v| v << up).collect();
        let y = product(sess, shifted)?;
        let mut t = vec![0u64; k * p];
        for q in 0..p {
            for kk in 0..k {
                t[kk * p + q] = y.share()[q * k + kk];
            }
        }
        let y = SharedTensor::new(shape.output_shape(), LINEAR, t)?;
        truncate(sess, &y, up, format.ring())
    })
}

/// COTs drawn by the HE convolution (its three known-MSB casts, the server as sender).
pub fn conv_he_cots(shape: &ConvShape, format: FixedPoint) -> Result<CotDemand> {
    let up = check_format(format)?;
    let ring = format.ring();
    let n_in = shape.in_channels * shape.height * shape.width;
    let n_out = shape.out_channels * shape.out_height() * shape.out_width();
    Ok(trunc_cots(n_in, ring, Ring::R64, 0, TruncKind::KnownMsb)?
        // The response window's up-cast: one known-MSB COT per output.
        .plus(CotDemand {
            server: n_out,
            client: 0,
        })
        .plus(trunc_cots(n_out, Ring::R64, ring, up, TruncKind::KnownMsb)?))
}

/// Exact online cost of the HE convolution (label `conv`).
pub fn conv_he_cost(params: &HeParams, shape: &ConvShape, format: FixedPoint) -> Result<Cost> {
    let up = check_format(format)?;
    let ring = format.ring();
    let n_in = shape.in_channels * shape.height * shape.width;
    let p = shape.out_height() * shape.out_width();
    let n_out = shape.out_channels * p;
    Ok(truncate_cost(n_in, ring, Ring::R64, 0)?
        .then(linear_cost(
            params,
            &CopLayout::choose(
                params,
                MatDims {
                    rows: shape.patch(),
                    cols: shape.out_channels,
                },
                PACKING,
            )?,
            p,
            Rescale::Truncate,
        )?)
        .then(truncate_cost(n_out, Ring::R64, ring, up)?))
}
