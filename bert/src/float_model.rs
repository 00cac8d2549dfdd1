//! The float reference (f32, ndarray): embeddings, encoder, mean pooling, pooler.
//!
//! The forward pass can report the inputs of every GELU and every exp (the softmax arguments
//! after subtracting the row maximum) to an observer: that is how calibration collects them.
use crate::weights::{BertWeights, LayerNormParams, Linear};
use mpc_core::{Dims, Error, Result};
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};

/// Which nonlinear input an observer is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The input of the GELU of the feed-forward block.
    Gelu,
    /// The inputs of exp in the attention softmax: `score − max(row)`, all ≤ 0.
    Exp,
}

/// The float BERT encoder.
#[derive(Clone, Debug)]
pub struct FloatBert {
    weights: BertWeights,
}

impl FloatBert {
    /// Wraps weights.
    pub fn new(weights: BertWeights) -> FloatBert {
        FloatBert { weights }
    }

    /// The weights.
    pub fn weights(&self) -> &BertWeights {
        &self.weights
    }

    /// The last hidden state (`tokens × d`) of one unpadded sequence (token type 0).
    pub fn encode(&self, ids: &[u32]) -> Result<Array2<f32>> {
        self.encode_observed(ids, &mut |_, _, _| {})
    }

    /// [`FloatBert::encode`], showing the observer `(site, layer, inputs)` at every GELU and
    /// softmax exp.
    pub fn encode_observed(
        &self,
        ids: &[u32],
        observer: &mut dyn FnMut(Site, usize, &[f32]),
    ) -> Result<Array2<f32>> {
        let w = &self.weights;
        let c = &w.config;
        check_ids(ids, c.vocab_size, c.max_position_embeddings)?;
        let mut h = Array2::from_shape_fn((ids.len(), c.hidden_size), |(t, j)| {
            w.word_embeddings[[ids[t] as usize, j]]
                + w.position_embeddings[[t, j]]
                + w.token_type_embeddings[[0, j]]
        });
        layer_norm(&mut h, &w.embeddings_ln, c.layer_norm_eps);
        let (heads, dh) = (c.num_attention_heads, c.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        for (l, lw) in w.layers.iter().enumerate() {
            let q = linear(h.view(), &lw.query);
            let k = linear(h.view(), &lw.key);
            let v = linear(h.view(), &lw.value);
            let mut ctx = Array2::<f32>::zeros(h.raw_dim());
            for hd in 0..heads {
                let cols = s![.., hd * dh..(hd + 1) * dh];
                let mut scores = q.slice(cols).dot(&k.slice(cols).t()) * scale;
                for mut row in scores.rows_mut() {
                    let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    row.mapv_inplace(|x| x - max);
                    observer(Site::Exp, l, row.as_slice().expect("standard layout"));
                    row.mapv_inplace(f32::exp);
                    let sum = row.sum();
                    row.mapv_inplace(|x| x / sum);
                }
                ctx.slice_mut(cols).assign(&scores.dot(&v.slice(cols)));
            }
            let mut a = linear(ctx.view(), &lw.attn_out) + &h;
            layer_norm(&mut a, &lw.attn_ln, c.layer_norm_eps);
            let mut up = linear(a.view(), &lw.ffn_up);
            observer(Site::Gelu, l, up.as_slice().expect("standard layout"));
            up.mapv_inplace(gelu);
            let mut out = linear(up.view(), &lw.ffn_down) + &a;
            layer_norm(&mut out, &lw.ffn_ln, c.layer_norm_eps);
            h = out;
        }
        Ok(h)
    }

    /// The pooler output: `tanh(h[0] · W + b)`.
    pub fn pooler(&self, hidden: ArrayView2<f32>) -> Array1<f32> {
        let first = hidden.slice(s![0..1, ..]);
        linear(first, &self.weights.pooler).row(0).mapv(f32::tanh)
    }
}

/// Checks token ids against the vocabulary and the longest sequence.
pub(crate) fn check_ids(ids: &[u32], vocab: usize, max_len: usize) -> Result<()> {
    if ids.is_empty() || ids.len() > max_len {
        return Err(Error::shape(
            "tokens in the sequence",
            ids.len(),
            Dims::within(1, max_len),
        ));
    }
    match ids.iter().find(|&&i| i as usize >= vocab) {
        Some(&bad) => Err(Error::out_of_range(
            "token id",
            bad as usize,
            Dims::Below(vocab),
        )),
        None => Ok(()),
    }
}

fn linear(x: ArrayView2<f32>, l: &Linear) -> Array2<f32> {
    x.dot(&l.w) + &l.b
}

fn layer_norm(x: &mut Array2<f32>, p: &LayerNormParams, eps: f64) {
    for mut row in x.rows_mut() {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&p.gamma).zip(&p.beta) {
            *v = ((*v as f64 - mean) * inv) as f32 * g + b;
        }
    }
}

/// Exact GELU, `x · Φ(x)`.
pub fn gelu(x: f32) -> f32 {
    gelu_f64(x as f64) as f32
}

/// Exact GELU in f64.
pub fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// The error function (Numerical Recipes' Chebyshev fit of erfc, relative error < 1.2e-7).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// Mean over tokens (rows).
pub fn mean_pool(hidden: ArrayView2<f32>) -> Array1<f32> {
    hidden.mean_axis(Axis(0)).expect("at least one token")
}

/// `v / ‖v‖₂` (unchanged if zero).
pub fn l2_normalize(v: ArrayView1<f32>) -> Array1<f32> {
    let norm = v.dot(&v).sqrt();
    if norm > 0.0 {
        v.mapv(|x| x / norm)
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BertConfig;

    #[test]
    fn erf_and_gelu_values() {
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_265_018_952_7).abs() < 2e-7);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn bert_base_runs_on_random_weights() {
        let w = BertWeights::random(&BertConfig::bert_base(), 42).unwrap();
        let h = FloatBert::new(w).encode(&[101, 2023, 2003, 102]).unwrap();
        assert_eq!(h.shape(), &[4, 768]);
        assert!(h.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn bad_ids_are_errors() {
        let m = FloatBert::new(BertWeights::random(&BertConfig::tiny(), 1).unwrap());
        assert!(m.encode(&[]).is_err());
        assert!(m.encode(&[2, 500]).unwrap_err().to_string().contains("500"));
        assert!(m.encode(&[1; 65]).is_err());
        let mut count = 0;
        let h = m
            .encode_observed(&[2, 5, 3], &mut |_, _, x| count += x.len())
            .unwrap();
        assert_eq!(h.shape(), &[3, 32]);
        // Two layers: GELU 3×64, exp 4 heads × 3 rows × 3.
        assert_eq!(count, 2 * (3 * 64 + 4 * 3 * 3));
    }
}
