//! The functions of `ot_nonlinear::functions` on random shares against the plaintext mirror
//! (`approx::fixed`, within the documented carry bounds) and against f64, with edge values
//! (0, −1, ring extremes, largest positive / most negative fixed-point values, values exactly at
//! and just around breakpoints), and their exact cost (bytes each way, rounds).
mod common;
use common::{both_sessions as both, edge_shares as shares};
use mpc_core::AesPrg;
use mpc_core::{FixedPoint, Stats};
use ot_nonlinear::approx::fixed::{self, gelu_exact};
use ot_nonlinear::approx::Piece;
use ot_nonlinear::approx::{ApproxSet, PiecewisePoly, ScoreMask};
use ot_nonlinear::functions::*;
use ot_nonlinear::mpc::Cost;
use ot_nonlinear::Block;

const LIN: FixedPoint = FixedPoint::LINEAR;

/// Both parties sent exactly the cost function's bytes; the rounds are at most the steps' sum
/// (consecutive flights the same way merge) and exactly `rounds`, pinned.
fn assert_exact_cost(name: &str, (s, c): (&Stats, &Stats), cost: Cost, rounds: u64) {
    assert_eq!(
        (s.bytes_sent, c.bytes_sent),
        (cost.server_bytes, cost.client_bytes),
        "{name}: bytes"
    );
    assert!(s.rounds <= cost.rounds, "{name}: {} rounds", s.rounds);
    assert_eq!((s.rounds, c.rounds), (rounds, rounds), "{name}: rounds");
}

fn enc(x: f64) -> u64 {
    LIN.encode(x).unwrap()
}

fn dec(x: u64) -> f64 {
    LIN.decode(x)
}

/// Edge and random inputs of a piecewise function on its plan's range: 0, ±1, ±ulp, the
/// range's ends, every breakpoint (on the comparison grid) and ±1 ulp around it, a grid and
/// uniform values; then the ring extremes (checked for no failure only).
fn inputs(pw: &PiecewisePoly, grid_frac: u32, range: [f64; 2], n: usize) -> (Vec<u64>, usize) {
    let ulp = 1.0 / LIN.scale();
    let mut xs = vec![0.0, -1.0, 1.0, ulp, -ulp, range[0] + ulp, range[1] - ulp];
    for &b in &pw.breakpoints {
        let g = (b * (grid_frac as f64).exp2()).round() / (grid_frac as f64).exp2();
        xs.extend([g, g - ulp, g + ulp, g + 1.0 / 32.0]);
    }
    let mut prg = AesPrg::from_block(Block(7));
    while xs.len() < n {
        let r = (prg.block().low_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let lo = range[0].max(-8.0);
        let hi = range[1].min(8.0);
        xs.push(lo + (hi - lo) * r);
    }
    let mut v: Vec<u64> = xs
        .iter()
        .filter(|x| **x >= range[0] && **x <= range[1])
        .map(|&x| enc(x))
        .collect();
    let in_range = v.len();
    // Largest positive / most negative 18-bit values and the ring's extremes.
    v.extend([(1u64 << 63) - 1, 1 << 63, u64::MAX, 1]);
    (v, in_range)
}

fn in_piece_boundary(pw: &PiecewisePoly, grid_frac: u32, x: f64) -> bool {
    let step = (-(grid_frac as f64)).exp2();
    pw.breakpoints.iter().any(|&b| {
        let g = (b * (grid_frac as f64).exp2()).round() * step;
        x >= g && x < g + step
    })
}

#[test]
fn gelu_matches_the_mirror_and_costs_what_it_says() {
    for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
        let pw = set.layers[0].gelu.clone();
        let plan = set.plan.gelu;
        let (x, in_range) = inputs(&pw, plan.cmp_frac, plan.range, 300);
        let (xs, xc) = shares(&x, 11);
        let n = x.len();
        let s2 = set.clone();
        let ((ys, st_s), (yc, st_c)) = both("gelu", move |sess| {
            let (spec, bps) = gelu_spec(&s2, 0);
            let mine = if sess.is_server() { &xs } else { &xc };
            let bps = sess.is_server().then_some(bps);
            gelu(sess, &spec, bps, mine)
        });
        let (spec, _) = gelu_spec(&set, 0);
        let cost: Cost = gelu_cost(&spec, n);
        let want = if set.name == "nimbus" { 15 } else { 25 };
        assert_exact_cost(&set.name, (&st_s, &st_c), cost, want);
        let bound = plan.carry_bound(&pw);
        for i in 0..n {
            let got = ys[i].wrapping_add(yc[i]);
            let want = fixed::gelu(&set, 0, x[i]);
            if i >= in_range {
                continue; // outside the plan's range: defined, no failure
            }
            let xf = dec(x[i]);
            let diff = (dec(got) - dec(want)).abs();
            if in_piece_boundary(&pw, plan.cmp_frac, xf) {
                // The piece on the left may apply just above a breakpoint.
                let left = {
                    let mut p = pw.clone();
                    p.breakpoints.iter_mut().for_each(|b| *b += 1.0 / 16.0);
                    fixed::eval_piecewise(&p, &plan, x[i])
                };
                assert!(
                    diff <= bound || (dec(got) - dec(left)).abs() <= bound,
                    "{} gelu({xf}) = {} mirror {} left {}",
                    set.name,
                    dec(got),
                    dec(want),
                    dec(left)
                );
            } else {
                assert!(
                    diff <= bound,
                    "{} gelu({xf}): {} vs mirror {}",
                    set.name,
                    dec(got),
                    dec(want)
                );
            }
            if xf.abs() < 8.0 && set.name == "puma" {
                assert!((dec(got) - gelu_exact(xf)).abs() < 0.025, "puma gelu({xf})");
            }
        }
        assert!(matches!(pw.pieces[0], Piece::Zero));
    }
}

#[test]
fn exp_matches_the_mirror_and_costs_what_it_says() {
    for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
        let ulp = 1.0 / LIN.scale();
        let mut xs = vec![
            0.0,
            -ulp,
            -1.0,
            -4.0,
            -4.0 - ulp,
            -4.0 + ulp,
            -14.0,
            -14.0 - ulp,
            -100.0,
            -511.0,
        ];
        let mut prg = AesPrg::from_block(Block(3));
        while xs.len() < 200 {
            xs.push(-((prg.block().low_u64() >> 11) as f64 / (1u64 << 53) as f64) * 10.0);
        }
        let x: Vec<u64> = xs.iter().map(|&v| enc(v)).collect();
        let (ss, sc) = shares(&x, 5);
        let s2 = set.clone();
        let ((ys, st_s), (yc, st_c)) = both("exp", move |sess| {
            let mine = if sess.is_server() { &ss } else { &sc };
            let bps = exp_breakpoints(&s2, 0);
            let bps = sess.is_server().then_some(&bps[..]);
            exp(sess, &s2, 0, bps, mine)
        });
        let cost = exp_cost(&set, 0, x.len());
        assert_eq!(
            (st_s.bytes_sent, st_c.bytes_sent),
            (cost.server_bytes, cost.client_bytes),
            "{}: bytes",
            set.name
        );
        assert!(st_s.rounds <= cost.rounds, "{}: rounds", set.name);
        let want = if set.name == "nimbus" { 15 } else { 39 };
        assert_eq!(st_s.rounds, want, "{}: rounds", set.name);
        for i in 0..x.len() {
            let got = dec(ys[i].wrapping_add(yc[i]));
            let want = dec(fixed::exp_nonpositive(&set, 0, x[i]));
            // Carries: u, u², u³ (or each squaring) may each lose one ulp; just above the
            // threshold the zero piece may apply (exp(T) ≈ 0.018 for T = −4).
            let near = (xs[i] + 4.0).abs() < 1.0 / 64.0 || (xs[i] + 14.0).abs() < 1.0 / 64.0;
            let carry = match &set.layers[0].exp {
                ot_nonlinear::approx::ExpMethod::Piecewise(pw) => set.plan.exp.carry_bound(pw),
                // Each of the 8 squarings at most doubles the error and adds 1 ulp: < 2^9 ulps.
                _ => 512.0 / LIN.scale(),
            };
            let tol = if near { 0.03 } else { carry };
            assert!(
                (got - want).abs() <= tol,
                "{} exp({}) = {got}, mirror {want}",
                set.name,
                xs[i]
            );
        }
    }
}

const SOFTMAX_SHAPE: (usize, usize) = (4, 17);

/// Softmax test rows (real values) and the client's mask: random rows plus edge rows (all
/// equal, one dominant entry, near-equal maxima, extremes of the plan's range).
fn softmax_inputs() -> (Vec<f64>, Vec<bool>) {
    let (rows, cols) = SOFTMAX_SHAPE;
    let mut prg = AesPrg::from_block(Block(9));
    let mut xs: Vec<f64> = (0..rows * cols)
        .map(|_| ((prg.block().low_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 16.0)
        .collect();
    // Edge rows: all equal (ties everywhere), one dominant entry, near-equal maxima, extremes of
    // the plan's range.
    xs[cols..2 * cols].fill(0.0);
    xs[2 * cols + 5] = 40.0;
    xs[3 * cols] = 3.0;
    xs[3 * cols + 1] = 3.0 + 1.0 / 64.0;
    xs[3 * cols + 2] = -1.0;
    let mask: Vec<bool> = (0..rows * cols)
        .map(|i| i % cols < cols - 3 || i / cols == 1)
        .collect();
    (xs, mask)
}

#[test]
fn softmax_matches_the_mirror_and_costs_what_it_says() {
    let (rows, cols) = SOFTMAX_SHAPE;
    let (xs, mask) = softmax_inputs();
    let x: Vec<u64> = xs.iter().map(|&v| enc(v)).collect();
    for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
        let (ss, sc) = shares(&x, 13);
        let (s2, m2) = (set.clone(), mask.clone());
        let ((ys, st_s), (yc, st_c)) = both("softmax", move |sess| {
            let bps = exp_breakpoints(&s2, 0);
            if sess.is_server() {
                softmax(sess, &s2, 0, rows, cols, &ss, Some(&bps), ScoreMask::None)
            } else {
                let mask = ScoreMask::Private(Some(&m2));
                softmax(sess, &s2, 0, rows, cols, &sc, None, mask)
            }
        });
        let cost = softmax_cost(&set, 0, rows, cols);
        let want = if set.name == "nimbus" { 49 } else { 73 };
        assert_exact_cost(&set.name, (&st_s, &st_c), cost, want);
        for r in 0..rows {
            let mut want = x[r * cols..(r + 1) * cols].to_vec();
            let row_mask = ScoreMask::Private(Some(&mask[r * cols..(r + 1) * cols]));
            fixed::softmax_row(&set, 0, &mut want, row_mask);
            let keep: Vec<f64> = (0..cols)
                .filter(|&c| mask[r * cols + c])
                .map(|c| xs[r * cols + c])
                .collect();
            let mx = keep.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = keep.iter().map(|v| (v - mx).exp()).sum();
            for c in 0..cols {
                let i = r * cols + c;
                let got = dec(ys[i].wrapping_add(yc[i]));
                let m = dec(want[c]);
                assert!(
                    (got - m).abs() < 0.01,
                    "{} [{r},{c}] {got} vs mirror {m}",
                    set.name
                );
                let exact = if mask[i] { (xs[i] - mx).exp() / z } else { 0.0 };
                assert!(
                    (got - exact).abs() < 0.05,
                    "{} [{r},{c}] {got} vs {exact}",
                    set.name
                );
            }
        }
    }
}

#[test]
/// Under the client's private mask, and under the same mask made public (both parties pass
/// it) with row 0's excluded scores far above its kept ones: the private offset could not
/// exclude those, the public mask must, exactly.
fn softmax_unnormalized_matches_the_mirror_and_costs_what_it_says() {
    let cols = SOFTMAX_SHAPE.1;
    let (mut xs, mask) = softmax_inputs();
    for public in [false, true] {
        if public {
            (0..cols).for_each(|c| xs[c] = if mask[c] { xs[c] - 60.0 } else { 90.0 });
        }
        unnormalized_case(&xs, &mask, public);
    }
}

fn unnormalized_case(xs: &[f64], mask: &[bool], public: bool) {
    let (rows, cols) = SOFTMAX_SHAPE;
    let x: Vec<u64> = xs.iter().map(|&v| enc(v)).collect();
    for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
        let (ss, sc) = shares(&x, 17);
        let (s2, m2) = (set.clone(), mask.to_vec());
        let (((es, rs), st_s), ((ec, rc), st_c)) = both("softmax", move |sess| {
            let bps = exp_breakpoints(&s2, 0);
            let mask = match (public, sess.is_server()) {
                (true, _) => ScoreMask::Public(&m2),
                (false, true) => ScoreMask::None,
                (false, false) => ScoreMask::Private(Some(&m2)),
            };
            let (share, bps) = if sess.is_server() {
                (&ss, Some(bps.as_slice()))
            } else {
                (&sc, None)
            };
            softmax_unnormalized(sess, &s2, 0, rows, cols, share, bps, mask)
        });
        let cost = softmax_unnormalized_cost(&set, 0, rows, cols, false);
        let want = if set.name == "nimbus" { 45 } else { 69 };
        assert_exact_cost(&set.name, (&st_s, &st_c), cost, want);
        let r_scale = (1u64 << set.plan.softmax.r_frac) as f64;
        for r in 0..rows {
            let mut want = x[r * cols..(r + 1) * cols].to_vec();
            let row_mask = &mask[r * cols..(r + 1) * cols];
            let row_mask = if public {
                ScoreMask::Public(row_mask)
            } else {
                ScoreMask::Private(Some(row_mask))
            };
            let want_r = fixed::softmax_row_unnormalized(&set, 0, &mut want, row_mask);
            let got_r = rs[r].wrapping_add(rc[r]) as i64 as f64 / r_scale;
            let m_r = want_r as f64 / r_scale;
            // The tree's winner may sit up to 1/32 below the mirror's: every exp, so the row
            // sum, may grow by up to e^{1/32} − 1 ≈ 3.2 %, the reciprocal shrink alike.
            assert!(
                (got_r / m_r - 1.0).abs() < 0.04,
                "{} row {r}: r {got_r} vs mirror {m_r}",
                set.name
            );
            let mut sum = 0.0;
            for c in 0..cols {
                let i = r * cols + c;
                let got = dec(es[i].wrapping_add(ec[i]));
                sum += got;
                let m = dec(want[c]);
                assert!(
                    (got - m).abs() < 0.04,
                    "{} [{r},{c}] e {got} vs mirror {m}",
                    set.name
                );
                // In [0, 1] up to the carries.
                assert!((-1e-3..=1.0 + 1e-3).contains(&got), "{} e {got}", set.name);
                if !mask[i] && public {
                    assert_eq!(got, 0.0, "{} excluded [{r},{c}] e", set.name);
                } else if !mask[i] {
                    assert!(got < 1e-3, "{} padding [{r},{c}] e {got}", set.name);
                }
            }
            // The parts compose to a distribution: Σ_j e_ij·r_i ≈ 1.
            assert!(
                (sum * got_r - 1.0).abs() < 0.01,
                "{} row {r}: Σe·r = {}",
                set.name,
                sum * got_r
            );
        }
    }
}
