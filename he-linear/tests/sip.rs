//! SIP linear layer and the secret × secret product: exact reconstruction on random shares with
//! edge values, cost formulas, and typed errors.
mod common;
use common::{keys, product_keys, random_matrix, run_pair};
use he_linear::matrix::{ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::secret_product::{secret_product, secret_products, ProductKeys, ProductPlan};
use he_linear::sip::{self, SipPlan};
use mpc_core::{Channel, Error, Seed};

#[test]
fn sip_linear_layer_is_exact() {
    let params = HeParams::default_params().unwrap();
    for (k, m, n, seed) in [
        (3usize, 5usize, 7usize, 1u8),
        (17, 40, 9, 2),
        (1, 100, 300, 3),
    ] {
        let x = random_matrix(k, m, seed);
        let w = random_matrix(m, n, seed + 10);
        let x_c = random_matrix(k, m, seed + 20);
        let x_s = x.sub(&x_c).unwrap();
        let (sk, pk) = keys(&params, seed);
        let (sp, cp) = (params.clone(), params.clone());
        let w2 = w.clone();
        let (server, (client, stats)) = run_pair(
            move |ch: &mut Channel| {
                let plan = SipPlan::new(&sp, ProductShape { k, m, n }).unwrap();
                let plain = sip::encode_plain(&sp, &plan, &w2).unwrap();
                sip::server_online(ch, &sp, &pk, &w2, &plain, &x_s, Seed([1; 16])).unwrap()
            },
            move |ch: &mut Channel| {
                let share = ch
                    .scope("sip", |ch| {
                        sip::client_online(ch, &cp, &sk, &x_c, n, Seed([2; 16]))
                    })
                    .unwrap();
                (share, ch.stats_of("sip").unwrap())
            },
        );
        assert_eq!(client.add(&server).unwrap(), x.matmul(&w).unwrap());
        let plan = SipPlan::new(&params, ProductShape { k, m, n }).unwrap();
        assert_eq!(stats.rounds, 2);
        assert_eq!(stats.bytes_sent as usize, plan.input_bytes(&params));
        assert_eq!(stats.bytes_recv as usize, plan.output_bytes(&params));
    }
}

/// Runs a batch of secret products on random shares (with edge values) and checks the sums;
/// returns the client's rounds and bytes sent.
fn check_products(params: &HeParams, shapes: &[(usize, usize, usize)], seed: u8) -> (u64, u64) {
    let mut server_in = Vec::new();
    let mut client_in = Vec::new();
    let mut want = Vec::new();
    for (h, &(k, m, n)) in shapes.iter().enumerate() {
        let s = seed + 4 * h as u8;
        let (x, y) = (random_matrix(k, m, s), random_matrix(m, n, s + 1));
        let (xc, yc) = (random_matrix(k, m, s + 2), random_matrix(m, n, s + 3));
        server_in.push((x.sub(&xc).unwrap(), y.sub(&yc).unwrap()));
        client_in.push((xc, yc));
        want.push(x.matmul(&y).unwrap());
    }
    let [(ssk, spk, sgk), (csk, cpk, cgk)] = product_keys(params);
    let (sp, cp) = (params.clone(), params.clone());
    let (server, (client, stats)) = run_pair(
        move |ch: &mut Channel| {
            let pairs: Vec<_> = server_in.iter().map(|(x, y)| (x, y)).collect();
            let keys = ProductKeys {
                my_sk: &ssk,
                peer_pk: &cpk,
                peer_galois: Some(&cgk),
            };
            if pairs.len() == 1 {
                let (x, y) = pairs[0];
                let full = Window::full(&sp);
                vec![secret_product(ch, &sp, keys, (x, y), full, Seed([3; 16])).unwrap()]
            } else {
                secret_products(ch, &sp, keys, &pairs, Window::full(&sp), Seed([3; 16])).unwrap()
            }
        },
        move |ch: &mut Channel| {
            let pairs: Vec<_> = client_in.iter().map(|(x, y)| (x, y)).collect();
            let keys = ProductKeys {
                my_sk: &csk,
                peer_pk: &spk,
                peer_galois: Some(&sgk),
            };
            let z = ch
                .scope("products", |ch| {
                    secret_products(ch, &cp, keys, &pairs, Window::full(&cp), Seed([4; 16]))
                })
                .unwrap();
            (z, ch.stats_of("products").unwrap())
        },
    );
    for ((c, s), w) in client.iter().zip(&server).zip(&want) {
        assert_eq!(&c.add(s).unwrap(), w);
    }
    // Symmetric protocol: each party sends its encryptions and its responses.
    let expect: usize = shapes
        .iter()
        .map(|&(k, m, n)| {
            ProductPlan::new(params, ProductShape { k, m, n })
                .unwrap()
                .bytes(params)
        })
        .sum();
    assert_eq!(stats.bytes_sent as usize, expect);
    assert_eq!(stats.bytes_recv as usize, expect);
    (stats.rounds, stats.bytes_sent)
}

#[test]
fn secret_times_secret_is_exact_and_takes_two_rounds() {
    let params = HeParams::default_params().unwrap();
    for (k, m, n, seed) in [(4usize, 6usize, 4usize, 1u8), (9, 16, 9, 2)] {
        assert_eq!(check_products(&params, &[(k, m, n)], seed).0, 2);
    }
}

#[test]
fn a_batch_of_secret_products_shares_the_same_two_rounds() {
    let params = HeParams::default_params().unwrap();
    let shapes = [(8usize, 4usize, 8usize), (3, 5, 2), (8, 4, 8)];
    assert_eq!(check_products(&params, &shapes, 40).0, 2);
}

#[test]
fn packed_secret_products_are_exact_and_smaller() {
    let packed = HeParams::packed_products().unwrap();
    let plain = HeParams::default_params().unwrap();
    // Ragged shapes (absent group members, partial blocks), then one attention head of
    // BERT-base: QKᵀ (128×64·64×128) and P·V (128×128·128×64).
    let (rounds, _) = check_products(&packed, &[(5, 7, 3), (33, 20, 17)], 60);
    assert_eq!(rounds, 2);
    let head = [(128usize, 64usize, 128usize), (128, 128, 64)];
    let (rounds, bytes) = check_products(&packed, &head, 70);
    assert_eq!(rounds, 2);
    let unpacked: usize = head
        .iter()
        .map(|&(k, m, n)| {
            let p = SipPlan::new(&plain, ProductShape { k, m, n }).unwrap();
            p.input_bytes(&plain) + p.output_bytes(&plain)
        })
        .sum();
    println!("one head, each way: packed {bytes} B, unpacked {unpacked} B");
    for &(k, m, n) in &head {
        let p = ProductPlan::new(&packed, ProductShape { k, m, n }).unwrap();
        println!(
            "  {k}×{m}·{m}×{n}: {p:?}, {} + {} B, {} merges",
            p.sip.input_bytes(&packed),
            p.sip.output_bytes(&packed),
            p.sip.merges()
        );
    }
    // P·V encrypts Vᵀ (one ciphertext) rather than P (two).
    let pv = ProductPlan::new(
        &packed,
        ProductShape {
            k: 128,
            m: 128,
            n: 64,
        },
    )
    .unwrap();
    assert!(pv.transposed && pv.sip.input_cts() == 1, "{pv:?}");
    assert!(
        !ProductPlan::new(
            &packed,
            ProductShape {
                k: 128,
                m: 64,
                n: 128
            }
        )
        .unwrap()
        .transposed
    );

    assert!((bytes as usize) * 3 < unpacked, "{bytes} vs {unpacked}");
}

#[test]
fn packed_products_without_galois_keys_are_refused() {
    let params = HeParams::packed_products().unwrap();
    let plan = SipPlan::new(&params, ProductShape { k: 4, m: 4, n: 4 }).unwrap();
    let (_, pk) = keys(&params, 3);
    let (mut ch, _peer) = Channel::mem_pair();
    let inputs = vec![he_linear::rlwe::Ciphertext::zero(&params); plan.input_cts()];
    let plain = sip::encode_plain(&params, &plan, &RingMatrix::zeros(4, 4)).unwrap();
    let seed = Seed([5; 16]);
    let err = sip::evaluate_and_respond(&mut ch, &params, &pk, None, &plan, &inputs, &plain, seed)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn sip_rejects_bad_inputs() {
    let params = HeParams::default_params().unwrap();
    // Wrong shapes.
    assert!(matches!(
        SipPlan::new(&params, ProductShape { k: 0, m: 3, n: 3 }),
        Err(Error::Shape { .. })
    ));
    let plan = SipPlan::new(&params, ProductShape { k: 2, m: 3, n: 4 }).unwrap();
    assert!(matches!(
        sip::encode_plain(&params, &plan, &RingMatrix::zeros(4, 3)),
        Err(Error::Shape { .. })
    ));
    // A truncated encrypted input: the evaluator gets an error, not a hang.
    let (sk, _) = keys(&params, 1);
    let p2 = params.clone();
    let (err, _) = run_pair(
        move |ch: &mut Channel| sip::recv_encrypted_input(ch, &p2, &plan).unwrap_err(),
        move |ch: &mut Channel| {
            let _ = sk;
            ch.send(&[0u8; 1000]).unwrap();
            ch.flush().unwrap();
        },
    );
    assert!(matches!(err, Error::Disconnected), "{err}");
    // Residues out of range are malformed.
    let p3 = params.clone();
    let (err, _) = run_pair(
        move |ch: &mut Channel| sip::recv_encrypted_input(ch, &p3, &plan).unwrap_err(),
        move |ch: &mut Channel| {
            let words = params.n() * params.rns().len();
            for _ in 0..plan.input_cts() {
                ch.send(&[0u8; 16]).unwrap();
                ch.send_pod(&vec![u32::MAX; words]).unwrap();
            }
            ch.flush().unwrap();
        },
    );
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
}
