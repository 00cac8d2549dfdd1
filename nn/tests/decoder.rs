//! The decoder's operators on random shares against their mirrors, with edge values, and their
//! exact cost: the SIP linear layer (one row and a prompt's rows, truncated and kept), rotary
//! positions, the element-wise product, the key/value cache.
mod common;
use common::*;
use he_linear::matrix::RingMatrix;
use mpc_core::{FixedPoint, Ring};
use nn::kv_cache::KvCache;
use nn::linear::{linear_mirror, Rescale};
use nn::product::{
    elementwise_product, elementwise_product_prepared, product_cost, product_cots, product_mirror,
    product_prepared_cost,
};
use nn::rotary::{rotary, rotary_cost, rotary_cots, rotary_mirror, Rotary};
use nn::sip_linear::{sip_linear_cost, sip_linear_cots, ClientSipLinear, ServerSipLinear};
use nn::triple::{generate_cost, generate_triples, TripleShape};
use nn::{Shape, SharedTensor};

const LIN: FixedPoint = FixedPoint::LINEAR;

fn tensors(rows: usize, cols: usize, x: &[u64], seed: u64) -> (SharedTensor, SharedTensor) {
    let (s, c) = share(x, Ring::R64, &mut prg(seed ^ 0xabc));
    (
        SharedTensor::matrix(rows, cols, LIN, s).unwrap(),
        SharedTensor::matrix(rows, cols, LIN, c).unwrap(),
    )
}

fn sip_linear_case(seed: u64, k: usize, m: usize, n: usize, rescale: Rescale) {
    let x = values(&mut prg(seed), k * m, -4.0, 4.0, &[0.0, -8.0, 8.0, 1e-5]);
    let w = values(&mut prg(seed ^ 1), m * n, -0.5, 0.5, &[0.0, -1.0, 1.0]);
    let wide = FixedPoint::new(Ring::R64, 36).unwrap();
    let b: Vec<u64> = (0..n)
        .map(|j| wide.encode(0.25 * j as f64 - 1.0).unwrap())
        .collect();
    let (xs, xc) = tensors(k, m, &x, seed);
    let fx = Fixture::new(seed);
    let server = ServerSipLinear::new(
        &fx.params,
        RingMatrix::new(m, n, w.clone()).unwrap(),
        b.clone(),
    )
    .unwrap();
    let client = ClientSipLinear::new(&fx.params, m, n).unwrap();
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, he| {
            s.reserve(sip_linear_cots(he.params, k, n, rescale).unwrap())
                .unwrap();
            s.scope("op", |s| server.online(s, he, &xs, rescale))
                .unwrap()
        },
        move |s, he| {
            s.reserve(sip_linear_cots(he.params, k, n, rescale).unwrap())
                .unwrap();
            s.scope("op", |s| client.online(s, he, &xc, rescale))
                .unwrap()
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let want = linear_mirror(&x, &w, &b, k, rescale);
    let gap = max_gap(&got, &want);
    // Truncated: within 2 units; kept: the server's own rounding is none, the gap is 0.
    assert!(gap <= 2, "k={k} {rescale:?}: gap {gap}");
    let cost = sip_linear_cost(&fx.params, k, m, n, rescale).unwrap();
    match rescale {
        Rescale::Truncate => assert_cost("op", &cs, &cc, cost),
        // Without a reservation before it, the client's flight follows the session setup's
        // last client flight and merges with it: one round fewer than standalone.
        Rescale::Keep => assert_cost_rounds("op", &cs, &cc, cost, cost.rounds - 1),
    }
}

#[test]
fn sip_linear_one_row_matches_the_mirror_and_its_cost() {
    sip_linear_case(seed(31), 1, 96, 200, Rescale::Truncate);
}

#[test]
fn sip_linear_on_a_prompt_and_kept_matches_the_mirror_and_its_cost() {
    let s = seed(32);
    sip_linear_case(s, 5, 70, 33, Rescale::Truncate);
    sip_linear_case(s ^ 7, 3, 40, 300, Rescale::Keep);
}

#[test]
fn sip_linear_refuses_a_wrong_width() {
    let fx = Fixture::new(seed(33));
    let client = ClientSipLinear::new(&fx.params, 8, 4).unwrap();
    let x = SharedTensor::zeros(Shape::matrix(1, 9), LIN);
    let (_, r, _, _) = run(
        &fx,
        |_, _| (),
        move |s, he| client.online(s, he, &x, Rescale::Truncate).err(),
    );
    let err = r.unwrap();
    assert!(
        matches!(
            err,
            mpc_core::Error::Shape {
                got: mpc_core::Dims::Len(9),
                want: mpc_core::Dims::Len(8),
                ..
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("SIP linear layer input columns: got 9, expected 8"));
}

#[test]
fn rotary_matches_its_mirror_and_its_cost() {
    let seed = seed(34);
    let rope = Rotary {
        heads: 3,
        head_dim: 8,
        base: 100_000.0,
    };
    let (rows, cols) = (4, 24);
    let x = values(
        &mut prg(seed),
        rows * cols,
        -30.0,
        30.0,
        &[0.0, 200.0, -200.0, 1e-5],
    );
    let (xs, xc) = tensors(rows, cols, &x, seed);
    let fx = Fixture::new(seed);
    let first = 37;
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| {
            s.reserve(rotary_cots(rows * cols).unwrap()).unwrap();
            s.scope("op", |s| rotary(s, &rope, &xs, first)).unwrap()
        },
        move |s, _| {
            s.reserve(rotary_cots(rows * cols).unwrap()).unwrap();
            s.scope("op", |s| rotary(s, &rope, &xc, first)).unwrap()
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let want = rotary_mirror(&rope, &x, cols, first);
    for (&g, &w) in got.iter().zip(&want) {
        assert!(g == w || g == w.wrapping_sub(1), "{g} vs {w}");
    }
    // The mirror is the rotation: norms of each pair are kept (up to the encoding).
    let dec = |v: u64| v as i64 as f64 / (1u64 << 18) as f64;
    for (pair_x, pair_y) in x.chunks_exact(2).zip(want.chunks_exact(2)) {
        let nx = dec(pair_x[0]).hypot(dec(pair_x[1]));
        let ny = dec(pair_y[0]).hypot(dec(pair_y[1]));
        assert!((nx - ny).abs() < 1e-3 * (1.0 + nx), "{nx} vs {ny}");
    }
    // Position 0 is the identity.
    assert_eq!(
        rotary_mirror(&rope, &x[..cols], cols, 0),
        x[..cols].to_vec()
    );
    assert_cost("op", &cs, &cc, rotary_cost(rows * cols).unwrap());
}

#[test]
fn rotary_refuses_odd_heads() {
    let rope = Rotary {
        heads: 1,
        head_dim: 3,
        base: 10_000.0,
    };
    let fx = Fixture::new(seed(35));
    let x = SharedTensor::zeros(Shape::matrix(1, 3), LIN);
    let (_, r, _, _) = run(&fx, |_, _| (), move |s, _| rotary(s, &rope, &x, 0).err());
    assert!(r.is_some());
}

#[test]
fn elementwise_product_matches_its_mirror_and_its_cost() {
    let seed = seed(36);
    eprintln!("seed {seed}");
    let n = 300;
    let edges = [0.0, -1.0, 1.0, 100.0, -100.0, 1e-5];
    let x = values(&mut prg(seed), n, -8.0, 8.0, &edges);
    let y = values(&mut prg(seed ^ 9), n, -8.0, 8.0, &edges);
    let (xs, xc) = tensors(3, 100, &x, seed);
    let (ys_, yc_) = tensors(3, 100, &y, seed ^ 5);
    // Single phase (Gilboa on COTs), then on an element-wise triple made first.
    let side = |x: SharedTensor, y: SharedTensor| {
        move |s: &mut ot_nonlinear::mpc::Session, he: &nn::HeKeys<'_>| {
            // Both products' COTs, so that no extension runs inside the labels.
            s.reserve(product_cots(n).unwrap().plus(product_cots(n).unwrap()))
                .unwrap();
            let single = s.scope("op", |s| elementwise_product(s, &x, &y)).unwrap();
            let triple = s
                .scope("gen", |s| {
                    generate_triples(s, he, &[TripleShape::Elementwise(n)])
                })
                .unwrap();
            let prepared = s
                .scope("prepared", |s| {
                    elementwise_product_prepared(s, &x, &y, &triple[0])
                })
                .unwrap();
            (single, prepared)
        }
    };
    let fx = Fixture::new(seed);
    let ((zs, ps), (zc, pc), cs, cc) = run(&fx, side(xs, ys_), side(xc, yc_));
    let want = product_mirror(&x, &y);
    for got in [zs.reconstruct(&zc).unwrap(), ps.reconstruct(&pc).unwrap()] {
        for (&g, &w) in got.iter().zip(&want) {
            assert!(g == w || g == w.wrapping_sub(1), "{g} vs {w} (seed {seed})");
        }
    }
    assert_cost("op", &cs, &cc, product_cost(n).unwrap());
    let gen = generate_cost(&fx.packed, &[TripleShape::Elementwise(n)]).unwrap();
    assert_bytes("gen", &cs, &cc, gen);
    // The truncation's server flight is flushed after the scope (by the next read).
    let prepared = product_prepared_cost(n).unwrap();
    assert_cost_rounds("prepared", &cs, &cc, prepared, prepared.rounds - 1);
}

#[test]
fn the_kv_cache_grows_and_refuses_past_its_context() {
    let mut cache = KvCache::new(4, 3);
    let t = |rows: usize, v: u64| SharedTensor::matrix(rows, 4, LIN, vec![v; rows * 4]).unwrap();
    cache.append(&t(2, 1), &t(2, 2)).unwrap();
    cache.append(&t(1, 3), &t(1, 4)).unwrap();
    let (k, v) = cache.tensors().unwrap();
    assert_eq!(k.shape(), &Shape::matrix(3, 4));
    assert_eq!(k.row(2), &[3; 4]);
    assert_eq!(v.row(0), &[2; 4]);
    assert!(cache.append(&t(1, 5), &t(1, 5)).is_err());
    assert!(cache
        .append(&t(1, 5), &SharedTensor::zeros(Shape::matrix(1, 3), LIN))
        .is_err());
}

/// RMSNorm with per-row prescales: an attention-sink row (rms ≈ 600, shifted down by 6: one
/// truncation), a tiny row (rms ≈ 0.02, shifted up by 6: local) and an ordinary one (up by 3), against
/// the mirror within the norm's carry bound on the scaled rows, and its exact bytes.
#[test]
fn prescaled_rmsnorm_matches_its_mirror_and_its_cost() {
    use nn::norm::normalize_prescaled;
    use nn::norm::{norm_mirror_prescaled, norm_prescaled_cost, norm_prescaled_cots};
    use nn::norm::{Norm, RowProductBackend};
    let seed = seed(35);
    let (rows, n) = (3, 64);
    let shifts = [-6, 6, 3];
    let mut x = values(&mut prg(seed), rows * n, -2.0, 2.0, &[0.0]);
    x[..n]
        .iter_mut()
        .for_each(|v| *v = LIN.encode(LIN.decode(*v) * 300.0).unwrap());
    x[0] = LIN.encode(4000.0).unwrap();
    x[n..2 * n]
        .iter_mut()
        .for_each(|v| *v = LIN.encode(LIN.decode(*v) / 64.0).unwrap());
    let (xs, xc) = tensors(rows, n, &x, seed);
    let fx = Fixture::new(seed);
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| {
            s.reserve(norm_prescaled_cots(Norm::RmsNorm, n, &shifts).unwrap())
                .unwrap();
            s.scope("op", |s| {
                normalize_prescaled(s, Norm::RmsNorm, &xs, 1e-5, RowProductBackend::Ot, &shifts)
            })
            .unwrap()
        },
        move |s, _| {
            s.reserve(norm_prescaled_cots(Norm::RmsNorm, n, &shifts).unwrap())
                .unwrap();
            s.scope("op", |s| {
                normalize_prescaled(s, Norm::RmsNorm, &xc, 1e-5, RowProductBackend::Ot, &shifts)
            })
            .unwrap()
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let want = norm_mirror_prescaled(Norm::RmsNorm, &x, n, 1e-5, &shifts).unwrap();
    for r in 0..rows {
        let scale = (shifts[r] as f64).exp2();
        let row: Vec<f64> = x[r * n..(r + 1) * n]
            .iter()
            .map(|&v| LIN.decode(v) * scale)
            .collect();
        let sd = (row.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        let mean_abs = row.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
        let (unit, var_rel) = (
            (-10f64).exp2() / sd,
            1.5 * mean_abs / (64.0 * sd * sd) + 1e-4,
        );
        for i in r * n..(r + 1) * n {
            let (g, m) = (LIN.decode(got[i]), LIN.decode(want[i]));
            assert!(
                (g - m).abs() <= 2.5 * unit + var_rel * m.abs() + 1e-4,
                "row {r}: {g} vs mirror {m}"
            );
        }
        // And the mirror is the float RMSNorm (the prescale changed nothing but the ranges; ε is
        // scaled by 4^max(shifts), exact for the most up-scaled row).
        let eps = 1e-5 * 4f64.powi(6);
        let float: Vec<f64> = row.iter().map(|v| v / (sd * sd + eps).sqrt()).collect();
        for (i, f) in (r * n..(r + 1) * n).zip(float) {
            assert!(
                (LIN.decode(want[i]) - f).abs() < 0.02,
                "row {r}: mirror vs float"
            );
        }
    }
    let cost = norm_prescaled_cost(Norm::RmsNorm, n, &shifts).unwrap();
    assert_bytes("op", &cs, &cc, cost);
    assert!(normalize_prescaled_refuses_a_wild_shift());
}

fn normalize_prescaled_refuses_a_wild_shift() -> bool {
    nn::norm::norm_mirror_prescaled(nn::norm::Norm::RmsNorm, &[0; 4], 4, 1e-5, &[30]).is_err()
}
