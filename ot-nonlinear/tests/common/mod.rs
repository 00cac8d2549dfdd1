//! Two-party test harness: runs the two ends of a protocol on two threads over an in-memory
//! or a TCP loopback channel.
#![allow(dead_code)] // each test binary uses a different part of the harness

use mpc_core::{Channel, Result};
use std::net::TcpListener;
use std::time::Duration;

/// The carriers every protocol is tested on.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Mem,
    Tcp,
}

pub const BOTH: [Transport; 2] = [Transport::Mem, Transport::Tcp];

/// A connected pair of channels with a short read timeout (hangs become errors).
pub fn pair(transport: Transport) -> (Channel, Channel) {
    let (mut a, mut b) = match transport {
        Transport::Mem => Channel::mem_pair(),
        Transport::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let t = std::thread::spawn(move || Channel::tcp_accept(&listener).unwrap());
            let a = Channel::tcp_connect(addr, Duration::from_secs(5)).unwrap();
            (a, t.join().unwrap())
        }
    };
    a.set_timeout(Duration::from_secs(20));
    b.set_timeout(Duration::from_secs(20));
    (a, b)
}

/// Runs `fa` and `fb` as the two parties; returns both results and both channels.
pub fn run<A: Send + 'static, B>(
    transport: Transport,
    fa: impl FnOnce(&mut Channel) -> Result<A> + Send + 'static,
    fb: impl FnOnce(&mut Channel) -> Result<B>,
) -> (A, B, Channel, Channel) {
    let (mut ca, mut cb) = pair(transport);
    let t = std::thread::spawn(move || {
        let r = fa(&mut ca);
        ca.flush().unwrap();
        (r, ca)
    });
    let rb = fb(&mut cb);
    cb.flush().unwrap();
    let (ra, ca) = t.join().unwrap();
    (ra.unwrap(), rb.unwrap(), ca, cb)
}

/// Asserts that the fraction of ones among `ones` of `total` bits is within 6 standard
/// deviations of 1/2.
pub fn assert_balanced(ones: u64, total: u64, what: &str) {
    let mean = total as f64 / 2.0;
    let sd = (total as f64 / 4.0).sqrt();
    assert!(
        (ones as f64 - mean).abs() <= 6.0 * sd,
        "{what}: {ones} ones in {total} bits (expected {mean} ± {})",
        6.0 * sd
    );
}
