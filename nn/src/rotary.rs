//! Rotary position embeddings (RoPE) on shares at public positions, llama.cpp's adjacent-pair
//! convention: in every head, the pair (x_{2i}, x_{2i+1}) of the row at position p turns by
//! θ = p·base^{−2i/d_head}. Positions are public, so this is a public linear map: each party
//! multiplies its own share by cos θ and sin θ encoded at 18 fraction bits (no message), and
//! one known-MSB truncation by 18 brings the 36-fraction-bit result back
//! ([`crate::cast::truncate`]).
//!
//! Mirror: [`rotary_mirror`], ⌊(x_a·c ∓ x_b·s) / 2^18⌋ per element with wrapping products; the
//! secure result is that or one unit less. Cost: [`rotary_cost`] (the truncation's).
use crate::cast::{truncate, truncate_cost, truncate_mirror, LINEAR};
use crate::tensor::SharedTensor;
use mpc_core::{Error, FixedPoint, Result, Ring};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
use ot_nonlinear::mpc::{Cost, CotDemand, Session};

/// Where the rotation applies: `heads` heads of `head_dim` per row, row t at position
/// `first_position + t`, frequencies from `base`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotary {
    /// Heads per row.
    pub heads: usize,
    /// Width of one head (even).
    pub head_dim: usize,
    /// The frequency base (10 000 in LLaMA, 100 000 in SmolLM2).
    pub base: f64,
}

impl Rotary {
    fn check(&self, x: &SharedTensor) -> Result<()> {
        if self.head_dim == 0 || self.head_dim % 2 != 0 || self.heads * self.head_dim != x.cols() {
            return Err(Error::shape(
                format!(
                    "rotary input columns ({} heads of {})",
                    self.heads, self.head_dim
                ),
                x.cols(),
                format!("{}, an even head width", self.heads * self.head_dim),
            ));
        }
        if !(self.base.is_finite() && self.base > 1.0) {
            return Err(Error::out_of_range(
                "rotary base",
                self.base.to_string(),
                "a finite base above 1",
            ));
        }
        Ok(())
    }

    /// (cos θ_i, sin θ_i) at position `pos` for the head_dim/2 pairs, at 18 fraction bits
    /// (two's complement in Z_2^64).
    pub fn table(&self, pos: usize) -> Vec<(u64, u64)> {
        let half = self.head_dim / 2;
        let scale = (1u64 << LINEAR.frac_bits()) as f64;
        (0..half)
            .map(|i| {
                let theta = pos as f64 * self.base.powf(-2.0 * i as f64 / self.head_dim as f64);
                let enc = |v: f64| (v * scale).round() as i64 as u64;
                (enc(theta.cos()), enc(theta.sin()))
            })
            .collect()
    }

    /// The rotated rows at 36 fraction bits (local, on a share or on plaintext).
    fn rotate(&self, x: &[u64], cols: usize, first_position: usize) -> Vec<u64> {
        let mut out = vec![0u64; x.len()];
        for (t, (row, orow)) in x
            .chunks_exact(cols)
            .zip(out.chunks_exact_mut(cols))
            .enumerate()
        {
            let table = self.table(first_position + t);
            for h in 0..self.heads {
                let at = h * self.head_dim;
                for (i, &(c, s)) in table.iter().enumerate() {
                    let (a, b) = (row[at + 2 * i], row[at + 2 * i + 1]);
                    orow[at + 2 * i] = a.wrapping_mul(c).wrapping_sub(b.wrapping_mul(s));
                    orow[at + 2 * i + 1] = a.wrapping_mul(s).wrapping_add(b.wrapping_mul(c));
                }
            }
        }
        out
    }
}

/// The rows of `x` (Z_2^64, 18 fraction bits), row t at position `first_position + t`, rotated.
pub fn rotary(
    sess: &mut Session,
    rope: &Rotary,
    x: &SharedTensor,
    first_position: usize,
) -> Result<SharedTensor> {
    x.expect("rotary input", x.shape(), LINEAR)?;
    rope.check(x)?;
    let wide = SharedTensor::new(
        x.shape().clone(),
        FixedPoint::new(Ring::R64, 2 * LINEAR.frac_bits())?,
        rope.rotate(x.share(), x.cols(), first_position),
    )?;
    sess.reserve(rotary_cots(wide.share().len())?)?;
    truncate(sess, &wide, LINEAR.frac_bits(), Ring::R64)
}

/// Exact cost of [`rotary`] on `n` elements.
pub fn rotary_cost(n: usize) -> Result<Cost> {
    truncate_cost(n, Ring::R64, Ring::R64, LINEAR.frac_bits())
}

/// COTs [`rotary`] draws on `n` elements (it reserves them itself).
pub fn rotary_cots(n: usize) -> Result<CotDemand> {
    let shift = LINEAR.frac_bits();
    trunc_cots(n, Ring::R64, Ring::R64, shift, TruncKind::KnownMsb)
}

/// The mirror of [`rotary`] on plaintext rows of `cols`.
pub fn rotary_mirror(rope: &Rotary, x: &[u64], cols: usize, first_position: usize) -> Vec<u64> {
    let wide = rope.rotate(x, cols, first_position);
    truncate_mirror(&wide, Ring::R64, Ring::R64, LINEAR.frac_bits())
}
