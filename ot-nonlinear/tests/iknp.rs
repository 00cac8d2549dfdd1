//! IKNP: correlations, exact cost (128 bits per COT), uniformity, transports, errors.
mod common;

use common::{assert_balanced, run, BOTH};
use mpc_core::Error;
use ot_nonlinear::iknp::IKNP_SETUP_BYTES;
use ot_nonlinear::{Block, IknpReceiver, IknpSender, RandomCotReceiver, RandomCotSender};
use std::time::Duration;

#[test]
fn correlations_and_costs() {
    for transport in BOTH {
        // Odd request sizes exercise the buffering; 3·2^20 + 5 spans several batches.
        let sizes = [1usize, 127, 128, 1000, 3 << 20];
        let (t, (q, delta, setup), ca, cb) = run(
            transport,
            move |ch| {
                let mut r = IknpReceiver::setup(ch, &mut common::rng(0, 1))?;
                let mut all = Vec::new();
                for n in sizes {
                    all.extend(r.next_n(ch, n)?.1);
                }
                Ok(all)
            },
            move |ch| {
                let mut s = IknpSender::setup(ch, &mut common::rng(0, 0))?;
                let setup = ch.totals();
                let mut all = Vec::new();
                for (i, n) in sizes.into_iter().enumerate() {
                    let (start, v) = s.next_n(ch, n)?;
                    assert_eq!(start as usize, sizes[..i].iter().sum::<usize>());
                    all.extend(v);
                }
                Ok((all, s.delta(), setup))
            },
        );
        assert!(delta.lsb());
        let (mut ones, mut q_ones) = (0, 0);
        for (q, t) in q.iter().zip(&t) {
            assert!(!q.lsb());
            assert_eq!(*t, *q ^ delta.select(t.lsb()), "{transport:?}");
            ones += t.lsb() as u64;
            q_ones += (q.0 >> 100) as u64 & 1;
        }
        assert_balanced(ones, t.len() as u64, "IKNP choice bits");
        assert_balanced(q_ones, t.len() as u64, "IKNP bit 100 of q");
        // Setup: the base OTs, 2 rounds. Extension: 16 bytes per COT (rounded up to whole
        // 128-COT batches), receiver → sender, one more round.
        assert_eq!((setup.bytes(), setup.rounds), (IKNP_SETUP_BYTES, 2));
        let requested: usize = sizes.iter().sum();
        // Batches: 128 (serves 1 and 127), 128, 1024 (24 left over), then 3 of 2^20.
        let produced = 128 + 128 + 1024 + (3 << 20);
        assert!(produced >= requested);
        let ext = cb.stats_of("iknp/extend").unwrap();
        assert_eq!((ext.bytes_sent, ext.bytes_recv), (0, 16 * produced as u64));
        assert_eq!(
            ca.stats_of("iknp/extend").unwrap().bytes_sent,
            16 * produced as u64
        );
        assert_eq!((ca.rounds(), cb.rounds()), (3, 3));
    }
}

#[test]
fn exact_batches_cost_exactly_128_bits_per_cot() {
    let (_, _, ca, _) = run(
        common::Transport::Mem,
        |ch| IknpReceiver::setup(ch, &mut common::rng(0, 1))?.next_n(ch, 1 << 16),
        |ch| IknpSender::setup(ch, &mut common::rng(0, 0))?.next_n(ch, 1 << 16),
    );
    assert_eq!(ca.stats_of("iknp/extend").unwrap().bytes_sent, 16 << 16);
}

#[test]
fn delta_without_low_bit_is_refused_and_drops_are_errors() {
    let (mut a, _b) = common::pair(common::Transport::Mem);
    assert!(matches!(
        IknpSender::setup_with_delta(&mut a, Block(2), &mut common::rng(0, 0)),
        Err(Error::InvalidArgument(_))
    ));
    for transport in BOTH {
        let (mut a, mut b) = common::pair(transport);
        a.set_timeout(Duration::from_millis(500));
        let t = std::thread::spawn(move || {
            IknpReceiver::setup(&mut b, &mut common::rng(0, 1)).unwrap();
            drop(b);
        });
        let mut s = IknpSender::setup(&mut a, &mut common::rng(0, 0)).unwrap();
        t.join().unwrap();
        assert!(matches!(s.next_n(&mut a, 128), Err(Error::Disconnected)));
    }
}
