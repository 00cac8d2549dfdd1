//! Beaver triples on random shares: generated (matrix ones on HE, element-wise ones on COTs),
//! then products of shared operands
//! against the plaintext ⌊X·Y / 2^s⌉ (the secure result is that or one less), edge values
//! included, with the exact bytes and rounds of both phases; and attention's triples filed in
//! an offline store, used once; the normalisations' and the activations' correlations
//! likewise.
mod common;
use common::*;
use he_linear::matrix::{MatDims, ProductShape};
use mpc_core::Ring;
use nn::activation::Piecewise;
use nn::activation_offline::PowerTriples;
use nn::attention::AttentionShape;
use nn::attention_offline::AttentionTriples;
use nn::matmul::matmul_mirror;
use nn::norm_offline::NormTriples;
use nn::offline::{OfflineStore, SessionId};
use nn::triple::{
    generate_cost, generate_triples, triple_products, triple_products_cost, Rounding, TripleShape,
};
use ot_nonlinear::functions::{PowerProducts, RowProducts};

/// Signed values with 18 fraction bits in [−8, 8), the extremes first.
fn operand(rng: &mut mpc_core::AesPrg, n: usize) -> Vec<u64> {
    values(rng, n, -8.0, 8.0, &[8.0 - 1.0 / 262_144.0, -8.0, 0.0])
}

#[test]
fn triple_products_equal_the_rounded_plaintext_products() {
    let seed = seed(31);
    eprintln!("seed {seed}");
    let shapes = [
        TripleShape::Matmul(ProductShape { k: 3, m: 64, n: 45 }),
        TripleShape::Matmul(ProductShape { k: 5, m: 7, n: 1 }),
        TripleShape::RowScale(MatDims { rows: 4, cols: 9 }),
        TripleShape::Elementwise(6),
    ];
    let mut rng = prg(seed);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for t in &shapes {
        let [a, b, _] = t.sizes();
        xs.push(operand(&mut rng, a));
        ys.push(operand(&mut rng, b));
    }
    let shares: Vec<_> = xs
        .iter()
        .chain(&ys)
        .map(|v| share(v, Ring::R64, &mut rng))
        .collect();
    let n = shapes.len();
    let side = |server: bool| {
        let pick = |v: &(Vec<u64>, Vec<u64>)| if server { v.0.clone() } else { v.1.clone() };
        let ops: Vec<(Vec<u64>, Vec<u64>)> = (0..n)
            .map(|i| (pick(&shares[i]), pick(&shares[n + i])))
            .collect();
        move |s: &mut ot_nonlinear::mpc::Session, he: &nn::HeKeys<'_>| {
            s.reserve_cots(1 << 20, 1 << 20).unwrap();
            let triples = s
                .scope("gen", |s| generate_triples(s, he, &shapes))
                .unwrap();
            let refs: Vec<_> = ops.iter().map(|(x, y)| (&x[..], &y[..])).collect();
            s.scope("online", |s| {
                triple_products(s, &triples, &refs, 18, Rounding::Nearest)
            })
            .unwrap()
        }
    };
    let fx = Fixture::new(seed);
    let (zs, zc, cs, cc) = run(&fx, side(true), side(false));
    for (i, t) in shapes.iter().enumerate() {
        let want = match *t {
            TripleShape::Matmul(ProductShape { k, m, n }) => {
                matmul_mirror(&xs[i], &ys[i], k, m, n, 18)
            }
            TripleShape::Elementwise(_) => (0..t.outputs())
                .map(|e| {
                    let p = xs[i][e].wrapping_mul(ys[i][e]);
                    ((p.wrapping_add(1 << 17) as i64) >> 18) as u64
                })
                .collect(),
            TripleShape::RowScale(MatDims { cols, .. }) => (0..t.outputs())
                .map(|e| {
                    let p = xs[i][e / cols].wrapping_mul(ys[i][e]);
                    ((p.wrapping_add(1 << 17) as i64) >> 18) as u64
                })
                .collect(),
        };
        for (e, w) in want.iter().enumerate() {
            let got = zs[i][e].wrapping_add(zc[i][e]);
            let d = w.wrapping_sub(got);
            assert!(d <= 1, "{t:?} output {e}: {got} vs {w} (seed {seed})");
        }
    }
    assert_cost("gen", &cs, &cc, generate_cost(&fx.packed, &shapes).unwrap());
    // One round of openings, the truncation's client flight; its server flight is flushed
    // after the scope (by the next read), so the channel counts it there.
    let online = triple_products_cost(&shapes, 18).unwrap();
    assert_eq!(online.rounds, 3);
    assert_cost_rounds("online", &cs, &cc, online, 2);
}

#[test]
fn mismatched_operands_are_refused() {
    let seed = seed(32);
    eprintln!("seed {seed}");
    let shapes = [TripleShape::Matmul(ProductShape { k: 2, m: 3, n: 2 })];
    let fx = Fixture::new(seed);
    let side = move |s: &mut ot_nonlinear::mpc::Session, he: &nn::HeKeys<'_>| {
        let triples = generate_triples(s, he, &shapes).unwrap();
        // X of 2×2 where the triple serves 2×3: refused before anything is sent.
        let err =
            triple_products(s, &triples, &[(&[0; 4], &[0; 6])], 18, Rounding::Nearest).unwrap_err();
        assert!(matches!(err, mpc_core::Error::Shape { .. }), "{err}");
        let err = triple_products(s, &triples, &[], 18, Rounding::Nearest).unwrap_err();
        assert!(matches!(err, mpc_core::Error::Shape { .. }), "{err}");
    };
    run(&fx, side, side);
}

#[test]
fn attention_triples_are_filed_once_and_refused_for_another_shape() {
    let seed = seed(33);
    eprintln!("seed {seed}");
    let shape = AttentionShape {
        queries: 1,
        keys: 5,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
    };
    let fx = Fixture::new(seed);
    let side = move |s: &mut ot_nonlinear::mpc::Session, he: &nn::HeKeys<'_>| {
        AttentionTriples::generate(s, he, shape, &|c| c.label().to_string()).unwrap()
    };
    let (ts, _, cs, cc) = run(&fx, side, side);
    let [qk, pv, normalize] = AttentionTriples::generate_cost(&fx.packed, shape).unwrap();
    assert_cost("attention/qk", &cs, &cc, qk);
    assert_cost("attention/pv", &cs, &cc, pv);
    assert_cost("attention/normalize", &cs, &cc, normalize);
    let root = tempfile::tempdir().unwrap();
    let store = OfflineStore::create(root.path(), [7; 32], SessionId([1; 16])).unwrap();
    ts.put(&store, "c0000-L00-att").unwrap();
    let longer = AttentionShape { keys: 6, ..shape };
    let err = AttentionTriples::take(&store, "c0000-L00-att", longer).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    assert_eq!(
        AttentionTriples::take(&store, "c0000-L00-att", shape).unwrap(),
        ts
    );
    let err = AttentionTriples::take(&store, "c0000-L00-att", shape).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
}

#[test]
fn norm_triples_are_filed_once_serve_each_product_once_and_refuse_other_shapes() {
    let seed = seed(34);
    eprintln!("seed {seed}");
    let (rows, n) = (3, 10);
    let fx = Fixture::new(seed);
    let side = move |s: &mut ot_nonlinear::mpc::Session, he: &nn::HeKeys<'_>| {
        NormTriples::generate(s, he, rows, n).unwrap()
    };
    let (ts, tc, _, _) = run(&fx, side, side);
    let root = tempfile::tempdir().unwrap();
    let store = OfflineStore::create(root.path(), [7; 32], SessionId([2; 16])).unwrap();
    ts.put(&store, "L00-ln1").unwrap();
    let err = NormTriples::take(&store, "L00-ln1", rows, n + 1).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    assert_eq!(NormTriples::take(&store, "L00-ln1", rows, n).unwrap(), ts);
    let err = NormTriples::take(&store, "L00-ln1", rows, n).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    // A product served once is refused the second time, before anything is sent; so is an
    // operand of another shape.
    let sums = |mut t: NormTriples, dir: std::path::PathBuf| {
        move |s: &mut ot_nonlinear::mpc::Session, _: &nn::HeKeys<'_>| {
            let v = vec![0u64; rows * n];
            let ring = ot_nonlinear::approx::layernorm::SQUARE_RING;
            let wrong = t.row_square_sums(s, &v[n..], n, ring).unwrap_err();
            t.row_square_sums(s, &v, n, ring).unwrap();
            let again = t.row_square_sums(s, &v, n, ring).unwrap_err();
            let store = OfflineStore::create(&dir, [7; 32], SessionId([3; 16])).unwrap();
            let filed = t.put(&store, "x").unwrap_err();
            [wrong, again, filed].map(|e| e.to_string())
        }
    };
    let (s, c, _, _) = run(
        &fx,
        sums(ts, root.path().join("server")),
        sums(tc, root.path().join("client")),
    );
    for [wrong, again, filed] in [s, c] {
        assert!(wrong.contains("shape"), "{wrong}");
        assert!(again.contains("already served"), "{again}");
        assert!(filed.contains("already served"), "{filed}");
    }
}

#[test]
fn power_triples_are_filed_once_serve_each_step_once_and_refuse_other_shapes() {
    let seed = seed(35);
    eprintln!("seed {seed}");
    let n = 12;
    let table = nn::silu::silu_default().unwrap();
    let plan = nn::silu::silu_plan();
    let fx = Fixture::new(seed);
    let (t1, t2) = (table.clone(), table.clone());
    let (ts, tc, _, _) = run(
        &fx,
        move |s, _| PowerTriples::generate(s, Piecewise::server(&t1, &plan).spec(), n).unwrap(),
        move |s, _| PowerTriples::generate(s, Piecewise::client(&t2, &plan).spec(), n).unwrap(),
    );
    let f = *Piecewise::server(&table, &plan).spec();
    let root = tempfile::tempdir().unwrap();
    let store = OfflineStore::create(root.path(), [7; 32], SessionId([4; 16])).unwrap();
    ts.put(&store, "L00-gelu").unwrap();
    let err = PowerTriples::take(&store, "L00-gelu", &f, n + 1).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    assert_eq!(PowerTriples::take(&store, "L00-gelu", &f, n).unwrap(), ts);
    let err = PowerTriples::take(&store, "L00-gelu", &f, n).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    // A step served once is refused the second time before anything is sent, and so is the
    // wrong kind of product or a partly used correlation's filing.
    let ring = plan.poly_bits;
    let serve = |mut t: PowerTriples, dir: std::path::PathBuf| {
        move |s: &mut ot_nonlinear::mpc::Session, _: &nn::HeKeys<'_>| {
            let x = vec![0u64; n];
            let wrong = t.mul(s, 0, &x, &x, ring, 0).unwrap_err();
            t.square(s, 0, &x, ring, 0).unwrap();
            let again = t.square(s, 0, &x, ring, 0).unwrap_err();
            let store = OfflineStore::create(&dir, [7; 32], SessionId([5; 16])).unwrap();
            let filed = t.put(&store, "x").unwrap_err();
            [wrong, again, filed].map(|e| e.to_string())
        }
    };
    let (s, c, _, _) = run(
        &fx,
        serve(ts, root.path().join("server")),
        serve(tc, root.path().join("client")),
    );
    for [wrong, again, filed] in [s, c] {
        assert!(wrong.contains("not a product"), "{wrong}");
        assert!(again.contains("already served"), "{again}");
        assert!(filed.contains("already served"), "{filed}");
    }
}
