//! Secure two-party BERT inference: the server holds the model, the client holds the token ids;
//! together they compute the classifier's logits, which only the client learns.
//!
//! Roles: [`Server`] (weights, HE secret key of the linear layers) and [`Client`] (input, the
//! encrypted weights cached on its disk). Both run the same sequence of two-party protocols on a
//! [`Session`](ot_nonlinear::mpc::Session) (one channel, Ferret in both directions), each with its own shares.
//!
//! **Setup** (once per model and server key): the server sends the public description (shapes,
//! sequence length, the approximation set's public part), both exchange RLWE public keys, and
//! the server sends its encrypted weights for every linear layer (COP) and, with a private
//! embedding, its encrypted word-embedding table; every layer packs as many weight rows per
//! ciphertext as fit ([`nn::linear::Packing::Compact`], unless
//! [`Server::with_packing`] says otherwise). The client caches them on disk keyed by a
//! digest of (parameters, packing, server key, weights) and reuses them across runs; layers are
//! mapped one at a time during inference.
//!
//! **Online**, all values additively shared over Z_2^64 with 18 fraction bits:
//! * embedding: private table lookup ([`he_linear::embedding`]) plus the position and token-type
//!   rows on the server's share (positions are public), or, in the papers' setting, the client
//!   supplies the embedded sequence; then LayerNorm;
//! * per layer: fused QKV (COP), QKᵀ per head (secret × secret, all heads in 2 flights),
//!   Softmax up to its normalisation with the client's padding mask (exps E, reciprocals r),
//!   E·V per head, its rows scaled by r on HE (diag(r)·(E·V), 64 values per row and head
//!   instead of 128 exps), output projection (COP), residual, LayerNorm, FFN up (COP), GELU,
//!   FFN down (COP), residual, LayerNorm. Every HE product that is truncated next reveals only
//!   the bits kept (response window: 18 low bits dropped at 36 fraction bits, 16 for the
//!   normalisation, LayerNorm's products modulo 2^38), and the shares are cast back up to
//!   Z_2^64 by a known-MSB cast; they sum to the truncated product within a few units;
//! * LayerNorm computes the normalisation ŷ only; its affine γ·ŷ + β is folded into the COP
//!   that consumes it, whose weights are `[diag(γ) | diag(γ)·W]` (the first block yields the
//!   residual branch γ·ŷ + β, the second the layer): d more columns per row (at BERT-base,
//!   2 rows per ciphertext instead of 3 for QKV), 128×d more outputs online;
//! * head: per-token logits `ŷ_t·(diag(γ)·W) + β·W + b` (COP, 36 fraction bits), the
//!   client's mask applied by a multiplexer, the sum over tokens revealed to the client only,
//!   which divides by its own number of real tokens.
//!
//! The mirror of all of it is [`fixed_reference`] (the fixed-point model's arithmetic); the
//! secure logits differ from it by the truncation carries (the windows' included) and the
//! comparisons near breakpoints (bound [`FIXED_LOGIT_BOUND`], measured).
//!
//! Every step runs under a channel label `layerNN/<component>` (or `embedding`, `head`), so the
//! bench reports bytes, rounds and time per component and per layer.
//!
//! **Offline / online** ([`offline`], issue 17): [`Server::offline`] / [`Client::offline`]
//! run every linear layer's COP on the client's random R before the input exists and file
//! the material on disk (keyed by model, server key and session, used once);
//! [`Server::infer_offline`] / [`Client::infer_offline`] then run the inference with each
//! linear layer reduced to one plaintext message (X_c − R) and no HE.
//!
//! Files: [`public`] (what both parties know, the redaction of the client's copy, the head),
//! [`fold`] (the server's weights folded with the LayerNorms), [`reference`](mod@reference) (the fixed-point
//! and float references), [`server`], [`client`], `engine` (the online composition of `nn`
//! operators, written once over the two roles) and [`cache`] (the client's cache directory).

pub mod cache;
pub mod client;
pub mod cots;
mod engine;
pub mod fold;
pub mod offline;
pub mod public;
pub mod reference;
pub mod server;

pub use cache::default_cache_dir;
pub use client::Client;
pub use offline::{OfflineStore, SessionId};
pub use public::{Head, PublicModel};
pub use reference::{fixed_reference, float_reference, FIXED_LOGIT_BOUND};
pub use server::Server;

use he_linear::params::HeParams;
use mpc_core::{Dims, Error, Result};

/// Who supplies the embedded sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EmbeddingMode {
    /// The server's tables stay private: secure lookup of the client's ids.
    Server,
    /// The papers' setting: the client holds the tables and supplies the embedded sequence.
    Client,
}

impl std::str::FromStr for EmbeddingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "server" => Ok(EmbeddingMode::Server),
            "client" => Ok(EmbeddingMode::Client),
            _ => Err(Error::InvalidArgument(format!(
                "embedding mode `{s}`: expected `server` or `client`"
            ))),
        }
    }
}

/// How attention's secret × secret products (QKᵀ, P·V) return their results, and with them
/// where LayerNorm's row products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttentionMode {
    /// Outputs merged with Galois keys (`he_linear::galois`): 7× fewer bytes for attention;
    /// LayerNorm's square sums and row-scalar product run on HE with the same keys
    /// (`he_linear::row_products`, 3.2× fewer bytes than on COTs). Several seconds more compute
    /// per BERT-base block on this 2-core machine. The default.
    Packed,
    /// One response per Cheetah output block, and LayerNorm's products on COTs: more bytes,
    /// less compute (faster on a LAN).
    Unpacked,
}

impl std::str::FromStr for AttentionMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "packed" => Ok(AttentionMode::Packed),
            "unpacked" => Ok(AttentionMode::Unpacked),
            _ => Err(Error::InvalidArgument(format!(
                "attention mode `{s}`: expected `packed` or `unpacked`"
            ))),
        }
    }
}

impl AttentionMode {
    /// The HE parameters of the products in this mode (same N, primes and keys as the linear
    /// layers').
    fn params(self) -> Result<HeParams> {
        match self {
            AttentionMode::Packed => HeParams::packed_products(),
            AttentionMode::Unpacked => he_params(),
        }
    }
}

/// The HE parameters of every linear layer (checked, 128-bit).
pub(crate) fn he_params() -> Result<HeParams> {
    HeParams::default_params()
}

/// Cuts or pads `ids` to `len` (pad id 0) and returns the mask of real tokens.
pub fn pad(ids: &[u32], len: usize, vocab: usize) -> Result<(Vec<u32>, Vec<bool>)> {
    if ids.is_empty() {
        return Err(Error::shape("token sequence", 0, Dims::AtLeast(1)));
    }
    if len == 0 || len > crate::config::limits::POSITIONS {
        return Err(Error::shape(
            "sequence length",
            len,
            Dims::within(1, crate::config::limits::POSITIONS),
        ));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::out_of_range(
            "token id",
            id as usize,
            Dims::Below(vocab),
        ));
    }
    let real = ids.len().min(len);
    let mut out = ids[..real].to_vec();
    out.resize(len, 0);
    let mask = (0..len).map(|t| t < real).collect();
    Ok((out, mask))
}
