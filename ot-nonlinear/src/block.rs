//! Bit packing helpers and large block buffers for the OT protocols (the [`Block`] type itself
//! lives in `mpc_core`, next to the AES kernels and the PRG that use it).
use mpc_core::Block;

/// A zeroed vector of `n` blocks whose pages the kernel is asked to back with 2 MB huge pages
/// (Linux `madvise(MADV_HUGEPAGE)`, a hint; elsewhere a plain vector). Ferret's LPN reads its
/// 8 MB input at random: with 4 KB pages most reads would also miss the TLB.
///
/// The memory comes from `calloc` (a zeroed `u128` vector is allocated zeroed, not written):
/// a large request is a fresh mapping the kernel zeroes on first touch, so the huge-page hint
/// still applies and the 160 MB Ferret buffer is not written twice (memset, then the trees).
pub fn huge_vec(n: usize) -> Vec<Block> {
    let v: Vec<Block> = bytemuck::allocation::cast_vec(vec![0u128; n]);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + n * 16) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the vector's own allocation, whose pages in that
            // range are not touched yet; madvise only changes how they will be backed (the
            // contents stay zero). Failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    v
}

/// [`huge_vec`] with every page already faulted in (one zero written per 4 KB): the kernel's
/// page allocation and zeroing happen now, at setup, rather than inside the first hot loop
/// that writes the buffer. On this VM first-touching 160 MB takes a few hundred ms.
pub fn huge_vec_faulted(n: usize) -> Vec<Block> {
    let mut v = huge_vec(n);
    for b in v.iter_mut().step_by(4096 / 16) {
        *b = Block::ZERO;
    }
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
    let mut buf = BitBuf::zeros(bits.len());
    for (i, &b) in bits.iter().enumerate() {
        buf.put(i, b as u64, 1);
    }
    buf.to_bytes()
}

/// Unpacks `n` bits from LSB-first bytes (the inverse of [`pack_bits`]).
pub fn unpack_bits(bytes: &[u8], n: usize) -> Vec<bool> {
    let buf = BitBuf::from_bytes(bytes, n);
    (0..n).map(|i| buf.bit(i)).collect()
}

/// Packs `ℓ`-bit values (`1 ≤ ℓ ≤ 64`, each `< 2^ℓ`) into `⌈len·ℓ/8⌉` bytes, LSB-first.
pub fn pack_values(values: &[u64], bits: u32) -> Vec<u8> {
    let mut buf = BitBuf::zeros(values.len() * bits as usize);
    for (i, &v) in values.iter().enumerate() {
        buf.put(i * bits as usize, v, bits);
    }
    buf.to_bytes()
}

/// Unpacks `n` values of `ℓ` bits (the inverse of [`pack_values`]).
pub fn unpack_values(bytes: &[u8], n: usize, bits: u32) -> Vec<u64> {
    let buf = BitBuf::from_bytes(bytes, n * bits as usize);
    (0..n).map(|i| buf.get(i * bits as usize, bits)).collect()
}

/// Bytes of `n` packed `ℓ`-bit values.
pub fn packed_len(n: usize, bits: u32) -> usize {
    (n * bits as usize).div_ceil(8)
}

/// A string of `len` bits in 64-bit words (bit `i` is bit `i % 64` of word `i / 64`), the
/// packing of every OT message: on the wire it is its first `⌈len/8⌉` little-endian bytes, the
/// same layout as [`pack_values`]. Values of any width 0..=64 are read and written at any bit
/// position with two word operations, and [`BitBuf::par_fill`] writes units of a fixed bit
/// length in parallel (64 units always end on a word boundary, so chunks never share a word).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitBuf {
    words: Vec<u64>,
    len: usize,
}

/// The low `width` bits set (all 64 for width ≥ 64).
#[inline(always)]
pub(crate) fn low_mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// ORs the low `width` bits of `value` into `words` at bit `pos` (the target bits must be 0).
#[inline(always)]
fn or_bits(words: &mut [u64], pos: usize, value: u64, width: u32) {
    if width == 0 {
        return;
    }
    let value = value & low_mask(width);
    let (w, off) = (pos / 64, (pos % 64) as u32);
    words[w] |= value << off;
    if off + width > 64 {
        words[w + 1] |= value >> (64 - off);
    }
}

impl BitBuf {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> BitBuf {
        BitBuf {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Length in bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the low `width` bits of `value` at bit `pos` (those bits must still be zero).
    #[inline(always)]
    pub fn put(&mut self, pos: usize, value: u64, width: u32) {
        debug_assert!(pos + width as usize <= self.len);
        or_bits(&mut self.words, pos, value, width);
    }

    /// The `width` bits at bit `pos` (0 ≤ width ≤ 64).
    #[inline(always)]
    pub fn get(&self, pos: usize, width: u32) -> u64 {
        if width == 0 {
            return 0;
        }
        debug_assert!(pos + width as usize <= self.len);
        let (w, off) = (pos / 64, (pos % 64) as u32);
        let mut v = self.words[w] >> off;
        if off + width > 64 {
            v |= self.words[w + 1] << (64 - off);
        }
        v & low_mask(width)
    }

    /// Bit `pos`.
    #[inline(always)]
    pub fn bit(&self, pos: usize) -> bool {
        (self.words[pos / 64] >> (pos % 64)) & 1 == 1
    }

    /// Fills a zeroed string of `units · unit_bits` bits in parallel, together with `out`
    /// (`out_per_unit` values per unit): the units are cut into chunks of a multiple of 64 units
    /// (so a chunk never shares a word with another) and `f(first, count, w, out)` writes the
    /// bits of units `first..first + count` through `w`, in order, and their `out` values.
    pub fn par_fill<T: Send>(
        &mut self,
        unit_bits: usize,
        out: &mut [T],
        out_per_unit: usize,
        f: impl Fn(usize, usize, &mut BitWriter<'_>, &mut [T]) + Sync + Send,
    ) {
        use rayon::prelude::*;
        let units = self
            .len
            .checked_div(unit_bits)
            .unwrap_or(out.len() / out_per_unit.max(1));
        debug_assert_eq!(units * unit_bits, self.len);
        let chunk_units = 64 * 8192usize.div_ceil(64 * unit_bits.max(1)).max(1);
        let chunk_words = chunk_units * unit_bits / 64;
        let run = |c: usize, words: &mut [u64], out: &mut [T]| {
            let first = c * chunk_units;
            let count = chunk_units.min(units - first);
            f(first, count, &mut BitWriter { words, pos: 0 }, out);
        };
        let out_chunk = (chunk_units * out_per_unit).max(1);
        if chunk_words == 0 {
            out.par_chunks_mut(out_chunk)
                .enumerate()
                .for_each(|(c, o)| run(c, &mut [], o));
        } else if out_per_unit == 0 {
            self.words
                .par_chunks_mut(chunk_words)
                .enumerate()
                .for_each(|(c, w)| run(c, w, &mut []));
        } else {
            self.words
                .par_chunks_mut(chunk_words)
                .zip(out.par_chunks_mut(out_chunk))
                .enumerate()
                .for_each(|(c, (w, o))| run(c, w, o));
        }
    }

    /// The first `⌈len/8⌉` little-endian bytes (the wire form).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(self.len.div_ceil(8));
        out
    }

    /// The string of `len` bits whose wire form is `bytes` (`⌈len/8⌉` bytes expected; bits past
    /// `len` are ignored, missing bytes read as zero).
    pub fn from_bytes(bytes: &[u8], len: usize) -> BitBuf {
        let mut words = vec![0u64; len.div_ceil(64)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        if !len.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last &= low_mask((len % 64) as u32);
            }
        }
        BitBuf { words, len }
    }
}

/// A sequential writer into a part of a [`BitBuf`] (see [`BitBuf::par_fill`]).
#[derive(Debug)]
pub struct BitWriter<'a> {
    words: &'a mut [u64],
    pos: usize,
}

impl BitWriter<'_> {
    /// Appends the low `width` bits of `value`.
    #[inline(always)]
    pub fn push(&mut self, value: u64, width: u32) {
        or_bits(self.words, self.pos, value, width);
        self.pos += width as usize;
    }
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
        // Parallel fill of odd-sized units equals sequential puts, across chunk boundaries.
        let (unit, units) = (37usize, 70_001usize);
        let mut par = BitBuf::zeros(unit * units);
        let mut out = vec![0usize; units];
        par.par_fill(unit, &mut out, 1, |first, count, w, out| {
            for u in first..first + count {
                w.push(u as u64, 30);
                w.push(u as u64 ^ 0x5a, 7);
                out[u - first] = u;
            }
        });
        assert!(out.iter().enumerate().all(|(i, &u)| i == u));
        let mut seq = BitBuf::zeros(unit * units);
        for u in 0..units {
            seq.put(u * unit, u as u64, 30);
            seq.put(u * unit + 30, u as u64 ^ 0x5a, 7);
        }
        assert_eq!(par, seq);
        assert_eq!(seq.get(unit * 69_999 + 30, 7), (69_999 ^ 0x5a) & 0x7f);
        let back = BitBuf::from_bytes(&seq.to_bytes(), seq.len());
        assert_eq!(back, seq);
        let faulted = huge_vec_faulted(70_001);
        assert_eq!(faulted.len(), 70_001);
        assert!(faulted.iter().all(|&b| b == Block::ZERO));
    }
}
