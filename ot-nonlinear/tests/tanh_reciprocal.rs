//! The any-range reciprocal and tanh on random shares (with edge shares), against their
//! plaintext mirrors (`approx::fixed::reciprocal`, `approx::fixed::tanh`, within the documented
//! truncation carries) and f64, with their exact cost (bytes each way, rounds).
mod common;
use common::{both_sessions, edge_shares, end_with_server_flight};
use mpc_core::AesPrg;
use mpc_core::{FixedPoint, Ring};
use ot_nonlinear::approx::fixed::{self, RECIPROCAL_BITS};
use ot_nonlinear::functions::reciprocal_any::reciprocal_any_cots;
use ot_nonlinear::functions::tanh::tanh_cots;
use ot_nonlinear::functions::{
    reciprocal_any, reciprocal_any_cost, reciprocal_within, tanh, tanh_cost,
};
use ot_nonlinear::mpc::{Cost, Session};
use ot_nonlinear::Block;

const LIN: FixedPoint = FixedPoint::LINEAR;
const R64: Ring = Ring::R64;

fn reconstruct(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| x.wrapping_add(y)).collect()
}

fn uniform(prg: &mut AesPrg) -> f64 {
    (prg.block().low_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `f` on shares of `x` (edge shares at every 13th position) after reserving `cots`;
/// returns the reconstructed output and asserts the exact bytes (each way) and rounds.
fn run_exact(
    label: &'static str,
    x: &[u64],
    cots: ot_nonlinear::mpc::CotDemand,
    cost: Cost,
    f: fn(&mut Session, &[u64]) -> mpc_core::Result<Vec<u64>>,
) -> Vec<u64> {
    let (s, c) = edge_shares(x, 11);
    let ((ys, ss), (yc, sc)) = both_sessions(label, move |sess: &mut Session| {
        let mine = if sess.is_server() { &s } else { &c };
        sess.reserve(cots)?;
        end_with_server_flight(sess)?;
        f(sess, mine)
    });
    assert_eq!(
        (ss.bytes_sent, sc.bytes_sent),
        (cost.server_bytes, cost.client_bytes),
        "{label}: bytes"
    );
    assert_eq!(ss.rounds.max(sc.rounds), cost.rounds, "{label}: rounds");
    reconstruct(&ys, &yc)
}

/// The candidate highest bit of a raw input: its highest set bit, clamped to 0..=36.
fn highest(x: u64) -> u32 {
    if R64.to_signed(x) <= 0 {
        0
    } else {
        (63 - x.leading_zeros()).min(RECIPROCAL_BITS)
    }
}

#[test]
fn reciprocal_any_matches_the_mirror_f64_and_its_cost() {
    // Edge values: the smallest and largest inputs of the range, every power of two (where
    // the highest bit changes) and one unit either side, beyond the range (0 from 2^36 up to
    // the largest positive element), 0; then log-uniform values over the range.
    let mut x: Vec<u64> = vec![1, 2, 3, (1 << 36) - 1, 1 << 36, (1 << 36) + 1, 1 << 50];
    x.extend([(1 << 62) + 12_345, i64::MAX as u64, 0]);
    for j in 1..36 {
        x.extend([(1u64 << j) - 1, 1 << j, (1 << j) + 1]);
    }
    let mut prg = AesPrg::from_block(Block(21));
    while x.len() < 300 {
        x.push((uniform(&mut prg) * 36.0).exp2() as u64);
    }
    let n = x.len();
    let got = run_exact(
        "reciprocal_any",
        &x,
        reciprocal_any_cots(n),
        reciprocal_any_cost(n),
        |sess, x| {
            // The candidates must lie in 0..36.
            assert!(reciprocal_within(sess, x, 30..37).is_err());
            reciprocal_any(sess, x)
        },
    );
    let (mut worst_mirror, mut worst_rel) = (0f64, 0f64);
    for (&g, &v) in got.iter().zip(&x) {
        let m = fixed::reciprocal(v);
        // Five truncations may each be one unit low: ≤ 11 units of w (18 bits) after the
        // Goldschmidt steps (1/c's slope ≤ 4 on c's unit, ≈ 3 on e's, ≤ 2 on e²'s, 1 on each
        // w's), scaled by 2^{17−k} (a floor for k > 17: values δ apart floor ≤ ⌈δ⌉ apart, so
        // 2 units happen with ≈ 7 % probability per run at k = 21, 22), plus the last
        // truncation's unit.
        // x = 0 (c = 0, or one unit below it): e ≈ 1, the steps' slopes are larger; the
        // result stays within 1e-4 of the mirror's 4·2.9142·2^17, relatively.
        let k = highest(v);
        let bound = if v == 0 {
            1e-4 * m as f64
        } else {
            (12.0 * (17.0 - k as f64).exp2()).ceil() + 1.0
        };
        let diff = R64.to_signed(g.wrapping_sub(m)) as f64;
        assert!(
            diff.abs() <= bound,
            "1/{v}: {g} vs mirror {m} (bound {bound})"
        );
        if v == 0 || k >= RECIPROCAL_BITS {
            continue;
        }
        worst_mirror = worst_mirror.max((diff.abs() - 1.0).max(0.0) / (17.0 - k as f64).exp2());
        // In the range: relative error ≤ 1e-4 plus one unit (mirror), and the carries.
        let xr = LIN.decode(v);
        let exact = 1.0 / xr;
        let unit = 1.0 / LIN.scale();
        let mr = LIN.decode(m);
        assert!(
            (mr - exact).abs() <= 1e-4 * exact + unit,
            "mirror 1/{xr}: {mr} vs {exact}"
        );
        // The secure result: the mirror's error plus the carries above.
        let gr = LIN.decode(g);
        assert!(
            (gr - exact).abs() <= 1e-4 * exact + (1.0 + bound) * unit,
            "secure 1/{xr}: {gr} vs {exact}"
        );
        if k <= 17 {
            worst_rel = worst_rel.max((gr - exact).abs() / exact);
        }
    }
    eprintln!(
        "reciprocal_any: worst |secure − mirror| {worst_mirror:.2} units of w (bound 11), \
         worst relative error vs f64 (x < 1) {worst_rel:.2e}"
    );
}

#[test]
fn tanh_matches_the_mirror_f64_and_its_cost() {
    // Edge values: 0, ±1 and ±2 units, ±1, exp's threshold |x| = 7 and one unit either side,
    // saturation (±10, ±100), the domain's ends (|x| just below 2^13); then N(0, 3²)-like
    // values (sums of uniforms) for the bulk.
    let ulp = 1.0 / LIN.scale();
    let mut xs = vec![0.0];
    for v in [
        ulp,
        2.0 * ulp,
        0.5,
        1.0,
        3.5,
        7.0 - ulp,
        7.0,
        7.0 + ulp,
        10.0,
        100.0,
        4000.0,
        8191.0,
        8192.0 - ulp,
    ] {
        xs.extend([v, -v]);
    }
    let mut prg = AesPrg::from_block(Block(22));
    while xs.len() < 240 {
        let z: f64 = (0..12).map(|_| uniform(&mut prg)).sum::<f64>() - 6.0;
        xs.push(3.0 * z);
    }
    let x: Vec<u64> = xs.iter().map(|&v| LIN.encode(v).unwrap()).collect();
    let n = x.len();
    let got = run_exact("tanh", &x, tanh_cots(n), tanh_cost(n), |sess, x| {
        tanh(sess, x)
    });
    let (mut worst_mirror, mut worst_f64, mut worst_secure) = (0f64, 0f64, 0f64);
    for (i, &g) in got.iter().enumerate() {
        let m = fixed::tanh(x[i]);
        // The squarings' carries move h = exp(−|x|) by < 2^9 units, e = h² by < 2h·2^9 + 1,
        // tanh by 2/(1 + e)² times that (≤ 0.65·2^10 over h ∈ [0, 1]), plus the reciprocal's
        // (≤ 12·2^-1 + 1) and the product's units: within 2^10 units.
        let diff = R64.to_signed(g.wrapping_sub(m)).unsigned_abs();
        assert!(diff <= 1024, "tanh({}): {g} vs mirror {m}", xs[i]);
        worst_mirror = worst_mirror.max(diff as f64);
        let exact = xs[i].tanh();
        let (mr, gr) = (LIN.decode(m), LIN.decode(g));
        assert!((mr - exact).abs() < 2e-3, "mirror tanh({}) = {mr}", xs[i]);
        assert!((gr - exact).abs() < 6e-3, "secure tanh({}) = {gr}", xs[i]);
        worst_f64 = worst_f64.max((mr - exact).abs());
        worst_secure = worst_secure.max((gr - exact).abs());
    }
    // Saturation and oddness at the edges: exactly ±1 from |x| > 7 on, 0 at 0 (±a carry).
    assert_eq!(fixed::tanh(x[0]), 0);
    for (i, v) in xs.iter().enumerate() {
        if v.abs() > 7.0 {
            let want = if *v > 0.0 { 1.0 } else { -1.0 };
            assert!((LIN.decode(got[i]) - want).abs() <= 4.0 * ulp, "tanh({v})");
        }
    }
    eprintln!(
        "tanh: worst |secure − mirror| {worst_mirror} units, mirror vs f64 {worst_f64:.2e}, \
         secure vs f64 {worst_secure:.2e}"
    );
}
