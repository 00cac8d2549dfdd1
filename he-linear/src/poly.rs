//! Polynomials in R_q = `Z_q[X]/(X^N + 1)` held as RNS residues, limb-major (`data[l·N + i]`),
//! tagged with their representation so a coefficient-domain polynomial is never multiplied
//! point-wise by mistake.
use crate::rns::RnsContext;
use crate::simd::{self, KernelPath};
use mpc_core::{Dims, Error, Result};

/// Coefficient or NTT (evaluation) representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    /// Coefficients of X^i.
    Coeff,
    /// Values at the negacyclic NTT points.
    Ntt,
}

/// A polynomial over the RNS basis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnsPoly {
    data: Vec<u32>,
    repr: Repr,
    n: usize,
}

impl RnsPoly {
    /// The zero polynomial.
    pub fn zero(ctx: &RnsContext, repr: Repr) -> RnsPoly {
        RnsPoly {
            data: vec![0; ctx.n() * ctx.len()],
            repr,
            n: ctx.n(),
        }
    }

    /// Wraps residues (validated: right length, every residue below its prime).
    pub fn from_residues(ctx: &RnsContext, data: Vec<u32>, repr: Repr) -> Result<RnsPoly> {
        if data.len() != ctx.n() * ctx.len() {
            return Err(Error::malformed(
                "polynomial residues",
                data.len(),
                ctx.n() * ctx.len(),
            ));
        }
        for (l, m) in ctx.moduli().iter().enumerate() {
            let limb = &data[l * ctx.n()..(l + 1) * ctx.n()];
            if let Some(i) = limb.iter().position(|&c| c >= m.p) {
                return Err(Error::malformed(
                    format!("residue {i} of limb {l}"),
                    limb[i] as usize,
                    Dims::Below(m.p as usize),
                ));
            }
        }
        Ok(RnsPoly {
            data,
            repr,
            n: ctx.n(),
        })
    }

    /// Wraps residues the caller computed itself (already reduced, right length).
    pub(crate) fn from_residues_unchecked(data: Vec<u32>, repr: Repr, n: usize) -> RnsPoly {
        debug_assert_eq!(data.len() % n, 0);
        RnsPoly { data, repr, n }
    }

    /// A polynomial with small signed integer coefficients, in coefficient form.
    pub fn from_signed(ctx: &RnsContext, coeffs: &[i64]) -> RnsPoly {
        let n = ctx.n();
        assert!(
            coeffs.len() <= n,
            "{} coefficients for N = {n}",
            coeffs.len()
        );
        let mut p = RnsPoly::zero(ctx, Repr::Coeff);
        let path = KernelPath::detect();
        for (l, m) in ctx.moduli().iter().enumerate() {
            let limb = &mut p.data[l * n..l * n + coeffs.len()];
            simd::reduce_signed_into(m, coeffs, limb, path);
        }
        p
    }

    /// Representation.
    pub fn repr(&self) -> Repr {
        self.repr
    }

    /// All residues, limb-major.
    pub fn data(&self) -> &[u32] {
        &self.data
    }

    /// Mutable residues (representation unchanged).
    pub fn data_mut(&mut self) -> &mut [u32] {
        &mut self.data
    }

    /// Consumes into the residues.
    pub fn into_data(self) -> Vec<u32> {
        self.data
    }

    /// Limb `l`.
    pub fn limb(&self, l: usize) -> &[u32] {
        &self.data[l * self.n..(l + 1) * self.n]
    }

    /// Converts to the NTT representation (no-op if already there).
    pub fn to_ntt(&mut self, ctx: &RnsContext) {
        if self.repr == Repr::Coeff {
            for (l, limb) in self.data.chunks_mut(self.n).enumerate() {
                ctx.ntt(l, limb);
            }
            self.repr = Repr::Ntt;
        }
    }

    /// Converts to the coefficient representation (no-op if already there).
    pub fn to_coeff(&mut self, ctx: &RnsContext) {
        if self.repr == Repr::Ntt {
            for (l, limb) in self.data.chunks_mut(self.n).enumerate() {
                ctx.intt(l, limb);
            }
            self.repr = Repr::Coeff;
        }
    }

    /// Applies `f(modulus, self_i, other_i)` to every residue pair of two polynomials (on the
    /// CPU's widest vector path).
    fn zip_assign(
        &mut self,
        ctx: &RnsContext,
        other: &RnsPoly,
        f: impl Fn(&crate::rns::Modulus, u32, u32) -> u32,
    ) {
        let path = KernelPath::detect();
        for (l, m) in ctx.moduli().iter().enumerate() {
            let r = l * self.n..(l + 1) * self.n;
            simd::zip_map(
                &mut self.data[r.clone()],
                &other.data[r],
                |a, b| f(m, a, b),
                path,
            );
        }
    }

    /// self += other (same representation).
    pub fn add_assign(&mut self, ctx: &RnsContext, other: &RnsPoly) {
        assert_eq!(
            self.repr, other.repr,
            "adding polynomials in different domains"
        );
        self.zip_assign(ctx, other, |m, a, b| m.add(a, b));
    }

    /// self −= other (same representation).
    pub fn sub_assign(&mut self, ctx: &RnsContext, other: &RnsPoly) {
        assert_eq!(
            self.repr, other.repr,
            "subtracting polynomials in different domains"
        );
        self.zip_assign(ctx, other, |m, a, b| m.sub(a, b));
    }

    /// self ⊙= other: a ring product, both operands in NTT form.
    pub fn mul_assign(&mut self, ctx: &RnsContext, other: &RnsPoly) {
        assert!(
            self.repr == Repr::Ntt && other.repr == Repr::Ntt,
            "ring product needs both operands in NTT form"
        );
        let path = KernelPath::detect();
        for (l, m) in ctx.moduli().iter().enumerate() {
            let r = l * self.n..(l + 1) * self.n;
            simd::mul_assign_mod(m, &mut self.data[r.clone()], &other.data[r], path);
        }
    }

    /// self += a ⊙ b (all in NTT form).
    pub fn mul_acc(&mut self, ctx: &RnsContext, a: &RnsPoly, b: &RnsPoly) {
        assert!(
            self.repr == Repr::Ntt && a.repr == Repr::Ntt && b.repr == Repr::Ntt,
            "ring product needs NTT form"
        );
        for (l, m) in ctx.moduli().iter().enumerate() {
            let r = l * self.n..(l + 1) * self.n;
            for ((acc, &x), &y) in self.data[r.clone()]
                .iter_mut()
                .zip(&a.data[r.clone()])
                .zip(&b.data[r])
            {
                *acc = m.add(*acc, m.mul(x, y));
            }
        }
    }

    /// Σ_i a_i ⊙ b_i (all NTT form), accumulated lazily: products of 31-bit residues are summed
    /// in `u64` and folded every [`crate::rns::LAZY_TERMS`] terms with 2^32 ≡ c (mod p), then reduced once.
    pub fn dot(ctx: &RnsContext, a: &[&RnsPoly], b: &[&RnsPoly]) -> RnsPoly {
        RnsPoly::dot_with(ctx, a, b, KernelPath::detect())
    }

    /// [`RnsPoly::dot`] on `path` (one of [`KernelPath::available`]).
    pub fn dot_with(ctx: &RnsContext, a: &[&RnsPoly], b: &[&RnsPoly], path: KernelPath) -> RnsPoly {
        assert_eq!(a.len(), b.len(), "dot product of unequal lengths");
        assert!(
            a.iter().chain(b).all(|p| p.repr == Repr::Ntt),
            "ring products need NTT form"
        );
        let n = ctx.n();
        let mut out = RnsPoly::zero(ctx, Repr::Ntt);
        let mut xs = Vec::with_capacity(a.len());
        let mut ys = Vec::with_capacity(b.len());
        for (l, m) in ctx.moduli().iter().enumerate() {
            let r = l * n..(l + 1) * n;
            xs.clear();
            ys.clear();
            xs.extend(a.iter().map(|p| &p.data[r.clone()]));
            ys.extend(b.iter().map(|p| &p.data[r.clone()]));
            simd::dot_into(m, &xs, &ys, &mut out.data[r], path);
        }
        out
    }

    /// X^k · self (negacyclic shift), in coefficient form.
    pub fn monomial_mul(&self, ctx: &RnsContext, k: usize) -> RnsPoly {
        assert_eq!(
            self.repr,
            Repr::Coeff,
            "monomial shift works on coefficients"
        );
        let n = self.n;
        let k = k % (2 * n);
        let mut out = RnsPoly::zero(ctx, Repr::Coeff);
        for (l, m) in ctx.moduli().iter().enumerate() {
            let src = &self.data[l * n..(l + 1) * n];
            let dst = &mut out.data[l * n..(l + 1) * n];
            for (i, &c) in src.iter().enumerate() {
                let j = i + k;
                let (pos, negate) = (j % n, (j / n) % 2 == 1);
                dst[pos] = if negate { m.neg(c) } else { c };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rns::ntt_primes;

    #[test]
    fn monomial_shift_matches_ntt_product() {
        let ctx = RnsContext::new(256, &ntt_primes(256, 2).unwrap()).unwrap();
        let coeffs: Vec<i64> = (0..256).map(|i| (i * 31 % 17) - 8).collect();
        let a = RnsPoly::from_signed(&ctx, &coeffs);
        for k in [0usize, 1, 100, 255, 256, 300, 511] {
            let shifted = a.monomial_mul(&ctx, k);
            let mut mono = vec![0i64; 256];
            let (pos, sign) = (k % 256, if (k / 256) % 2 == 1 { -1 } else { 1 });
            mono[pos] = sign;
            let mut m = RnsPoly::from_signed(&ctx, &mono);
            let mut x = a.clone();
            x.to_ntt(&ctx);
            m.to_ntt(&ctx);
            x.mul_assign(&ctx, &m);
            x.to_coeff(&ctx);
            assert_eq!(x, shifted, "k = {k}");
        }
        // The lazy dot product equals the term-by-term sum of products.
        let polys: Vec<RnsPoly> = (0..30i64)
            .map(|s| {
                let mut p = RnsPoly::from_signed(
                    &ctx,
                    &(0..256).map(|i| (i * s) % 97 - 48).collect::<Vec<_>>(),
                );
                p.to_ntt(&ctx);
                p
            })
            .collect();
        let refs: Vec<&RnsPoly> = polys.iter().collect();
        let mut want = RnsPoly::zero(&ctx, Repr::Ntt);
        for p in &polys {
            want.mul_acc(&ctx, p, p);
        }
        for path in KernelPath::available() {
            assert_eq!(
                RnsPoly::dot_with(&ctx, &refs, &refs, path),
                want,
                "{path:?}"
            );
        }
        // Extremes: every residue p − 1 (largest products) or 0, over 1 to 8 terms (folds).
        let top: Vec<u32> = ctx
            .moduli()
            .iter()
            .flat_map(|m| (0..256).map(move |i| if i % 7 == 3 { 0 } else { m.p - 1 }))
            .collect();
        let top = RnsPoly::from_residues(&ctx, top, Repr::Ntt).unwrap();
        for terms in 1..=8 {
            let refs = vec![&top; terms];
            let mut want = RnsPoly::zero(&ctx, Repr::Ntt);
            for _ in 0..terms {
                want.mul_acc(&ctx, &top, &top);
            }
            for path in KernelPath::available() {
                assert_eq!(
                    RnsPoly::dot_with(&ctx, &refs, &refs, path),
                    want,
                    "{path:?}"
                );
            }
        }
        assert!(RnsPoly::from_residues(&ctx, vec![u32::MAX; 512], Repr::Ntt).is_err());
        assert!(RnsPoly::from_residues(&ctx, vec![0; 511], Repr::Ntt).is_err());
    }
}
