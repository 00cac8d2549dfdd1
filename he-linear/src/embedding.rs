//! Secure embedding lookup: client and server obtain additive shares of `E[id_t]` for the
//! client's private token ids; the server's table E (V×d over Z_{2^64}) stays private and the
//! server learns nothing about the ids.
//!
//! **Setup** (once per table). The server packs R rows per polynomial (row `i` in polynomial
//! `⌊i/R⌋` at coefficients `(i mod R)·S .. (i mod R)·S + d`, stride S = ⌊N/R⌋ ≥ d), encrypts
//! the ⌈V/R⌉ polynomials under its secret key, seeded, and sends (seed, b): 16 + 4·L·N bytes
//! each. The client caches them on disk, keyed by an opaque id ([`table_digest`]: a hash of
//! (parameters, server key, E, R) keyed with a key derived from the server's secret key);
//! a matching cache is reused and nothing is resent. Flights: header (S→C), have/need (C→S),
//! polynomials (S→C).
//!
//! **Online** (one flight, client → server). For token t with id = R·p + j, the client takes
//! ciphertext p and multiplies it by the monomial `X^{τ·d − j·S}` (a negacyclic rotation: no
//! noise growth), which moves row j to coefficients τ·d .. τ·d + d, τ = t mod T, where
//! T = ⌊S/d⌋ tokens share one response. The other rows of p land at offsets ≥ S, outside every
//! token's slot, so T rotated ciphertexts add up without collision. Each sum is sealed
//! ([`response::seal`]: re-randomized under the server's public key, flooded, switched to
//! 2^{b1}/2^{b0}, masked by the client's uniform share) revealing only the T·d slot
//! coefficients; the server opens `E[id_t] − mask_t`. Bytes: 16 + ⌈k/T⌉·(N·b1 + T·d·b0)/8
//! (the last response reveals only its used slots). Rounds: 1.
//!
//! The choice of R trades setup for online cost: R = ⌊N/d⌋ (the default) gives the smallest
//! setup (⌈V/R⌉ polynomials) and one response per token; a smaller R gives T = ⌊⌊N/R⌋/d⌋
//! tokens per response and a proportionally larger setup.
//!
//! What each party sees: the server, one flight of responses whose revealed coefficients are
//! uniformly masked and whose c1 is re-randomized under its own key (so the rotation, hence
//! the id, is hidden); the client, RLWE encryptions under the server's secret key.
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::response::{self, Window};
use crate::rlwe::{encrypt_sk, expand_a, Ciphertext, PublicKey, SecretKey};
use crate::weight_store::{
    cache_path, client_answer_setup, server_offer_setup, write_records, CacheHeader, CacheKind,
    SeededCiphertexts,
};
use mpc_core::{AesPrg, Channel, Dims, Error, Result, Seed};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How the table is packed into polynomials (both parties derive everything from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmbeddingLayout {
    /// Rows of the table (vocabulary size V).
    pub vocab: usize,
    /// Columns of the table (hidden size d).
    pub dim: usize,
    /// Rows packed per polynomial (R).
    pub rows_per_poly: usize,
    /// Ring degree N.
    pub poly_n: usize,
}

impl EmbeddingLayout {
    /// A layout with R rows per polynomial, checked against N.
    pub fn new(params: &HeParams, vocab: usize, dim: usize, rows_per_poly: usize) -> Result<Self> {
        let n = params.n();
        if vocab == 0 || dim == 0 || dim > n {
            return Err(Error::shape(
                "embedding table",
                [vocab, dim],
                format!("V ≥ 1 rows of 1..={n}"),
            ));
        }
        if rows_per_poly == 0 || rows_per_poly > n / dim {
            return Err(Error::out_of_range(
                format!("rows of {dim} per polynomial"),
                rows_per_poly,
                Dims::within(1, n / dim),
            ));
        }
        Ok(EmbeddingLayout {
            vocab,
            dim,
            rows_per_poly,
            poly_n: n,
        })
    }

    /// The densest packing, R = ⌊N/d⌋: the smallest setup, one response per token.
    pub fn densest(params: &HeParams, vocab: usize, dim: usize) -> Result<Self> {
        EmbeddingLayout::new(params, vocab, dim, (params.n() / dim.max(1)).max(1))
    }

    /// Coefficient stride between the rows of one polynomial, S = ⌊N/R⌋.
    pub fn stride(&self) -> usize {
        self.poly_n / self.rows_per_poly
    }

    /// Number of encrypted polynomials, ⌈V/R⌉.
    pub fn polys(&self) -> usize {
        self.vocab.div_ceil(self.rows_per_poly)
    }

    /// Tokens that share one response, T = ⌊S/d⌋.
    pub fn tokens_per_response(&self) -> usize {
        self.stride() / self.dim
    }

    /// Setup bytes from server to client (the polynomials; the header is framing).
    pub fn setup_bytes(&self, params: &HeParams) -> usize {
        self.polys() * (16 + 4 * params.rns().len() * self.poly_n)
    }

    /// Online bytes of a lookup of `tokens` ids (formula; equals what the channel measures).
    pub fn online_bytes(&self, params: &HeParams, tokens: usize) -> usize {
        let t = self.tokens_per_response();
        ONLINE_HEADER
            + (0..tokens.div_ceil(t))
                .map(|g| params.response_bytes((tokens - g * t).min(t) * self.dim))
                .sum::<usize>()
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| id as usize >= self.vocab) {
            Some(&id) => Err(Error::out_of_range(
                "token id",
                id as usize,
                Dims::Below(self.vocab),
            )),
            None => Ok(()),
        }
    }

    /// Revealed coefficients of a response holding `used` tokens.
    fn positions(&self, used: usize) -> Vec<u32> {
        (0..(used * self.dim) as u32).collect()
    }
}

/// The cache id binding a client's cache to (parameters, server key, table, layout): keyed
/// with [`SecretKey::cache_id_key`] as [`crate::cop::layer_digest`], so only the server can
/// compute it and the client cannot test a guess of the table.
pub fn table_digest(
    params: &HeParams,
    sk: &SecretKey,
    pk: &PublicKey,
    layout: &EmbeddingLayout,
    table: &[u64],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&sk.cache_id_key());
    h.update(b"embedding table v2");
    h.update(&params.fingerprint());
    h.update(&pk.digest());
    for v in [layout.vocab, layout.dim, layout.rows_per_poly] {
        h.update(&(v as u64).to_le_bytes());
    }
    h.update(bytemuck::cast_slice(table));
    *h.finalize().as_bytes()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SetupHeader {
    fingerprint: [u8; 8],
    digest: [u8; 32],
    layout: EmbeddingLayout,
}

/// Polynomials encrypted and sent per batch during setup (bounds the server's memory).
const SETUP_BATCH: usize = 32;

/// Server side of setup: `table` is V×d row-major.
pub fn server_setup(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    pk: &PublicKey,
    layout: &EmbeddingLayout,
    table: &[u64],
    seed: Seed,
) -> Result<()> {
    if table.len() != layout.vocab * layout.dim {
        return Err(Error::shape(
            "embedding table values",
            table.len(),
            [layout.vocab, layout.dim],
        ));
    }
    if layout.poly_n != params.n() {
        return Err(Error::shape(
            "embedding layout's ring degree",
            layout.poly_n,
            params.n(),
        ));
    }
    let header = SetupHeader {
        fingerprint: params.fingerprint(),
        digest: table_digest(params, sk, pk, layout, table),
        layout: *layout,
    };
    if !server_offer_setup(ch, &header)? {
        return Ok(());
    }
    let (r, s, d) = (layout.rows_per_poly, layout.stride(), layout.dim);
    let base = seed;
    for batch in (0..layout.polys()).collect::<Vec<_>>().chunks(SETUP_BATCH) {
        let cts: Vec<Result<_>> = batch
            .par_iter()
            .map(|&p| {
                let mut plain = vec![0u64; params.n()];
                for j in 0..r {
                    let row = p * r + j;
                    if row < layout.vocab {
                        plain[j * s..j * s + d].copy_from_slice(&table[row * d..(row + 1) * d]);
                    }
                }
                let mut rng = AesPrg::new(base.derive(p as u64));
                let seed = Seed::from_rng(&mut rng);
                encrypt_sk(params, sk, &plain, seed, &mut rng)
            })
            .collect();
        for ct in cts {
            let ct = ct?;
            ch.send(&ct.seed.0)?;
            ch.send_pod(ct.b.data())?;
        }
    }
    ch.flush()
}

/// A cached table as returned by setup: its file and the digest it must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedTable {
    /// The cache file.
    pub path: PathBuf,
    /// The server's keyed cache id of (parameters, server key, table, layout).
    pub digest: [u8; 32],
    /// The packing.
    pub layout: EmbeddingLayout,
}

/// The memory-mapped encrypted table.
#[derive(Debug)]
pub struct EncryptedTable {
    layout: EmbeddingLayout,
    file: SeededCiphertexts,
}

impl EmbeddingLayout {
    /// The header of this table's cache file.
    fn cache_header(&self, params: &HeParams, digest: [u8; 32]) -> CacheHeader {
        let shape = [self.vocab, self.dim, self.rows_per_poly].map(|v| v as u64);
        CacheHeader::new(
            params,
            CacheKind::EmbeddingTable,
            digest,
            shape,
            self.polys() as u64,
        )
    }
}

impl CachedTable {
    /// Maps the cache file, checking parameters, digest, layout and length.
    pub fn open(&self, params: &HeParams) -> Result<EncryptedTable> {
        let file =
            SeededCiphertexts::open(&self.path, params, CacheKind::EmbeddingTable, &self.digest)?;
        let want = self.layout.cache_header(params, self.digest);
        if file.header() != &want {
            return Err(Error::malformed(
                self.path.display().to_string(),
                format!("{:?}", file.header()),
                format!("{want:?}"),
            ));
        }
        Ok(EncryptedTable {
            layout: self.layout,
            file,
        })
    }
}

impl EncryptedTable {
    /// The packing.
    pub fn layout(&self) -> &EmbeddingLayout {
        &self.layout
    }

    /// Ciphertext `p` (NTT form; `a` expanded from its seed).
    fn ciphertext(&self, params: &HeParams, p: usize) -> Result<Ciphertext> {
        let b = RnsPoly::from_residues(params.rns(), self.file.b(p).to_vec(), Repr::Ntt)?;
        Ok(Ciphertext {
            c0: b,
            c1: expand_a(params, self.file.seed(p)),
        })
    }
}

/// Length of the cache file of an encrypted table with `layout` under `params`.
pub fn table_file_bytes(params: &HeParams, layout: &EmbeddingLayout) -> u64 {
    layout.cache_header(params, [0; 32]).file_bytes()
}

/// Client side of setup: returns the (new or reused) cache entry.
pub fn client_setup(
    ch: &mut Channel,
    params: &HeParams,
    cache_dir: &Path,
    name: &str,
) -> Result<CachedTable> {
    let header: SetupHeader = ch.recv_msg(1024)?;
    params.check_fingerprint(&header.fingerprint, "table")?;
    let l = header.layout;
    let layout = EmbeddingLayout::new(params, l.vocab, l.dim, l.rows_per_poly)?;
    if layout != l || l.vocab > 1 << 24 {
        return Err(Error::shape(
            "announced embedding layout",
            format!("{l:?}"),
            format!("{layout:?}, a vocabulary of at most 2^24"),
        ));
    }
    let cached = CachedTable {
        path: cache_path(cache_dir, name, &header.digest, "heem"),
        digest: header.digest,
        layout,
    };
    let have = cached.open(params).is_ok();
    client_answer_setup(ch, have)?;
    if have {
        return Ok(cached);
    }
    let ctx = params.rns();
    write_records(
        &cached.path,
        &layout.cache_header(params, header.digest),
        |rec| {
            ch.recv(rec)?;
            // Validates every residue before it reaches the cache.
            RnsPoly::from_residues(ctx, bytemuck::pod_collect_to_vec(&rec[16..]), Repr::Ntt)?;
            Ok(())
        },
    )?;
    Ok(cached)
}

const ONLINE_MAGIC: u32 = 0x454d_4231; // "EMB1"
const ONLINE_HEADER: usize = 16;

/// Client side of a lookup: sends the sealed rows, returns its share (k×d, row-major).
pub fn client_lookup(
    ch: &mut Channel,
    params: &HeParams,
    server_pk: &PublicKey,
    table: &EncryptedTable,
    ids: &[u32],
    seed: Seed,
) -> Result<Vec<u64>> {
    let layout = table.layout;
    layout.check_ids(ids)?;
    check_revealed(params, &layout, ids.len())?;
    let (d, s, r) = (layout.dim, layout.stride(), layout.rows_per_poly);
    let t = layout.tokens_per_response();
    let ctx = params.rns();
    let n = params.n();
    let base = seed;
    let sealed: Vec<Result<(Vec<u8>, Vec<u64>)>> = ids
        .par_chunks(t)
        .enumerate()
        .map(|(g, group)| {
            let mut sum = Ciphertext::zero(params);
            for (tau, &id) in group.iter().enumerate() {
                let (p, j) = (id as usize / r, id as usize % r);
                let mut ct = table.ciphertext(params, p)?;
                // X^{τd − jS}: X^{-k} = −X^{N−k} in Z[X]/(X^N + 1).
                let shift = (2 * n + tau * d - j * s) % (2 * n);
                let mut mono = vec![0i64; n];
                mono[shift % n] = if shift < n { 1 } else { -1 };
                let mut mono = RnsPoly::from_signed(ctx, &mono);
                mono.to_ntt(ctx);
                ct.c0.mul_assign(ctx, &mono);
                ct.c1.mul_assign(ctx, &mono);
                sum.add_assign(params, &ct);
            }
            let mut rng = AesPrg::new(base.derive(g as u64));
            let mask = rng.u64s(group.len() * d);
            let mut bytes = Vec::new();
            response::seal(
                params,
                server_pk,
                sum,
                &layout.positions(group.len()),
                &mask,
                Window::full(params),
                &mut rng,
                &mut bytes,
            )?;
            Ok((bytes, mask))
        })
        .collect();
    let mut msg = Vec::with_capacity(layout.online_bytes(params, ids.len()));
    msg.extend_from_slice(&response::message_head(ONLINE_MAGIC, params));
    msg.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    let mut share = Vec::with_capacity(ids.len() * d);
    for s in sealed {
        let (bytes, mask) = s?;
        msg.extend_from_slice(&bytes);
        share.extend_from_slice(&mask);
    }
    ch.send_bytes_framed(&msg)?;
    ch.flush()?;
    Ok(share)
}

/// Server side of a lookup of `tokens` ids: returns its share `E[id_t] − mask_t` (k×d).
pub fn server_lookup(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    layout: &EmbeddingLayout,
    tokens: usize,
) -> Result<Vec<u64>> {
    check_revealed(params, layout, tokens)?;
    let expect = layout.online_bytes(params, tokens);
    let msg = ch.recv_bytes_framed(expect)?;
    if msg.len() != expect {
        return Err(Error::malformed(
            "embedding message",
            Dims::Bytes(msg.len()),
            Dims::Bytes(expect),
        ));
    }
    response::check_message_head(&msg, ONLINE_MAGIC, params, "an embedding message")?;
    let k = u32::from_le_bytes(msg[12..16].try_into().unwrap()) as usize;
    if k != tokens {
        return Err(Error::shape("tokens in the lookup", k, tokens));
    }
    let t = layout.tokens_per_response();
    let mut ranges = Vec::new();
    let mut at = ONLINE_HEADER;
    for g in 0..tokens.div_ceil(t) {
        let used = (tokens - g * t).min(t);
        let len = params.response_bytes(used * layout.dim);
        ranges.push((used, at..at + len));
        at += len;
    }
    let opened: Vec<Result<Vec<u64>>> = ranges
        .into_par_iter()
        .map(|(used, range)| {
            let positions = layout.positions(used);
            response::open(params, sk, &msg[range], &positions, Window::full(params))
        })
        .collect();
    let mut out = Vec::with_capacity(tokens * layout.dim);
    for v in opened {
        out.extend_from_slice(&v?);
    }
    Ok(out)
}

/// The flooding covers at most `max_revealed` coefficients per call.
fn check_revealed(params: &HeParams, layout: &EmbeddingLayout, tokens: usize) -> Result<()> {
    if (tokens * layout.dim) as u64 > params.max_revealed() {
        return Err(Error::out_of_range(
            format!(
                "revealed coefficients of {tokens} tokens × {} (the flooding's bound)",
                layout.dim
            ),
            tokens * layout.dim,
            Dims::AtMost(params.max_revealed() as usize),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::Ring;

    fn keys(params: &HeParams) -> (SecretKey, PublicKey) {
        let mut rng = AesPrg::new(Seed([7; 16]));
        let sk = SecretKey::generate(params, &mut rng);
        let pk = PublicKey::generate(params, &sk, &mut rng);
        (sk, pk)
    }

    /// Runs setup + one lookup; returns (client share, server share, setup bytes S→C, online
    /// bytes C→S).
    fn run(
        params: &HeParams,
        layout: EmbeddingLayout,
        table: &[u64],
        ids: &[u32],
        cache: &Path,
    ) -> Result<(Vec<u64>, Vec<u64>, u64, u64)> {
        let (sk, pk) = keys(params);
        let (mut s_ch, mut c_ch) = Channel::mem_pair();
        let (sp, tab, n) = (params.clone(), table.to_vec(), ids.len());
        let server = std::thread::spawn(move || -> Result<(Vec<u64>, u64)> {
            s_ch.scope("setup", |ch| {
                server_setup(ch, &sp, &sk, &pk, &layout, &tab, Seed([1; 16]))
            })?;
            let share = server_lookup(&mut s_ch, &sp, &sk, &layout, n)?;
            Ok((share, s_ch.stats_of("setup").unwrap().bytes_sent))
        });
        let (_, pk) = keys(params);
        let cached = client_setup(&mut c_ch, params, cache, "emb")?;
        let enc = cached.open(params)?;
        let client = c_ch.scope("online", |ch| {
            client_lookup(ch, params, &pk, &enc, ids, Seed([2; 16]))
        })?;
        let online = c_ch.stats_of("online").unwrap().bytes_sent;
        let (server, setup) = server.join().unwrap()?;
        Ok((client, server, setup, online))
    }

    #[test]
    fn lookup_returns_shares_of_the_rows_at_every_packing() {
        let params = HeParams::default_params().unwrap();
        let ring = Ring::R64;
        let (vocab, dim) = (45, 700);
        let mut rng = AesPrg::new(Seed([3; 16]));
        let mut table = rng.u64s(vocab * dim);
        // Ring extremes and small values in a few rows.
        table[..dim].fill(u64::MAX);
        table[dim..2 * dim].fill(1 << 63);
        table[2 * dim..3 * dim].fill(0);
        let ids = [0u32, 44, 1, 2, 11, 12, 44, 0, 30];
        for r in [11, 5, 1] {
            let layout = EmbeddingLayout::new(&params, vocab, dim, r).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let (c, s, setup, online) = run(&params, layout, &table, &ids, dir.path()).unwrap();
            let got = ring.reconstruct_vec(&c, &s).unwrap();
            for (t, &id) in ids.iter().enumerate() {
                assert_eq!(
                    &got[t * dim..(t + 1) * dim],
                    &table[id as usize * dim..(id as usize + 1) * dim],
                    "R = {r}, token {t}"
                );
            }
            assert_eq!(
                setup as usize,
                layout.setup_bytes(&params) + setup_framing(&params, layout)
            );
            assert_eq!(online as usize, layout.online_bytes(&params, ids.len()) + 8);
            // The size setup checks the disk for is the cache file's.
            let entry = std::fs::read_dir(dir.path()).unwrap().next().unwrap();
            assert_eq!(
                entry.unwrap().metadata().unwrap().len(),
                table_file_bytes(&params, &layout)
            );
            // A second setup against the same cache sends no polynomials.
            let (_, _, again, _) = run(&params, layout, &table, &ids, dir.path()).unwrap();
            assert!(again < 200, "{again} bytes on a cache hit");
        }
    }

    /// The setup header message's size (postcard, with an 8-byte length) is not part of the formula.
    fn setup_framing(params: &HeParams, layout: EmbeddingLayout) -> usize {
        let header = SetupHeader {
            fingerprint: params.fingerprint(),
            digest: [0xff; 32],
            layout,
        };
        postcard::to_allocvec(&header).unwrap().len() + 8
    }

    #[test]
    fn bad_inputs_are_refused() {
        let params = HeParams::default_params().unwrap();
        assert!(EmbeddingLayout::new(&params, 10, 9000, 1).is_err());
        assert!(EmbeddingLayout::new(&params, 10, 768, 11).is_err());
        assert!(EmbeddingLayout::new(&params, 0, 768, 1).is_err());
        let layout = EmbeddingLayout::densest(&params, 10, 768).unwrap();
        assert_eq!(
            (layout.rows_per_poly, layout.tokens_per_response()),
            (10, 1)
        );
        assert!(layout.check_ids(&[9]).is_ok());
        assert!(matches!(
            layout.check_ids(&[10]),
            Err(Error::OutOfRange {
                got: Dims::Len(10),
                want: Dims::Below(10),
                ..
            })
        ));
        // A truncated or foreign online message.
        let (sk, _) = keys(&params);
        for bytes in [vec![0u8; 10], vec![0u8; layout.online_bytes(&params, 2)]] {
            let (mut a, mut b) = Channel::mem_pair();
            b.send_bytes_framed(&bytes).unwrap();
            b.flush().unwrap();
            assert!(matches!(
                server_lookup(&mut a, &params, &sk, &layout, 2),
                Err(Error::Malformed { .. })
            ));
        }
        // A corrupted cache file is refused, not used.
        let dir = tempfile::tempdir().unwrap();
        let table = vec![5u64; 10 * 768];
        run(&params, layout, &table, &[1], dir.path()).unwrap();
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        std::fs::write(file.path(), &bytes[..bytes.len() - 4]).unwrap();
        let cached = CachedTable {
            path: file.path(),
            digest: bytes[16..48].try_into().unwrap(),
            layout,
        };
        assert!(matches!(cached.open(&params), Err(Error::Malformed { .. })));
    }
}
