//! 1/x on shares over the whole fixed-point range, label `reciprocal_any`. Mirror:
//! [`crate::approx::fixed::reciprocal`] ([`reciprocal_any`]) and
//! [`crate::approx::fixed::reciprocal_within`] ([`reciprocal_within`]): every step there is a
//! step here; each of the truncations may return one less than the mirror's floor.
//!
//! Input: x ∈ Z_2^64 with 18 fraction bits, 2^-18 ≤ x < 2^18 (raw [1, 2^36)); output 1/x with
//! 18 fraction bits, relative error ≤ 1e-4 plus one unit. Beyond the range, as the mirror
//! says: x ≥ 2^18 (any positive ring element) gives 0, x = 0 gives 4·2.9142·2^17; x < 0 is
//! outside the domain. [`reciprocal_within`] takes the highest bit's candidates `lo..hi` as a
//! public argument (x ≥ 2^hi gives 0, x < 2^lo is not normalised): tanh's 1 + e ∈ [1, 2] needs
//! two comparisons instead of 36.
//! 1. the highest bit: `b_j = [x ≥ 2^j]` for j = lo+1..=hi by exact DReLU on Z_2^64 of
//!    x − 2^j (public 2^j, the server subtracts it; exact for every x > −2^63 + 2^hi), batched;
//!    one-hot `h_j = b_j ⊕ b_{j+1}` for j = lo..hi−1 (b_lo = 1 on the server's share, local
//!    XORs; `h_hi = b_hi` needs no bit: its scale is 0);
//! 2. the one-hot bits to Z_2^64 ([`b2a`]); locally `S = Σ h_j·2^{35−j}`
//!    ([`reciprocal_scale`], public constants): both the normaliser and the denormaliser;
//! 3. `c = trunc(x·S, 18)` = x·2^{17−k} ∈ [0.5, 1) ([`mul`](crate::mpc::mul) + known-MSB
//!    truncation, |x·S| < 2^36);
//! 4. `w = 2.9142 − 2c` (local), `e = 1 − trunc(c·w, 18)`; two Goldschmidt steps: the first's
//!    `w·(1 + e)` and `e²` in one batch of 2n products and one of 2n truncations, the second's
//!    `w·(1 + e)` alone;
//! 5. `r = trunc(w·S, 18)` = w·2^{17−k}.
//!
//! Who sends what: the primitives' messages only (DReLU's millionaire, B2A's and the products'
//! COT messages, the truncations' correction bits); every constant is public.
//!
//! Carries: each truncation may be one unit low; through the Goldschmidt steps (1/c's slope
//! ≤ 4 on c's unit, ≈ 3 on e's, ≤ 2 on e²'s, 1 on each w's) that is at most 11 units of w,
//! scaled by 2^{17−k} (for k > 17 a shift right, and two values δ apart floor to integers at
//! most ⌈δ⌉ apart), plus the last truncation's unit: `|secure − mirror| ≤ ⌈12·2^{17−k}⌉ + 1`
//! units (measured ≤ 6·2^{17−k}, or 2 units for k > 17); x = 0 is within 1e-4 of the mirror,
//! relatively.
//!
//! Cost ([`reciprocal_within_cost`], exact): per value hi − lo DReLUs on Z_2^64 (≈ 625 bits
//! each), (hi − lo)·64 bits of B2A, 5 products on Z_2^64 (4160 bits each, the first
//! Goldschmidt step's two in one batch) and 5 truncations by 18. n = 768, full range (36
//! candidates): 50 646 bits per value (4.86 MB in all), 28 rounds; tanh's 18..20: 27 220 bits
//! per value (2.61 MB), 28 rounds.
use super::{product_trunc, product_trunc_steps, total_cost, total_cots};
use crate::approx::fixed::{
    reciprocal_scale, RECIPROCAL_BITS, RECIPROCAL_INIT, RECIPROCAL_ITERATIONS,
};
use crate::mpc::b2a::{b2a, b2a_cost, b2a_cots};
use crate::mpc::drelu::{drelu_lanes, drelu_lanes_cost, drelu_lanes_cots, lanes_minus};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, FixedPoint, Result, Ring};
use std::ops::Range;

const LIN: FixedPoint = FixedPoint::LINEAR;

fn check(bits: &Range<u32>) -> Result<()> {
    if bits.start < bits.end && bits.end <= RECIPROCAL_BITS {
        Ok(())
    } else {
        Err(Error::out_of_range(
            "reciprocal candidates",
            format!("{bits:?}"),
            format!("a non-empty range within 0..{RECIPROCAL_BITS}"),
        ))
    }
}

fn steps(n: usize, bits: Range<u32>) -> Vec<(Cost, CotDemand)> {
    let r64 = Ring::R64;
    let f = LIN.frac_bits();
    let m = n * bits.len();
    let mut v = vec![
        (
            drelu_lanes_cost(n, bits.len(), r64),
            drelu_lanes_cots(n, bits.len(), r64),
        ),
        (b2a_cost(m, r64, 0), b2a_cots(m, r64, 0)),
    ];
    v.extend(product_trunc_steps(n, false, f)); // c
    v.extend(product_trunc_steps(n, false, f)); // c·w
    for i in 0..RECIPROCAL_ITERATIONS {
        let batch = if i + 1 < RECIPROCAL_ITERATIONS { 2 } else { 1 };
        v.extend(product_trunc_steps(batch * n, false, f));
    }
    v.extend(product_trunc_steps(n, false, f)); // r
    v
}

/// Exact cost of [`reciprocal_within`] on n values with candidates `bits` (label
/// `reciprocal_any`; the reservation excluded). Panics on an invalid range.
pub fn reciprocal_within_cost(n: usize, bits: Range<u32>) -> Cost {
    check(&bits).expect("valid candidate range");
    total_cost(steps(n, bits))
}

/// COTs drawn by [`reciprocal_within`] on n values.
pub fn reciprocal_within_cots(n: usize, bits: Range<u32>) -> CotDemand {
    check(&bits).expect("valid candidate range");
    total_cots(steps(n, bits))
}

/// Exact cost of [`reciprocal_any`] on n values.
pub fn reciprocal_any_cost(n: usize) -> Cost {
    reciprocal_within_cost(n, 0..RECIPROCAL_BITS)
}

/// COTs drawn by [`reciprocal_any`] on n values.
pub fn reciprocal_any_cots(n: usize) -> CotDemand {
    reciprocal_within_cots(n, 0..RECIPROCAL_BITS)
}

/// Shares of 1/x (18 fraction bits) for shares `x` (Z_2^64, 18 bits, 2^-18 ≤ x < 2^18; larger
/// x give 0). Label `reciprocal_any`.
pub fn reciprocal_any(sess: &mut Session, x: &[u64]) -> Result<Vec<u64>> {
    reciprocal_within(sess, x, 0..RECIPROCAL_BITS)
}

/// Shares of 1/x with the highest bit of x among the public candidates `bits = lo..hi`
/// (hi ≤ 36): accurate for 2^lo ≤ x < 2^hi (raw), 0 for x ≥ 2^hi. Label `reciprocal_any`.
pub fn reciprocal_within(sess: &mut Session, x: &[u64], bits: Range<u32>) -> Result<Vec<u64>> {
    check(&bits)?;
    let r64 = Ring::R64;
    let f = LIN.frac_bits();
    let n = x.len();
    let server = sess.is_server();
    // A public constant on the server's share only.
    let public = |c: u64| if server { c } else { 0 };
    let (lo, hi) = (bits.start, bits.end);
    sess.scope("reciprocal_any", |sess| {
        // 1. b_j = [x ≥ 2^j], j = lo+1..=hi, per value (lanes sharing the leaf OTs); one-hot
        // h_j, j = lo..hi−1.
        let lanes = bits.len();
        let ts: Vec<u64> = (lo + 1..=hi).map(|j| 1u64 << j).collect();
        let shifted = lanes_minus(server, x, &ts, r64);
        let b = drelu_lanes(sess, &shifted, r64, lanes)?;
        let bit = |j: u32, i: usize| {
            if j == lo {
                server
            } else {
                b[i * lanes + (j - lo - 1) as usize]
            }
        };
        let one_hot: Vec<bool> = bits
            .clone()
            .flat_map(|j| (0..n).map(move |i| (j, i)))
            .map(|(j, i)| bit(j, i) ^ bit(j + 1, i))
            .collect();
        // 2. S = Σ h_j·2^{35−j}.
        let h = b2a(sess, &one_hot, r64, 0)?;
        let mut s = vec![0u64; n];
        for (row, j) in h.chunks(n).zip(bits.clone()) {
            let scale = reciprocal_scale(&bits, j);
            for (si, &hj) in s.iter_mut().zip(row) {
                *si = r64.add(*si, r64.mul(hj, scale));
            }
        }
        // 3. c ∈ [0.5, 1); 4. the initial guess and Goldschmidt's steps.
        let c = product_trunc(sess, x, Some(&s), f)?;
        let init = public(LIN.encode(RECIPROCAL_INIT)?);
        let one = public(LIN.encode(1.0)?);
        let mut w: Vec<u64> = c.iter().map(|&v| r64.sub(init, r64.add(v, v))).collect();
        let cw = product_trunc(sess, &c, Some(&w), f)?;
        let mut e: Vec<u64> = cw.iter().map(|&v| r64.sub(one, v)).collect();
        for i in 0..RECIPROCAL_ITERATIONS {
            let one_e: Vec<u64> = e.iter().map(|&v| r64.add(one, v)).collect();
            if i + 1 < RECIPROCAL_ITERATIONS {
                let a = [&w[..], &e[..]].concat();
                let b = [&one_e[..], &e[..]].concat();
                let mut p = product_trunc(sess, &a, Some(&b), f)?;
                e = p.split_off(n);
                w = p;
            } else {
                w = product_trunc(sess, &w, Some(&one_e), f)?;
            }
        }
        // 5. Back to 1/x.
        product_trunc(sess, &w, Some(&s), f)
    })
}
