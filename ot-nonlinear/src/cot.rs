//! Streaming sources of random correlated OT (COT): the interface between the OT extensions
//! ([`crate::iknp`], [`crate::ferret`]) and the adapters written once over any source
//! ([`crate::adapters`]).
//!
//! A random COT under the sender's global correlation Δ (a block with its low bit set) gives
//! the sender `q_i` and the receiver a uniform choice bit `b_i` and `t_i = q_i ⊕ b_i·Δ`.
//! Every source keeps the point-and-permute convention: `lsb(q_i) = 0`, so `lsb(t_i) = b_i` and
//! the receiver reads its choice bit off its block.
//!
//! Each output has a stream index (0, 1, 2, ... in the order produced); `fill` returns the
//! index of its first output. Adapters hash keys with that index as the tweak, so no two COTs
//! of one source are ever hashed under the same tweak.
use crate::block::huge_vec;
use mpc_core::Block;
use mpc_core::{Channel, Result};
use std::collections::VecDeque;

/// Sender side of a random-COT source (holds Δ).
pub trait RandomCotSender {
    /// The global correlation Δ (low bit set).
    fn delta(&self) -> Block;

    /// Overwrites `out` with the next `q_i` (low bit 0); returns the stream index of `out[0]`.
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64>;

    /// The next `n` outputs and the stream index of the first.
    fn next_n(&mut self, ch: &mut Channel, n: usize) -> Result<(u64, Vec<Block>)> {
        // Protocols draw millions of COTs at once: a huge-page, calloc-backed buffer is
        // neither memset first nor faulted in 4 KB at a time.
        let mut v = huge_vec(n);
        let start = self.fill(ch, &mut v)?;
        Ok((start, v))
    }

    /// Produces now whatever the next `n` outputs need, so that serving them later sends
    /// nothing (a protocol's rounds then hold no extension flight). Must be mirrored by the
    /// peer's [`RandomCotReceiver::reserve`] with the same `n`. Sources that produce exactly on
    /// demand (IKNP) keep the default, which does nothing.
    fn reserve(&mut self, _ch: &mut Channel, _n: usize) -> Result<()> {
        Ok(())
    }
}

/// Receiver side of a random-COT source.
pub trait RandomCotReceiver {
    /// Overwrites `out` with the next `t_i = q_i ⊕ b_i·Δ`, where `b_i = lsb(t_i)` is the choice
    /// bit; returns the stream index of `out[0]`.
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64>;

    /// The next `n` outputs and the stream index of the first.
    fn next_n(&mut self, ch: &mut Channel, n: usize) -> Result<(u64, Vec<Block>)> {
        // Protocols draw millions of COTs at once: a huge-page, calloc-backed buffer is
        // neither memset first nor faulted in 4 KB at a time.
        let mut v = huge_vec(n);
        let start = self.fill(ch, &mut v)?;
        Ok((start, v))
    }

    /// The mirror of [`RandomCotSender::reserve`].
    fn reserve(&mut self, _ch: &mut Channel, _n: usize) -> Result<()> {
        Ok(())
    }
}

/// Batches of produced COTs, served in stream order to requests of any size.
///
/// Ferret batches are 10 M blocks (160 MB): the pool never concatenates or reallocates them.
/// Reserved batches wait as separate chunks, and a fully served buffer is kept for the next
/// refill, so a steady stream of iterations touches the same (already faulted-in, huge-page
/// backed) memory instead of zeroing, faulting and copying a fresh 160 MB per iteration.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Unserved batches, oldest first: the buffer and the position of its next COT.
    chunks: VecDeque<(Vec<Block>, usize)>,
    /// A served-out buffer to refill next (at most one is kept, to bound memory).
    spare: Option<Vec<Block>>,
    produced: u64,
}

impl Pool {
    /// A pool whose first batch is produced into a pre-faulted buffer of `n` blocks
    /// ([`crate::block::huge_vec_faulted`]), so that the first batch after setup costs what
    /// every later one does.
    pub(crate) fn with_buffer(n: usize) -> Pool {
        Pool {
            spare: Some(crate::block::huge_vec_faulted(n)),
            ..Pool::default()
        }
    }

    /// Copies the next `out.len()` COTs into `out`, calling `refill(buf, missing)` whenever the
    /// pool is empty; `refill` overwrites `buf` (a recycled buffer or an empty one) with a
    /// batch of any size and returns the position of its first usable COT. Returns the stream
    /// index of `out[0]`.
    pub(crate) fn serve(
        &mut self,
        out: &mut [Block],
        mut refill: impl FnMut(&mut Vec<Block>, usize) -> Result<usize>,
    ) -> Result<u64> {
        let start = self.produced;
        let mut done = 0;
        while done < out.len() {
            if self.chunks.is_empty() {
                self.push_batch(out.len() - done, &mut refill)?;
            }
            done += self.copy_front(&mut out[done..]);
        }
        self.produced += out.len() as u64;
        Ok(start)
    }

    /// [`Pool::serve`] for a source whose batches all hold `batch` COTs and can be produced
    /// into any slice (`produce(dst)` overwrites `dst`, of length `batch`): once the buffered
    /// COTs are served, every whole batch that still fits in `out` is produced straight into
    /// it, with no copy; only a remainder shorter than a batch goes through a pool buffer. The
    /// stream is the same either way.
    pub(crate) fn serve_batches(
        &mut self,
        out: &mut [Block],
        batch: usize,
        mut produce: impl FnMut(&mut [Block]) -> Result<()>,
    ) -> Result<u64> {
        assert!(batch > 0, "batches hold at least one COT");
        let start = self.produced;
        let mut done = 0;
        while done < out.len() {
            if self.chunks.is_empty() && out.len() - done >= batch {
                produce(&mut out[done..done + batch])?;
                done += batch;
                continue;
            }
            if self.chunks.is_empty() {
                self.push_batch(batch, &mut Self::whole_batch(batch, &mut produce))?;
            }
            done += self.copy_front(&mut out[done..]);
        }
        self.produced += out.len() as u64;
        Ok(start)
    }

    /// [`Pool::reserve`] for the sources of [`Pool::serve_batches`].
    pub(crate) fn reserve_batches(
        &mut self,
        n: usize,
        batch: usize,
        mut produce: impl FnMut(&mut [Block]) -> Result<()>,
    ) -> Result<()> {
        self.reserve(n, Self::whole_batch(batch, &mut produce))
    }

    /// The [`Pool::serve`] refill of a fixed-size batch source: `buf` becomes one batch (its
    /// recycled memory when it has the size already).
    fn whole_batch(
        batch: usize,
        produce: &mut impl FnMut(&mut [Block]) -> Result<()>,
    ) -> impl FnMut(&mut Vec<Block>, usize) -> Result<usize> + '_ {
        move |buf, _| {
            if buf.len() != batch {
                *buf = huge_vec(batch);
            }
            produce(buf)?;
            Ok(0)
        }
    }

    /// Copies COTs from the front batch into `out` (as many as both have), recycles the batch
    /// once served out, and returns how many were copied (0 if the pool is empty).
    fn copy_front(&mut self, out: &mut [Block]) -> usize {
        let Some((buf, pos)) = self.chunks.front_mut() else {
            return 0;
        };
        let take = (buf.len() - *pos).min(out.len());
        out[..take].copy_from_slice(&buf[*pos..*pos + take]);
        *pos += take;
        if *pos == buf.len() {
            let (buf, _) = self.chunks.pop_front().expect("front chunk exists");
            self.spare = Some(buf);
        }
        take
    }

    /// COTs served so far (the stream index of the next one).
    pub(crate) fn served(&self) -> u64 {
        self.produced
    }

    /// COTs buffered and not yet served.
    pub(crate) fn available(&self) -> usize {
        self.chunks.iter().map(|(buf, pos)| buf.len() - pos).sum()
    }

    /// Refills (with the same `refill` contract as [`Pool::serve`]) until at least `n` COTs
    /// are buffered; new batches queue behind the unserved ones, so the stream order is
    /// unchanged.
    pub(crate) fn reserve(
        &mut self,
        n: usize,
        mut refill: impl FnMut(&mut Vec<Block>, usize) -> Result<usize>,
    ) -> Result<()> {
        while self.available() < n {
            self.push_batch(n - self.available(), &mut refill)?;
        }
        Ok(())
    }

    /// Moves the next `n` buffered COTs (all of them if fewer are buffered: reserve first)
    /// out of the pool in stream order, whole batches and the last one split, without serving
    /// them: the pool continues with the COTs after them, and [`Pool::restore`] puts them
    /// back in front.
    pub(crate) fn set_aside(&mut self, n: usize) -> SetAside {
        let mut batches = Vec::new();
        let mut left = n.min(self.available());
        while let Some((buf, pos)) = self.chunks.front_mut().filter(|_| left > 0) {
            if buf.len() - *pos <= left {
                left -= buf.len() - *pos;
                batches.extend(self.chunks.pop_front());
            } else {
                batches.push((buf[*pos..*pos + left].to_vec(), 0));
                *pos += left;
                left = 0;
            }
        }
        SetAside { batches }
    }

    /// Puts COTs set aside by [`Pool::set_aside`] in front of the buffered ones: they are
    /// served next, under the next stream indices (unique either way: the index counts what
    /// was served, not where a COT was produced).
    pub(crate) fn restore(&mut self, set_aside: SetAside) {
        for batch in set_aside.batches.into_iter().rev() {
            self.chunks.push_front(batch);
        }
    }

    /// Appends one batch, produced into the spare buffer when there is one.
    fn push_batch(
        &mut self,
        missing: usize,
        refill: &mut impl FnMut(&mut Vec<Block>, usize) -> Result<usize>,
    ) -> Result<()> {
        let mut buf = self.spare.take().unwrap_or_default();
        let pos = refill(&mut buf, missing)?;
        if pos < buf.len() {
            self.chunks.push_back((buf, pos));
        } else {
            self.spare = Some(buf);
        }
        Ok(())
    }
}

/// COTs of one source moved out of its pool by [`Pool::set_aside`], in stream order, to be
/// served later (after others) once restored. Held by their owner's party only; never sent.
#[derive(Debug)]
pub(crate) struct SetAside {
    /// The batches and the position of each one's first COT, as in the pool.
    batches: Vec<(Vec<Block>, usize)>,
}

impl SetAside {
    /// The number of COTs held.
    pub(crate) fn len(&self) -> usize {
        self.batches.iter().map(|(buf, pos)| buf.len() - pos).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch source numbering its COTs 0, 1, 2, ... in production order; it records
    /// whether each batch was written in place into the caller's buffer.
    struct Counter {
        next: u128,
        in_place: Vec<bool>,
    }

    impl Counter {
        fn produce(&mut self, dst: &mut [Block], caller: std::ops::Range<*const Block>) {
            self.in_place.push(caller.contains(&dst.as_ptr()));
            for b in dst {
                *b = Block(self.next);
                self.next += 1;
            }
        }
    }

    /// Whatever the request sizes, with reservations and set-asides in between, the pool
    /// serves the source's stream in order; whole batches go straight into large requests.
    #[test]
    fn batches_are_served_in_order_and_in_place_when_whole() {
        const BATCH: usize = 1000;
        let mut pool = Pool::default();
        let mut src = Counter {
            next: 0,
            in_place: Vec::new(),
        };
        // The index the next served COT must carry.
        let mut want = 0u128;
        let check = |got: &[Block], want: &mut u128| {
            for b in got {
                assert_eq!(b.0, *want);
                *want += 1;
            }
        };
        for (len, in_place) in [
            (2500, [true, true, false].as_slice()),
            (300, &[]),
            (1400, &[true, false]),
            (3000, &[true, true, false]),
        ] {
            let mut out = vec![Block(u128::MAX); len];
            let range = out.as_ptr_range();
            src.in_place.clear();
            let start = pool
                .serve_batches(&mut out, BATCH, |dst| {
                    src.produce(dst, range.clone());
                    Ok(())
                })
                .unwrap();
            assert_eq!(start as u128, want, "stream index of the first COT");
            check(&out, &mut want);
            assert_eq!(src.in_place, in_place, "request of {len}");
        }
        // A reservation goes through the pool; a set-aside skips its COTs until restored.
        let buffered = pool.available();
        pool.reserve_batches(buffered + 1500, BATCH, |dst| {
            src.produce(dst, std::ptr::null()..std::ptr::null());
            Ok(())
        })
        .unwrap();
        assert!(pool.available() >= buffered + 1500);
        let aside = pool.set_aside(700);
        assert_eq!(aside.len(), 700);
        let skipped = want;
        want += 700;

        let mut out = vec![Block::ZERO; 900];
        pool.serve_batches(&mut out, BATCH, |_| panic!("buffered COTs suffice"))
            .unwrap();
        check(&out, &mut want);
        pool.restore(aside);
        let mut out = vec![Block::ZERO; 700];
        pool.serve_batches(&mut out, BATCH, |_| panic!("restored COTs come first"))
            .unwrap();
        assert!(out.iter().zip(skipped..).all(|(b, i)| b.0 == i));
    }
}
