//! The client's on-disk caches of encrypted server data — a COP layer's weights, the embedding
//! table — in one file format: the seeded ciphertexts as the server sent them, (seed, b) per
//! ciphertext; `a` is expanded from its seed when the data is used, so a cache is half the size
//! of the expanded ciphertexts.
//!
//! File format (little-endian): a 96-byte header
//! `"HECTv003" | params fingerprint [8] | digest [32] | kind u32 | limbs u32 | N u32 | 0 u32 |
//! shape [3 × u64] | records u64 | zero padding`, then `records` records of a 16-byte seed and
//! the L·N residues of `b` (NTT form). The kind says what the shape means ([`CacheKind`]); the
//! digest binds the file to the parameters, the packing, the server's key and the data, so a
//! stale cache is never used. Files are memory-mapped one at a time.
use crate::layout::CopLayout;
use crate::matrix::MatDims;
use crate::params::HeParams;
use mpc_core::{Channel, Dims, Error, Result, Seed};
use std::fs::File;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HECTv003";
/// Header bytes (a multiple of 4 so the residues stay aligned).
pub const HEADER_BYTES: usize = 96;
/// The most records a header may announce (a BERT-base layer has a few thousand; the largest
/// embedding table a few hundred thousand).
const MAX_RECORDS: u64 = 1 << 24;

/// What a cache file holds, and so what its three shape numbers mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// A COP layer's encrypted weights: (m, n, rows per ciphertext), records in the order of
    /// [`CopLayout`] (chunk-major).
    CopLayer,
    /// The encrypted embedding table: (vocab, dim, rows per polynomial), records in the
    /// table's polynomial order.
    EmbeddingTable,
}

impl CacheKind {
    fn tag(self) -> u32 {
        match self {
            CacheKind::CopLayer => 1,
            CacheKind::EmbeddingTable => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CacheKind::CopLayer => "an encrypted-weights file",
            CacheKind::EmbeddingTable => "an encrypted embedding table",
        }
    }
}

/// The header of a cache file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheHeader {
    /// What the file holds.
    pub kind: CacheKind,
    /// Parameter fingerprint.
    pub fingerprint: [u8; 8],
    /// The server's keyed cache id of (parameters, packing, server key, data).
    pub digest: [u8; 32],
    /// The packing's three numbers, read as [`CacheKind`] says.
    pub shape: [u64; 3],
    /// RNS limbs.
    pub limbs: usize,
    /// Ring degree N.
    pub poly_n: usize,
    /// Records (ciphertexts) in the file.
    pub records: u64,
}

impl CacheHeader {
    /// The header of `records` ciphertexts of `kind` packed as `shape` under `params`.
    pub fn new(
        params: &HeParams,
        kind: CacheKind,
        digest: [u8; 32],
        shape: [u64; 3],
        records: u64,
    ) -> CacheHeader {
        CacheHeader {
            kind,
            fingerprint: params.fingerprint(),
            digest,
            shape,
            limbs: params.rns().len(),
            poly_n: params.n(),
            records,
        }
    }

    /// The header of a COP layer packed as `layout`.
    pub fn cop_layer(params: &HeParams, digest: [u8; 32], layout: &CopLayout) -> CacheHeader {
        let shape = [layout.m, layout.n, layout.rows_per_ct].map(|v| v as u64);
        let records = layout.ciphertexts() as u64;
        CacheHeader::new(params, CacheKind::CopLayer, digest, shape, records)
    }

    /// Bytes of one record: the seed and `b`.
    pub fn record_bytes(&self) -> usize {
        16 + 4 * self.limbs * self.poly_n
    }

    /// Length of the file (saturating: a decoded header may be malformed).
    pub fn file_bytes(&self) -> u64 {
        self.records
            .saturating_mul(self.record_bytes() as u64)
            .saturating_add(HEADER_BYTES as u64)
    }

    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.fingerprint);
        h[16..48].copy_from_slice(&self.digest);
        h[48..52].copy_from_slice(&self.kind.tag().to_le_bytes());
        h[52..56].copy_from_slice(&(self.limbs as u32).to_le_bytes());
        h[56..60].copy_from_slice(&(self.poly_n as u32).to_le_bytes());
        for (i, v) in self.shape.iter().chain([&self.records]).enumerate() {
            h[64 + 8 * i..72 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    /// Reads a header of `kind` written under `params`.
    fn decode(h: &[u8], params: &HeParams, kind: CacheKind, path: &Path) -> Result<CacheHeader> {
        let bad = |got: Dims, want: Dims| Error::malformed(path.display().to_string(), got, want);
        if h.len() < HEADER_BYTES || &h[..8] != MAGIC {
            return Err(bad(
                "a short file, a bad magic or an older version".into(),
                kind.name().into(),
            ));
        }
        let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        if u32_at(48) != kind.tag() {
            return Err(bad(
                format!("a cache file of kind {}", u32_at(48)).into(),
                kind.name().into(),
            ));
        }
        let fingerprint: [u8; 8] = h[8..16].try_into().unwrap();
        if fingerprint != params.fingerprint()
            || u32_at(52) as usize != params.rns().len()
            || u32_at(56) as usize != params.n()
        {
            return Err(Error::ParamMismatch(format!(
                "{} was written for other HE parameters",
                path.display()
            )));
        }
        let records = u64_at(88);
        if records > MAX_RECORDS {
            return Err(bad(
                Dims::Len(records as usize),
                Dims::AtMost(MAX_RECORDS as usize),
            ));
        }
        Ok(CacheHeader {
            kind,
            fingerprint,
            digest: h[16..48].try_into().unwrap(),
            shape: [u64_at(64), u64_at(72), u64_at(80)],
            limbs: params.rns().len(),
            poly_n: params.n(),
            records,
        })
    }
}

/// Writes a cache file: the header, then `header.records` records (each
/// [`CacheHeader::record_bytes`] long, validated by the caller) pulled one at a time, so the
/// client never holds the whole layer or table.
pub fn write_records(
    path: &Path,
    header: &CacheHeader,
    mut next_record: impl FnMut(&mut [u8]) -> Result<()>,
) -> Result<()> {
    use std::io::Write;
    write_cache_file(path, header.file_bytes(), |f| {
        f.write_all(&header.encode())?;
        let mut rec = vec![0u8; header.record_bytes()];
        for _ in 0..header.records {
            next_record(&mut rec)?;
            f.write_all(&rec)?;
        }
        Ok(())
    })
}

/// A memory-mapped cache file of seeded ciphertexts, checked against its parameters, kind,
/// digest and length.
#[derive(Debug)]
pub struct SeededCiphertexts {
    header: CacheHeader,
    map: memmap2::Mmap,
}

impl SeededCiphertexts {
    /// Maps `path` and checks it holds `kind` under `params` with `digest`, complete.
    pub fn open(
        path: &Path,
        params: &HeParams,
        kind: CacheKind,
        digest: &[u8; 32],
    ) -> Result<SeededCiphertexts> {
        let file = File::open(path)?;
        // SAFETY: the cache file is private to this client and not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let header = CacheHeader::decode(&map, params, kind, path)?;
        if &header.digest != digest {
            return Err(Error::ParamMismatch(format!(
                "{} holds other data or another server key",
                path.display()
            )));
        }
        let want = header.file_bytes();
        if map.len() as u64 != want {
            return Err(Error::malformed(
                path.display().to_string(),
                Dims::Bytes(map.len()),
                Dims::Bytes(want as usize),
            ));
        }
        Ok(SeededCiphertexts { header, map })
    }

    /// The header.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    fn record(&self, ct: usize) -> &[u8] {
        let len = self.header.record_bytes();
        let at = HEADER_BYTES + ct * len;
        &self.map[at..at + len]
    }

    /// The seed of ciphertext `ct`'s `a`.
    pub fn seed(&self, ct: usize) -> Seed {
        Seed(self.record(ct)[..16].try_into().unwrap())
    }

    /// The residues of ciphertext `ct`'s `b` (NTT form, limb-major; validated when written).
    pub fn b(&self, ct: usize) -> &[u32] {
        // Records start at 96 + ct·(16 + 4LN) bytes of a page-aligned map: 4-byte aligned.
        bytemuck::cast_slice(&self.record(ct)[16..])
    }
}

/// Writes a cache file of `len` bytes atomically: refuses up front, with the sizes in the
/// error, when the file system holding `path` has less than `len` bytes free (a BERT-base
/// cache is 29 GB; failing after half of it would waste the setup so far), writes through
/// `fill` into `path` with the extension `tmp`, syncs and renames. On any error the temporary
/// file is removed, so a failed setup leaves only complete entries behind (and a rerun reuses
/// them).
pub fn write_cache_file(
    path: &Path,
    len: u64,
    fill: impl FnOnce(&mut std::io::BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    check_free_space(dir, len, path)?;
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::io::BufWriter::with_capacity(8 << 20, File::create(&tmp)?);
        fill(&mut f)?;
        f.into_inner()
            .map_err(|e| Error::Io(e.into_error()))?
            .sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if written.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Length of the cache file of a layer packed as `layout` under `params`.
pub fn layer_file_bytes(params: &HeParams, layout: CopLayout) -> u64 {
    CacheHeader::cop_layer(params, [0; 32], &layout).file_bytes()
}

/// Bytes available to this user on the file system holding `dir` (which must exist), the
/// figure [`write_cache_file`] checks against; `None` where no portable query exists.
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Result<Option<u64>> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
}

/// Other platforms: no portable free-space query; a full disk surfaces as the write's error
/// (and the temporary file is still removed).
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Result<Option<u64>> {
    Ok(None)
}

/// Errors with [`std::io::ErrorKind::StorageFull`] when `dir`'s file system has fewer than
/// `len` bytes available to this user.
fn check_free_space(dir: &Path, len: u64, path: &Path) -> Result<()> {
    let Some(free) = free_bytes(dir)? else {
        return Ok(());
    };
    if free < len {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "the cache entry {} needs {:.2} GB, its file system has {:.2} GB free \
                 (free space or choose another --cache-dir; complete entries are reused)",
                path.display(),
                len as f64 / 1e9,
                free as f64 / 1e9
            ),
        )));
    }
    Ok(())
}

/// A memory-mapped layer file.
#[derive(Debug)]
pub struct EncryptedLayer {
    file: SeededCiphertexts,
    layout: CopLayout,
}

impl EncryptedLayer {
    /// Opens and checks a layer file against the expected parameters and digest.
    pub fn open(path: &Path, params: &HeParams, digest: &[u8; 32]) -> Result<EncryptedLayer> {
        let file = SeededCiphertexts::open(path, params, CacheKind::CopLayer, digest)?;
        let bad = |got: Dims, want: Dims| Error::malformed(path.display().to_string(), got, want);
        let [m, n, rows_per_ct] = file.header().shape;
        if m == 0 || n == 0 || m > 1 << 20 || n > 1 << 20 || rows_per_ct > 1 << 20 {
            return Err(bad(
                Dims::Shape(vec![m as usize, n as usize]),
                "a layer of 1..=2^20 × 1..=2^20".into(),
            ));
        }
        let w = MatDims {
            rows: m as usize,
            cols: n as usize,
        };
        let layout = CopLayout::new(params, w, rows_per_ct as usize).map_err(|e| {
            bad(
                e.to_string().into(),
                "a layout these parameters allow".into(),
            )
        })?;
        if layout.ciphertexts() as u64 != file.header().records {
            return Err(bad(
                Dims::Len(file.header().records as usize),
                Dims::Len(layout.ciphertexts()),
            ));
        }
        Ok(EncryptedLayer { file, layout })
    }

    /// The header.
    pub fn header(&self) -> &CacheHeader {
        self.file.header()
    }

    /// The packing.
    pub fn layout(&self) -> &CopLayout {
        &self.layout
    }

    /// The seed of ciphertext `ct`'s `a`.
    pub fn seed(&self, ct: usize) -> Seed {
        self.file.seed(ct)
    }

    /// The residues of ciphertext `ct`'s `b` (NTT form, limb-major; validated when written).
    pub fn b(&self, ct: usize) -> &[u32] {
        self.file.b(ct)
    }
}

/// A cached layer as returned by setup: its file and the digest it must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedLayer {
    /// The layer file.
    pub path: PathBuf,
    /// The server's keyed cache id of (parameters, server key, weights).
    pub digest: [u8; 32],
}

impl CachedLayer {
    /// Maps the layer, checking parameters, digest and length.
    pub fn open(&self, params: &HeParams) -> Result<EncryptedLayer> {
        EncryptedLayer::open(&self.path, params, &self.digest)
    }
}

/// Where a layer's cache lives: `dir/<name>-<digest prefix>.helw`.
pub fn layer_path(dir: &Path, name: &str, digest: &[u8; 32]) -> PathBuf {
    cache_path(dir, name, digest, "helw")
}

/// Where a cache entry lives: `dir/<name>-<digest prefix>.<ext>`.
pub fn cache_path(dir: &Path, name: &str, digest: &[u8; 32], ext: &str) -> PathBuf {
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}-{hex}.{ext}"))
}

/// Server side of a cached setup's first two flights: sends `header` (which carries the digest
/// the client's cache is keyed by) and returns whether the client needs the data.
pub fn server_offer_setup<T: serde::Serialize>(ch: &mut Channel, header: &T) -> Result<bool> {
    ch.send_msg(header)?;
    let mut need = [0u8; 1];
    ch.recv(&mut need)?;
    match need[0] {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(Error::malformed("setup reply byte", b as usize, "0 or 1")),
    }
}

/// Client side: answers whether its cache already holds the offered data.
pub fn client_answer_setup(ch: &mut Channel, have: bool) -> Result<()> {
    ch.send(&[u8::from(!have)])?;
    if have {
        ch.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cache_files_are_complete_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("entry.helw");
        let listing = || std::fs::read_dir(path.parent().unwrap()).unwrap().count();

        // A failing writer leaves neither the entry nor its temporary file.
        let failed = write_cache_file(&path, 8, |f| {
            f.write_all(b"half")?;
            Err(Error::Disconnected)
        });
        assert!(matches!(failed, Err(Error::Disconnected)));
        assert_eq!(listing(), 0);

        // More than any file system holds: refused before anything is created.
        #[cfg(unix)]
        match write_cache_file(&path, u64::MAX, |_| unreachable!("no space, no write")) {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
                assert!(e.to_string().contains("GB free"), "{e}");
            }
            other => panic!("expected a storage-full error, got {other:?}"),
        }
        assert_eq!(listing(), 0);

        write_cache_file(&path, 8, |f| Ok(f.write_all(b"complete")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"complete");
        assert_eq!(listing(), 1);
    }

    #[test]
    fn one_format_for_layers_and_tables_and_each_kind_refuses_the_other() {
        let params = HeParams::default_params().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.cache");
        let digest = [7u8; 32];
        let header = CacheHeader::new(&params, CacheKind::EmbeddingTable, digest, [10, 4, 2], 3);
        let mut n = 0u8;
        write_records(&path, &header, |rec| {
            rec.fill(n);
            n += 1;
            Ok(())
        })
        .unwrap();
        let file =
            SeededCiphertexts::open(&path, &params, CacheKind::EmbeddingTable, &digest).unwrap();
        assert_eq!(file.header(), &header);
        assert_eq!(file.seed(2), Seed([2; 16]));
        assert_eq!(file.b(1).len(), params.rns().len() * params.n());
        // The same file read as a COP layer, under another digest, or cut short: refused.
        match SeededCiphertexts::open(&path, &params, CacheKind::CopLayer, &digest) {
            Err(Error::Malformed { what, .. }) => assert!(what.contains("entry.cache"), "{what}"),
            other => panic!("a table opened as a layer: {other:?}"),
        }
        assert!(matches!(
            SeededCiphertexts::open(&path, &params, CacheKind::EmbeddingTable, &[8; 32]),
            Err(Error::ParamMismatch(_))
        ));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 1).unwrap();
        match SeededCiphertexts::open(&path, &params, CacheKind::EmbeddingTable, &digest) {
            Err(Error::Malformed { got, want, .. }) => {
                assert_eq!(
                    (got, want),
                    (Dims::Bytes(len as usize - 1), Dims::Bytes(len as usize))
                )
            }
            other => panic!("a truncated file: {other:?}"),
        }
        // A header announcing an absurd number of records is refused before any size is used.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[88..96].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            SeededCiphertexts::open(&path, &params, CacheKind::EmbeddingTable, &digest),
            Err(Error::Malformed { .. })
        ));
    }
}
