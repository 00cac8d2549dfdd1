//! The LayerNorm plan and its plaintext mirror: the normalisation ŷ = (x − mean)/√(var + ε) of
//! every row, step by step as the secure protocol ([`crate::functions::layernorm()`]) computes it.
//! The affine part γ·ŷ + β is not here: it is folded into the linear layer that consumes the
//! LayerNorm (`[diag(γ) | diag(γ)·W]` as one COP, β into its bias), where it costs nothing.
//!
//! Steps (activations in Z_2^64 with 18 fraction bits; every truncation is a floor here and
//! may be one less in the secure run):
//! 1. `mean = trunc(Σx · C_n, 30)` with `C_n = round(2^30 / n)` (public);
//! 2. `v = x − mean`;
//! 3. the variance from v at [`VAR_FRAC`] = 6 fraction bits: `vs = floor(v / 2^12)`, squared in
//!    [`SQUARE_RING`] = Z_2^38 and summed over the row (12 fraction bits), up-cast to Z_2^64,
//!    `var = trunc(Σvs² · C_n, 30) · 2^6 + ε` (18 fraction bits; ε at least one unit);
//! 4. `r = rsqrt(var)` with [`R_FRAC`] = 20 fraction bits ([`rsqrt`]);
//! 5. `ŷ = floor((floor(v / 2^8) · r) / 2^12)`: the product of v at 10 fraction bits and r at 20
//!    in [`PRODUCT_RING`] = Z_2^38, truncated to 18 bits and up-cast to Z_2^64.
//!
//! Ranges (the secure run's known-MSB truncations need them): the row's standard deviation
//! below 2^7 (`Σ vs² < 2^36`), and var < 2^14 so that its highest bit is one of the
//! [`RSQRT_BITS`] candidates; |ŷ| < 64 (true for rows of up to 4096 values: |ŷ| ≤ √n).
use super::fixed::{trunc, PUBLIC_FRAC_BITS};
use mpc_core::{FixedPoint, Ring};

const LIN: FixedPoint = FixedPoint::LINEAR;

/// Fraction bits of v in the variance.
pub const VAR_FRAC: u32 = 6;
/// Ring of the squares and their row sum.
pub const SQUARE_RING: Ring = Ring::new_const(38);
/// Bits of vs the secure square reads (`square_narrow`: exact for |vs| < 2^{k−2} = 2^18,
/// which the range Σvs² < 2^36 implies).
pub const SQUARE_INPUT_BITS: u32 = 20;
/// Fraction bits of v in the normalising product.
pub const PRODUCT_V_FRAC: u32 = 10;
/// Fraction bits of the reciprocal square root.
pub const R_FRAC: u32 = 20;
/// Ring of the normalising product.
pub const PRODUCT_RING: Ring = Ring::new_const(38);
/// Candidate positions of the variance's highest bit (var at 18 fraction bits is below 2^32).
pub const RSQRT_BITS: u32 = 32;

/// PUMA's initial guess of 1/√u on [0.25, 0.5), constant term first.
pub const RSQRT_INIT: [f64; 5] = [
    4.14285016,
    -15.47994394,
    38.4714796,
    -49.86605845,
    26.02942339,
];

/// `round(2^30 / n)`, the public multiplier of a mean over n values.
pub fn mean_multiplier(n: usize) -> u64 {
    ((PUBLIC_FRAC_BITS as f64).exp2() / n as f64).round() as u64
}

/// ε at 18 fraction bits, at least one unit (so that the variance is positive).
pub fn epsilon(eps: f64) -> u64 {
    LIN.encode(eps).unwrap_or(0).max(1)
}

/// `round(2^q · √2^r · 2^30)` for the shift `s = 2q + r` of candidate bit `j` (s = 16 − j):
/// the factor that turns 1/√u back into 1/√var, at 30 fraction bits.
pub fn rsqrt_scale(j: u32) -> u64 {
    let s = 16 - j as i32;
    let (q, r) = (s.div_euclid(2), s.rem_euclid(2));
    let f = (q as f64).exp2()
        * if r == 1 {
            std::f64::consts::SQRT_2
        } else {
            1.0
        };
    (f * (PUBLIC_FRAC_BITS as f64).exp2()).round() as u64
}

/// 1/√v for v ≥ 1 at 18 fraction bits (v < 2^[`RSQRT_BITS`]), result at [`R_FRAC`] bits, in
/// five product levels (each a round of the secure run, [`crate::functions::rsqrt()`]):
/// k = highest set bit, `W = 2^{32−k}`, `C = rsqrt_scale(k)` (30 bits);
/// 1. `u = trunc(v·W, 16)` ∈ [0.25, 0.5) at 18 bits;
/// 2. `u2 = trunc(u·u, 18)` and `cu = trunc(C·u, 18)` (30 bits);
/// 3. PUMA's quartic guess as `y0 = trunc(u2·M + c0 + c1·u·2^18, 36)` with
///    `M = c2 + c3·u + c4·u2` (36 bits): y0 = c0 + c1·u + u²(c2 + c3·u + c4·u²);
/// 4. `a = trunc(y0², 18)`, `b = trunc(cu·y0, 18)` (30 bits) and `c = C·y0` (48 bits, not
///    truncated);
/// 5. the Newton step y0(3 − u·y0²)/2 scaled by C: `r = trunc(3c − a·b, 29)` (a·b =
///    C·u·y0³ at 48 bits).
pub fn rsqrt(v: u64) -> u64 {
    let r = Ring::R64;
    let k = 63 - v.max(1).leading_zeros();
    let c = rsqrt_scale(k);
    let [c0, c1, c2, c3, c4] = rsqrt_coefficients();
    let u = trunc(r, r.mul(v, 1u64 << (32 - k)), 16);
    let u2 = trunc(r, r.mul(u, u), 18);
    let cu = trunc(r, r.mul(c, u), 18);
    let m = r.add(r.add(c2, r.mul(c3, u)), r.mul(c4, u2));
    let low = r.add(c0, r.mul(c1, u) << 18);
    let y0 = trunc(r, r.add(r.mul(u2, m), low), 36);
    let a = trunc(r, r.mul(y0, y0), 18);
    let b = trunc(r, r.mul(cu, y0), 18);
    trunc(r, r.sub(r.mul(3, r.mul(c, y0)), r.mul(a, b)), 29)
}

/// [`RSQRT_INIT`] as the evaluation reads it: c0 at 54 fraction bits, c2 at 36, c1, c3 and c4
/// at 18 (Z_2^64 elements).
pub fn rsqrt_coefficients() -> [u64; 5] {
    let enc = |c: f64, bits: u32| {
        FixedPoint::new(Ring::R64, bits)
            .and_then(|fp| fp.encode(c))
            .expect("small constant")
    };
    let c = RSQRT_INIT;
    [
        enc(c[0], 54),
        enc(c[1], 18),
        enc(c[2], 36),
        enc(c[3], 18),
        enc(c[4], 18),
    ]
}

/// The normalised row ŷ (18 fraction bits) of `row` (Z_2^64, 18 fraction bits), in place.
pub fn normalize_row(row: &mut [u64], eps: f64) {
    normalize_row_with(row, eps, true)
}

/// [`normalize_row`] centred on the mean (LayerNorm) or not (`center` false: RMSNorm, the
/// mean taken as 0).
pub fn normalize_row_with(row: &mut [u64], eps: f64, center: bool) {
    let r = Ring::R64;
    let (sq_ring, prod) = (SQUARE_RING, PRODUCT_RING);
    let f = LIN.frac_bits();
    let c_n = mean_multiplier(row.len());
    let sum = row.iter().fold(0u64, |a, &x| r.add(a, x));
    let mean = if center {
        trunc(r, r.mul(sum, c_n), PUBLIC_FRAC_BITS)
    } else {
        0
    };
    let mut sq = 0u64;
    for v in row.iter_mut() {
        *v = r.sub(*v, mean);
        let vs = sq_ring.reduce(trunc(r, *v, f - VAR_FRAC));
        sq = sq_ring.add(sq, sq_ring.mul(vs, vs));
    }
    let sq = r.from_signed(sq_ring.to_signed(sq));
    let var = r.add(
        trunc(r, r.mul(sq, c_n), PUBLIC_FRAC_BITS) << (f - 2 * VAR_FRAC),
        epsilon(eps),
    );
    let inv = prod.reduce(rsqrt(var));
    for v in row.iter_mut() {
        let vp = prod.reduce(trunc(r, *v, f - PRODUCT_V_FRAC));
        let y = prod.mul(vp, inv);
        *v = r.from_signed(prod.to_signed(y) >> (PRODUCT_V_FRAC + R_FRAC - f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsqrt_is_accurate_over_the_candidate_range() {
        for v in [
            1u64,
            2,
            3,
            1000,
            1 << 16,
            (1 << 16) + 1,
            3 << 17,
            123_456_789,
            (1 << 32) - 1,
        ] {
            let want = 1.0 / (v as f64 / (1u64 << 18) as f64).sqrt();
            let got = rsqrt(v) as f64 / (R_FRAC as f64).exp2();
            assert!(
                (got - want).abs() <= 2e-5 * want + 2.0 / (R_FRAC as f64).exp2(),
                "rsqrt({v}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn normalized_rows_have_zero_mean_and_unit_variance() {
        for (scale, n) in [(0.3, 768), (4.0, 768), (40.0, 384), (1.0, 7)] {
            let xs: Vec<f64> = (0..n)
                .map(|i| scale * ((i * 7919 % 1000) as f64 / 500.0 - 1.0) + 0.25)
                .collect();
            let mut row: Vec<u64> = xs.iter().map(|&x| LIN.encode(x).unwrap()).collect();
            normalize_row(&mut row, 1e-12);
            let mean = xs.iter().sum::<f64>() / n as f64;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            for (&g, &x) in row.iter().zip(&xs) {
                let want = (x - mean) / sd;
                let got = LIN.decode(g);
                // v at 10 bits (and 6 bits in the variance): an error of ~2^-10/sd absolute.
                assert!(
                    (got - want).abs() < 2e-3 / sd.min(1.0) + 2e-4 * want.abs(),
                    "scale {scale}: {got} vs {want}"
                );
            }
        }
    }
}
