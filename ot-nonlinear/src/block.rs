//! The 128-bit block every OT protocol works on, and bit packing helpers.
//!
//! A [`Block`] is a `u128` whose memory layout is its 16 little-endian bytes, so a slice of
//! blocks can be sent over a [`Channel`](mpc_core::Channel) with `send_pod` and encrypted in place
//! by AES without copies. Bit `i` of a block is bit `i % 8` of byte `i / 8`.
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

/// A zeroed vector of `n` blocks whose pages the kernel is asked to back with 2 MB huge pages
/// (Linux `madvise(MADV_HUGEPAGE)`, a hint; elsewhere a plain vector). Ferret's LPN reads its
/// 9.4 MB input at random: with 4 KB pages most reads would also miss the TLB.
pub fn huge_vec(n: usize) -> Vec<Block> {
    let mut v: Vec<Block> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + n * 16) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the vector's own (not yet touched) allocation;
            // madvise only changes how its pages will be backed. Failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(n, Block::ZERO);
    v
}

/// XOR of all blocks of a slice.
pub fn xor_all(blocks: &[Block]) -> Block {
    blocks.iter().fold(Block::ZERO, |a, &b| a ^ b)
}

/// The low (choice) bits of `blocks`.
pub fn lsbs(blocks: &[Block]) -> Vec<bool> {
    blocks.iter().map(|b| b.lsb()).collect()
}

/// Packs bits LSB-first into `⌈len/8⌉` bytes.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= (b as u8) << (i % 8);
    }
    out
}

/// Unpacks `n` bits from LSB-first bytes (the inverse of [`pack_bits`]).
pub fn unpack_bits(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1 == 1).collect()
}

/// Packs `ℓ`-bit values (`1 ≤ ℓ ≤ 64`, each `< 2^ℓ`) into `⌈len·ℓ/8⌉` bytes, LSB-first.
pub fn pack_values(values: &[u64], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; (values.len() * bits as usize).div_ceil(8)];
    let mut pos = 0usize;
    for &v in values {
        for j in 0..bits as usize {
            out[(pos + j) / 8] |= (((v >> j) & 1) as u8) << ((pos + j) % 8);
        }
        pos += bits as usize;
    }
    out
}

/// Unpacks `n` values of `ℓ` bits (the inverse of [`pack_values`]).
pub fn unpack_values(bytes: &[u8], n: usize, bits: u32) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0usize;
    for _ in 0..n {
        let mut v = 0u64;
        for j in 0..bits as usize {
            v |= (((bytes[(pos + j) / 8] >> ((pos + j) % 8)) & 1) as u64) << j;
        }
        out.push(v);
        pos += bits as usize;
    }
    out
}

/// Bytes of `n` packed `ℓ`-bit values.
pub fn packed_len(n: usize, bits: u32) -> usize {
    (n * bits as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let bits: Vec<bool> = (0..77).map(|i| i % 3 == 0).collect();
        assert_eq!(unpack_bits(&pack_bits(&bits), 77), bits);
        for l in [1u32, 7, 32, 63, 64] {
            let mask = if l == 64 { u64::MAX } else { (1 << l) - 1 };
            let vals: Vec<u64> = (0..13u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask)
                .chain([0, mask])
                .collect();
            let packed = pack_values(&vals, l);
            assert_eq!(packed.len(), packed_len(vals.len(), l));
            assert_eq!(unpack_values(&packed, vals.len(), l), vals);
        }
        let b = Block(0xff);
        assert_eq!(b.with_lsb(false), Block(0xfe));
        assert_eq!(b.select(false), Block::ZERO);
        assert_eq!(Block::from_bytes(b.to_bytes()), b);
    }
}
