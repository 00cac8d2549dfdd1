//! A block-oriented AES-128-CTR pseudo-random generator.
//!
//! `mpc_core::AesPrg` is a byte-oriented `RngCore` that allocates a buffer per refill; the OT
//! hot paths (IKNP column expansion, GGM seeds, LPN matrix indices) need whole blocks written
//! straight into a caller's slice, so this generator encrypts counter blocks in place there:
//! no allocation, no copy, 16 blocks per VAES loop step ([`AesBatch`]).
use crate::aes_batch::AesBatch;
use crate::block::Block;
use mpc_core::Seed;
use rand_core::CryptoRng;

/// AES-128 in counter mode, block by block: output `j` is AES_seed(j).
#[derive(Clone)]
pub struct BlockPrg {
    cipher: AesBatch,
    counter: u128,
}

impl std::fmt::Debug for BlockPrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPrg").finish_non_exhaustive()
    }
}

impl BlockPrg {
    /// The generator of `seed`, at counter 0.
    pub fn new(seed: Block) -> BlockPrg {
        BlockPrg {
            cipher: AesBatch::new(seed),
            counter: 0,
        }
    }

    /// A generator seeded by a fresh seed drawn from `rng`.
    pub fn from_rng(rng: &mut impl CryptoRng) -> BlockPrg {
        BlockPrg::new(Block::from_bytes(Seed::from_rng(rng).0))
    }

    /// Moves to output block `counter` (the next [`fill`](Self::fill) starts there).
    pub fn seek(&mut self, counter: u128) {
        self.counter = counter;
    }

    /// Overwrites `out` with the next `out.len()` output blocks.
    #[inline]
    pub fn fill(&mut self, out: &mut [Block]) {
        for (j, b) in out.iter_mut().enumerate() {
            *b = Block(self.counter.wrapping_add(j as u128));
        }
        self.counter = self.counter.wrapping_add(out.len() as u128);
        self.cipher.encrypt(out);
    }

    /// The next output block.
    pub fn block(&mut self) -> Block {
        let mut b = [Block::ZERO];
        self.fill(&mut b);
        b[0]
    }

    /// `n` pseudo-random bits.
    pub fn bits(&mut self, n: usize) -> Vec<bool> {
        let mut blocks = vec![Block::ZERO; n.div_ceil(128)];
        self.fill(&mut blocks);
        (0..n)
            .map(|i| (blocks[i / 128].0 >> (i % 128)) & 1 == 1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_split_invariant() {
        let mut a = BlockPrg::new(Block(7));
        let mut whole = vec![Block::ZERO; 300];
        a.fill(&mut whole);
        let mut b = BlockPrg::new(Block(7));
        let mut parts = vec![Block::ZERO; 300];
        b.fill(&mut parts[..1]);
        b.fill(&mut parts[1..129]);
        parts[129] = b.block();
        b.fill(&mut parts[130..]);
        assert_eq!(whole, parts);
        assert_ne!(whole[0], whole[1]);
    }
}
