//! Criterion benches of the OT hot loops, per layer: half-tree expansion of one Ferret bin
//! (sender and receiver), the LPN rows of one bin against the main reserve and against an
//! input in L1, the latency of one random read of the reserve, the IKNP transpose, and the
//! tweakable CCR hash. Throughput is in blocks (COTs) per second.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mpc_core::AesPrg;
use ot_nonlinear::aes_hash::tccr_blocks;
use ot_nonlinear::block::huge_vec;
use ot_nonlinear::ferret::{lpn, spcot, LpnParams};
use ot_nonlinear::transpose::transpose;
use ot_nonlinear::Block;
use std::hint::black_box;

fn bench_ferret(c: &mut Criterion) {
    let p = LpnParams::MAIN;
    let bin = 1usize << p.log_bin;
    let mut prg = AesPrg::from_block(Block(1));
    let delta = prg.block().with_lsb(true);
    let q: Vec<Block> = (0..p.log_bin)
        .map(|_| prg.block().with_lsb(false))
        .collect();
    let t: Vec<Block> = q
        .iter()
        .map(|&q| q ^ delta.select(prg.block().lsb()))
        .collect();
    let mut leaves = vec![Block::ZERO; bin];
    let mut out = vec![Block::ZERO; bin];
    let mut corr = vec![Block::ZERO; p.log_bin];
    let mut g = c.benchmark_group("ferret");
    g.throughput(Throughput::Elements(bin as u64));
    g.bench_function("half-tree bin 2^13, sender", |b| {
        b.iter(|| spcot::send_tree(delta, Block(7), &q, black_box(&mut leaves), &mut corr))
    });
    g.bench_function("half-tree bin 2^13, receiver", |b| {
        b.iter(|| spcot::recv_tree(&t, &corr, black_box(&mut leaves)))
    });
    let mut reserve = huge_vec(p.k);
    prg.fill_blocks(&mut reserve);
    let mut matrix = AesPrg::from_block(Block(3));
    let mut row = 0;
    g.bench_function("LPN rows of one bin, main set", |b| {
        b.iter(|| {
            lpn::encode(&mut matrix, row, &reserve, &leaves, black_box(&mut out));
            row = (row + bin) % p.n;
        })
    });
    // The same rows against a 16 KB input (in L1): what the encoder costs when no read
    // misses, i.e. the compute floor under the main set's memory-bound rate above.
    let small = &reserve[..1024];
    g.bench_function("LPN rows of one bin, 16 KB input (compute floor)", |b| {
        b.iter(|| {
            lpn::encode(&mut matrix, row, small, &leaves, black_box(&mut out));
            row = (row + bin) % p.n;
        })
    });
    g.finish();
    bench_reserve_latency(c, p.k);
}

/// One read of the reserve at a time (each address depends on the previous read): the
/// latency of a random read of a k-block reserve, against one that fits in L2. The LPN's
/// rate is bounded by this latency times the reads the core keeps in flight.
fn bench_reserve_latency(c: &mut Criterion, k: usize) {
    let mut g = c.benchmark_group("reserve latency");
    const STEPS: usize = 1 << 16;
    g.throughput(Throughput::Elements(STEPS as u64));
    for (name, blocks) in [("1 MB (L2)", 1usize << 16), ("main set's reserve", k)] {
        // A random cycle through one block per 64-byte line, stored as the next index.
        let lines = blocks / 4;
        let mut order: Vec<usize> = (0..lines).collect();
        let mut prg = AesPrg::from_block(Block(9));
        for i in (1..lines).rev() {
            order.swap(i, (prg.block().0 % (i as u128 + 1)) as usize);
        }
        let mut table = huge_vec(blocks);
        for (i, &line) in order.iter().enumerate() {
            table[4 * line] = Block(4 * order[(i + 1) % lines] as u128);
        }
        let mut at = 4 * order[0];
        g.bench_function(format!("dependent reads, {name}"), |b| {
            b.iter(|| {
                for _ in 0..STEPS {
                    at = table[at].0 as usize;
                }
                black_box(at)
            })
        });
    }
    g.finish();
}

fn bench_iknp_and_hash(c: &mut Criterion) {
    let m = 1usize << 16;
    let mut prg = AesPrg::from_block(Block(2));
    let mut cols = vec![Block::ZERO; m];
    prg.fill_blocks(&mut cols);
    let mut out = vec![Block::ZERO; m];
    let mut g = c.benchmark_group("iknp");
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("transpose 128 × 2^16", |b| {
        b.iter(|| {
            transpose(
                bytemuck::cast_slice_mut(black_box(&mut out)),
                bytemuck::cast_slice(&cols),
                128,
                m,
            )
        })
    });
    let tweaks: Vec<Block> = (0..m as u128).map(Block).collect();
    g.bench_function("tccr hash", |b| {
        b.iter(|| tccr_blocks(&tweaks, black_box(&mut out)))
    });
    g.finish();
}

criterion_group!(benches, bench_ferret, bench_iknp_and_hash);
criterion_main!(benches);
