//! A secure 2-D convolution (NCHW, one image, groups = 1): the server holds the kernel and bias,
//! the input is shared. Two protocols on the same OT-based matrix product
//! ([`ot_nonlinear::mpc::matmul`]), one accounting:
//!
//! * [`ConvProtocol::DirectOt`], CrypTFlow2's: the input unrolled on the shares (im2col, local:
//!   padding is shares of zero) into a (C·kh·kw) × P matrix, P = Ho·Wo, and one product
//!   W (K × C·kh·kw) · X;
//! * [`ConvProtocol::WinogradOt`], CoPriv's F(2×2, 3×3) ([`crate::winograd`]): 3×3 kernels with
//!   stride 1 only, 16 products (K×C)·(C×T) over T = ⌈Ho/2⌉·⌈Wo/2⌉ tiles, ≈ 2.25× fewer
//!   correlations.
//!
//! Fixed point: input and kernel have `s` fraction bits (the tensor's format), the bias 2s; the
//! product (2s fraction bits, plus 2 bits for Winograd's doubled G) is truncated by a known-MSB
//! truncation back to `s`. Both protocols compute, before that truncation, exactly
//! (a power of two)·(Σ w·x + b) in Z_2^ℓ, so they share one mirror, [`conv2d_mirror`]: the
//! floor of the exact sum over 2^s; the secure result is that or one less.
//!
//! Cost (exact, [`conv2d_cost`]): the product's two flights plus the truncation's two.
use crate::cast::{truncate, truncate_cost, truncate_mirror};
use crate::label::CnnOp;
use crate::tensor::{Shape, SharedTensor};
use crate::winograd;
use mpc_core::{Error, FixedPoint, Result, Ring};
use ot_nonlinear::mpc::matmul::{server_matmul_cost, server_matmul_cots};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
use ot_nonlinear::mpc::{server_matmul, Cost, CotDemand, MatmulDims, Session};

/// The geometry of a convolution: channels, input size, kernel, strides and zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels K.
    pub out_channels: usize,
    /// Input height H.
    pub height: usize,
    /// Input width W.
    pub width: usize,
    /// Kernel (kh, kw).
    pub kernel: (usize, usize),
    /// Strides (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zero padding (top, left, bottom, right), ONNX's `pads` order for 2-D.
    pub pads: [usize; 4],
}

/// Largest number of elements of any tensor a convolution handles (refuses absurd shapes
/// before allocating).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Positions of a `kernel`-wide window moving by `stride` along `len` elements padded with
/// `pads` in all (the shape's checks guarantee `kernel ≤ len + pads` and `stride ≥ 1`).
pub(crate) fn window_positions(len: usize, pads: usize, kernel: usize, stride: usize) -> usize {
    (len + pads - kernel) / stride + 1
}

impl ConvShape {
    /// Checks the geometry: non-empty, the kernel fits the padded input, sizes bounded.
    pub fn validate(&self) -> Result<()> {
        let (kh, kw) = self.kernel;
        let ph = self.height + self.pads[0] + self.pads[2];
        let pw = self.width + self.pads[1] + self.pads[3];
        let bad = self.in_channels == 0
            || self.out_channels == 0
            || kh == 0
            || kw == 0
            || self.stride.0 == 0
            || self.stride.1 == 0
            || kh > ph
            || kw > pw;
        let big = [
            self.in_channels.saturating_mul(ph).saturating_mul(pw),
            self.in_channels
                .saturating_mul(kh * kw)
                .saturating_mul(ph * pw),
            self.out_channels
                .saturating_mul(self.in_channels)
                .saturating_mul(kh.saturating_mul(kw)),
        ]
        .iter()
        .any(|&n| n > MAX_ELEMENTS);
        if bad || big {
            return Err(Error::shape(
                "convolution",
                format!("{self:?}"),
                format!(
                    "non-zero sizes and strides, a kernel within the padded input, at most \
                     {MAX_ELEMENTS} elements per buffer"
                ),
            ));
        }
        Ok(())
    }

    /// Output height Ho.
    pub fn out_height(&self) -> usize {
        window_positions(
            self.height,
            self.pads[0] + self.pads[2],
            self.kernel.0,
            self.stride.0,
        )
    }

    /// Output width Wo.
    pub fn out_width(&self) -> usize {
        window_positions(
            self.width,
            self.pads[1] + self.pads[3],
            self.kernel.1,
            self.stride.1,
        )
    }

    /// The input's shape C × H × W.
    pub fn input_shape(&self) -> Shape {
        Shape::new(&[self.in_channels, self.height, self.width])
    }

    /// The output's shape K × Ho × Wo.
    pub fn output_shape(&self) -> Shape {
        Shape::new(&[self.out_channels, self.out_height(), self.out_width()])
    }

    /// Kernel elements per output channel, C·kh·kw.
    pub fn patch(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1
    }

    /// The input value at channel c, padded coordinates (r, q) (zero in the padding).
    pub(crate) fn at_padded(&self, x: &[u64], c: usize, r: usize, q: usize) -> u64 {
        match (r.checked_sub(self.pads[0]), q.checked_sub(self.pads[1])) {
            (Some(i), Some(j)) if i < self.height && j < self.width => {
                x[(c * self.height + i) * self.width + j]
            }
            _ => 0,
        }
    }
}

/// How a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvProtocol {
    /// im2col and one OT matrix product (CrypTFlow2).
    DirectOt,
    /// Winograd F(2×2, 3×3) on the OT matrix product (CoPriv); 3×3 kernels, stride 1.
    WinogradOt,
}

impl ConvProtocol {
    /// The protocol's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ConvProtocol::DirectOt => "direct-ot",
            ConvProtocol::WinogradOt => "winograd-ot",
        }
    }

    /// Whether the protocol handles `shape`.
    pub fn supports(self, shape: &ConvShape) -> bool {
        match self {
            ConvProtocol::DirectOt => true,
            ConvProtocol::WinogradOt => winograd::supports(shape),
        }
    }
}

/// The server's kernel (K × C × kh × kw, `s` fraction bits) and bias (K, 2s fraction bits),
/// encoded in the ring of the activations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvWeights {
    shape: ConvShape,
    kernel: Vec<u64>,
    bias: Vec<u64>,
}

impl ConvWeights {
    /// Checks the lengths against `shape`.
    pub fn new(shape: ConvShape, kernel: Vec<u64>, bias: Vec<u64>) -> Result<ConvWeights> {
        shape.validate()?;
        if kernel.len() != shape.out_channels * shape.patch() {
            return Err(Error::shape(
                "convolution kernel elements",
                kernel.len(),
                [shape.out_channels, shape.patch()],
            ));
        }
        if bias.len() != shape.out_channels {
            return Err(Error::shape(
                "convolution biases (one per output channel)",
                bias.len(),
                shape.out_channels,
            ));
        }
        Ok(ConvWeights {
            shape,
            kernel,
            bias,
        })
    }

    /// The geometry.
    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    /// The kernel, K × (C·kh·kw) row-major.
    pub fn kernel(&self) -> &[u64] {
        &self.kernel
    }

    /// The bias (2s fraction bits).
    pub fn bias(&self) -> &[u64] {
        &self.bias
    }
}

/// What a party brings to a convolution: the server its weights, the client nothing.
#[derive(Clone, Copy, Debug)]
pub enum ConvParty<'a> {
    /// The server, with the kernel and bias.
    Server(&'a ConvWeights),
    /// The client.
    Client,
}

/// The format of a convolution's product before its truncation.
fn product_format(format: FixedPoint, extra: u32) -> Result<FixedPoint> {
    FixedPoint::new(format.ring(), 2 * format.frac_bits() + extra)
}

/// Shares of the convolution of `x` (C × H × W in `format`), in `format` (K × Ho × Wo).
/// Label `conv` (the product under `conv/matmul_ot`, the truncation under `conv/trunc`); the
/// COTs are reserved before it, under the caller's label.
pub fn conv2d(
    sess: &mut Session,
    party: ConvParty<'_>,
    shape: &ConvShape,
    protocol: ConvProtocol,
    x: &SharedTensor,
) -> Result<SharedTensor> {
    shape.validate()?;
    x.expect("convolution input", &shape.input_shape(), x.format())?;
    if let ConvParty::Server(w) = party {
        if w.shape() != shape {
            return Err(Error::shape(
                "convolution weights' shape (the input's)",
                format!("{:?}", w.shape()),
                format!("{shape:?}"),
            ));
        }
    }
    if !protocol.supports(shape) {
        return Err(Error::InvalidArgument(format!(
            "{} does not handle a {}×{} kernel with strides {:?}",
            protocol.name(),
            shape.kernel.0,
            shape.kernel.1,
            shape.stride
        )));
    }
    let format = x.format();
    let ring = format.ring();
    sess.reserve(conv2d_cots(shape, protocol, format)?)?;
    sess.scope(CnnOp::Conv.label(), |sess| {
        let (mut product, extra) = match protocol {
            ConvProtocol::DirectOt => {
                let cols = im2col(shape, x.share());
                let w = match party {
                    ConvParty::Server(w) => Some(w.kernel()),
                    ConvParty::Client => None,
                };
                (server_matmul(sess, w, &cols, direct_dims(shape), ring)?, 0)
            }
            ConvProtocol::WinogradOt => (winograd::conv(sess, party, shape, x.share(), ring)?, 2),
        };
        if let ConvParty::Server(w) = party {
            add_bias(&mut product, w.bias(), extra, ring);
        }
        let product = SharedTensor::new(
            shape.output_shape(),
            product_format(format, extra)?,
            product,
        )?;
        truncate(sess, &product, format.frac_bits() + extra, ring)
    })
}

/// Adds the bias (2s fraction bits, scaled by 2^extra) to every output of its channel.
fn add_bias(y: &mut [u64], bias: &[u64], extra: u32, ring: Ring) {
    let per_channel = y.len() / bias.len();
    for (yc, &b) in y.chunks_exact_mut(per_channel).zip(bias) {
        let b = ring.reduce(b << extra);
        yc.iter_mut().for_each(|v| *v = ring.add(*v, b));
    }
}

fn direct_dims(shape: &ConvShape) -> MatmulDims {
    MatmulDims {
        batch: 1,
        rows: shape.out_channels,
        inner: shape.patch(),
        cols: shape.out_height() * shape.out_width(),
    }
}

/// The input unrolled: row (c, dy, dx), column (oy, ox) holds x at (c, oy·sy + dy − top,
/// ox·sx + dx − left), zero in the padding. Local and linear, so it applies to shares.
pub fn im2col(shape: &ConvShape, x: &[u64]) -> Vec<u64> {
    let (ho, wo) = (shape.out_height(), shape.out_width());
    let (kh, kw) = shape.kernel;
    let mut out = Vec::with_capacity(shape.patch() * ho * wo);
    for c in 0..shape.in_channels {
        for dy in 0..kh {
            for dx in 0..kw {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let (r, q) = (oy * shape.stride.0 + dy, ox * shape.stride.1 + dx);
                        out.push(shape.at_padded(x, c, r, q));
                    }
                }
            }
        }
    }
    out
}

/// COTs drawn by [`conv2d`] on `format` (product and truncation).
pub fn conv2d_cots(
    shape: &ConvShape,
    protocol: ConvProtocol,
    format: FixedPoint,
) -> Result<CotDemand> {
    let ring = format.ring();
    let (product, extra) = match protocol {
        ConvProtocol::DirectOt => (server_matmul_cots(direct_dims(shape), ring), 0),
        ConvProtocol::WinogradOt => (server_matmul_cots(winograd::dims(shape), ring), 2),
    };
    let n = shape.out_channels * shape.out_height() * shape.out_width();
    let shift = format.frac_bits() + extra;
    Ok(product.plus(trunc_cots(n, ring, ring, shift, TruncKind::KnownMsb)?))
}

/// Exact cost of [`conv2d`] on `format` (product and truncation: label `conv`).
pub fn conv2d_cost(shape: &ConvShape, protocol: ConvProtocol, format: FixedPoint) -> Result<Cost> {
    let ring = format.ring();
    let (product, extra) = match protocol {
        ConvProtocol::DirectOt => (server_matmul_cost(direct_dims(shape), ring), 0),
        ConvProtocol::WinogradOt => (server_matmul_cost(winograd::dims(shape), ring), 2),
    };
    let n = shape.out_channels * shape.out_height() * shape.out_width();
    Ok(product.then(truncate_cost(n, ring, ring, format.frac_bits() + extra)?))
}

/// The mirror of [`conv2d`]: ⌊(Σ w·x + b) / 2^s⌋ on the plaintext input.
pub fn conv2d_mirror(w: &ConvWeights, x: &[u64], format: FixedPoint) -> Vec<u64> {
    let ring = format.ring();
    let shape = w.shape();
    let cols = im2col(shape, x);
    let p = shape.out_height() * shape.out_width();
    let mut y = vec![0u64; shape.out_channels * p];
    for (k, yk) in y.chunks_exact_mut(p).enumerate() {
        let wk = &w.kernel()[k * shape.patch()..(k + 1) * shape.patch()];
        for (i, &wv) in wk.iter().enumerate() {
            for (o, &xv) in yk.iter_mut().zip(&cols[i * p..(i + 1) * p]) {
                *o = o.wrapping_add(wv.wrapping_mul(xv));
            }
        }
    }
    add_bias(&mut y, w.bias(), 0, ring);
    let y: Vec<u64> = y.into_iter().map(|v| ring.reduce(v)).collect();
    truncate_mirror(&y, ring, ring, format.frac_bits())
}
