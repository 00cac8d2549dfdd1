//! Regular multi-point COT: t single-point COTs ([`super::spcot`]), one per bin of 2^h
//! consecutive positions, giving the regular noise of the primal LPN in [`super::lpn`].
//!
//! **Computes**: sender `v` (t·2^h blocks), receiver the noise positions `α_b` (one per bin)
//! and `w = v ⊕ e·Δ`, where e has exactly one 1 per bin; consumes t·h random COTs.
//!
//! **Messages**: sender → receiver only, the h level corrections of each tree, sent by chunks
//! of [`TREES_PER_FLUSH`] trees so the receiver expands while the sender is still working.
//! The trees expand in a scratch of [`TREES_PER_FLUSH`] bins that stays in L2; each finished
//! bin is handed to the caller's `finish(offset, leaves, out_bin)`, which writes the bin's
//! outputs (Ferret: its LPN rows, with streaming stores) — so the output buffer is written
//! once, never read for ownership, and its lines do not push the LPN's secret out of the caches.
//! **Cost**: 128·t·h bits, 1 round.
use super::spcot::{recv_tree, send_tree};
use mpc_core::AesPrg;
use mpc_core::Block;
use mpc_core::{Channel, Result};

/// Trees per flushed message (4 bins of 2^13 blocks: 512 KB, about a core's L2).
pub const TREES_PER_FLUSH: usize = 4;

/// Sender: the t bins of 2^h of `out` from the t·h COTs `q`: the leaves `v` of every bin go to
/// `finish(offset, leaves, out_bin)` once the bin's corrections are sent; `finish` writes
/// `out_bin`.
pub fn send(
    ch: &mut Channel,
    delta: Block,
    q: &[Block],
    out: &mut [Block],
    h: usize,
    prg: &mut AesPrg,
    mut finish: impl FnMut(usize, &[Block], &mut [Block]),
) -> Result<()> {
    let t = out.len() >> h;
    assert_eq!(t << h, out.len(), "output is t bins of 2^h");
    assert_eq!(q.len(), t * h, "h COTs per tree");
    let mut corr = vec![Block::ZERO; TREES_PER_FLUSH * h];
    let mut seeds = [Block::ZERO; TREES_PER_FLUSH];
    let mut scratch = vec![Block::ZERO; TREES_PER_FLUSH << h];
    for (c, (chunk_out, chunk_q)) in out
        .chunks_mut(TREES_PER_FLUSH << h)
        .zip(q.chunks(TREES_PER_FLUSH * h))
        .enumerate()
    {
        let trees = chunk_q.len() / h;
        prg.fill_blocks(&mut seeds[..trees]);
        for (b, (leaves, qb)) in scratch
            .chunks_mut(1 << h)
            .zip(chunk_q.chunks(h))
            .enumerate()
        {
            send_tree(delta, seeds[b], qb, leaves, &mut corr[b * h..(b + 1) * h]);
        }
        ch.send_pod(&corr[..trees * h])?;
        ch.flush()?;
        for (b, (leaves, bin)) in scratch
            .chunks(1 << h)
            .zip(chunk_out.chunks_mut(1 << h))
            .enumerate()
        {
            finish((c * TREES_PER_FLUSH + b) << h, leaves, bin);
        }
    }
    Ok(())
}

/// Receiver: the t bins of `out` from the t·h COTs `t_cots`: the leaves `w` of every rebuilt
/// bin (the noise position is the one with its low bit set) go to `finish(offset, leaves,
/// out_bin)`, which writes `out_bin`.
pub fn recv(
    ch: &mut Channel,
    t_cots: &[Block],
    out: &mut [Block],
    h: usize,
    mut finish: impl FnMut(usize, &[Block], &mut [Block]),
) -> Result<()> {
    let t = out.len() >> h;
    assert_eq!(t << h, out.len(), "output is t bins of 2^h");
    assert_eq!(t_cots.len(), t * h, "h COTs per tree");
    let mut corr = vec![Block::ZERO; TREES_PER_FLUSH * h];
    let mut leaves = vec![Block::ZERO; 1 << h];
    for (c, (chunk_out, chunk_t)) in out
        .chunks_mut(TREES_PER_FLUSH << h)
        .zip(t_cots.chunks(TREES_PER_FLUSH * h))
        .enumerate()
    {
        let trees = chunk_t.len() / h;
        let corr = &mut corr[..trees * h];
        ch.recv_pod(corr)?;
        for (b, ((bin, tb), cb)) in chunk_out
            .chunks_mut(1 << h)
            .zip(chunk_t.chunks(h))
            .zip(corr.chunks(h))
            .enumerate()
        {
            recv_tree(tb, cb, &mut leaves);
            finish((c * TREES_PER_FLUSH + b) << h, &leaves, bin);
        }
    }
    Ok(())
}
