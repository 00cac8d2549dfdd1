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
//! 3. five levels of products, each one [`mul`] call on every product of the level (Z_2^64)
//!    and one known-MSB truncation of those that need it, as the mirror lists them:
//!    `u = trunc(v·W, 16)`; `u2 = trunc(u·u, 18)` with `cu = trunc(C·u, 18)`; PUMA's quartic
//!    guess `y0 = trunc(u2·M + c0 + c1·u·2^18, 36)` (`M = c2 + c3·u + c4·u2`, local);
//!    `a = trunc(y0², 18)` and `b = trunc(cu·y0, 18)` with `c = C·y0` (kept at 48 bits);
//!    the Newton step with C folded in, `r = trunc(3c − a·b, 29)`.
//!
//! The levels are the round count's reason: PUMA's Horner guess, a Newton step
//! y(3 − u·y²)/2 and the final scaling by C take eight products in sequence; here the guess is
//! evaluated as c0 + c1·u + u²(c2 + c3·u + c4·u²) (two levels) and the Newton step as
//! (3·C·y0 − (C·u·y0)·y0²)/2 (two levels, C·u prepared beside u²).
//!
//! Cost ([`rsqrt_cost`], exact): per value 31 DReLUs on Z_2^34 in lanes (≈ 31·290 bits), 32·64
//! bits of B2A, 8 products on Z_2^64 (4160 bits each) and 7 truncations; only per LayerNorm
//! row. Rounds: 28 (were 42 with the eight sequential products).
use super::{known_msb_trunc_step, total_cost, total_cots};
use crate::approx::layernorm::{rsqrt_coefficients, rsqrt_scale, RSQRT_BITS};
use crate::mpc::b2a::{b2a, b2a_cost, b2a_cots};
use crate::mpc::drelu::{drelu_lanes, drelu_lanes_cost, drelu_lanes_cots, lanes_minus};
use crate::mpc::product::{mul, mul_cost, mul_cots};
use crate::mpc::trunc::{trunc_cast, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Result, Ring};

/// Ring of the highest-bit comparisons (v − 2^j, |·| < 2^33).
const CMP_RING: Ring = Ring::new_const(34);
/// A known-MSB truncation of n values by s (s ≤ 62) on Z_2^64.
fn trunc64(sess: &mut Session, v: &[u64], s: u32) -> Result<Vec<u64>> {
    trunc_cast(sess, v, Ring::R64, Ring::R64, s, TruncKind::KnownMsb)
}

/// The levels after the B2A: (products, of which truncated, shift).
const LEVELS: [(usize, usize, u32); 5] =
    [(1, 1, 16), (2, 2, 18), (1, 1, 36), (3, 2, 18), (1, 1, 29)];

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
    for (products, truncated, shift) in LEVELS {
        v.push((mul_cost(products * n, 1, r64), mul_cots(products * n, r64)));
        v.push(known_msb_trunc_step(truncated * n, shift));
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
        // 3. The five levels (the mirror's steps).
        let [c0, c1, c2, c3, c4] = rsqrt_coefficients();
        let shift = |l: usize| LEVELS[l].2;
        let p = mul(sess, v, &w, r64)?;
        let u = trunc64(sess, &p, shift(0))?;
        let p = mul(sess, &[&u[..], &c].concat(), &[&u[..], &u].concat(), r64)?;
        let t = trunc64(sess, &p, shift(1))?;
        let (u2, cu) = t.split_at(n);
        let m: Vec<u64> = (0..n)
            .map(|i| {
                let m = r64.add(r64.mul(c3, u[i]), r64.mul(c4, u2[i]));
                r64.add(m, public(c2))
            })
            .collect();
        let p: Vec<u64> = mul(sess, u2, &m, r64)?
            .into_iter()
            .zip(&u)
            .map(|(p, &ui)| r64.add(r64.add(p, r64.mul(c1, ui) << 18), public(c0)))
            .collect();
        let y0 = trunc64(sess, &p, shift(2))?;
        let p = mul(
            sess,
            &[&y0[..], cu, &c].concat(),
            &[&y0[..], &y0, &y0].concat(),
            r64,
        )?;
        let (ab, cy) = p.split_at(2 * n);
        let t = trunc64(sess, ab, shift(3))?;
        let (a, b) = t.split_at(n);
        let d = mul(sess, a, b, r64)?;
        let p: Vec<u64> = cy
            .iter()
            .zip(&d)
            .map(|(&cy, &d)| r64.sub(r64.mul(3, cy), d))
            .collect();
        trunc64(sess, &p, shift(4))
    })
}
