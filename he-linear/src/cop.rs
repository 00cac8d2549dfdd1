//! COP, the client-side outer-product protocol of Nimbus: Y = X·W for X (k×m) additively
//! shared over Z_{2^64} and W (m×n) held by the server. Output: additive shares of Y, exact.
//!
//! **Setup** (once per model, input independent). The server encrypts every row W_μ under its
//! own secret key, ⌈n/N⌉ polynomials per row (coefficients 0..n−1 of chunk c hold
//! `W[μ][cN..cN+N)`), seeded: it sends (seed, b) per polynomial, 16 + 4·L·N bytes. The client
//! expands `a`, stores both parts in the kernel's panel layout on disk (`weight_store`), keyed
//! by an opaque id: a BLAKE3 hash of (parameters, server key, W) keyed with a key derived from
//! the server's secret key ([`layer_digest`]), so the client cannot test a guess of W against
//! it; with a matching cache the rows are not resent.
//! Flights: header (S→C), have/need (C→S), rows (S→C).
//!
//! **Online** (one flight, client → server). The client computes, for every token r,
//! `Σ_μ X_c[r,μ]·Enc(W_μ)` (scalar × ciphertext in the NTT domain, `kernel`), packs ⌊N/n⌋ tokens
//! per ciphertext by X^{j·n}, and seals each ciphertext (`response`: re-randomize with the
//! server's public key, flood, switch to 2^{b1}/2^{b0}, subtract its uniform output share R). The
//! server opens them, getting X_c·W − R, and adds X_s·W in plaintext.
//! Bytes: 24 + Σ_ct (N·b1 + used_ct·b0)/8, with ⌈k/⌊N/n⌋⌉ ciphertexts when n ≤ N and k·⌈n/N⌉
//! otherwise. Rounds: 1.
//!
//! **Windows** ([`client_online_window`], [`server_online_window`]): when the caller truncates
//! Y next, the responses reveal only bits [lo, hi) (`response`, "Windows") and the shares are
//! of ⌊Y/2^lo⌋ modulo 2^{hi−lo}, within 2 units (the server's rounded X_s·W, the carry of the
//! client's share, the response's rounding). `bert::secure` drops the 18 bits its truncation
//! would, 17 bits fewer per c0 and c1 coefficient (−24 % bytes).
use crate::kernel::{accumulate_group, TILE};
use crate::matrix::RingMatrix;
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::response::{self, Window};
use crate::rlwe::{encrypt_sk, expand_a, Ciphertext, PublicKey, SecretKey};
use crate::weight_store::{
    client_answer_setup, layer_path, server_offer_setup, CachedLayer, EncryptedLayer, LayerBuilder,
    LayerHeader,
};
use mpc_core::{AesPrg, Channel, Error, Result, Seed};
use rayon::prelude::*;
use std::path::Path;

/// One token's chunk placed in an output ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Token (row of X).
    pub token: usize,
    /// Chunk of the output row (columns chunk·N ..).
    pub chunk: usize,
    /// First coefficient in the ciphertext.
    pub offset: usize,
    /// Number of coefficients.
    pub width: usize,
}

/// Tokens packed per output ciphertext for an m×n weight matrix: ⌊N/n⌋, capped so that the
/// m·(packed tokens) terms summed into one coefficient stay within the parameters' noise
/// analysis (`max_terms`) — narrow outputs such as a classifier head would otherwise pack
/// thousands of tokens.
pub fn packing(params: &HeParams, m: usize, n: usize) -> usize {
    let cap = (params.max_terms() as usize / m.max(1)).max(1);
    (params.n() / n.max(1)).clamp(1, cap)
}

/// How the k×n output of an m×n weight matrix is packed into ciphertexts (both parties derive
/// it from the shape).
pub fn output_layout(params: &HeParams, k: usize, m: usize, n: usize) -> Vec<Vec<Slot>> {
    let poly_n = params.n();
    if n <= poly_n {
        let per = packing(params, m, n);
        (0..k.div_ceil(per))
            .map(|ct| {
                (ct * per..((ct + 1) * per).min(k))
                    .enumerate()
                    .map(|(j, token)| Slot {
                        token,
                        chunk: 0,
                        offset: j * n,
                        width: n,
                    })
                    .collect()
            })
            .collect()
    } else {
        let chunks = n.div_ceil(poly_n);
        (0..k)
            .flat_map(|token| {
                (0..chunks).map(move |chunk| {
                    vec![Slot {
                        token,
                        chunk,
                        offset: 0,
                        width: poly_n.min(n - chunk * poly_n),
                    }]
                })
            })
            .collect()
    }
}

/// Revealed coefficient positions of one output ciphertext.
pub fn slot_positions(slots: &[Slot]) -> Vec<u32> {
    slots
        .iter()
        .flat_map(|s| (s.offset..s.offset + s.width).map(|p| p as u32))
        .collect()
}

/// Online bytes of one COP call, X (k×m) · W (m×n) (formula; equals what the channel
/// measures).
pub fn online_bytes(params: &HeParams, k: usize, m: usize, n: usize) -> usize {
    online_bytes_window(params, k, m, n, Window::full(params))
}

/// [`online_bytes`] of a call revealing `window`.
pub fn online_bytes_window(
    params: &HeParams,
    k: usize,
    m: usize,
    n: usize,
    window: Window,
) -> usize {
    ONLINE_HEADER
        + output_layout(params, k, m, n)
            .iter()
            .map(|slots| window.response_bytes(params, slots.iter().map(|s| s.width).sum()))
            .sum::<usize>()
}

const ONLINE_MAGIC: u32 = 0x434f_5031; // "COP1"
const ONLINE_HEADER: usize = 24;

/// Checks that a COP call of this shape stays inside the parameters' noise analysis.
fn check_shape(params: &HeParams, k: usize, m: usize, n: usize) -> Result<()> {
    let packing = if n <= params.n() {
        packing(params, m, n)
    } else {
        1
    };
    let terms = (m * packing.min(k)) as u64;
    if terms > params.max_terms() {
        return Err(Error::InvalidArgument(format!(
            "{m} rows × {packing} packed tokens = {terms} terms per coefficient exceed the \
             parameters' {} (build HeParams with a larger max_terms)",
            params.max_terms()
        )));
    }
    if (k * n) as u64 > params.max_revealed() {
        return Err(Error::InvalidArgument(format!(
            "a {k}×{n} output reveals more than the {} coefficients the flooding covers; \
             split the call",
            params.max_revealed()
        )));
    }
    Ok(())
}

/// The cache id binding a layer cache to (parameters, server key, W): a hash keyed with
/// [`SecretKey::cache_id_key`], which only the server can compute. The client sees only this
/// id; without the key it is a PRF output, unrelated to W (so a guess of W cannot be tested)
/// and unrelated between two server keys.
pub fn layer_digest(params: &HeParams, sk: &SecretKey, pk: &PublicKey, w: &RingMatrix) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&sk.cache_id_key());
    h.update(b"cop layer v2");
    h.update(&params.fingerprint());
    h.update(&pk.digest());
    h.update(&(w.rows() as u64).to_le_bytes());
    h.update(&(w.cols() as u64).to_le_bytes());
    h.update(bytemuck::cast_slice(w.data()));
    *h.finalize().as_bytes()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SetupHeader {
    fingerprint: [u8; 8],
    digest: [u8; 32],
    m: u64,
    n: u64,
}

/// Rows encrypted and sent per batch during setup (bounds the server's memory).
const SETUP_BATCH: usize = 32;

/// Server side of setup for one layer.
pub fn server_setup(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    pk: &PublicKey,
    w: &RingMatrix,
    seed: Seed,
) -> Result<()> {
    let (m, n) = (w.rows(), w.cols());
    let digest = layer_digest(params, sk, pk, w);
    let header = SetupHeader {
        fingerprint: params.fingerprint(),
        digest,
        m: m as u64,
        n: n as u64,
    };
    if !server_offer_setup(ch, &header)? {
        return Ok(());
    }
    let poly_n = params.n();
    let chunks = n.div_ceil(poly_n);
    let base = seed;
    for batch in (0..m).collect::<Vec<_>>().chunks(SETUP_BATCH) {
        let cts: Vec<Result<Vec<(Seed, RnsPoly)>>> = batch
            .par_iter()
            .map(|&mu| {
                let mut rng = AesPrg::new(base.derive(mu as u64));
                (0..chunks)
                    .map(|c| {
                        let row = &w.row(mu)[c * poly_n..((c + 1) * poly_n).min(n)];
                        let seed = Seed::from_rng(&mut rng);
                        encrypt_sk(params, sk, row, seed, &mut rng).map(|ct| (ct.seed, ct.b))
                    })
                    .collect()
            })
            .collect();
        for row in cts {
            for (seed, b) in row? {
                ch.send(&seed.0)?;
                ch.send_pod(b.data())?;
            }
        }
    }
    ch.flush()
}

/// Client side of setup for one layer: returns the (new or reused) cache file.
pub fn client_setup(
    ch: &mut Channel,
    params: &HeParams,
    cache_dir: &Path,
    name: &str,
) -> Result<CachedLayer> {
    let header: SetupHeader = ch.recv_msg(1024)?;
    params.check_fingerprint(&header.fingerprint, "layer")?;
    let (m, n) = (header.m as usize, header.n as usize);
    if m == 0 || n == 0 || m > 1 << 20 || n > 1 << 20 {
        return Err(Error::Shape(format!("implausible layer shape {m}×{n}")));
    }
    let cached = CachedLayer {
        path: layer_path(cache_dir, name, &header.digest),
        digest: header.digest,
    };
    let have = cached.open(params).is_ok();
    client_answer_setup(ch, have)?;
    if have {
        return Ok(cached);
    }
    let ctx = params.rns();
    let layer_header = LayerHeader::new(params, header.digest, m, n);
    let (poly_n, limbs) = (layer_header.poly_n, layer_header.limbs);
    let mut layer = LayerBuilder::new(layer_header);
    for mu in 0..m {
        for c in 0..layer_header.cts_per_row {
            let mut seed = [0u8; 16];
            ch.recv(&mut seed)?;
            let b =
                RnsPoly::from_residues(ctx, ch.recv_pod_vec::<u32>(poly_n * limbs)?, Repr::Ntt)?;
            let a = expand_a(params, Seed(seed));
            for l in 0..limbs {
                layer.put_row((c * 2) * limbs + l, mu, b.limb(l));
                layer.put_row((c * 2 + 1) * limbs + l, mu, a.limb(l));
            }
        }
    }
    layer.write(&cached.path)?;
    Ok(cached)
}

/// Client side of the online phase: sends the sealed products, returns its output share R.
pub fn client_online(
    ch: &mut Channel,
    params: &HeParams,
    server_pk: &PublicKey,
    layer: &EncryptedLayer,
    x_c: &RingMatrix,
    seed: Seed,
) -> Result<RingMatrix> {
    client_online_window(
        ch,
        params,
        server_pk,
        layer,
        x_c,
        Window::full(params),
        seed,
    )
}

/// [`client_online`] revealing only `window` (module docs): returns ⌊R/2^lo⌋ mod 2^{hi−lo}.
pub fn client_online_window(
    ch: &mut Channel,
    params: &HeParams,
    server_pk: &PublicKey,
    layer: &EncryptedLayer,
    x_c: &RingMatrix,
    window: Window,
    seed: Seed,
) -> Result<RingMatrix> {
    let h = *layer.header();
    let (k, m, n) = (x_c.rows(), x_c.cols(), h.n);
    if m != h.m {
        return Err(Error::Shape(format!(
            "input has {m} columns, the layer has {} rows",
            h.m
        )));
    }
    check_shape(params, k, m, n)?;
    let ctx = params.rns();
    let (poly_n, limbs) = (params.n(), ctx.len());
    // X_c mod each prime, laid out [μ][k_pad] for the kernel.
    let k_pad = k.div_ceil(TILE) * TILE;
    let x_res: Vec<Vec<u32>> = ctx
        .moduli()
        .par_iter()
        .map(|md| {
            let mut v = vec![0u32; m * k_pad];
            for r in 0..k {
                for (mu, &x) in x_c.row(r).iter().enumerate() {
                    v[mu * k_pad + r] = md.from_i64(x as i64);
                }
            }
            v
        })
        .collect();
    // Σ_μ X_c[r,μ]·ct_μ for every token and column group (g = (chunk·2 + part)·L + limb).
    let acc: Vec<Vec<u32>> = (0..h.groups())
        .into_par_iter()
        .map(|g| {
            let l = g % limbs;
            let mut out = vec![0u32; k * poly_n];
            accumulate_group(layer.group(g), &x_res[l], k, &ctx.moduli()[l], &mut out);
            out
        })
        .collect();
    let layout = output_layout(params, k, m, n);
    let base = seed;
    let sealed: Vec<Result<(Vec<u8>, Vec<u64>)>> = layout
        .par_iter()
        .enumerate()
        .map(|(i, slots)| {
            let mut rng = AesPrg::new(base.derive(i as u64));
            let mut ct = Ciphertext::zero(params);
            for s in slots {
                let gather = |part: usize| {
                    let mut p = RnsPoly::zero(ctx, Repr::Ntt);
                    for l in 0..limbs {
                        let g = (s.chunk * 2 + part) * limbs + l;
                        p.data_mut()[l * poly_n..(l + 1) * poly_n]
                            .copy_from_slice(&acc[g][s.token * poly_n..(s.token + 1) * poly_n]);
                    }
                    p
                };
                let (mut c0, mut c1) = (gather(0), gather(1));
                if s.offset > 0 {
                    let mut mono = vec![0i64; s.offset + 1];
                    mono[s.offset] = 1;
                    let mut mono = RnsPoly::from_signed(ctx, &mono);
                    mono.to_ntt(ctx);
                    c0.mul_assign(ctx, &mono);
                    c1.mul_assign(ctx, &mono);
                }
                ct.add_assign(params, &Ciphertext { c0, c1 });
            }
            let positions = slot_positions(slots);
            let mask = mpc_core::AesPrg::u64s(&mut rng, positions.len());
            let mut bytes = Vec::new();
            response::seal_window(
                params, server_pk, ct, &positions, &mask, window, &mut rng, &mut bytes,
            )?;
            Ok((bytes, mask))
        })
        .collect();
    let mut msg = Vec::with_capacity(online_bytes_window(params, k, m, n, window));
    msg.extend_from_slice(&response::message_head(ONLINE_MAGIC, params));
    for v in [k, m, n] {
        msg.extend_from_slice(&(v as u32).to_le_bytes());
    }
    let mut share = RingMatrix::zeros(k, n);
    for (slots, sealed) in layout.iter().zip(sealed) {
        let (bytes, mask) = sealed?;
        msg.extend_from_slice(&bytes);
        let mut it = mask.into_iter();
        for s in slots {
            let row = &mut share.data_mut()[s.token * n..(s.token + 1) * n];
            for (dst, v) in row[s.chunk * poly_n..s.chunk * poly_n + s.width]
                .iter_mut()
                .zip(&mut it)
            {
                *dst = window.evaluator_share(v);
            }
        }
    }
    // The length prefix is framing: `online_bytes` counts the payload.
    ch.send_bytes_framed(&msg)?;
    ch.flush()?;
    Ok(share)
}

/// Server side of the online phase: returns its output share X_c·W − R + X_s·W.
pub fn server_online(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    w: &RingMatrix,
    x_s: &RingMatrix,
) -> Result<RingMatrix> {
    server_online_window(ch, params, sk, w, x_s, Window::full(params))
}

/// [`server_online`] of a call revealing `window` (module docs): returns the window of
/// X_c·W − R plus X_s·W rounded to the window, modulo 2^{hi−lo}.
pub fn server_online_window(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    w: &RingMatrix,
    x_s: &RingMatrix,
    window: Window,
) -> Result<RingMatrix> {
    let (k, m, n) = (x_s.rows(), x_s.cols(), w.cols());
    if m != w.rows() {
        return Err(Error::Shape(format!(
            "input has {m} columns, W has {} rows",
            w.rows()
        )));
    }
    check_shape(params, k, m, n)?;
    let expect = online_bytes_window(params, k, m, n, window);
    let msg = ch.recv_bytes_framed(expect)?;
    if msg.len() != expect {
        return Err(Error::Malformed(format!(
            "COP message of {} bytes, expected {expect}",
            msg.len()
        )));
    }
    response::check_message_head(&msg, ONLINE_MAGIC, params, "a COP message")?;
    let u32_at = |i: usize| u32::from_le_bytes(msg[i..i + 4].try_into().unwrap()) as usize;
    if (u32_at(12), u32_at(16), u32_at(20)) != (k, m, n) {
        return Err(Error::Shape(format!(
            "the client computed a {}×{}·{}×{} product, expected {k}×{m}·{m}×{n}",
            u32_at(12),
            u32_at(16),
            u32_at(16),
            u32_at(20)
        )));
    }
    let layout = output_layout(params, k, m, n);
    let mut offsets = Vec::with_capacity(layout.len());
    let mut at = ONLINE_HEADER;
    for slots in &layout {
        let len = window.response_bytes(params, slots.iter().map(|s| s.width).sum());
        offsets.push(at..at + len);
        at += len;
    }
    let opened: Vec<Result<Vec<u64>>> = layout
        .par_iter()
        .zip(offsets)
        .map(|(slots, range)| {
            response::open_window(params, sk, &msg[range], &slot_positions(slots), window)
        })
        .collect();
    let mut out = x_s.matmul(w)?;
    out.data_mut()
        .iter_mut()
        .for_each(|v| *v = window.local_share(*v));
    let poly_n = params.n();
    for (slots, values) in layout.iter().zip(opened) {
        let values = values?;
        let mut it = values.into_iter();
        for s in slots {
            let row = &mut out.data_mut()[s.token * n..(s.token + 1) * n];
            for (dst, v) in row[s.chunk * poly_n..s.chunk * poly_n + s.width]
                .iter_mut()
                .zip(&mut it)
            {
                *dst = window.reduce(dst.wrapping_add(v));
            }
        }
    }
    Ok(out)
}
