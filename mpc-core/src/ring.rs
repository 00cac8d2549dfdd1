//! The ring Z_{2^ℓ} (1 ≤ ℓ ≤ 64) on `u64` with masking, and additive secret sharing over it.
//!
//! Elements are kept reduced (`x < 2^ℓ`); a signed view maps `[2^{ℓ-1}, 2^ℓ)` to negatives.
use crate::error::{Dims, Error, Result};
use rand::RngCore;

/// Z_{2^ℓ}. Rings order by their width.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Ring {
    bits: u32,
}

impl Ring {
    /// Z_{2^64}, the ring of linear layers.
    pub const R64: Ring = Ring { bits: 64 };
    /// Z_{2^32}.
    pub const R32: Ring = Ring { bits: 32 };

    /// Z_{2^bits}; `bits` must be in 1..=64.
    pub fn new(bits: u32) -> Result<Ring> {
        if (1..=64).contains(&bits) {
            Ok(Ring { bits })
        } else {
            Err(Error::out_of_range(
                "ring bit width",
                bits as usize,
                Dims::within(1, 64),
            ))
        }
    }

    /// Z_{2^bits} for a width known at compile time: in a `const` item an invalid width fails
    /// to compile (`const R: Ring = Ring::new_const(34);`). Evaluated at run time it panics on
    /// an invalid width; widths that come from data go through [`Ring::new`].
    pub const fn new_const(bits: u32) -> Ring {
        assert!(bits >= 1 && bits <= 64, "ring bit width not in 1..=64");
        Ring { bits }
    }

    /// Z_{2^{ℓ+extra}}, or Z_{2^64} when that is wider.
    pub const fn widened(self, extra: u32) -> Ring {
        let bits = self.bits.saturating_add(extra);
        Ring {
            bits: if bits > 64 { 64 } else { bits },
        }
    }

    /// ℓ.
    #[inline]
    pub const fn bits(self) -> u32 {
        self.bits
    }

    /// 2^ℓ − 1.
    #[inline]
    pub fn mask(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// x mod 2^ℓ.
    #[inline]
    pub fn reduce(self, x: u64) -> u64 {
        x & self.mask()
    }

    /// Whether `x` is a reduced element.
    #[inline]
    pub fn contains(self, x: u64) -> bool {
        x & !self.mask() == 0
    }

    /// a + b.
    #[inline]
    pub fn add(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_add(b))
    }

    /// a − b.
    #[inline]
    pub fn sub(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_sub(b))
    }

    /// a · b.
    #[inline]
    pub fn mul(self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_mul(b))
    }

    /// −a.
    #[inline]
    pub fn neg(self, a: u64) -> u64 {
        self.reduce(a.wrapping_neg())
    }

    /// The signed representative in [−2^{ℓ−1}, 2^{ℓ−1}).
    #[inline]
    pub fn to_signed(self, x: u64) -> i64 {
        let shift = 64 - self.bits;
        ((x << shift) as i64) >> shift
    }

    /// Reduces a signed integer into the ring.
    #[inline]
    pub fn from_signed(self, x: i64) -> u64 {
        self.reduce(x as u64)
    }

    /// Most significant bit (the sign of the signed view).
    #[inline]
    pub fn msb(self, x: u64) -> bool {
        (x >> (self.bits - 1)) & 1 == 1
    }

    /// A uniform element.
    #[inline]
    pub fn random(self, rng: &mut (impl RngCore + ?Sized)) -> u64 {
        self.reduce(rng.next_u64())
    }

    /// Splits `x` into two uniform additive shares `(a, b)` with `a + b = x`.
    pub fn share(self, x: u64, rng: &mut (impl RngCore + ?Sized)) -> (u64, u64) {
        let a = self.random(rng);
        (a, self.sub(x, a))
    }

    /// Shares every element of `xs`.
    pub fn share_vec(self, xs: &[u64], rng: &mut (impl RngCore + ?Sized)) -> (Vec<u64>, Vec<u64>) {
        xs.iter().map(|&x| self.share(x, rng)).unzip()
    }

    /// a + b: reconstructs a shared value.
    #[inline]
    pub fn reconstruct(self, a: u64, b: u64) -> u64 {
        self.add(a, b)
    }

    /// Reconstructs element-wise; shapes must agree.
    pub fn reconstruct_vec(self, a: &[u64], b: &[u64]) -> Result<Vec<u64>> {
        if a.len() != b.len() {
            return Err(Error::shape("second share length", b.len(), a.len()));
        }
        Ok(a.iter().zip(b).map(|(&x, &y)| self.add(x, y)).collect())
    }

    /// Checks that every value is a reduced ring element (for data received from the peer).
    pub fn check_all(self, xs: &[u64]) -> Result<()> {
        match xs.iter().position(|&x| !self.contains(x)) {
            None => Ok(()),
            Some(i) => Err(Error::out_of_range(
                format!("element {i}"),
                format!("{:#x}", xs[i]),
                format!("an element of Z_2^{}", self.bits),
            )),
        }
    }
}

/// Serde of a [`Ring`] field as its bare bit count (`"poly_bits": 22`), the width checked on
/// reading (`#[serde(with = "mpc_core::ring::as_bits")]`): formats whose fields were bit
/// counts keep their bytes and files.
pub mod as_bits {
    use super::Ring;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes ℓ.
    pub fn serialize<S: Serializer>(ring: &Ring, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(ring.bits())
    }

    /// Reads ℓ, refusing a width outside 1..=64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ring, D::Error> {
        Ring::new(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn signed_view_and_extremes() {
        for bits in [1, 2, 12, 32, 37, 63, 64] {
            let r = Ring::new(bits).unwrap();
            let max = r.mask() >> 1; // largest positive
            let min = max + 1; // most negative
            assert_eq!(r.to_signed(max), (max as i64));
            assert_eq!(r.to_signed(min), -(max as i64) - 1);
            assert_eq!(r.to_signed(r.mask()), -1);
            assert_eq!(r.from_signed(-1), r.mask());
            assert_eq!(r.to_signed(0), 0);
            assert!(r.msb(min) && !r.msb(max));
            assert_eq!(r.add(max, 1), min);
            assert_eq!(r.neg(min), min);
        }
        assert!(Ring::new(0).is_err() && Ring::new(65).is_err());
        const R34: Ring = Ring::new_const(34);
        assert_eq!(R34, Ring::new(34).unwrap());
        assert_eq!(R34.widened(5).bits(), 39);
        assert_eq!(R34.widened(u32::MAX), Ring::R64);
        assert!(Ring::R32 < R34 && R34.max(Ring::R64) == Ring::R64);
    }

    #[test]
    #[should_panic(expected = "ring bit width")]
    fn new_const_refuses_an_invalid_width() {
        let _ = Ring::new_const(std::hint::black_box(65));
    }

    #[test]
    fn shares_reconstruct_on_edges() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for bits in [1, 16, 37, 64] {
            let r = Ring::new(bits).unwrap();
            for x in [0, 1, r.mask(), r.mask() >> 1, (r.mask() >> 1) + 1] {
                let (a, b) = r.share(x, &mut rng);
                assert!(r.contains(a) && r.contains(b));
                assert_eq!(r.reconstruct(a, b), x);
            }
        }
        assert!(Ring::R32.check_all(&[1, 1 << 32]).is_err());
    }
}
