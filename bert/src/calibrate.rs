//! Calibration: the inputs of every GELU and every softmax exp, per layer, on calibration
//! sentences run through the float model (Nimbus §4.2).
use crate::float_model::{FloatBert, Site};
use crate::tokenizer::Tokenizer;
use mpc_core::Result;
use rayon::prelude::*;

/// Calibration inputs per layer.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// GELU inputs, one vector per layer.
    pub gelu: Vec<Vec<f32>>,
    /// exp inputs (`score − row max`, ≤ 0), one vector per layer.
    pub exp: Vec<Vec<f32>>,
    /// Number of tokens seen.
    pub tokens: usize,
}

/// Runs `texts` through the float model and collects every GELU and exp input per layer.
pub fn collect(model: &FloatBert, tokenizer: &Tokenizer, texts: &[&str]) -> Result<Calibration> {
    let layers = model.weights().config.num_hidden_layers;
    let empty = || Calibration {
        gelu: vec![Vec::new(); layers],
        exp: vec![Vec::new(); layers],
        tokens: 0,
    };
    let parts = texts
        .par_iter()
        .map(|t| {
            let ids = tokenizer.encode(t);
            let mut c = empty();
            c.tokens = ids.len();
            model.encode_observed(&ids, &mut |site, l, xs| match site {
                Site::Gelu => c.gelu[l].extend_from_slice(xs),
                Site::Exp => c.exp[l].extend_from_slice(xs),
            })?;
            Ok(c)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.into_iter().fold(empty(), |mut acc, c| {
        for l in 0..layers {
            acc.gelu[l].extend(&c.gelu[l]);
            acc.exp[l].extend(&c.exp[l]);
        }
        acc.tokens += c.tokens;
        acc
    }))
}
