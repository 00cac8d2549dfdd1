//! The 128-bit block: an OT key, a correlation Δ, a GGM-tree node, an AES key or counter.
//!
//! A [`Block`] is a `u128` whose memory layout is its 16 little-endian bytes, so a slice of
//! blocks can be sent over a [`Channel`](crate::Channel) with `send_pod` and encrypted in place
//! by AES ([`crate::aes_batch::AesBatch`]) without copies. Bit `i` of a block is bit `i % 8` of
//! byte `i / 8`. A [`Seed`](crate::Seed) is a block of key material; `Block::from(seed)` takes
//! its 16 bytes as they are.
use rand_core::RngCore;
use std::ops::{BitAnd, BitXor, BitXorAssign};

/// A 128-bit value: an OT key, a correlation Δ, a GGM-tree node.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    /// The all-zero block.
    pub const ZERO: Block = Block(0);

    /// A block with only its low bit set.
    pub const ONE: Block = Block(1);

    /// The point-and-permute bit (bit 0).
    #[inline(always)]
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }

    /// The same block with bit 0 replaced by `bit`.
    #[inline(always)]
    pub fn with_lsb(self, bit: bool) -> Block {
        Block((self.0 & !1) | bit as u128)
    }

    /// `self` if `bit`, else zero (constant time).
    #[inline(always)]
    pub fn select(self, bit: bool) -> Block {
        Block(self.0 & (bit as u128).wrapping_neg())
    }

    /// A uniform block from `rng`.
    pub fn random(rng: &mut (impl RngCore + ?Sized)) -> Block {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Block(u128::from_le_bytes(b))
    }

    /// The 16 little-endian bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// The block of 16 little-endian bytes.
    pub fn from_bytes(b: [u8; 16]) -> Block {
        Block(u128::from_le_bytes(b))
    }

    /// A block from two 64-bit halves (`hi` in bits 64..128).
    #[inline(always)]
    pub fn from_halves(hi: u64, lo: u64) -> Block {
        Block(((hi as u128) << 64) | lo as u128)
    }

    /// The low 64 bits.
    #[inline(always)]
    pub fn low_u64(self) -> u64 {
        self.0 as u64
    }

    /// σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L, the linear orthomorphism of the fixed-key hashes
    /// (Guo et al., S&P 2020).
    #[inline(always)]
    pub fn sigma(self) -> Block {
        let hi = (self.0 >> 64) as u64;
        let lo = self.0 as u64;
        Block::from_halves(hi ^ lo, hi)
    }
}

impl From<crate::Seed> for Block {
    fn from(seed: crate::Seed) -> Block {
        Block::from_bytes(seed.0)
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({:032x})", self.0)
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline(always)]
    fn bitxor(self, rhs: Block) -> Block {
        Block(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    #[inline(always)]
    fn bitxor_assign(&mut self, rhs: Block) {
        self.0 ^= rhs.0
    }
}

impl BitAnd for Block {
    type Output = Block;
    #[inline(always)]
    fn bitand(self, rhs: Block) -> Block {
        Block(self.0 & rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_bits_and_sigma() {
        let b = Block(0xff);
        assert_eq!(b.with_lsb(false), Block(0xfe));
        assert_eq!(b.select(false), Block::ZERO);
        assert_eq!(b.select(true), b);
        assert_eq!(Block::from_bytes(b.to_bytes()), b);
        assert_eq!(Block::from(crate::Seed(b.to_bytes())), b);
        let x = Block::from_halves(0x1234, 0xabcd);
        assert_eq!(x.sigma(), Block::from_halves(0x1234 ^ 0xabcd, 0x1234));
    }
}
