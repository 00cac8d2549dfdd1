//! tanh(x) on shares (BERT's pooler), label `tanh`. Mirror: [`crate::approx::fixed::tanh`]
//! (every step there is a step here; each truncation may return one less than the mirror's
//! floor).
//!
//! Input: x ∈ Z_2^64 with 18 fraction bits, |x| < 2^13 (the exp's reduced comparison needs
//! |−|x| + 7| < 2^13); output tanh(x) = sign(x)·(1 − e)/(1 + e), e = exp(−|x|)², 18 bits:
//! 1. `neg = [x < 0]` by one exact DReLU on Z_2^64 (the server flips its bit), `|x| = x − 2·neg·x`
//!    by one [`mux`];
//! 2. `h = exp(−|x|)` by PUMA's squarings ([`exp`](mod@super::exp)'s, with
//!    [`TANH_EXP`] = t 8, lower −7; label `tanh/exp`):
//!    reduced-ring DReLU, known-MSB truncation by 8, 8 squarings, one mux;
//! 3. `e = trunc(h², 18)` ([`square`](crate::mpc::square) + known-MSB truncation); 1 − e and
//!    1 + e locally (the server adds 1);
//! 4. `r = 1/(1 + e)` by [`reciprocal_within`] with candidates
//!    [`TANH_DENOMINATOR_BITS`] = 18..20 (1 + e ∈ [1, 2]: two comparisons);
//! 5. `t = trunc((1 − e)·r, 18)`; the result `t − 2·neg·t` by one [`mux`].
//!
//! Who sends what: the primitives' messages only; the constants (−7, t, 1) are public.
//!
//! Carries: the squarings' truncations may move h by up to 2^9 units (each doubles the error
//! before it and adds one), e = h² by 2h·2^9 + 1, and (1 − e)/(1 + e) by 2/(1 + e)² times e's
//! error (≤ 0.65·2^10 over h ∈ [0, 1]), plus the reciprocal's (≤ 7) and the last product's
//! units: `|secure − mirror| ≤ 2^10` units (0.0039). Measured: 511 units (0.0019) at x ≈ 0,
//! where e ≈ 1; the mirror is within 1.6e-3 of f64 tanh, the secure output within 2.7e-3.
//!
//! Cost ([`tanh_cost`], exact): per value one DReLU and two muxes on Z_2^64, the exp (≈ 17 000
//! bits, 39 rounds), one square, the reciprocal on 18..20 (27 220 bits, 28 rounds) and one
//! product. n = 768: 51 598 bits per value (4.95 MB in all), 86 rounds.
use super::exp::{squaring, squaring_steps};
use super::reciprocal_any::{reciprocal_within, reciprocal_within_cost, reciprocal_within_cots};
use super::{product_trunc, product_trunc_steps, total_cost, total_cots};
use crate::approx::fixed::{TANH_DENOMINATOR_BITS, TANH_EXP};
use crate::mpc::drelu::{drelu, drelu_cost, drelu_cots};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{FixedPoint, Result, Ring};

const LIN: FixedPoint = FixedPoint::LINEAR;

fn steps(n: usize) -> Vec<(Cost, CotDemand)> {
    let (r64, f) = (Ring::R64, LIN.frac_bits());
    let sign = (mux_cost(n, r64), mux_cots(n));
    let mut v = vec![(drelu_cost(n, r64), drelu_cots(n, r64)), sign];
    v.extend(squaring_steps(n, TANH_EXP.0));
    v.extend(product_trunc_steps(n, true, f));
    v.push((
        reciprocal_within_cost(n, TANH_DENOMINATOR_BITS),
        reciprocal_within_cots(n, TANH_DENOMINATOR_BITS),
    ));
    v.extend(product_trunc_steps(n, false, f));
    v.push(sign);
    v
}

/// Exact cost of [`tanh`] on n values (label `tanh`, the reservation excluded).
pub fn tanh_cost(n: usize) -> Cost {
    total_cost(steps(n))
}

/// COTs drawn by [`tanh`] on n values.
pub fn tanh_cots(n: usize) -> CotDemand {
    total_cots(steps(n))
}

/// Shares of tanh(x) (18 fraction bits) for shares `x` (Z_2^64, 18 bits, |x| < 2^13).
/// Label `tanh`.
pub fn tanh(sess: &mut Session, x: &[u64]) -> Result<Vec<u64>> {
    let r64 = Ring::R64;
    let f = LIN.frac_bits();
    let server = sess.is_server();
    let public = |c: u64| if server { c } else { 0 };
    // x − 2·(neg·x): the sign applied by one mux.
    let signed = |sess: &mut Session, neg: &[bool], x: &[u64]| -> Result<Vec<u64>> {
        let m = mux(sess, neg, x, r64)?;
        Ok(x.iter()
            .zip(m)
            .map(|(&v, m)| r64.sub(v, r64.add(m, m)))
            .collect())
    };
    sess.scope("tanh", |sess| {
        // 1. neg = 1 ⊕ [x ≥ 0]; −|x|.
        let neg: Vec<bool> = drelu(sess, x, r64)?
            .into_iter()
            .map(|b| b ^ server)
            .collect();
        let minus_abs: Vec<u64> = signed(sess, &neg, x)?
            .into_iter()
            .map(|v| r64.neg(v))
            .collect();
        // 2. h = exp(−|x|); 3. e = h².
        let lower = [TANH_EXP.1];
        let lower = server.then_some(&lower[..]);
        let h = sess.scope("exp", |sess| squaring(sess, TANH_EXP.0, lower, &minus_abs))?;
        let e = product_trunc(sess, &h, None, f)?;
        let one = public(LIN.encode(1.0)?);
        let den: Vec<u64> = e.iter().map(|&v| r64.add(one, v)).collect();
        let num: Vec<u64> = e.iter().map(|&v| r64.sub(one, v)).collect();
        // 4. r = 1/(1 + e); 5. t = (1 − e)·r, signed.
        let r = reciprocal_within(sess, &den, TANH_DENOMINATOR_BITS)?;
        let t = product_trunc(sess, &num, Some(&r), f)?;
        signed(sess, &neg, &t)
    })
}
