//! Primal LPN with regular noise: parameters and the local encoding `y = A·x ⊕ e`.
//!
//! A is a public n × k binary matrix whose row i has d = [`LPN_D`] ones at uniform positions
//! drawn from AES-CTR under a coin-tossed seed (2.5 AES calls per row, each 32-bit word mapped
//! into [0, k) by a multiply-shift). Applied to COTs, row i XORs d of the k reserved COT blocks
//! into the single-point COT output at position i; both parties do it on their own blocks, so
//! the correlation carries over. No communication.
use mpc_core::AesPrg;
use mpc_core::Block;
use mpc_core::{Error, Result};

/// Ones per row of the LPN matrix.
pub const LPN_D: usize = 10;

/// Rows encoded per AES batch (even, so that row pairs share 5 blocks of indices). The reads
/// of a batch are independent, so the core keeps as many of them in flight as it has miss
/// buffers without software prefetches (with them, 5–12 % fewer COTs/s end to end on this VM:
/// they hold the same buffers and add instructions); 32 and 128 rows measured alike.
const ROWS: usize = 128;

/// One primal-LPN parameter set with regular noise: n outputs, k secret COTs, t noise
/// positions (one per bin of 2^`log_bin` outputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LpnParams {
    /// Outputs per iteration (n = t·2^log_bin).
    pub n: usize,
    /// LPN dimension (COTs of the reserve XORed into the outputs).
    pub k: usize,
    /// Noise weight (number of single-point COT trees).
    pub t: usize,
    /// Depth of each tree.
    pub log_bin: usize,
}

impl LpnParams {
    /// The main iteration: regular noise, k = 2^19, t = 1 287 bins of 2^13 (n = 10 543 104):
    /// seven bins more than the set emp-ot's commit 7a7e8c7 evaluates at 138.5 bits against
    /// the newer regular-LPN attacks (t = 1 280), so that an iteration yields ≥ 10^7 new COTs as
    /// emp-ot's older `N_REG`, `K_REG`, `T_REG` (the previous set) did. Its 8 MB secret is 11 %
    /// smaller than that set's 9.4 MB, which is what the LPN's random reads cost. The security
    /// estimate is in docs/security.md ("Oblivious transfer", LPN).
    pub const MAIN: LpnParams = LpnParams {
        n: 10_543_104,
        k: 524_288,
        t: 1_287,
        log_bin: 13,
    };

    /// The bootstrapping iteration, from the Ferret paper (Yang et al., CCS 2020) and emp-ot
    /// (`N_PRE_REG`, `K_PRE_REG`, `T_PRE_REG`): it turns 47 709 IKNP COTs into the 541 019 the
    /// main iteration reserves.
    pub const PRE: LpnParams = LpnParams {
        n: 649_728,
        k: 36_288,
        t: 1_269,
        log_bin: 9,
    };

    /// COTs consumed per iteration: k for the LPN secret, t·log_bin for the trees.
    pub const fn reserve(&self) -> usize {
        self.k + self.t * self.log_bin
    }

    /// New COTs per iteration once the next iteration's reserve is set aside.
    pub const fn output(&self) -> usize {
        self.n - self.reserve()
    }

    /// Bytes sent per iteration (sender → receiver: one block per tree level).
    pub const fn bytes_per_iteration(&self) -> u64 {
        16 * (self.t * self.log_bin) as u64
    }

    /// Bits sent per new COT in steady state: the iteration's bytes over its new COTs.
    pub fn bits_per_cot(&self) -> f64 {
        8.0 * self.bytes_per_iteration() as f64 / self.output() as f64
    }

    /// Checks that the set is well formed.
    pub fn validate(&self) -> Result<()> {
        let ok = self.log_bin >= 1
            && self.log_bin < 32
            && self.n == self.t << self.log_bin
            && self.n.is_multiple_of(2)
            && self.k >= 1
            && self.k < u32::MAX as usize
            && self.reserve() < self.n;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "malformed LPN parameters {self:?}"
            )))
        }
    }
}

/// Writes `out[r] = leaves[r] ⊕ ⊕_{j<d} input[A(first_row + r, j)]` for every row r, with A
/// the matrix whose indices `matrix` (an AES-CTR generator under the public seed) produces;
/// `first_row` must be even and `leaves` as long as `out`.
///
/// The hot loop of Ferret with the tree expansion: the k-block input (8 MB for the main
/// set) does not fit in L2, and the rows' random reads of it bound the loop. `out` is written
/// with streaming stores: it is not read first, and its lines do not evict the input from the
/// caches.
pub fn encode(
    matrix: &mut AesPrg,
    first_row: usize,
    input: &[Block],
    leaves: &[Block],
    out: &mut [Block],
) {
    let k = input.len() as u64;
    assert!(k >= 1 && k < u32::MAX as u64, "LPN dimension out of range");
    assert_eq!(leaves.len(), out.len(), "one leaf per output row");
    assert!(
        first_row.is_multiple_of(2) && out.len().is_multiple_of(2),
        "rows come in pairs (5 AES blocks of indices per pair)"
    );
    let prg = matrix;
    prg.seek((first_row / 2 * 5) as u128);
    let mut words = [Block::ZERO; ROWS / 2 * 5];
    let mut idx = [0u32; ROWS * LPN_D];
    for (rows, leaves) in out.chunks_mut(ROWS).zip(leaves.chunks(ROWS)) {
        let words = &mut words[..rows.len() / 2 * 5];
        prg.fill_blocks(words);
        let w: &[u32] = bytemuck::cast_slice(words);
        for (i, &x) in idx.iter_mut().zip(w) {
            *i = ((x as u64 * k) >> 32) as u32;
        }
        for ((row, &leaf), w) in rows.iter_mut().zip(leaves).zip(idx.chunks_exact(LPN_D)) {
            let mut acc = leaf;
            for &i in w {
                acc ^= input[i as usize];
            }
            store_streaming(row, acc);
        }
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline; the fence orders the streaming stores
    // before whatever reads `out` next, on this thread or another.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

/// `*dst = value` with a non-temporal store where the target has one (SSE2 `movntdq`: the
/// line is written combined, without being read for ownership or kept in the caches).
#[inline(always)]
fn store_streaming(dst: &mut Block, value: Block) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `dst` is a valid, 16-byte aligned (`Block` is a `u128`) exclusive reference, and
    // SSE2 is part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{__m128i, _mm_stream_si128};
        _mm_stream_si128(
            (dst as *mut Block).cast::<__m128i>(),
            std::mem::transmute::<Block, __m128i>(value),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        *dst = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_chain() {
        for p in [LpnParams::MAIN, LpnParams::PRE] {
            p.validate().unwrap();
        }
        // The bootstrapping iteration yields at least the main iteration's reserve.
        assert!(LpnParams::PRE.n >= LpnParams::MAIN.reserve());
        assert_eq!(LpnParams::MAIN.reserve(), 541_019);
        assert_eq!(LpnParams::PRE.reserve(), 47_709);
    }

    #[test]
    fn encoding_is_linear_and_uses_d_positions() {
        let input: Vec<Block> = (0..1000u128)
            .map(|i| Block(1 << (i % 128)) ^ Block(i << 64))
            .collect();
        let mut a = vec![Block::ZERO; 10];
        encode(
            &mut AesPrg::from_block(Block(5)),
            0,
            &input,
            &[Block::ZERO; 10],
            &mut a,
        );
        // Row 0 on a unit input vector: parity of how often position p appears.
        let mut unit = vec![Block::ZERO; 1000];
        let mut hits = 0;
        for p in 0..1000 {
            unit[p] = Block::ONE;
            let mut r = vec![Block::ZERO; 2];
            encode(
                &mut AesPrg::from_block(Block(5)),
                0,
                &unit,
                &[Block::ZERO; 2],
                &mut r,
            );
            hits += r[0].0 as usize;
            unit[p] = Block::ZERO;
        }
        assert!(hits <= LPN_D && hits % 2 == LPN_D % 2);
        // Linearity: encode(x ⊕ y) = encode(x) ⊕ encode(y) on zero outputs.
        let other: Vec<Block> = input.iter().map(|b| Block(b.0.rotate_left(3))).collect();
        let sum: Vec<Block> = input.iter().zip(&other).map(|(&x, &y)| x ^ y).collect();
        let (mut b, mut c) = (vec![Block::ZERO; 10], vec![Block::ZERO; 10]);
        encode(
            &mut AesPrg::from_block(Block(5)),
            0,
            &other,
            &[Block::ZERO; 10],
            &mut b,
        );
        // Rows 4..10 encoded on their own agree with the same rows of a full encoding.
        encode(
            &mut AesPrg::from_block(Block(5)),
            4,
            &sum,
            &[Block::ZERO; 6],
            &mut c[4..],
        );
        encode(
            &mut AesPrg::from_block(Block(5)),
            0,
            &sum,
            &[Block::ZERO; 4],
            &mut c[..4],
        );
        for i in 0..10 {
            assert_eq!(c[i], a[i] ^ b[i]);
        }
    }
}
