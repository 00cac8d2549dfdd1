//! The linear layer split into offline and online phases (`nn::linear_offline`) on random
//! shares against its mirror, with the exact bytes of both phases; offline material used twice,
//! made for another layer or server key, or presented by a peer with other material, is
//! refused with a clear error.
mod common;
use common::*;
use he_linear::matrix::RingMatrix;
use mpc_core::{FixedPoint, Result, Ring, Seed};
use nn::linear::{linear_mirror, ClientLinear, Packing, Rescale, ServerLinear};
use nn::linear_offline::{linear_offline_cost, linear_online_cost};
use nn::offline::{OfflineStore, SessionId};
use nn::SharedTensor;
use ot_nonlinear::mpc::CotDemand;
use std::path::PathBuf;

const LIN: FixedPoint = FixedPoint::LINEAR;
const COTS: CotDemand = CotDemand {
    server: 1 << 16,
    client: 1 << 16,
};
const MODEL: [u8; 32] = [0x4d; 32];
const SESSION: SessionId = SessionId([0x53; 16]);

fn layer(seed: u64, m: usize, n: usize) -> (Vec<u64>, Vec<u64>) {
    let w = values(
        &mut prg(seed ^ 1),
        m * n,
        -2.0,
        2.0,
        &[0.0, 1e-6, 1.999, -2.0],
    );
    let b = values(&mut prg(seed ^ 2), n, -4.0, 4.0, &[0.0])
        .into_iter()
        .map(|v| v << LIN.frac_bits())
        .collect();
    (w, b)
}

/// What each side does after setup and the offline phase: its online passes on the same
/// material, each returning its result.
type Outcome = (Vec<Result<SharedTensor>>, PathBuf);

/// (W, the mirror, both sides' outcomes, both channels, the directory holding the stores).
type Split = (
    Vec<u64>,
    Vec<u64>,
    Outcome,
    Outcome,
    mpc_core::Channel,
    mpc_core::Channel,
    tempfile::TempDir,
);

/// Sets up a k×m·m×n layer, runs its offline phase, then online passes on X (each party
/// tries as many as it is given).
fn run_split(
    seed: u64,
    (k, m, n): (usize, usize, usize),
    rescale: Rescale,
    packing: Packing,
    (server_uses, client_uses): (usize, usize),
) -> Split {
    let (w, b) = layer(seed, m, n);
    let x = values(&mut prg(seed), k * m, -30.0, 30.0, &[0.0, 29.9, -30.0]);
    let (xs, xc) = share(&x, Ring::R64, &mut prg(seed ^ 3));
    let fx = Fixture::new(seed);
    let server = ServerLinear::new(RingMatrix::new(m, n, w.clone()).unwrap(), b.clone())
        .unwrap()
        .with_packing(packing);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = tmp.path().to_path_buf();
    let (cache, sdir, cdir) = (dirs.join("cache"), dirs.join("server"), dirs.join("client"));
    let fxs = fx.clone();
    let setup_seed = Seed([0x13; 16]).derive(seed);
    let (s_out, c_out, cs, cc) = run(
        &fx,
        move |s, he| {
            let (sk, pk) = (&fxs.server.sk, &fxs.server.pk);
            server
                .setup(&mut s.ch, he.params, sk, pk, setup_seed)
                .unwrap();
            let store = OfflineStore::create(&sdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| {
                server.offline(s, he, k, rescale, &store, "layer")
            })
            .unwrap();
            s.reserve(COTS).unwrap();
            let xs = SharedTensor::matrix(k, m, LIN, xs).unwrap();
            let outs = (0..server_uses)
                .map(|_| {
                    s.scope("op", |s| {
                        server.online_prepared(s, he, &xs, rescale, &store, "layer")
                    })
                })
                .collect();
            (outs, sdir)
        },
        move |s, he| {
            let client = ClientLinear::setup(&mut s.ch, he.params, &cache, "layer").unwrap();
            let store = OfflineStore::create(&cdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| {
                client.offline(s, he, k, rescale, &store, "layer")
            })
            .unwrap();
            s.reserve(COTS).unwrap();
            let xc = SharedTensor::matrix(k, m, LIN, xc).unwrap();
            let outs = (0..client_uses)
                .map(|_| {
                    s.scope("op", |s| {
                        client.online_prepared(s, he, &xc, rescale, &store, "layer")
                    })
                })
                .collect();
            (outs, cdir)
        },
    );
    let want = linear_mirror(&x, &w, &b, k, rescale);
    (w, want, s_out, c_out, cs, cc, tmp)
}

fn check(seed: u64, shape: (usize, usize, usize), rescale: Rescale, packing: Packing) {
    let (k, m, n) = shape;
    let (_, want, (mut ys, _), (mut yc, _), cs, cc, _tmp) =
        run_split(seed, shape, rescale, packing, (1, 1));
    let (ys, yc) = (ys.remove(0).unwrap(), yc.remove(0).unwrap());
    let got = ys.reconstruct(&yc).unwrap();
    // Three roundings into the window: (X − R)·W's, the server's offline share's, the carry.
    let bound = match rescale {
        Rescale::Truncate => 3,
        Rescale::Keep => 0,
    };
    let gap = max_gap(&got, &want);
    assert!(
        gap <= bound,
        "{rescale:?} {packing:?}: {gap} units from the mirror"
    );
    let fx = Fixture::new(seed);
    let w = ServerLinear::new(RingMatrix::zeros(m, n), vec![0; n])
        .unwrap()
        .with_packing(packing);
    let layout = w.layout(&fx.params).unwrap();
    assert_cost(
        "offline",
        &cs,
        &cc,
        linear_offline_cost(&fx.params, &layout, k, rescale).unwrap(),
    );
    assert_bytes(
        "op",
        &cs,
        &cc,
        linear_online_cost(&fx.params, k, m, n, rescale).unwrap(),
    );
}

#[test]
fn split_linear_truncating_is_within_three_units_and_costs_what_it_says() {
    let seed = seed(31);
    for packing in [Packing::Compact, Packing::Online] {
        check(seed, (5, 20, 13), Rescale::Truncate, packing);
    }
}

#[test]
fn split_linear_keeping_all_bits_is_exact_and_costs_what_it_says() {
    let seed = seed(32);
    check(seed, (3, 33, 7), Rescale::Keep, Packing::Compact);
}

#[test]
fn offline_material_is_used_once() {
    let seed = seed(33);
    let (_, want, (ys, sdir), (yc, cdir), _, _, _tmp) =
        run_split(seed, (4, 9, 6), Rescale::Truncate, Packing::Compact, (1, 2));
    let (first_s, first_c) = (ys[0].as_ref().unwrap(), yc[0].as_ref().unwrap());
    assert!(max_gap(&first_s.reconstruct(first_c).unwrap(), &want) <= 3);
    // The client's second use is refused before it sends anything.
    let err = yc[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
    // Nothing is left to use: the material files are gone (tombstones remain).
    for dir in [sdir, cdir] {
        assert!(OfflineStore::pending(&dir, &MODEL).unwrap().is_empty());
        let store = OfflineStore::open(&dir, MODEL, SESSION).unwrap();
        let err = store.check_unused(["layer"]).unwrap_err().to_string();
        assert!(err.contains("already used"), "{err}");
    }
}

#[test]
fn offline_material_of_another_layer_or_key_is_refused() {
    let seed = seed(34);
    let (k, m, n) = (3, 8, 5);
    let fx = Fixture::new(seed);
    let other = Fixture::new(seed ^ 0xff);
    let (w, b) = layer(seed, m, n);
    let server = ServerLinear::new(RingMatrix::new(m, n, w).unwrap(), b).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = tmp.path().to_path_buf();
    let (cache, cdir) = (dirs.join("cache"), dirs.join("client"));
    let fxs = fx.clone();
    let (_, err, _, _) = run(
        &fx,
        move |s, he| {
            // The layer set up under this fixture's key and its offline phase run; then the
            // same weights set up under another server key.
            let again = server.clone();
            let (sk, pk) = (&fxs.server.sk, &fxs.server.pk);
            server
                .setup(&mut s.ch, he.params, sk, pk, Seed([1; 16]))
                .unwrap();
            let store = OfflineStore::create(&dirs.join("server"), MODEL, SESSION).unwrap();
            server
                .offline(s, he, k, Rescale::Truncate, &store, "layer")
                .unwrap();
            let (sk2, pk2) = (&other.server.sk, &other.server.pk);
            again
                .setup(&mut s.ch, he.params, sk2, pk2, Seed([2; 16]))
                .unwrap();
        },
        move |s, he| {
            let first = ClientLinear::setup(&mut s.ch, he.params, &cache, "layer").unwrap();
            let store = OfflineStore::create(&cdir, MODEL, SESSION).unwrap();
            first
                .offline(s, he, k, Rescale::Truncate, &store, "layer")
                .unwrap();
            let second = ClientLinear::setup(&mut s.ch, he.params, &cache, "layer").unwrap();
            assert_ne!(second.digest(), first.digest());
            let x = SharedTensor::zeros(nn::Shape::matrix(k, m), LIN);
            second
                .online_prepared(s, he, &x, Rescale::Truncate, &store, "layer")
                .unwrap_err()
                .to_string()
        },
    );
    assert!(err.contains("another layer, model or server key"), "{err}");
}
