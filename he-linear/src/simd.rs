//! Run-time choice of he-linear's SIMD paths, and the vectorised modular reductions the hot
//! loops share.
//!
//! The release build targets baseline x86-64 (SSE2), so the hot loops carry explicit AVX2 and
//! AVX-512 versions chosen once from the CPU's features ([`KernelPath::detect`]); every path
//! computes the same values, which the tests check path against path. The COP accumulation
//! ([`crate::kernel`]) and the NTT-domain dot product ([`crate::poly::RnsPoly::dot`]) use
//! them, and so do the reductions below: a `u64` reduced mod a 31-bit prime takes a 64×64-bit
//! product in Barrett's method, which SSE2 and AVX2 lack; AVX-512 estimates the quotient in
//! double precision instead and corrects it once (exact, see [`reduce_into`]).
use crate::rns::{lazy_fold, Modulus, LAZY_TERMS};
use std::sync::OnceLock;

/// Which implementation of the SIMD hot loops runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelPath {
    /// Plain Rust (what the compiler vectorizes for the build's target).
    Portable,
    /// AVX2 intrinsics.
    Avx2,
    /// AVX-512 F and DQ intrinsics.
    Avx512,
}

impl KernelPath {
    /// The fastest path this CPU runs (detected once).
    pub fn detect() -> KernelPath {
        static PATH: OnceLock<KernelPath> = OnceLock::new();
        *PATH.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512dq")
                {
                    return KernelPath::Avx512;
                }
                if std::is_x86_feature_detected!("avx2") {
                    return KernelPath::Avx2;
                }
            }
            KernelPath::Portable
        })
    }

    /// Every path this CPU runs, slowest first (for tests and side-by-side benches).
    pub fn available() -> Vec<KernelPath> {
        [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512]
            .into_iter()
            .filter(|&p| p <= KernelPath::detect())
            .collect()
    }

    /// Its name in bench rows.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Panics unless the CPU runs this path (the `unsafe` calls below rely on it).
    pub(crate) fn check(self) {
        assert!(
            self <= KernelPath::detect(),
            "{self:?} is not available on this CPU"
        );
    }
}

/// Whether the AVX-512 quotient estimate is exact after one correction for `m`: the relative
/// error of the estimate is below 2^-50, so for p ≥ 2^16 the estimate of x/p < 2^48 is off by
/// less than one.
fn float_quotient_fits(m: &Modulus) -> bool {
    m.p >= 1 << 16
}

/// Whether the reductions mod `m` run their AVX-512 code on `path`.
fn avx512_reduces(m: &Modulus, path: KernelPath) -> bool {
    cfg!(target_arch = "x86_64") && path == KernelPath::Avx512 && float_quotient_fits(m)
}

/// `out[i] = x[i] mod p` for any `u64` values, on `path`.
///
/// # Panics
/// If the lengths differ or `path` is not available.
pub fn reduce_into(m: &Modulus, x: &[u64], out: &mut [u32], path: KernelPath) {
    assert_eq!(x.len(), out.len(), "one output per input");
    path.check();
    #[cfg(target_arch = "x86_64")]
    if avx512_reduces(m, path) {
        // SAFETY: the CPU has AVX-512F and DQ (the path is available).
        unsafe { avx512::reduce_into(m, x, out) };
        return;
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = m.reduce(v);
    }
}

/// `a[i] = a[i] · b[i] mod p` for residues `a[i], b[i] < p`, on `path`.
///
/// # Panics
/// If the lengths differ or `path` is not available.
pub fn mul_assign_mod(m: &Modulus, a: &mut [u32], b: &[u32], path: KernelPath) {
    assert_eq!(a.len(), b.len(), "operands of equal length");
    path.check();
    #[cfg(target_arch = "x86_64")]
    if avx512_reduces(m, path) {
        // SAFETY: the CPU has AVX-512F and DQ (the path is available).
        unsafe { avx512::mul_assign_mod(m, a, b) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.mul(*x, y);
    }
}

/// `out[i] = x[i] mod p` for signed values, on `path`.
///
/// # Panics
/// If the lengths differ or `path` is not available.
pub fn reduce_signed_into(m: &Modulus, x: &[i64], out: &mut [u32], path: KernelPath) {
    assert_eq!(x.len(), out.len(), "one output per input");
    path.check();
    #[cfg(target_arch = "x86_64")]
    if avx512_reduces(m, path) {
        // SAFETY: the CPU has AVX-512F and DQ (the path is available).
        unsafe { avx512::reduce_signed_into(m, x, out) };
        return;
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = m.from_i64(v);
    }
}

/// `a[i] = f(a[i], b[i])` for an element-wise `f` simple enough for the compiler to vectorize
/// (modular additions and subtractions), compiled for AVX-512 when `path` is: the release
/// build's baseline (SSE2) has no unsigned 32-bit minimum, so those loops stay scalar there.
///
/// # Panics
/// If the lengths differ or `path` is not available.
pub fn zip_map(a: &mut [u32], b: &[u32], f: impl Fn(u32, u32) -> u32, path: KernelPath) {
    assert_eq!(a.len(), b.len(), "operands of equal length");
    path.check();
    #[cfg(target_arch = "x86_64")]
    if path == KernelPath::Avx512 {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { avx512::zip_map(a, b, f) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = f(*x, y);
    }
}

/// Coefficients per block of [`dot_into`]: one block's accumulators (16 AVX-512 registers)
/// stay in registers across all terms.
const DOT_CHUNK: usize = 128;

/// `out[i] = Σ_t a_t[i] · b_t[i] mod p` for residues below p, on `path`: products are summed
/// in `u64` lanes, folded every [`LAZY_TERMS`] terms with 2^32 ≡ c (mod p), and reduced once.
///
/// # Panics
/// If the term counts or lengths differ, or `path` is not available.
pub fn dot_into(m: &Modulus, a: &[&[u32]], b: &[&[u32]], out: &mut [u32], path: KernelPath) {
    assert_eq!(a.len(), b.len(), "dot product of unequal lengths");
    assert!(
        a.iter().chain(b).all(|t| t.len() == out.len()),
        "terms of the output's length"
    );
    path.check();
    let mut acc = [0u64; DOT_CHUNK];
    let mut start = 0;
    while start < out.len() {
        let range = start..(start + DOT_CHUNK).min(out.len());
        let acc = &mut acc[..range.len()];
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked above); the block holds DOT_CHUNK values.
            KernelPath::Avx512 if range.len() == DOT_CHUNK => unsafe {
                avx512::dot_chunk(a, b, range.clone(), m.two32, acc)
            },
            _ => dot_chunk_portable(a, b, range.clone(), m.two32, acc),
        }
        reduce_into(m, acc, &mut out[range.clone()], path);
        start = range.end;
    }
}

/// One block of [`dot_into`]: `acc[i] ≡ Σ_t a_t[range][i] · b_t[range][i]`, folded lazily.
fn dot_chunk_portable(
    a: &[&[u32]],
    b: &[&[u32]],
    range: std::ops::Range<usize>,
    two32: u64,
    acc: &mut [u64],
) {
    acc.fill(0);
    for (terms, (x, y)) in a.iter().zip(b).enumerate() {
        let (xs, ys) = (&x[range.clone()], &y[range.clone()]);
        for ((s, &u), &v) in acc.iter_mut().zip(xs).zip(ys) {
            *s += u as u64 * v as u64;
        }
        if terms % LAZY_TERMS == LAZY_TERMS - 1 {
            for s in acc.iter_mut() {
                *s = lazy_fold(*s, two32);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::rns::Modulus;
    use std::arch::x86_64::*;

    /// x mod p for 8 `u64` lanes: q̂ = ⌊fl(fl(x)·fl(1/p))⌋ is ⌊x/p⌋ or one off either way (the
    /// three roundings' relative error is below 2^-51 and x/p < 2^48), so r = x − q̂·p
    /// (wrapping) lies in [−p, 2p) and one masked add and one masked subtract finish it.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn reduce8(x: __m512i, p: __m512i, p_inv: __m512d) -> __m512i {
        let q = _mm512_cvttpd_epu64(_mm512_mul_pd(_mm512_cvtepu64_pd(x), p_inv));
        let r = _mm512_sub_epi64(x, _mm512_mullo_epi64(q, p));
        let r = _mm512_mask_add_epi64(r, _mm512_cmplt_epi64_mask(r, _mm512_setzero_si512()), r, p);
        _mm512_mask_sub_epi64(r, _mm512_cmpge_epi64_mask(r, p), r, p)
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn reduce_into(m: &Modulus, x: &[u64], out: &mut [u32]) {
        let p = _mm512_set1_epi64(m.p as i64);
        let p_inv = _mm512_set1_pd(1.0 / m.p as f64);
        let (xs, x_tail) = x.split_at(x.len() / 8 * 8);
        let (outs, out_tail) = out.split_at_mut(xs.len());
        for (src, dst) in xs.chunks_exact(8).zip(outs.chunks_exact_mut(8)) {
            // SAFETY: 8 values each.
            unsafe {
                let v = _mm512_loadu_si512(src.as_ptr() as *const __m512i);
                let r = reduce8(v, p, p_inv);
                _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, _mm512_cvtepi64_epi32(r));
            }
        }
        for (o, &v) in out_tail.iter_mut().zip(x_tail) {
            *o = m.reduce(v);
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn mul_assign_mod(m: &Modulus, a: &mut [u32], b: &[u32]) {
        let p = _mm512_set1_epi64(m.p as i64);
        let p_inv = _mm512_set1_pd(1.0 / m.p as f64);
        let split = a.len() / 16 * 16;
        let (a_body, a_tail) = a.split_at_mut(split);
        let (b_body, b_tail) = b.split_at(split);
        for (x, y) in a_body.chunks_exact_mut(16).zip(b_body.chunks_exact(16)) {
            // SAFETY: 16 values each. vpmuludq multiplies the low halves of the 64-bit lanes
            // (the even residues); the odd ones are shifted down first; the reduced products
            // (< 2^31) are re-interleaved by a shift and an or.
            unsafe {
                let u = _mm512_loadu_si512(x.as_ptr() as *const __m512i);
                let v = _mm512_loadu_si512(y.as_ptr() as *const __m512i);
                let even = reduce8(_mm512_mul_epu32(u, v), p, p_inv);
                let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(u), _mm512_srli_epi64::<32>(v));
                let odd = reduce8(odd, p, p_inv);
                let r = _mm512_or_si512(even, _mm512_slli_epi64::<32>(odd));
                _mm512_storeu_si512(x.as_mut_ptr() as *mut __m512i, r);
            }
        }
        for (x, &y) in a_tail.iter_mut().zip(b_tail) {
            *x = m.mul(*x, y);
        }
    }

    /// [`super::dot_chunk_portable`] on AVX-512F for a block of [`super::DOT_CHUNK`] coefficients: each
    /// 16-value load gives its even coefficients to one `vpmuludq` (which reads the low half of
    /// every 64-bit lane) and its odd ones, after a 32-bit shift, to another; 8 + 8 accumulators.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_chunk(
        a: &[&[u32]],
        b: &[&[u32]],
        range: std::ops::Range<usize>,
        two32: u64,
        acc: &mut [u64],
    ) {
        const VECS: usize = super::DOT_CHUNK / 16;
        assert!(range.len() == super::DOT_CHUNK && acc.len() == super::DOT_CHUNK);
        let mut even = [_mm512_setzero_si512(); VECS];
        let mut odd = [_mm512_setzero_si512(); VECS];
        let low = _mm512_set1_epi64(0xFFFF_FFFF);
        let c = _mm512_set1_epi64(two32 as i64);
        let fold = |v: __m512i| {
            _mm512_add_epi64(
                _mm512_and_si512(v, low),
                _mm512_mul_epu32(_mm512_srli_epi64::<32>(v), c),
            )
        };
        for (terms, (x, y)) in a.iter().zip(b).enumerate() {
            let (xs, ys) = (&x[range.clone()], &y[range.clone()]);
            for j in 0..VECS {
                // SAFETY: both slices hold super::DOT_CHUNK = 16·VECS values.
                let (u, v) = unsafe {
                    (
                        _mm512_loadu_si512(xs.as_ptr().add(16 * j) as *const __m512i),
                        _mm512_loadu_si512(ys.as_ptr().add(16 * j) as *const __m512i),
                    )
                };
                even[j] = _mm512_add_epi64(even[j], _mm512_mul_epu32(u, v));
                let (u, v) = (_mm512_srli_epi64::<32>(u), _mm512_srli_epi64::<32>(v));
                odd[j] = _mm512_add_epi64(odd[j], _mm512_mul_epu32(u, v));
            }
            if terms % super::LAZY_TERMS == super::LAZY_TERMS - 1 {
                for v in even.iter_mut().chain(odd.iter_mut()) {
                    *v = fold(*v);
                }
            }
        }
        for j in 0..VECS {
            let (mut e, mut o) = ([0u64; 8], [0u64; 8]);
            // SAFETY: 8 u64 each.
            unsafe {
                _mm512_storeu_si512(e.as_mut_ptr() as *mut __m512i, even[j]);
                _mm512_storeu_si512(o.as_mut_ptr() as *mut __m512i, odd[j]);
            }
            for i in 0..8 {
                acc[16 * j + 2 * i] = e[i];
                acc[16 * j + 2 * i + 1] = o[i];
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn reduce_signed_into(m: &Modulus, x: &[i64], out: &mut [u32]) {
        let p = _mm512_set1_epi64(m.p as i64);
        let p_inv = _mm512_set1_pd(1.0 / m.p as f64);
        let zero = _mm512_setzero_si512();
        let (xs, x_tail) = x.split_at(x.len() / 8 * 8);
        let (outs, out_tail) = out.split_at_mut(xs.len());
        for (src, dst) in xs.chunks_exact(8).zip(outs.chunks_exact_mut(8)) {
            // SAFETY: 8 values each. |x| (i64::MIN's is 2^63 as u64) reduced, then p − r where
            // x < 0 and r ≠ 0.
            unsafe {
                let v = _mm512_loadu_si512(src.as_ptr() as *const __m512i);
                let r = reduce8(_mm512_abs_epi64(v), p, p_inv);
                let flip = _mm512_cmplt_epi64_mask(v, zero) & _mm512_cmpneq_epi64_mask(r, zero);
                let r = _mm512_mask_sub_epi64(r, flip, p, r);
                _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, _mm512_cvtepi64_epi32(r));
            }
        }
        for (o, &v) in out_tail.iter_mut().zip(x_tail) {
            *o = m.from_i64(v);
        }
    }

    /// [`super::zip_map`]'s loop compiled for AVX-512.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn zip_map(a: &mut [u32], b: &[u32], f: impl Fn(u32, u32) -> u32) {
        for (x, &y) in a.iter_mut().zip(b) {
            *x = f(*x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rns::ntt_primes;
    use crate::rns::RnsContext;
    use mpc_core::{AesPrg, Seed};
    use rand_core::RngCore;

    #[test]
    fn every_path_reduces_and_multiplies_exactly() {
        let seed = [7u8; 16];
        println!("seed {seed:?}");
        let mut rng = AesPrg::new(Seed(seed));
        let ctx = RnsContext::new(64, &ntt_primes(64, 3).unwrap()).unwrap();
        for m in ctx.moduli() {
            let p = m.p as u64;
            // Edge values: 0, p − 1, p, multiples of p and their neighbours, 2^64 − 1, and
            // the largest products; then random u64s. 37 values: a tail after the 8-lanes.
            let mut x: Vec<u64> = vec![0, p - 1, p, p + 1, u64::MAX, u64::MAX - 1];
            let top = u64::MAX / p * p;
            x.extend([
                top,
                top - 1,
                top.wrapping_add(1),
                (p - 1) * (p - 1),
                1 << 63,
            ]);
            x.extend((0..26).map(|_| rng.next_u64()));
            let want: Vec<u32> = x.iter().map(|&v| (v % p) as u32).collect();
            let a: Vec<u32> = (0..37)
                .map(|i| match i % 4 {
                    0 => m.p - 1,
                    1 => 0,
                    _ => rng.next_u32() % m.p,
                })
                .collect();
            let b: Vec<u32> = (0..37)
                .map(|i| {
                    if i % 3 == 0 {
                        m.p - 1
                    } else {
                        rng.next_u32() % m.p
                    }
                })
                .collect();
            let prod: Vec<u32> = a
                .iter()
                .zip(&b)
                .map(|(&u, &v)| (u as u64 * v as u64 % p) as u32)
                .collect();
            for path in KernelPath::available() {
                let mut out = vec![0u32; x.len()];
                reduce_into(m, &x, &mut out, path);
                assert_eq!(out, want, "{path:?} p={p}");
                let mut c = a.clone();
                mul_assign_mod(m, &mut c, &b, path);
                assert_eq!(c, prod, "{path:?} p={p}");
            }
            let signed: Vec<i64> = [0, 1, -1, i64::MIN, i64::MAX, -(p as i64), p as i64 - 1]
                .into_iter()
                .chain((0..30).map(|_| rng.next_u64() as i64))
                .collect();
            let want_signed: Vec<u32> = signed
                .iter()
                .map(|&v| (v as i128).rem_euclid(p as i128) as u32)
                .collect();
            let sum: Vec<u32> = a
                .iter()
                .zip(&b)
                .map(|(&u, &v)| ((u as u64 + v as u64) % p) as u32)
                .collect();
            for path in KernelPath::available() {
                let mut out = vec![0u32; signed.len()];
                reduce_signed_into(m, &signed, &mut out, path);
                assert_eq!(out, want_signed, "{path:?} p={p}");
                let mut c = a.clone();
                zip_map(&mut c, &b, |u, v| m.add(u, v), path);
                assert_eq!(c, sum, "{path:?} p={p}");
            }
            // Dot products of 1..=7 terms (lazy folds) over 300 values (two full blocks and
            // a tail), every residue p − 1 or 0 or random.
            let val = |rng: &mut AesPrg, i: usize| match i % 3 {
                0 => m.p - 1,
                1 => rng.next_u32() % m.p,
                _ => [0, m.p - 1][i % 2],
            };
            let terms: Vec<Vec<u32>> = (0..14)
                .map(|t| (0..300).map(|i| val(&mut rng, i + t)).collect())
                .collect();
            for count in 1..=7 {
                let xs: Vec<&[u32]> = terms[..count].iter().map(Vec::as_slice).collect();
                let ys: Vec<&[u32]> = terms[7..7 + count].iter().map(Vec::as_slice).collect();
                let want: Vec<u32> = (0..300)
                    .map(|i| {
                        let s = xs
                            .iter()
                            .zip(&ys)
                            .fold(0u128, |s, (x, y)| s + x[i] as u128 * y[i] as u128);
                        (s % p as u128) as u32
                    })
                    .collect();
                for path in KernelPath::available() {
                    let mut out = vec![0u32; 300];
                    dot_into(m, &xs, &ys, &mut out, path);
                    assert_eq!(out, want, "{path:?} p={p} terms={count}");
                }
            }
        }
    }
}
