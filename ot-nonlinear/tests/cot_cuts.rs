//! The COT cuts of issue 21 against plaintext references on random shares with edge values,
//! with exact bytes each way, rounds and COTs against their cost functions:
//! * comparisons in lanes ([`millionaire_lanes`], [`drelu_lanes`], [`drelu_reduced_lanes`]):
//!   several server values against one client value, sharing the leaf OTs;
//! * the narrow square and product ([`square_narrow`], [`mul_narrow`]): x² and x·y mod 2^ℓ from
//!   the low k bits, |x|, |y| < 2^{k−2};
//! * the row maximum's shapes ([`row_max`]): Softmax's (2, 2, 2, 4, 4 on 7-bit digits), the
//!   binary tree and the former 4/8-way tournament, the sum of the winner's differences by
//!   one-hot indicators, x and y on one mux COT.
//!
//! Seeded (`OT_TEST_SEED`, printed).
mod common;

use common::{both_sessions, end_with_server_flight, seed};
use mpc_core::AesPrg;
use mpc_core::{Result, Ring, Stats};
use ot_nonlinear::approx::SoftmaxPlan;
use ot_nonlinear::functions::max::{row_max, row_max_cost, row_max_cots, MaxShape};
use ot_nonlinear::mpc::drelu::{drelu_lanes_cost, drelu_lanes_cots, lanes_minus};
use ot_nonlinear::mpc::millionaire::{millionaire_lanes_cost, millionaire_lanes_cots};
use ot_nonlinear::mpc::product::{
    mul_cost, mul_narrow_cost, mul_narrow_cots, square_cost, square_narrow_cost, square_narrow_cots,
};
use ot_nonlinear::mpc::{
    drelu_lanes, drelu_reduced_lanes, millionaire_lanes, mul_narrow, square_narrow, Cost,
    CotDemand, Session,
};
use ot_nonlinear::Block;

/// Reserves `demand`, runs `f` standalone and returns its output, the stats under `label` and
/// the COTs it drew.
fn measured<T>(
    sess: &mut Session,
    label: &str,
    demand: CotDemand,
    f: impl FnOnce(&mut Session) -> Result<T>,
) -> Result<(T, Stats, CotDemand)> {
    sess.reserve(demand)?;
    end_with_server_flight(sess)?;
    sess.ch.clear_stats();
    let before = sess.cots_drawn();
    let out = f(sess)?;
    let after = sess.cots_drawn();
    assert_eq!(
        common::extension_bytes(&sess.ch),
        0,
        "{label}: extension inside"
    );
    let drawn = CotDemand {
        server: after.server - before.server,
        client: after.client - before.client,
    };
    Ok((out, sess.ch.stats_of(label).unwrap_or_default(), drawn))
}

fn assert_cost(s: &Stats, c: &Stats, cost: Cost, what: &str) {
    assert_bytes(s, c, cost, what);
    assert_eq!(
        (s.rounds, c.rounds),
        (cost.rounds, cost.rounds),
        "{what}: rounds"
    );
}

/// Exact bytes each way.
fn assert_bytes(s: &Stats, c: &Stats, cost: Cost, what: &str) {
    assert_eq!(
        (s.bytes_sent, s.bytes_recv, c.bytes_sent, c.bytes_recv),
        (
            cost.server_bytes,
            cost.client_bytes,
            cost.client_bytes,
            cost.server_bytes
        ),
        "{what}: bytes (server sent, server received, client sent, client received)"
    );
}

/// `n` uniform values of `ring` from `seed`.
fn uniform(n: usize, ring: Ring, seed: u64, salt: u128) -> Vec<u64> {
    let mut prg = AesPrg::from_block(Block(((seed as u128) << 64) | salt));
    (0..n).map(|_| ring.reduce(prg.block().low_u64())).collect()
}

/// Shares of `x` in `ring`: uniform server shares with edge shares (0, all-ones, x) at every
/// 7th position; this party's.
fn share(sess: &Session, x: &[u64], ring: Ring, seed: u64, salt: u128) -> Vec<u64> {
    let (s, c) = split(x, ring, seed, salt);
    if sess.is_server() {
        s
    } else {
        c
    }
}

/// Both parties' shares of [`share`] (server, client).
fn split(x: &[u64], ring: Ring, seed: u64, salt: u128) -> (Vec<u64>, Vec<u64>) {
    let r = uniform(x.len(), ring, seed, salt);
    let s: Vec<u64> = r
        .iter()
        .zip(x)
        .enumerate()
        .map(|(i, (&r, &v))| match i % 7 {
            2 => 0,
            4 => ring.mask(),
            6 => v,
            _ => r,
        })
        .collect();
    let c = x.iter().zip(&s).map(|(&v, &s)| ring.sub(v, s)).collect();
    (s, c)
}

fn open_bits(a: &[bool], b: &[bool]) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[test]
fn millionaire_lanes_against_plaintext() {
    let s = seed(21);
    for (bits, lanes) in [(16u32, 2usize), (14, 3), (33, 31), (1, 2), (64, 2), (5, 1)] {
        let ring = Ring::new(bits).unwrap();
        let n = 200;
        let mut b = uniform(n, ring, s, 1);
        b[..4].copy_from_slice(&[0, ring.mask(), 1, ring.mask() >> 1]);
        // a: uniform, plus a = b, a = b ± 1 and the extremes in the first lanes.
        let mut a = uniform(n * lanes, ring, s, 2);
        for u in 0..n {
            match u % 5 {
                0 => a[u * lanes] = b[u],
                1 => a[u * lanes] = ring.add(b[u], 1),
                2 => a[u * lanes] = ring.sub(b[u], 1),
                3 => a[u * lanes] = ring.mask(),
                _ => a[u * lanes] = 0,
            }
        }
        let (a2, b2) = (a.clone(), b.clone());
        let ((zs, ss), (zc, cs)) = both_sessions("millionaire", move |sess| {
            let input = if sess.is_server() {
                a2.clone()
            } else {
                b2.clone()
            };
            let demand = millionaire_lanes_cots(n, lanes, bits, 4)?;
            let (z, st, drawn) = measured(sess, "millionaire", demand, |s| {
                millionaire_lanes(s, &input, lanes, bits, 4)
            })?;
            assert_eq!(drawn, demand, "COTs drawn");
            Ok((z, st))
        });
        let _ = (&ss, &cs);
        let z = open_bits(&zs.0, &zc.0);
        for u in 0..n {
            for c in 0..lanes {
                let i = u * lanes + c;
                assert_eq!(
                    z[i],
                    a[i] > b[u],
                    "bits {bits} lane {c}: {} > {}",
                    a[i],
                    b[u]
                );
            }
        }
        let cost = millionaire_lanes_cost(n, lanes, bits, 4).unwrap();
        assert_cost(
            &zs.1,
            &zc.1,
            cost,
            &format!("millionaire lanes {bits}×{lanes}"),
        );
    }
}

#[test]
fn drelu_lanes_against_plaintext() {
    let s = seed(22);
    let n = 300;
    for (l, lanes) in [(17u32, 2usize), (34, 31), (64, 36), (2, 3)] {
        let ring = Ring::new(l).unwrap();
        let max = ring.mask() >> 1;
        let mut x = uniform(n, ring, s, 3);
        x[..6].copy_from_slice(&[0, 1, ring.mask(), max, max + 1, 2]);
        let mut ts = uniform(lanes, ring, s, 4);
        ts[0] = 0;
        if lanes > 2 {
            ts[1] = x[5];
            ts[2] = ring.add(x[5], 1);
        }
        let (x2, t2) = (x.clone(), ts.clone());
        let ((ys, _), (yc, _)) = both_sessions("drelu", move |sess| {
            let mine = share(sess, &x2, ring, s, 5);
            let lanes_in = lanes_minus(sess.is_server(), &mine, &t2, ring);
            let demand = drelu_lanes_cots(n, lanes, ring);
            let (y, st, drawn) = measured(sess, "drelu", demand, |se| {
                drelu_lanes(se, &lanes_in, ring, lanes)
            })?;
            assert_eq!(drawn, demand, "COTs drawn");
            Ok((y, st))
        });
        let y = open_bits(&ys.0, &yc.0);
        for u in 0..n {
            for c in 0..lanes {
                let d = ring.sub(x[u], ts[c]);
                assert_eq!(
                    y[u * lanes + c],
                    !ring.msb(d),
                    "Z_2^{l}: x {} T {}",
                    x[u],
                    ts[c]
                );
            }
        }
        assert_cost(
            &ys.1,
            &yc.1,
            drelu_lanes_cost(n, lanes, ring),
            "drelu lanes",
        );
    }
    // The reduced ring (GELU's comparisons): drop 12, keep 17 on Z_2^64, thresholds ±2^16.
    let r64 = Ring::R64;
    let ts: Vec<u64> = vec![r64.reduce((-(1i64 << 16)) as u64), 1 << 14];
    let x: Vec<u64> = (0..n as i64).map(|i| ((i - 150) << 12) as u64).collect();
    let (x2, t2) = (x.clone(), ts.clone());
    let ((ys, _), (yc, _)) = both_sessions("drelu", move |sess| {
        let mine = share(sess, &x2, r64, s, 6);
        let lanes_in = lanes_minus(sess.is_server(), &mine, &t2, r64);
        drelu_reduced_lanes(sess, &lanes_in, r64, 12, 17, 2)
    });
    let y = open_bits(&ys, &yc);
    for u in 0..n {
        for c in 0..2 {
            let d = r64.to_signed(r64.sub(x[u], ts[c]));
            // Exact for 2^12 ≤ d or d < 0 (module comment of drelu); d ∈ [0, 2^12) may give 0.
            if !(0..1 << 12).contains(&d) {
                assert_eq!(y[u * 2 + c], d >= 0, "reduced: d {d}");
            }
        }
    }
}

#[test]
fn square_narrow_against_plaintext() {
    let s = seed(23);
    let n = 400;
    for (l, k) in [
        (22u32, 13u32),
        (25, 15),
        (38, 20),
        (38, 19),
        (64, 32),
        (10, 5),
        (22, 21),
    ] {
        let ring = Ring::new(l).unwrap();
        let lim = 1i64 << (k - 2); // |x| < 2^{k−2}
        let mut x: Vec<u64> = uniform(n, Ring::new(k - 1).unwrap(), s, 7)
            .into_iter()
            .map(|v| ring.reduce((v as i64 - lim) as u64))
            .collect();
        let edges = [0, 1, -1, lim - 1, -lim + 1, -lim, 2, -2];
        for (i, &e) in edges.iter().enumerate() {
            x[i] = ring.reduce(e as u64);
        }
        let x2 = x.clone();
        let ((zs, _), (zc, _)) = both_sessions("square", move |sess| {
            let mine = share(sess, &x2, ring, s, 8);
            let demand = square_narrow_cots(n, ring, k);
            let (z, st, drawn) = measured(sess, "square", demand, |se| {
                square_narrow(se, &mine, ring, k)
            })?;
            assert_eq!(drawn, demand, "COTs drawn");
            Ok((z, st))
        });
        for i in 0..n {
            assert_eq!(
                ring.add(zs.0[i], zc.0[i]),
                ring.mul(x[i], x[i]),
                "Z_2^{l}, k = {k}: x = {}",
                ring.to_signed(x[i])
            );
        }
        let cost = square_narrow_cost(n, ring, k);
        assert_cost(&zs.1, &zc.1, cost, &format!("narrow square Z_2^{l}, k {k}"));
        if k + 2 > l {
            assert_eq!(cost, square_cost(n, ring), "falls back to the square");
        }
    }
}

#[test]
fn mul_narrow_against_plaintext() {
    let s = seed(24);
    let n = 400;
    for (l, k) in [
        (25u32, 18u32),
        (25, 13),
        (46, 26),
        (64, 40),
        (64, 62),
        (10, 5),
        (25, 24),
    ] {
        let ring = Ring::new(l).unwrap();
        let lim = 1i64 << (k - 2);
        let signed = |salt| -> Vec<u64> {
            uniform(n, Ring::new(k - 1).unwrap(), s, salt)
                .into_iter()
                .map(|v| ring.reduce((v as i64 - lim) as u64))
                .collect()
        };
        let (mut x, mut y) = (signed(9), signed(10));
        let edges = [0, 1, -1, lim - 1, -lim + 1, -lim, 2, -2];
        for (i, &e) in edges.iter().enumerate() {
            for (j, &f) in edges.iter().enumerate() {
                x[i * edges.len() + j] = ring.reduce(e as u64);
                y[i * edges.len() + j] = ring.reduce(f as u64);
            }
        }
        let (x2, y2) = (x.clone(), y.clone());
        let ((zs, _), (zc, _)) = both_sessions("mul", move |sess| {
            let (mx, my) = (share(sess, &x2, ring, s, 11), share(sess, &y2, ring, s, 12));
            let demand = mul_narrow_cots(n, ring, k);
            let (z, st, drawn) =
                measured(sess, "mul", demand, |se| mul_narrow(se, &mx, &my, ring, k))?;
            assert_eq!(drawn, demand, "COTs drawn");
            Ok((z, st))
        });
        for i in 0..n {
            assert_eq!(
                ring.add(zs.0[i], zc.0[i]),
                ring.mul(x[i], y[i]),
                "Z_2^{l}, k = {k}: {} · {}",
                ring.to_signed(x[i]),
                ring.to_signed(y[i])
            );
        }
        let cost = mul_narrow_cost(n, ring, k);
        assert_cost(
            &zs.1,
            &zc.1,
            cost,
            &format!("narrow product Z_2^{l}, k {k}"),
        );
        if k + 2 > l {
            assert_eq!(cost, mul_cost(n, 1, ring), "falls back to the product");
        }
    }
}

#[test]
fn row_max_shapes_against_plaintext() {
    let s = seed(25);
    let plan = SoftmaxPlan::standard();
    let (r64, yr) = (Ring::R64, plan.max_keep);
    let keep = yr.bits();
    let lsb = 1i64 << plan.max_drop;
    for (rows, cols) in [(6usize, 128usize), (5, 37), (3, 9), (2, 1)] {
        // |x| < 2^{drop+keep−2} (all differences fit Z_2^keep), ties, near-equal maxima and
        // a ±1 ulp neighbourhood of the y grid in the first rows.
        let lim = 1u64 << (plan.max_drop + keep - 2);
        let mut x: Vec<u64> = uniform(
            rows * cols,
            Ring::new(plan.max_drop + keep - 1).unwrap(),
            s,
            13,
        )
        .into_iter()
        .map(|v| r64.sub(v, lim))
        .collect();
        for (i, v) in x[..cols].iter_mut().enumerate() {
            *v = r64.reduce(((i % 3) as i64 * lsb) as u64); // ties: 0, 1, 2 units of y
        }
        if rows > 1 {
            for (i, v) in x[cols..2 * cols].iter_mut().enumerate() {
                *v = r64.reduce((5 * lsb + (i % 3) as i64 - 1) as u64); // around a y step
            }
        }
        let (xs, xc) = split(&x, r64, s, 14);
        // The winner the protocol must return: the binary tree's on the shared y (each
        // party's local shift, the per-element carry included), the first largest y.
        let y_of = |i: usize| {
            let part = |v: u64| (v & ((1 << (plan.max_drop + keep)) - 1)) >> plan.max_drop;
            yr.reduce(part(xs[i]) + part(xc[i]))
        };
        let want: Vec<u64> = (0..rows)
            .map(|r| {
                let mut cur: Vec<usize> = (r * cols..(r + 1) * cols).collect();
                while cur.len() > 1 {
                    cur = cur
                        .chunks(2)
                        .map(|p| match *p {
                            [a, b] if !yr.msb(yr.sub(y_of(a), y_of(b))) => a,
                            [_, b] => b,
                            [a] => a,
                            _ => unreachable!(),
                        })
                        .collect();
                }
                x[cur[0]]
            })
            .collect();
        for shape in [MaxShape::SOFTMAX, MaxShape::PAIRS, MaxShape::GROUPS] {
            for value in [Ring::new(35).unwrap(), r64] {
                let (xs2, xc2) = (xs.clone(), xc.clone());
                let ((ms, _), (mc, _)) = both_sessions("max", move |sess| {
                    let mine = if sess.is_server() { &xs2 } else { &xc2 };
                    let demand = row_max_cots(&plan, shape, (rows, cols), value);
                    let (m, st, drawn) = measured(sess, "max", demand, |se| {
                        row_max(se, &plan, shape, mine, (rows, cols), value)
                    })?;
                    assert_eq!(drawn, demand, "COTs drawn");
                    Ok((m, st))
                });
                for r in 0..rows {
                    assert_eq!(
                        value.add(ms.0[r], mc.0[r]),
                        value.reduce(want[r]),
                        "{shape:?}, {rows} × {cols}, Z_2^{}: row {r}",
                        value.bits()
                    );
                }
                let cost = row_max_cost(&plan, shape, (rows, cols), value);
                let what = format!("max {shape:?} {rows} × {cols}");
                assert_bytes(&ms.1, &mc.1, cost, &what);
                assert!(ms.1.rounds <= cost.rounds, "{what}: {} rounds", ms.1.rounds);
            }
        }
    }
}

/// The per-row figures of the shapes' table in `functions/max.rs` (rows of 128, Z_2^35):
/// COTs drawn, bytes, rounds by the cost function and measured.
#[test]
fn row_max_shapes_per_row_of_128() {
    let plan = SoftmaxPlan::standard();
    let r35 = Ring::new(35).unwrap();
    for (shape, cots, rounds, cost_rounds) in [
        (MaxShape::GROUPS, 6_178, 25, 25),
        (MaxShape::SOFTMAX, 2_586, 25, 29),
        (MaxShape::PAIRS, 2_286, 29, 35),
    ] {
        let demand = row_max_cots(&plan, shape, (1, 128), r35);
        let ((_, ss), (_, cs)) = both_sessions("max", move |sess| {
            let x = share(sess, &[0; 128], Ring::R64, 7, 15);
            let (_, st, drawn) = measured(sess, "max", demand, |se| {
                row_max(se, &plan, shape, &x, (1, 128), r35)
            })?;
            assert_eq!(drawn, demand, "COTs drawn");
            Ok(st)
        });
        let c = row_max_cost(&plan, shape, (1, 128), r35);
        println!(
            "{shape:?}: {} COTs, {} rounds ({} by the cost), {} bytes per row of 128",
            demand.server + demand.client,
            ss.rounds,
            c.rounds,
            c.bytes()
        );
        assert_bytes(&ss, &cs, c, &format!("{shape:?}"));
        assert_eq!(
            (
                demand.server + demand.client,
                ss.rounds,
                cs.rounds,
                c.rounds
            ),
            (cots, rounds, rounds, cost_rounds),
            "{shape:?}: COTs, measured rounds, cost rounds"
        );
    }
}
