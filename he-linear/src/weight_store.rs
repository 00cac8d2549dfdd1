//! The client's on-disk cache of one layer's encrypted weights, in the kernel's panel layout.
//!
//! File format (little-endian): a 96-byte header
//! `"HELWv001" | params fingerprint [8] | layer digest [32] | m u64 | n u64 | cts_per_row u32 |
//! limbs u32 | N u32 | zero padding`, then G = cts_per_row·2·limbs column groups, group
//! g = (chunk·2 + part)·limbs + limb, each `[block][μ][8]` u32 residues (m·N values). The digest
//! binds the file to the parameters, the server's key and the weights, so a stale cache is never
//! used. Layers are memory-mapped one at a time: the client never holds more than one layer.
use crate::kernel::scatter_row;
use crate::params::HeParams;
use mpc_core::{Channel, Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HELWv001";
/// Header bytes (a multiple of 4 so the residues stay aligned).
pub const HEADER_BYTES: usize = 96;

/// What a layer file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerHeader {
    /// Parameter fingerprint.
    pub fingerprint: [u8; 8],
    /// The server's keyed cache id of (parameters, server key, weights).
    pub digest: [u8; 32],
    /// Rows of W (inner dimension).
    pub m: usize,
    /// Columns of W.
    pub n: usize,
    /// Ciphertexts per row, ⌈n/N⌉.
    pub cts_per_row: usize,
    /// RNS limbs.
    pub limbs: usize,
    /// Ring degree.
    pub poly_n: usize,
}

impl LayerHeader {
    /// The header of an m × n weight matrix encrypted under `params`.
    pub fn new(params: &HeParams, digest: [u8; 32], m: usize, n: usize) -> LayerHeader {
        LayerHeader {
            fingerprint: params.fingerprint(),
            digest,
            m,
            n,
            cts_per_row: n.div_ceil(params.n()),
            limbs: params.rns().len(),
            poly_n: params.n(),
        }
    }

    /// Length of the layer file (saturating: a decoded header may be malformed).
    pub fn file_bytes(&self) -> u64 {
        [self.cts_per_row, 2, self.limbs, self.m, self.poly_n, 4]
            .into_iter()
            .fold(1u64, |acc, f| acc.saturating_mul(f as u64))
            .saturating_add(HEADER_BYTES as u64)
    }

    /// Number of column groups.
    pub fn groups(&self) -> usize {
        self.cts_per_row * 2 * self.limbs
    }

    /// Residues per group.
    pub fn group_len(&self) -> usize {
        self.m * self.poly_n
    }

    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.fingerprint);
        h[16..48].copy_from_slice(&self.digest);
        h[48..56].copy_from_slice(&(self.m as u64).to_le_bytes());
        h[56..64].copy_from_slice(&(self.n as u64).to_le_bytes());
        h[64..68].copy_from_slice(&(self.cts_per_row as u32).to_le_bytes());
        h[68..72].copy_from_slice(&(self.limbs as u32).to_le_bytes());
        h[72..76].copy_from_slice(&(self.poly_n as u32).to_le_bytes());
        h
    }

    fn decode(h: &[u8], path: &Path) -> Result<LayerHeader> {
        let bad = |what: &str| Error::Malformed(format!("{}: {what}", path.display()));
        if h.len() < HEADER_BYTES || &h[..8] != MAGIC {
            return Err(bad("not an encrypted-weights file (bad magic)"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap()) as usize;
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap()) as usize;
        Ok(LayerHeader {
            fingerprint: h[8..16].try_into().unwrap(),
            digest: h[16..48].try_into().unwrap(),
            m: u64_at(48),
            n: u64_at(56),
            cts_per_row: u32_at(64),
            limbs: u32_at(68),
            poly_n: u32_at(72),
        })
    }
}

/// A layer's panels being filled row by row during setup (one layer in memory).
#[derive(Debug)]
pub struct LayerBuilder {
    header: LayerHeader,
    groups: Vec<Vec<u32>>,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new(header: LayerHeader) -> LayerBuilder {
        let groups = (0..header.groups())
            .map(|_| vec![0u32; header.group_len()])
            .collect();
        LayerBuilder { header, groups }
    }

    /// Stores row `mu` of group `g` (N residues).
    pub fn put_row(&mut self, g: usize, mu: usize, row: &[u32]) {
        scatter_row(row, mu, self.header.m, &mut self.groups[g]);
    }

    /// Writes the file atomically ([`write_cache_file`]).
    pub fn write(self, path: &Path) -> Result<()> {
        write_cache_file(path, self.header.file_bytes(), |f| {
            f.write_all(&self.header.encode())?;
            for g in &self.groups {
                f.write_all(bytemuck::cast_slice(g))?;
            }
            Ok(())
        })
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

/// Length of the cache file of an m × n layer under `params`.
pub fn layer_file_bytes(params: &HeParams, m: usize, n: usize) -> u64 {
    LayerHeader::new(params, [0; 32], m, n).file_bytes()
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
    header: LayerHeader,
    map: memmap2::Mmap,
}

impl EncryptedLayer {
    /// Opens and checks a layer file against the expected parameters and digest.
    pub fn open(path: &Path, params: &HeParams, digest: &[u8; 32]) -> Result<EncryptedLayer> {
        let file = File::open(path)?;
        // SAFETY: the cache file is private to this client and not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let header = LayerHeader::decode(&map, path)?;
        if header.fingerprint != params.fingerprint()
            || header.limbs != params.rns().len()
            || header.poly_n != params.n()
        {
            return Err(Error::ParamMismatch(format!(
                "{} was written for other HE parameters",
                path.display()
            )));
        }
        if &header.digest != digest {
            return Err(Error::ParamMismatch(format!(
                "{} holds other weights or another server key",
                path.display()
            )));
        }
        let want = header.file_bytes();
        if map.len() as u64 != want {
            return Err(Error::Malformed(format!(
                "{}: {} bytes, expected {want} (truncated?)",
                path.display(),
                map.len()
            )));
        }
        Ok(EncryptedLayer { header, map })
    }

    /// The header.
    pub fn header(&self) -> &LayerHeader {
        &self.header
    }

    /// Panels of column group `g`.
    pub fn group(&self, g: usize) -> &[u32] {
        let len = self.header.group_len() * 4;
        let at = HEADER_BYTES + g * len;
        bytemuck::cast_slice(&self.map[at..at + len])
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
        b => Err(Error::Malformed(format!("setup reply byte {b}"))),
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
}
