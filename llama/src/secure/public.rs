//! What both parties know: the decoder's shape, the context, and the approximation set (the
//! client's copy redacted: breakpoints replaced by placeholders, as in `bert::secure`).
use crate::calibrate::NormShifts;
use crate::LlamaConfig;
use mpc_core::{Error, Result};
use nn::attention::AttentionShape;
use nn::rotary::Rotary;
use ot_nonlinear::approx::ApproxSet;

/// Limits on announced sizes (a malicious or corrupt description is refused before any
/// allocation): far above LLaMA-7B's.
pub mod limits {
    /// Blocks.
    pub const LAYERS: usize = 256;
    /// Hidden size, FFN width, heads·head_dim.
    pub const WIDTH: usize = 65_536;
    /// Vocabulary.
    pub const VOCAB: usize = 1 << 20;
    /// Positions.
    pub const CONTEXT: usize = 1 << 16;
}

/// The decoder's shape as both parties hold it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecoderShape {
    /// Blocks.
    pub n_layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// FFN width.
    pub ffn: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// RMSNorm ε.
    pub rms_eps: f64,
    /// Rotary base.
    pub rope_base: f64,
    /// Positions (prompt and generated tokens together).
    pub context: usize,
}

impl From<&LlamaConfig> for DecoderShape {
    fn from(c: &LlamaConfig) -> DecoderShape {
        DecoderShape {
            n_layers: c.n_layers,
            hidden: c.hidden,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            ffn: c.ffn,
            vocab: c.vocab,
            rms_eps: f64::from(c.rms_eps),
            rope_base: f64::from(c.rope_base),
            context: c.context,
        }
    }
}

impl DecoderShape {
    /// Width of the queries (heads·head_dim).
    pub fn q_width(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the keys and of the values (kv_heads·head_dim).
    pub fn kv_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// (inputs, outputs) of block projection `p` (see [`crate::fixed_model::Projection`]).
    pub fn projection(&self, p: crate::fixed_model::Projection) -> (usize, usize) {
        use crate::fixed_model::Projection::*;
        match p {
            Qkv => (self.hidden, self.q_width() + 2 * self.kv_width()),
            O => (self.q_width(), self.hidden),
            GateUp => (self.hidden, 2 * self.ffn),
            Down => (self.ffn, self.hidden),
        }
    }

    /// The rotary map of the rows [q | k] (every head of both, same head_dim).
    pub fn rotary(&self) -> Rotary {
        Rotary {
            heads: self.n_heads + self.n_kv_heads,
            head_dim: self.head_dim,
            base: self.rope_base,
        }
    }

    /// The attention shape of `queries` new rows after `past` cached ones.
    pub fn attention(&self, queries: usize, past: usize) -> AttentionShape {
        AttentionShape {
            queries,
            keys: past + queries,
            heads: self.n_heads,
            kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// Checks every size against [`limits`] and the head structure.
    pub fn check(&self) -> Result<()> {
        let sizes = [
            ("n_layers", self.n_layers, limits::LAYERS),
            ("hidden", self.hidden, limits::WIDTH),
            ("n_heads", self.n_heads, limits::WIDTH),
            ("n_kv_heads", self.n_kv_heads, limits::WIDTH),
            ("head_dim", self.head_dim, limits::WIDTH),
            ("ffn", self.ffn, limits::WIDTH),
            (
                "q_width",
                self.n_heads.saturating_mul(self.head_dim),
                limits::WIDTH,
            ),
            ("vocab", self.vocab, limits::VOCAB),
            ("context", self.context, limits::CONTEXT),
        ];
        for (what, v, max) in sizes {
            if v == 0 || v > max {
                return Err(Error::shape(
                    format!("decoder {what}"),
                    v,
                    mpc_core::Dims::within(1, max),
                ));
            }
        }
        if self.n_heads % self.n_kv_heads != 0 || self.head_dim % 2 != 0 {
            return Err(Error::shape(
                "query heads × key/value heads × head width",
                [self.n_heads, self.n_kv_heads, self.head_dim],
                "query heads a multiple of key/value heads, an even head width",
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0 && self.rope_base > 1.0) {
            return Err(Error::InvalidArgument(format!(
                "RMSNorm ε {} and rotary base {}",
                self.rms_eps, self.rope_base
            )));
        }
        Ok(())
    }
}

/// The public description the server sends.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublicLlama {
    /// The shape.
    pub shape: DecoderShape,
    /// The approximation set (redacted in the client's copy).
    pub approx: ApproxSet,
    /// The norms' public prescales.
    pub norm_shifts: NormShifts,
}

impl PublicLlama {
    /// Checks the shape and the set (`redacted`: the client's copy).
    pub fn check(&self, redacted: bool) -> Result<()> {
        self.shape.check()?;
        self.norm_shifts.check(self.shape.n_layers)?;
        if redacted {
            self.approx.validate_redacted(self.shape.n_layers)
        } else {
            self.approx.validate(self.shape.n_layers)
        }
    }
}
