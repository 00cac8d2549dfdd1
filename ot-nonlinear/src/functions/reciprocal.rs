//! Reciprocal of a Softmax row sum on shares (the Softmax plan's step 4), label
//! `reciprocal`. Mirror: [`crate::approx::fixed::softmax_reciprocal`].
//!
//! For s ∈ Z_2^64 with 18 fraction bits, s ∈ [≈0.9, 256), result in Z_2^64 with r_frac
//! fraction bits:
//! 1. `[s ≥ 4]`, `[s ≥ 31]`: one reduced-ring DReLU (drop 18, keep 9: a millionaire on 8 bits,
//!    3 rounds) on 2n values `s − T` (public thresholds, the server subtracts them); the range's
//!    one-hot bits are local XORs. At integer resolution s may take the lower range up to one
//!    above its threshold; each range's table covers that slack;
//! 2. one [`lut`] per range of r0 = 1/((v + ½)·step) at indices ⌊s / step⌋ (local down-casts;
//!    8, 7, 7 index bits), tables on Z_2^recip_bits;
//! 3. one [`mux`] of the three r0 by the one-hot bits, summed;
//! 4. one Newton step on Z_2^recip_bits: s' = ⌊s / 2^{18−s_frac}⌋ (free), t = s'·r0 and
//!    r0·(2^w − t) by two [`mul`] (w = s_frac + r_frac), r = ⌊(r0·2^w + r0·(2^w − t)) / 2^w⌋ by
//!    one known-MSB truncation with up-cast to Z_2^64 (callers read r at any ring width).
//!    The lookup's relative error ≤ 3.2 % becomes ≤ 1e-3.
//!
//! Cost: [`reciprocal_cost`] (exact); per row (256 + 128 + 128)·48 lookup bits + 2 products on
//! Z_2^48; rounds 3 + 3·2 + 2 + 2·2 + 2.
use super::{total_cost, total_cots};
use crate::approx::fixed::piece_selection;
use crate::approx::SoftmaxPlan;
use crate::mpc::drelu::{drelu_lanes_cost, drelu_lanes_cots, drelu_reduced_lanes, lanes_minus};
use crate::mpc::lut::{lut, lut_cost, lut_cots};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::product::{mul, mul_cost, mul_cots};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{FixedPoint, Result, Ring};

fn steps(plan: &SoftmaxPlan, n: usize) -> Vec<(Cost, CotDemand)> {
    let rr = plan.recip_bits;
    let (_, cmp) = plan.recip_cmp();
    let ranges = plan.recip_ranges();
    let k = ranges.len();
    let w = plan.s_frac + plan.r_frac;
    let mut v = vec![(
        drelu_lanes_cost(n, k - 1, cmp),
        drelu_lanes_cots(n, k - 1, cmp),
    )];
    for &(_, _, bits) in &ranges {
        v.push((lut_cost(n, bits, 1, rr), lut_cots(n, bits)));
    }
    v.push((mux_cost(k * n, rr), mux_cots(k * n)));
    for _ in 0..2 {
        v.push((mul_cost(n, 1, rr), mul_cots(n, rr)));
    }
    v.push((
        trunc_cost(n, rr, Ring::R64, w, TruncKind::KnownMsb).expect("validated plan"),
        trunc_cots(n, rr, Ring::R64, w, TruncKind::KnownMsb).expect("validated plan"),
    ));
    v
}

/// Exact cost of [`reciprocal`] on n values (label `reciprocal`).
pub fn reciprocal_cost(plan: &SoftmaxPlan, n: usize) -> Cost {
    total_cost(steps(plan, n))
}

/// COTs drawn by [`reciprocal`] on n values.
pub fn reciprocal_cots(plan: &SoftmaxPlan, n: usize) -> CotDemand {
    total_cots(steps(plan, n))
}

/// Shares of 1/s (Z_2^64, r_frac bits) for shares `s` (Z_2^64, 18 bits,
/// s ∈ [0.9, 256)). Label `reciprocal`.
pub fn reciprocal(sess: &mut Session, plan: &SoftmaxPlan, s: &[u64]) -> Result<Vec<u64>> {
    let lin = FixedPoint::LINEAR;
    let (r64, rr) = (Ring::R64, plan.recip_bits);
    let ranges = plan.recip_ranges();
    let (drop, keep) = plan.recip_cmp();
    let n = s.len();
    let server = sess.is_server();
    sess.scope("reciprocal", |sess| {
        // The range thresholds, all of a value's in one batch of lanes (shared leaf OTs).
        let lanes = ranges.len() - 1;
        let ts = ranges[1..]
            .iter()
            .map(|&(t, _, _)| if server { lin.encode(t) } else { Ok(0) })
            .collect::<Result<Vec<u64>>>()?;
        let shifted = lanes_minus(server, s, &ts, r64);
        let b = drelu_reduced_lanes(sess, &shifted, r64, drop, keep.bits(), lanes)?;
        let mut sel = vec![Vec::new(); n];
        for (i, row) in sel.iter_mut().enumerate() {
            let bi: Vec<bool> = b[i * lanes..(i + 1) * lanes].to_vec();
            *row = piece_selection(&bi);
            if !server {
                row[0] ^= true; // b_0 = 1 is the server's constant
            }
        }
        let mut bits = Vec::with_capacity(ranges.len() * n);
        let mut vals = Vec::with_capacity(ranges.len() * n);
        for (k, &(_, shift, ib)) in ranges.iter().enumerate() {
            let idx: Vec<u64> = s.iter().map(|&v| (v >> shift) & ((1 << ib) - 1)).collect();
            let table = plan.recip_table(k);
            vals.extend(lut(sess, &idx, ib, server.then_some(&table[..]), 1, rr)?);
            bits.extend(sel.iter().map(|row| row[k]));
        }
        let m = mux(sess, &bits, &vals, rr)?;
        let r0: Vec<u64> = (0..n)
            .map(|i| (0..ranges.len()).fold(0, |a, k| rr.add(a, m[k * n + i])))
            .collect();
        let w = plan.s_frac + plan.r_frac;
        let sp: Vec<u64> = s
            .iter()
            .map(|&v| rr.reduce(v >> (lin.frac_bits() - plan.s_frac)))
            .collect();
        let t = mul(sess, &sp, &r0, rr)?;
        let one = if server { rr.reduce(1 << w) } else { 0 };
        let e: Vec<u64> = t.iter().map(|&v| rr.sub(one, v)).collect();
        let re = mul(sess, &r0, &e, rr)?;
        let wide: Vec<u64> = r0
            .iter()
            .zip(&re)
            .map(|(&a, &b)| rr.add(rr.reduce(a << w), b))
            .collect();
        trunc_cast(sess, &wide, rr, r64, w, TruncKind::KnownMsb)
    })
}
