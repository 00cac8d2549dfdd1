//! The RNS modulus q = p_0·…·p_{L−1}: NTT-friendly primes below 2^31 (so tfhe-ntt's Shoup path
//! applies and two residues multiply within a `u64` with room for [`LAZY_TERMS`] lazily
//! accumulated products), their NTT plans, and the constants for Barrett reduction, CRT and
//! switching to a power-of-two modulus.
use mpc_core::{Error, Result};
use tfhe_ntt::prime32::Plan;

/// Deterministic Miller–Rabin for 32-bit integers (bases 2, 7, 61 suffice below 4.7·10^9).
pub fn is_prime_u32(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u32, 3, 5, 7, 11, 13] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let n64 = n as u64;
    let mut d = n64 - 1;
    let mut s = 0;
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    'witness: for a in [2u64, 7, 61] {
        let mut x = pow_mod(a % n64, d, n64);
        if x == 1 || x == n64 - 1 {
            continue;
        }
        for _ in 1..s {
            x = x * x % n64;
            if x == n64 - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// a^e mod m for m < 2^32.
pub fn pow_mod(mut a: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1u64;
    a %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = r * a % m;
        }
        a = a * a % m;
        e >>= 1;
    }
    r
}

/// The `count` largest primes p < 2^31 with p ≡ 1 (mod 2n), in decreasing order.
pub fn ntt_primes(n: usize, count: usize) -> Result<Vec<u32>> {
    let step = 2 * n as u32;
    let mut p = (PRIME_BOUND - 1) / step * step + 1;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if p <= step {
            return Err(crate::params::ParamsError::NotEnoughPrimes { n }.into());
        }
        if p < PRIME_BOUND && is_prime_u32(p) {
            out.push(p);
        }
        p -= step;
    }
    Ok(out)
}

/// Every prime of a basis is below this bound (2^31).
pub const PRIME_BOUND: u32 = 1 << 31;

/// Products of two residues (< 2^62) that can be added to a folded accumulator without
/// overflowing a `u64`: 3·2^62 + fold < 2^64 whenever the fold bound (2^32 − 1)·(1 + 2^32 mod p)
/// is below 2^62, i.e. 2^32 mod p < 2^30 − 1, which [`RnsContext::new`] checks for every prime
/// (the primes just below 2^31 have 2^32 mod p < 2^21: folds stay below 2^53).
pub const LAZY_TERMS: usize = 3;

/// Folds a lazily accumulated `u64` using 2^32 ≡ `two32` (mod p): (a mod 2^32) +
/// ⌊a/2^32⌋·two32 ≡ a, below (2^32 − 1)·(1 + two32).
#[inline(always)]
pub fn lazy_fold(a: u64, two32: u64) -> u64 {
    (a & 0xFFFF_FFFF) + (a >> 32) * two32
}

/// Whether a folded accumulator plus [`LAZY_TERMS`] products of residues mod `p` fits a `u64`.
pub fn lazy_accumulation_fits(p: u32) -> bool {
    let fold = (u32::MAX as u128) * (1 + (1u128 << 32) % p as u128);
    let product = (p as u128 - 1) * (p as u128 - 1);
    fold + LAZY_TERMS as u128 * product <= u64::MAX as u128
}

/// Per-prime constants.
#[derive(Clone, Debug)]
pub struct Modulus {
    /// The prime.
    pub p: u32,
    /// floor(2^64 / p), for Barrett reduction of any `u64`.
    pub barrett: u64,
    /// 2^32 mod p, to fold a lazily accumulated `u64` back below 2^62 (checked per prime).
    pub two32: u64,
    /// 2^{64 j} mod p for j = 0..4, to reduce multi-limb integers.
    pub pow64: [u64; 4],
    /// (q/p)^{-1} mod p (CRT).
    pub qhat_inv: u64,
    /// floor(2^128 / p): c·2^b/q mod 2^b = Σ_i y_i·θ_i / 2^{128−b} (see `switch`).
    pub theta: u128,
}

impl Modulus {
    fn new(p: u32) -> Modulus {
        let p64 = p as u64;
        let mut pow64 = [1u64; 4];
        let two64 = ((1u128 << 64) % p as u128) as u64;
        for j in 1..4 {
            pow64[j] = pow64[j - 1] * two64 % p64;
        }
        Modulus {
            p,
            barrett: u64::MAX / p64,
            two32: (1u64 << 32) % p64,
            pow64,
            qhat_inv: 0,
            theta: u128::MAX / p as u128,
        }
    }

    /// x mod p for any `u64` (Barrett).
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u32 {
        let q = ((x as u128 * self.barrett as u128) >> 64) as u64;
        let r = x - q * self.p as u64;
        (if r >= self.p as u64 {
            r - self.p as u64
        } else {
            r
        }) as u32
    }

    /// a·b mod p.
    #[inline(always)]
    pub fn mul(&self, a: u32, b: u32) -> u32 {
        self.reduce(a as u64 * b as u64)
    }

    /// a + b mod p.
    #[inline(always)]
    pub fn add(&self, a: u32, b: u32) -> u32 {
        let s = a + b;
        if s >= self.p {
            s - self.p
        } else {
            s
        }
    }

    /// a − b mod p.
    #[inline(always)]
    pub fn sub(&self, a: u32, b: u32) -> u32 {
        if a >= b {
            a - b
        } else {
            a + self.p - b
        }
    }

    /// −a mod p.
    #[inline(always)]
    pub fn neg(&self, a: u32) -> u32 {
        if a == 0 {
            0
        } else {
            self.p - a
        }
    }

    /// A signed 64-bit integer mod p.
    #[inline(always)]
    pub fn from_i64(&self, x: i64) -> u32 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    /// A little-endian multi-limb non-negative integer mod p.
    #[inline]
    pub fn from_limbs(&self, limbs: &[u64]) -> u32 {
        let mut acc = 0u64;
        for (j, &l) in limbs.iter().enumerate() {
            acc += self.reduce(l) as u64 * self.pow64[j];
            acc = self.reduce(acc) as u64;
        }
        acc as u32
    }
}

/// The RNS basis with NTT plans.
#[derive(Clone, Debug)]
pub struct RnsContext {
    n: usize,
    moduli: Vec<Modulus>,
    plans: Vec<Plan>,
    /// q as little-endian 64-bit limbs (q < 2^256).
    q_limbs: [u64; 4],
}

impl RnsContext {
    /// Builds the basis for ring degree `n` over `primes` (each prime < 2^31, ≡ 1 mod 2n, with
    /// 2^32 mod p small enough for [`LAZY_TERMS`] lazy products).
    pub fn new(n: usize, primes: &[u32]) -> Result<RnsContext> {
        if primes.is_empty() || primes.len() > 8 {
            return Err(Error::out_of_range(
                "number of primes",
                primes.len(),
                mpc_core::Dims::within(1, 8),
            ));
        }
        let mut moduli = Vec::new();
        let mut plans = Vec::new();
        for (i, &p) in primes.iter().enumerate() {
            if p >= PRIME_BOUND || !is_prime_u32(p) || !(p as u64 - 1).is_multiple_of(2 * n as u64)
            {
                return Err(Error::InvalidArgument(format!(
                    "{p} is not a prime below 2^31 congruent to 1 mod 2N"
                )));
            }
            if !lazy_accumulation_fits(p) {
                return Err(Error::InvalidArgument(format!(
                    "{p}: {LAZY_TERMS} lazy products plus a fold overflow a u64 (2^32 mod p = {})",
                    (1u64 << 32) % p as u64
                )));
            }
            if primes[..i].contains(&p) {
                return Err(Error::InvalidArgument(format!("prime {p} repeated")));
            }
            let plan = Plan::try_new(n, p).ok_or_else(|| {
                Error::InvalidArgument(format!("no NTT plan for N = {n}, p = {p}"))
            })?;
            moduli.push(Modulus::new(p));
            plans.push(plan);
        }
        // q and the CRT constants.
        let mut q_limbs = [1u64, 0, 0, 0];
        for &p in primes {
            mul_limbs_small(&mut q_limbs, p as u64);
        }
        for i in 0..moduli.len() {
            let p = primes[i] as u64;
            let qhat = primes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(1u64, |acc, (_, &pj)| acc * (pj as u64 % p) % p);
            moduli[i].qhat_inv = pow_mod(qhat, p - 2, p);
        }
        Ok(RnsContext {
            n,
            moduli,
            plans,
            q_limbs,
        })
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of primes L.
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    /// Always false (a basis has at least one prime).
    pub fn is_empty(&self) -> bool {
        self.moduli.is_empty()
    }

    /// The per-prime constants.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// The primes.
    pub fn primes(&self) -> Vec<u32> {
        self.moduli.iter().map(|m| m.p).collect()
    }

    /// log2 q.
    pub fn log_q(&self) -> f64 {
        self.moduli.iter().map(|m| (m.p as f64).log2()).sum()
    }

    /// q as little-endian limbs.
    pub fn q_limbs(&self) -> [u64; 4] {
        self.q_limbs
    }

    /// Forward negacyclic NTT of limb `i` (input reduced, output reduced).
    pub fn ntt(&self, i: usize, limb: &mut [u32]) {
        self.plans[i].fwd(limb);
    }

    /// Inverse negacyclic NTT of limb `i`, normalized (output reduced).
    pub fn intt(&self, i: usize, limb: &mut [u32]) {
        self.plans[i].inv(limb);
        self.plans[i].normalize(limb);
    }

    /// round(c·2^bits / q) mod 2^bits for the integer c given by its residues (`bits` ≤ 96).
    ///
    /// With y_i = c_i·(q/p_i)^{-1} mod p_i, c = Σ y_i·q/p_i − κq, hence
    /// c·2^b/q ≡ Σ y_i·2^b/p_i (mod 2^b); the sum is computed in 128-bit fixed point with
    /// θ_i = ⌊2^128/p_i⌋, whose total error is below L·2^31 units of 2^{b−128} (below 2^-18
    /// units of the result for the response widths b ≤ 76 and L ≤ 8), far under the switching
    /// noise budget.
    #[inline]
    pub fn switch_to_pow2(&self, residues: impl Iterator<Item = u32>, bits: u32) -> u128 {
        debug_assert!(bits <= 96);
        let mut acc = 0u128;
        for (m, c) in self.moduli.iter().zip(residues) {
            let y = m.mul(c, m.qhat_inv as u32);
            acc = acc.wrapping_add((y as u128).wrapping_mul(m.theta));
        }
        let frac = 128 - bits;
        let rounded = acc.wrapping_add(1u128 << (frac - 1)) >> frac;
        rounded & ((1u128 << bits) - 1)
    }
}

/// limbs *= small (little-endian, the product must fit).
fn mul_limbs_small(limbs: &mut [u64; 4], small: u64) {
    let mut carry = 0u128;
    for l in limbs.iter_mut() {
        let v = *l as u128 * small as u128 + carry;
        *l = v as u64;
        carry = v >> 64;
    }
    debug_assert_eq!(carry, 0);
}

/// Exact CRT over the first `primes` moduli for coefficients known to satisfy |x| < Q/2,
/// returning the centered integer (used by the key holder's decryption, Q < 2^124).
#[derive(Clone, Debug)]
pub struct SmallCrt {
    big_q: u128,
    /// (Q/p_i, (Q/p_i)^{-1} mod p_i).
    terms: Vec<(u128, u32)>,
    moduli: Vec<Modulus>,
}

impl SmallCrt {
    /// CRT over `moduli` (their product must stay below 2^124).
    pub fn new(moduli: &[Modulus]) -> Result<SmallCrt> {
        let log: f64 = moduli.iter().map(|m| (m.p as f64).log2()).sum();
        if log >= 124.0 {
            return Err(Error::InvalidArgument(format!(
                "CRT basis of {log:.1} bits is too wide for 128-bit arithmetic"
            )));
        }
        let big_q: u128 = moduli.iter().map(|m| m.p as u128).product();
        let terms = moduli
            .iter()
            .map(|m| {
                let qhat = big_q / m.p as u128;
                let qhat_mod = (qhat % m.p as u128) as u64;
                let inv = pow_mod(qhat_mod, m.p as u64 - 2, m.p as u64) as u32;
                (qhat, inv)
            })
            .collect();
        Ok(SmallCrt {
            big_q,
            terms,
            moduli: moduli.to_vec(),
        })
    }

    /// The centered integer with the given residues.
    #[inline]
    pub fn reconstruct(&self, residues: &[u32]) -> i128 {
        let mut acc = 0u128;
        for ((m, &(qhat, inv)), &c) in self.moduli.iter().zip(&self.terms).zip(residues) {
            let y = m.mul(c, inv) as u128;
            acc += y * qhat; // < 2^31 · 2^93 each, at most 4 terms: no overflow
            if acc >= self.big_q {
                acc -= self.big_q * (acc / self.big_q);
            }
        }
        if acc > self.big_q / 2 {
            acc as i128 - self.big_q as i128
        } else {
            acc as i128
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_ntt_friendly() {
        let ps = ntt_primes(8192, 7).unwrap();
        assert_eq!(ps.len(), 7);
        for &p in &ps {
            assert!(is_prime_u32(p) && p < PRIME_BOUND && (p - 1) % 16384 == 0);
            assert!(lazy_accumulation_fits(p), "{p}");
        }
        assert!(!is_prime_u32(1 << 30) && is_prime_u32(998244353) && !is_prime_u32(561));
        // Pinned: a change of search or NTT crate must not silently change the basis.
        assert_eq!(ps[0], 2147352577);
    }

    #[test]
    fn ntt_known_answer_and_round_trip() {
        // X · X^{N−1} = X^N = −1 in the negacyclic ring.
        let ctx = RnsContext::new(64, &ntt_primes(64, 2).unwrap()).unwrap();
        let p = ctx.moduli()[0].p;
        let mut a = vec![0u32; 64];
        let mut b = vec![0u32; 64];
        a[1] = 1;
        b[63] = 1;
        ctx.ntt(0, &mut a);
        ctx.ntt(0, &mut b);
        let mut c: Vec<u32> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| ctx.moduli()[0].mul(x, y))
            .collect();
        ctx.intt(0, &mut c);
        assert_eq!(c[0], p - 1);
        assert!(c[1..].iter().all(|&v| v == 0));
        let orig: Vec<u32> = (0..64).map(|i| (i * 7919) % p).collect();
        let mut v = orig.clone();
        ctx.ntt(1 % ctx.len(), &mut v);
        ctx.intt(1 % ctx.len(), &mut v);
        assert_eq!(v, orig);
    }

    #[test]
    fn switch_to_pow2_matches_big_integer_rounding() {
        let ps = ntt_primes(1024, 3).unwrap();
        let ctx = RnsContext::new(1024, &ps).unwrap();
        let q: u128 = ps.iter().map(|&p| p as u128).product();
        let crt = SmallCrt::new(ctx.moduli()).unwrap();
        for &c in &[0u128, 1, q / 2, q - 1, q / 3, 123456789123456789] {
            let res: Vec<u32> = ps.iter().map(|&p| (c % p as u128) as u32).collect();
            for bits in [10u32, 40, 64, 80] {
                // Exact: round(c·2^b/q) mod 2^b with big arithmetic in f64-free integer form.
                let num = c * (1u128 << (bits.min(38))); // keep exact within u128
                let exact = if bits <= 38 {
                    ((num + q / 2) / q) % (1u128 << bits)
                } else {
                    continue;
                };
                assert_eq!(
                    ctx.switch_to_pow2(res.iter().copied(), bits),
                    exact,
                    "c={c} b={bits}"
                );
            }
            let centered = if c > q / 2 {
                c as i128 - q as i128
            } else {
                c as i128
            };
            assert_eq!(crt.reconstruct(&res), centered);
        }
        let m = &ctx.moduli()[0];
        assert_eq!(m.from_i64(-1), m.p - 1);
        assert_eq!(
            m.from_limbs(&[5, 1]),
            ((5u128 + (1u128 << 64)) % m.p as u128) as u32
        );
    }
}
