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
use crate::block::Block;
use mpc_core::{Channel, Result};

/// Sender side of a random-COT source (holds Δ).
pub trait RandomCotSender {
    /// The global correlation Δ (low bit set).
    fn delta(&self) -> Block;

    /// Overwrites `out` with the next `q_i` (low bit 0); returns the stream index of `out[0]`.
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64>;

    /// The next `n` outputs and the stream index of the first.
    fn next_n(&mut self, ch: &mut Channel, n: usize) -> Result<(u64, Vec<Block>)> {
        let mut v = vec![Block::ZERO; n];
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
        let mut v = vec![Block::ZERO; n];
        let start = self.fill(ch, &mut v)?;
        Ok((start, v))
    }

    /// The mirror of [`RandomCotSender::reserve`].
    fn reserve(&mut self, _ch: &mut Channel, _n: usize) -> Result<()> {
        Ok(())
    }
}

/// A buffer of produced COTs that serves requests of any size and refills by batches.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    buf: Vec<Block>,
    pos: usize,
    produced: u64,
}

impl Pool {
    /// Copies the next `out.len()` COTs into `out`, calling `refill(buf, missing)` whenever the
    /// buffer is empty; `refill` overwrites `buf` with a batch (of any size) and returns the
    /// position of its first usable COT. Returns the stream index of `out[0]`.
    pub(crate) fn serve(
        &mut self,
        out: &mut [Block],
        mut refill: impl FnMut(&mut Vec<Block>, usize) -> Result<usize>,
    ) -> Result<u64> {
        let start = self.produced;
        let mut done = 0;
        while done < out.len() {
            if self.pos >= self.buf.len() {
                self.pos = refill(&mut self.buf, out.len() - done)?;
                continue;
            }
            let take = (self.buf.len() - self.pos).min(out.len() - done);
            out[done..done + take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            done += take;
        }
        self.produced += out.len() as u64;
        Ok(start)
    }

    /// COTs buffered and not yet served.
    pub(crate) fn available(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Refills (with the same `refill` contract as [`Pool::serve`]) until at least `n` COTs
    /// are buffered; the batches are appended behind the unserved ones, so the stream order
    /// is unchanged.
    pub(crate) fn reserve(
        &mut self,
        n: usize,
        mut refill: impl FnMut(&mut Vec<Block>, usize) -> Result<usize>,
    ) -> Result<()> {
        while self.available() < n {
            if self.available() == 0 {
                self.pos = refill(&mut self.buf, n)?;
                continue;
            }
            let mut batch = Vec::new();
            let first = refill(&mut batch, n - self.available())?;
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.extend_from_slice(&batch[first..]);
        }
        Ok(())
    }
}
