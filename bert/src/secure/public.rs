//! What both parties know (the public model), the client's redacted copy of the approximation
//! set, and the classification head.
use super::{AttentionMode, EmbeddingMode};
use crate::BertConfig;
use mpc_core::{AesPrg, Error, Result, Seed};
use ot_nonlinear::approx::ApproxSet;

/// What both parties know: shapes, the sequence length, the head's width, the embedding and
/// attention modes and the approximation set (the server sends it during setup).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublicModel {
    /// Encoder shape.
    pub config: BertConfig,
    /// Tokens per inference (the client pads or cuts its sentence to this length).
    pub seq_len: usize,
    /// Logits of the head.
    pub classes: usize,
    /// Who supplies the embedded sequence.
    pub embedding: EmbeddingMode,
    /// How the attention products return their outputs.
    pub attention: AttentionMode,
    /// The approximation set (GELU and exp tables per layer).
    pub approx: ApproxSet,
}

impl PublicModel {
    /// Checks the shapes and the set; `redacted`: the set's breakpoints are placeholders (the
    /// client's copy), so only what does not depend on them is checked.
    pub(crate) fn check(&self, redacted: bool) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        if self.seq_len == 0 || self.seq_len > c.max_position_embeddings {
            return Err(Error::shape(
                "sequence length",
                self.seq_len,
                mpc_core::Dims::within(1, c.max_position_embeddings),
            ));
        }
        if self.classes == 0 || self.classes > 1024 {
            return Err(Error::shape(
                "head outputs",
                self.classes,
                mpc_core::Dims::within(1, 1024),
            ));
        }
        crate::reveals::check(self)?;
        if redacted {
            self.approx.validate_redacted(c.num_hidden_layers)
        } else {
            self.approx.validate(c.num_hidden_layers)
        }
    }
}

/// A linear classification head on mean-pooled embeddings: `logits = mean_t(h_t)·W + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// `d × classes`, row-major.
    pub w: Vec<f64>,
    /// `classes` biases.
    pub b: Vec<f64>,
}

impl Head {
    /// The sentiment head (one logit).
    pub fn from_logistic(h: &crate::head::LogisticHead) -> Head {
        Head {
            w: h.weights.clone(),
            b: vec![h.bias],
        }
    }

    /// A deterministic random head (for models without a trained one).
    pub fn random(d: usize, classes: usize, seed: u64) -> Head {
        let mut rng = AesPrg::new(Seed([seed as u8; 16]).derive(seed));
        let scale = 1.0 / (d as f64).sqrt();
        let mut uniform = || (rng.u64s(1)[0] >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        Head {
            w: (0..d * classes).map(|_| uniform() * scale).collect(),
            b: (0..classes).map(|_| uniform() * 0.1).collect(),
        }
    }

    pub(crate) fn classes(&self) -> usize {
        self.b.len()
    }
}
