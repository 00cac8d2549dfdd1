//! The arithmetic the training is written on, once: [`Arith`] is implemented by the secure
//! two-party evaluator ([`crate::secure::SecureArith`], on shares) and by the plaintext twin
//! ([`Twin`], on the values themselves, every truncation a floor). Running the same
//! [`crate::protocol`] code on both is what makes the twin the exact mirror of the secure run
//! up to the truncations' carries.
use crate::config::{Holder, Reveal};
use mpc_core::{Result, Ring};
use nn::sigmoid::{sigmoid_fixed, SigmoidApprox};
use ot_nonlinear::approx::{fixed, layernorm};

/// Ring of every value: Z_2^64.
pub const RING: Ring = Ring::R64;

/// One evaluator's view of the computation: a share (secure run) or the value (twin).
pub trait Arith {
    /// The holders whose own inputs this evaluator supplies: its own in the secure run, both
    /// in the twin.
    fn holders(&self) -> &[Holder];
    /// Whether public constants are added on this evaluator's values (the server's share, or
    /// the twin's value; the client's share gets 0).
    fn adds_constants(&self) -> bool;
    /// Element-wise product (Z_2^64, no truncation).
    fn mul(&mut self, x: &[u64], y: &[u64]) -> Result<Vec<u64>>;
    /// Element-wise square.
    fn square(&mut self, x: &[u64]) -> Result<Vec<u64>>;
    /// `x[r·cols + c]·y[r]` (x rows × cols, one y per row).
    fn mul_rows(&mut self, x: &[u64], y: &[u64], cols: usize) -> Result<Vec<u64>>;
    /// floor(x / 2^s) (the secure run may return one less; |x| < 2^62).
    fn trunc(&mut self, x: &[u64], s: u32) -> Result<Vec<u64>>;
    /// `[x ≥ 0]` (XOR shares in the secure run).
    fn drelu(&mut self, x: &[u64]) -> Result<Vec<bool>>;
    /// b·x.
    fn mux(&mut self, b: &[bool], x: &[u64]) -> Result<Vec<u64>>;
    /// 1/√v (18 fraction bits in, 20 out; 1 ≤ v < 2^32 in units, garbage outside).
    fn rsqrt(&mut self, v: &[u64]) -> Result<Vec<u64>>;
    /// 1/x (18 fraction bits in and out; 2^-18 ≤ x < 2^18).
    fn reciprocal(&mut self, x: &[u64]) -> Result<Vec<u64>>;
    /// σ̃(x) (18 fraction bits, |x| < 1024).
    fn sigmoid(&mut self, approx: SigmoidApprox, x: &[u64]) -> Result<Vec<u64>>;
    /// Opens x to the holders `to` selects; `None` for a holder that does not learn it.
    fn reveal(&mut self, x: &[u64], to: Reveal) -> Result<Option<Vec<u64>>>;
    /// Runs `f` under the cost label `label`.
    fn scope<R>(&mut self, label: &str, f: impl FnOnce(&mut Self) -> R) -> R;

    /// A public constant on this evaluator's value (0 on the client's share).
    fn public(&self, c: u64) -> u64 {
        if self.adds_constants() {
            c
        } else {
            0
        }
    }

    /// The holders' own inputs `f(h)` combined: the value is their sum (each holder's input is
    /// its share of it).
    fn input(&self, f: impl Fn(Holder) -> Vec<u64>) -> Vec<u64> {
        combine(self.holders(), f, |a, b| RING.add(a, b))
    }

    /// The holders' own bits `f(h)` combined by XOR.
    fn input_bits(&self, f: impl Fn(Holder) -> Vec<bool>) -> Vec<bool> {
        combine(self.holders(), f, |a, b| a ^ b)
    }
}

/// `f(h)` of every holder in `holders`, combined element-wise by `op`.
fn combine<T: Copy>(
    holders: &[Holder],
    f: impl Fn(Holder) -> Vec<T>,
    op: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut parts = holders.iter().map(|&h| f(h));
    let first = parts.next().unwrap_or_default();
    parts.fold(first, |acc, v| {
        acc.into_iter().zip(v).map(|(a, b)| op(a, b)).collect()
    })
}

/// The plaintext twin: the values themselves, the secure run's arithmetic step by step with
/// every truncation a floor.
#[derive(Debug, Default)]
pub struct Twin;

impl Arith for Twin {
    fn holders(&self) -> &[Holder] {
        &Holder::BOTH
    }

    fn adds_constants(&self) -> bool {
        true
    }

    fn mul(&mut self, x: &[u64], y: &[u64]) -> Result<Vec<u64>> {
        Ok(x.iter().zip(y).map(|(&a, &b)| RING.mul(a, b)).collect())
    }

    fn square(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        Ok(x.iter().map(|&a| RING.mul(a, a)).collect())
    }

    fn mul_rows(&mut self, x: &[u64], y: &[u64], cols: usize) -> Result<Vec<u64>> {
        Ok(x.iter()
            .enumerate()
            .map(|(i, &a)| RING.mul(a, y[i / cols]))
            .collect())
    }

    fn trunc(&mut self, x: &[u64], s: u32) -> Result<Vec<u64>> {
        Ok(x.iter().map(|&a| fixed::trunc(RING, a, s)).collect())
    }

    fn drelu(&mut self, x: &[u64]) -> Result<Vec<bool>> {
        Ok(x.iter().map(|&a| !RING.msb(a)).collect())
    }

    fn mux(&mut self, b: &[bool], x: &[u64]) -> Result<Vec<u64>> {
        Ok(b.iter()
            .zip(x)
            .map(|(&b, &a)| if b { a } else { 0 })
            .collect())
    }

    fn rsqrt(&mut self, v: &[u64]) -> Result<Vec<u64>> {
        // Outside its range the secure rsqrt returns garbage that the caller multiplexes away;
        // the mirror is only defined inside, so it is clamped there (the value is unused).
        Ok(v.iter()
            .map(|&a| layernorm::rsqrt(a.clamp(1, (1 << layernorm::RSQRT_BITS) - 1)))
            .collect())
    }

    fn reciprocal(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        Ok(x.iter().map(|&a| fixed::reciprocal(a)).collect())
    }

    fn sigmoid(&mut self, approx: SigmoidApprox, x: &[u64]) -> Result<Vec<u64>> {
        Ok(x.iter().map(|&a| sigmoid_fixed(approx, a)).collect())
    }

    fn reveal(&mut self, x: &[u64], _to: Reveal) -> Result<Option<Vec<u64>>> {
        Ok(Some(x.to_vec()))
    }

    fn scope<R>(&mut self, _label: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        f(self)
    }
}
