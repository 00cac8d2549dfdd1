//! The f32 reference decoder, in llama.cpp's conventions, with a key/value cache.
//!
//! Per block: `h = x + Wo·attn(rope(Wq·n₁), rope(Wk·n₁), Wv·n₁)` with `n₁ = rmsnorm(x)·g₁`,
//! then `x' = h + Wdown·(silu(Wgate·n₂) ⊙ Wup·n₂)` with `n₂ = rmsnorm(h)·g₂`; finally
//! `logits = Whead·(rmsnorm(x)·g)`. RMSNorm is `x / sqrt(mean(x²) + ε)`. Rotary embeddings turn
//! adjacent pairs `(2i, 2i+1)` of each head by `pos·base^(−2i/head_dim)`. Grouped-query
//! attention: query head `h` reads key/value head `h / (n_heads / n_kv_heads)`; scores are scaled
//! by `1/sqrt(head_dim)` and causally masked.

use rayon::prelude::*;

use crate::error::LlamaError;
use crate::weights::LayerWeights;
use crate::Model;

/// Ranges seen inside one block, for fitting the secure model's approximations.
#[derive(Debug, Clone, Default)]
pub struct LayerTrace {
    /// `mean(x²)` of the attention RMSNorm's input, one per position.
    pub attn_norm_mean_sq: Vec<f32>,
    /// Scaled attention scores minus their row maximum (what enters `exp`), every causal entry
    /// of every head, position-major.
    pub attn_shifted_scores: Vec<f32>,
    /// `mean(x²)` of the feed-forward RMSNorm's input, one per position.
    pub ffn_norm_mean_sq: Vec<f32>,
    /// The gate pre-activations entering SiLU, `[position × ffn]` per call, appended.
    pub gate_pre: Vec<f32>,
}

/// What a traced run saw, appended over every [`FloatModel::prefill`] and [`FloatModel::step`].
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// One entry per block.
    pub per_layer: Vec<LayerTrace>,
    /// `mean(x²)` of the final RMSNorm's input, one per position.
    pub output_norm_mean_sq: Vec<f32>,
}

/// The float decoder over a loaded [`Model`], holding the key/value cache of one sequence.
#[derive(Debug)]
pub struct FloatModel<'a> {
    model: &'a Model,
    /// Per layer, `[position × n_kv_heads·head_dim]`.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    positions: usize,
    trace: Option<Trace>,
}

impl<'a> FloatModel<'a> {
    /// A decoder with an empty cache.
    pub fn new(model: &'a Model) -> FloatModel<'a> {
        FloatModel {
            model,
            keys: vec![Vec::new(); model.config.n_layers],
            values: vec![Vec::new(); model.config.n_layers],
            positions: 0,
            trace: None,
        }
    }

    /// Turns on recording of the ranges in [`Trace`] (see [`FloatModel::take_trace`]).
    pub fn with_trace(mut self) -> FloatModel<'a> {
        self.trace = Some(Trace {
            per_layer: vec![LayerTrace::default(); self.model.config.n_layers],
            output_norm_mean_sq: Vec::new(),
        });
        self
    }

    /// The trace recorded so far (`None` without [`FloatModel::with_trace`]); recording goes on
    /// into a fresh trace.
    pub fn take_trace(&mut self) -> Option<Trace> {
        let n_layers = self.model.config.n_layers;
        self.trace.as_mut().map(|t| {
            std::mem::replace(
                t,
                Trace {
                    per_layer: vec![LayerTrace::default(); n_layers],
                    output_norm_mean_sq: Vec::new(),
                },
            )
        })
    }

    /// Positions already in the cache.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Runs `ids` after whatever is cached and returns the logits at the last position.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<Vec<f32>, LlamaError> {
        self.forward(ids)
    }

    /// Runs one more token and returns its logits.
    pub fn step(&mut self, id: u32) -> Result<Vec<f32>, LlamaError> {
        self.forward(&[id])
    }

    /// Greedy decoding: prefill `prompt` on an empty cache, then append the argmax token
    /// `max_new_tokens` times. Does not stop at the end-of-turn token (the reference does not).
    pub fn generate_greedy(
        &mut self,
        prompt: &[u32],
        max_new_tokens: usize,
    ) -> Result<Vec<u32>, LlamaError> {
        self.check_room(prompt.len() + max_new_tokens)?;
        let mut logits = self.prefill(prompt)?;
        let mut out = Vec::with_capacity(max_new_tokens);
        for i in 0..max_new_tokens {
            let next = argmax(&logits);
            out.push(next);
            if i + 1 < max_new_tokens {
                logits = self.step(next)?;
            }
        }
        Ok(out)
    }

    fn check_room(&self, new_positions: usize) -> Result<(), LlamaError> {
        let needed = self.positions + new_positions;
        let context = self.model.config.context;
        if needed > context {
            return Err(LlamaError::ContextExceeded { needed, context });
        }
        Ok(())
    }

    fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>, LlamaError> {
        let config = &self.model.config;
        let weights = &self.model.weights;
        if ids.is_empty() {
            return Err(LlamaError::InvalidRequest {
                what: "no tokens to run".into(),
            });
        }
        self.check_room(ids.len())?;
        let hidden = config.hidden;
        let mut x = Vec::with_capacity(ids.len() * hidden);
        for &id in ids {
            if id as usize >= config.vocab {
                return Err(LlamaError::TokenOutOfRange {
                    id,
                    vocab: config.vocab,
                });
            }
            let row = id as usize * hidden;
            x.extend_from_slice(&weights.token_embedding[row..row + hidden]);
        }
        for (l, layer) in weights.layers.iter().enumerate() {
            let trace = self.trace.as_mut().map(|t| &mut t.per_layer[l]);
            block(
                self.model,
                layer,
                &mut self.keys[l],
                &mut self.values[l],
                self.positions,
                &mut x,
                trace,
            );
        }
        self.positions += ids.len();
        let last = &x[(ids.len() - 1) * hidden..];
        let (normed, _) = rms_norm(last, &weights.output_norm, config.rms_eps);
        if let Some(trace) = self.trace.as_mut() {
            trace
                .output_norm_mean_sq
                .extend(x.chunks_exact(hidden).map(mean_square));
        }
        Ok(matmul(weights.head(), config.vocab, hidden, &normed))
    }
}

/// Index of the largest logit; the first one on ties (as numpy's `argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn mean_square(row: &[f32]) -> f32 {
    (row.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        / row.len() as f64) as f32
}

/// RMSNorm of each `gain.len()`-wide row; also returns each row's `mean(x²)`.
fn rms_norm(x: &[f32], gain: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = Vec::with_capacity(x.len());
    let mut mean_sqs = Vec::with_capacity(x.len() / gain.len());
    for row in x.chunks_exact(gain.len()) {
        let mean_sq = mean_square(row);
        let scale = 1.0 / (mean_sq + eps).sqrt();
        out.extend(row.iter().zip(gain).map(|(&v, &g)| v * scale * g));
        mean_sqs.push(mean_sq);
    }
    (out, mean_sqs)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums: vectorizes, and keeps rounding error small.
    let mut acc = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `x · Wᵀ` for `T` rows `x` of width `cols` and `W` of `rows × cols`: `[T × rows]`.
fn matmul(w: &[f32], rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
    let t = x.len() / cols;
    let mut transposed = vec![0f32; rows * t];
    transposed
        .par_chunks_mut(t)
        .zip(w.par_chunks_exact(cols))
        .for_each(|(out, w_row)| {
            for (o, x_row) in out.iter_mut().zip(x.chunks_exact(cols)) {
                *o = dot(w_row, x_row);
            }
        });
    if t == 1 {
        return transposed;
    }
    let mut out = vec![0f32; rows * t];
    for r in 0..rows {
        for i in 0..t {
            out[i * rows + r] = transposed[r * t + i];
        }
    }
    out
}

/// Rotates adjacent pairs of every head of every row in place; row `i` is at position `start + i`.
fn rope(x: &mut [f32], width: usize, head_dim: usize, start: usize, base: f32) {
    for (i, row) in x.chunks_exact_mut(width).enumerate() {
        let pos = (start + i) as f64;
        for head in row.chunks_exact_mut(head_dim) {
            for (pair, chunk) in head.chunks_exact_mut(2).enumerate() {
                let theta = f64::from(base).powf(-2.0 * pair as f64 / head_dim as f64);
                let (sin, cos) = (pos * theta).sin_cos();
                let (a, b) = (f64::from(chunk[0]), f64::from(chunk[1]));
                chunk[0] = (a * cos - b * sin) as f32;
                chunk[1] = (a * sin + b * cos) as f32;
            }
        }
    }
}

fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// One transformer block over the `T` new rows of `x`, appending their keys and values.
fn block(
    model: &Model,
    w: &LayerWeights,
    keys: &mut Vec<f32>,
    values: &mut Vec<f32>,
    start: usize,
    x: &mut [f32],
    trace: Option<&mut LayerTrace>,
) {
    let c = &model.config;
    let (hidden, hd, q_width, kv_width) =
        (c.hidden, c.head_dim, c.n_heads * c.head_dim, c.kv_width());
    let t = x.len() / hidden;

    let (n1, mean_sq) = rms_norm(x, &w.attn_norm, c.rms_eps);
    let mut q = matmul(&w.wq, q_width, hidden, &n1);
    let mut k = matmul(&w.wk, kv_width, hidden, &n1);
    let v = matmul(&w.wv, kv_width, hidden, &n1);
    rope(&mut q, q_width, hd, start, c.rope_base);
    rope(&mut k, kv_width, hd, start, c.rope_base);
    keys.extend_from_slice(&k);
    values.extend_from_slice(&v);

    let scale = 1.0 / (hd as f32).sqrt();
    let group = c.group_size();
    let n_heads = c.n_heads;
    let tracing = trace.is_some();
    let mut attn = vec![0f32; t * q_width];
    let shifted: Vec<Vec<f32>> = attn
        .par_chunks_mut(hd)
        .enumerate()
        .map(|(index, out)| {
            let (i, head) = (index / n_heads, index % n_heads);
            let kv = head / group;
            let query = &q[i * q_width + head * hd..][..hd];
            let visible = start + i + 1;
            let mut scores: Vec<f32> = (0..visible)
                .map(|j| dot(query, &keys[j * kv_width + kv * hd..][..hd]) * scale)
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            let shifted = if tracing {
                scores.iter().map(|s| s - max).collect()
            } else {
                Vec::new()
            };
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for (j, p) in scores.iter().enumerate() {
                let value = &values[j * kv_width + kv * hd..][..hd];
                for (o, &vv) in out.iter_mut().zip(value) {
                    *o += p / sum * vv;
                }
            }
            shifted
        })
        .collect();
    let projected = matmul(&w.wo, hidden, q_width, &attn);
    for (xi, p) in x.iter_mut().zip(&projected) {
        *xi += p;
    }

    let (n2, ffn_mean_sq) = rms_norm(x, &w.ffn_norm, c.rms_eps);
    let gate = matmul(&w.w_gate, c.ffn, hidden, &n2);
    let up = matmul(&w.w_up, c.ffn, hidden, &n2);
    let act: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| silu(g) * u).collect();
    let down = matmul(&w.w_down, hidden, c.ffn, &act);
    for (xi, d) in x.iter_mut().zip(&down) {
        *xi += d;
    }

    if let Some(trace) = trace {
        trace.attn_norm_mean_sq.extend_from_slice(&mean_sq);
        trace
            .attn_shifted_scores
            .extend(shifted.into_iter().flatten());
        trace.ffn_norm_mean_sq.extend_from_slice(&ffn_mean_sq);
        trace.gate_pre.extend_from_slice(&gate);
    }
}
