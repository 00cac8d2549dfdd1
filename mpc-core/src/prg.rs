//! AES-128 in counter mode as a pseudo-random generator, seeds, and coin-tossed shared seeds.
//!
//! AES runs on [`AesBatch`] (VAES-512 when the CPU has it, detected at run time; the `aes`
//! crate's AES-NI or bitsliced code otherwise). Stream `i` of a seed is the encryption of the
//! counter blocks `i·2^64 + 0, 1, …` under the seed as AES key, so independent streams derived
//! from one seed never overlap.
use crate::aes_batch::AesBatch;
use crate::block::Block;
use crate::channel::Channel;
use crate::error::Result;
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

    /// An independent child seed: AES_seed(tweak·2^64 + 2^64 − 1) (AES as a PRF, on a counter
    /// no stream below 2^64 − 1 blocks reaches).
    pub fn derive(&self, tweak: u64) -> Seed {
        let mut block = [Block(((tweak as u128) << 64) | u64::MAX as u128)];
        AesBatch::new(Block::from(*self)).encrypt(&mut block);
        Seed(block[0].to_bytes())
    }
}

/// Keystream blocks buffered for byte-oriented reads (1 KB).
const BUF_BLOCKS: usize = 64;

/// AES-128 in counter mode, the workspace's one pseudo-random generator: output block `j` is
/// AES_seed(j) with `j` a 128-bit little-endian counter (stream `s` starts at `j = s·2^64`).
///
/// Two faces over one keystream:
/// * **blocks** ([`fill_blocks`](Self::fill_blocks), [`block`](Self::block),
///   [`seek`](Self::seek)): whole blocks encrypted in place in the caller's slice, no copy, no
///   allocation, 16 blocks per VAES loop step ([`AesBatch`]) — the OT hot paths (IKNP columns,
///   GGM seeds, LPN matrix indices);
/// * **bytes** ([`RngCore`]): masks, shares and uniform polynomials, through a 1 KB buffer.
///
/// A block call continues at the first block not yet encrypted: keystream bytes buffered by
/// an earlier byte read and not consumed are skipped, never repeated.
///
/// ```
/// use mpc_core::{AesPrg, Block, Seed};
/// use rand_core::RngCore;
///
/// let seed = Seed([7; 16]);
/// let mut blocks = [Block::ZERO; 3];
/// AesPrg::new(seed).fill_blocks(&mut blocks);
/// let mut bytes = [0u8; 48];
/// AesPrg::new(seed).fill_bytes(&mut bytes);
/// assert_eq!(bytes[16..32], blocks[1].to_bytes());
/// ```
#[derive(Clone)]
pub struct AesPrg {
    cipher: AesBatch,
    /// The next block to encrypt.
    counter: u128,
    buf: [Block; BUF_BLOCKS],
    /// Bytes of `buf` already handed out (`16·BUF_BLOCKS` when it is empty).
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

    /// Stream `stream` of `seed`: counters `stream·2^64 + 0, 1, …`.
    pub fn with_stream(seed: Seed, stream: u64) -> AesPrg {
        let mut prg = AesPrg::from_block(Block::from(seed));
        prg.seek((stream as u128) << 64);
        prg
    }

    /// The generator keyed by a block (a GGM node, a base-OT key), at counter 0; the same as
    /// [`AesPrg::new`] of the seed with the block's 16 bytes.
    pub fn from_block(key: Block) -> AesPrg {
        AesPrg {
            cipher: AesBatch::new(key),
            counter: 0,
            buf: [Block::ZERO; BUF_BLOCKS],
            pos: BUF_BLOCKS * 16,
        }
    }

    /// A generator keyed by a fresh seed drawn from `rng`.
    pub fn from_rng(rng: &mut (impl CryptoRng + ?Sized)) -> AesPrg {
        AesPrg::new(Seed::from_rng(rng))
    }

    /// Moves to output block `counter` (the next read starts there; buffered bytes are dropped).
    pub fn seek(&mut self, counter: u128) {
        self.counter = counter;
        self.pos = BUF_BLOCKS * 16;
    }

    /// Overwrites `out` with the next `out.len()` keystream blocks.
    #[inline]
    pub fn fill_blocks(&mut self, out: &mut [Block]) {
        self.pos = BUF_BLOCKS * 16;
        for (j, b) in out.iter_mut().enumerate() {
            *b = Block(self.counter.wrapping_add(j as u128));
        }
        self.counter = self.counter.wrapping_add(out.len() as u128);
        self.cipher.encrypt(out);
    }

    /// The next keystream block.
    pub fn block(&mut self) -> Block {
        let mut b = [Block::ZERO];
        self.fill_blocks(&mut b);
        b[0]
    }

    /// `n` pseudo-random bits (whole blocks, bit `i` is bit `i % 128` of block `i / 128`).
    pub fn bits(&mut self, n: usize) -> Vec<bool> {
        let mut blocks = vec![Block::ZERO; n.div_ceil(128)];
        self.fill_blocks(&mut blocks);
        (0..n)
            .map(|i| (blocks[i / 128].0 >> (i % 128)) & 1 == 1)
            .collect()
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

    /// The next `16·BUF_BLOCKS` keystream bytes into the buffer.
    fn refill(&mut self) {
        let mut buf = [Block::ZERO; BUF_BLOCKS];
        self.fill_blocks(&mut buf);
        self.buf = buf;
        self.pos = 0;
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
        while done < dest.len() {
            if self.pos == BUF_BLOCKS * 16 {
                self.refill();
            }
            let buf: &[u8] = bytemuck::cast_slice(&self.buf);
            let take = (buf.len() - self.pos).min(dest.len() - done);
            dest[done..done + take].copy_from_slice(&buf[self.pos..self.pos + take]);
            self.pos += take;
            done += take;
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
/// docs/security.md.
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
    fn aes_ctr_is_split_invariant_and_one_keystream() {
        // FIPS-197 C.1's key; the cipher itself is checked in `aes_batch`.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
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
        // Block j of the stream is AES_seed(j): the block and byte faces read one keystream.
        let mut blocks = vec![Block::ZERO; 5000usize.div_ceil(16)];
        let mut prg = AesPrg::new(seed);
        prg.fill_blocks(&mut blocks[..1]);
        prg.fill_blocks(&mut blocks[1..200]);
        blocks[200] = prg.block();
        prg.fill_blocks(&mut blocks[201..]);
        let bytes: &[u8] = bytemuck::cast_slice(&blocks);
        assert_eq!(&bytes[..5000], &whole[..]);
        let mut expect = [Block(7), Block((1 << 64) + 3)];
        AesBatch::portable(Block::from(seed)).encrypt(&mut expect);
        let mut keyed_by_block = AesPrg::from_block(Block::from(seed));
        keyed_by_block.seek(7);
        assert_eq!(keyed_by_block.block(), expect[0]);
        let mut stream1 = AesPrg::with_stream(seed, 1);
        stream1.seek((1 << 64) + 3);
        assert_eq!(stream1.block(), expect[1]);
        // A block read after a partial byte read skips the buffered bytes, never repeats them.
        let mut prg = AesPrg::new(seed);
        let mut first = [0u8; 5];
        prg.fill_bytes(&mut first);
        let next = prg.block();
        assert_eq!(next, {
            let mut b = [Block(BUF_BLOCKS as u128)];
            AesBatch::portable(Block::from(seed)).encrypt(&mut b);
            b[0]
        });
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
