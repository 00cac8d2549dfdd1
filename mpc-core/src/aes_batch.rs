//! AES-128 over batches of blocks, with a 512-bit VAES path chosen at run time.
//!
//! Every AES call of the workspace goes through [`AesBatch`]: the counter-mode generator
//! [`crate::AesPrg`] (masks, uniform polynomials, GGM seeds, IKNP columns, the LPN matrix
//! indices), and in `ot-nonlinear` the fixed-key permutation π of the correlation-robust
//! hashes and the half-tree expansion of Ferret ([`AesBatch::half_tree_level`]).
//!
//! * **Wide path** (x86-64 with VAES and AVX-512F, detected once per key with
//!   `is_x86_feature_detected!`): one `vaesenc` on a 512-bit register encrypts four blocks
//!   per round, and a loop step keeps four registers (16 blocks) in flight to cover the
//!   instruction's latency. The round keys are expanded with AES-NI's `aeskeygenassist`
//!   (every VAES CPU has AES-NI).
//! * **Portable path**: the `aes` crate (AES-NI with 128-bit registers when present, a
//!   constant-time bitsliced implementation otherwise).
//!
//! Both paths compute the same function; the tests run both on the same inputs and compare
//! them bit for bit (the wide path is skipped, with a message, on a CPU without VAES).
//! The release build does not target the native CPU, so the wide code is compiled with
//! `#[target_feature]` and only entered after detection.
//!
//! ```
//! use mpc_core::aes_batch::AesBatch;
//! use mpc_core::Block;
//!
//! let key = Block(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100);
//! let fast = AesBatch::new(key);
//! let portable = AesBatch::portable(key);
//! let mut a: Vec<Block> = (0..37u128).map(Block).collect();
//! let mut b = a.clone();
//! fast.encrypt(&mut a);
//! portable.encrypt(&mut b);
//! assert_eq!(a, b);
//! ```
use crate::block::Block;
use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;

/// Blocks per AES call of the portable path's batch helpers (keeps the 8-way AES-NI pipeline
/// full).
pub const AES_BATCH: usize = 64;

/// AES-128 under one key, encrypting slices of blocks in place.
#[derive(Clone)]
pub struct AesBatch {
    portable: Aes128,
    #[cfg(target_arch = "x86_64")]
    wide: Option<wide::RoundKeys>,
}

impl std::fmt::Debug for AesBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesBatch")
            .field("wide", &self.is_wide())
            .finish_non_exhaustive()
    }
}

/// Views blocks as AES blocks (both are 16 plain bytes; `GenericArray<u8, U16>` is
/// `repr(transparent)` over `[u8; 16]` with alignment 1, `Block` has alignment 16).
#[inline(always)]
fn as_aes_blocks(blocks: &mut [Block]) -> &mut [aes::Block] {
    // SAFETY: same size (16 bytes), the target alignment (1) divides the source alignment,
    // every bit pattern is valid for both types, and the lifetime and length are kept.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast(), blocks.len()) }
}

/// Whether this CPU runs the wide path (VAES and AVX-512F).
pub fn has_vaes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("aes")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl AesBatch {
    /// AES-128 under `key` (its 16 little-endian bytes), on the wide path when the CPU has it.
    pub fn new(key: Block) -> AesBatch {
        let mut aes = AesBatch::portable(key);
        #[cfg(target_arch = "x86_64")]
        if has_vaes() {
            // SAFETY: AES-NI is present (checked by `has_vaes`).
            aes.wide = Some(unsafe { wide::expand_key(key) });
        }
        aes
    }

    /// AES-128 under `key` on the portable path only (tests compare it with [`AesBatch::new`]).
    pub fn portable(key: Block) -> AesBatch {
        AesBatch {
            portable: Aes128::new(GenericArray::from_slice(&key.to_bytes())),
            #[cfg(target_arch = "x86_64")]
            wide: None,
        }
    }

    /// Whether this instance runs the wide (VAES) path.
    pub fn is_wide(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.wide.is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Encrypts every block of `blocks` in place.
    #[inline]
    pub fn encrypt(&self, blocks: &mut [Block]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(rk) = &self.wide {
            // SAFETY: `wide` is only set after `has_vaes` detected VAES, AVX-512F and AES-NI.
            unsafe { wide::encrypt(rk, blocks) };
            return;
        }
        self.portable.encrypt_blocks(as_aes_blocks(blocks));
    }

    /// One half-tree level from `parents` into `children` (`2·parents.len()` blocks), this
    /// instance being the fixed-key π: for each parent x, with s = [`Block::sigma`]`(x)`, the
    /// children are `left = π(s) ⊕ s` (the circular correlation-robust hash) and
    /// `right = x ⊕ left`. Returns the XOR of the left children and
    /// the XOR of the right children.
    pub fn half_tree_level(&self, parents: &[Block], children: &mut [Block]) -> (Block, Block) {
        assert_eq!(children.len(), 2 * parents.len(), "two children per parent");
        #[cfg(target_arch = "x86_64")]
        if let Some(rk) = &self.wide {
            // SAFETY: as in `encrypt`; the lengths are checked above.
            return unsafe { wide::half_tree_level(rk, parents, children) };
        }
        self.half_tree_level_portable(parents, children)
    }

    /// The portable path of [`AesBatch::half_tree_level`], by chunks of [`AES_BATCH`] parents.
    fn half_tree_level_portable(
        &self,
        parents: &[Block],
        children: &mut [Block],
    ) -> (Block, Block) {
        let mut sig = [Block::ZERO; AES_BATCH];
        let mut enc = [Block::ZERO; AES_BATCH];
        let (mut left_xor, mut right_xor) = (Block::ZERO, Block::ZERO);
        for (par, kids) in parents
            .chunks(AES_BATCH)
            .zip(children.chunks_mut(2 * AES_BATCH))
        {
            let len = par.len();
            for j in 0..len {
                sig[j] = par[j].sigma();
                enc[j] = sig[j];
            }
            self.portable.encrypt_blocks(as_aes_blocks(&mut enc[..len]));
            for (j, pair) in kids.chunks_exact_mut(2).enumerate() {
                let left = enc[j] ^ sig[j];
                let right = par[j] ^ left;
                pair[0] = left;
                pair[1] = right;
                left_xor ^= left;
                right_xor ^= right;
            }
        }
        (left_xor, right_xor)
    }
}

#[cfg(target_arch = "x86_64")]
mod wide {
    //! The VAES-512 kernels. Every function needs VAES, AVX-512F and AES-NI: callers check
    //! [`super::has_vaes`] first.
    use crate::block::Block;
    use std::arch::x86_64::*;

    /// The 11 round keys of AES-128, each broadcast to the four lanes of a 512-bit register.
    #[derive(Clone, Copy)]
    pub(super) struct RoundKeys([__m512i; 11]);

    /// One step of the AES-128 key schedule.
    #[inline]
    #[target_feature(enable = "aes")]
    fn schedule_step<const RCON: i32>(key: __m128i) -> __m128i {
        let assist = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<RCON>(key));
        let mut k = key;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, assist)
    }

    /// Expands `key` (its 16 little-endian bytes, as the `aes` crate reads them).
    ///
    /// # Safety
    /// The CPU must have AES-NI and AVX-512F.
    #[target_feature(enable = "aes,avx512f")]
    pub(super) unsafe fn expand_key(key: Block) -> RoundKeys {
        let mut k = [_mm_setzero_si128(); 11];
        // SAFETY: `Block` is 16 readable bytes; the load is unaligned.
        k[0] = unsafe { _mm_loadu_si128((&key as *const Block).cast()) };
        k[1] = schedule_step::<0x01>(k[0]);
        k[2] = schedule_step::<0x02>(k[1]);
        k[3] = schedule_step::<0x04>(k[2]);
        k[4] = schedule_step::<0x08>(k[3]);
        k[5] = schedule_step::<0x10>(k[4]);
        k[6] = schedule_step::<0x20>(k[5]);
        k[7] = schedule_step::<0x40>(k[6]);
        k[8] = schedule_step::<0x80>(k[7]);
        k[9] = schedule_step::<0x1b>(k[8]);
        k[10] = schedule_step::<0x36>(k[9]);
        RoundKeys(k.map(|r| _mm512_broadcast_i32x4(r)))
    }

    /// Encrypts four lanes of `n` registers at once (the rounds interleaved across them).
    #[inline]
    #[target_feature(enable = "vaes,avx512f")]
    fn rounds<const N: usize>(rk: &RoundKeys, mut x: [__m512i; N]) -> [__m512i; N] {
        for v in x.iter_mut() {
            *v = _mm512_xor_si512(*v, rk.0[0]);
        }
        for r in &rk.0[1..10] {
            for v in x.iter_mut() {
                *v = _mm512_aesenc_epi128(*v, *r);
            }
        }
        for v in x.iter_mut() {
            *v = _mm512_aesenclast_epi128(*v, rk.0[10]);
        }
        x
    }

    /// Lane mask of the blocks `0..len` of a register (len ≤ 4), as 64-bit element bits.
    #[inline(always)]
    fn lanes(len: usize) -> __mmask8 {
        ((1u32 << (2 * len)) - 1) as __mmask8
    }

    /// Encrypts `blocks` in place.
    ///
    /// # Safety
    /// The CPU must have VAES and AVX-512F.
    #[target_feature(enable = "vaes,avx512f")]
    pub(super) unsafe fn encrypt(rk: &RoundKeys, blocks: &mut [Block]) {
        let mut quads = blocks.chunks_exact_mut(16);
        for q in quads.by_ref() {
            let p = q.as_mut_ptr() as *mut __m512i;
            // SAFETY: `q` holds 16 blocks = four 64-byte registers; loads are unaligned.
            let x = unsafe { [0, 1, 2, 3].map(|i| _mm512_loadu_si512(p.add(i))) };
            let y = rounds(rk, x);
            for (i, y) in y.into_iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe { _mm512_storeu_si512(p.add(i), y) };
            }
        }
        for q in quads.into_remainder().chunks_mut(4) {
            let m = lanes(q.len());
            let p = q.as_mut_ptr() as *mut i64;
            // SAFETY: the mask covers exactly the `q.len()` blocks of `q`.
            let x = unsafe { _mm512_maskz_loadu_epi64(m, p) };
            let [y] = rounds(rk, [x]);
            // SAFETY: as for the load.
            unsafe { _mm512_mask_storeu_epi64(p, m, y) };
        }
    }

    /// σ on every lane: (lo, hi) ↦ (hi, lo ⊕ hi).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sigma4(x: __m512i) -> __m512i {
        let swapped = _mm512_shuffle_epi32::<0x4e>(x);
        _mm512_xor_si512(swapped, _mm512_maskz_mov_epi64(0xaa, x))
    }

    /// The XOR of the four lanes of a register.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold(x: __m512i) -> Block {
        let mut out = [Block::ZERO; 4];
        // SAFETY: `out` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), x) };
        out[0] ^ out[1] ^ out[2] ^ out[3]
    }

    /// The wide [`super::AesBatch::half_tree_level`].
    ///
    /// # Safety
    /// The CPU must have VAES and AVX-512F; `children.len() == 2·parents.len()`.
    #[target_feature(enable = "vaes,avx512f")]
    pub(super) unsafe fn half_tree_level(
        rk: &RoundKeys,
        parents: &[Block],
        children: &mut [Block],
    ) -> (Block, Block) {
        // Children pairs (l_j, r_j) of lanes 0, 1 and of lanes 2, 3.
        let lo_pairs = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        let hi_pairs = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        let (mut lacc, mut racc) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut step = |x: &[__m512i], s: &[__m512i], e: &[__m512i], out: *mut __m512i| {
            for i in 0..x.len() {
                let left = _mm512_xor_si512(e[i], s[i]);
                let right = _mm512_xor_si512(x[i], left);
                lacc = _mm512_xor_si512(lacc, left);
                racc = _mm512_xor_si512(racc, right);
                // SAFETY: the caller passes `out` at two registers per parent register.
                unsafe {
                    _mm512_storeu_si512(
                        out.add(2 * i),
                        _mm512_permutex2var_epi64(left, lo_pairs, right),
                    );
                    _mm512_storeu_si512(
                        out.add(2 * i + 1),
                        _mm512_permutex2var_epi64(left, hi_pairs, right),
                    );
                }
            }
        };
        let mut par = parents.chunks_exact(16);
        let mut kids = children.chunks_exact_mut(32);
        for (p, c) in par.by_ref().zip(kids.by_ref()) {
            let pp = p.as_ptr() as *const __m512i;
            // SAFETY: `p` holds 16 blocks = four registers.
            let x = unsafe { [0, 1, 2, 3].map(|i| _mm512_loadu_si512(pp.add(i))) };
            let s = x.map(|v| sigma4(v));
            let e = rounds(rk, s);
            step(&x, &s, &e, c.as_mut_ptr().cast());
        }
        // Fewer than 16 parents left: whole registers, then one partial register whose
        // missing lanes are zero parents (their children are not stored and their
        // contributions are removed from the sums).
        let (rest_p, rest_c) = (par.remainder(), kids.into_remainder());
        let mut tail = [Block::ZERO; 4];
        let mut tail_kids = [Block::ZERO; 8];
        for (p, c) in rest_p.chunks(4).zip(rest_c.chunks_mut(8)) {
            tail[..p.len()].copy_from_slice(p);
            tail[p.len()..].fill(Block::ZERO);
            // SAFETY: `tail` is four blocks.
            let x = unsafe { _mm512_loadu_si512(tail.as_ptr().cast()) };
            let s = sigma4(x);
            let [e] = rounds(rk, [s]);
            // Zero the lanes of missing parents before they reach the sums.
            let m = lanes(p.len());
            let (x, s, e) = (
                _mm512_maskz_mov_epi64(m, x),
                _mm512_maskz_mov_epi64(m, s),
                _mm512_maskz_mov_epi64(m, e),
            );
            step(&[x], &[s], &[e], tail_kids.as_mut_ptr().cast());
            c.copy_from_slice(&tail_kids[..c.len()]);
        }
        (fold(lacc), fold(racc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::AesPrg;

    /// Both paths, or a note when this CPU has no VAES (the wide path cannot run here).
    fn both(key: Block) -> Option<(AesBatch, AesBatch)> {
        let fast = AesBatch::new(key);
        if !fast.is_wide() {
            eprintln!("no VAES/AVX-512F on this CPU: the wide path is not tested here");
            return None;
        }
        Some((fast, AesBatch::portable(key)))
    }

    #[test]
    fn wide_and_portable_paths_agree_bit_for_bit() {
        let seed = 0x5eed_u128;
        eprintln!("seed {seed:#x}");
        let mut prg = AesPrg::from_block(Block(seed));
        for trial in 0..8 {
            let key = prg.block();
            let Some((fast, slow)) = both(key) else {
                return;
            };
            // Every length class: whole 16-block steps, whole and partial registers.
            for len in [0usize, 1, 2, 3, 4, 5, 15, 16, 17, 31, 64, 100, 1000] {
                let mut a = vec![Block::ZERO; len];
                prg.fill_blocks(&mut a);
                let mut b = a.clone();
                fast.encrypt(&mut a);
                slow.encrypt(&mut b);
                assert_eq!(a, b, "trial {trial}, {len} blocks");

                let mut parents = vec![Block::ZERO; len];
                prg.fill_blocks(&mut parents);
                let (mut ka, mut kb) = (vec![Block::ZERO; 2 * len], vec![Block::ZERO; 2 * len]);
                let sa = fast.half_tree_level(&parents, &mut ka);
                let sb = slow.half_tree_level(&parents, &mut kb);
                assert_eq!((ka, sa), (kb, sb), "trial {trial}, {len} parents");
            }
        }
    }

    #[test]
    fn matches_the_fips_197_vector() {
        // FIPS-197 appendix C.1: key 000102…0f, plaintext 00112233…ff.
        let key = Block::from_bytes(std::array::from_fn(|i| i as u8));
        let pt = Block::from_bytes(std::array::from_fn(|i| (i as u8) * 0x11));
        let ct = Block::from_bytes([
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ]);
        for aes in [AesBatch::new(key), AesBatch::portable(key)] {
            let mut b = [pt];
            aes.encrypt(&mut b);
            assert_eq!(b[0], ct, "{aes:?}");
        }
    }
}
