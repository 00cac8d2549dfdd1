//! Regular multi-point COT: t single-point COTs ([`super::spcot`]), one per bin of 2^h
//! consecutive positions, giving the regular noise of the primal LPN in [`super::lpn`].
//!
//! **Computes**: sender `v` (t·2^h blocks), receiver the noise positions `α_b` (one per bin)
//! and `w = v ⊕ e·Δ`, where e has exactly one 1 per bin; consumes t·h random COTs.
//!
//! **Messages**: sender → receiver only, the h level corrections of each tree, flushed every
//! [`TREES_PER_FLUSH`] trees so the receiver expands while the sender is still working.
//! The trees expand by [`TREES_PER_BATCH`] in a scratch that stays in L2; each finished
//! bin is handed to the caller's `finish(offset, leaves)`, which writes the bin's outputs
//! wherever they go (Ferret: its LPN rows, with streaming stores, into the next reserve or the
//! caller's buffer) — so an output is written once, never read for ownership, and its lines do
//! not push the LPN's secret out of the caches.
//! **Cost**: 128·t·h bits, 1 round.
use super::spcot::{recv_tree, send_tree};
use mpc_core::AesPrg;
use mpc_core::Block;
use mpc_core::{Channel, Result};

/// Trees expanded together (4 bins of 2^13 blocks: 512 KB, about a core's L2).
pub const TREES_PER_BATCH: usize = 4;

/// Trees per flushed message (a multiple of [`TREES_PER_BATCH`]). Each flush over TCP wakes
/// the channel's writer thread and, when it waits, the peer's reader: flushing every 4 trees
/// (322 flushes per main iteration) cost 5 % of the CPU in the kernel and 2–5 % of the Ferret
/// rate on this 2-vCPU VM. Every 16 trees the receiver starts an iteration about 3 ms after
/// the sender (its first 16 trees and 12 bins of LPN) instead of 1 ms, in a 300 ms iteration.
pub const TREES_PER_FLUSH: usize = 16;
const _: () = assert!(TREES_PER_FLUSH.is_multiple_of(TREES_PER_BATCH));

/// Sender: t = `q.len()`/h bins of 2^h positions from the t·h COTs `q`: the leaves `v` of
/// bin b go to `finish(b·2^h, leaves)` once the bin's corrections are sent.
pub fn send(
    ch: &mut Channel,
    delta: Block,
    q: &[Block],
    h: usize,
    prg: &mut AesPrg,
    mut finish: impl FnMut(usize, &[Block]),
) -> Result<()> {
    assert!(h >= 1 && q.len().is_multiple_of(h), "h COTs per tree");
    let mut corr = vec![Block::ZERO; TREES_PER_BATCH * h];
    let mut seeds = [Block::ZERO; TREES_PER_BATCH];
    let mut scratch = vec![Block::ZERO; TREES_PER_BATCH << h];
    let batches = q.len().div_ceil(TREES_PER_BATCH * h);
    for (c, chunk_q) in q.chunks(TREES_PER_BATCH * h).enumerate() {
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
        if ((c + 1) * TREES_PER_BATCH).is_multiple_of(TREES_PER_FLUSH) || c + 1 == batches {
            ch.flush()?;
        }
        for (b, leaves) in scratch.chunks(1 << h).take(trees).enumerate() {
            finish((c * TREES_PER_BATCH + b) << h, leaves);
        }
    }
    Ok(())
}

/// Receiver: t = `t_cots.len()`/h bins from the t·h COTs `t_cots`: the leaves `w` of rebuilt
/// bin b (the noise position is the one with its low bit set) go to `finish(b·2^h, leaves)`.
pub fn recv(
    ch: &mut Channel,
    t_cots: &[Block],
    h: usize,
    mut finish: impl FnMut(usize, &[Block]),
) -> Result<()> {
    assert!(h >= 1 && t_cots.len().is_multiple_of(h), "h COTs per tree");
    let mut corr = vec![Block::ZERO; TREES_PER_BATCH * h];
    let mut leaves = vec![Block::ZERO; 1 << h];
    for (c, chunk_t) in t_cots.chunks(TREES_PER_BATCH * h).enumerate() {
        let trees = chunk_t.len() / h;
        let corr = &mut corr[..trees * h];
        ch.recv_pod(corr)?;
        for (b, (tb, cb)) in chunk_t.chunks(h).zip(corr.chunks(h)).enumerate() {
            recv_tree(tb, cb, &mut leaves);
            finish((c * TREES_PER_BATCH + b) << h, &leaves);
        }
    }
    Ok(())
}
