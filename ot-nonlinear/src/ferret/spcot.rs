//! Single-point COT by a half-tree GGM expansion (Guo et al., Eurocrypt 2023), one tree.
//!
//! **Computes**, for a tree of depth h and N = 2^h leaves, given h random COTs under Δ
//! (sender `q_i`, receiver `t_i = q_i ⊕ r_i·Δ`): sender leaves `v_0..v_{N−1}`, receiver point
//! `α = (¬r_1 … ¬r_h)` (bits MSB first) and leaves `w_j = v_j ⊕ [j = α]·Δ`. The point is
//! uniform and hidden from the sender because the COT choice bits are.
//!
//! **Tree**: level 1 is `(s, s ⊕ Δ)` for a fresh seed s; a node x has children
//! `H(x)` and `x ⊕ H(x)` with H the circular-correlation-robust hash [`ccr`] (one AES call
//! per parent, four parents per VAES instruction when the CPU has it), so every level XORs
//! to Δ. For level i the sender sends `c_i = K0_i ⊕ q_i` (K0_i the XOR of the level's left children); the receiver gets
//! `c_i ⊕ t_i = K_{r_i}`, the XOR of the side off its path, from which it recovers the one
//! off-path node it misses. At the leaves, `w_α` is the XOR of the other leaves.
//! Finally bit 0 of every sender leaf is cleared, and of every receiver leaf set to `[j = α]`,
//! so that outputs keep the point-and-permute convention of [`crate::cot`].
//!
//! **Cost**: h blocks (128·h bits) sender → receiver, part of the one flight of
//! [`super::mpcot`]; 2^h − 2 AES calls per party.
use crate::aes_hash::{ccr, pi};
use crate::block::xor_all;
use mpc_core::Block;

/// Parents expanded per batch (copied out before their children overwrite them).
const CHUNK: usize = 64;

/// Replaces the first `parents` nodes of `buf` by their `2·parents` children (in place,
/// from the back) and returns the XOR of the left children and of the right children.
#[inline]
fn expand_level(buf: &mut [Block], parents: usize) -> (Block, Block) {
    let mut par = [Block::ZERO; CHUNK];
    let (mut left_xor, mut right_xor) = (Block::ZERO, Block::ZERO);
    let mut end = parents;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let len = end - start;
        par[..len].copy_from_slice(&buf[start..end]);
        // Children land in [2·start, 2·end): at or above `end` unless start = 0, and the
        // parents of this chunk are already copied, so nothing unread is overwritten.
        let (l, r) = pi().half_tree_level(&par[..len], &mut buf[2 * start..2 * end]);
        left_xor ^= l;
        right_xor ^= r;
        end = start;
    }
    (left_xor, right_xor)
}

/// Sender: expands the tree of `seed` into `leaves` (length 2^h, h = `q.len()`) and writes the
/// h level corrections into `corr`.
pub fn send_tree(delta: Block, seed: Block, q: &[Block], leaves: &mut [Block], corr: &mut [Block]) {
    let h = q.len();
    assert!(h >= 1, "tree depth at least 1");
    assert_eq!(leaves.len(), 1 << h, "2^h leaves");
    assert_eq!(corr.len(), h, "one correction per level");
    leaves[0] = seed;
    leaves[1] = seed ^ delta;
    corr[0] = seed ^ q[0];
    for i in 1..h {
        let (left_xor, _) = expand_level(leaves, 1 << i);
        corr[i] = left_xor ^ q[i];
    }
    for v in leaves.iter_mut() {
        *v = v.with_lsb(false);
    }
}

/// Receiver: rebuilds `leaves` from its COT blocks `t` (choice bits = low bits) and the
/// sender's corrections; returns the point α.
pub fn recv_tree(t: &[Block], corr: &[Block], leaves: &mut [Block]) -> usize {
    let h = t.len();
    assert!(h >= 1, "tree depth at least 1");
    assert_eq!(leaves.len(), 1 << h, "2^h leaves");
    assert_eq!(corr.len(), h, "one correction per level");
    // Children of the unknown path node (held as zero) are H(0) on both sides.
    let garbage = ccr(Block::ZERO);
    let r = t[0].lsb() as usize;
    leaves[r] = corr[0] ^ t[0];
    let mut path = 1 - r;
    leaves[path] = Block::ZERO;
    for i in 1..h {
        let (left_xor, right_xor) = expand_level(leaves, 1 << i);
        let r = t[i].lsb();
        let known = if r { right_xor } else { left_xor } ^ garbage;
        leaves[2 * path + r as usize] = corr[i] ^ t[i] ^ known;
        path = 2 * path + (!r) as usize;
        leaves[path] = Block::ZERO;
    }
    leaves[path] = xor_all(leaves);
    for w in leaves.iter_mut() {
        *w = w.with_lsb(false);
    }
    leaves[path] = leaves[path].with_lsb(true);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::AesPrg;

    #[test]
    fn one_point_differs_by_delta() {
        let mut prg = AesPrg::from_block(Block(11));
        let delta = prg.block().with_lsb(true);
        for h in [1usize, 2, 5, 9] {
            for trial in 0..8 {
                let q: Vec<Block> = (0..h).map(|_| prg.block().with_lsb(false)).collect();
                let r: Vec<bool> = (0..h).map(|i| (trial >> i) & 1 == 1).collect();
                let t: Vec<Block> = q
                    .iter()
                    .zip(&r)
                    .map(|(&q, &b)| q ^ delta.select(b))
                    .collect();
                let (mut v, mut w) = (vec![Block::ZERO; 1 << h], vec![Block::ZERO; 1 << h]);
                let mut corr = vec![Block::ZERO; h];
                send_tree(delta, prg.block(), &q, &mut v, &mut corr);
                let alpha = recv_tree(&t, &corr, &mut w);
                let want_alpha = r.iter().fold(0, |a, &b| 2 * a + (!b) as usize);
                assert_eq!(alpha, want_alpha);
                for j in 0..1 << h {
                    assert_eq!(w[j], v[j] ^ delta.select(j == alpha), "h={h} j={j}");
                    assert!(!v[j].lsb());
                }
            }
        }
    }
}
