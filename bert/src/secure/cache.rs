//! The client's cache directory (the server's encrypted weights, reused across runs) and the
//! server's key seed.
use super::public::PublicModel;
use super::EmbeddingMode;
use he_linear::embedding::{self, EmbeddingLayout};
use he_linear::layout::{CopLayout, Packing};
use he_linear::matrix::MatDims;
use he_linear::params::HeParams;
use he_linear::weight_store;
use mpc_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Refuses, before any weight is sent, a setup whose cache cannot fit in `cache_dir`: the
/// encrypted weights need at least the compactest packing of every layer
/// ([`Packing::Compact`], the server's default) and the private embedding table; entries
/// already in the directory may be reused, so the check is need ≤ free space + their size and
/// never refuses a setup that could succeed. (`write_cache_file` still checks each file.)
pub(crate) fn check_cache_room(
    params: &HeParams,
    public: &PublicModel,
    cache_dir: &Path,
) -> Result<()> {
    let c = &public.config;
    let d = c.hidden_size;
    let least = |m: usize, n: usize| -> Result<u64> {
        let layout = CopLayout::choose(params, MatDims { rows: m, cols: n }, Packing::Compact)?;
        Ok(weight_store::layer_file_bytes(params, layout))
    };
    let i = c.intermediate_size;
    let mut per_layer = 0u64;
    // The folded shapes (`fold`): [diag(γ) | Q | K | V], O, [diag(γ) | W_up], W_down.
    for (m, n) in [(d, 4 * d), (d, d), (d, d + i), (i, d)] {
        per_layer = per_layer.saturating_add(least(m, n)?);
    }
    let mut need = per_layer
        .saturating_mul(c.num_hidden_layers as u64)
        .saturating_add(least(d, public.classes)?);
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

/// Where a model's encrypted weights are cached by default.
pub fn default_cache_dir(model: &str) -> PathBuf {
    PathBuf::from("target/bench-cache/secure").join(model)
}
