//! Base OT: the Chou–Orlandi "simplest OT" on the ristretto255 group, as random OT.
//!
//! **Computes** `n` random 1-of-2 OTs: the sender gets key pairs `(k0_i, k1_i)`, the receiver
//! with choice bits `c_i` gets `k_{c_i}`; keys are 128-bit blocks.
//!
//! **Messages** (G the ristretto base point, H = BLAKE3 in key-derivation mode):
//! 1. sender → receiver: `A = a·G` (32 bytes), `a` a fresh uniform scalar;
//! 2. receiver → sender: `B_i = x_i·G + c_i·A` (32 bytes each), `x_i` fresh uniform scalars.
//!
//! Then `k0_i = H(i, A, B_i, a·B_i)`, `k1_i = H(i, A, B_i, a·(B_i − A))` and the receiver's
//! `k_{c_i} = H(i, A, B_i, x_i·A)`; the index `i` is hashed in so that the keys of different OTs
//! are independent although they share `A`.
//!
//! **Cost**: `32 + 32·n` bytes, 2 rounds (flights). IKNP runs it once per connection with
//! n = 128 ([`BASE_OTS`]).
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use mpc_core::Block;
use mpc_core::{Channel, Error, Result};
use rand_core::CryptoRng;

/// Base OTs per connection (one per bit of the IKNP correlation Δ).
pub const BASE_OTS: usize = 128;

const KDF_CONTEXT: &str = "ot-nonlinear chou-orlandi base OT v1";

fn random_scalar(rng: &mut impl CryptoRng) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn kdf(i: usize, a: &CompressedRistretto, b: &CompressedRistretto, p: &RistrettoPoint) -> Block {
    let mut h = blake3::Hasher::new_derive_key(KDF_CONTEXT);
    h.update(&(i as u64).to_le_bytes());
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    h.update(p.compress().as_bytes());
    let mut out = [0u8; 16];
    h.finalize_xof().fill(&mut out);
    Block::from_bytes(out)
}

fn decompress(bytes: &[u8]) -> Result<(CompressedRistretto, RistrettoPoint)> {
    let c = CompressedRistretto::from_slice(bytes).map_err(|_| {
        Error::malformed(
            "ristretto point",
            mpc_core::Dims::Bytes(bytes.len()),
            mpc_core::Dims::Bytes(32),
        )
    })?;
    let p = c.decompress().ok_or_else(|| {
        Error::malformed("ristretto point", "an invalid encoding", "a valid encoding")
    })?;
    Ok((c, p))
}

/// Sender side: returns `n` key pairs `[k0, k1]`; its secret scalar comes from `rng`.
pub fn send_random(
    ch: &mut Channel,
    n: usize,
    rng: &mut impl CryptoRng,
) -> Result<Vec<[Block; 2]>> {
    ch.scope("base_ot", |ch| {
        let a = random_scalar(rng);
        let big_a = &a * RISTRETTO_BASEPOINT_TABLE;
        let a_c = big_a.compress();
        ch.send(a_c.as_bytes())?;
        let bs = ch.recv_vec(32 * n)?;
        let a_times_a = a * big_a;
        bs.chunks_exact(32)
            .enumerate()
            .map(|(i, bytes)| {
                let (b_c, b) = decompress(bytes)?;
                let ab = a * b;
                Ok([
                    kdf(i, &a_c, &b_c, &ab),
                    kdf(i, &a_c, &b_c, &(ab - a_times_a)),
                ])
            })
            .collect()
    })
}

/// Receiver side: returns `k_{c_i}` for every choice bit `c_i`; its secret scalars come from
/// `rng`.
pub fn recv_random(
    ch: &mut Channel,
    choices: &[bool],
    rng: &mut impl CryptoRng,
) -> Result<Vec<Block>> {
    ch.scope("base_ot", |ch| {
        let (a_c, big_a) = decompress(&ch.recv_vec(32)?)?;
        if big_a == RistrettoPoint::identity() {
            return Err(Error::malformed(
                "base OT point A",
                "the identity",
                "a non-identity point",
            ));
        }
        let mut msg = Vec::with_capacity(32 * choices.len());
        let mut pending = Vec::with_capacity(choices.len());
        for &c in choices {
            let x = random_scalar(rng);
            // c·A computed as a scalar multiplication by 0 or 1: no branch on the choice.
            let b = &x * RISTRETTO_BASEPOINT_TABLE + Scalar::from(c as u8) * big_a;
            let b_c = b.compress();
            msg.extend_from_slice(b_c.as_bytes());
            pending.push((x, b_c));
        }
        ch.send(&msg)?;
        ch.flush()?;
        Ok(pending
            .iter()
            .enumerate()
            .map(|(i, (x, b_c))| kdf(i, &a_c, b_c, &(x * big_a)))
            .collect())
    })
}
