//! Two-party test harness: runs the two ends of a protocol on two threads over an in-memory
//! or a TCP loopback channel.
#![allow(dead_code)] // each test binary uses a different part of the harness

use mpc_core::{AesPrg, Channel, Result, Seed};
use std::net::TcpListener;
use std::time::Duration;

/// The seed of a test: `OT_TEST_SEED` if set, else `default`; printed so that a failure
/// reproduces (`OT_TEST_SEED=… cargo test --release -p ot-nonlinear`).
pub fn seed(default: u64) -> u64 {
    let s = std::env::var("OT_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {s}");
    s
}

/// The generator of party `party` (0 or 1) in a test seeded with `seed`.
pub fn rng(seed: u64, party: u64) -> AesPrg {
    AesPrg::new(Seed([0x07; 16]).derive(seed).derive(party))
}

/// The session seed of party `party` (0 or 1) in a test seeded with `seed`.
pub fn session_seed(seed: u64, party: u64) -> Seed {
    Seed([0x5e; 16]).derive(seed).derive(party)
}

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

/// Runs `f` as both parties of the two-party protocols, each on its own thread with its own
/// [`Session`](ot_nonlinear::mpc::Session) over an in-memory channel; after the Ferret setup
/// one simultaneous exchange closes the setup's open flights and the stats are cleared, so
/// `label`'s stats are the protocol's own (a test that needs the standalone round count of a
/// protocol starting with a client flight calls [`end_with_server_flight`] first). Returns
/// ((server's result, stats), (client's result, stats)).
pub fn both_sessions<T: Send + 'static>(
    label: &'static str,
    f: impl Fn(&mut ot_nonlinear::mpc::Session) -> Result<T> + Send + Sync + 'static,
) -> ((T, mpc_core::Stats), (T, mpc_core::Stats)) {
    use ot_nonlinear::mpc::Session;
    let (mut a, mut b) = Channel::mem_pair();
    a.set_timeout(Duration::from_secs(60));
    b.set_timeout(Duration::from_secs(60));
    let f = std::sync::Arc::new(f);
    let g = f.clone();
    let run = move |mut s: Session, f: &dyn Fn(&mut Session) -> Result<T>| {
        s.ch.send(&[0])?;
        s.ch.recv_vec(1)?;
        s.ch.clear_stats();
        let r = f(&mut s)?;
        s.ch.flush()?;
        Ok::<_, mpc_core::Error>((r, s.ch.stats_of(label).unwrap_or_default()))
    };
    let s = seed(1);
    let (ss, cs) = (session_seed(s, 0), session_seed(s, 1));
    let t = std::thread::spawn(move || run(Session::new(b, mpc_core::Party::Client, cs)?, &*g));
    let rs = run(Session::new(a, mpc_core::Party::Server, ss).unwrap(), &*f).unwrap();
    (rs, t.join().unwrap().unwrap())
}

/// Shares of `x` in Z_2^64: uniform server shares from a fixed seed, with edge shares (0,
/// all-ones, x itself) at every 13th position.
pub fn edge_shares(x: &[u64], seed: u128) -> (Vec<u64>, Vec<u64>) {
    use ot_nonlinear::Block;
    let mut prg = mpc_core::AesPrg::from_block(Block(seed));
    let s: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| match i % 13 {
            3 => 0,
            5 => u64::MAX,
            7 => v,
            _ => prg.block().low_u64(),
        })
        .collect();
    let c = x.iter().zip(&s).map(|(&v, &s)| v.wrapping_sub(s)).collect();
    (s, c)
}

/// A client → server → client exchange: the traffic so far ends with a server flight, so a
/// protocol whose first flight is the client's (or simultaneous) starts a new round, as it
/// does standalone. Call it after reserving a protocol's COTs to measure its own rounds.
pub fn end_with_server_flight(s: &mut ot_nonlinear::mpc::Session) -> Result<()> {
    if s.is_server() {
        s.ch.recv_vec(1)?;
        s.ch.send(&[0])?;
        s.ch.flush()
    } else {
        s.ch.send(&[0])?;
        s.ch.recv_vec(1).map(|_| ())
    }
}

/// Bytes of Ferret extensions this party sent or received since its stats were cleared, under
/// any label (an extension inside a protocol records under `<protocol>/…/ferret/extend`).
pub fn extension_bytes(ch: &Channel) -> u64 {
    ch.stats()
        .iter()
        .filter(|(label, _)| label.ends_with("ferret/extend"))
        .map(|(_, st)| st.bytes_sent + st.bytes_recv)
        .sum()
}
