//! Shared test harness: run a server closure and a client closure on two threads over an
//! in-memory channel pair, with a short read timeout so a failing peer cannot hang a test.
#![allow(dead_code)]
use he_linear::galois::GaloisKeys;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use mpc_core::{AesPrg, Channel, Seed};
use rand_core::RngCore;
use std::time::Duration;

pub fn run_pair<S, C, A, B>(server: S, client: C) -> (A, B)
where
    S: FnOnce(&mut Channel) -> A + Send + 'static,
    C: FnOnce(&mut Channel) -> B,
    A: Send + 'static,
{
    let (mut cs, mut cc) = Channel::mem_pair();
    cs.set_timeout(Duration::from_secs(60));
    cc.set_timeout(Duration::from_secs(60));
    let t = std::thread::spawn(move || {
        let r = server(&mut cs);
        let _ = cs.flush();
        r
    });
    let b = client(&mut cc);
    drop(cc);
    (t.join().expect("server thread panicked"), b)
}

/// Random ring matrix mixing edge values (0, −1, ±2^63, largest fixed-point values) in.
pub fn random_matrix(rows: usize, cols: usize, seed: u8) -> RingMatrix {
    let mut rng = AesPrg::new(Seed([seed; 16]));
    let edges = [
        0u64,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        1,
        (1u64 << 45) - 1,
        (1u64 << 45).wrapping_neg(),
    ];
    let data = (0..rows * cols)
        .map(|i| {
            if i % 11 == 3 {
                edges[(i / 11) % edges.len()]
            } else {
                rng.next_u64()
            }
        })
        .collect();
    RingMatrix::new(rows, cols, data).unwrap()
}

pub fn small_matrix(rows: usize, cols: usize, seed: u8, bits: u32) -> RingMatrix {
    let mut rng = AesPrg::new(Seed([seed; 16]));
    let half = 1i64 << (bits - 1);
    let data = (0..rows * cols)
        .map(|_| ((rng.next_u64() >> (64 - bits)) as i64 - half) as u64)
        .collect();
    RingMatrix::new(rows, cols, data).unwrap()
}

/// A key pair from a fixed seed.
pub fn keys(params: &HeParams, seed: u8) -> (SecretKey, PublicKey) {
    let mut rng = AesPrg::new(Seed([seed; 16]));
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(params, &sk, &mut rng);
    (sk, pk)
}

/// Both parties' keys: (secret, public, Galois) for the server and the client.
pub fn product_keys(params: &HeParams) -> [(SecretKey, PublicKey, GaloisKeys); 2] {
    [7u8, 8].map(|seed| {
        let (sk, pk) = keys(params, seed);
        let gk = GaloisKeys::generate(params, &sk, &mut AesPrg::new(Seed([seed + 1; 16])));
        (sk, pk, gk)
    })
}
