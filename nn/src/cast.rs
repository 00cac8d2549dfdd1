//! Truncations and ring casts of shared tensors ([`ot_nonlinear::mpc::trunc_cast`] with shapes
//! and formats checked), and the up-cast of an HE response window back to Z_2^64.
//!
//! Cost: [`truncate_cost`] / [`upcast_cost`] (exact): a known-MSB cast sends L − ℓ + s + 1 bits
//! per element in 2 flights; a down-cast that only drops bits is local. COTs drawn:
//! [`truncate_cots`] / [`upcast_cots`].
//! Mirror: [`truncate_mirror`] (floor of the signed value; the secure result is that or one
//! less).
use crate::tensor::SharedTensor;
use he_linear::response::Window;
use mpc_core::{FixedPoint, Result, Ring};
use ot_nonlinear::approx::fixed;
use ot_nonlinear::mpc::trunc::{trunc_cost, trunc_cots, TruncKind};
use ot_nonlinear::mpc::{trunc_cast, Cost, CotDemand, Session};

/// The activation format: Z_2^64 with 18 fraction bits.
pub const LINEAR: FixedPoint = FixedPoint::LINEAR;

/// Shares of ⌊x / 2^shift⌋ in `to` (the value within one unit below), from shares of x with
/// |x| < 2^{ℓ−2}; the result has `shift` fewer fraction bits. Label `trunc` (inside the
/// caller's).
pub fn truncate(
    sess: &mut Session,
    x: &SharedTensor,
    shift: u32,
    to: Ring,
) -> Result<SharedTensor> {
    let y = trunc_cast(sess, x.share(), x.ring(), to, shift, TruncKind::KnownMsb)?;
    let format = FixedPoint::new(to, x.frac_bits().saturating_sub(shift))?;
    SharedTensor::new(x.shape().clone(), format, y)
}

/// Exact cost of [`truncate`] on `n` elements.
pub fn truncate_cost(n: usize, from: Ring, to: Ring, shift: u32) -> Result<Cost> {
    trunc_cost(n, from, to, shift, TruncKind::KnownMsb)
}

/// COTs [`truncate`] draws on `n` elements.
pub fn truncate_cots(n: usize, from: Ring, to: Ring, shift: u32) -> Result<CotDemand> {
    trunc_cots(n, from, to, shift, TruncKind::KnownMsb)
}

/// The mirror of [`truncate`]: ⌊signed(x) / 2^shift⌋ mod 2^to.
pub fn truncate_mirror(x: &[u64], from: Ring, to: Ring, shift: u32) -> Vec<u64> {
    x.iter()
        .map(|&v| fixed::trunc_cast(v, from, to, shift))
        .collect()
}

/// Shares modulo 2^{window.bits()} of an HE product revealed through `window` (top two bits
/// clear), up-cast to Z_2^64 by a known-MSB cast: the result has `frac_bits` fraction bits.
pub fn upcast_window(sess: &mut Session, y: &[u64], window: Window) -> Result<Vec<u64>> {
    trunc_cast(
        sess,
        y,
        Ring::new(window.bits())?,
        Ring::R64,
        0,
        TruncKind::KnownMsb,
    )
}

/// Exact cost of [`upcast_window`] on `n` elements.
pub fn upcast_cost(n: usize, window: Window) -> Result<Cost> {
    trunc_cost(
        n,
        Ring::new(window.bits())?,
        Ring::R64,
        0,
        TruncKind::KnownMsb,
    )
}

/// COTs [`upcast_window`] draws on `n` elements.
pub fn upcast_cots(n: usize, window: Window) -> Result<CotDemand> {
    truncate_cots(n, Ring::new(window.bits())?, Ring::R64, 0)
}

/// Shares of secret × secret products through a truncating `window`, up-cast to Z_2^64.
/// Each of the two cross terms comes out ½ unit low on average (its mask's carry and the
/// response's rounding); the server adds one unit, so that the shares sum to X·Y / 2^lo
/// rounded to the nearest on average, as the mirrors' products are.
pub fn round_products(sess: &mut Session, mut y: Vec<u64>, window: Window) -> Result<Vec<u64>> {
    if sess.is_server() {
        y.iter_mut()
            .for_each(|v| *v = window.reduce(v.wrapping_add(1)));
    }
    upcast_window(sess, &y, window)
}
