//! The client's cache directory (the server's encrypted weights, reused across runs) and the
//! server's key seed.
use super::public::PublicModel;
use super::EmbeddingMode;
use he_linear::embedding::{self, EmbeddingLayout};
use he_linear::params::HeParams;
use he_linear::weight_store;
use mpc_core::{Error, Result, Seed};
use std::path::{Path, PathBuf};

/// Refuses, before any weight is sent, a setup whose cache cannot fit in `cache_dir`: the
/// encrypted weights need at least one ciphertext per weight row (layers of at most N columns,
/// as in BERT-base and -large, need exactly that) and the private embedding table; entries
/// already in the directory may be reused, so the check is need ≤ free space + their size and
/// never refuses a setup that could succeed. (`write_cache_file` still checks each file.)
pub(crate) fn check_cache_room(params: &HeParams, public: &PublicModel, cache_dir: &Path) -> Result<()> {
    let c = &public.config;
    let d = c.hidden_size;
    let rows_per_layer = [d, d, d, c.intermediate_size];
    let per_layer = rows_per_layer
        .iter()
        .map(|&m| weight_store::layer_file_bytes(params, m, 1))
        .fold(0u64, u64::saturating_add);
    let mut need = per_layer
        .saturating_mul(c.num_hidden_layers as u64)
        .saturating_add(weight_store::layer_file_bytes(params, d, 1));
    if public.embedding == EmbeddingMode::Server {
        let layout = EmbeddingLayout::densest(params, c.vocab_size, d)?;
        need = need.saturating_add(embedding::table_file_bytes(params, &layout));
    }
    std::fs::create_dir_all(cache_dir)?;
    let Some(free) = weight_store::free_bytes(cache_dir)? else {
        return Ok(());
    };
    let mut existing = 0u64;
    for entry in std::fs::read_dir(cache_dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            existing += meta.len();
        }
    }
    if need > free.saturating_add(existing) {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "the encrypted weights need at least {:.1} GB in {}; its file system has \
                 {:.1} GB free and the directory's entries (reused where they match) hold \
                 {:.1} GB: free space or choose another --cache-dir",
                need as f64 / 1e9,
                cache_dir.display(),
                free as f64 / 1e9,
                existing as f64 / 1e9
            ),
        )));
    }
    Ok(())
}
/// The server's key seed in `path` (16 bytes, created with a fresh random seed and mode 0600
/// when absent). It is the server's long-term secret: whoever reads it decrypts every
/// response, so it never leaves the server's side.
pub fn load_or_create_key_seed(path: &Path) -> Result<Seed> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 16] = bytes.as_slice().try_into().map_err(|_| {
                Error::Malformed(format!("{}: a key seed is 16 bytes", path.display()))
            })?;
            Ok(Seed(seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let seed = Seed::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(path)?, &seed.0)?;
            Ok(seed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Where a model's encrypted weights are cached by default.
pub fn default_cache_dir(model: &str) -> PathBuf {
    PathBuf::from("target/bench-cache/secure").join(model)
}
