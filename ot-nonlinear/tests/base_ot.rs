//! Base OT: correctness over mem and TCP, exact cost, malformed and dropped peers.
mod common;

use common::{assert_balanced, run, Transport, BOTH};
use mpc_core::Error;
use ot_nonlinear::base_ot::{recv_random, send_random, BASE_OTS};
use std::time::Duration;

#[test]
fn receiver_gets_the_chosen_key_only() {
    for transport in BOTH {
        let choices: Vec<bool> = (0..BASE_OTS).map(|i| (i * 7) % 3 == 0).collect();
        let c = choices.clone();
        let s = common::seed(1);
        let (keys, got, ca, cb) = run(
            transport,
            move |ch| send_random(ch, BASE_OTS, &mut common::rng(s, 0)),
            move |ch| recv_random(ch, &c, &mut common::rng(s, 1)),
        );
        let mut ones = 0;
        for i in 0..BASE_OTS {
            assert_eq!(got[i], keys[i][choices[i] as usize], "{transport:?} OT {i}");
            assert_ne!(got[i], keys[i][!choices[i] as usize]);
            ones += keys[i][0].0.count_ones() as u64;
        }
        assert_balanced(ones, 128 * BASE_OTS as u64, "bits of k0");
        // 32 + 32·n bytes, 2 rounds.
        let s = ca.stats_of("base_ot").unwrap();
        assert_eq!((s.bytes_sent, s.bytes_recv, s.rounds), (32, 32 * 128, 2));
        assert_eq!(cb.rounds(), 2);
    }
}

#[test]
fn malformed_point_is_an_error() {
    let (mut a, mut b) = common::pair(Transport::Mem);
    b.set_timeout(Duration::from_millis(500));
    // 0xff.. is not a canonical ristretto encoding.
    a.send(&[0xff; 32]).unwrap();
    a.flush().unwrap();
    assert!(matches!(
        recv_random(&mut b, &[true; 4], &mut common::rng(2, 1)),
        Err(Error::Malformed { .. })
    ));
    // The identity point is refused too.
    a.send(&[0u8; 32]).unwrap();
    a.flush().unwrap();
    assert!(matches!(
        recv_random(&mut b, &[true; 4], &mut common::rng(2, 1)),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn dropped_or_short_peer_is_an_error() {
    for transport in BOTH {
        let (mut a, b) = common::pair(transport);
        a.set_timeout(Duration::from_millis(500));
        drop(b);
        assert!(matches!(
            send_random(&mut a, 8, &mut common::rng(3, 0)),
            Err(Error::Disconnected)
        ));
        // The receiver answers with 3 points of the 8 expected and stays silent.
        let (mut a, mut b) = common::pair(transport);
        a.set_timeout(Duration::from_millis(300));
        let t = std::thread::spawn(move || {
            let _ = b.recv_vec(32);
            b.send(&[0u8; 96]).unwrap();
            b.flush().unwrap();
            std::thread::sleep(Duration::from_millis(600));
        });
        assert!(matches!(
            send_random(&mut a, 8, &mut common::rng(3, 0)),
            Err(Error::Timeout(_))
        ));
        t.join().unwrap();
    }
}
