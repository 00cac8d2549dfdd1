//! Fixed-point numbers in Z_{2^ℓ}: x ↦ round(x · 2^f) in the signed view of the ring.
use crate::error::{Dims, Error, Result};
use crate::ring::Ring;

/// A fixed-point format: ring width ℓ and fraction bits f.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    ring: Ring,
    frac_bits: u32,
}

impl FixedPoint {
    /// Z_{2^64} with 18 fraction bits: linear layers and attention (Nimbus's choice, arXiv 2411.15707).
    pub const LINEAR: FixedPoint = FixedPoint {
        ring: Ring::R64,
        frac_bits: 18,
    };

    /// A format with `frac_bits < ring.bits()`.
    pub fn new(ring: Ring, frac_bits: u32) -> Result<FixedPoint> {
        if frac_bits >= ring.bits() {
            return Err(Error::out_of_range(
                format!("fraction bits on Z_2^{}", ring.bits()),
                frac_bits as usize,
                Dims::Below(ring.bits() as usize),
            ));
        }
        Ok(FixedPoint { ring, frac_bits })
    }

    /// A format known at compile time (`frac_bits < ring.bits()`): in a `const` item an
    /// invalid one fails to compile. Evaluated at run time it panics on an invalid format;
    /// formats that come from data go through [`FixedPoint::new`].
    pub const fn new_const(ring: Ring, frac_bits: u32) -> FixedPoint {
        assert!(frac_bits < ring.bits(), "fraction bits do not fit the ring");
        FixedPoint { ring, frac_bits }
    }

    /// The ring.
    pub const fn ring(self) -> Ring {
        self.ring
    }

    /// Fraction bits f.
    pub const fn frac_bits(self) -> u32 {
        self.frac_bits
    }

    /// 2^f as a float.
    pub fn scale(self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// Largest representable value, (2^{ℓ−1} − 1) / 2^f.
    pub fn max_value(self) -> f64 {
        (self.ring.mask() >> 1) as f64 / self.scale()
    }

    /// Most negative representable value, −2^{ℓ−1} / 2^f.
    pub fn min_value(self) -> f64 {
        -(((self.ring.mask() >> 1) + 1) as f64) / self.scale()
    }

    /// round(x · 2^f); an error for NaN, infinities and values outside the range.
    pub fn encode(self, x: f64) -> Result<u64> {
        let scaled = (x * self.scale()).round();
        let half = ((self.ring.mask() >> 1) + 1) as f64; // 2^{ℓ-1}
        if !scaled.is_finite() || scaled >= half || scaled < -half {
            return Err(Error::out_of_range(
                "fixed-point value",
                x.to_string(),
                format!(
                    "[{}, {}] (ℓ = {}, f = {})",
                    self.min_value(),
                    self.max_value(),
                    self.ring.bits(),
                    self.frac_bits
                ),
            ));
        }
        Ok(self.ring.from_signed(scaled as i64))
    }

    /// Encodes a slice.
    pub fn encode_vec(self, xs: &[f64]) -> Result<Vec<u64>> {
        xs.iter().map(|&x| self.encode(x)).collect()
    }

    /// The real number a ring element stands for.
    pub fn decode(self, x: u64) -> f64 {
        self.ring.to_signed(x) as f64 / self.scale()
    }

    /// Decodes a slice.
    pub fn decode_vec(self, xs: &[u64]) -> Vec<f64> {
        xs.iter().map(|&x| self.decode(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_range() {
        let fp = FixedPoint::LINEAR;
        for x in [0.0, -1.0, 1.5, -3.25, 1e6, -1e6] {
            assert_eq!(fp.decode(fp.encode(x).unwrap()), x);
        }
        assert_eq!(fp.encode(-1.0).unwrap(), (-(1i64 << 18)) as u64);
        let fp12 = FixedPoint::new(Ring::R32, 12).unwrap();
        let max = fp12.max_value();
        assert_eq!(fp12.encode(max).unwrap(), (1u64 << 31) - 1);
        assert_eq!(fp12.encode(fp12.min_value()).unwrap(), 1u64 << 31);
        assert!(fp12.encode(max + 1.0).is_err());
        assert!(fp12.encode(f64::NAN).is_err());
        assert!(FixedPoint::new(Ring::R32, 32).is_err());
        const FP12: FixedPoint = FixedPoint::new_const(Ring::R32, 12);
        assert_eq!(FP12, fp12);
    }
}
