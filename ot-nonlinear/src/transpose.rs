//! Bit-matrix transpose (the IKNP step that turns 128 columns of m bits into m blocks).
//!
//! A matrix of `nrows × ncols` bits is stored row-major, each row `ncols / 8` bytes, bit `c` of a
//! row at bit `c % 8` of byte `c / 8`. The fast path gathers one byte from each of 16 rows into a
//! 128-bit vector and peels off its 8 bit-planes with `movemask` (SSE2, always present on x86-64);
//! other targets run the same algorithm on scalars.

/// Transposes `inp` (`nrows × ncols` bits) into `out` (`ncols × nrows` bits).
///
/// Panics unless `nrows` is a multiple of 16, `ncols` a multiple of 8 and the slices have
/// `nrows·ncols/8` bytes.
pub fn transpose(out: &mut [u8], inp: &[u8], nrows: usize, ncols: usize) {
    assert!(
        nrows.is_multiple_of(16) && ncols.is_multiple_of(8),
        "transpose needs nrows % 16 == 0 and ncols % 8 == 0 (got {nrows} × {ncols})"
    );
    assert_eq!(inp.len(), nrows * ncols / 8, "input length");
    assert_eq!(out.len(), nrows * ncols / 8, "output length");
    #[cfg(target_arch = "x86_64")]
    transpose_sse2(out, inp, nrows, ncols);
    #[cfg(not(target_arch = "x86_64"))]
    transpose_portable(out, inp, nrows, ncols);
}

#[cfg(target_arch = "x86_64")]
fn transpose_sse2(out: &mut [u8], inp: &[u8], nrows: usize, ncols: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8, _mm_slli_epi64};
    let (in_stride, out_stride) = (ncols / 8, nrows / 8);
    let mut gathered = [0u8; 16];
    for rr in (0..nrows).step_by(16) {
        for cb in 0..in_stride {
            for (i, g) in gathered.iter_mut().enumerate() {
                *g = inp[(rr + i) * in_stride + cb];
            }
            // SAFETY: SSE2 is part of the x86-64 baseline; the load reads the 16 bytes of
            // `gathered` (unaligned load).
            let mut v: __m128i = unsafe { _mm_loadu_si128(gathered.as_ptr().cast()) };
            for bit in (0..8).rev() {
                // Bit 7 of every byte after shifting left by 7 − bit: bit `bit` of each row.
                let mask = unsafe { _mm_movemask_epi8(v) } as u16;
                let o = (cb * 8 + bit) * out_stride + rr / 8;
                out[o..o + 2].copy_from_slice(&mask.to_le_bytes());
                v = unsafe { _mm_slli_epi64(v, 1) };
            }
        }
    }
}

/// The same algorithm without SIMD (the fallback off x86-64; tested against the naive transpose
/// everywhere).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn transpose_portable(out: &mut [u8], inp: &[u8], nrows: usize, ncols: usize) {
    let (in_stride, out_stride) = (ncols / 8, nrows / 8);
    for rr in (0..nrows).step_by(16) {
        for cb in 0..in_stride {
            let mut v = [0u8; 16];
            for (i, g) in v.iter_mut().enumerate() {
                *g = inp[(rr + i) * in_stride + cb];
            }
            for bit in 0..8 {
                let mut mask = 0u16;
                for (i, &g) in v.iter().enumerate() {
                    mask |= (((g >> bit) & 1) as u16) << i;
                }
                let o = (cb * 8 + bit) * out_stride + rr / 8;
                out[o..o + 2].copy_from_slice(&mask.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::AesPrg;

    fn naive(inp: &[u8], nrows: usize, ncols: usize) -> Vec<u8> {
        let mut out = vec![0u8; inp.len()];
        for r in 0..nrows {
            for c in 0..ncols {
                let bit = (inp[r * ncols / 8 + c / 8] >> (c % 8)) & 1;
                out[c * nrows / 8 + r / 8] |= bit << (r % 8);
            }
        }
        out
    }

    #[test]
    fn fast_and_portable_match_naive() {
        let mut prg = AesPrg::from_block(mpc_core::Block(3));
        for (nrows, ncols) in [(16usize, 8usize), (128, 128), (128, 1024), (32, 40)] {
            let mut words = vec![mpc_core::Block::ZERO; (nrows * ncols / 8).div_ceil(16)];
            prg.fill_blocks(&mut words);
            let inp = bytemuck::cast_slice::<_, u8>(&words)[..nrows * ncols / 8].to_vec();
            let want = naive(&inp, nrows, ncols);
            let mut fast = vec![0u8; inp.len()];
            transpose(&mut fast, &inp, nrows, ncols);
            assert_eq!(fast, want, "{nrows}×{ncols}");
            let mut portable = vec![0u8; inp.len()];
            transpose_portable(&mut portable, &inp, nrows, ncols);
            assert_eq!(portable, want, "{nrows}×{ncols}");
        }
    }
}
