//! Tight bit packing of fixed-width values (responses carry 65- and 75-bit coefficients).
use mpc_core::{Dims, Error, Result};

/// Appends fixed-width values to a byte vector, least significant bit first.
#[derive(Debug)]
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    #[inline]
    fn push64(&mut self, v: u64, width: u32) {
        debug_assert!(width <= 64 && (width == 64 || v >> width == 0));
        self.acc |= (v as u128) << self.nbits;
        self.nbits += width;
        if self.nbits >= 64 {
            self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.nbits -= 64;
        }
    }

    /// Writes the low `width` (≤ 128) bits of `v`.
    #[inline]
    pub fn push(&mut self, v: u128, width: u32) {
        if width > 64 {
            self.push64(v as u64, 64);
            self.push64((v >> 64) as u64, width - 64);
        } else {
            self.push64(v as u64, width);
        }
    }

    /// Writes the last partial bytes.
    pub fn finish(self) {
        let bytes = self.nbits.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..bytes]);
    }
}

/// Reads fixed-width values written by [`BitWriter`].
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    nbits: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            nbits: 0,
        }
    }

    #[inline]
    fn pull64(&mut self, width: u32) -> Result<u64> {
        while self.nbits < width {
            if self.pos >= self.data.len() {
                return Err(Error::malformed(
                    "bit-packed data",
                    Dims::Bytes(self.data.len()),
                    "more bytes",
                ));
            }
            let take = (self.data.len() - self.pos).min(8);
            let mut b = [0u8; 8];
            b[..take].copy_from_slice(&self.data[self.pos..self.pos + take]);
            self.pos += take;
            self.acc |= (u64::from_le_bytes(b) as u128) << self.nbits;
            self.nbits += 8 * take as u32;
        }
        let v = if width == 64 {
            self.acc as u64
        } else {
            (self.acc as u64) & ((1u64 << width) - 1)
        };
        self.acc >>= width;
        self.nbits -= width;
        Ok(v)
    }

    /// Reads a `width`-bit value.
    #[inline]
    pub fn pull(&mut self, width: u32) -> Result<u128> {
        if width > 64 {
            let lo = self.pull64(64)? as u128;
            Ok(lo | ((self.pull64(width - 64)? as u128) << 64))
        } else {
            Ok(self.pull64(width)? as u128)
        }
    }
}

/// Bytes needed for `count` values of `width` bits.
pub fn packed_len(count: usize, width: u32) -> usize {
    (count * width as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_widths() {
        let vals: Vec<(u128, u32)> = (0..1000u32)
            .map(|i| {
                let w = [1, 7, 63, 64, 65, 75, 96, 128][i as usize % 8];
                let v = (i as u128).wrapping_mul(0x9E3779B97F4A7C15F39CC0605CEDC834);
                (if w == 128 { v } else { v & ((1u128 << w) - 1) }, w)
            })
            .collect();
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        for &(v, width) in &vals {
            w.push(v, width);
        }
        w.finish();
        let total: usize = vals.iter().map(|&(_, w)| w as usize).sum();
        assert_eq!(out.len(), total.div_ceil(8));
        let mut r = BitReader::new(&out);
        for &(v, width) in &vals {
            assert_eq!(r.pull(width).unwrap(), v);
        }
        assert!(BitReader::new(&out[..3]).pull(75).is_err());
    }
}
