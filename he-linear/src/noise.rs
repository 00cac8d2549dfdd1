//! Every noise formula of the crate, in one place (all bounds as log2 of an absolute value).
//!
//! Notation: q the RNS modulus, t = 2^ℓ the plaintext modulus, N the ring degree, σ = 3.2 the
//! error width, δ = 2^-`fail_bits` the probability that a bound is exceeded.
//!
//! * **Accumulated noise** of Σ_{i<M} x_i·ct_i where |x_i| ≤ 2^{ℓ−1} (any ring element in its
//!   signed view) and each ct_i carries a fresh Gaussian error e_i plus the randomized rounding
//!   error ε_i ∈ (−1, 1) of the encoding Δ·w: both sums are sub-Gaussian with variance proxy at
//!   most 2^{2(ℓ−1)}·M·σ² and 2^{2(ℓ−1)}·M, so by the Gaussian/Hoeffding tail
//!   |Σ x_i(e_i + ε_i)| ≤ 2^{ℓ−1}·√M·z·(σ + 1), z = √(2 ln(2/δ)).
//! * **Flooding**: uniform on [−F, F) hides any shift |d| ≤ B at statistical distance B/(2F)
//!   per coefficient; over the K coefficients revealed under one key in one inference the
//!   distance is at most K·B/(2F), so F = B·2^{κ}·K gives 2^{−(κ+1)}, and the tail bounds (each
//!   failing with probability 2^{−(κ+1)}/K) the other 2^{−(κ+1)}: 2^{−κ} per inference (κ = 40).
//! * **Re-randomization** by a public-key encryption of zero (p0·u + e0, p1·u + e1), u ternary:
//!   adds e_pk·u + e0 + e1·s, each coefficient a sum of ≤ 2N+1 terms of width σ.
//! * **Switching to 2^b** (rounding c·2^b/q): a c0 coefficient gets |ρ| ≤ 1/2 units of 2^{−b0}
//!   (torus), and c1's rounding errors reach the message through s: |Σ s_j ρ_j| ≤ √(N·ln(2/δ)/2)
//!   units of 2^{−b1} (Hoeffding over at most N nonzero ternary s_j).
//! * **Key switching** (`galois`): D digits d_j < 2^b of c1 (b = 31 per prime in the digit)
//!   times fresh key errors e_j: |Σ_j d_j e_j| ≤ 2^b·√(D·N)·σ·z.
//! * **Packing** R levels (`galois`): at an output position a merge returns exactly twice one
//!   input's coefficient (the automorphism fixes or negates output positions, and the other
//!   input's garbage there cancels between u and τ(v)) plus one key switch, so the flooding
//!   covers 2^R·(accumulated + key-switch noise).
//! * **Decryption** rounds to the nearest multiple of 2^{−ℓ} on the torus, correct while the
//!   total torus noise is below 2^{−(ℓ+1)}.

/// Standard deviation of the RLWE error.
pub const SIGMA: f64 = 3.2;

/// Tail cut of the discrete Gaussian sampler, in multiples of σ (mass beyond: < 2^-100).
pub const GAUSS_TAIL_SIGMAS: f64 = 12.8;

/// z with P(|X| > z·σ) ≤ 2^-fail_bits for a sub-Gaussian X of variance proxy σ².
pub fn tail_z(fail_bits: f64) -> f64 {
    (2.0 * std::f64::consts::LN_2 * (fail_bits + 1.0)).sqrt()
}

/// log2 of the bound on Σ_{i<terms} x_i (e_i + ε_i) with |x_i| ≤ 2^{plain_bits−1}.
pub fn accumulation_log2(plain_bits: u32, terms: u64, fail_bits: f64) -> f64 {
    (plain_bits as f64 - 1.0)
        + 0.5 * (terms.max(1) as f64).log2()
        + (tail_z(fail_bits) * (SIGMA + 1.0)).log2()
}

/// log2 of the flooding width F hiding a shift of 2^acc_log2 at distance 2^-(stat_bits+1) over
/// 2^revealed_log2 coefficients.
pub fn flood_log2(acc_log2: f64, stat_bits: u32, revealed_log2: u32) -> u32 {
    (acc_log2 + stat_bits as f64 + revealed_log2 as f64).ceil() as u32
}

/// log2 of the bound on the re-randomization noise e_pk·u + e0 + e1·s.
pub fn rerandomize_log2(n: usize, fail_bits: f64) -> f64 {
    (tail_z(fail_bits) * SIGMA * ((2 * n + 1) as f64).sqrt()).log2()
}

/// log2 of the bound on Σ_j s_j ρ_j for c1's switching rounding (units of the c1 step).
pub fn c1_rounding_log2(n: usize, fail_bits: f64) -> f64 {
    (n as f64 * std::f64::consts::LN_2 * (fail_bits + 1.0) / 2.0)
        .sqrt()
        .log2()
}

/// log2 of the bound on a key switch's added noise Σ_j d_j·e_j: `digits` digits below
/// 2^digit_bits, each times a fresh Gaussian key error, summed over N coefficients.
pub fn keyswitch_log2(n: usize, digits: usize, digit_bits: u32, fail_bits: f64) -> f64 {
    digit_bits as f64 + 0.5 * ((n * digits) as f64).log2() + (tail_z(fail_bits) * SIGMA).log2()
}

/// log2(2^a + 2^b).
pub fn log2_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (1.0 + (lo - hi).exp2()).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bounds_are_monotone_and_sane() {
        assert!((tail_z(40.0) - 7.49).abs() < 0.05);
        assert!(accumulation_log2(64, 4096, 60.0) > accumulation_log2(64, 1024, 60.0));
        assert!((log2_add(3.0, 3.0) - 4.0).abs() < 1e-12);
        assert_eq!(flood_log2(70.2, 40, 20), 131);
    }
}
