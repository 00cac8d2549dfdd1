//! RLWE keys and encryption with the non-integral scaling Δ = q/2^ℓ, so that a decryption is
//! directly a value mod 2^ℓ (as in Cheetah/BumbleBee).
//!
//! * Secret key: ternary s (kept in NTT form).
//! * Seeded secret-key encryption: b = −a·s + e + ⌊Δ·m⌉ with `a` expanded from a 128-bit seed
//!   directly in the NTT domain, so only (seed, b) travels: half the bytes of a ciphertext.
//! * Public key: (p0, p1) = (−a·s + e, a), `a` seeded; encryption of zero (p0·u + e0, p1·u + e1),
//!   used to re-randomize every ciphertext that goes back to the key holder.
//! * ⌊Δ·m⌉ uses randomized rounding of q·m/2^ℓ (m in its signed view): its error ε is
//!   zero-mean with |ε| < 1, which the noise bound in `noise` accounts for.
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::sampling;
use mpc_core::{AesPrg, Error, Result, Ring, Seed};
use rand_core::RngCore;

/// A ternary secret key.
#[derive(Clone)]
pub struct SecretKey {
    coeffs: Vec<i64>,
    ntt: RnsPoly,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh ternary key.
    pub fn generate(params: &HeParams, rng: &mut (impl RngCore + ?Sized)) -> SecretKey {
        let coeffs = sampling::ternary(params.n(), rng);
        let mut ntt = RnsPoly::from_signed(params.rns(), &coeffs);
        ntt.to_ntt(params.rns());
        SecretKey { coeffs, ntt }
    }

    /// s in NTT form over the full basis.
    pub fn ntt(&self) -> &RnsPoly {
        &self.ntt
    }

    /// The ternary coefficients.
    pub fn coeffs(&self) -> &[i64] {
        &self.coeffs
    }

    /// A 256-bit key for the cache ids of data encrypted under this key (`cop::layer_digest`,
    /// `embedding::table_digest`): derived from the secret, so only its holder can compute an
    /// id, and unrelated between two keys (BLAKE3's key derivation, a PRF of the secret).
    pub fn cache_id_key(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("he-linear cache id key v1");
        for &c in &self.coeffs {
            h.update(&[c as i8 as u8]);
        }
        *h.finalize().as_bytes()
    }
}

/// A ciphertext (c0, c1), decrypting as c0 + c1·s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    /// c0 (b).
    pub c0: RnsPoly,
    /// c1 (a).
    pub c1: RnsPoly,
}

impl Ciphertext {
    /// The zero ciphertext in NTT form.
    pub fn zero(params: &HeParams) -> Ciphertext {
        Ciphertext {
            c0: RnsPoly::zero(params.rns(), Repr::Ntt),
            c1: RnsPoly::zero(params.rns(), Repr::Ntt),
        }
    }

    /// self += other.
    pub fn add_assign(&mut self, params: &HeParams, other: &Ciphertext) {
        self.c0.add_assign(params.rns(), &other.c0);
        self.c1.add_assign(params.rns(), &other.c1);
    }

    /// Both parts to coefficient form.
    pub fn to_coeff(&mut self, params: &HeParams) {
        self.c0.to_coeff(params.rns());
        self.c1.to_coeff(params.rns());
    }
}

/// A secret-key ciphertext whose `a` is the seed's expansion: only `b` and the seed travel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededCiphertext {
    /// Seed of `a` (expanded in the NTT domain).
    pub seed: Seed,
    /// b = −a·s + e + Δm, NTT form.
    pub b: RnsPoly,
}

impl SeededCiphertext {
    /// The full ciphertext (expands `a`).
    pub fn expand(&self, params: &HeParams) -> Ciphertext {
        Ciphertext {
            c0: self.b.clone(),
            c1: expand_a(params, self.seed),
        }
    }
}

/// The uniform polynomial `a` (NTT form) of a seed.
pub fn expand_a(params: &HeParams, seed: Seed) -> RnsPoly {
    let ctx = params.rns();
    let mut a = RnsPoly::zero(ctx, Repr::Ntt);
    let mut prg = AesPrg::new(seed);
    for (l, m) in ctx.moduli().iter().enumerate() {
        let n = ctx.n();
        sampling::uniform_mod(m.p, &mut a.data_mut()[l * n..(l + 1) * n], &mut prg);
    }
    a
}

/// A public key (p0 = −a·s + e, p1 = a), both NTT form.
#[derive(Clone, Debug)]
pub struct PublicKey {
    seed: Seed,
    p0: RnsPoly,
    p1: RnsPoly,
}

impl PublicKey {
    /// Derives the public key of `sk`.
    pub fn generate(
        params: &HeParams,
        sk: &SecretKey,
        rng: &mut (impl RngCore + ?Sized),
    ) -> PublicKey {
        let seed = Seed::from_rng(rng);
        let zero = vec![0u64; 0];
        let ct = encrypt_sk(params, sk, &zero, seed, rng).expect("empty message always encodes");
        PublicKey {
            seed,
            p1: expand_a(params, seed),
            p0: ct.b,
        }
    }

    /// The seeded form that travels (seed + p0).
    pub fn to_seeded(&self) -> SeededCiphertext {
        SeededCiphertext {
            seed: self.seed,
            b: self.p0.clone(),
        }
    }

    /// Rebuilds a public key from its seeded form.
    pub fn from_seeded(params: &HeParams, s: SeededCiphertext) -> PublicKey {
        PublicKey {
            seed: s.seed,
            p1: expand_a(params, s.seed),
            p0: s.b,
        }
    }

    /// A fresh encryption of zero (NTT form): (p0·u + e0, p1·u + e1).
    pub fn encrypt_zero(&self, params: &HeParams, rng: &mut (impl RngCore + ?Sized)) -> Ciphertext {
        let ctx = params.rns();
        let n = params.n();
        let mut u = RnsPoly::from_signed(ctx, &sampling::ternary(n, rng));
        u.to_ntt(ctx);
        let gauss = |rng: &mut _| -> Vec<i64> { (0..n).map(|_| sampling::gaussian(rng)).collect() };
        let mut c0 = RnsPoly::from_signed(ctx, &gauss(rng));
        let mut c1 = RnsPoly::from_signed(ctx, &gauss(rng));
        c0.to_ntt(ctx);
        c1.to_ntt(ctx);
        c0.mul_acc(ctx, &self.p0, &u);
        c1.mul_acc(ctx, &self.p1, &u);
        Ciphertext { c0, c1 }
    }
}

/// ⌊Δ·m⌉ + e in coefficient form: m (ring elements mod 2^ℓ, at most N of them) scaled by
/// q/2^{ℓ+R} (R = `HeParams::pack_levels`, usually 0) with randomized rounding, plus fresh Gaussian noise on all N coefficients.
pub fn encode_scaled_with_noise(
    params: &HeParams,
    m: &[u64],
    rng: &mut (impl RngCore + ?Sized),
) -> Result<RnsPoly> {
    let ctx = params.rns();
    let n = params.n();
    if m.len() > n {
        return Err(Error::shape(
            "plaintext values",
            m.len(),
            mpc_core::Dims::AtMost(n),
        ));
    }
    let ring = Ring::new(params.plain_bits())?;
    ring.check_all(m)?;
    let scale = params.scale_bits();
    let q = ctx.q_limbs();
    let mut out = RnsPoly::zero(ctx, Repr::Coeff);
    for i in 0..n {
        let e = sampling::gaussian(rng);
        let v = m.get(i).copied().unwrap_or(0);
        let signed = ring.to_signed(v);
        // q·|m| as 5 limbs, then split at bit ℓ + R into quotient (scaled value) and remainder.
        let mag = signed.unsigned_abs();
        let mut prod = [0u64; 5];
        let mut carry = 0u128;
        for j in 0..4 {
            let t = q[j] as u128 * mag as u128 + carry;
            prod[j] = t as u64;
            carry = t >> 64;
        }
        prod[4] = carry as u64;
        let (quot, rem) = shift_right(&prod, scale);
        // Randomized rounding: +1 with probability rem / 2^scale.
        let mut draw = rng.next_u64() as u128;
        if scale > 64 {
            draw |= (rng.next_u64() as u128) << 64;
        }
        draw &= (1u128 << scale) - 1;
        let up = draw < rem;
        for (l, md) in ctx.moduli().iter().enumerate() {
            let mut r = md.from_limbs(&quot);
            if up {
                r = md.add(r, 1);
            }
            if signed < 0 {
                r = md.neg(r);
            }
            out.data_mut()[l * n + i] = md.add(r, md.from_i64(e));
        }
    }
    Ok(out)
}

/// (x >> bits, x mod 2^bits) for a 5-limb x whose quotient fits 4 limbs (bits in 1..128).
fn shift_right(x: &[u64; 5], bits: u32) -> ([u64; 4], u128) {
    let (words, rest) = ((bits / 64) as usize, bits % 64);
    let word = |j: usize| x.get(j).copied().unwrap_or(0);
    let mut q = [0u64; 4];
    for (j, qj) in q.iter_mut().enumerate() {
        *qj = if rest == 0 {
            word(j + words)
        } else {
            (word(j + words) >> rest) | (word(j + words + 1) << (64 - rest))
        };
    }
    let low = x[0] as u128 | (x[1] as u128) << 64;
    (q, low & ((1u128 << bits) - 1))
}

/// Seeded secret-key encryption of `m` (ring elements mod 2^ℓ as polynomial coefficients).
pub fn encrypt_sk(
    params: &HeParams,
    sk: &SecretKey,
    m: &[u64],
    seed: Seed,
    rng: &mut (impl RngCore + ?Sized),
) -> Result<SeededCiphertext> {
    let ctx = params.rns();
    let mut b = encode_scaled_with_noise(params, m, rng)?;
    b.to_ntt(ctx);
    let mut a_s = expand_a(params, seed);
    a_s.mul_assign(ctx, sk.ntt());
    b.sub_assign(ctx, &a_s);
    Ok(SeededCiphertext { seed, b })
}

/// The phase c0 + c1·s of a ciphertext, in coefficient form (what decryption rounds).
pub fn phase(params: &HeParams, sk: &SecretKey, ct: &Ciphertext) -> RnsPoly {
    let ctx = params.rns();
    let (mut c0, mut c1) = (ct.c0.clone(), ct.c1.clone());
    c0.to_ntt(ctx);
    c1.to_ntt(ctx);
    c1.mul_assign(ctx, sk.ntt());
    c0.add_assign(ctx, &c1);
    c0.to_coeff(ctx);
    c0
}

/// Reference decryption of a full ciphertext: round(2^ℓ·(c0 + c1·s)/q) mod 2^ℓ for every
/// coefficient (used by tests and benches; protocols decrypt compressed responses with
/// `response::open`).
pub fn decrypt_full(params: &HeParams, sk: &SecretKey, ct: &Ciphertext) -> Vec<u64> {
    let ctx = params.rns();
    let v = phase(params, sk, ct);
    let n = params.n();
    (0..n)
        .map(|i| {
            ctx.switch_to_pow2(
                (0..ctx.len()).map(|l| v.data()[l * n + i]),
                params.plain_bits(),
            ) as u64
        })
        .collect()
}

impl PublicKey {
    /// Sends the seeded public key (fingerprint, seed, p0).
    pub fn send(&self, ch: &mut mpc_core::Channel, params: &HeParams) -> Result<()> {
        ch.send(&params.fingerprint())?;
        ch.send(&self.seed.0)?;
        ch.send_pod(self.p0.data())
    }

    /// Receives and validates a public key sent with [`PublicKey::send`].
    pub fn recv(ch: &mut mpc_core::Channel, params: &HeParams) -> Result<PublicKey> {
        let mut fp = [0u8; 8];
        ch.recv(&mut fp)?;
        if fp != params.fingerprint() {
            return Err(Error::ParamMismatch(
                "the peer's public key is for other HE parameters".into(),
            ));
        }
        let mut seed = [0u8; 16];
        ch.recv(&mut seed)?;
        let data = ch.recv_pod_vec::<u32>(params.n() * params.rns().len())?;
        let p0 = RnsPoly::from_residues(params.rns(), data, Repr::Ntt)?;
        Ok(PublicKey::from_seeded(
            params,
            SeededCiphertext {
                seed: Seed(seed),
                b: p0,
            },
        ))
    }

    /// A digest identifying the key.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.seed.0);
        h.update(bytemuck::cast_slice(self.p0.data()));
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_decrypt_edge_values() {
        let params = HeParams::default_params().unwrap();
        let mut rng = AesPrg::new(Seed([1; 16]));
        let sk = SecretKey::generate(&params, &mut rng);
        let mut m = vec![0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 12345];
        m.extend((0..100).map(|i| (i as u64).wrapping_mul(0x9E3779B97F4A7C15)));
        let ct = encrypt_sk(&params, &sk, &m, Seed([2; 16]), &mut rng).unwrap();
        let dec = decrypt_full(&params, &sk, &ct.expand(&params));
        assert_eq!(&dec[..m.len()], &m[..]);
        assert!(dec[m.len()..].iter().all(|&x| x == 0));
        // Public-key encryption of zero decrypts to zero.
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let z = pk.encrypt_zero(&params, &mut rng);
        assert!(decrypt_full(&params, &sk, &z).iter().all(|&x| x == 0));
        let pk2 = PublicKey::from_seeded(&params, pk.to_seeded());
        assert!(
            decrypt_full(&params, &sk, &pk2.encrypt_zero(&params, &mut rng))
                .iter()
                .all(|&x| x == 0)
        );
    }
}
