//! Statistical noise tests: measured noise against the formulas of `he_linear::noise`, and the
//! flooding test (the noise the key holder could see does not depend on the client's share).
//!
//! These use ℓ = 16, whose modulus (4 primes, 120 bits) lets the test compute the exact
//! integer noise c0 + c1·s − ⌊Δm⌉ mod q with 128-bit CRT; the formulas are the same for ℓ = 64.
use he_linear::noise;
use he_linear::params::HeParams;
use he_linear::response::rerandomize_and_flood;
use he_linear::rlwe::{encrypt_sk, phase, Ciphertext, PublicKey, SecretKey};
use he_linear::rns::SmallCrt;
use mpc_core::{AesPrg, Ring, Seed};

fn small_params() -> HeParams {
    let p = HeParams::builder()
        .plain_bits(16)
        .max_terms(256)
        .build()
        .unwrap();
    assert!(p.log_q() < 124.0, "{}", p.describe());
    p
}

/// Exact centered noise of every coefficient at `positions`: c0 + c1·s − round(q·m/t) mod q.
fn exact_noise(
    params: &HeParams,
    sk: &SecretKey,
    ct: &Ciphertext,
    m: &[u64],
    positions: &[usize],
) -> Vec<f64> {
    exact_noise_at_scale(params, sk, ct, m, positions, params.plain_bits())
}

/// [`exact_noise`] for messages at scale q/2^t_bits.
fn exact_noise_at_scale(
    params: &HeParams,
    sk: &SecretKey,
    ct: &Ciphertext,
    m: &[u64],
    positions: &[usize],
    t_bits: u32,
) -> Vec<f64> {
    let ctx = params.rns();
    let crt = SmallCrt::new(ctx.moduli()).unwrap();
    let q: u128 = ctx.moduli().iter().map(|m| m.p as u128).product();
    let c0 = phase(params, sk, ct);
    let n = params.n();
    let t = 1u128 << t_bits;
    positions
        .iter()
        .map(|&i| {
            let res: Vec<u32> = (0..ctx.len()).map(|l| c0.data()[l * n + i]).collect();
            let v = crt.reconstruct(&res);
            let mv = m[i] as u128;
            let dm = (q / t) * mv + ((q % t) * mv + t / 2) / t; // round(q·m/t)
            let mut d = (v.rem_euclid(q as i128) as u128 + q - dm % q) % q;
            if d > q / 2 {
                d = d.wrapping_sub(q);
            }
            d as i128 as f64
        })
        .collect()
}

/// Σ_μ x_μ·ct_μ (scalar × ciphertext), the COP accumulation, written plainly.
fn accumulate(params: &HeParams, xs: &[u64], cts: &[Ciphertext]) -> Ciphertext {
    let ctx = params.rns();
    let ring = Ring::new(params.plain_bits()).unwrap();
    let n = params.n();
    let mut acc = Ciphertext::zero(params);
    for (&x, ct) in xs.iter().zip(cts) {
        for (part, dst) in [(&ct.c0, &mut acc.c0), (&ct.c1, &mut acc.c1)] {
            let mut scaled = part.clone();
            for (l, md) in ctx.moduli().iter().enumerate() {
                let xl = md.from_i64(ring.to_signed(x));
                for v in &mut scaled.data_mut()[l * n..(l + 1) * n] {
                    *v = md.mul(*v, xl);
                }
            }
            dst.add_assign(ctx, &scaled);
        }
    }
    acc
}

struct Setup {
    params: HeParams,
    sk: SecretKey,
    pk: PublicKey,
    w: Vec<Vec<u64>>,
    cts: Vec<Ciphertext>,
}

fn setup(rows: usize, seed: u8) -> Setup {
    let params = small_params();
    let ring = Ring::new(params.plain_bits()).unwrap();
    let mut rng = AesPrg::new(Seed([seed; 16]));
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&params, &sk, &mut rng);
    let w: Vec<Vec<u64>> = (0..rows)
        .map(|_| (0..64).map(|_| ring.random(&mut rng)).collect())
        .collect();
    let cts = w
        .iter()
        .map(|row| {
            encrypt_sk(&params, &sk, row, Seed::from_rng(&mut rng), &mut rng)
                .unwrap()
                .expand(&params)
        })
        .collect();
    Setup {
        params,
        sk,
        pk,
        w,
        cts,
    }
}

fn plain_product(params: &HeParams, xs: &[u64], w: &[Vec<u64>]) -> Vec<u64> {
    let ring = Ring::new(params.plain_bits()).unwrap();
    let mut m = vec![0u64; params.n()];
    for (x, row) in xs.iter().zip(w) {
        for (i, &wi) in row.iter().enumerate() {
            m[i] = ring.add(m[i], ring.mul(*x, wi));
        }
    }
    m
}

fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn fresh_encryption_noise_has_sigma_3_2() {
    let s = setup(1, 1);
    let all: Vec<usize> = (0..s.params.n()).collect();
    let mut m = s.w[0].clone();
    m.resize(s.params.n(), 0);
    let e = exact_noise(&s.params, &s.sk, &s.cts[0], &m, &all);
    // Encoding rounding adds variance ≤ 1/4 (randomized rounding of a fractional part).
    let sd = std_dev(&e);
    assert!(
        sd > noise::SIGMA * 0.97 && sd < (noise::SIGMA.powi(2) + 0.25).sqrt() * 1.03,
        "{sd}"
    );
}

#[test]
fn accumulated_noise_matches_the_formula() {
    let rows = 200;
    let s = setup(rows, 2);
    let ring = Ring::new(s.params.plain_bits()).unwrap();
    let mut rng = AesPrg::new(Seed([3; 16]));
    let mut samples = Vec::new();
    for _ in 0..4 {
        let xs: Vec<u64> = (0..rows).map(|_| ring.random(&mut rng)).collect();
        let acc = accumulate(&s.params, &xs, &s.cts);
        let m = plain_product(&s.params, &xs, &s.w);
        samples.extend(exact_noise(
            &s.params,
            &s.sk,
            &acc,
            &m,
            &(0..64).collect::<Vec<_>>(),
        ));
    }
    // Uniform x: E[x²] = 2^{2(ℓ−1)}/3; per term variance σ² + Var ε with Var ε ≤ 1/4.
    let half = (1u64 << (s.params.plain_bits() - 1)) as f64;
    let lo = (rows as f64 * half * half / 3.0 * noise::SIGMA.powi(2)).sqrt();
    let hi = (rows as f64 * half * half / 3.0 * (noise::SIGMA.powi(2) + 0.25)).sqrt();
    let sd = std_dev(&samples);
    assert!(
        sd > lo * 0.9 && sd < hi * 1.1,
        "sd {sd:.3e} not in [{lo:.3e}, {hi:.3e}]"
    );
    // The tail bound used for flooding holds with room.
    let bound = noise::accumulation_log2(s.params.plain_bits(), rows as u64, 60.0).exp2();
    let max = samples.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    assert!(max < bound, "max {max:.3e} ≥ bound {bound:.3e}");
}

/// Two-sample Kolmogorov–Smirnov statistic.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            i += 1;
        } else {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn flooded_noise_does_not_depend_on_the_clients_share() {
    let rows = 64;
    let s = setup(rows, 4);
    let ring = Ring::new(s.params.plain_bits()).unwrap();
    let positions: Vec<u32> = (0..64).collect();
    let pos_usize: Vec<usize> = (0..64).collect();
    let mut rng = AesPrg::new(Seed([5; 16]));
    // Two very different client shares: all zero, and all the most negative value.
    let shares = [vec![0u64; rows], vec![1u64 << (ring.bits() - 1); rows]];
    let mut before = [Vec::new(), Vec::new()];
    let mut after = [Vec::new(), Vec::new()];
    for _trial in 0..40 {
        for (which, xs) in shares.iter().enumerate() {
            let acc = accumulate(&s.params, xs, &s.cts);
            let m = plain_product(&s.params, xs, &s.w);
            before[which].extend(exact_noise(&s.params, &s.sk, &acc, &m, &pos_usize));
            let sealed =
                rerandomize_and_flood(&s.params, &s.pk, acc, &positions, &mut rng).unwrap();
            after[which].extend(exact_noise(&s.params, &s.sk, &sealed, &m, &pos_usize));
        }
    }
    let n = after[0].len() as f64;
    // KS critical value at α = 10^-6 for two samples of n.
    let crit = (-(1e-6f64 / 2.0).ln() / 2.0).sqrt() * (2.0 / n).sqrt();
    // Control: without flooding the key holder could tell the two shares apart.
    let d_before = ks(&before[0], &before[1]);
    assert!(d_before > 0.5, "control failed: D = {d_before}");
    // With flooding the two noise distributions are indistinguishable.
    let d_after = ks(&after[0], &after[1]);
    assert!(d_after < crit, "D = {d_after} ≥ {crit}");
    // And they are the uniform flood: standard deviation 2^F/√3.
    let want = (s.params.flood_bits() as f64).exp2() / 3f64.sqrt();
    for a in &after {
        let sd = std_dev(a);
        assert!((sd / want - 1.0).abs() < 0.05, "sd {sd:.3e} vs {want:.3e}");
    }
}

/// Packing R levels multiplies the noise of every output coefficient by exactly 2^R (the
/// automorphisms fix or negate output positions, and each input's garbage cancels), plus the
/// key switches: the bound `HeParams` budgets (2^R, not the 4^R of a triangle inequality over
/// all coefficients).
#[test]
fn packing_doubles_the_output_noise_per_level() {
    use he_linear::galois::GaloisKeys;
    let levels = 5u32;
    // ℓ = 8, 2^13 revealed coefficients and one-prime digits keep q within the 128-bit CRT of
    // `exact_noise` (the key switches' 2^43 dominate the budget here).
    let params = HeParams::builder()
        .plain_bits(8)
        .revealed_log2(13)
        .max_terms(256)
        .pack_levels(levels)
        .keyswitch_digit_primes(1)
        .build()
        .unwrap();
    assert!(params.log_q() < 124.0, "{}", params.describe());
    let mut rng = AesPrg::new(Seed([21; 16]));
    let sk = SecretKey::generate(&params, &mut rng);
    let keys = GaloisKeys::generate(&params, &sk, &mut rng);
    let (n, stride) = (params.n(), 1usize << levels);
    let ring = Ring::new(8).unwrap();
    let mut inputs = Vec::new();
    let mut in_noise = Vec::new();
    let mut want = vec![0u64; n];
    for i in 0..stride {
        let m: Vec<u64> = (0..n as u64)
            .map(|k| ring.reduce(k.wrapping_mul(0x9E37_79B9) ^ i as u64))
            .collect();
        for p in (0..n).step_by(stride) {
            want[p + i] = m[p];
        }
        let ct = encrypt_sk(&params, &sk, &m, Seed::from_rng(&mut rng), &mut rng)
            .unwrap()
            .expand(&params);
        let valid: Vec<usize> = (0..n).step_by(stride).collect();
        // At scale q/2^{ℓ+R} the message is the signed view of m, lifted to Z_2^{ℓ+R}.
        let wide = Ring::new(8 + levels).unwrap();
        let lifted: Vec<u64> = m
            .iter()
            .map(|&v| wide.from_signed(ring.to_signed(v)))
            .collect();
        in_noise.push(exact_noise_at_scale(
            &params,
            &sk,
            &ct,
            &lifted,
            &valid,
            8 + levels,
        ));
        inputs.push(Some(ct));
    }
    let packed = keys.pack(&params, inputs, levels).unwrap();
    let all: Vec<usize> = (0..n).collect();
    let out = exact_noise(&params, &sk, &packed, &want, &all);
    let fail_bits = (params.stat_bits() + 13) as f64;
    // Key switches (2^R − 1 of them on any path, each scaled by at most 2^{R−1}) and the
    // rounding of 2^R·⌊Δ'm⌉ against ⌊Δm⌉ (at most 2^R).
    let slack = (levels as f64).exp2()
        * (noise::keyswitch_log2(n, params.rns().len(), 30, fail_bits).exp2() + 1.0);
    let mut worst: f64 = 0.0;
    for p in (0..n).step_by(stride) {
        for (i, e) in in_noise.iter().enumerate() {
            let scaled = e[p / stride] * (levels as f64).exp2();
            let d = (out[p + i] - scaled).abs();
            worst = worst.max(d);
            assert!(
                d <= slack,
                "position {}: {} vs 2^R·{}",
                p + i,
                out[p + i],
                e[p / stride]
            );
        }
    }
    println!("max |out − 2^R·in| = {worst:.3e} (allowed {slack:.3e})");
}
