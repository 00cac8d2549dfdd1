//! Sentence embeddings for the sentiment classifier: tokenise, encode, mean-pool, in parallel
//! over sentences (rayon).
use crate::float_model::{mean_pool, FloatBert};
use crate::tokenizer::Tokenizer;
use mpc_core::Result;
use rayon::prelude::*;

/// Something that turns token ids into a mean-pooled sentence embedding.
pub trait Embedder: Sync {
    /// The mean over tokens of the last hidden state.
    fn embed(&self, ids: &[u32]) -> Result<Vec<f64>>;
}

impl Embedder for FloatBert {
    fn embed(&self, ids: &[u32]) -> Result<Vec<f64>> {
        let hidden = self.encode(ids)?;
        Ok(mean_pool(hidden.view()).iter().map(|&x| x as f64).collect())
    }
}

/// Embeds every text in parallel; the order of the output follows `texts`.
pub fn embed_all<E: Embedder + ?Sized>(
    model: &E,
    tokenizer: &Tokenizer,
    texts: &[&str],
) -> Result<Vec<Vec<f64>>> {
    texts
        .par_iter()
        .map(|t| model.embed(&tokenizer.encode(t)))
        .collect()
}
