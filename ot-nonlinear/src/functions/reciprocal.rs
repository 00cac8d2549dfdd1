//! Reciprocal of a Softmax row sum on shares (the Softmax plan's step 4), label
//! `reciprocal`. Mirror: [`crate::approx::fixed::softmax_reciprocal`].
//!
//! For s ∈ Z_2^64 with 18 fraction bits, s ∈ [≈0.9, 256):
//! 1. `[s ≥ 4]`, `[s ≥ 32]`: one reduced-ring DReLU (drop 12, keep 20) on 2n values `s − T`
//!    (public thresholds, the server subtracts them); the range's one-hot bits are local XORs;
//! 2. three 8-bit lookups ([`lut`]) of r0 = 1/((v + ½)·step) at indices ⌊s / step⌋ mod 256
//!    (local down-casts; step 1/64, 1/8, 1), tables on Z_2^recip_lut_bits;
//! 3. one [`mux`] of the three r0 by the one-hot bits, sum, known-MSB up-cast to Z_2^64;
//! 4. one Newton step r = r0 + ⌊r0·(1 − ⌊s·r0⌋)⌋ by two [`mul`] and two known-MSB truncations
//!    by 18 on Z_2^64. The lookup's relative error ≤ 1/64 becomes ≤ 2.5e-4.
//!
//! Cost: [`reciprocal_cost`] (exact); per row ≈ 3·256·21 lookup bits + 2·4160 product bits;
//! 22 rounds as steps (fewer when flights merge).
use crate::approx::fixed::piece_selection;
use crate::approx::SoftmaxPlan;
use crate::mpc::drelu::{drelu_cost, drelu_cots, drelu_reduced};
use crate::mpc::lut::{lut, lut_cost, lut_cots};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::product::{mul, mul_cost, mul_cots};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{FixedPoint, Result, Ring};

const CMP_DROP: u32 = 12;
const CMP_KEEP: u32 = 20;

fn steps(plan: &SoftmaxPlan, n: usize) -> Vec<(Cost, CotDemand)> {
    let (r64, lr) = (Ring::R64, Ring::new(plan.recip_lut_bits).expect("plan"));
    let cmp = Ring::new(CMP_KEEP).expect("constant");
    let k = plan.recip_ranges().len();
    let f = FixedPoint::LINEAR.frac_bits();
    let tr = |from, s| {
        (
            trunc_cost(n, from, r64, s, TruncKind::KnownMsb).expect("valid"),
            trunc_cots(n, from, r64, s, TruncKind::KnownMsb).expect("valid"),
        )
    };
    let mut v = vec![(drelu_cost((k - 1) * n, cmp), drelu_cots((k - 1) * n, cmp))];
    for _ in 0..k {
        v.push((lut_cost(n, 8, 1, lr), lut_cots(n, 8)));
    }
    v.push((mux_cost(k * n, lr), mux_cots(k * n)));
    v.push(tr(lr, 0));
    for _ in 0..2 {
        v.push((mul_cost(n, 1, r64), mul_cots(n, r64)));
        v.push(tr(r64, f));
    }
    v
}

/// Exact cost of [`reciprocal`] on n values (label `reciprocal`).
pub fn reciprocal_cost(plan: &SoftmaxPlan, n: usize) -> Cost {
    steps(plan, n)
        .into_iter()
        .fold(Cost::default(), |a, (c, _)| a.then(c))
}

/// COTs drawn by [`reciprocal`] on n values.
pub fn reciprocal_cots(plan: &SoftmaxPlan, n: usize) -> CotDemand {
    steps(plan, n)
        .into_iter()
        .fold(CotDemand::default(), |a, (_, d)| a.plus(d))
}

/// Shares of 1/s for shares `s` (Z_2^64, 18 bits, s ∈ [0.9, 256)). Label `reciprocal`.
pub fn reciprocal(sess: &mut Session, plan: &SoftmaxPlan, s: &[u64]) -> Result<Vec<u64>> {
    let lin = FixedPoint::LINEAR;
    let (r64, lr) = (Ring::R64, Ring::new(plan.recip_lut_bits)?);
    let ranges = plan.recip_ranges();
    let n = s.len();
    let server = sess.is_server();
    sess.scope("reciprocal", |sess| {
        let mut shifted = Vec::with_capacity((ranges.len() - 1) * n);
        for &(t, _) in &ranges[1..] {
            let t = if server { lin.encode(t)? } else { 0 };
            shifted.extend(s.iter().map(|&v| r64.sub(v, t)));
        }
        let b = drelu_reduced(sess, &shifted, r64, CMP_DROP, CMP_KEEP)?;
        let mut bits = Vec::with_capacity(ranges.len() * n);
        let mut vals = Vec::with_capacity(ranges.len() * n);
        let mut sel = vec![Vec::new(); n];
        for (i, row) in sel.iter_mut().enumerate() {
            let bi: Vec<bool> = (0..ranges.len() - 1).map(|j| b[j * n + i]).collect();
            *row = piece_selection(&bi);
            if !server {
                row[0] ^= true; // b_0 = 1 is the server's constant
            }
        }
        for (k, &(_, shift)) in ranges.iter().enumerate() {
            let idx: Vec<u64> = s.iter().map(|&v| (v >> shift) & 0xff).collect();
            let table = plan.recip_table(k);
            let r0 = lut(sess, &idx, 8, server.then_some(&table[..]), 1, lr)?;
            vals.extend(r0);
            bits.extend(sel.iter().map(|row| row[k]));
        }
        let m = mux(sess, &bits, &vals, lr)?;
        let r0: Vec<u64> = (0..n)
            .map(|i| (0..ranges.len()).fold(0, |a, k| lr.add(a, m[k * n + i])))
            .collect();
        let r0 = trunc_cast(sess, &r0, lr, r64, 0, TruncKind::KnownMsb)?;
        let f = lin.frac_bits();
        let sr = mul(sess, s, &r0, r64)?;
        let sr = trunc_cast(sess, &sr, r64, r64, f, TruncKind::KnownMsb)?;
        let one = if server { lin.encode(1.0)? } else { 0 };
        let e: Vec<u64> = sr.iter().map(|&v| r64.sub(one, v)).collect();
        let re = mul(sess, &r0, &e, r64)?;
        let re = trunc_cast(sess, &re, r64, r64, f, TruncKind::KnownMsb)?;
        Ok(r0.iter().zip(&re).map(|(&a, &b)| r64.add(a, b)).collect())
    })
}
