//! Element-wise and row operators on random shares against their mirrors, with edge values,
//! and their exact cost: ReLU, SiLU (piecewise), RMSNorm and LayerNorm (row products on OT,
//! on HE and on correlations made offline), Softmax with causal and padding masks, argmax revealed to either party, truncation.
mod common;
use common::*;
use mpc_core::{FixedPoint, Party, Ring};
use nn::activation::{
    piecewise, piecewise_cost, piecewise_mirror, relu, relu_cost, relu_mirror, Piecewise,
};
use nn::activation_offline::{piecewise_prepared, piecewise_prepared_cost, PowerTriples};
use nn::argmax::{argmax, argmax_cost, argmax_mirror};
use nn::cast::{truncate, truncate_cost, truncate_mirror};
use nn::norm::{norm_cost, norm_mirror, normalize, Norm, RowProductBackend};
use nn::norm_offline::{norm_prepared_cost, NormTriples};
use nn::silu::{silu_default, silu_plan};
use nn::softmax::{softmax, softmax_cost, softmax_mirror, Mask};
use nn::{Shape, SharedTensor};
use ot_nonlinear::approx::ApproxSet;

const LIN: FixedPoint = FixedPoint::LINEAR;

fn tensors(rows: usize, cols: usize, x: &[u64], seed: u64) -> (SharedTensor, SharedTensor) {
    let (s, c) = share(x, Ring::R64, &mut prg(seed ^ 0xabc));
    (
        SharedTensor::matrix(rows, cols, LIN, s).unwrap(),
        SharedTensor::matrix(rows, cols, LIN, c).unwrap(),
    )
}

#[test]
fn relu_is_exact_and_costs_what_it_says() {
    let seed = seed(1);
    let x = values(
        &mut prg(seed),
        64,
        -100.0,
        100.0,
        &[0.0, -1e-5, 1e-5, 511.0, -511.0],
    );
    let (xs, xc) = tensors(8, 8, &x, seed);
    let fx = Fixture::new(seed);
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| s.scope("op", |s| relu(s, &xs)).unwrap(),
        move |s, _| s.scope("op", |s| relu(s, &xc)).unwrap(),
    );
    assert_eq!(ys.reconstruct(&yc).unwrap(), relu_mirror(&x, Ring::R64));
    assert_cost("op/relu", &cs, &cc, relu_cost(64, Ring::R64));
}

#[test]
fn silu_matches_its_mirror_within_the_carries_with_products_on_cots_and_offline_triples() {
    let seed = seed(2);
    let table = silu_default().unwrap();
    let plan = silu_plan();
    let bound = table.breakpoints[1];
    let edges = [
        0.0,
        -bound,
        bound,
        -bound - 1e-5,
        bound - 1e-5,
        -1.0,
        1.0,
        -20.0,
        20.0,
        -511.0,
        511.0,
    ];
    let x = values(&mut prg(seed), 200, -10.0, 10.0, &edges);
    let fx = Fixture::new(seed);
    // The power products on COTs, then on correlations made offline.
    for prepared in [false, true] {
        let (xs, xc) = tensors(4, 50, &x, seed);
        let (ts, tc) = (table.clone(), table.clone());
        let apply = move |s: &mut ot_nonlinear::mpc::Session, f: Piecewise<'_>, x| {
            if prepared {
                let t = s
                    .scope("gen", |s| PowerTriples::generate(s, f.spec(), 200))
                    .unwrap();
                s.scope("op", |s| piecewise_prepared(s, f, &x, t)).unwrap()
            } else {
                s.scope("op", |s| piecewise(s, f, &x)).unwrap()
            }
        };
        let (ys, yc, cs, cc) = run(
            &fx,
            move |s, _| apply(s, Piecewise::server(&ts, &plan), xs),
            move |s, _| {
                let mut redacted = tc.clone();
                redacted.breakpoints = vec![0.0, 1.0];
                apply(s, Piecewise::client(&redacted, &plan), xc)
            },
        );
        let got = ys.reconstruct(&yc).unwrap();
        let want = piecewise_mirror(&table, &plan, &x);
        let bound = (plan.carry_bound(&table) * LIN.scale()).ceil() as u64 + 1;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let gap = (g.wrapping_sub(w) as i64).unsigned_abs();
            // At a breakpoint's comparison resolution the secure piece may be the neighbour's.
            let near_break = table
                .breakpoints
                .iter()
                .any(|&b| (LIN.decode(x[i]) - b).abs() < 1.0 / 64.0);
            assert!(
                gap <= bound || near_break,
                "x = {} (prepared {prepared}): gap {gap} > {bound}",
                LIN.decode(x[i])
            );
        }
        if prepared {
            // Both parties send each opening at once: the cost's rounds are an upper bound,
            // the measured ones pinned.
            let cost = piecewise_prepared_cost(&table, &plan, 200);
            assert_cost_rounds("op/gelu", &cs, &cc, cost, 20);
        } else {
            assert_cost("op/gelu", &cs, &cc, piecewise_cost(&table, &plan, 200));
        }
    }
}

/// Where a normalisation test runs the two row products.
#[derive(Clone, Copy, Debug)]
enum Products {
    Ot,
    He,
    Prepared,
}

#[test]
fn norms_match_their_mirrors_on_ot_he_and_offline_triples() {
    let seed = seed(3);
    let (rows, n) = (4, 96);
    let mut rng = prg(seed);
    let mut x = values(&mut rng, rows * n, -3.0, 3.0, &[0.0, 40.0, -40.0]);
    // A row with a large offset and one of small spread. (A constant row is ill-conditioned:
    // the mean's carry of one unit is multiplied by 1/√ε.)
    for v in &mut x[n..2 * n] {
        *v = v.wrapping_add(LIN.encode(20.0).unwrap());
    }
    for v in &mut x[2 * n..3 * n] {
        *v = LIN.encode(0.5 + LIN.decode(*v) / 64.0).unwrap();
    }
    let fx = Fixture::new(seed);
    for norm in [Norm::LayerNorm, Norm::RmsNorm] {
        for products in [Products::Ot, Products::He, Products::Prepared] {
            let (xs, xc) = tensors(rows, n, &x, seed);
            let side = move |x: SharedTensor| {
                move |s: &mut ot_nonlinear::mpc::Session, keys: &nn::HeKeys<'_>| {
                    let b = match products {
                        Products::Ot => RowProductBackend::Ot,
                        Products::He => RowProductBackend::He(keys),
                        Products::Prepared => {
                            let t = s
                                .scope("gen", |s| NormTriples::generate(s, keys, rows, n))
                                .unwrap();
                            RowProductBackend::Prepared(Box::new(t))
                        }
                    };
                    s.scope("op", |s| normalize(s, norm, &x, 1e-5, b)).unwrap()
                }
            };
            let (ys, yc, cs, cc) = run(&fx, side(xs), side(xc));
            let got = ys.reconstruct(&yc).unwrap();
            let want = norm_mirror(norm, &x, n, 1e-5);
            for r in 0..rows {
                let row: Vec<f64> = x[r * n..(r + 1) * n]
                    .iter()
                    .map(|&v| LIN.decode(v))
                    .collect();
                let mean = match norm {
                    Norm::LayerNorm => row.iter().sum::<f64>() / n as f64,
                    Norm::RmsNorm => 0.0,
                };
                let sd = (row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                // The carries (ot-nonlinear/tests/layernorm.rs): v at 10 bits one unit low
                // (2^-10/sd in ŷ, twice with the mean's), the variance's relative error.
                // Uncentred (RMSNorm), the variance's carries do not cancel: they move it by up
                // to 2·mean|v|·2^-6 / mean(v²) relatively (×1.5 margin).
                let unit = (-10f64).exp2() / sd;
                let mean_abs = row.iter().map(|v| (v - mean).abs()).sum::<f64>() / n as f64;
                let var_rel = match norm {
                    Norm::LayerNorm => 3.0 / (64.0 * sd * (n as f64).sqrt()),
                    Norm::RmsNorm => 1.5 * mean_abs / (64.0 * sd * sd),
                } + 1e-4;
                for i in r * n..(r + 1) * n {
                    let (g, m) = (LIN.decode(got[i]), LIN.decode(want[i]));
                    assert!(
                        (g - m).abs() <= 2.5 * unit + var_rel * m.abs(),
                        "{norm:?} ({products:?}) row {r}: {g} vs mirror {m}"
                    );
                }
            }
            let label = match norm {
                Norm::LayerNorm => "op/layernorm",
                Norm::RmsNorm => "op/rmsnorm",
            };
            match products {
                Products::Ot => assert_cost(label, &cs, &cc, norm_cost(norm, rows, n)),
                Products::He => {}
                Products::Prepared => {
                    // Both parties send each opening at once, so a flight of the one whose
                    // clock is behind joins its previous or next one: the cost's rounds
                    // are an upper bound, the measured ones pinned.
                    let cost = norm_prepared_cost(norm, rows, n);
                    assert_cost_rounds(label, &cs, &cc, cost, 35);
                    let params = fx.he(Party::Server).product_params;
                    let gen = NormTriples::generate_cost(params, rows, n).unwrap();
                    assert_cost_rounds("gen", &cs, &cc, gen, 3);
                }
            }
        }
    }
}

#[test]
fn softmax_with_causal_and_padding_masks_matches_its_mirror() {
    let seed = seed(4);
    let set = ApproxSet::nimbus();
    let (heads, q, k) = (2, 5, 5);
    let x = values(&mut prg(seed), heads * q * k, -6.0, 6.0, &[0.0, 5.9, -5.9]);
    let fx = Fixture::new(seed);
    let padding: Vec<bool> = (0..k).map(|j| j != 3).collect();
    for (mask_s, mask_c) in [
        (Mask::Causal { past: 0 }, Mask::Causal { past: 0 }),
        (Mask::Padding(None), Mask::Padding(Some(padding.as_slice()))),
        (Mask::Full, Mask::Full),
    ] {
        let (xs, xc) = tensors(heads * q, k, &x, seed);
        let (ss, sc) = (set.clone(), set.clone());
        let bps = ot_nonlinear::functions::exp_breakpoints(&set, 0);
        let pad_c = padding.clone();
        let mask_c_owned = match mask_c {
            Mask::Padding(Some(_)) => Some(pad_c),
            _ => None,
        };
        let (ys, yc, cs, cc) = run(
            &fx,
            move |s, _| {
                s.scope("op", |s| softmax(s, &ss, 0, Some(&bps), &xs, q, mask_s))
                    .unwrap()
            },
            move |s, _| {
                let m = match &mask_c_owned {
                    Some(p) => Mask::Padding(Some(p.as_slice())),
                    None => mask_c,
                };
                s.scope("op", |s| softmax(s, &sc, 0, None, &xc, q, m))
                    .unwrap()
            },
        );
        let got = ys.reconstruct(&yc).unwrap();
        let want = softmax_mirror(&set, 0, &x, k, q, mask_c);
        let gap = max_gap(&got, &want);
        // Probabilities at 18 bits: the max tree's resolution and the exp's carries.
        assert!(gap <= 1 << 12, "{mask_c:?}: gap {gap}");
        if let Mask::Causal { .. } = mask_c {
            // Query 0 sees key 0 only: its probability is 1 and the rest 0.
            let one = LIN.encode(1.0).unwrap();
            assert!(max_gap(&got[..1], &[one]) <= 1 << 12);
            assert!(max_gap(&got[1..k], &vec![0; k - 1]) <= 1 << 12);
        }
        // The cost's rounds are the steps' sum, an upper bound: the max's comparisons end with
        // the client's flight, which merges with its next step's (functions/max.rs).
        let cost = softmax_cost(&set, 0, heads * q, k);
        assert_cost_rounds("op/softmax", &cs, &cc, cost, 42);
    }
}

#[test]
fn argmax_reveals_the_first_maximum_to_the_chosen_party_only() {
    let seed = seed(5);
    let (rows, n) = (3, 37);
    let mut x = values(&mut prg(seed), rows * n, -50.0, 50.0, &[]);
    // Ties (the first wins), negatives only, and the maximum in the last position.
    x[5] = LIN.encode(60.0).unwrap();
    x[20] = LIN.encode(60.0).unwrap();
    for v in &mut x[n..2 * n] {
        *v = LIN.encode(-(LIN.decode(*v).abs()) - 1.0).unwrap();
    }
    x[3 * n - 1] = LIN.encode(99.0).unwrap();
    let fx = Fixture::new(seed);
    for to in [Party::Client, Party::Server] {
        let (xs, xc) = tensors(rows, n, &x, seed);
        let (is, ic, cs, cc) = run(
            &fx,
            move |s, _| s.scope("op", |s| argmax(s, &xs, to)).unwrap(),
            move |s, _| s.scope("op", |s| argmax(s, &xc, to)).unwrap(),
        );
        let want = argmax_mirror(&x, n);
        assert_eq!(want[0], 5);
        assert_eq!(want[2], n - 1);
        let (got, none) = match to {
            Party::Client => (ic, is),
            Party::Server => (is, ic),
        };
        assert_eq!(got.unwrap(), want);
        assert!(none.is_none());
        // The reveal merges with the last multiplexer flight when the client receives it.
        let rounds = if to == Party::Client { 48 } else { 49 };
        assert_cost_rounds("op/argmax", &cs, &cc, argmax_cost(rows, n, to), rounds);
    }
}

#[test]
fn truncation_is_the_floor_or_one_less_on_fresh_seeds() {
    let seed = fresh_seed();
    let x = values(&mut prg(seed), 100, -1000.0, 1000.0, &[0.0, -1.0, 1.0]);
    let (xs, xc) = tensors(10, 10, &x, seed);
    let fx = Fixture::new(seed);
    let r40 = Ring::new(40).unwrap();
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| s.scope("op", |s| truncate(s, &xs, 12, r40)).unwrap(),
        move |s, _| s.scope("op", |s| truncate(s, &xc, 12, r40)).unwrap(),
    );
    assert_eq!(ys.frac_bits(), 6);
    assert_eq!(ys.shape(), &Shape::matrix(10, 10));
    let got = ys.reconstruct(&yc).unwrap();
    let want = truncate_mirror(&x, Ring::R64, r40, 12);
    for (&g, &w) in got.iter().zip(&want) {
        assert!(g == w || g == r40.sub(w, 1), "{g} vs {w}");
    }
    assert_cost(
        "op",
        &cs,
        &cc,
        truncate_cost(100, Ring::R64, r40, 12).unwrap(),
    );
}
