//! LayerNorm's normalisation and the per-row rsqrt on random shares, against the plaintext
//! mirror (`approx::layernorm`, up to the truncation carries) and f64, with their exact cost.
mod common;
use common::{both_sessions, edge_shares, end_with_server_flight};
use mpc_core::{FixedPoint, Ring};
use ot_nonlinear::approx::layernorm::{normalize_row, rsqrt as rsqrt_mirror, R_FRAC};
use ot_nonlinear::functions::{layernorm, layernorm_cost, rsqrt, rsqrt_cost};
use ot_nonlinear::mpc::Session;

const LIN: FixedPoint = FixedPoint::LINEAR;

fn reconstruct(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| x.wrapping_add(y)).collect()
}

#[test]
fn rsqrt_matches_the_mirror_and_its_cost() {
    // Edge values: the smallest input, every power of two and its neighbours, the largest.
    let mut v: Vec<u64> = vec![1, 2, 3, (1 << 32) - 1, 262_144, 12_345_678];
    for j in [1u32, 7, 16, 17, 24, 31] {
        v.extend([(1u64 << j) - 1, 1 << j, (1 << j) + 1]);
    }
    let n = v.len();
    let (s, c) = edge_shares(&v, 5);
    let ((rs, ss), (rc, sc)) = both_sessions("rsqrt", move |sess: &mut Session| {
        let mine = if sess.is_server() { &s } else { &c };
        sess.reserve(ot_nonlinear::functions::rsqrt::rsqrt_cots(n))?;
        end_with_server_flight(sess)?;
        rsqrt(sess, mine)
    });
    let got = reconstruct(&rs, &rc);
    for (i, (&g, &x)) in got.iter().zip(&v).enumerate() {
        let want = rsqrt_mirror(x);
        // Each of the seven truncations may be one low; y's units at 18 bits (≈ 2^-18.5
        // relative, a few of them after the Newton step) scale with the result.
        let diff = (want as f64 - g as f64).abs();
        assert!(
            diff <= 3e-5 * want as f64 + 4.0,
            "rsqrt({x}) #{i}: {g} vs mirror {want}"
        );
        let exact = 1.0 / (x as f64 / (1u64 << 18) as f64).sqrt();
        let got = g as f64 / (R_FRAC as f64).exp2();
        assert!(
            (got - exact).abs() <= 1e-4 * exact + 1e-4,
            "rsqrt({x}): {got} vs {exact}"
        );
    }
    let want = rsqrt_cost(n);
    assert_eq!(
        (ss.bytes_sent, sc.bytes_sent),
        (want.server_bytes, want.client_bytes)
    );
    assert_eq!(ss.rounds.max(sc.rounds), want.rounds, "rounds");
}

#[test]
fn layernorm_matches_the_mirror_and_f64() {
    let (rows, n) = (5usize, 96usize);
    let mut xs = Vec::with_capacity(rows * n);
    for r in 0..rows {
        // Rows of different scales and offsets; row 4 constant but one value (tiny variance).
        let scale = [0.3, 1.0, 6.0, 40.0, 0.0][r];
        for i in 0..n {
            let t = ((i * 7919 + r * 31) % 997) as f64 / 498.5 - 1.0;
            xs.push(if r == 4 {
                if i == 0 {
                    0.5
                } else {
                    -0.25
                }
            } else {
                scale * t + r as f64
            });
        }
    }
    let x: Vec<u64> = xs.iter().map(|&v| LIN.encode(v).unwrap()).collect();
    let (s, c) = edge_shares(&x, 9);
    let eps = 1e-12;
    let ((ys, ss), (yc, sc)) = both_sessions("layernorm", move |sess: &mut Session| {
        let mine = if sess.is_server() { &s } else { &c };
        sess.reserve(ot_nonlinear::functions::layernorm::layernorm_cots(rows, n))?;
        end_with_server_flight(sess)?;
        layernorm(sess, mine, n, eps)
    });
    let got = reconstruct(&ys, &yc);
    for r in 0..rows {
        let mut mirror = x[r * n..(r + 1) * n].to_vec();
        normalize_row(&mut mirror, eps);
        let row = &xs[r * n..(r + 1) * n];
        let mean = row.iter().sum::<f64>() / n as f64;
        let sd = (row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        for i in 0..n {
            let g = LIN.decode(got[r * n + i]);
            let m = LIN.decode(mirror[i]);
            // Carries: v at 10 bits may be one unit low (2^-10/sd in ŷ, twice with the mean's);
            // each v at 6 bits in the variance may be one unit low, moving var by up to
            // 2·Σ|v|·2^-6/n ≤ 2·sd·2^-6·√n/n, i.e. ŷ relatively by ≤ 2^-6/(sd·√n) (×3 margin).
            let unit = (-10f64).exp2() / sd;
            let var_rel = 3.0 / (64.0 * sd * (n as f64).sqrt()) + 1e-4;
            assert!(
                (g - m).abs() <= 2.5 * unit + var_rel * m.abs(),
                "row {r}[{i}]: {g} vs mirror {m}"
            );
            let exact = (row[i] - mean) / sd;
            assert!(
                (g - exact).abs() <= 5e-3 / sd + 1e-3 * exact.abs(),
                "row {r}[{i}]: {g} vs {exact}"
            );
        }
    }
    let want = layernorm_cost(rows, n);
    assert_eq!(
        (ss.bytes_sent, sc.bytes_sent),
        (want.server_bytes, want.client_bytes)
    );
    assert_eq!(ss.rounds.max(sc.rounds), want.rounds, "rounds");
    let _ = Ring::R64;
}
