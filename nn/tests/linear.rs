//! The HE operators on random shares against their mirrors, with edge values, and their exact
//! online cost: a linear layer (COP) truncating or keeping its products, and the private
//! embedding lookup (repeated ids, the first and last rows, an id out of range).
mod common;
use common::*;
use he_linear::matrix::RingMatrix;
use mpc_core::{Error, FixedPoint, Ring, Seed};
use nn::embedding::{ClientEmbedding, ServerEmbedding};
use nn::linear::{linear_cost, linear_mirror, ClientLinear, Packing, Rescale, ServerLinear};
use nn::SharedTensor;
use ot_nonlinear::mpc::CotDemand;

const LIN: FixedPoint = FixedPoint::LINEAR;

/// COTs reserved before a layer in both directions (more than its up-cast draws), so that no
/// Ferret extension runs inside the measured operation.
const COTS: CotDemand = CotDemand {
    server: 1 << 16,
    client: 1 << 16,
};

/// A layer of m inputs and n outputs: weights in [−2, 2) at 18 fraction bits with the edge
/// values 0, ±2^-18 and the extremes; the bias at 36 fraction bits.
fn layer(seed: u64, m: usize, n: usize) -> (Vec<u64>, Vec<u64>) {
    let w = values(
        &mut prg(seed ^ 1),
        m * n,
        -2.0,
        2.0,
        &[0.0, 1e-6, -1e-6, 1.999, -2.0],
    );
    let b: Vec<u64> = values(&mut prg(seed ^ 2), n, -4.0, 4.0, &[0.0])
        .into_iter()
        .map(|v| v << LIN.frac_bits())
        .collect();
    (w, b)
}

fn run_linear(seed: u64, (k, m, n): (usize, usize, usize), rescale: Rescale, packing: Packing) {
    let (w, b) = layer(seed, m, n);
    let x = values(
        &mut prg(seed),
        k * m,
        -30.0,
        30.0,
        &[0.0, 1e-6, -1e-6, 29.9, -30.0],
    );
    let (xs, xc) = share(&x, Ring::R64, &mut prg(seed ^ 3));
    let fx = Fixture::new(seed);
    let server = ServerLinear::new(RingMatrix::new(m, n, w.clone()).unwrap(), b.clone())
        .unwrap()
        .with_packing(packing);
    let layout = server.layout(&fx.params).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let fxs = fx.clone();
    let setup_seed = Seed([0x11; 16]).derive(seed);
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, he| {
            let (sk, pk) = (&fxs.server.sk, &fxs.server.pk);
            server
                .setup(&mut s.ch, he.params, sk, pk, setup_seed)
                .unwrap();
            s.reserve(COTS).unwrap();
            let xs = SharedTensor::matrix(k, m, LIN, xs).unwrap();
            s.scope("op", |s| server.online(s, he, &xs, rescale))
                .unwrap()
        },
        move |s, he| {
            let client = ClientLinear::setup(&mut s.ch, he.params, &dir, "layer").unwrap();
            s.reserve(COTS).unwrap();
            let xc = SharedTensor::matrix(k, m, LIN, xc).unwrap();
            s.scope("op", |s| client.online(s, he, &xc, rescale))
                .unwrap()
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let want = linear_mirror(&x, &w, &b, k, rescale);
    // Truncating, each party's window drops its own low bits: the sum may be one unit low per
    // dropped carry (two parties), never more.
    let bound = match rescale {
        Rescale::Truncate => 2,
        Rescale::Keep => 0,
    };
    assert!(
        max_gap(&got, &want) <= bound,
        "{rescale:?}: {} units from the mirror",
        max_gap(&got, &want)
    );
    let cost = linear_cost(&fx.params, &layout, k, rescale).unwrap();
    assert_bytes("op", &cs, &cc, cost);
}

#[test]
fn linear_truncating_is_within_two_units_and_costs_what_it_says() {
    let seed = seed(21);
    for packing in [Packing::Compact, Packing::Online] {
        run_linear(seed, (5, 20, 13), Rescale::Truncate, packing);
    }
}

#[test]
fn linear_keeping_all_bits_is_exact_and_costs_what_it_says() {
    let seed = seed(22);
    for packing in [Packing::Compact, Packing::Online] {
        run_linear(seed, (3, 33, 7), Rescale::Keep, packing);
    }
}

#[test]
fn embedding_lookup_returns_the_rows_and_refuses_unknown_ids() {
    let seed = seed(23);
    let (vocab, dim) = (37, 12);
    let table = values(&mut prg(seed), vocab * dim, -3.0, 3.0, &[0.0, 1e-6, -1e-6]);
    let ids = vec![0u32, 36, 5, 5, 17];
    let fx = Fixture::new(seed);
    let server = ServerEmbedding::new(&fx.params, table.clone(), vocab, dim).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let fxs = fx.clone();
    let tokens = ids.len();
    let client_ids = ids.clone();
    let setup_seed = Seed([0x12; 16]).derive(seed);
    let (ys, (yc, refused), _, _) = run(
        &fx,
        move |s, he| {
            let (sk, pk) = (&fxs.server.sk, &fxs.server.pk);
            server
                .setup(&mut s.ch, he.params, sk, pk, setup_seed)
                .unwrap();
            server.lookup(s, he, tokens).unwrap()
        },
        move |s, he| {
            let client = ClientEmbedding::setup(&mut s.ch, he.params, &dir, "emb").unwrap();
            let share = client.lookup(s, he, &client_ids).unwrap();
            // An id past the table is refused before anything is sent.
            let refused = client.lookup(s, he, &[vocab as u32]);
            (share, refused)
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let want: Vec<u64> = ids
        .iter()
        .flat_map(|&i| {
            table[i as usize * dim..(i as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        matches!(refused, Err(Error::OutOfRange { .. })),
        "{refused:?}"
    );
}

#[test]
fn wrong_shapes_are_shape_errors_with_the_numbers() {
    use mpc_core::Dims;
    use nn::Shape;
    // Two biases for three outputs.
    let w = RingMatrix::new(4, 3, vec![0; 12]).unwrap();
    let err = ServerLinear::new(w, vec![0; 2]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                got: Dims::Len(2),
                want: Dims::Len(3),
                ..
            }
        ),
        "{err}"
    );
    // Five share elements for a 2×3 tensor.
    let lin = FixedPoint::LINEAR;
    let err = SharedTensor::new(Shape::matrix(2, 3), lin, vec![0; 5]).unwrap_err();
    assert!(
        matches!(&err, Error::Shape { got: Dims::Len(5), want: Dims::Shape(s), .. } if s == &[2, 3]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "shape mismatch: share elements of a tensor: got 5, expected 2×3"
    );
    // A 2×4 operand where a 2×3 one is expected; the message names the operand.
    let x = SharedTensor::new(Shape::matrix(2, 4), lin, vec![0; 8]).unwrap();
    let err = x
        .expect("cached keys", &Shape::matrix(2, 3), lin)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Shape { what, got: Dims::Shape(g), want: Dims::Shape(w) }
            if what == "cached keys" && g == &[2, 4] && w == &[2, 3]),
        "{err}"
    );
}
