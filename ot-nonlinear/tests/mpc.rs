//! The two-party protocols of `ot_nonlinear::mpc` against plaintext references on random shares
//! with edge values (0, ±1, ring extremes, largest positive / most negative, thresholds), and
//! the exact cost of each protocol's own messages (bytes each way and rounds, after reserving
//! its COTs so that no Ferret extension runs inside it).
mod common;

use mpc_core::AesPrg;
use mpc_core::{Channel, Error, Party, Result, Ring, Stats};
use ot_nonlinear::mpc::and::{and_cost, and_cots};
use ot_nonlinear::mpc::b2a::{b2a_cost, b2a_cots};
use ot_nonlinear::mpc::drelu::{drelu_cost, drelu_cots, wrap_cost, wrap_cots};
use ot_nonlinear::mpc::lut::{lut_cost, lut_cots};
use ot_nonlinear::mpc::millionaire::{millionaire_cost, millionaire_cots};
use ot_nonlinear::mpc::mux::{mux_cost, mux_cots};
use ot_nonlinear::mpc::product::{mul_cost, mul_cots, square_cost, square_cots};
use ot_nonlinear::mpc::relu::{relu_cost, relu_cots};
use ot_nonlinear::mpc::trunc::{trunc_cost, trunc_cots};
use ot_nonlinear::mpc::*;
use ot_nonlinear::Block;
use std::sync::Arc;
use std::time::Duration;

/// Runs `f` as both parties (each on its own thread with its own session); returns
/// (server's result, client's result).
fn both<T: Send + 'static>(
    f: impl Fn(&mut Session) -> Result<T> + Send + Sync + 'static,
) -> (T, T) {
    let (mut a, mut b) = Channel::mem_pair();
    a.set_timeout(Duration::from_secs(60));
    b.set_timeout(Duration::from_secs(60));
    let f = Arc::new(f);
    let g = f.clone();
    let t = std::thread::spawn(move || {
        let mut s = Session::new(b, Party::Client, common::session_seed(0, 1))?;
        let r = g(&mut s);
        s.ch.flush()?;
        r
    });
    let mut s = Session::new(a, Party::Server, common::session_seed(0, 0)).unwrap();
    let rs = f(&mut s).unwrap();
    s.ch.flush().unwrap();
    (rs, t.join().unwrap().unwrap())
}

/// Reserves `demand`, runs `f` and returns its output and the cost recorded under `label`.
fn measured<T>(
    sess: &mut Session,
    label: &str,
    demand: CotDemand,
    f: impl FnOnce(&mut Session) -> Result<T>,
) -> Result<(T, Stats)> {
    sess.reserve(demand)?;
    // Every protocol starts with a client flight or a simultaneous one; ending the preceding
    // traffic with a server → client flight makes that first flight a new round (a flight that
    // follows the same party's previous one without anything received in between merges into
    // it): the standalone count.
    if sess.is_server() {
        sess.ch.recv_vec(1)?;
        sess.ch.send(&[0])?;
        sess.ch.flush()?;
    } else {
        sess.ch.send(&[0])?;
        sess.ch.recv_vec(1)?;
    }
    sess.ch.clear_stats();
    let out = f(sess)?;
    let st = sess.ch.stats_of(label).unwrap_or_default();
    let ext = common::extension_bytes(&sess.ch);
    assert_eq!(ext, 0, "{label}: a Ferret extension ran inside");
    Ok((out, st))
}

/// Asserts that the server's and client's recorded costs are `cost`.
fn assert_cost(s: &Stats, c: &Stats, cost: Cost, what: &str) {
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
    assert_eq!(
        (s.rounds, c.rounds),
        (cost.rounds, cost.rounds),
        "{what}: rounds"
    );
}

/// Signed edge values of Z_2^ℓ and thresholds, then uniform values, `n` in all.
fn values(ring: Ring, n: usize, seed: u128) -> Vec<u64> {
    let l = ring.bits();
    let max = ring.mask() >> 1;
    let mut v: Vec<u64> = [
        0,
        1,
        ring.mask(),
        max,
        max + 1,
        2,
        ring.mask() - 1,
        max.wrapping_sub(1),
        max + 2,
    ]
    .map(|e| ring.reduce(e))
    .to_vec();
    if l >= 3 {
        let q = 1u64 << (l - 2);
        v.extend([q - 1, q, ring.neg(q), ring.neg(q - 1), ring.neg(q + 1)]);
    }
    let mut prg = AesPrg::from_block(Block(seed));
    while v.len() < n {
        let r = prg.block();
        // Half uniform, half small magnitudes (where truncation errors show).
        let x = if r.0 >> 127 == 1 {
            r.low_u64()
        } else {
            (r.low_u64() >> (64 - l.min(20))).wrapping_sub(1 << (l.min(20) - 1))
        };
        v.push(ring.reduce(x));
    }
    v.truncate(n);
    v
}

/// Shares of `x`: the server's share is uniform, except a few edge shares (0, all-ones, x).
fn shares(x: &[u64], ring: Ring, seed: u128) -> (Vec<u64>, Vec<u64>) {
    let mut prg = AesPrg::from_block(Block(seed ^ 0xabc));
    let s: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| match i % 11 {
            3 => 0,
            5 => ring.mask(),
            7 => v,
            _ => ring.reduce(prg.block().low_u64()),
        })
        .collect();
    let c = x.iter().zip(&s).map(|(&v, &s)| ring.sub(v, s)).collect();
    (s, c)
}

fn own<'a>(sess: &Session, s: &'a [u64], c: &'a [u64]) -> &'a [u64] {
    if sess.is_server() {
        s
    } else {
        c
    }
}

fn xor(a: &[bool], b: &[bool]) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

fn add(ring: Ring, a: &[u64], b: &[u64]) -> Vec<u64> {
    ring.reconstruct_vec(a, b).unwrap()
}

#[test]
fn millionaire_all_digit_sizes_and_widths() {
    // (bits, digit): single digit, short top digit, exact multiples, 64 bits, 0 bits.
    let cases: Vec<(u32, u32)> = vec![
        (0, 4),
        (1, 4),
        (5, 4),
        (8, 4),
        (13, 3),
        (36, 4),
        (37, 1),
        (64, 4),
        (64, 8),
        (20, 5),
        (31, 6),
        (17, 7),
    ];
    let n = 700;
    let cases2 = cases.clone();
    let (s, c) = both(move |sess| {
        let mut out = Vec::new();
        for &(bits, m) in &cases2 {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut a: Vec<u64> = values(Ring::R64, n, bits as u128)
                .iter()
                .map(|v| v & mask)
                .collect();
            let mut b: Vec<u64> = values(Ring::R64, n, 99 + bits as u128)
                .iter()
                .map(|v| v & mask)
                .collect();
            // Equal, adjacent and extreme pairs.
            for i in 0..20 {
                b[i] = a[i].wrapping_add(i as u64 % 3).wrapping_sub(1) & mask;
            }
            a[20] = mask;
            b[20] = mask;
            a[21] = 0;
            b[21] = mask;
            let input = if sess.is_server() {
                a.clone()
            } else {
                b.clone()
            };
            let demand = millionaire_cots(n, bits, m)?;
            let (z, st) = measured(sess, "millionaire", demand, |s| {
                millionaire(s, &input, bits, m)
            })?;
            out.push((a, b, z, st));
        }
        Ok(out)
    });
    for (i, &(bits, m)) in cases.iter().enumerate() {
        let (a, b, zs, ss) = &s[i];
        let (_, _, zc, sc) = &c[i];
        let got = xor(zs, zc);
        for j in 0..n {
            assert_eq!(
                got[j],
                a[j] > b[j],
                "bits {bits} m {m} a {:#x} b {:#x}",
                a[j],
                b[j]
            );
        }
        let cost = millionaire_cost(n, bits, m).unwrap();
        if bits == 0 {
            assert_eq!(cost, Cost::default());
        } else {
            assert_cost(ss, sc, cost, &format!("millionaire {bits}/{m}"));
        }
    }
    // The headline shape: 36 bits, 4-bit digits: 36 + 16 + 8·32 leaf bits, 40 tree bits, 6 rounds.
    let c = millionaire_cost(8, 36, 4).unwrap();
    assert_eq!(
        (c.client_bytes, c.server_bytes, c.rounds),
        ((36 + 20) as u64, (272 + 20) as u64, 6)
    );
}

#[test]
fn drelu_msb_wrap_threshold_and_reduced() {
    let rings: Vec<Ring> = [1, 2, 8, 37, 64].map(|l| Ring::new(l).unwrap()).to_vec();
    let n = 1000;
    let rings2 = rings.clone();
    let (s, c) = both(move |sess| {
        let mut out = Vec::new();
        for &ring in &rings2 {
            let x = values(ring, n, ring.bits() as u128);
            let (xs, xc) = shares(&x, ring, 1);
            let mine = own(sess, &xs, &xc).to_vec();
            let (d, st) = measured(sess, "drelu", drelu_cots(n, ring), |s| {
                drelu(s, &mine, ring)
            })?;
            let (w, wt) = measured(sess, "wrap", wrap_cots(n, ring), |s| wrap(s, &mine, ring))?;
            // Threshold: the server's T is an edge value; [x ≥ T] where x − T does not overflow.
            let t = x[7];
            let th = if sess.is_server() { Some(t) } else { None };
            let (g, _) = measured(sess, "threshold", drelu_cots(n, ring), |s| {
                greater_equal_threshold(s, &mine, ring, th)
            })?;
            out.push((x, xs, xc, d, st, w, wt, g, t));
        }
        // Reduced DReLU on Z_2^64: drop 10, keep 20, x within [−2^29 + 2^10, 2^29).
        let ring = Ring::R64;
        let mut prg = AesPrg::from_block(Block(5));
        let mut x: Vec<u64> = (0..n)
            .map(|_| {
                ring.from_signed((prg.block().low_u64() % (1 << 30)) as i64 - (1 << 29) + (1 << 10))
            })
            .collect();
        x[..6].copy_from_slice(&[
            0,
            1023,
            1024,
            ring.from_signed(-1),
            ring.from_signed((1 << 29) - 1),
            ring.from_signed(-(1 << 29) + 1024),
        ]);
        let (xs, xc) = shares(&x, ring, 2);
        let mine = own(sess, &xs, &xc).to_vec();
        let r = drelu_reduced(sess, &mine, ring, 10, 20)?;
        Ok((out, (x, r)))
    });
    let ((s, (rx, rs)), (c, (_, rc))) = (s, c);
    for (k, &ring) in rings.iter().enumerate() {
        let (x, xs, xc, ds, sts, ws, wts, gs, t) = &s[k];
        let (_, _, _, dc, stc, wc, wtc, gc, _) = &c[k];
        let d = xor(ds, dc);
        let w = xor(ws, wc);
        let g = xor(gs, gc);
        for i in 0..n {
            let v = ring.to_signed(x[i]);
            assert_eq!(d[i], v >= 0, "drelu ℓ={} x={v}", ring.bits());
            let wrapped = (xs[i] as u128 + xc[i] as u128) >> ring.bits() == 1;
            assert_eq!(w[i], wrapped, "wrap ℓ={}", ring.bits());
            let diff = v as i128 - ring.to_signed(*t) as i128;
            let lim = 1i128 << (ring.bits() - 1);
            if -lim <= diff && diff < lim {
                assert_eq!(g[i], diff >= 0, "threshold ℓ={} x={v}", ring.bits());
            }
        }
        let dcost = drelu_cost(n, ring);
        if ring.bits() == 1 {
            assert_eq!(dcost, Cost::default());
            assert_eq!((sts.bytes(), sts.rounds), (0, 0));
        } else {
            assert_cost(sts, stc, dcost, "drelu");
        }
        assert_cost(wts, wtc, wrap_cost(n, ring), "wrap");
    }
    let r = xor(&rs, &rc);
    for i in 0..n {
        let v = Ring::R64.to_signed(rx[i]);
        if !(0..1024).contains(&v) {
            assert_eq!(r[i], v >= 0, "reduced drelu x={v}");
        } else if v == 0 || v >= 1024 {
        } else {
            // 0 ≤ x < 2^d: either answer is allowed.
        }
    }
}

#[test]
fn and_mux_b2a_products_lut() {
    let ring = Ring::new(37).unwrap();
    let n = 1500;
    let (s, c) = both(move |sess| {
        let mut prg = AesPrg::from_block(Block(9));
        let bx = prg.bits(n);
        let by = prg.bits(n);
        let (bs, bc) = (prg.bits(n), prg.bits(n));
        let share = |v: &[bool], m: &[bool]| -> Vec<bool> { xor(v, m) };
        let (mx, my) = if sess.is_server() {
            (bs.clone(), bc.clone())
        } else {
            (share(&bx, &bs), share(&by, &bc))
        };
        let (z, and_st) = measured(sess, "and", and_cots(n), |s| and(s, &mx, &my))?;
        let x = values(ring, n, 3);
        let (xs, xc) = shares(&x, ring, 4);
        let mine = own(sess, &xs, &xc).to_vec();
        let (m, mux_st) = measured(sess, "mux", mux_cots(n), |s| mux(s, &mx, &mine, ring))?;
        let mut conv = Vec::new();
        for scale in [0, 5, 35, 36] {
            conv.push(measured(sess, "b2a", b2a_cots(n, ring, scale), |s| {
                b2a(s, &mx, ring, scale)
            })?);
        }
        let y = values(ring, n, 4);
        let (ys, yc) = shares(&y, ring, 5);
        let ym = own(sess, &ys, &yc).to_vec();
        let (p, mul_st) = measured(sess, "mul", mul_cots(n, ring), |s| mul(s, &mine, &ym, ring))?;
        let (sq, sq_st) = measured(sess, "square", square_cots(n, ring), |s| {
            square(s, &mine, ring)
        })?;
        // Row scalar: 30 rows of 50.
        let rows = 30;
        let (rp, row_st) = measured(sess, "mul", mul_cots(rows, ring), |s| {
            mul_row_scalar(s, &mine, &ym[..rows], n / rows, ring)
        })?;
        // LUT: 5-bit index, 2 words per entry.
        let small = Ring::new(5).unwrap();
        let idx = values(small, n, 6);
        let (is, ic) = shares(&idx, small, 7);
        let table: Vec<u64> = (0..64u64)
            .map(|v| ring.reduce(v.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let tab = if sess.is_server() {
            Some(&table[..])
        } else {
            None
        };
        let im = own(sess, &is, &ic).to_vec();
        let (lk, lut_st) = measured(sess, "lut", lut_cots(n, 5), |s| {
            lut(s, &im, 5, tab, 2, ring)
        })?;
        Ok((
            bx, by, z, and_st, x, y, m, mux_st, conv, p, mul_st, sq, sq_st, rp, row_st, idx, table,
            lk, lut_st,
        ))
    });
    let (
        bx,
        by,
        zs,
        and_s,
        x,
        y,
        ms,
        mux_s,
        conv_s,
        ps,
        mul_s,
        sqs,
        sq_s,
        rps,
        row_s,
        idx,
        table,
        lks,
        lut_s,
    ) = s;
    let (
        _,
        _,
        zc,
        and_c,
        _,
        _,
        mc,
        mux_c,
        conv_c,
        pc,
        mul_c,
        sqc,
        sq_c,
        rpc,
        row_c,
        _,
        _,
        lkc,
        lut_c,
    ) = c;
    let z = xor(&zs, &zc);
    let m = add(ring, &ms, &mc);
    let p = add(ring, &ps, &pc);
    let sq = add(ring, &sqs, &sqc);
    let rp = add(ring, &rps, &rpc);
    let lk = add(ring, &lks, &lkc);
    for i in 0..n {
        assert_eq!(z[i], bx[i] & by[i]);
        assert_eq!(m[i], if bx[i] { x[i] } else { 0 }, "mux");
        assert_eq!(p[i], ring.mul(x[i], y[i]), "mul");
        assert_eq!(sq[i], ring.mul(x[i], x[i]), "square");
        assert_eq!(rp[i], ring.mul(x[i], y[i / 50]), "row scalar");
        for w in 0..2 {
            assert_eq!(lk[2 * i + w], table[idx[i] as usize * 2 + w], "lut");
        }
    }
    for (k, scale) in [0u32, 5, 35, 36].into_iter().enumerate() {
        let v = add(ring, &conv_s[k].0, &conv_c[k].0);
        for i in 0..n {
            assert_eq!(
                v[i],
                ring.reduce((bx[i] as u64) << scale),
                "b2a scale {scale}"
            );
        }
        assert_cost(&conv_s[k].1, &conv_c[k].1, b2a_cost(n, ring, scale), "b2a");
    }
    assert_cost(&and_s, &and_c, and_cost(n, 0), "and");
    assert_cost(&mux_s, &mux_c, mux_cost(n, ring), "mux");
    assert_cost(&mul_s, &mul_c, mul_cost(n, 1, ring), "mul");
    assert_cost(&sq_s, &sq_c, square_cost(n, ring), "square");
    assert_cost(&row_s, &row_c, mul_cost(30, 50, ring), "row scalar");
    assert_cost(&lut_s, &lut_c, lut_cost(n, 5, 2, ring), "lut");
    // Formulas: mux 2(ℓ+1) bits, b2a ℓ − s, product ℓ + ℓ(ℓ+1)/2 per cross term.
    assert_eq!(mux_cost(8, ring).bytes(), 2 * (1 + 37));
    assert_eq!(b2a_cost(8, ring, 0).bytes(), 37);
    assert_eq!(mul_cost(8, 1, ring).bytes(), 2 * (37 + 37 * 38 / 2));
}

#[test]
fn truncation_kinds_and_casts() {
    // (from, to, shift): plain truncation, up-cast, fused, down-cast, extremes.
    let cases: Vec<(u32, u32, u32)> = vec![
        (37, 37, 12),
        (37, 64, 0),
        (37, 64, 12),
        (64, 64, 18),
        (64, 37, 13),
        (64, 32, 18),
        (16, 64, 14),
        (8, 8, 1),
        (64, 64, 62),
        (3, 5, 1),
    ];
    let kinds = [
        TruncKind::KnownMsb,
        TruncKind::OneBitError,
        TruncKind::Faithful,
    ];
    let n = 800;
    let cases2 = cases.clone();
    let (s, c) = both(move |sess| {
        let mut out = Vec::new();
        for &(l, big_l, sh) in &cases2 {
            let (from, to) = (Ring::new(l).unwrap(), Ring::new(big_l).unwrap());
            for kind in kinds {
                if kind == TruncKind::KnownMsb && sh + 2 > l && big_l + sh > l {
                    continue;
                }
                let mut x = values(from, n, (l * 100 + sh) as u128);
                if kind == TruncKind::KnownMsb && l >= 3 {
                    // The precondition |x| < 2^{ℓ−2}.
                    let lim = 1i64 << (l - 2);
                    for v in x.iter_mut() {
                        let sv = from.to_signed(*v);
                        if sv >= lim || sv < -lim {
                            *v = from.from_signed(sv.rem_euclid(2 * lim) - lim);
                        }
                    }
                }
                let (xs, xc) = shares(&x, from, 8);
                let mine = own(sess, &xs, &xc).to_vec();
                let demand = trunc_cots(n, from, to, sh, kind)?;
                let (y, st) = measured(sess, "trunc", demand, |s| {
                    trunc_cast(s, &mine, from, to, sh, kind)
                })?;
                out.push((l, big_l, sh, kind, x, y, st));
            }
        }
        Ok(out)
    });
    assert_eq!(s.len(), c.len());
    for (a, b) in s.iter().zip(&c) {
        let (l, big_l, sh, kind, x, ys, sts) = a;
        let (_, _, _, _, _, yc, stc) = b;
        let (from, to) = (Ring::new(*l).unwrap(), Ring::new(*big_l).unwrap());
        let y = add(to, ys, yc);
        for i in 0..x.len() {
            let want = from.to_signed(x[i]) >> sh;
            let exact = to.from_signed(want);
            let minus = to.from_signed(want - 1);
            if *kind == TruncKind::Faithful {
                assert_eq!(
                    y[i],
                    exact,
                    "faithful {l}->{big_l} >>{sh} x={}",
                    from.to_signed(x[i])
                );
            } else {
                assert!(
                    y[i] == exact || y[i] == minus,
                    "{kind:?} {l}->{big_l} >>{sh} x={} got {}",
                    from.to_signed(x[i]),
                    to.to_signed(y[i])
                );
            }
        }
        let cost = trunc_cost(x.len(), from, to, *sh, *kind).unwrap();
        if cost == Cost::default() {
            assert_eq!((sts.bytes(), stc.bytes()), (0, 0));
        } else {
            assert_cost(sts, stc, cost, &format!("{kind:?} {l}->{big_l} >>{sh}"));
        }
    }
    // Fast path: L − ℓ + s + 1 bits per element, 2 rounds.
    let r37 = Ring::new(37).unwrap();
    let c = trunc_cost(8, r37, Ring::R64, 12, TruncKind::KnownMsb).unwrap();
    assert_eq!((c.bytes(), c.rounds), ((64 - 37 + 12 + 1) as u64, 2));
    let c = trunc_cost(8, r37, r37, 12, TruncKind::KnownMsb).unwrap();
    assert_eq!(c.bytes(), 13);
}

#[test]
fn relu_costs_at_several_sizes() {
    let ring = Ring::new(37).unwrap();
    let sizes = [1usize, 9, 4096];
    let (s, c) = both(move |sess| {
        let mut out = Vec::new();
        for &n in &sizes {
            let x = values(ring, n, n as u128);
            let (xs, xc) = shares(&x, ring, 10);
            let mine = own(sess, &xs, &xc).to_vec();
            let (y, st) = measured(sess, "relu", relu_cots(n, ring), |s| relu(s, &mine, ring))?;
            out.push((x, y, st));
        }
        Ok(out)
    });
    for (k, &n) in sizes.iter().enumerate() {
        let (x, ys, sts) = &s[k];
        let (_, yc, stc) = &c[k];
        let y = add(ring, ys, yc);
        for i in 0..n {
            let v = ring.to_signed(x[i]);
            assert_eq!(y[i], if v >= 0 { x[i] } else { 0 }, "relu x={v}");
        }
        assert_cost(sts, stc, relu_cost(n, ring), &format!("relu n={n}"));
    }
    // 424 bits per element on Z_2^37 (packed over 8 elements), 8 rounds.
    let c = relu_cost(8, ring);
    assert_eq!((c.bytes() * 8 / 8, c.rounds), (424, 8));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let r8 = Ring::new(8).unwrap();
    let (s, c) = both(move |sess| {
        let before = sess.ch.totals().bytes();
        let wrong = if sess.is_server() { None } else { Some(1) };
        let table = [0u64; 4];
        let wrong_t = if sess.is_server() {
            None
        } else {
            Some(&table[..])
        };
        let errs = vec![
            millionaire(sess, &[256], 8, 4).err(),
            millionaire(sess, &[1], 8, 9).err(),
            millionaire(sess, &[1], 65, 4).err(),
            drelu(sess, &[300], r8).err(),
            mux(sess, &[true], &[1, 2], r8).err(),
            b2a(sess, &[true], r8, 8).err(),
            trunc_cast(sess, &[1], r8, r8, 8, TruncKind::Faithful).err(),
            trunc_cast(sess, &[1], r8, r8, 7, TruncKind::KnownMsb).err(),
            mul_row_scalar(sess, &[1, 2, 3], &[1], 2, r8).err(),
            lut(sess, &[1], 9, None, 1, r8).err(),
            drelu_reduced(sess, &[1], r8, 4, 5).err(),
            greater_equal_threshold(sess, &[1], r8, wrong).err(),
            lut(sess, &[1], 2, wrong_t, 1, r8).err(),
        ];
        assert_eq!(
            sess.ch.totals().bytes(),
            before,
            "refused before any message"
        );
        Ok(errs)
    });
    for e in s.into_iter().chain(c) {
        assert!(
            matches!(
                e,
                Some(Error::InvalidArgument(_) | Error::Shape { .. } | Error::OutOfRange { .. })
            ),
            "{e:?}"
        );
    }
}
