//! AES-128 in counter mode as a pseudo-random generator, seeds, and coin-tossed shared seeds.
//!
//! The `aes` crate picks AES-NI at run time when the CPU has it. Stream `i` of a seed is the
//! encryption of the counter blocks `(nonce = i, ctr = 0, 1, ...)` under the seed as AES key, so
//! independent streams derived from one seed never overlap.
use crate::channel::Channel;
use crate::error::Result;
use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{CryptoRng, RngCore, SeedableRng};

/// A 128-bit seed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Seed(pub [u8; 16]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)") // never print key material
    }
}

impl Seed {
    /// A fresh seed from the operating system's generator: for the top of a run (a binary's
    /// `main`, a test harness). Library code takes its randomness from its caller instead.
    pub fn random() -> Seed {
        let mut s = [0u8; 16];
        rand::rng().fill_bytes(&mut s);
        Seed(s)
    }

    /// A seed from an existing generator.
    pub fn from_rng(rng: &mut (impl RngCore + ?Sized)) -> Seed {
        let mut s = [0u8; 16];
        rng.fill_bytes(&mut s);
        Seed(s)
    }

    /// An independent child seed: AES_seed(tweak) (AES as a PRF).
    pub fn derive(&self, tweak: u64) -> Seed {
        let cipher = Aes128::new(GenericArray::from_slice(&self.0));
        let mut block = GenericArray::clone_from_slice(&block_bytes(tweak, u64::MAX));
        cipher.encrypt_block(&mut block);
        Seed(block.into())
    }
}

fn block_bytes(nonce: u64, ctr: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ctr.to_le_bytes());
    b[8..].copy_from_slice(&nonce.to_le_bytes());
    b
}

/// Blocks encrypted per refill of the internal buffer.
const BUF_BLOCKS: usize = 64;

/// AES-128-CTR generator.
#[derive(Clone)]
pub struct AesPrg {
    cipher: Aes128,
    nonce: u64,
    ctr: u64,
    buf: [u8; BUF_BLOCKS * 16],
    pos: usize,
}

impl std::fmt::Debug for AesPrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesPrg").finish_non_exhaustive()
    }
}

impl AesPrg {
    /// Stream 0 of `seed`.
    pub fn new(seed: Seed) -> AesPrg {
        AesPrg::with_stream(seed, 0)
    }

    /// Stream `stream` of `seed`.
    pub fn with_stream(seed: Seed, stream: u64) -> AesPrg {
        AesPrg {
            cipher: Aes128::new(GenericArray::from_slice(&seed.0)),
            nonce: stream,
            ctr: 0,
            buf: [0u8; BUF_BLOCKS * 16],
            pos: BUF_BLOCKS * 16,
        }
    }

    /// Encrypts the next counter blocks straight into `out` (length a multiple of 16).
    fn keystream_into(&mut self, out: &mut [u8]) {
        debug_assert_eq!(out.len() % 16, 0);
        for chunk in out.chunks_mut(16 * BUF_BLOCKS) {
            let mut blocks: Vec<_> = (0..chunk.len() / 16)
                .map(|i| GenericArray::from(block_bytes(self.nonce, self.ctr + i as u64)))
                .collect();
            self.ctr += blocks.len() as u64;
            self.cipher.encrypt_blocks(&mut blocks);
            for (dst, b) in chunk.chunks_mut(16).zip(&blocks) {
                dst.copy_from_slice(b);
            }
        }
    }

    fn refill(&mut self) {
        let mut buf = [0u8; BUF_BLOCKS * 16];
        self.keystream_into(&mut buf);
        self.buf = buf;
        self.pos = 0;
    }

    /// Fills a slice of plain-old-data values with uniform bytes.
    pub fn fill_pod<T: bytemuck::Pod>(&mut self, out: &mut [T]) {
        self.fill_bytes(bytemuck::cast_slice_mut(out));
    }

    /// `n` uniform `u64` values.
    pub fn u64s(&mut self, n: usize) -> Vec<u64> {
        let mut v = vec![0u64; n];
        self.fill_pod(&mut v);
        v
    }
}

impl RngCore for AesPrg {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut done = 0;
        // Drain the buffer first.
        let avail = (self.buf.len() - self.pos).min(dest.len());
        dest[..avail].copy_from_slice(&self.buf[self.pos..self.pos + avail]);
        self.pos += avail;
        done += avail;
        // Bulk: whole blocks straight into the destination.
        let bulk = (dest.len() - done) / 16 * 16;
        if bulk > 0 {
            self.keystream_into(&mut dest[done..done + bulk]);
            done += bulk;
        }
        if done < dest.len() {
            self.refill();
            let rest = dest.len() - done;
            dest[done..].copy_from_slice(&self.buf[..rest]);
            self.pos = rest;
        }
    }
}

impl CryptoRng for AesPrg {}

impl SeedableRng for AesPrg {
    type Seed = [u8; 16];
    fn from_seed(seed: [u8; 16]) -> Self {
        AesPrg::new(Seed(seed))
    }
}

/// A common random seed by coin tossing: both parties send a fresh seed drawn from `rng` at
/// once (one flight) and take the XOR. Sufficient against semi-honest parties, the model of
/// DESIGN.md §1.
pub fn coin_toss(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<Seed> {
    let mine = Seed::from_rng(rng);
    ch.send(&mine.0)?;
    let mut theirs = [0u8; 16];
    ch.recv(&mut theirs)?;
    let mut s = [0u8; 16];
    for i in 0..16 {
        s[i] = mine.0[i] ^ theirs[i];
    }
    Ok(Seed(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_ctr_matches_fips197_and_is_consistent() {
        // FIPS-197 C.1: key 000102..0f, plaintext 00112233..ff.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let cipher = Aes128::new(GenericArray::from_slice(&key));
        let mut block = GenericArray::from(core::array::from_fn::<u8, 16, _>(|i| (i * 0x11) as u8));
        cipher.encrypt_block(&mut block);
        assert_eq!(
            block.as_slice(),
            &[
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        // Any split of reads gives the same stream.
        let seed = Seed(key);
        let mut whole = vec![0u8; 5000];
        AesPrg::new(seed).fill_bytes(&mut whole);
        let mut prg = AesPrg::new(seed);
        let mut pieces = Vec::new();
        for n in [1usize, 7, 16, 33, 1024, 3919] {
            let mut b = vec![0u8; n];
            prg.fill_bytes(&mut b);
            pieces.extend(b);
        }
        assert_eq!(whole, pieces);
        assert_ne!(AesPrg::with_stream(seed, 1).next_u64(), whole[0] as u64);
        assert_ne!(seed.derive(1), seed.derive(2));
    }

    #[test]
    fn coin_toss_agrees() {
        let (mut a, mut b) = Channel::mem_pair();
        let t =
            std::thread::spawn(move || coin_toss(&mut b, &mut AesPrg::new(Seed([2; 16]))).unwrap());
        let sa = coin_toss(&mut a, &mut AesPrg::new(Seed([1; 16]))).unwrap();
        assert_eq!(sa, t.join().unwrap());
        assert_eq!(a.rounds(), 1);
    }
}
