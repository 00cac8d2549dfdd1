//! The SIP linear layer split into offline and online phases (`nn::sip_offline`) on random
//! shares against its mirror, with the exact costs of both phases; material used twice or
//! made for another shape is refused with a clear error.
mod common;
use common::*;
use he_linear::matrix::RingMatrix;
use mpc_core::{FixedPoint, Result, Ring};
use nn::linear::{linear_mirror, Rescale};
use nn::linear_offline::linear_online_cost;
use nn::offline::{OfflineStore, SessionId};
use nn::sip_linear::{sip_linear_cots, ClientSipLinear, ServerSipLinear};
use nn::sip_offline::sip_offline_cost;
use nn::SharedTensor;

const LIN: FixedPoint = FixedPoint::LINEAR;
const MODEL: [u8; 32] = [0x5c; 32];
const SESSION: SessionId = SessionId([0x17; 16]);

/// Each side's online results (one per use) and both channels, after the offline phase on
/// `k_offline` rows and online uses on `k` rows.
type Split = (
    Vec<u64>,
    Vec<Result<SharedTensor>>,
    Vec<Result<SharedTensor>>,
    mpc_core::Channel,
    mpc_core::Channel,
);

fn run_split(
    seed: u64,
    (k_offline, k, m, n): (usize, usize, usize, usize),
    rescale: Rescale,
    (server_uses, client_uses): (usize, usize),
) -> Split {
    let x = values(&mut prg(seed), k * m, -4.0, 4.0, &[0.0, -8.0, 8.0, 1e-5]);
    let w = values(&mut prg(seed ^ 1), m * n, -0.5, 0.5, &[0.0, -1.0, 1.0]);
    let wide = FixedPoint::new(Ring::R64, 36).unwrap();
    let b: Vec<u64> = (0..n)
        .map(|j| wide.encode(0.25 * j as f64 - 1.0).unwrap())
        .collect();
    let (xs, xc) = share(&x, Ring::R64, &mut prg(seed ^ 3));
    let fx = Fixture::new(seed);
    let server = ServerSipLinear::new(
        &fx.params,
        RingMatrix::new(m, n, w.clone()).unwrap(),
        b.clone(),
    )
    .unwrap();
    let client = ClientSipLinear::new(&fx.params, m, n).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (sdir, cdir) = (tmp.path().join("server"), tmp.path().join("client"));
    let (s_out, c_out, cs, cc) = run(
        &fx,
        move |s, he| {
            let store = OfflineStore::create(&sdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| {
                server.offline(s, he, k_offline, rescale, &store, "layer")
            })
            .unwrap();
            s.reserve(sip_linear_cots(he.params, k, n, rescale).unwrap())
                .unwrap();
            let xs = SharedTensor::matrix(k, m, LIN, xs).unwrap();
            (0..server_uses)
                .map(|_| {
                    s.scope("op", |s| {
                        server.online_prepared(s, he, &xs, rescale, &store, "layer")
                    })
                })
                .collect()
        },
        move |s, he| {
            let store = OfflineStore::create(&cdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| {
                client.offline(s, he, k_offline, rescale, &store, "layer")
            })
            .unwrap();
            s.reserve(sip_linear_cots(he.params, k, n, rescale).unwrap())
                .unwrap();
            let xc = SharedTensor::matrix(k, m, LIN, xc).unwrap();
            (0..client_uses)
                .map(|_| {
                    s.scope("op", |s| {
                        client.online_prepared(s, he, &xc, rescale, &store, "layer")
                    })
                })
                .collect()
        },
    );
    drop(tmp);
    (linear_mirror(&x, &w, &b, k, rescale), s_out, c_out, cs, cc)
}

fn check(seed: u64, (k, m, n): (usize, usize, usize), rescale: Rescale) {
    let (want, mut ys, mut yc, cs, cc) = run_split(seed, (k, k, m, n), rescale, (1, 1));
    let (ys, yc) = (ys.remove(0).unwrap(), yc.remove(0).unwrap());
    let gap = max_gap(&ys.reconstruct(&yc).unwrap(), &want);
    // Three roundings into the window: (X − R)·W + b's, the server's offline share's, the
    // carry; none when all 64 bits are kept.
    let bound = match rescale {
        Rescale::Truncate => 3,
        Rescale::Keep => 0,
    };
    assert!(gap <= bound, "seed {seed} {rescale:?}: {gap} units");
    let fx = Fixture::new(seed);
    let offline = sip_offline_cost(&fx.params, k, m, n, rescale).unwrap();
    // Run first after the session's setup, the client's flight merges with setup's last one.
    assert_cost_rounds("offline", &cs, &cc, offline, offline.rounds - 1);
    assert_bytes(
        "op",
        &cs,
        &cc,
        linear_online_cost(&fx.params, k, m, n, rescale).unwrap(),
    );
}

#[test]
fn split_sip_one_row_is_within_three_units_and_costs_what_it_says() {
    check(seed(41), (1, 96, 200), Rescale::Truncate);
}

#[test]
fn split_sip_on_a_prompt_keeping_all_bits_is_exact() {
    check(seed(42), (4, 40, 70), Rescale::Keep);
}

#[test]
fn split_sip_material_is_used_once_and_for_its_shape_only() {
    let seed = seed(43);
    // The client tries twice (its second use is refused before it sends anything), the
    // server once.
    let (want, ys, yc, _, _) = run_split(seed, (2, 2, 12, 9), Rescale::Truncate, (1, 2));
    let (s0, c0) = (ys[0].as_ref().unwrap(), yc[0].as_ref().unwrap());
    assert!(max_gap(&s0.reconstruct(c0).unwrap(), &want) <= 3);
    let err = yc[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
    // Material made for 3 rows, used on 2: refused by its shape before anything is sent.
    let (_, _, yc, _, _) = run_split(seed ^ 1, (3, 2, 12, 9), Rescale::Truncate, (0, 1));
    let err = yc[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("another name or shape"), "{err}");
}
