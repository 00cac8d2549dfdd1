//! Ferret: correlations over more than 10^7 COTs, exact costs, transports, uniformity, errors.
mod common;

use common::{assert_balanced, run, Transport, BOTH};
use mpc_core::{Channel, Error};
use ot_nonlinear::ferret::{FERRET_SETUP_BYTES, FERRET_SETUP_ROUNDS};
use ot_nonlinear::{
    Block, FerretReceiver, FerretSender, LpnParams, RandomCotReceiver, RandomCotSender,
};
use std::sync::mpsc;
use std::time::Duration;

/// Every one of more than 10^7 COTs satisfies t = q ⊕ b·Δ; choice bits and the bits of the
/// sender's blocks are balanced; Δ has its low bit set. The two parties ask in different
/// sizes: the receiver first for a whole iteration (produced in its buffer, no pool), the
/// sender always for 2^20 (served from its pool), and the streams still match index by index.
#[test]
fn ten_million_correlations_hold() {
    const TOTAL: usize = 10_200_000;
    const CHUNK: usize = 1 << 20;
    let (tx, rx) = mpsc::sync_channel::<(u64, Vec<Block>)>(2);
    let t0 = std::time::Instant::now();
    let (_, (delta, checked, ones, q_ones), _, _) = run(
        Transport::Mem,
        move |ch| {
            let mut r = FerretReceiver::setup(ch, &mut common::rng(0, 1))?;
            let mut left = TOTAL;
            let mut take = LpnParams::MAIN.output();
            while left > 0 {
                let got = r.next_n(ch, left.min(take))?;
                left -= got.1.len();
                tx.send(got).unwrap();
                take = CHUNK;
            }
            Ok(())
        },
        move |ch| {
            let mut s = FerretSender::setup(ch, &mut common::rng(0, 0))?;
            let delta = s.delta();
            let (mut checked, mut ones, mut q_ones) = (0usize, 0u64, 0u64);
            let mut received = std::collections::VecDeque::new();
            let mut q = vec![Block::ZERO; CHUNK];
            while checked < TOTAL {
                let q = &mut q[..CHUNK.min(TOTAL - checked)];
                let start = s.fill(ch, q)?;
                assert_eq!(start, checked as u64, "stream index of the sender's chunk");
                for q in q.iter() {
                    if received.is_empty() {
                        let (start, t) = rx.recv().unwrap();
                        assert_eq!(start, checked as u64, "stream index of the receiver's");
                        received.extend(t);
                    }
                    let t = received.pop_front().unwrap();
                    assert!(!q.lsb());
                    assert_eq!(t, *q ^ delta.select(t.lsb()), "COT {checked}");
                    ones += t.lsb() as u64;
                    q_ones += (q.0 >> 77) as u64 & 1;
                    checked += 1;
                }
            }
            assert!(received.is_empty());
            Ok((delta, checked, ones, q_ones))
        },
    );
    eprintln!("10^7 Ferret COTs checked in {:?}", t0.elapsed());
    assert!(delta.lsb());
    assert!(checked >= 10_000_000);
    assert_balanced(ones, checked as u64, "choice bits");
    assert_balanced(q_ones, checked as u64, "bit 77 of q");
}

/// Setup and one main iteration cost exactly the documented bytes and rounds; ≤ 0.5 bits/COT.
#[test]
fn costs_are_exact() {
    let p = LpnParams::MAIN;
    let (ra, sb, ca, cb) = run(
        Transport::Mem,
        move |ch| {
            let mut r = FerretReceiver::setup(ch, &mut common::rng(0, 1))?;
            let setup = ch.totals();
            r.next_n(ch, p.output())?;
            Ok(setup)
        },
        move |ch| {
            let mut s = FerretSender::setup(ch, &mut common::rng(0, 0))?;
            let setup = ch.totals();
            s.next_n(ch, p.output())?;
            Ok(setup)
        },
    );
    assert_eq!(ra.bytes_sent + ra.bytes_recv, FERRET_SETUP_BYTES);
    assert_eq!(sb.bytes_sent + sb.bytes_recv, FERRET_SETUP_BYTES);
    assert_eq!(
        (ra.rounds, sb.rounds),
        (FERRET_SETUP_ROUNDS, FERRET_SETUP_ROUNDS)
    );
    // One main iteration: t·h blocks sender → receiver, nothing back; it continues the
    // sender's last flight, so the round count does not grow.
    let it = cb.stats_of("ferret/extend").unwrap();
    assert_eq!((it.bytes_sent, it.bytes_recv), (p.bytes_per_iteration(), 0));
    assert_eq!(
        ca.stats_of("ferret/extend").unwrap().bytes_recv,
        p.bytes_per_iteration()
    );
    assert_eq!(
        (ca.rounds(), cb.rounds()),
        (FERRET_SETUP_ROUNDS, FERRET_SETUP_ROUNDS)
    );
    assert_eq!(p.bytes_per_iteration(), 267_696);
    let bits = p.bits_per_cot();
    assert!(bits <= 0.5, "{bits} bits per COT");
}

/// Over TCP loopback too (setup plus a first batch).
#[test]
fn works_over_tcp() {
    for transport in BOTH {
        let (t, (q, delta), _, _) = run(
            transport,
            |ch| {
                Ok(FerretReceiver::setup(ch, &mut common::rng(0, 1))?
                    .next_n(ch, 100_000)?
                    .1)
            },
            |ch| {
                let mut s = FerretSender::setup(ch, &mut common::rng(0, 0))?;
                Ok((s.next_n(ch, 100_000)?.1, s.delta()))
            },
        );
        for (q, t) in q.iter().zip(&t) {
            assert_eq!(*t, *q ^ delta.select(t.lsb()), "{transport:?}");
        }
    }
}

fn short_timeouts(a: &mut Channel, b: &mut Channel) {
    a.set_timeout(Duration::from_millis(500));
    b.set_timeout(Duration::from_millis(500));
}

/// A peer that disconnects in the middle of setup or of an iteration is an error on the
/// other side, not a hang or a panic.
#[test]
fn dropped_peer_is_an_error() {
    for transport in BOTH {
        // The receiver leaves after the coin toss: the sender's setup fails.
        let (mut a, mut b) = common::pair(transport);
        short_timeouts(&mut a, &mut b);
        let t = std::thread::spawn(move || {
            mpc_core::prg::coin_toss(&mut b, &mut common::rng(0, 1)).unwrap();
            drop(b);
        });
        let r = FerretSender::setup(&mut a, &mut common::rng(0, 0));
        t.join().unwrap();
        assert!(
            matches!(r, Err(Error::Disconnected)),
            "{transport:?}: {r:?}"
        );

        // The sender leaves after setup: the receiver's first iteration fails.
        let (mut a, mut b) = common::pair(transport);
        short_timeouts(&mut a, &mut b);
        let t = std::thread::spawn(move || {
            FerretSender::setup(&mut b, &mut common::rng(0, 0)).unwrap();
            drop(b);
        });
        let mut r = FerretReceiver::setup(&mut a, &mut common::rng(0, 1)).unwrap();
        let got = r.next_n(&mut a, 10);
        t.join().unwrap();
        assert!(
            matches!(got, Err(Error::Disconnected)),
            "{transport:?}: {got:?}"
        );
    }
}

/// A peer that sends short data and then goes silent makes the read time out.
#[test]
fn short_data_times_out() {
    let (mut a, mut b) = common::pair(Transport::Mem);
    short_timeouts(&mut a, &mut b);
    let t = std::thread::spawn(move || {
        let r = FerretSender::setup(&mut b, &mut common::rng(0, 0));
        // The receiver sends its coin toss share and half of the base-OT message, then waits.
        (r, b)
    });
    a.send(&[0u8; 16]).unwrap();
    a.send(&[0u8; 16]).unwrap();
    a.flush().unwrap();
    let (r, _b) = t.join().unwrap();
    assert!(
        matches!(r, Err(Error::Timeout(_)) | Err(Error::Malformed { .. })),
        "{r:?}"
    );
}

/// Two instances per party, one per direction: each party's sender pairs with the other's
/// receiver, under two independent Δs.
#[test]
fn duplex_gives_both_directions() {
    use mpc_core::Party;
    use ot_nonlinear::FerretDuplex;
    let n = 1000;
    let (client, server, _, _) = run(
        Transport::Mem,
        move |ch| {
            let mut d = FerretDuplex::setup(ch, Party::Client, &mut common::rng(0, 1))?;
            let from_server = d.receiver.next_n(ch, n)?.1;
            let to_server = d.sender.next_n(ch, n)?.1;
            Ok((from_server, to_server, d.sender.delta()))
        },
        move |ch| {
            let mut d = FerretDuplex::setup(ch, Party::Server, &mut common::rng(0, 0))?;
            let to_client = d.sender.next_n(ch, n)?.1;
            let from_client = d.receiver.next_n(ch, n)?.1;
            Ok((to_client, from_client, d.sender.delta()))
        },
    );
    let (c_recv, c_send, c_delta) = client;
    let (s_send, s_recv, s_delta) = server;
    assert_ne!(c_delta, s_delta);
    for i in 0..n {
        assert_eq!(c_recv[i], s_send[i] ^ s_delta.select(c_recv[i].lsb()));
        assert_eq!(s_recv[i], c_send[i] ^ c_delta.select(s_recv[i].lsb()));
    }
}
