//! Pooling of a shared C × H × W tensor:
//!
//! * [`max_pool`]: a comparison tree per window, max(a, b) = b + ReLU(a − b) ([`crate::activation::relu`],
//!   exact); each level pairs the window's remaining values, all windows of a level in one
//!   batch, ⌈log2(kh·kw)⌉ levels. Padding is −∞ (padded positions are left out of the window).
//! * [`avg_pool`]: the window's sum (local), then the division by the public window size n: a
//!   truncation by log2 n when n is a power of two, else a local product by ⌊2^s/n⌉ and a
//!   truncation by s (public-divisor scaling). Global average pooling is the window H × W.
//!
//! Mirrors: [`max_pool_mirror`] (exact), [`avg_pool_mirror`] (floors; the secure result is that
//! or one less). Costs: [`max_pool_cost`], [`avg_pool_cost`] (exact).
use crate::activation::relu_cost;
use crate::cast::{truncate, truncate_cost, truncate_mirror};
use crate::label::CnnOp;
use crate::tensor::{Shape, SharedTensor};
use mpc_core::{Error, FixedPoint, Result, Ring};
use ot_nonlinear::mpc::relu::relu_cots;
use ot_nonlinear::mpc::{relu, Cost, CotDemand, Session};

/// The geometry of a pooling: channels, input size, window, strides and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolShape {
    /// Channels C.
    pub channels: usize,
    /// Input height H.
    pub height: usize,
    /// Input width W.
    pub width: usize,
    /// Window (kh, kw).
    pub kernel: (usize, usize),
    /// Strides (vertical, horizontal).
    pub stride: (usize, usize),
    /// Padding (top, left, bottom, right), each smaller than the window.
    pub pads: [usize; 4],
}

impl PoolShape {
    /// Global pooling of a C × H × W tensor.
    pub fn global(channels: usize, height: usize, width: usize) -> PoolShape {
        PoolShape {
            channels,
            height,
            width,
            kernel: (height, width),
            stride: (1, 1),
            pads: [0; 4],
        }
    }

    /// Checks the geometry (non-empty windows that fit, bounded sizes).
    pub fn validate(&self) -> Result<()> {
        let (kh, kw) = self.kernel;
        let [t, l, b, r] = self.pads;
        let bad = self.channels == 0
            || kh == 0
            || kw == 0
            || self.stride.0 == 0
            || self.stride.1 == 0
            || t >= kh
            || b >= kh
            || l >= kw
            || r >= kw
            || kh > self.height + t + b
            || kw > self.width + l + r
            || self
                .channels
                .saturating_mul(self.height)
                .saturating_mul(self.width)
                > crate::conv::MAX_ELEMENTS;
        if bad {
            return Err(Error::shape(
                "pooling",
                format!("{self:?}"),
                "non-zero sizes, pads below the window, a window within the padded input",
            ));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        crate::conv::window_positions(
            self.height,
            self.pads[0] + self.pads[2],
            self.kernel.0,
            self.stride.0,
        )
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        crate::conv::window_positions(
            self.width,
            self.pads[1] + self.pads[3],
            self.kernel.1,
            self.stride.1,
        )
    }

    /// The input's shape.
    pub fn input_shape(&self) -> Shape {
        Shape::new(&[self.channels, self.height, self.width])
    }

    /// The output's shape.
    pub fn output_shape(&self) -> Shape {
        Shape::new(&[self.channels, self.out_height(), self.out_width()])
    }

    /// The input indices of every window (padding left out), output-major.
    fn windows(&self) -> Vec<Vec<usize>> {
        let (ho, wo) = (self.out_height(), self.out_width());
        let mut out = Vec::with_capacity(self.channels * ho * wo);
        for c in 0..self.channels {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut w = Vec::with_capacity(self.kernel.0 * self.kernel.1);
                    for dy in 0..self.kernel.0 {
                        for dx in 0..self.kernel.1 {
                            let r = (oy * self.stride.0 + dy).checked_sub(self.pads[0]);
                            let q = (ox * self.stride.1 + dx).checked_sub(self.pads[1]);
                            if let (Some(r), Some(q)) = (r, q) {
                                if r < self.height && q < self.width {
                                    w.push((c * self.height + r) * self.width + q);
                                }
                            }
                        }
                    }
                    out.push(w);
                }
            }
        }
        out
    }
}

/// Pairs compared at each level of the trees of `windows` (window sizes).
fn tree_levels(mut sizes: Vec<usize>) -> Vec<usize> {
    let mut levels = Vec::new();
    while sizes.iter().any(|&n| n > 1) {
        levels.push(sizes.iter().map(|&n| n / 2).sum());
        sizes.iter_mut().for_each(|n| *n = n.div_ceil(2));
    }
    levels
}

/// Shares of each window's maximum. Label `maxpool` (a `relu` per level inside); the COTs are
/// reserved before it, under the caller's label.
pub fn max_pool(sess: &mut Session, shape: &PoolShape, x: &SharedTensor) -> Result<SharedTensor> {
    shape.validate()?;
    x.expect("max pool input", &shape.input_shape(), x.format())?;
    let ring = x.ring();
    let windows = shape.windows();
    let levels = tree_levels(windows.iter().map(Vec::len).collect());
    let demand = levels
        .iter()
        .fold(CotDemand::default(), |d, &n| d.plus(relu_cots(n, ring)));
    sess.reserve(demand)?;
    let mut lists: Vec<Vec<u64>> = windows
        .iter()
        .map(|w| w.iter().map(|&i| x.share()[i]).collect())
        .collect();
    sess.scope(CnnOp::MaxPool.label(), |sess| {
        while lists.iter().any(|l| l.len() > 1) {
            let diffs: Vec<u64> = lists
                .iter()
                .flat_map(|l| l.chunks_exact(2).map(|p| ring.sub(p[0], p[1])))
                .collect();
            let r = relu(sess, &diffs, ring)?;
            let mut r = r.into_iter();
            for l in lists.iter_mut() {
                let next: Vec<u64> = l
                    .chunks(2)
                    .map(|p| match p {
                        [_, b] => ring.add(*b, r.next().expect("one ReLU per pair")),
                        [a] => *a,
                        _ => unreachable!("chunks of at most 2"),
                    })
                    .collect();
                *l = next;
            }
        }
        Ok::<(), mpc_core::Error>(())
    })?;
    let y = lists.into_iter().map(|l| l[0]).collect();
    SharedTensor::new(shape.output_shape(), x.format(), y)
}

/// Exact cost of [`max_pool`] on `ring` (label `maxpool`).
pub fn max_pool_cost(shape: &PoolShape, ring: Ring) -> Cost {
    let sizes = shape.windows().iter().map(Vec::len).collect();
    tree_levels(sizes)
        .into_iter()
        .fold(Cost::default(), |c, n| c.then(relu_cost(n, ring)))
}

/// The mirror of [`max_pool`].
pub fn max_pool_mirror(shape: &PoolShape, x: &[u64], ring: Ring) -> Vec<u64> {
    shape
        .windows()
        .iter()
        .map(|w| {
            let best = w.iter().map(|&i| ring.to_signed(x[i])).max();
            ring.from_signed(best.expect("non-empty window"))
        })
        .collect()
}

/// How the window sum is divided by n: a local factor, then a truncation.
fn divisor_scaling(n: usize, format: FixedPoint) -> (u64, u32) {
    if n.is_power_of_two() {
        (1, n.trailing_zeros())
    } else {
        let s = format.frac_bits();
        (((1u64 << s) as f64 / n as f64).round() as u64, s)
    }
}

/// The window sums times the local factor (before the truncation).
fn scaled_sums(shape: &PoolShape, x: &[u64], factor: u64, ring: Ring) -> Vec<u64> {
    shape
        .windows()
        .iter()
        .map(|w| {
            let s = w.iter().fold(0u64, |a, &i| a.wrapping_add(x[i]));
            ring.reduce(s.wrapping_mul(factor))
        })
        .collect()
}

fn window_size(shape: &PoolShape) -> Result<usize> {
    if shape.pads != [0; 4] {
        return Err(Error::InvalidArgument(format!(
            "average pooling with padding {:?} (only unpadded windows)",
            shape.pads
        )));
    }
    Ok(shape.kernel.0 * shape.kernel.1)
}

/// Shares of each window's mean (unpadded windows). Label `avgpool` (its truncation inside).
pub fn avg_pool(sess: &mut Session, shape: &PoolShape, x: &SharedTensor) -> Result<SharedTensor> {
    shape.validate()?;
    x.expect("average pool input", &shape.input_shape(), x.format())?;
    let (factor, shift) = divisor_scaling(window_size(shape)?, x.format());
    let sums = scaled_sums(shape, x.share(), factor, x.ring());
    let format = FixedPoint::new(x.ring(), x.frac_bits() + shift)?;
    let sums = SharedTensor::new(shape.output_shape(), format, sums)?;
    sess.scope(CnnOp::AvgPool.label(), |sess| {
        truncate(sess, &sums, shift, x.ring())
    })
}

/// Exact cost of [`avg_pool`] on `format` (label `avgpool`).
pub fn avg_pool_cost(shape: &PoolShape, format: FixedPoint) -> Result<Cost> {
    let (_, shift) = divisor_scaling(window_size(shape)?, format);
    let n = shape.channels * shape.out_height() * shape.out_width();
    truncate_cost(n, format.ring(), format.ring(), shift)
}

/// The mirror of [`avg_pool`].
pub fn avg_pool_mirror(shape: &PoolShape, x: &[u64], format: FixedPoint) -> Result<Vec<u64>> {
    let (factor, shift) = divisor_scaling(window_size(shape)?, format);
    let ring = format.ring();
    let sums = scaled_sums(shape, x, factor, ring);
    Ok(truncate_mirror(&sums, ring, ring, shift))
}
