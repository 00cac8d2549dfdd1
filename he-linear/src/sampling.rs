//! Samplers: ternary secrets, the discrete Gaussian (σ = 3.2), uniform residues (for `a`, drawn
//! directly in the NTT domain, where uniform is uniform), and wide uniform flooding noise.
//! All draw from a caller-supplied cryptographic generator (AES-CTR `AesPrg`).
use crate::noise::{GAUSS_TAIL_SIGMAS, SIGMA};
use crate::rns::RnsContext;
use rand_core::RngCore;
use std::sync::OnceLock;

/// Cumulative distribution of |e| for the discrete Gaussian, scaled to 2^64.
fn gauss_cdt() -> &'static [u64] {
    static CDT: OnceLock<Vec<u64>> = OnceLock::new();
    CDT.get_or_init(|| {
        let tail = (GAUSS_TAIL_SIGMAS * SIGMA).ceil() as i64;
        let rho = |k: i64| (-(k * k) as f64 / (2.0 * SIGMA * SIGMA)).exp();
        let total: f64 = (-tail..=tail).map(rho).sum();
        let mut acc = 0.0;
        (0..=tail)
            .map(|k| {
                acc += if k == 0 { rho(0) } else { 2.0 * rho(k) } / total;
                (acc.min(1.0) * 18446744073709551615.0) as u64
            })
            .collect()
    })
}

/// One discrete Gaussian sample (σ = 3.2, tail cut at 12.8σ).
#[inline]
pub fn gaussian(rng: &mut (impl RngCore + ?Sized)) -> i64 {
    let cdt = gauss_cdt();
    let u = rng.next_u64();
    let k = cdt.iter().position(|&c| u < c).unwrap_or(cdt.len() - 1) as i64;
    if k != 0 && rng.next_u32() & 1 == 1 {
        -k
    } else {
        k
    }
}

/// A ternary vector, each coefficient uniform in {−1, 0, 1}.
pub fn ternary(n: usize, rng: &mut (impl RngCore + ?Sized)) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            if b < 255 && out.len() < n {
                out.push((b % 3) as i64 - 1);
            }
        }
    }
    out
}

/// Fills `out` with uniform residues mod p by rejection on 31-bit draws.
pub fn uniform_mod(p: u32, out: &mut [u32], rng: &mut (impl RngCore + ?Sized)) {
    debug_assert!(p <= crate::rns::PRIME_BOUND);
    let mut buf = [0u32; 256];
    let mut filled = 0;
    while filled < out.len() {
        rng.fill_bytes(bytemuck::cast_slice_mut(&mut buf));
        for &w in &buf {
            let v = w & (crate::rns::PRIME_BOUND - 1);
            if v < p && filled < out.len() {
                out[filled] = v;
                filled += 1;
            }
        }
    }
}

/// Uniform flooding noise on [−2^bits, 2^bits) reduced into every prime of `ctx`, written to
/// `out[l]` (one residue per prime) for each of `count` coefficients (limb-major layout:
/// `out[l * count + i]`). Supports `bits` < 190.
pub fn flood_residues(
    ctx: &RnsContext,
    bits: u32,
    count: usize,
    out: &mut [u32],
    rng: &mut (impl RngCore + ?Sized),
) {
    assert!(bits < 190, "flooding width 2^{bits} is beyond the sampler");
    assert_eq!(out.len(), count * ctx.len());
    let words = (bits as usize + 1).div_ceil(64);
    let top_bits = (bits + 1) as usize - 64 * (words - 1);
    // 2^bits mod p, subtracted to center the draw.
    let mut f_limbs = [0u64; 4];
    f_limbs[bits as usize / 64] = 1u64 << (bits % 64);
    let offsets: Vec<u32> = ctx
        .moduli()
        .iter()
        .map(|m| m.from_limbs(&f_limbs))
        .collect();
    let mut limbs = [0u64; 4];
    for i in 0..count {
        for w in limbs.iter_mut().take(words) {
            *w = rng.next_u64();
        }
        if top_bits < 64 {
            limbs[words - 1] &= (1u64 << top_bits) - 1;
        }
        for (l, m) in ctx.moduli().iter().enumerate() {
            out[l * count + i] = m.sub(m.from_limbs(&limbs[..words]), offsets[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::{AesPrg, Seed};

    #[test]
    fn gaussian_has_the_right_moments() {
        let mut rng = AesPrg::new(Seed([3; 16]));
        let n = 400_000;
        let xs: Vec<i64> = (0..n).map(|_| gaussian(&mut rng)).collect();
        let mean = xs.iter().sum::<i64>() as f64 / n as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - SIGMA).abs() < 0.03, "sd {}", var.sqrt());
        assert!(xs.iter().all(|x| x.abs() <= 41));
    }

    #[test]
    fn ternary_and_uniform_are_balanced() {
        let mut rng = AesPrg::new(Seed([4; 16]));
        let t = ternary(300_000, &mut rng);
        for v in [-1, 0, 1] {
            let c = t.iter().filter(|&&x| x == v).count() as f64 / 300_000.0;
            assert!((c - 1.0 / 3.0).abs() < 0.005);
        }
        let p = 1073479681;
        let mut u = vec![0u32; 200_000];
        uniform_mod(p, &mut u, &mut rng);
        assert!(u.iter().all(|&x| x < p));
        let high = u.iter().filter(|&&x| x >= p / 2).count() as f64 / 200_000.0;
        assert!((high - 0.5).abs() < 0.01);
    }

    #[test]
    fn flood_is_centered_and_bounded() {
        use crate::rns::{ntt_primes, RnsContext, SmallCrt};
        let ctx = RnsContext::new(1024, &ntt_primes(1024, 4).unwrap()).unwrap();
        let crt = SmallCrt::new(ctx.moduli()).unwrap();
        let mut rng = AesPrg::new(Seed([5; 16]));
        let count = 20_000;
        let mut out = vec![0u32; count * 4];
        flood_residues(&ctx, 100, count, &mut out, &mut rng);
        let mut neg = 0;
        for i in 0..count {
            let res: Vec<u32> = (0..4).map(|l| out[l * count + i]).collect();
            let v = crt.reconstruct(&res);
            assert!((-(1i128 << 100)..(1i128 << 100)).contains(&v));
            neg += (v < 0) as usize;
        }
        assert!((neg as f64 / count as f64 - 0.5).abs() < 0.02);
    }
}
