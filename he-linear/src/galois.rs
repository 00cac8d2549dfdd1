//! Automorphisms, Galois (key-switching) keys, and ciphertext packing: 2^r ciphertexts whose
//! useful coefficients sit at multiples of 2^r merge into one ciphertext that uses every
//! coefficient (the PackLWEs idea of Chen–Dai–Kim–Song 2020, as BumbleBee uses it to compact
//! matrix-product outputs). It cuts the responses of the secret × secret products from one
//! ciphertext per block of useful coefficients to one per N.
//!
//! **Automorphism** τ_g: f(X) ↦ f(X^g) for odd g; X^i goes to ±X^{i·g mod N} (sign by
//! ⌊i·g/N⌋ mod 2). A ciphertext (c0, c1) under s becomes (τ(c0), τ(c1)) under τ(s).
//!
//! **Key switching** from τ(s) back to s with the RNS gadget: digit j of c1 is its value modulo
//! the product of a group of primes (`HeParams::keyswitch_digit_primes`, two by default: an
//! integer below 2^60 from Garner's CRT), and the key is k_j = (−a_j·s + e_j + g_j·τ(s), a_j)
//! with g_j ≡ 1 on the group's primes and 0 on the others, so Σ_j d_j·k_j =
//! (c1·τ(s) + Σ_j d_j·e_j − (Σ_j d_j a_j)·s, Σ_j d_j a_j): one key per automorphism, D seeded
//! ciphertexts (16 + 4·L·N bytes each; D = 4 for seven primes in pairs). Added noise:
//! |Σ_j d_j e_j| < 2^{digit bits}·√(D·N)·σ·z (`noise::keyswitch_log2`): 2^72.7 with pairs, about
//! the products' own noise (the budget has room), against 2^43 with single primes; pairs halve
//! the NTTs of a key switch (L − 2 per digit, 21 + 7 instead of 42 + 7).
//!
//! **Merge** at level r (inputs useful at multiples of 2^r, garbage elsewhere), with
//! g_r = 1 + N/2^{r−1}: `u + τ_{g_r}(v)`, u = E + X^{2^{r−1}}·O, v = E − X^{2^{r−1}}·O. τ_{g_r}
//! fixes X^i for i ≡ 0 (mod 2^r), negates it for i ≡ 2^{r−1} (mod 2^r), and keeps the other
//! positions off the multiples of 2^{r−1} (for 2r ≤ log2 N + 1), so E's garbage cancels at the
//! odd multiples of 2^{r−1}, O's at the even ones: the result holds 2E at multiples of 2^r and
//! 2O at the odd multiples of 2^{r−1}. Merging level by level from r = R down to 1 puts input i's
//! value at offset i (times 2^R). Noise at an output position: exactly twice one input's
//! coefficient per level (τ fixes or negates output positions, the other input's garbage there
//! cancels between u and τ(v)) plus one key switch; `HeParams::pack_levels` budgets 2^R
//! (`tests/noise.rs` measures it).
//!
//! The factor 2^R is absorbed by encrypting at Δ' = q/2^{ℓ+R} (`HeParams::scale_bits`): after
//! R merges the message sits at the usual Δ = q/2^ℓ, so decryption and the response are
//! unchanged. A group with fewer levels is multiplied by the missing power of two.
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::rlwe::{expand_a, Ciphertext, SecretKey};
use crate::sampling;
use crate::simd::{self, KernelPath};
use mpc_core::{Channel, Dims, Error, Result, Seed, Turn};
use rand_core::RngCore;

/// τ_g(p) for a polynomial in coefficient form.
pub fn automorphism(params: &HeParams, p: &RnsPoly, g: usize) -> RnsPoly {
    assert_eq!(p.repr(), Repr::Coeff, "automorphisms act on coefficients");
    let ctx = params.rns();
    let n = params.n();
    let mut out = RnsPoly::zero(ctx, Repr::Coeff);
    let (src, dst) = (p.data(), out.data_mut());
    for (l, m) in ctx.moduli().iter().enumerate() {
        let (s, d) = (&src[l * n..(l + 1) * n], &mut dst[l * n..(l + 1) * n]);
        for (i, &c) in s.iter().enumerate() {
            let j = (i * g) % (2 * n);
            d[j % n] = if j >= n { m.neg(c) } else { c };
        }
    }
    out
}

/// The Galois element of merge level r (1-based): g_r = 1 + N/2^{r−1}.
pub fn level_element(n: usize, r: u32) -> usize {
    1 + (n >> (r - 1))
}

/// The key-switching key from τ_g(s) to s.
#[derive(Clone, Debug)]
pub struct GaloisKey {
    /// (seed of a_j, b_j in NTT form), one per gadget digit j.
    digits: Vec<(Seed, RnsPoly)>,
    /// The expanded a_j (NTT form).
    a: Vec<RnsPoly>,
    /// τ_g on NTT values: `out[l·N + i] = in[l·N + perm[l·N + i]]`.
    perm: Vec<u32>,
    n: usize,
}

/// The permutation of NTT values that τ_g induces, per limb: the NTT evaluates at roots ψ^{e_i},
/// and τ_g(f)(ψ^{e_i}) = f(ψ^{g·e_i}), the value at the index whose root is (ψ^{e_i})^g. The
/// roots are read off the NTT of X, their g-th powers off the NTT of X^g.
fn ntt_permutation(params: &HeParams, g: usize) -> Vec<u32> {
    let ctx = params.rns();
    let n = params.n();
    let mut x = vec![0i64; n];
    x[1] = 1;
    let mut roots = RnsPoly::from_signed(ctx, &x);
    roots.to_ntt(ctx);
    let mut powered = automorphism(params, &RnsPoly::from_signed(ctx, &x), g);
    powered.to_ntt(ctx);
    let mut perm = Vec::with_capacity(n * ctx.len());
    for l in 0..ctx.len() {
        let index: std::collections::HashMap<u32, u32> = roots
            .limb(l)
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, i as u32))
            .collect();
        perm.extend(powered.limb(l).iter().map(|r| index[r]));
    }
    perm
}

/// The gadget's digits: consecutive groups of `HeParams::keyswitch_digit_primes` limbs (the last
/// may be shorter). Digit j of c1 is c1 mod Π_{l ∈ group j} p_l.
fn digit_groups(params: &HeParams) -> Vec<std::ops::Range<usize>> {
    let (limbs, size) = (params.rns().len(), params.keyswitch_digit_primes());
    (0..limbs)
        .step_by(size)
        .map(|a| a..(a + size).min(limbs))
        .collect()
}

impl GaloisKey {
    fn generate(
        params: &HeParams,
        sk: &SecretKey,
        g: usize,
        rng: &mut (impl RngCore + ?Sized),
    ) -> GaloisKey {
        let ctx = params.rns();
        let n = params.n();
        let s = RnsPoly::from_signed(ctx, sk.coeffs());
        let s_g = automorphism(params, &s, g);
        let digits: Vec<(Seed, RnsPoly)> = digit_groups(params)
            .into_iter()
            .map(|group| {
                let seed = Seed::from_rng(rng);
                // e_j + g_j·τ(s), g_j ≡ 1 on the digit's primes and 0 on the others.
                let e: Vec<i64> = (0..n).map(|_| sampling::gaussian(rng)).collect();
                let mut b = RnsPoly::from_signed(ctx, &e);
                for l in group {
                    let m = &ctx.moduli()[l];
                    for (x, &y) in b.data_mut()[l * n..(l + 1) * n].iter_mut().zip(s_g.limb(l)) {
                        *x = m.add(*x, y);
                    }
                }
                b.to_ntt(ctx);
                let mut a_s = expand_a(params, seed);
                a_s.mul_assign(ctx, sk.ntt());
                b.sub_assign(ctx, &a_s);
                (seed, b)
            })
            .collect();
        GaloisKey::from_digits(params, g, digits)
    }

    fn from_digits(params: &HeParams, g: usize, digits: Vec<(Seed, RnsPoly)>) -> GaloisKey {
        let a = digits.iter().map(|(s, _)| expand_a(params, *s)).collect();
        GaloisKey {
            digits,
            a,
            perm: ntt_permutation(params, g),
            n: params.n(),
        }
    }

    /// τ_g on an NTT-form polynomial.
    fn permute(&self, p: &RnsPoly) -> RnsPoly {
        let n = self.n;
        let mut data = Vec::with_capacity(self.perm.len());
        for (limb, perm) in p.data().chunks_exact(n).zip(self.perm.chunks_exact(n)) {
            data.extend(perm.iter().map(|&i| limb[i as usize]));
        }
        RnsPoly::from_residues_unchecked(data, Repr::Ntt, n)
    }

    /// τ_g applied to `ct` (NTT form) and switched back to s (NTT form).
    fn apply(&self, params: &HeParams, ct: &Ciphertext) -> Ciphertext {
        let ctx = params.rns();
        let n = params.n();
        let c0 = self.permute(&ct.c0);
        let c1 = self.permute(&ct.c1);
        let mut c1_coeff = c1.clone();
        c1_coeff.to_coeff(ctx);
        // Digit j (c1 mod the product of its primes, an integer below 2^60) lifted to every
        // prime, NTT form; on the digit's own primes it is c1's own limb.
        let lifted: Vec<RnsPoly> = digit_groups(params)
            .into_iter()
            .map(|group| {
                let digit = digit_values(params, &c1_coeff, group.clone());
                let mut data = Vec::with_capacity(n * ctx.len());
                for (l, m) in ctx.moduli().iter().enumerate() {
                    if group.contains(&l) {
                        data.extend_from_slice(c1.limb(l));
                    } else {
                        let at = data.len();
                        data.resize(at + digit.len(), 0);
                        simd::reduce_into(m, &digit, &mut data[at..], KernelPath::detect());
                        ctx.ntt(l, &mut data[at..]);
                    }
                }
                RnsPoly::from_residues_unchecked(data, Repr::Ntt, n)
            })
            .collect();
        let refs: Vec<&RnsPoly> = lifted.iter().collect();
        let bs: Vec<&RnsPoly> = self.digits.iter().map(|(_, b)| b).collect();
        let as_: Vec<&RnsPoly> = self.a.iter().collect();
        let mut out0 = RnsPoly::dot(ctx, &refs, &bs);
        out0.add_assign(ctx, &c0);
        Ciphertext {
            c0: out0,
            c1: RnsPoly::dot(ctx, &refs, &as_),
        }
    }
}

/// The integer values (below Π p_l < 2^60) of a digit of a coefficient-form polynomial: the
/// residue itself for a one-prime digit, Garner's CRT for two.
fn digit_values(params: &HeParams, c1: &RnsPoly, group: std::ops::Range<usize>) -> Vec<u64> {
    let moduli = params.rns().moduli();
    let (a, len) = (group.start, group.len());
    let ra = c1.limb(a);
    if len == 1 {
        return ra.iter().map(|&v| v as u64).collect();
    }
    debug_assert_eq!(len, 2, "digits of at most two primes");
    let (pa, mb) = (moduli[a].p as u64, &moduli[a + 1]);
    let inv = crate::rns::pow_mod(pa % mb.p as u64, mb.p as u64 - 2, mb.p as u64) as u32;
    ra.iter()
        .zip(c1.limb(a + 1))
        .map(|(&x, &y)| {
            // D = x + p_a·((y − x)·p_a^{-1} mod p_b), the value mod p_a·p_b.
            let t = mb.mul(mb.sub(y, mb.reduce(x as u64)), inv);
            x as u64 + pa * t as u64
        })
        .collect()
}

/// The key holder's Galois keys for merge levels 1..=R (R = `HeParams::pack_levels`).
#[derive(Clone, Debug)]
pub struct GaloisKeys {
    keys: Vec<GaloisKey>,
}

const MAGIC: u32 = 0x4741_4c31; // "GAL1"

impl GaloisKeys {
    /// Keys for every merge level of `params`.
    pub fn generate(
        params: &HeParams,
        sk: &SecretKey,
        rng: &mut (impl RngCore + ?Sized),
    ) -> GaloisKeys {
        let keys = (1..=params.pack_levels())
            .map(|r| GaloisKey::generate(params, sk, level_element(params.n(), r), rng))
            .collect();
        GaloisKeys { keys }
    }

    /// Bytes [`GaloisKeys::send`] writes.
    pub fn bytes(params: &HeParams) -> usize {
        12 + params.pack_levels() as usize
            * digit_groups(params).len()
            * (16 + 4 * params.n() * params.rns().len())
    }

    /// Sends the keys (magic, fingerprint, then per level and digit: seed, b).
    pub fn send(&self, ch: &mut Channel, params: &HeParams) -> Result<()> {
        ch.send(&crate::response::message_head(MAGIC, params))?;
        for key in &self.keys {
            for (seed, b) in &key.digits {
                ch.send(&seed.0)?;
                ch.send_pod(b.data())?;
            }
        }
        Ok(())
    }

    /// Receives and validates keys sent with [`GaloisKeys::send`].
    pub fn recv(ch: &mut Channel, params: &HeParams) -> Result<GaloisKeys> {
        let mut head = [0u8; 12];
        ch.recv(&mut head)?;
        crate::response::check_message_head(&head, MAGIC, params, "Galois keys")?;
        let ctx = params.rns();
        let keys = (1..=params.pack_levels())
            .map(|r| {
                let digits = (0..digit_groups(params).len())
                    .map(|_| {
                        let mut seed = [0u8; 16];
                        ch.recv(&mut seed)?;
                        let b = ch.recv_pod_vec::<u32>(params.n() * ctx.len())?;
                        Ok((Seed(seed), RnsPoly::from_residues(ctx, b, Repr::Ntt)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(GaloisKey::from_digits(
                    params,
                    level_element(params.n(), r),
                    digits,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GaloisKeys { keys })
    }

    /// Sends `mine` and receives the peer's keys in the order `turn` says (the peer takes the
    /// other turn); parameters without packing exchange nothing.
    pub fn exchange(
        ch: &mut Channel,
        params: &HeParams,
        mine: &GaloisKeys,
        turn: Turn,
    ) -> Result<Option<GaloisKeys>> {
        if params.pack_levels() == 0 {
            return Ok(None);
        }
        let theirs = match turn {
            Turn::SendFirst => {
                mine.send(ch, params)?;
                GaloisKeys::recv(ch, params)?
            }
            Turn::ReceiveFirst => {
                let peer = GaloisKeys::recv(ch, params)?;
                mine.send(ch, params)?;
                peer
            }
        };
        Ok(Some(theirs))
    }

    /// Merges up to 2^R ciphertexts (NTT form) whose useful coefficients sit at multiples of
    /// `2^R`, R = `levels` ≤ `pack_levels`: input i's value at position p ends at p + i (times
    /// 2^{pack_levels}, see the module comment). `None` stands for an absent input. Returns the
    /// merged ciphertext in NTT form.
    pub fn pack(
        &self,
        params: &HeParams,
        cts: Vec<Option<Ciphertext>>,
        levels: u32,
    ) -> Result<Ciphertext> {
        if levels > params.pack_levels() {
            return Err(Error::out_of_range(
                "packing levels",
                levels as usize,
                Dims::AtMost(params.pack_levels() as usize),
            ));
        }
        if cts.len() > 1 << levels || cts.is_empty() {
            return Err(Error::shape(
                format!("ciphertexts packed over {levels} levels"),
                cts.len(),
                Dims::within(1, 1 << levels),
            ));
        }
        let ctx = params.rns();
        let mut layer: Vec<Option<Ciphertext>> = cts;
        layer.resize(1 << levels, None);
        if layer.iter().flatten().any(|ct| ct.c0.repr() != Repr::Ntt) {
            return Err(Error::InvalidArgument(
                "packing takes NTT-form ciphertexts".into(),
            ));
        }
        for r in (1..=levels).rev() {
            let half = layer.len() / 2;
            let key = &self.keys[r as usize - 1];
            let mut mono = vec![0i64; 1 << (r - 1)];
            mono.push(1);
            let mut mono = RnsPoly::from_signed(ctx, &mono);
            mono.to_ntt(ctx);
            let (evens, odds) = layer.split_at_mut(half);
            layer = evens
                .iter_mut()
                .zip(odds.iter_mut())
                .map(|(e, o)| merge(params, key, &mono, e.take(), o.take()))
                .collect();
        }
        let mut out = layer
            .pop()
            .flatten()
            .unwrap_or_else(|| Ciphertext::zero(params));
        // The levels not run: multiply by 2^{pack_levels − levels}.
        let missing = params.pack_levels() - levels;
        if missing > 0 {
            for part in [&mut out.c0, &mut out.c1] {
                for (l, m) in ctx.moduli().iter().enumerate() {
                    let f = m.reduce(1u64 << missing);
                    for x in &mut part.data_mut()[l * params.n()..(l + 1) * params.n()] {
                        *x = m.mul(*x, f);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One merge: `u + τ(v)` with u = E + X^shift·O, v = E − X^shift·O (`mono` = X^shift), all in
/// NTT form.
fn merge(
    params: &HeParams,
    key: &GaloisKey,
    mono: &RnsPoly,
    even: Option<Ciphertext>,
    odd: Option<Ciphertext>,
) -> Option<Ciphertext> {
    let ctx = params.rns();
    let odd = odd.map(|mut o| {
        o.c0.mul_assign(ctx, mono);
        o.c1.mul_assign(ctx, mono);
        o
    });
    let (u, v) = match (even, odd) {
        (None, None) => return None,
        (Some(e), None) => (e.clone(), e),
        (None, Some(o)) => {
            let mut neg = Ciphertext::zero(params);
            neg.c0.sub_assign(ctx, &o.c0);
            neg.c1.sub_assign(ctx, &o.c1);
            (o, neg)
        }
        (Some(e), Some(o)) => {
            let mut u = e.clone();
            u.add_assign(params, &o);
            let mut v = e;
            v.c0.sub_assign(ctx, &o.c0);
            v.c1.sub_assign(ctx, &o.c1);
            (u, v)
        }
    };
    let mut w = key.apply(params, &v);
    w.add_assign(params, &u);
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlwe::{decrypt_full, encrypt_sk};
    use mpc_core::AesPrg;

    fn pack_params(levels: u32) -> HeParams {
        HeParams::builder()
            .max_terms(512)
            .revealed_log2(19)
            .pack_levels(levels)
            .build()
            .unwrap()
    }

    #[test]
    fn key_switched_automorphism_decrypts_to_the_permuted_message() {
        let params = HeParams::default_params().unwrap();
        let mut rng = AesPrg::new(Seed([3; 16]));
        let sk = SecretKey::generate(&params, &mut rng);
        let n = params.n();
        let m: Vec<u64> = (0..n as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let ct = encrypt_sk(&params, &sk, &m, Seed([4; 16]), &mut rng)
            .unwrap()
            .expand(&params);
        for g in [level_element(n, 1), level_element(n, 3), 3, 2 * n - 1] {
            let key = GaloisKey::generate(&params, &sk, g, &mut rng);
            let got = decrypt_full(&params, &sk, &key.apply(&params, &ct));
            for (i, &v) in m.iter().enumerate() {
                let j = (i * g) % (2 * n);
                let want = if j >= n { v.wrapping_neg() } else { v };
                assert_eq!(got[j % n], want, "g = {g}, i = {i}");
            }
        }
    }

    #[test]
    fn packing_interleaves_strided_ciphertexts() {
        for levels in [1u32, 3, 5] {
            let params = pack_params(5);
            let mut rng = AesPrg::new(Seed([5; 16]));
            let sk = SecretKey::generate(&params, &mut rng);
            let keys = GaloisKeys::generate(&params, &sk, &mut rng);
            let (n, stride) = (params.n(), 1usize << levels);
            let per = n / stride;
            // Useful values at multiples of the stride; garbage everywhere else.
            let count = (1usize << levels) - 1; // one input absent
            let mut want = vec![0u64; n];
            let cts: Vec<Option<Ciphertext>> = (0..count)
                .map(|i| {
                    let mut coeffs: Vec<u64> = (0..n as u64)
                        .map(|k| (k + 7 * i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
                        .collect();
                    for p in 0..per {
                        let v = match p % 4 {
                            0 => 0,
                            1 => u64::MAX,
                            2 => 1 << 63,
                            _ => (p * 31 + i) as u64,
                        };
                        coeffs[p * stride] = v;
                        want[p * stride + i] = v;
                    }
                    let seed = Seed::from_rng(&mut rng);
                    Some(
                        encrypt_sk(&params, &sk, &coeffs, seed, &mut rng)
                            .unwrap()
                            .expand(&params),
                    )
                })
                .collect();
            let packed = keys.pack(&params, cts, levels).unwrap();
            assert_eq!(decrypt_full(&params, &sk, &packed), want, "{levels} levels");
        }
    }

    #[test]
    fn too_many_levels_are_refused() {
        let params = pack_params(2);
        let mut rng = AesPrg::new(Seed([6; 16]));
        let sk = SecretKey::generate(&params, &mut rng);
        let keys = GaloisKeys::generate(&params, &sk, &mut rng);
        assert!(keys.pack(&params, vec![None; 8], 3).is_err());
        assert!(keys.pack(&params, vec![], 1).is_err());
    }
}
