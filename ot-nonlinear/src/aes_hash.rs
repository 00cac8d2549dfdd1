//! Fixed-key AES hashes: the random permutation π and the correlation-robust hashes built on it.
//!
//! π is AES-128 under a public constant key ([`AesBatch`]: VAES-512 or AES-NI, detected at run
//! time).
//! With the linear orthomorphism σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L (Guo et al., S&P 2020):
//!
//! * [`ccr`]: H(x) = π(σ(x)) ⊕ σ(x), circular correlation robust; one AES call. It is the
//!   length-doubling step of the half-tree GGM expansion in [`crate::ferret::spcot`].
//! * [`tccr`]: H(i, x) = π(π(x) ⊕ i) ⊕ π(x), tweakable circular correlation robust; two AES
//!   calls. Every OT key is hashed with its index `i` as the tweak (the adapters of
//!   [`crate::adapters`]), so keys of different OTs under the same Δ are independent.
use mpc_core::aes_batch::AesBatch;
pub use mpc_core::aes_batch::AES_BATCH;
use mpc_core::Block;
use std::sync::OnceLock;

/// The public key of π (the first 32 hexadecimal digits of π's fractional part).
const FIXED_KEY: u128 = 0x243f_6a88_85a3_08d3_1319_8a2e_0370_7344;

/// π: AES-128 under the fixed key, on the VAES path when the CPU has it.
pub fn pi() -> &'static AesBatch {
    static PI: OnceLock<AesBatch> = OnceLock::new();
    PI.get_or_init(|| AesBatch::new(Block(FIXED_KEY)))
}

/// π applied in place to every block.
#[inline]
pub fn permute_blocks(blocks: &mut [Block]) {
    pi().encrypt(blocks);
}

/// H(x) = π(σ(x)) ⊕ σ(x) for every block of `blocks`, in place.
pub fn ccr_blocks(blocks: &mut [Block]) {
    let mut tmp = [Block::ZERO; AES_BATCH];
    for chunk in blocks.chunks_mut(AES_BATCH) {
        let tmp = &mut tmp[..chunk.len()];
        for (t, x) in tmp.iter_mut().zip(chunk.iter_mut()) {
            *x = x.sigma();
            *t = *x;
        }
        permute_blocks(tmp);
        for (x, t) in chunk.iter_mut().zip(tmp.iter()) {
            *x ^= *t;
        }
    }
}

/// H(x) = π(σ(x)) ⊕ σ(x) for one block.
pub fn ccr(x: Block) -> Block {
    let mut b = [x];
    ccr_blocks(&mut b);
    b[0]
}

/// H(i, x) = π(π(x) ⊕ i) ⊕ π(x) for every pair `(tweaks[j], blocks[j])`, in place in `blocks`.
pub fn tccr_blocks(tweaks: &[Block], blocks: &mut [Block]) {
    assert_eq!(tweaks.len(), blocks.len(), "one tweak per block");
    let mut tmp = [Block::ZERO; AES_BATCH];
    for (chunk, tw) in blocks.chunks_mut(AES_BATCH).zip(tweaks.chunks(AES_BATCH)) {
        let tmp = &mut tmp[..chunk.len()];
        permute_blocks(chunk); // chunk = π(x)
        for ((t, x), &i) in tmp.iter_mut().zip(chunk.iter()).zip(tw) {
            *t = *x ^ i;
        }
        permute_blocks(tmp);
        for (x, t) in chunk.iter_mut().zip(tmp.iter()) {
            *x ^= *t;
        }
    }
}

/// H(i, x) for one block.
pub fn tccr(tweak: Block, x: Block) -> Block {
    let mut b = [x];
    tccr_blocks(&[tweak], &mut b);
    b[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_their_definitions() {
        let x = Block(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let enc = |v: Block| {
            let mut b = [v];
            permute_blocks(&mut b);
            b[0]
        };
        assert_eq!(ccr(x), enc(x.sigma()) ^ x.sigma());
        let i = Block(42);
        assert_eq!(tccr(i, x), enc(enc(x) ^ i) ^ enc(x));
        assert_ne!(tccr(Block(1), x), tccr(Block(2), x));
        // σ is an orthomorphism: σ(x) ⊕ x is a bijection too (no nonzero fixed point).
        assert_ne!(x.sigma() ^ x, Block::ZERO);
        // Batches agree with single calls across a chunk boundary.
        let mut xs: Vec<Block> = (0..(AES_BATCH as u128 + 3)).map(Block).collect();
        let tw: Vec<Block> = (0..xs.len() as u128).map(|j| Block(j * 7)).collect();
        let want: Vec<Block> = xs.iter().zip(&tw).map(|(&x, &t)| tccr(t, x)).collect();
        tccr_blocks(&tw, &mut xs);
        assert_eq!(xs, want);
    }
}
