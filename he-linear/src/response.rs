//! The circuit-private response: how a ciphertext computed by the evaluator goes back to the key
//! holder so that the key holder learns the masked result and nothing else.
//!
//! Evaluator, given the accumulated ciphertext (NTT form), the revealed coefficient positions,
//! and its output share R (one uniform ring element per revealed position):
//! 1. adds a fresh public-key encryption of zero under the key holder's key (re-randomizes c1,
//!    which otherwise is a known linear combination of public `a`s);
//! 2. adds uniform flooding noise on [−2^F, 2^F) to every revealed c0 coefficient, F from
//!    `noise::flood_log2` (hides the evaluator-dependent noise at 2^-κ statistical distance);
//! 3. switches to power-of-two moduli, c1 → 2^{b1} (all N coefficients), c0 → 2^{b0} (revealed
//!    positions only: the others are never sent, so never decrypted);
//! 4. subtracts R·2^{b0−ℓ} from c0 (exact since b0 > ℓ), bit-packs and sends
//!    N·b1 + |revealed|·b0 bits.
//!
//! Key holder: computes ĉ1·s exactly (NTT over the first few primes, CRT), then
//! m = round((ĉ0·2^{B−b0} + ĉ1·s·2^{B−b1}) / 2^{B−ℓ}) mod 2^ℓ, B = max(b0, b1): the evaluator's
//! value minus R. Cost: one flight of `HeParams::response_bytes(revealed)` bytes.
//!
//! **Windows** ([`Window`], the `window` of [`seal`] and [`open`]): when the caller needs only bits
//! [lo, hi) of the result (a product reduced to a smaller ring, or truncated next), the
//! evaluator drops the δ = ℓ − hi top bits of ĉ0 and ĉ1 (exact: the decryption identity holds
//! modulo 2^{B−δ}) and, for lo > 0, rounds lo − 1 more low bits away (the rounding stays below
//! half a unit of bit lo, because the full-width rounding budget was below half a unit of bit
//! 0). The mask R is still subtracted at full width before the rounding, so what the key
//! holder sees is the window of m − R, uniform whatever m is. The key holder learns
//! round((m − R) mod 2^hi / 2^lo) mod 2^{hi−lo}, the evaluator keeps ⌊R/2^lo⌋ mod 2^{hi−lo}:
//! together ⌊m/2^lo⌋ + ε mod 2^{hi−lo}, ε ∈ {−1, 0, 1} (the low parts' carry and the
//! rounding; ε = 0 when lo = 0). Each response is (δ + max(lo − 1, 0))·(N + revealed)/8 bytes
//! shorter.
use crate::bits::{packed_len, BitReader, BitWriter};
use crate::params::HeParams;
use crate::rlwe::{Ciphertext, PublicKey, SecretKey};
use crate::rns::SmallCrt;
use crate::sampling;
use mpc_core::{Dims, Error, Result};
use rand_core::RngCore;

/// The 12-byte head of a message of sealed responses: a 4-byte magic naming the protocol and
/// the parameter fingerprint.
pub(crate) fn message_head(magic: u32, params: &HeParams) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&magic.to_le_bytes());
    h[4..].copy_from_slice(&params.fingerprint());
    h
}

/// Checks a message's head (`msg` at least 12 bytes long): the magic of `what`, then our
/// parameters.
pub(crate) fn check_message_head(
    msg: &[u8],
    magic: u32,
    params: &HeParams,
    what: &str,
) -> Result<()> {
    if msg.len() < 12 {
        return Err(Error::malformed(
            what.to_string(),
            Dims::Bytes(msg.len()),
            Dims::AtLeast(12),
        ));
    }
    if msg[..4] != magic.to_le_bytes() {
        let got = u32::from_le_bytes(msg[..4].try_into().unwrap());
        return Err(Error::malformed(
            format!("magic of {what}"),
            format!("{got:#x}"),
            format!("{magic:#x}"),
        ));
    }
    if msg[4..12] != params.fingerprint() {
        return Err(Error::ParamMismatch(format!(
            "{what} made under other HE parameters"
        )));
    }
    Ok(())
}

/// Evaluator side, steps 1–2: re-randomizes `ct` with an encryption of zero under `pk` and
/// floods the c0 coefficients at `positions`; returns the ciphertext in coefficient form (the
/// others are never revealed: [`seal`] sends c0 only at `positions`).
pub fn rerandomize_and_flood(
    params: &HeParams,
    pk: &PublicKey,
    mut ct: Ciphertext,
    positions: &[u32],
    rng: &mut (impl RngCore + ?Sized),
) -> Result<Ciphertext> {
    let n = params.n();
    if let Some(&p) = positions.iter().find(|&&p| p as usize >= n) {
        return Err(Error::out_of_range(
            "response position",
            p as usize,
            Dims::Below(n),
        ));
    }
    let ctx = params.rns();
    ct.add_assign(params, &pk.encrypt_zero(params, rng));
    ct.to_coeff(params);
    let used = positions.len();
    let mut flood = vec![0u32; used * ctx.len()];
    sampling::flood_residues(ctx, params.flood_bits(), used, &mut flood, rng);
    let c0 = ct.c0.data_mut();
    for (l, m) in ctx.moduli().iter().enumerate() {
        for (k, &pos) in positions.iter().enumerate() {
            let at = l * n + pos as usize;
            c0[at] = m.add(c0[at], flood[l * used + k]);
        }
    }
    Ok(ct)
}

/// The bits [lo, hi) of a response's plaintext that the key holder learns (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    lo: u32,
    hi: u32,
}

impl Window {
    /// Bits [lo, hi) of the ℓ-bit plaintext; needs lo < hi ≤ ℓ.
    pub fn new(params: &HeParams, lo: u32, hi: u32) -> Result<Window> {
        if lo >= hi || hi > params.plain_bits() {
            return Err(Error::out_of_range(
                "response window",
                format!("[{lo}, {hi})"),
                format!(
                    "a non-empty window of the {}-bit plaintext",
                    params.plain_bits()
                ),
            ));
        }
        Ok(Window { lo, hi })
    }

    /// The whole plaintext, [0, ℓ).
    pub fn full(params: &HeParams) -> Window {
        Window {
            lo: 0,
            hi: params.plain_bits(),
        }
    }

    /// The window's width hi − lo: outputs are shares modulo 2^{hi−lo}.
    pub fn bits(&self) -> u32 {
        self.hi - self.lo
    }

    /// The low bits dropped, lo.
    pub fn lo(&self) -> u32 {
        self.lo
    }

    /// Reduces a value modulo 2^{hi−lo}.
    pub fn reduce(&self, v: u64) -> u64 {
        v & mask_bits(self.bits())
    }

    /// The evaluator's share of the window from its mask R: ⌊R/2^lo⌋ mod 2^{hi−lo}.
    pub fn evaluator_share(&self, r: u64) -> u64 {
        self.reduce(r >> self.lo)
    }

    /// A locally known value v (full ring) brought into the window: round(v/2^lo) mod
    /// 2^{hi−lo}, so that it adds to window shares (at most ½ unit of error).
    pub fn local_share(&self, v: u64) -> u64 {
        let half = if self.lo == 0 {
            0
        } else {
            1u64 << (self.lo - 1)
        };
        self.reduce(v.wrapping_add(half) >> self.lo)
    }

    /// (low bits rounded away from ĉ0 and ĉ1, width of ĉ0, width of ĉ1).
    fn widths(&self, params: &HeParams) -> (u32, u32, u32) {
        let drop_top = params.plain_bits() - self.hi;
        let drop_low = self.lo.saturating_sub(1);
        (
            drop_low,
            params.c0_bits() - drop_top - drop_low,
            params.c1_bits() - drop_top - drop_low,
        )
    }

    /// Bytes of one response revealing `used` coefficients through this window.
    pub fn response_bytes(&self, params: &HeParams, used: usize) -> usize {
        let (_, b0, b1) = self.widths(params);
        (params.n() * b1 as usize).div_ceil(8) + (used * b0 as usize).div_ceil(8)
    }
}

/// Evaluator side: steps 1–4 above, revealing only `window` of the plaintext
/// ([`Window::full`]: all of it; the evaluator's share is [`Window::evaluator_share`] of each
/// mask value); appends the packed response to `out`.
#[allow(clippy::too_many_arguments)]
pub fn seal(
    params: &HeParams,
    pk: &PublicKey,
    ct: Ciphertext,
    positions: &[u32],
    mask: &[u64],
    window: Window,
    rng: &mut (impl RngCore + ?Sized),
    out: &mut Vec<u8>,
) -> Result<()> {
    let n = params.n();
    if positions.len() != mask.len() {
        return Err(Error::shape(
            "mask values (one per position)",
            mask.len(),
            positions.len(),
        ));
    }
    if positions.len() > n {
        return Err(Error::shape("positions", positions.len(), Dims::AtMost(n)));
    }
    let ct = rerandomize_and_flood(params, pk, ct, positions, rng)?;
    let ctx = params.rns();
    let (b0, b1, ell) = (params.c0_bits(), params.c1_bits(), params.plain_bits());
    let (drop, w0, w1) = window.widths(params);
    out.reserve(window.response_bytes(params, positions.len()));
    let mut w = BitWriter::new(out);
    let c1 = ct.c1.data();
    let w1_mask = (1u128 << w1) - 1;
    for i in 0..n {
        let v = ctx.switch_to_pow2((0..ctx.len()).map(|l| c1[l * n + i]), b1 - drop);
        w.push(v & w1_mask, w1);
    }
    let c0 = ct.c0.data();
    let b0_mask = (1u128 << b0) - 1;
    let w0_mask = (1u128 << w0) - 1;
    let half = if drop == 0 { 0 } else { 1u128 << (drop - 1) };
    for (&pos, &r) in positions.iter().zip(mask) {
        let pos = pos as usize;
        let v = ctx.switch_to_pow2((0..ctx.len()).map(|l| c0[l * n + pos]), b0);
        let masked = v.wrapping_sub((r as u128) << (b0 - ell)) & b0_mask;
        w.push(((masked + half) >> drop) & w0_mask, w0);
    }
    w.finish();
    Ok(())
}

/// Key-holder side: decrypts a response sealed with `window`, revealing `positions`: values
/// modulo 2^{hi−lo}; `data` must be exactly `window.response_bytes(params, positions.len())`
/// bytes.
pub fn open(
    params: &HeParams,
    sk: &SecretKey,
    data: &[u8],
    positions: &[u32],
    window: Window,
) -> Result<Vec<u64>> {
    let n = params.n();
    let (_, b0, b1) = window.widths(params);
    let ell = window.bits();
    let expect = window.response_bytes(params, positions.len());
    if data.len() != expect {
        return Err(Error::malformed(
            "response ciphertext",
            Dims::Bytes(data.len()),
            Dims::Bytes(expect),
        ));
    }
    let ctx = params.rns();
    let d = params.dec_primes();
    let moduli = &ctx.moduli()[..d];
    let c1_len = packed_len(n, b1);
    let mut r = BitReader::new(&data[..c1_len]);
    // ĉ1 (centered) into the first d primes, NTT, times s.
    let mut limbs = vec![0u32; d * n];
    let half = 1u128 << (b1 - 1);
    for i in 0..n {
        let v = r.pull(b1)?;
        let signed = if v >= half {
            v as i128 - (half as i128) * 2
        } else {
            v as i128
        };
        for (l, m) in moduli.iter().enumerate() {
            let mag = signed.unsigned_abs();
            let res = m.from_limbs(&[mag as u64, (mag >> 64) as u64]);
            limbs[l * n + i] = if signed < 0 { m.neg(res) } else { res };
        }
    }
    let s = sk.ntt();
    for (l, m) in moduli.iter().enumerate() {
        let limb = &mut limbs[l * n..(l + 1) * n];
        ctx.ntt(l, limb);
        for (x, &y) in limb.iter_mut().zip(s.limb(l)) {
            *x = m.mul(*x, y);
        }
        ctx.intt(l, limb);
    }
    let crt = SmallCrt::new(moduli)?;
    let big = b0.max(b1);
    let big_mask = (1u128 << big) - 1;
    let mut r0 = BitReader::new(&data[c1_len..]);
    let mut res = vec![0u32; d];
    positions
        .iter()
        .map(|&pos| {
            let pos = pos as usize;
            if pos >= n {
                return Err(Error::out_of_range(
                    "response position",
                    pos,
                    Dims::Below(n),
                ));
            }
            for l in 0..d {
                res[l] = limbs[l * n + pos];
            }
            let c1s = crt.reconstruct(&res) as u128; // two's complement: mod 2^128
            let c0 = r0.pull(b0)?;
            let v = ((c0 << (big - b0)).wrapping_add(c1s << (big - b1))) & big_mask;
            let shift = big - ell;
            let m = (v + (1u128 << (shift - 1))) >> shift;
            Ok((m as u64) & mask_bits(ell))
        })
        .collect()
}

fn mask_bits(ell: u32) -> u64 {
    if ell == 64 {
        u64::MAX
    } else {
        (1u64 << ell) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlwe::encrypt_sk;
    use mpc_core::{AesPrg, Seed};

    #[test]
    fn sealed_response_opens_to_value_minus_mask() {
        let params = HeParams::default_params().unwrap();
        let mut rng = AesPrg::new(Seed([7; 16]));
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let m: Vec<u64> = (0..params.n() as u64)
            .map(|i| i.wrapping_mul(0xD1B54A32D192ED03))
            .collect();
        let ct = encrypt_sk(&params, &sk, &m, Seed([8; 16]), &mut rng)
            .unwrap()
            .expand(&params);
        let positions: Vec<u32> = vec![0, 1, 5, 100, 8191];
        let mask: Vec<u64> = vec![0, u64::MAX, 1 << 63, 42, 7];
        let mut bytes = Vec::new();
        let full = Window::full(&params);
        seal(
            &params, &pk, ct, &positions, &mask, full, &mut rng, &mut bytes,
        )
        .unwrap();
        assert_eq!(bytes.len(), params.response_bytes(positions.len()));
        let got = open(&params, &sk, &bytes, &positions, full).unwrap();
        for ((&p, &r), g) in positions.iter().zip(&mask).zip(got) {
            assert_eq!(g, m[p as usize].wrapping_sub(r));
        }
        assert!(open(&params, &sk, &bytes[1..], &positions, full).is_err());
    }

    #[test]
    fn windows_reveal_their_bits_within_one_unit_and_are_shorter() {
        let params = HeParams::default_params().unwrap();
        let mut rng = AesPrg::new(Seed([9; 16]));
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let n = params.n();
        let mut m: Vec<u64> = (0..n as u64)
            .map(|i| i.wrapping_mul(0x9E3779B97F4A7C15))
            .collect();
        m[..8].copy_from_slice(&[0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 1 << 17, 1 << 18, 3]);
        let positions: Vec<u32> = (0..n as u32).step_by(3).collect();
        let mut mask = rng.u64s(positions.len());
        mask[..4].copy_from_slice(&[0, u64::MAX, 1 << 63, 1 << 17]);
        assert!(Window::new(&params, 5, 5).is_err());
        assert!(Window::new(&params, 0, 65).is_err());
        for (lo, hi) in [
            (0, 64),
            (0, 38),
            (12, 38),
            (18, 64),
            (1, 64),
            (16, 48),
            (63, 64),
        ] {
            let window = Window::new(&params, lo, hi).unwrap();
            let ct = encrypt_sk(&params, &sk, &m, Seed([10; 16]), &mut rng)
                .unwrap()
                .expand(&params);
            let mut bytes = Vec::new();
            seal(
                &params, &pk, ct, &positions, &mask, window, &mut rng, &mut bytes,
            )
            .unwrap();
            assert_eq!(bytes.len(), window.response_bytes(&params, positions.len()));
            let d = 64 - hi + lo.saturating_sub(1);
            let (b0, b1) = (
                (params.c0_bits() - d) as usize,
                (params.c1_bits() - d) as usize,
            );
            assert_eq!(
                bytes.len(),
                (n * b1).div_ceil(8) + (positions.len() * b0).div_ceil(8),
                "[{lo}, {hi})"
            );
            let got = open(&params, &sk, &bytes, &positions, window).unwrap();
            for ((&p, &r), g) in positions.iter().zip(&mask).zip(got) {
                let sum = window.reduce(g.wrapping_add(window.evaluator_share(r)));
                let want = window.reduce(m[p as usize] >> lo);
                let err = window.reduce(sum.wrapping_sub(want).wrapping_add(1));
                assert!(err <= 2, "[{lo}, {hi}) at {p}: {sum} vs {want}");
                if lo == 0 {
                    assert_eq!(sum, want, "[{lo}, {hi}) at {p}");
                }
            }
            assert!(open(&params, &sk, &bytes[1..], &positions, window).is_err());
        }
    }
}
