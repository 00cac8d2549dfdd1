//! COP, the client-side outer-product protocol of Nimbus: Y = X·W for X (k×m) additively
//! shared over Z_{2^64} and W (m×n) held by the server. Output: additive shares of Y, exact.
//!
//! **Setup** (once per model, input independent). The server packs P rows of W per
//! polynomial ([`CopLayout`]: row jP + i at coefficients i·S .., S = ⌊N/P⌋; rows longer than
//! N take ⌈n/N⌉ polynomials), encrypts the ⌈m/P⌉·⌈n/N⌉ polynomials under its own secret key,
//! seeded, and sends (seed, b) per polynomial, 16 + 4·L·N bytes. The client stores them as
//! received (`weight_store`: `a` stays a seed until the layer is used), keyed by an opaque id:
//! a BLAKE3 hash of (parameters, packing, server key, W) keyed with a key derived from the
//! server's secret key ([`layer_digest`]), so the client cannot test a guess of W against it;
//! with a matching cache the rows are not resent. Flights: header (S→C), have/need (C→S),
//! rows (S→C).
//!
//! **Online** (one flight, client → server). For every response (T tokens, `layout`), the
//! client computes `Σ_j p_j ⊙ Enc(rows of ciphertext j)` where the plaintext polynomial p_j
//! carries the tokens' inputs x[τ, jP + i] at the exponents τ·n − i·S (`kernel`, NTT domain),
//! so that token τ's output row lands on coefficients τ·n .. τ·n + n, and seals it
//! (`response`: re-randomize with the server's public key, flood, switch to 2^{b1}/2^{b0},
//! subtract its uniform output share R; only the slots' coefficients of c0 are sent). The
//! server opens them, getting X_c·W − R, and adds X_s·W in plaintext.
//! Bytes: 24 + Σ_ct (N·b1 + used_ct·b0)/8 over ⌈k/T⌉ responses when n ≤ N, k·⌈n/N⌉ otherwise.
//! Rounds: 1.
//!
//! **Windows** (the `window` of [`client_online`], [`server_online`]): when the caller truncates
//! Y next, the responses reveal only bits [lo, hi) (`response`, "Windows") and the shares are
//! of ⌊Y/2^lo⌋ modulo 2^{hi−lo}, within 2 units (the server's rounded X_s·W, the carry of the
//! client's share, the response's rounding). `bert::secure` drops the 18 bits its truncation
//! would, 17 bits fewer per c0 and c1 coefficient (−24 % bytes).
use crate::kernel::{accumulate_group, scatter_row, x_index, TILE};
pub use crate::layout::{slot_positions, CopLayout, Packing, Slot};
use crate::matrix::{MatDims, RingMatrix};
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::response::{self, Window};
use crate::rlwe::{encrypt_sk, expand_a, Ciphertext, PublicKey, SecretKey};
use crate::simd::{self, KernelPath};
use crate::weight_store::{
    client_answer_setup, layer_path, server_offer_setup, write_records, CacheHeader, CachedLayer,
    EncryptedLayer,
};
use mpc_core::{AesPrg, Channel, Error, Result, Seed};
use rayon::prelude::*;
use std::path::Path;

/// Online bytes of one COP call on k tokens revealing `window` ([`Window::full`]: the whole
/// product) (formula; equals what the channel measures).
pub fn online_bytes(params: &HeParams, layout: &CopLayout, k: usize, window: Window) -> usize {
    ONLINE_HEADER + layout.responses_bytes(params, k, window)
}

const ONLINE_MAGIC: u32 = 0x434f_5032; // "COP2"
const ONLINE_HEADER: usize = 24;

/// Checks that a COP call of this shape stays inside the parameters' noise analysis.
fn check_shape(params: &HeParams, layout: &CopLayout, k: usize) -> Result<()> {
    let (m, n) = (layout.m, layout.n);
    let packing = layout.tokens_per_ct();
    let terms = (m * packing.min(k)) as u64;
    if terms > params.max_terms() {
        return Err(Error::out_of_range(
            format!(
                "terms per coefficient of {m} rows × {packing} packed tokens (build HeParams \
                 with a larger max_terms)"
            ),
            terms as usize,
            mpc_core::Dims::AtMost(params.max_terms() as usize),
        ));
    }
    if (k * n) as u64 > params.max_revealed() {
        return Err(Error::out_of_range(
            format!(
                "revealed coefficients of a {k}×{n} output (the flooding's bound; split the call)"
            ),
            k * n,
            mpc_core::Dims::AtMost(params.max_revealed() as usize),
        ));
    }
    Ok(())
}

/// The cache id binding a layer cache to (parameters, packing, server key, W): a hash keyed
/// with [`SecretKey::cache_id_key`], which only the server can compute. The client sees only
/// this id; without the key it is a PRF output, unrelated to W (so a guess of W cannot be
/// tested) and unrelated between two server keys.
pub fn layer_digest(
    params: &HeParams,
    sk: &SecretKey,
    pk: &PublicKey,
    layout: &CopLayout,
    w: &RingMatrix,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&sk.cache_id_key());
    h.update(b"cop layer v3");
    h.update(&params.fingerprint());
    h.update(&pk.digest());
    h.update(&(w.rows() as u64).to_le_bytes());
    h.update(&(w.cols() as u64).to_le_bytes());
    h.update(&(layout.rows_per_ct as u64).to_le_bytes());
    h.update(bytemuck::cast_slice(w.data()));
    *h.finalize().as_bytes()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SetupHeader {
    fingerprint: [u8; 8],
    digest: [u8; 32],
    m: u64,
    n: u64,
    rows_per_ct: u64,
}

/// Ciphertexts encrypted and sent per batch during setup (bounds the server's memory).
const SETUP_BATCH: usize = 32;

fn check_layout(layout: &CopLayout, w: &RingMatrix) -> Result<()> {
    if (layout.m, layout.n) != (w.rows(), w.cols()) {
        return Err(Error::shape(
            "weights for the layout",
            [w.rows(), w.cols()],
            [layout.m, layout.n],
        ));
    }
    Ok(())
}

/// The plaintext of ciphertext `ct` (chunk-major): rows jP + i of columns chunk·N .. at
/// coefficients i·S ...
fn packed_rows(layout: &CopLayout, w: &RingMatrix, ct: usize) -> Vec<u64> {
    let (chunk, j) = (ct / layout.cts_per_chunk(), ct % layout.cts_per_chunk());
    let poly_n = layout.poly_n;
    let cols = chunk * poly_n..((chunk + 1) * poly_n).min(layout.n);
    let mut msg = vec![0u64; poly_n];
    for i in 0..layout.rows_per_ct {
        let row = j * layout.rows_per_ct + i;
        if row < layout.m {
            let at = layout.row_offset(i);
            msg[at..at + cols.len()].copy_from_slice(&w.row(row)[cols.clone()]);
        }
    }
    msg
}

/// Server side of setup for one layer, packed as `layout` (`seed`: the encryptions' randomness).
pub fn server_setup(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    pk: &PublicKey,
    layout: &CopLayout,
    w: &RingMatrix,
    seed: Seed,
) -> Result<()> {
    check_layout(layout, w)?;
    let header = SetupHeader {
        fingerprint: params.fingerprint(),
        digest: layer_digest(params, sk, pk, layout, w),
        m: layout.m as u64,
        n: layout.n as u64,
        rows_per_ct: layout.rows_per_ct as u64,
    };
    if !server_offer_setup(ch, &header)? {
        return Ok(());
    }
    let base = seed;
    for batch in (0..layout.ciphertexts())
        .collect::<Vec<_>>()
        .chunks(SETUP_BATCH)
    {
        let cts: Vec<Result<(Seed, RnsPoly)>> = batch
            .par_iter()
            .map(|&ct| {
                let mut rng = AesPrg::new(base.derive(ct as u64));
                let seed = Seed::from_rng(&mut rng);
                let msg = packed_rows(layout, w, ct);
                encrypt_sk(params, sk, &msg, seed, &mut rng).map(|ct| (ct.seed, ct.b))
            })
            .collect();
        for ct in cts {
            let (seed, b) = ct?;
            ch.send(&seed.0)?;
            ch.send_pod(b.data())?;
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
        return Err(Error::shape(
            "announced layer",
            [m, n],
            "a layer of 1..=2^20 × 1..=2^20",
        ));
    }
    let layout = CopLayout::new(
        params,
        MatDims { rows: m, cols: n },
        usize::try_from(header.rows_per_ct).unwrap_or(usize::MAX),
    )?;
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
    let layer_header = CacheHeader::cop_layer(params, header.digest, &layout);
    write_records(&cached.path, &layer_header, |rec| {
        ch.recv(rec)?;
        // Validates every residue of b before it reaches the cache.
        RnsPoly::from_residues(ctx, bytemuck::pod_collect_to_vec(&rec[16..]), Repr::Ntt)?;
        Ok(())
    })?;
    Ok(cached)
}

/// Σ_j p_j ⊙ ct_j for every output ciphertext of `layout` (module docs), NTT form.
///
/// Computed as Σ_{τ,i} X^{τn − iS} ⊙ (Σ_j x[t_τ, jP + i]·ct_j): the inner sums are scalar ×
/// ciphertext accumulations over the ⌈m/P⌉ ciphertexts for k·P "virtual tokens" (t, i), the
/// `kernel`'s register-tiled loop (k·m·2·L·N multiply-adds in all, whatever P), and each
/// output then takes T·P monomial products per limb. One column group (chunk, part, limb) at
/// a time: its panels are built from the cache's records (`b`) or the expanded seeds (`a`).
fn accumulate_outputs(
    params: &HeParams,
    layer: &EncryptedLayer,
    x_c: &RingMatrix,
    outputs: &[Vec<Slot>],
) -> Vec<Ciphertext> {
    let layout = *layer.layout();
    let ctx = params.rns();
    let (poly_n, limbs) = (params.n(), ctx.len());
    let rows = layout.rows_per_ct;
    let cts = layout.cts_per_chunk();
    let (k, m) = (x_c.rows(), x_c.cols());
    let virtual_tokens = k * rows;
    let k_pad = virtual_tokens.div_ceil(TILE) * TILE;
    // x[t, jP + i] mod each prime at kernel row j, virtual token t·P + i (padded).
    let x_res: Vec<Vec<u32>> = ctx
        .moduli()
        .par_iter()
        .map(|md| {
            let mut v = vec![0u32; cts * k_pad];
            for t in 0..k {
                for (mu, &x) in x_c.row(t).iter().enumerate() {
                    let (j, i) = (mu / rows, mu % rows);
                    v[x_index(j, t * rows + i, cts)] = md.from_i64(x as i64);
                }
            }
            v
        })
        .collect();
    debug_assert_eq!(m, layout.m);
    // NTT values of the monomials ±X^{τn − iS}, [q][limb·N], q = τ·P + i.
    let tokens = layout.tokens_per_ct();
    let monomials: Vec<RnsPoly> = (0..tokens * rows)
        .map(|q| {
            let (e, negated) = layout.shift(q / rows, q % rows);
            let mut mono = vec![0i64; poly_n];
            mono[e] = if negated { -1 } else { 1 };
            let mut mono = RnsPoly::from_signed(ctx, &mono);
            mono.to_ntt(ctx);
            mono
        })
        .collect();
    let a: Vec<RnsPoly> = (0..layout.ciphertexts())
        .into_par_iter()
        .map(|ct| expand_a(params, layer.seed(ct)))
        .collect();
    // Group g = (chunk·2 + part)·L + limb → that limb of that part of every output.
    let groups = layout.chunks() * 2 * limbs;
    let path = KernelPath::detect();
    // The panels and sums buffers are reused by the groups of one rayon job (every element is
    // overwritten), so they are allocated and faulted in once per job, not once per group.
    let parts: Vec<Vec<u32>> = (0..groups)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(panels, sums): &mut (Vec<u32>, Vec<u32>), g| {
                let (chunk, part, l) = (g / (2 * limbs), (g / limbs) % 2, g % limbs);
                let md = &ctx.moduli()[l];
                panels.resize(cts * poly_n, 0);
                for j in 0..cts {
                    let ct = chunk * cts + j;
                    let src = match part {
                        0 => &layer.b(ct)[l * poly_n..(l + 1) * poly_n],
                        _ => a[ct].limb(l),
                    };
                    scatter_row(src, j, cts, panels);
                }
                sums.resize(virtual_tokens * poly_n, 0);
                accumulate_group(panels, &x_res[l], virtual_tokens, md, sums);
                // Output o's limb: Σ_{τ,i} sums[t_τ·P + i] ⊙ monomial[τ·P + i], one lazy dot.
                let mut out = vec![0u32; outputs.len() * poly_n];
                let (mut xs, mut ys) = (Vec::new(), Vec::new());
                for (o, slots) in outputs.iter().enumerate() {
                    if slots[0].chunk != chunk {
                        continue;
                    }
                    xs.clear();
                    ys.clear();
                    for (tau, slot) in slots.iter().enumerate() {
                        for i in 0..rows {
                            let v = slot.token * rows + i;
                            xs.push(&sums[v * poly_n..(v + 1) * poly_n]);
                            ys.push(monomials[tau * rows + i].limb(l));
                        }
                    }
                    simd::dot_into(md, &xs, &ys, &mut out[o * poly_n..(o + 1) * poly_n], path);
                }
                out
            },
        )
        .collect();
    let mut out: Vec<Ciphertext> = (0..outputs.len())
        .map(|_| Ciphertext::zero(params))
        .collect();
    for (g, part_out) in parts.iter().enumerate() {
        let (part, l) = ((g / limbs) % 2, g % limbs);
        for (o, ct) in out.iter_mut().enumerate() {
            if outputs[o][0].chunk != g / (2 * limbs) {
                continue;
            }
            let poly = if part == 0 { &mut ct.c0 } else { &mut ct.c1 };
            poly.data_mut()[l * poly_n..(l + 1) * poly_n]
                .copy_from_slice(&part_out[o * poly_n..(o + 1) * poly_n]);
        }
    }
    out
}

/// Client side of the online phase: sends the products sealed to reveal `window` (module docs;
/// [`Window::full`]: the whole product), returns its output share ⌊R/2^lo⌋ mod 2^{hi−lo} (R
/// for the full window).
pub fn client_online(
    ch: &mut Channel,
    params: &HeParams,
    server_pk: &PublicKey,
    layer: &EncryptedLayer,
    x_c: &RingMatrix,
    window: Window,
    seed: Seed,
) -> Result<RingMatrix> {
    let layout = *layer.layout();
    let (k, m, n) = (x_c.rows(), x_c.cols(), layout.n);
    if m != layout.m {
        return Err(Error::shape(
            "input columns (the layer's rows)",
            m,
            layout.m,
        ));
    }
    check_shape(params, &layout, k)?;
    let poly_n = params.n();
    let outputs = layout.output_layout(k);
    let products = accumulate_outputs(params, layer, x_c, &outputs);
    let base = seed;
    let sealed: Vec<Result<(Vec<u8>, Vec<u64>)>> = outputs
        .par_iter()
        .zip(products)
        .enumerate()
        .map(|(i, (slots, ct))| {
            let mut rng = AesPrg::new(base.derive(i as u64));
            let positions = slot_positions(slots);
            let mask = mpc_core::AesPrg::u64s(&mut rng, positions.len());
            let mut bytes = Vec::new();
            response::seal(
                params, server_pk, ct, &positions, &mask, window, &mut rng, &mut bytes,
            )?;
            Ok((bytes, mask))
        })
        .collect();
    let mut msg = Vec::with_capacity(online_bytes(params, &layout, k, window));
    msg.extend_from_slice(&response::message_head(ONLINE_MAGIC, params));
    for v in [k, m, n] {
        msg.extend_from_slice(&(v as u32).to_le_bytes());
    }
    let mut share = RingMatrix::zeros(k, n);
    for (slots, sealed) in outputs.iter().zip(sealed) {
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

/// Server side of the online phase of a call revealing `window` (module docs;
/// [`Window::full`]: the whole product): returns its output share, the window of X_c·W − R
/// plus X_s·W rounded to the window, modulo 2^{hi−lo} (X_c·W − R + X_s·W for the full window).
pub fn server_online(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    layout: &CopLayout,
    w: &RingMatrix,
    x_s: &RingMatrix,
    window: Window,
) -> Result<RingMatrix> {
    check_layout(layout, w)?;
    if x_s.cols() != w.rows() {
        return Err(Error::shape(
            "input columns (W's rows)",
            x_s.cols(),
            w.rows(),
        ));
    }
    let mut out = server_open(ch, params, sk, layout, x_s.rows(), window)?;
    let local = x_s.matmul(w)?;
    for (dst, &v) in out.data_mut().iter_mut().zip(local.data()) {
        *dst = window.reduce(dst.wrapping_add(window.local_share(v)));
    }
    Ok(out)
}

/// The server's half of a COP call on k tokens without a share of its own (the offline
/// phase, where the client's input is its random R): receives and opens the responses,
/// returning the window of X_c·W − R (k × n), modulo 2^{hi−lo}.
pub fn server_open(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    layout: &CopLayout,
    k: usize,
    window: Window,
) -> Result<RingMatrix> {
    let (m, n) = (layout.m, layout.n);
    check_shape(params, layout, k)?;
    let expect = online_bytes(params, layout, k, window);
    let msg = ch.recv_bytes_framed(expect)?;
    if msg.len() != expect {
        return Err(Error::malformed(
            "COP message",
            mpc_core::Dims::Bytes(msg.len()),
            mpc_core::Dims::Bytes(expect),
        ));
    }
    response::check_message_head(&msg, ONLINE_MAGIC, params, "a COP message")?;
    let u32_at = |i: usize| u32::from_le_bytes(msg[i..i + 4].try_into().unwrap()) as usize;
    if (u32_at(12), u32_at(16), u32_at(20)) != (k, m, n) {
        return Err(Error::shape(
            "announced product (rows × inner × outputs)",
            [u32_at(12), u32_at(16), u32_at(20)],
            [k, m, n],
        ));
    }
    let outputs = layout.output_layout(k);
    let mut offsets = Vec::with_capacity(outputs.len());
    let mut at = ONLINE_HEADER;
    for slots in &outputs {
        let len = window.response_bytes(params, slots.iter().map(|s| s.width).sum());
        offsets.push(at..at + len);
        at += len;
    }
    let opened: Vec<Result<Vec<u64>>> = outputs
        .par_iter()
        .zip(offsets)
        .map(|(slots, range)| {
            response::open(params, sk, &msg[range], &slot_positions(slots), window)
        })
        .collect();
    let mut out = RingMatrix::zeros(k, n);
    let poly_n = params.n();
    for (slots, values) in outputs.iter().zip(opened) {
        let values = values?;
        let mut it = values.into_iter();
        for s in slots {
            let row = &mut out.data_mut()[s.token * n..(s.token + 1) * n];
            for (dst, v) in row[s.chunk * poly_n..s.chunk * poly_n + s.width]
                .iter_mut()
                .zip(&mut it)
            {
                *dst = window.reduce(v);
            }
        }
    }
    Ok(out)
}
