//! 1/√v on shares for LayerNorm's per-row variances, label `rsqrt`. Mirror:
//! [`crate::approx::layernorm::rsqrt`] (every step there is a step here; truncations may return
//! one less than the mirror's floor).
//!
//! Input: v ∈ Z_2^64 with 18 fraction bits, 1 ≤ v < 2^32 (the LayerNorm plan adds ε ≥ one unit
//! and bounds the variance). Output: 1/√v with 20 fraction bits.
//! 1. the highest bit: `b_j = [v ≥ 2^j]` for j = 1..31 by exact DReLU on Z_2^34 (v − 2^j; both
//!    parties know 2^j, the server subtracts it; the 31 comparisons of a value share their leaf
//!    OTs, [`drelu_lanes`]), one-hot `h_j = b_j ⊕ b_{j+1}` (b_0 = 1,
//!    b_32 = 0, local XORs);
//! 2. the one-hot bits to Z_2^64 ([`b2a`]); locally `W = Σ h_j·2^{32−j}` and
//!    `C = Σ h_j·rsqrt_scale(j)` (public constants);
//! 3. `u = trunc(v·W, 16)` ∈ [0.25, 0.5) ([`mul`] + known-MSB truncation);
//! 4. PUMA's quartic guess by Horner: the first step is local (public leading coefficient),
//!    then three [`mul`] + truncation by 18;
//! 5. one Newton step: `y2 = trunc(y², 18)` ([`square`](crate::mpc::square)), `uy2 = trunc(u·y2, 18)`,
//!    `y = trunc(y·(3 − uy2), 19)`;
//! 6. `r = trunc(y·C, 28)`.
//!
//! Cost ([`rsqrt_cost`], exact): per value 31 DReLUs on Z_2^34 in lanes (≈ 31·290 bits), 32·64 bits of
//! B2A, 6 products on Z_2^64 (4160 bits each) and 8 truncations; only per LayerNorm row, so
//! ≈ 40 kbit per row. Rounds: about 40 (the steps are sequential).
use super::{known_msb_trunc_step, product_trunc, product_trunc_steps, total_cost, total_cots};
use crate::approx::layernorm::{rsqrt_scale, RSQRT_BITS, RSQRT_INIT};
use crate::mpc::b2a::{b2a, b2a_cost, b2a_cots};
use crate::mpc::drelu::{drelu_lanes, drelu_lanes_cost, drelu_lanes_cots, lanes_minus};
use crate::mpc::product::mul;
use crate::mpc::trunc::{trunc_cast, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{FixedPoint, Result, Ring};

const LIN: FixedPoint = FixedPoint::LINEAR;
/// Ring of the highest-bit comparisons (v − 2^j, |·| < 2^33).
const CMP_RING: Ring = Ring::new_const(34);
/// Truncations after the products, in order: u, Horner (4), Newton (3), result.
const SHIFTS: [u32; 9] = [16, 18, 18, 18, 18, 18, 18, 19, 28];

fn steps(n: usize) -> Vec<(Cost, CotDemand)> {
    let (r64, cmp) = (Ring::R64, CMP_RING);
    let lanes = RSQRT_BITS as usize - 1;
    let mut v = vec![
        (
            drelu_lanes_cost(n, lanes, cmp),
            drelu_lanes_cots(n, lanes, cmp),
        ),
        (
            b2a_cost(n * RSQRT_BITS as usize, r64, 0),
            b2a_cots(n * RSQRT_BITS as usize, r64, 0),
        ),
    ];
    v.extend(product_trunc_steps(n, false, SHIFTS[0]));
    v.push(known_msb_trunc_step(n, SHIFTS[1]));
    for &s in &SHIFTS[2..5] {
        v.extend(product_trunc_steps(n, false, s));
    }
    v.extend(product_trunc_steps(n, true, SHIFTS[5]));
    for &s in &SHIFTS[6..] {
        v.extend(product_trunc_steps(n, false, s));
    }
    v
}

/// Exact cost of [`rsqrt`] on n values (label `rsqrt`, the reservation excluded).
pub fn rsqrt_cost(n: usize) -> Cost {
    total_cost(steps(n))
}

/// COTs drawn by [`rsqrt`] on n values.
pub fn rsqrt_cots(n: usize) -> CotDemand {
    total_cots(steps(n))
}

/// Shares of 1/√v (20 fraction bits) for shares `v` (Z_2^64, 18 bits, 1 ≤ v < 2^32).
/// Label `rsqrt`.
pub fn rsqrt(sess: &mut Session, v: &[u64]) -> Result<Vec<u64>> {
    let (r64, cmp) = (Ring::R64, CMP_RING);
    let n = v.len();
    let server = sess.is_server();
    let bits = RSQRT_BITS as usize;
    // A public constant on the server's share only.
    let public = |c: u64| if server { c } else { 0 };
    sess.scope("rsqrt", |sess| {
        // 1. b_j = [v ≥ 2^j], j = 1..bits−1, per value (lanes).
        let ts: Vec<u64> = (1..bits).map(|j| 1u64 << j).collect();
        let reduced: Vec<u64> = v.iter().map(|&x| cmp.reduce(x)).collect();
        let shifted = lanes_minus(server, &reduced, &ts, cmp);
        let b = drelu_lanes(sess, &shifted, cmp, bits - 1)?;
        let bit = |j: usize, i: usize| -> bool {
            match j {
                0 => server,
                j if j >= bits => false,
                j => b[i * (bits - 1) + j - 1],
            }
        };
        let one_hot: Vec<bool> = (0..bits)
            .flat_map(|j| (0..n).map(move |i| (j, i)))
            .map(|(j, i)| bit(j, i) ^ bit(j + 1, i))
            .collect();
        // 2. h_j in Z_2^64; W and C as public combinations.
        let h = b2a(sess, &one_hot, r64, 0)?;
        let mut w = vec![0u64; n];
        let mut c = vec![0u64; n];
        for j in 0..bits {
            for i in 0..n {
                let hj = h[j * n + i];
                w[i] = r64.add(w[i], r64.mul(hj, 1 << (32 - j)));
                c[i] = r64.add(c[i], r64.mul(hj, rsqrt_scale(j as u32)));
            }
        }
        // 3. u ∈ [0.25, 0.5).
        let u = product_trunc(sess, v, Some(&w), SHIFTS[0])?;
        // 4. Horner: acc = c4·u + c3 locally, then three shared products.
        let wide = FixedPoint::new(r64, 2 * LIN.frac_bits())?;
        let c4 = LIN.encode(RSQRT_INIT[4])?;
        let c3 = public(wide.encode(RSQRT_INIT[3])?);
        let first: Vec<u64> = u.iter().map(|&x| r64.add(r64.mul(x, c4), c3)).collect();
        let mut acc = trunc_cast(sess, &first, r64, r64, SHIFTS[1], TruncKind::KnownMsb)?;
        for (k, &s) in (0..3).rev().zip(&SHIFTS[2..5]) {
            let ck = public(wide.encode(RSQRT_INIT[k])?);
            let p: Vec<u64> = mul(sess, &acc, &u, r64)?
                .into_iter()
                .map(|x| r64.add(x, ck))
                .collect();
            acc = trunc_cast(sess, &p, r64, r64, s, TruncKind::KnownMsb)?;
        }
        // 5. One Newton step.
        let y2 = product_trunc(sess, &acc, None, SHIFTS[5])?;
        let uy2 = product_trunc(sess, &u, Some(&y2), SHIFTS[6])?;
        let three = public(LIN.encode(3.0)?);
        let t: Vec<u64> = uy2.iter().map(|&x| r64.sub(three, x)).collect();
        let y = product_trunc(sess, &acc, Some(&t), SHIFTS[7])?;
        // 6. Back to 1/√v.
        product_trunc(sess, &y, Some(&c), SHIFTS[8])
    })
}
