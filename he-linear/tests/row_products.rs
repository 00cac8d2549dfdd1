//! Row-structured products on HE (LayerNorm's and attention's normalisation): exact
//! reconstruction modulo 2^64 (modulo 2^38 through a top window, within 3 units through a
//! truncating window) on random shares with edge values, exact bytes, two flights, and shape
//! errors.
mod common;
use common::{product_keys, random_matrix, run_pair};
use he_linear::matrix::{MatDims, ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products::{
    row_scalar_product, row_square_sums, row_square_sums_bytes, SquareSumsRole,
};
use he_linear::secret_product::{ProductKeys, ProductPlan};
use mpc_core::{Channel, Error, Party, Seed};

/// Runs `f` for both parties on shares of (r, V); returns (server, client) outputs and the
/// client's (bytes sent, bytes received, rounds).
#[allow(clippy::type_complexity)]
fn both<T: Send + 'static>(
    params: &HeParams,
    k: usize,
    n: usize,
    seed: u8,
    f: fn(&mut Channel, &HeParams, ProductKeys<'_>, Party, &[u64], &RingMatrix) -> T,
) -> ((Vec<u64>, RingMatrix), T, T, (u64, u64, u64)) {
    let (r, v) = (random_matrix(1, k, seed), random_matrix(k, n, seed + 1));
    let (rc, vc) = (random_matrix(1, k, seed + 2), random_matrix(k, n, seed + 3));
    let (rs, vs) = (r.sub(&rc).unwrap(), v.sub(&vc).unwrap());
    let [(ssk, spk, sgk), (csk, cpk, cgk)] = product_keys(params);
    let (sp, cp) = (params.clone(), params.clone());
    let (server, (client, stats)) = run_pair(
        move |ch: &mut Channel| {
            let keys = ProductKeys {
                my_sk: &ssk,
                peer_pk: &cpk,
                peer_galois: Some(&cgk),
            };
            f(ch, &sp, keys, Party::Server, rs.data(), &vs)
        },
        move |ch: &mut Channel| {
            let keys = ProductKeys {
                my_sk: &csk,
                peer_pk: &spk,
                peer_galois: Some(&sgk),
            };
            let out = ch.scope("rows", |ch| f(ch, &cp, keys, Party::Client, rc.data(), &vc));
            (out, ch.stats_of("rows").unwrap())
        },
    );
    let stats = (stats.bytes_sent, stats.bytes_recv, stats.rounds);
    ((r.data().to_vec(), v), server, client, stats)
}

fn scalar(
    ch: &mut Channel,
    p: &HeParams,
    keys: ProductKeys<'_>,
    _: Party,
    r: &[u64],
    v: &RingMatrix,
) -> RingMatrix {
    row_scalar_product(ch, p, keys, r, v, Window::full(p), Seed([3; 16])).unwrap()
}

/// LayerNorm's window: bits [12, 38) of the product.
fn layernorm_window(p: &HeParams) -> Window {
    Window::new(p, 12, 38).unwrap()
}

fn scalar_truncated(
    ch: &mut Channel,
    p: &HeParams,
    keys: ProductKeys<'_>,
    _: Party,
    r: &[u64],
    v: &RingMatrix,
) -> RingMatrix {
    row_scalar_product(ch, p, keys, r, v, layernorm_window(p), Seed([3; 16])).unwrap()
}

/// Square sums modulo 2^BITS.
fn squares<const BITS: u32>(
    ch: &mut Channel,
    p: &HeParams,
    keys: ProductKeys<'_>,
    party: Party,
    _: &[u64],
    v: &RingMatrix,
) -> Vec<u64> {
    let role = match party {
        Party::Client => SquareSumsRole::KeyHolder { sk: keys.my_sk },
        Party::Server => SquareSumsRole::Evaluator {
            holder_pk: keys.peer_pk,
            holder_galois: keys.peer_galois,
        },
    };
    row_square_sums(ch, p, role, v, BITS, Seed([4; 16])).unwrap()
}

#[test]
fn row_scalar_products_are_exact() {
    let params = HeParams::packed_products().unwrap();
    for (k, n, seed) in [(5usize, 9usize, 1u8), (33, 70, 20)] {
        let ((r, v), s, c, (sent, recv, rounds)) = both(&params, k, n, seed, scalar);
        let got = s.add(&c).unwrap();
        for i in 0..k {
            for j in 0..n {
                assert_eq!(got.get(i, j), r[i].wrapping_mul(v.get(i, j)), "({i}, {j})");
            }
        }
        let bytes = ProductPlan::new(&params, ProductShape { k, m: k, n })
            .unwrap()
            .bytes(&params) as u64;
        assert_eq!((sent, recv, rounds), (bytes, bytes, 2));
    }
}

#[test]
fn truncating_window_is_within_three_units() {
    let params = HeParams::packed_products().unwrap();
    let window = layernorm_window(&params);
    for (k, n, seed) in [(5usize, 9usize, 5u8), (33, 70, 60)] {
        let ((r, v), s, c, (sent, recv, rounds)) = both(&params, k, n, seed, scalar_truncated);
        for i in 0..k {
            for j in 0..n {
                let got = window.reduce(s.get(i, j).wrapping_add(c.get(i, j)));
                let want = window.reduce(r[i].wrapping_mul(v.get(i, j)) >> 12);
                let err = window.reduce(got.wrapping_sub(want).wrapping_add(3));
                assert!(err <= 6, "({i}, {j}): {got} vs {want}");
            }
        }
        let plan = ProductPlan::new(&params, ProductShape { k, m: k, n }).unwrap();
        let windowed = plan.sip.with_window(window);
        let bytes = (windowed.input_bytes(&params) + windowed.output_bytes(&params)) as u64;
        assert!(bytes < plan.bytes(&params) as u64);
        assert_eq!((sent, recv, rounds), (bytes, bytes, 2));
    }
}

#[test]
fn row_square_sums_are_exact_in_chunks() {
    let params = HeParams::packed_products().unwrap();
    // 700 columns exceed the packed parameters' 512 terms: two chunks of 350.
    for (k, n, seed) in [(6usize, 11usize, 3u8), (17, 700, 40)] {
        let ((_, v), s, c, (sent, recv, rounds)) = both(&params, k, n, seed, squares::<64>);
        for i in 0..k {
            let want = v
                .row(i)
                .iter()
                .fold(0u64, |a, &x| a.wrapping_add(x.wrapping_mul(x)));
            assert_eq!(s[i].wrapping_add(c[i]), want, "row {i}");
        }
        let (up, down) = row_square_sums_bytes(&params, MatDims { rows: k, cols: n }, 64).unwrap();
        assert_eq!((sent, recv, rounds), (up as u64, down as u64, 2));
        let ((_, v), s, c, (sent, recv, rounds)) = both(&params, k, n, seed, squares::<38>);
        for i in 0..k {
            let want = v
                .row(i)
                .iter()
                .fold(0u64, |a, &x| a.wrapping_add(x.wrapping_mul(x)));
            assert_eq!(
                s[i].wrapping_add(c[i]) % (1 << 38),
                want % (1 << 38),
                "row {i}"
            );
            assert!(s[i] < 1 << 38 && c[i] < 1 << 38);
        }
        let (up, down) = row_square_sums_bytes(&params, MatDims { rows: k, cols: n }, 38).unwrap();
        assert_eq!((sent, recv, rounds), (up as u64, down as u64, 2));
    }
}

#[test]
fn layernorm_and_normalisation_shapes_at_bert_base_cost() {
    let params = HeParams::packed_products().unwrap();
    let product = ProductPlan::new(
        &params,
        ProductShape {
            k: 128,
            m: 128,
            n: 768,
        },
    )
    .unwrap();
    let (up, down) = row_square_sums_bytes(
        &params,
        MatDims {
            rows: 128,
            cols: 768,
        },
        64,
    )
    .unwrap();
    assert_eq!(product.bytes(&params), 2_650_176);
    assert_eq!((up, down), (2_752_704, 577_536));
    // As LayerNorm runs them: the product through bits [12, 38), the sums modulo 2^38.
    let windowed = product.sip.with_window(layernorm_window(&params));
    let scalar = windowed.input_bytes(&params) + windowed.output_bytes(&params);
    let (up, down) = row_square_sums_bytes(
        &params,
        MatDims {
            rows: 128,
            cols: 768,
        },
        38,
    )
    .unwrap();
    println!(
        "BERT-base LayerNorm: row-scalar product {scalar} B each way ({} merges per party), \
         square sums {up} B client → server, {down} B back",
        product.sip.merges()
    );
    assert_eq!(scalar, 1_740_864);
    assert_eq!((up, down), (2_752_704, 364_544));
    // Attention's normalisation per head, diag(r)·O with O 128 × 64: Oᵀ encrypted, through
    // bits [16, 64).
    let norm = ProductPlan::new(
        &params,
        ProductShape {
            k: 128,
            m: 128,
            n: 64,
        },
    )
    .unwrap();
    assert!(norm.transposed);
    assert_eq!(norm.bytes(&params), 373_776);
    let windowed = norm.sip.with_window(Window::new(&params, 16, 64).unwrap());
    assert_eq!(
        windowed.input_bytes(&params) + windowed.output_bytes(&params),
        343_056
    );
}

#[test]
fn mismatched_row_scalars_are_refused() {
    let params = HeParams::packed_products().unwrap();
    let [(sk, _, _), (_, pk, gk)] = product_keys(&params);
    let keys = ProductKeys {
        my_sk: &sk,
        peer_pk: &pk,
        peer_galois: Some(&gk),
    };
    let (mut ch, _peer) = Channel::mem_pair();
    let v = random_matrix(4, 3, 9);
    let err = row_scalar_product(
        &mut ch,
        &params,
        keys,
        &[1, 2, 3],
        &v,
        Window::full(&params),
        Seed([3; 16]),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}
