//! Two-party harness for the operator tests: both parties' HE keys, sessions on an in-memory
//! channel (Ferret set up), seeded share generation, and exact-cost assertions.
#![allow(dead_code)] // each test binary uses a different part of the harness

use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Channel, Party, Ring, Seed, Stats};
use nn::HeKeys;
use ot_nonlinear::mpc::{Cost, Session};
use std::sync::Arc;
use std::time::Duration;

/// The seed of a test run: `NN_TEST_SEED` if set, else `default`; printed so that a failure
/// reproduces (`NN_TEST_SEED=… cargo test --release -p nn`).
pub fn seed(default: u64) -> u64 {
    let s = std::env::var("NN_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {s}");
    s
}

/// A seed from fresh entropy, printed (runs that explore beyond the pinned seeds).
pub fn fresh_seed() -> u64 {
    let s = u64::from_le_bytes(Seed::random().0[..8].try_into().unwrap());
    eprintln!("fresh seed {s}");
    s
}

/// A generator for test data from `seed`.
pub fn prg(seed: u64) -> AesPrg {
    AesPrg::new(Seed([0x5e; 16]).derive(seed))
}

/// Shares (server, client) of `x` in `ring`.
pub fn share(x: &[u64], ring: Ring, rng: &mut AesPrg) -> (Vec<u64>, Vec<u64>) {
    ring.share_vec(x, rng)
}

/// One party's HE keys.
pub struct PartyKeys {
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub galois: GaloisKeys,
}

/// Parameters and both parties' keys.
pub struct Fixture {
    pub params: HeParams,
    pub packed: HeParams,
    pub server: PartyKeys,
    pub client: PartyKeys,
    /// The parties' session seeds (from the test's seed).
    pub sessions: [Seed; 2],
}

impl Fixture {
    pub fn new(seed: u64) -> Arc<Fixture> {
        let params = HeParams::default_params().unwrap();
        let packed = HeParams::packed_products().unwrap();
        let keys = |t: u64| {
            let mut rng = AesPrg::new(Seed([0x4b; 16]).derive(seed ^ t));
            let sk = SecretKey::generate(&params, &mut rng);
            let pk = PublicKey::generate(&params, &sk, &mut rng);
            let galois = GaloisKeys::generate(&packed, &sk, &mut rng);
            PartyKeys { sk, pk, galois }
        };
        let (server, client) = (keys(1), keys(2));
        Arc::new(Fixture {
            params,
            packed,
            server,
            client,
            sessions: [3, 4].map(|t| Seed([0x53; 16]).derive(seed ^ t)),
        })
    }

    /// The keys of `party` as its operators see them.
    pub fn he(&self, party: Party) -> HeKeys<'_> {
        let (me, peer) = match party {
            Party::Server => (&self.server, &self.client),
            Party::Client => (&self.client, &self.server),
        };
        HeKeys {
            params: &self.params,
            product_params: &self.packed,
            keys: ProductKeys {
                my_sk: &me.sk,
                peer_pk: &peer.pk,
                peer_galois: Some(&peer.galois),
            },
        }
    }
}

/// Runs the server's and the client's sides on two threads over an in-memory channel; returns
/// both results and both channels (for their statistics).
pub fn run<A: Send + 'static, B>(
    fx: &Arc<Fixture>,
    server: impl FnOnce(&mut Session, &HeKeys<'_>) -> A + Send + 'static,
    client: impl FnOnce(&mut Session, &HeKeys<'_>) -> B,
) -> (A, B, Channel, Channel) {
    let (mut cs, mut cc) = Channel::mem_pair();
    cs.set_timeout(Duration::from_secs(60));
    cc.set_timeout(Duration::from_secs(60));
    let fxs = fx.clone();
    let t = std::thread::spawn(move || {
        let mut sess = Session::new(cs, Party::Server, fxs.sessions[0]).unwrap();
        let out = server(&mut sess, &fxs.he(Party::Server));
        sess.ch.flush().unwrap();
        (out, sess.ch)
    });
    let mut sess = Session::new(cc, Party::Client, fx.sessions[1]).unwrap();
    let b = client(&mut sess, &fx.he(Party::Client));
    sess.ch.flush().unwrap();
    let (a, cs) = t.join().unwrap();
    (a, b, cs, sess.ch)
}

/// Both parties sent exactly the cost's bytes under `label`, in at most its flights (the cost
/// adds its steps' flights; consecutive flights the same way merge on the channel) and in
/// exactly `rounds`, pinned.
pub fn assert_cost_rounds(
    label: &str,
    server: &Channel,
    client: &Channel,
    cost: Cost,
    rounds: u64,
) {
    assert_bytes(label, server, client, cost);
    let (s, c) = (stats(label, server), stats(label, client));
    assert!(
        s.rounds <= cost.rounds,
        "{label}: {} rounds > {}",
        s.rounds,
        cost.rounds
    );
    assert_eq!((s.rounds, c.rounds), (rounds, rounds), "{label}: rounds");
}

fn stats(label: &str, ch: &Channel) -> Stats {
    ch.stats_of(label).unwrap_or_default()
}

/// Both parties sent exactly the cost's bytes under `label`.
pub fn assert_bytes(label: &str, server: &Channel, client: &Channel, cost: Cost) {
    let (s, c) = (stats(label, server), stats(label, client));
    assert_eq!(
        (s.bytes_sent, c.bytes_sent),
        (cost.server_bytes, cost.client_bytes),
        "{label}: bytes (server, client)"
    );
}

/// Both parties sent exactly the cost's bytes under `label`, in exactly its flights.
pub fn assert_cost(label: &str, server: &Channel, client: &Channel, cost: Cost) {
    let s: Stats = server.stats_of(label).unwrap_or_default();
    let c: Stats = client.stats_of(label).unwrap_or_default();
    assert_eq!(
        (s.bytes_sent, c.bytes_sent),
        (cost.server_bytes, cost.client_bytes),
        "{label}: bytes (server, client)"
    );
    assert_eq!(
        (s.rounds, c.rounds),
        (cost.rounds, cost.rounds),
        "{label}: rounds"
    );
}

/// Largest |a − b| over signed Z_2^64 values.
pub fn max_gap(a: &[u64], b: &[u64]) -> u64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.wrapping_sub(y) as i64).unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// Fixed-point encodings (18 fraction bits) of `n` values uniform in [lo, hi), after `edges`.
pub fn values(rng: &mut AesPrg, n: usize, lo: f64, hi: f64, edges: &[f64]) -> Vec<u64> {
    let lin = mpc_core::FixedPoint::LINEAR;
    let mut out: Vec<u64> = edges.iter().map(|&e| lin.encode(e).unwrap()).collect();
    while out.len() < n {
        let u = (rng.u64s(1)[0] >> 11) as f64 / (1u64 << 53) as f64;
        out.push(lin.encode(lo + (hi - lo) * u).unwrap());
    }
    out.truncate(n);
    out
}
