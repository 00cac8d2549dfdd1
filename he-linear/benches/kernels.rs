//! Criterion benches of the HE kernels: NTT, the COP scalar×ciphertext accumulation and the
//! NTT-domain dot product (every SIMD path the CPU runs, side by side), seeded encryption,
//! and opening a response. Throughput is printed in elements per second.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use he_linear::kernel::{accumulate_group_with, to_panels, KernelPath, TILE};
use he_linear::params::HeParams;
use he_linear::poly::{Repr, RnsPoly};
use he_linear::response::Window;
use he_linear::rlwe::{encrypt_sk, PublicKey, SecretKey};
use he_linear::simd;
use he_linear::{response, rlwe};
use mpc_core::{AesPrg, Seed};
use rand_core::RngCore;
use std::hint::black_box;

fn bench_ntt(c: &mut Criterion) {
    let params = HeParams::default_params().unwrap();
    let ctx = params.rns();
    let n = params.n();
    let mut limb: Vec<u32> = (0..n as u32).map(|i| i % ctx.moduli()[0].p).collect();
    let mut g = c.benchmark_group("ntt");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("forward N=8192 (one 31-bit prime)", |b| {
        b.iter(|| ctx.ntt(0, black_box(&mut limb)))
    });
    g.bench_function("inverse N=8192 (one 31-bit prime)", |b| {
        b.iter(|| ctx.intt(0, black_box(&mut limb)))
    });
    g.finish();
}

fn bench_accumulate(c: &mut Criterion) {
    let params = HeParams::default_params().unwrap();
    let m = &params.rns().moduli()[0];
    let n = params.n();
    let mut rng = AesPrg::new(Seed([1; 16]));
    let mut g = c.benchmark_group("scalar_x_ct_accumulate");
    // BERT-base's shapes, 128 tokens: the kernel's rows are the ciphertexts of a column chunk,
    // ⌈m/P⌉, and its tokens the k·P virtual tokens. One row per ciphertext (P = 1, the
    // `online` packing): m = 768 (Linear_qkv, _o, _h1) and 3072 (Linear_h2); the compact
    // packing of Linear_h2 (P = 10: 308 rows, 1280 virtual tokens). Every path the CPU runs side
    // by side (avx2 is the kernel before AVX-512, 2026-12-07).
    for (k, rows) in [(128usize, 768usize), (128, 3072), (1280, 308)] {
        // One 1024-column slice of a limb keeps the bench short; the kernel is column-blocked.
        let n = n / 8;
        let w: Vec<u32> = (0..rows * n).map(|_| rng.next_u32() % m.p).collect();
        let mut panels = vec![0u32; rows * n];
        to_panels(&w, rows, n, &mut panels);
        let k_pad = k.div_ceil(TILE) * TILE;
        let x: Vec<u32> = (0..rows * k_pad).map(|_| rng.next_u32() % m.p).collect();
        let mut out = vec![0u32; k * n];
        // One element = one 31-bit multiply-accumulate.
        g.throughput(Throughput::Elements((k * rows * n) as u64));
        for path in KernelPath::available() {
            g.bench_with_input(
                BenchmarkId::new(
                    format!("mul-acc one limb, {}", path.name()),
                    format!("k={k} m={rows} N={n}"),
                ),
                &(),
                |b, _| {
                    b.iter(|| accumulate_group_with(&panels, &x, k, m, black_box(&mut out), path))
                },
            );
        }
    }
    g.finish();
}

fn bench_dot(c: &mut Criterion) {
    let params = HeParams::default_params().unwrap();
    let ctx = params.rns();
    let mut rng = AesPrg::new(Seed([4; 16]));
    let mut g = c.benchmark_group("ntt_dot_product");
    // SIP's products sum a row of ciphertext parts times plaintexts; a Galois key switch sums
    // its digits (a few terms).
    for terms in [4usize, 24] {
        let polys: Vec<RnsPoly> = (0..2 * terms)
            .map(|_| {
                let data = ctx
                    .moduli()
                    .iter()
                    .flat_map(|md| {
                        (0..ctx.n())
                            .map(|_| rng.next_u32() % md.p)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                RnsPoly::from_residues(ctx, data, Repr::Ntt).unwrap()
            })
            .collect();
        let (a, b): (Vec<&RnsPoly>, Vec<&RnsPoly>) = (
            polys[..terms].iter().collect(),
            polys[terms..].iter().collect(),
        );
        // One element = one coefficient product (all limbs).
        g.throughput(Throughput::Elements((terms * ctx.n() * ctx.len()) as u64));
        for path in KernelPath::available() {
            g.bench_with_input(
                BenchmarkId::new(
                    format!("dot, {}", path.name()),
                    format!("{terms} terms, N=8192, 7 primes"),
                ),
                &(),
                |bch, _| bch.iter(|| RnsPoly::dot_with(ctx, black_box(&a), &b, path)),
            );
        }
    }
    g.finish();
}

fn bench_reductions(c: &mut Criterion) {
    let params = HeParams::default_params().unwrap();
    let m = &params.rns().moduli()[0];
    let n = params.n();
    let mut rng = AesPrg::new(Seed([5; 16]));
    let x: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let a: Vec<u32> = (0..n).map(|_| rng.next_u32() % m.p).collect();
    let b: Vec<u32> = (0..n).map(|_| rng.next_u32() % m.p).collect();
    let signed: Vec<i64> = (0..n).map(|_| rng.next_u64() as i64 >> 40).collect();
    let mut out = vec![0u32; n];
    let mut g = c.benchmark_group("mod_p");
    g.throughput(Throughput::Elements(n as u64));
    for path in KernelPath::available() {
        g.bench_function(
            format!("u64 mod p, one limb N=8192, {}", path.name()),
            |bch| bch.iter(|| simd::reduce_into(m, black_box(&x), &mut out, path)),
        );
        g.bench_function(
            format!("a+b mod p, one limb N=8192, {}", path.name()),
            |bch| {
                bch.iter(|| {
                    out.copy_from_slice(&a);
                    simd::zip_map(black_box(&mut out), &b, |u, v| m.add(u, v), path)
                })
            },
        );
        g.bench_function(
            format!("i64 mod p, one limb N=8192, {}", path.name()),
            |bch| bch.iter(|| simd::reduce_signed_into(m, black_box(&signed), &mut out, path)),
        );
        g.bench_function(
            format!("a·b mod p, one limb N=8192, {}", path.name()),
            |bch| {
                bch.iter(|| {
                    out.copy_from_slice(&a);
                    simd::mul_assign_mod(m, black_box(&mut out), &b, path)
                })
            },
        );
    }
    g.finish();
}

fn bench_encrypt_open(c: &mut Criterion) {
    let params = HeParams::default_params().unwrap();
    let mut rng = AesPrg::new(Seed([2; 16]));
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&params, &sk, &mut rng);
    let msg: Vec<u64> = (0..params.n() as u64).collect();
    let mut g = c.benchmark_group("rlwe");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encrypt_sk seeded (N=8192, 7 primes)", |b| {
        b.iter(|| encrypt_sk(&params, &sk, &msg, Seed([3; 16]), &mut rng).unwrap())
    });
    let ct = encrypt_sk(&params, &sk, &msg, Seed([3; 16]), &mut rng)
        .unwrap()
        .expand(&params);
    let positions: Vec<u32> = (0..params.n() as u32).collect();
    let mask = vec![0u64; params.n()];
    let full = Window::full(&params);
    let mut bytes = Vec::new();
    response::seal(
        &params,
        &pk,
        ct.clone(),
        &positions,
        &mask,
        full,
        &mut rng,
        &mut bytes,
    )
    .unwrap();
    g.bench_function("seal response (flood, re-randomize, switch)", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            response::seal(
                &params,
                &pk,
                ct.clone(),
                &positions,
                &mask,
                full,
                &mut rng,
                &mut out,
            )
            .unwrap();
            out
        })
    });
    g.bench_function("open response (decrypt to shares)", |b| {
        b.iter(|| response::open(&params, &sk, black_box(&bytes), &positions, full).unwrap())
    });
    g.bench_function("decrypt_full reference", |b| {
        b.iter(|| rlwe::decrypt_full(&params, &sk, black_box(&ct)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_ntt, bench_accumulate, bench_dot, bench_reductions, bench_encrypt_open
}
criterion_main!(benches);
