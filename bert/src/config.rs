//! Model configuration: the BERT shapes, built in (bert-base, bert-large) or read from a model
//! directory's `config.json` (Hugging Face format).
use mpc_core::{Dims, Error, Result};
use std::path::Path;

/// Upper bounds on every size a configuration announces ([`BertConfig::validate`]). A client
/// receives the configuration from the server and allocates by it, so each bound keeps a
/// hostile announcement to a typed error instead of an overflow or a huge allocation; all are
/// far above BERT-large and the multilingual vocabularies.
pub mod limits {
    /// Vocabulary rows (2^20; bert-base has 30 522, multilingual models 250 002).
    pub const VOCAB: usize = 1 << 20;
    /// Hidden size d.
    pub const HIDDEN: usize = 8192;
    /// Transformer blocks.
    pub const LAYERS: usize = 128;
    /// Attention heads.
    pub const HEADS: usize = 128;
    /// Feed-forward width.
    pub const INTERMEDIATE: usize = 32768;
    /// Position-embedding rows (the longest sequence).
    pub const POSITIONS: usize = 8192;
    /// Token-type rows.
    pub const TYPE_VOCAB: usize = 1024;
    /// Values of any one weight table (an embedding table, a layer's d × intermediate):
    /// 2^28, 2 GiB of 64-bit shares.
    pub const TABLE_VALUES: usize = 1 << 28;
}

/// The shape of a BERT encoder.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word-embedding table).
    pub vocab_size: usize,
    /// Hidden size d.
    pub hidden_size: usize,
    /// Number of Transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of attention heads (divides `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position-embedding table (longest sequence).
    pub max_position_embeddings: usize,
    /// Rows of the token-type-embedding table.
    pub type_vocab_size: usize,
    /// LayerNorm ε.
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// bert-base-uncased: 12 layers, hidden 768, 12 heads, intermediate 3072.
    pub fn bert_base() -> BertConfig {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// bert-large-uncased: 24 layers, hidden 1024, 16 heads, intermediate 4096.
    pub fn bert_large() -> BertConfig {
        BertConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            ..BertConfig::bert_base()
        }
    }

    /// bert-tiny (google/bert_uncased_L-2_H-128_A-2): 2 layers, hidden 128, 2 heads,
    /// intermediate 512, the uncased vocabulary.
    pub fn bert_tiny() -> BertConfig {
        BertConfig {
            hidden_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 512,
            ..BertConfig::bert_base()
        }
    }

    /// A tiny configuration for fast tests (2 layers, hidden 32, 4 heads, intermediate 64).
    pub fn tiny() -> BertConfig {
        BertConfig {
            vocab_size: 128,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// Reads `config.json` from a Hugging Face model directory.
    pub fn from_model_dir(dir: &Path) -> Result<BertConfig> {
        let path = dir.join("config.json");
        let text = mpc_core::error::read_file_text(&path)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::malformed(path.display().to_string(), e.to_string(), "JSON"))?;
        let field = |name: &str| -> Result<usize> {
            value
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    Error::malformed(
                        format!("{}: field `{name}`", path.display()),
                        "a missing or non-integer field",
                        "an integer",
                    )
                })
        };
        if let Some(act) = value.get("hidden_act").and_then(serde_json::Value::as_str) {
            if act != "gelu" {
                return Err(Error::malformed(
                    format!("{}: hidden_act", path.display()),
                    format!("`{act}` (not supported)"),
                    "`gelu` (exact)",
                ));
            }
        }
        let config = BertConfig {
            vocab_size: field("vocab_size")?,
            hidden_size: field("hidden_size")?,
            num_hidden_layers: field("num_hidden_layers")?,
            num_attention_heads: field("num_attention_heads")?,
            intermediate_size: field("intermediate_size")?,
            max_position_embeddings: field("max_position_embeddings")?,
            type_vocab_size: field("type_vocab_size")?,
            layer_norm_eps: value
                .get("layer_norm_eps")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(1e-12),
        };
        config.validate().map_err(|e| e.context(path.display()))?;
        Ok(config)
    }

    /// Checks that the shapes are usable: every size non-zero and within its [`limits`], each
    /// weight table within [`limits::TABLE_VALUES`] (products checked, never overflowing),
    /// heads dividing the hidden size, a finite positive LayerNorm ε.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size, limits::VOCAB),
            ("hidden_size", self.hidden_size, limits::HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, limits::LAYERS),
            (
                "num_attention_heads",
                self.num_attention_heads,
                limits::HEADS,
            ),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::INTERMEDIATE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                limits::POSITIONS,
            ),
            ("type_vocab_size", self.type_vocab_size, limits::TYPE_VOCAB),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return Err(Error::shape(name, value, Dims::within(1, max)));
            }
        }
        let d = self.hidden_size;
        for (name, rows) in [
            ("word embedding", self.vocab_size),
            ("position embedding", self.max_position_embeddings),
            ("feed-forward", self.intermediate_size),
        ] {
            match rows.checked_mul(d) {
                Some(values) if values <= limits::TABLE_VALUES => {}
                _ => {
                    return Err(Error::shape(
                        format!("{name} table values"),
                        [rows, d],
                        Dims::AtMost(limits::TABLE_VALUES),
                    ))
                }
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::InvalidArgument(format!(
                "{} heads do not divide hidden size {}",
                self.num_attention_heads, self.hidden_size
            )));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "LayerNorm ε = {} outside (0, 1]",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_shapes() {
        let base = BertConfig::bert_base();
        assert_eq!(base.head_dim(), 64);
        assert_eq!(BertConfig::bert_large().head_dim(), 64);
        base.validate().unwrap();
        let bad = BertConfig {
            num_attention_heads: 7,
            ..BertConfig::tiny()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn announced_sizes_are_bounded() {
        BertConfig::bert_large().validate().unwrap();
        let base = BertConfig::bert_base();
        for bad in [
            BertConfig {
                vocab_size: usize::MAX,
                ..base.clone()
            },
            BertConfig {
                vocab_size: limits::VOCAB,
                hidden_size: limits::HIDDEN,
                num_attention_heads: 8,
                ..base.clone()
            },
            BertConfig {
                max_position_embeddings: 1 << 40,
                ..base.clone()
            },
            BertConfig {
                num_hidden_layers: 1 << 30,
                ..base.clone()
            },
            BertConfig {
                hidden_size: 1 << 62,
                num_attention_heads: 1,
                ..base.clone()
            },
            BertConfig {
                layer_norm_eps: f64::NAN,
                ..base.clone()
            },
        ] {
            assert!(
                matches!(
                    bad.validate(),
                    Err(Error::Shape { .. } | Error::InvalidArgument(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_json_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 8}").unwrap();
        let err = BertConfig::from_model_dir(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("vocab_size"),
            "{err}"
        );
    }
}
