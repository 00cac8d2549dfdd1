//! Dequantization of the ggml storage types a LLaMA GGUF file uses, to f32.
//!
//! Block layouts (ggml's `block_q*` structs, little-endian, no padding):
//! * `Q4_0`: 32 weights in 18 bytes: f16 scale `d`, 16 bytes of 4-bit `q`;
//!   `w = d·(q − 8)`.
//! * `Q4_1`: 32 weights in 20 bytes: f16 `d`, f16 `m`, 16 bytes of 4-bit `q`; `w = d·q + m`.
//! * `Q8_0`: 32 weights in 34 bytes: f16 `d`, 32 `i8` `q`; `w = d·q`.
//!
//! In the 4-bit types byte `j` holds weight `j` in its low nibble and weight `j + 16` in its high
//! nibble.

use half::f16;

/// Weights per quantization block.
pub const QK: usize = 32;

/// The ggml tensor types this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float (id 0).
    F32,
    /// 16-bit float (id 1).
    F16,
    /// 4-bit, symmetric (id 2).
    Q4_0,
    /// 4-bit with a minimum (id 3).
    Q4_1,
    /// 8-bit, symmetric (id 8).
    Q8_0,
}

impl GgmlType {
    /// The type of a ggml id, or `None` for types this crate does not read.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            _ => return None,
        })
    }

    /// The ggml id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
        }
    }

    /// Weights per block.
    pub fn block_elements(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => QK,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
            GgmlType::Q4_0 => 2 + QK / 2,
            GgmlType::Q4_1 => 4 + QK / 2,
            GgmlType::Q8_0 => 2 + QK,
        }
    }

    /// Bytes taken by `n_elements` weights, or `None` if `n_elements` is not a whole number of
    /// blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_elements() as u64;
        if n_elements % block != 0 {
            return None;
        }
        (n_elements / block).checked_mul(self.block_bytes() as u64)
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Dequantizes `bytes` (whole blocks of type `ty`) into `out`.
///
/// # Panics
/// If `bytes` is not exactly `out.len()` weights of type `ty` (callers size both from the
/// tensor's checked shape).
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        Some(bytes.len() as u64),
        ty.bytes_for(out.len() as u64),
        "dequantize: {} bytes do not hold {} {ty:?} weights",
        bytes.len(),
        out.len()
    );
    let block_bytes = ty.block_bytes();
    let blocks = bytes.chunks_exact(block_bytes);
    match ty {
        GgmlType::F32 => {
            for (w, b) in out.iter_mut().zip(blocks) {
                *w = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (w, b) in out.iter_mut().zip(blocks) {
                *w = f16_at(b, 0);
            }
        }
        GgmlType::Q4_0 => {
            for (w, b) in out.chunks_exact_mut(QK).zip(blocks) {
                let d = f16_at(b, 0);
                let (low, high) = w.split_at_mut(QK / 2);
                for (j, &q) in b[2..].iter().enumerate() {
                    low[j] = d * (f32::from(q & 0x0f) - 8.0);
                    high[j] = d * (f32::from(q >> 4) - 8.0);
                }
            }
        }
        GgmlType::Q4_1 => {
            for (w, b) in out.chunks_exact_mut(QK).zip(blocks) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let (low, high) = w.split_at_mut(QK / 2);
                for (j, &q) in b[4..].iter().enumerate() {
                    low[j] = d * f32::from(q & 0x0f) + m;
                    high[j] = d * f32::from(q >> 4) + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (w, b) in out.chunks_exact_mut(QK).zip(blocks) {
                let d = f16_at(b, 0);
                for (wj, &q) in w.iter_mut().zip(&b[2..]) {
                    *wj = d * f32::from(q as i8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    fn run(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n];
        dequantize(ty, bytes, &mut out);
        out
    }

    #[test]
    fn f32_and_f16_are_read_little_endian() {
        let vals = [1.5f32, -2.25, 0.0, 65504.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(run(GgmlType::F32, &bytes, 4), vals);
        let bytes: Vec<u8> = vals.iter().flat_map(|&v| f16_bytes(v)).collect();
        assert_eq!(run(GgmlType::F16, &bytes, 4), vals);
    }

    #[test]
    fn q8_0_is_scale_times_signed_byte() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let want: Vec<f32> = (0..32).map(|j| 0.5 * (j as f32 - 16.0)).collect();
        assert_eq!(run(GgmlType::Q8_0, &block, 32), want);
    }

    #[test]
    fn q4_0_puts_low_nibbles_first_and_centres_at_8() {
        let mut block = f16_bytes(0.25).to_vec();
        // Byte j: low nibble j (weight j), high nibble 15 − j (weight j + 16).
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut want = vec![0f32; 32];
        for j in 0..16 {
            want[j] = 0.25 * (j as f32 - 8.0);
            want[j + 16] = 0.25 * ((15 - j) as f32 - 8.0);
        }
        assert_eq!(run(GgmlType::Q4_0, &block, 32), want);
    }

    #[test]
    fn q4_1_adds_the_minimum() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend_from_slice(&f16_bytes(-1.0));
        block.extend((0..16u8).map(|j| j | (3 << 4)));
        let mut want = vec![0f32; 32];
        for j in 0..16 {
            want[j] = 0.5 * j as f32 - 1.0;
            want[j + 16] = 0.5 * 3.0 - 1.0;
        }
        assert_eq!(run(GgmlType::Q4_1, &block, 32), want);
        // Two blocks: the second with its own scale.
        let mut two = block.clone();
        let mut second = f16_bytes(1.0).to_vec();
        second.extend_from_slice(&f16_bytes(0.0));
        second.extend([0x21u8; 16]);
        two.extend_from_slice(&second);
        let out = run(GgmlType::Q4_1, &two, 64);
        assert_eq!(&out[..32], &want[..]);
        assert_eq!(&out[32..48], &[1.0; 16]);
        assert_eq!(&out[48..], &[2.0; 16]);
    }

    #[test]
    fn sizes_need_whole_blocks_and_ids_round_trip() {
        assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(GgmlType::Q8_0.bytes_for(33), None);
        assert_eq!(GgmlType::F16.bytes_for(3), Some(6));
        assert_eq!(GgmlType::Q4_0.bytes_for(u64::MAX / 2 + 31), None);
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q8_0,
        ] {
            assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
        }
        assert_eq!(GgmlType::from_id(10), None);
    }
}
