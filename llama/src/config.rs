//! The decoder's shape, read from a GGUF file's `llama.*` metadata.

use crate::error::LlamaError;
use crate::gguf::GgufFile;

/// Largest dimension accepted from a file: far above any real model, small enough that products
/// of two dimensions cannot overflow and a hostile file cannot ask for absurd buffers.
const MAX_DIMENSION: usize = 1 << 20;

/// Shape and constants of a LLaMA-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Model width (`llama.embedding_length`).
    pub hidden: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`; grouped-query attention when fewer).
    pub n_kv_heads: usize,
    /// Size of one head (`hidden / n_heads`).
    pub head_dim: usize,
    /// SwiGLU inner width (`llama.feed_forward_length`).
    pub ffn: usize,
    /// Vocabulary size (length of `tokenizer.ggml.tokens`).
    pub vocab: usize,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// Rotary base (`llama.rope.freq_base`, 10 000 when absent as in llama.cpp).
    pub rope_base: f32,
    /// Maximum sequence length (`llama.context_length`).
    pub context: usize,
}

impl LlamaConfig {
    /// Reads and validates the configuration of a `general.architecture = llama` file.
    pub fn from_gguf(gguf: &GgufFile) -> Result<LlamaConfig, LlamaError> {
        let bad = |key: &str, what: String| LlamaError::Metadata {
            path: gguf.path().to_path_buf(),
            key: key.into(),
            what,
        };
        let arch = gguf.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(bad(
                "general.architecture",
                format!("{arch:?} is not supported (only \"llama\")"),
            ));
        }
        let dim = |key: &str| -> Result<usize, LlamaError> {
            let v = gguf.get_usize(key)?;
            if v == 0 || v > MAX_DIMENSION {
                return Err(bad(key, format!("{v} is outside 1..={MAX_DIMENSION}")));
            }
            Ok(v)
        };
        let n_layers = dim("llama.block_count")?;
        let hidden = dim("llama.embedding_length")?;
        let n_heads = dim("llama.attention.head_count")?;
        let n_kv_heads = match gguf.get("llama.attention.head_count_kv") {
            Some(_) => dim("llama.attention.head_count_kv")?,
            None => n_heads,
        };
        let ffn = dim("llama.feed_forward_length")?;
        let context = dim("llama.context_length")?;
        let rms_eps = gguf.get_f32("llama.attention.layer_norm_rms_epsilon")?;
        let rope_base = match gguf.get("llama.rope.freq_base") {
            Some(_) => gguf.get_f32("llama.rope.freq_base")?,
            None => 10_000.0,
        };
        let vocab = gguf.get_array("tokenizer.ggml.tokens")?.len();
        if vocab == 0 || vocab > MAX_DIMENSION {
            return Err(bad(
                "tokenizer.ggml.tokens",
                format!("{vocab} tokens is outside 1..={MAX_DIMENSION}"),
            ));
        }
        if hidden % n_heads != 0 {
            return Err(bad(
                "llama.attention.head_count",
                format!("{n_heads} heads do not divide the width {hidden}"),
            ));
        }
        let head_dim = hidden / n_heads;
        if head_dim % 2 != 0 {
            return Err(bad(
                "llama.attention.head_count",
                format!("head size {head_dim} is odd: rotary needs pairs"),
            ));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(bad(
                "llama.attention.head_count_kv",
                format!("{n_kv_heads} key/value heads do not divide {n_heads} query heads"),
            ));
        }
        if let Some(rope_dims) = gguf.get("llama.rope.dimension_count") {
            if rope_dims.as_u64() != Some(head_dim as u64) {
                return Err(bad(
                    "llama.rope.dimension_count",
                    format!(
                        "{rope_dims:?}: partial rotary is not supported (head size {head_dim})"
                    ),
                ));
            }
        }
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(bad(
                "llama.attention.layer_norm_rms_epsilon",
                format!("{rms_eps} is not a positive number"),
            ));
        }
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(bad(
                "llama.rope.freq_base",
                format!("{rope_base} is not a base above 1"),
            ));
        }
        Ok(LlamaConfig {
            n_layers,
            hidden,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn,
            vocab,
            rms_eps,
            rope_base,
            context,
        })
    }

    /// Query heads sharing one key/value head.
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Width of the key (and value) projection: `n_kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
