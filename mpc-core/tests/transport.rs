//! Transport tests: the shaper's real-time behaviour and TCP framing and failures.
use mpc_core::{Channel, Error, NetProfile};
use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Sends `bytes` from one shaped end to the other; returns the time until all arrived.
fn bulk_time(profile: NetProfile, bytes: usize) -> Duration {
    let (mut a, mut b) = Channel::mem_pair_shaped(profile);
    let data = vec![0xA5u8; bytes];
    let t0 = Instant::now();
    let rx = std::thread::spawn(move || {
        let got = b.recv_vec(bytes).unwrap();
        assert!(got.iter().all(|&x| x == 0xA5));
        Instant::now()
    });
    a.send(&data).unwrap();
    a.flush().unwrap();
    let done = rx.join().unwrap();
    done - t0
}

/// Timing tests run one at a time (and apart from the heavy TCP test) in this binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Best of three tries within `tol` of `expected`: machine load can only delay a measurement,
/// so the minimum is the sound estimate, while a shaper that is systematically too fast or too
/// slow still fails.
fn within(measure: impl Fn() -> Duration, expected: Duration, tol: f64) {
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let e = expected.as_secs_f64();
    let tries: Vec<f64> = (0..3).map(|_| measure().as_secs_f64()).collect();
    let best = tries
        .iter()
        .copied()
        .min_by(|a, b| (a - e).abs().total_cmp(&(b - e).abs()))
        .unwrap();
    assert!(
        (best - e).abs() <= tol * e,
        "measured {tries:?} s, expected {e:.4} s ± {:.0} %",
        tol * 100.0
    );
}

#[test]
fn shaped_bulk_transfer_takes_bandwidth_time_plus_latency() {
    for (profile, bytes) in [
        (NetProfile::Wan, 8_000_000),
        (NetProfile::BoltWan, 4_000_000),
    ] {
        let expected = profile.flight_time(bytes as u64);
        within(|| bulk_time(profile, bytes), expected, 0.10);
    }
}

#[test]
fn shaped_ping_pong_takes_two_latencies() {
    within(ping_pong_time, 2 * NetProfile::Wan.latency(), 0.10);
}

/// Average time of one ping-pong over the shaped `wan` link.
fn ping_pong_time() -> Duration {
    let (mut a, mut b) = Channel::mem_pair_shaped(NetProfile::Wan);
    let echo = std::thread::spawn(move || {
        for _ in 0..5 {
            let v = b.recv_vec(1).unwrap();
            b.send(&v).unwrap();
            b.flush().unwrap();
        }
    });
    // Warm up the worker threads once.
    a.send(&[1]).unwrap();
    a.recv_vec(1).unwrap();
    let t0 = Instant::now();
    for _ in 0..4 {
        a.send(&[1]).unwrap();
        a.recv_vec(1).unwrap();
    }
    let per_trip = t0.elapsed() / 4;
    echo.join().unwrap();
    assert_eq!(a.rounds(), 10);
    per_trip
}

#[test]
fn unshaped_is_fast() {
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert!(bulk_time(NetProfile::None, 8_000_000) < Duration::from_millis(100));
}

#[test]
fn tcp_round_trip_and_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut ch = Channel::tcp_accept(&listener).unwrap();
        let v = ch.recv_u64s(1000).unwrap();
        ch.send_u64s(&v).unwrap();
        ch.flush().unwrap();
        // Then vanish without sending the next message.
    });
    let mut ch = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
    let v: Vec<u64> = (0..1000).collect();
    ch.send_u64s(&v).unwrap();
    assert_eq!(ch.recv_u64s(1000).unwrap(), v);
    server.join().unwrap();
    ch.set_timeout(Duration::from_secs(5));
    assert!(matches!(ch.recv_u64s(1), Err(Error::Disconnected)));
}

#[test]
fn tcp_oversized_and_truncated_frames_are_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rogue = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // A header announcing 2^31 bytes.
        s.write_all(&(1u32 << 31).to_le_bytes()).unwrap();
        s.write_all(&0u32.to_le_bytes()).unwrap();
        s.flush().unwrap();
        let (mut s2, _) = listener.accept().unwrap();
        // A header announcing 100 bytes, then only 10 and a close.
        s2.write_all(&100u32.to_le_bytes()).unwrap();
        s2.write_all(&0u32.to_le_bytes()).unwrap();
        s2.write_all(&[0u8; 10]).unwrap();
    });
    let mut ch = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
    assert!(matches!(ch.recv_vec(4), Err(Error::TooLarge { .. })));
    let mut ch2 = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
    rogue.join().unwrap();
    assert!(matches!(ch2.recv_vec(4), Err(Error::Disconnected)));
}

#[test]
fn tcp_silent_peer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop(s);
    });
    let mut ch = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
    ch.set_timeout(Duration::from_millis(50));
    assert!(matches!(ch.recv_vec(1), Err(Error::Timeout(_))));
}

#[test]
fn tcp_simultaneous_large_sends_do_not_deadlock() {
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let n = 24 << 20;
    let peer = std::thread::spawn(move || {
        let mut ch = Channel::tcp_accept(&listener).unwrap();
        ch.send(&vec![1u8; n]).unwrap();
        let got = ch.recv_vec(n).unwrap();
        assert!(got.iter().all(|&b| b == 2));
    });
    let mut ch = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
    ch.send(&vec![2u8; n]).unwrap();
    let got = ch.recv_vec(n).unwrap();
    assert!(got.iter().all(|&b| b == 1));
    peer.join().unwrap();
    assert_eq!(ch.rounds(), 1);
}
