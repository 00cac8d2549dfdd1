//! The fixed-point reference: exactly the arithmetic the secure run performs, on ring elements.
//!
//! * Activations: Z_2^64 with 18 fraction bits ([`FixedPoint::LINEAR`]).
//! * Linear layers: `X · W` with both operands at 18 bits (36-bit products, wrapping `u64`), plus
//!   the bias encoded at 36 bits, then one truncation by 18 (exact arithmetic shift).
//! * Attention: the scale 1/√d_head is folded into the query weights and bias before encoding
//!   (free, and exact for the float model up to rounding), so `Q·Kᵀ` and `P·V` are plain ring
//!   products followed by a truncation by 18.
//! * Softmax, GELU, tanh: the evaluators of [`ot_nonlinear::approx::fixed`] with the chosen
//!   [`ApproxSet`] (GELU and exp per layer).
//! * LayerNorm: the normalisation ŷ of [`ot_nonlinear::approx::layernorm`]; its affine γ·ŷ + β is
//!   folded into the linear layer that consumes it, as the secure run does (one COP with
//!   `[diag(γ) | diag(γ)·W]`): the residual branch is `trunc(ŷ·γ + β + ½, 18)` and the layer
//!   itself `trunc(ŷ·(γ·W) + (β·W + b) + ½, 18)`, with γ·W and β·W + b computed in f64 from the
//!   float weights and then encoded.
//! * Mean pooling: the token sum times 1/n (a public scalar with 30 fraction bits), truncated.
//! * The truncations the model controls (linear layers, `Q·Kᵀ`, `P·V`) round to nearest: half a
//!   unit (2^17 at 36 bits) is added before the floor — a public constant, free in the secure run
//!   (added into the bias for linear layers) — so they carry no −½-ulp bias.
//!
//! [`Ablation`] swaps parts of the pipeline for exact f64 arithmetic, to measure where the error
//! against the float model comes from.
use crate::classifier::Embedder;
use crate::float_model::{check_ids, gelu_f64};
use crate::weights::{BertWeights, LayerNormParams, Linear};
use crate::BertConfig;
use mpc_core::{Error, FixedPoint, Result, Ring};
use ndarray::Array2;
use nn::linear::ring_matmul;
use ot_nonlinear::approx::fixed::{
    exp_nonpositive, gelu, mul_public, reciprocal, softmax_row_unnormalized, tanh, trunc,
};
use ot_nonlinear::approx::layernorm::normalize_row;
use ot_nonlinear::approx::{ApproxSet, ScoreMask};

const LIN: FixedPoint = FixedPoint::LINEAR;
const R: Ring = Ring::R64;
/// Half a unit of the 18-bit result at 36 bits: added before a truncation by 18, it turns the
/// floor into round-to-nearest.
const HALF: u64 = 1 << 17;

/// Parts of the fixed-point pipeline replaced by exact f64 arithmetic on the decoded values
/// (results encoded back at 18 bits), or by floor truncation: an ablation tool. The default
/// replaces nothing and is the secure run's arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ablation {
    /// GELU in f64.
    pub exact_gelu: bool,
    /// The softmax exps in f64 (row sum, reciprocal and products stay fixed-point).
    pub exact_exp: bool,
    /// The reciprocal of the softmax row sum in f64.
    pub exact_reciprocal: bool,
    /// LayerNorm's normalisation in f64 (mean, variance, 1/√·; γ and β stay folded).
    pub exact_layernorm: bool,
    /// Floor truncations (no half-unit offset) in linear layers and attention products.
    pub floor: bool,
}

/// An f64 activation encoded at 18 bits.
fn encode(v: f64) -> u64 {
    LIN.encode(v).expect("activation fits Z_2^64 with 18 bits")
}

/// `f` of the decoded value, encoded back at 18 bits.
fn requantize(x: u64, f: impl Fn(f64) -> f64) -> u64 {
    encode(f(LIN.decode(x)))
}

/// A dense layer in fixed point: `w` (`inputs × outputs`, row-major) at 18 bits, `b` at 36 bits
/// (with the rounding half added).
#[derive(Clone, Debug)]
pub(crate) struct FixedLinear {
    pub(crate) w: Vec<u64>,
    pub(crate) b: Vec<u64>,
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
}

impl FixedLinear {
    /// Encodes `w` (`inputs × outputs`, row-major) and `b`; `offset` (at 36 bits) is added to
    /// every bias (the rounding half).
    fn from_f64(w: &[f64], b: &[f64], inputs: usize, offset: u64, name: &str) -> Result<Self> {
        let wide = FixedPoint::new(R, 2 * LIN.frac_bits())?;
        let ctx = |e: Error| e.context(name);
        Ok(FixedLinear {
            w: w.iter()
                .map(|&x| LIN.encode(x))
                .collect::<Result<_>>()
                .map_err(ctx)?,
            b: b.iter()
                .map(|&x| Ok(R.add(wide.encode(x)?, offset)))
                .collect::<Result<_>>()
                .map_err(ctx)?,
            inputs,
            outputs: b.len(),
        })
    }

    /// Encodes `scale · l`.
    fn encode(l: &Linear, scale: f64, offset: u64, name: &str) -> Result<FixedLinear> {
        let w: Vec<f64> = l.w.iter().map(|&x| x as f64 * scale).collect();
        let b: Vec<f64> = l.b.iter().map(|&x| x as f64 * scale).collect();
        FixedLinear::from_f64(&w, &b, l.w.nrows(), offset, name)
    }

    /// The layers `(scale_k · l_k)` side by side (their outputs concatenated), consuming the
    /// LayerNorm `ln`: weights `γ_i·W_ij`, biases `Σ_i β_i·W_ij + b_j`.
    fn folded(
        parts: &[(&Linear, f64)],
        ln: &LayerNormParams,
        offset: u64,
        name: &str,
    ) -> Result<Self> {
        let inputs = ln.gamma.len();
        let outputs: usize = parts.iter().map(|(l, _)| l.w.ncols()).sum();
        let mut w = Vec::with_capacity(inputs * outputs);
        for i in 0..inputs {
            let g = ln.gamma[i] as f64;
            for (l, scale) in parts {
                w.extend(l.w.row(i).iter().map(|&x| g * x as f64 * scale));
            }
        }
        let mut b = Vec::with_capacity(outputs);
        for (l, scale) in parts {
            for j in 0..l.w.ncols() {
                let folded: f64 = (0..inputs)
                    .map(|i| ln.beta[i] as f64 * l.w[[i, j]] as f64)
                    .sum();
                b.push((folded + l.b[j] as f64) * scale);
            }
        }
        FixedLinear::from_f64(&w, &b, inputs, offset, name)
    }

    /// `trunc(X · W + b, 18)` for `X` of `rows × inputs`.
    fn forward(&self, x: &[u64], rows: usize) -> Vec<u64> {
        let mut out = ring_matmul(x, &self.w, rows, self.inputs, self.outputs);
        for row in out.chunks_exact_mut(self.outputs) {
            for (v, &b) in row.iter_mut().zip(&self.b) {
                *v = trunc(R, v.wrapping_add(b), LIN.frac_bits());
            }
        }
        out
    }
}

/// A LayerNorm's affine part as the consuming COP computes it: `trunc(ŷ·γ + β + ½, 18)`
/// (γ at 18 bits, β at 36 bits with the rounding half).
#[derive(Clone, Debug)]
pub(crate) struct FixedAffine {
    pub(crate) gamma: Vec<u64>,
    pub(crate) beta: Vec<u64>,
}

impl FixedAffine {
    fn encode(p: &LayerNormParams, offset: u64, name: &str) -> Result<FixedAffine> {
        let wide = FixedPoint::new(R, 2 * LIN.frac_bits())?;
        let ctx = |e: Error| e.context(name);
        Ok(FixedAffine {
            gamma: p
                .gamma
                .iter()
                .map(|&x| LIN.encode(x as f64))
                .collect::<Result<_>>()
                .map_err(ctx)?,
            beta: p
                .beta
                .iter()
                .map(|&x| Ok(R.add(wide.encode(x as f64)?, offset)))
                .collect::<Result<_>>()
                .map_err(ctx)?,
        })
    }

    fn apply(&self, y: &[u64]) -> Vec<u64> {
        let d = self.gamma.len();
        y.iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = i % d;
                trunc(
                    R,
                    R.add(R.mul(v, self.gamma[j]), self.beta[j]),
                    LIN.frac_bits(),
                )
            })
            .collect()
    }
}

/// LayerNorm's normalisation of every row of `x` (width `d`) in place: the plan's
/// [`normalize_row`], or f64 under the ablation.
fn normalize(x: &mut [u64], d: usize, eps: f64, exact: bool) {
    for row in x.chunks_exact_mut(d) {
        if exact {
            let n = row.len() as f64;
            let v = LIN.decode_vec(row);
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for (o, &x) in row.iter_mut().zip(&v) {
                *o = encode((x - mean) * inv);
            }
        } else {
            normalize_row(row, eps);
        }
    }
}

/// One encoder layer; `qkv` and `ffn_up` consume a LayerNorm and carry its affine part.
#[derive(Clone, Debug)]
pub(crate) struct FixedLayer {
    /// The affine of the LayerNorm feeding this layer (residual branch of the attention).
    pub(crate) input_affine: FixedAffine,
    /// Q (scaled by 1/√d_head), K, V side by side, folded with that LayerNorm.
    pub(crate) qkv: FixedLinear,
    pub(crate) attn_out: FixedLinear,
    /// The affine of the attention LayerNorm (residual branch of the FFN).
    pub(crate) ffn_affine: FixedAffine,
    /// The FFN's first layer, folded with the attention LayerNorm.
    pub(crate) ffn_up: FixedLinear,
    pub(crate) ffn_down: FixedLinear,
}

/// The fixed-point BERT encoder under one approximation set.
#[derive(Clone, Debug)]
pub struct FixedBert {
    config: BertConfig,
    set: ApproxSet,
    ablation: Ablation,
    word: Vec<u64>,
    position: Vec<u64>,
    token_type: Vec<u64>,
    layers: Vec<FixedLayer>,
    /// The last LayerNorm's affine (the final hidden state).
    final_ln: LayerNormParams,
    final_affine: FixedAffine,
    pooler: FixedLinear,
}

impl FixedBert {
    /// Encodes the weights (18 bits; biases 36 bits; 1/√d_head folded into the queries, every
    /// LayerNorm's γ and β into the layer that consumes it) and checks the approximation set
    /// against the number of layers.
    pub fn new(weights: &BertWeights, set: ApproxSet) -> Result<FixedBert> {
        FixedBert::ablated(weights, set, Ablation::default())
    }

    /// [`FixedBert::new`] with parts of the pipeline swapped out (see [`Ablation`]).
    pub fn ablated(weights: &BertWeights, set: ApproxSet, ablation: Ablation) -> Result<FixedBert> {
        let c = &weights.config;
        let half = if ablation.floor { 0 } else { HALF };
        set.validate(c.num_hidden_layers)?;
        let table = |m: &Array2<f32>, name: &str| {
            m.iter()
                .map(|&x| LIN.encode(x as f64))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| e.context(name))
        };
        let scale = 1.0 / (c.head_dim() as f64).sqrt();
        let mut input_ln = &weights.embeddings_ln;
        let mut layers = Vec::with_capacity(weights.layers.len());
        for (l, w) in weights.layers.iter().enumerate() {
            let n = |s: &str| format!("layer {l} {s}");
            layers.push(FixedLayer {
                input_affine: FixedAffine::encode(input_ln, half, &n("input LayerNorm"))?,
                qkv: FixedLinear::folded(
                    &[(&w.query, scale), (&w.key, 1.0), (&w.value, 1.0)],
                    input_ln,
                    half,
                    &n("query/key/value"),
                )?,
                attn_out: FixedLinear::encode(&w.attn_out, 1.0, half, &n("attention output"))?,
                ffn_affine: FixedAffine::encode(&w.attn_ln, half, &n("attention LayerNorm"))?,
                ffn_up: FixedLinear::folded(
                    &[(&w.ffn_up, 1.0)],
                    &w.attn_ln,
                    half,
                    &n("intermediate"),
                )?,
                ffn_down: FixedLinear::encode(&w.ffn_down, 1.0, half, &n("output"))?,
            });
            input_ln = &w.ffn_ln;
        }
        Ok(FixedBert {
            config: c.clone(),
            set,
            ablation,
            word: table(&weights.word_embeddings, "word embeddings")?,
            position: table(&weights.position_embeddings, "position embeddings")?,
            token_type: table(&weights.token_type_embeddings, "token type embeddings")?,
            layers,
            final_ln: input_ln.clone(),
            final_affine: FixedAffine::encode(input_ln, half, "final LayerNorm")?,
            pooler: FixedLinear::encode(&weights.pooler, 1.0, half, "pooler")?,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub(crate) fn layers(&self) -> &[FixedLayer] {
        &self.layers
    }

    /// The word, position and token-type tables (18 bits).
    pub(crate) fn embeddings(&self) -> (&[u64], &[u64], &[u64]) {
        (&self.word, &self.position, &self.token_type)
    }

    /// The last LayerNorm's parameters (folded into a head by the secure run).
    pub(crate) fn final_ln(&self) -> &LayerNormParams {
        &self.final_ln
    }

    /// The approximation set.
    pub fn set(&self) -> &ApproxSet {
        &self.set
    }

    /// The last hidden state (`tokens × d`, row-major, Z_2^64 with 18 bits) of one unpadded
    /// sequence (token type 0).
    pub fn encode(&self, ids: &[u32]) -> Result<Vec<u64>> {
        Ok(self.final_affine.apply(&self.normalized(ids, None)?))
    }

    /// The last LayerNorm's normalised output ŷ (`tokens × d`, 18 bits) of `ids`, attention
    /// restricted to the tokens where `mask` is true (the padding of a fixed-length input, as
    /// the secure run's client masks it).
    pub fn normalized(&self, ids: &[u32], mask: Option<&[bool]>) -> Result<Vec<u64>> {
        let c = &self.config;
        check_ids(ids, c.vocab_size, c.max_position_embeddings)?;
        if mask.is_some_and(|m| m.len() != ids.len()) {
            return Err(Error::shape(
                "mask entries (one per token)",
                mask.map_or(0, |m| m.len()),
                ids.len(),
            ));
        }
        let (n, d, eps) = (ids.len(), c.hidden_size, c.layer_norm_eps);
        let mut y = Vec::with_capacity(n * d);
        for (t, &id) in ids.iter().enumerate() {
            let (w, p) = (id as usize * d, t * d);
            y.extend((0..d).map(|j| {
                R.add(
                    R.add(self.word[w + j], self.position[p + j]),
                    self.token_type[j],
                )
            }));
        }
        let ab = self.ablation;
        let half = if ab.floor { 0 } else { HALF };
        normalize(&mut y, d, eps, ab.exact_layernorm);
        let (heads, dh) = (c.num_attention_heads, c.head_dim());
        for (l, lw) in self.layers.iter().enumerate() {
            let h = lw.input_affine.apply(&y);
            let qkv = lw.qkv.forward(&y, n);
            let mut ctx = vec![0u64; n * d];
            for hd in 0..heads {
                let cols = |part: usize| -> Vec<u64> {
                    qkv.chunks_exact(3 * d)
                        .flat_map(|r| r[part * d + hd * dh..part * d + (hd + 1) * dh].to_vec())
                        .collect()
                };
                let (qh, kh, vh) = (cols(0), cols(1), cols(2));
                let kt: Vec<u64> = (0..dh * n).map(|i| kh[(i % n) * dh + i / n]).collect();
                let mut scores = ring_matmul(&qh, &kt, n, dh, n);
                let mut recips = Vec::with_capacity(n);
                for row in scores.chunks_exact_mut(n) {
                    row.iter_mut()
                        .for_each(|s| *s = trunc(R, R.add(*s, half), LIN.frac_bits()));
                    recips.push(self.softmax_unnormalized(l, row, mask));
                }
                // P·V as diag(r)·(E·V), each product rounded, as the secure attention does.
                let (r_frac, r_half) = self.recip_frac();
                let out = ring_matmul(&scores, &vh, n, n, dh);
                for (i, orow) in out.chunks_exact(dh).enumerate() {
                    for (t, &o) in orow.iter().enumerate() {
                        let ev = trunc(R, R.add(o, half), LIN.frac_bits());
                        let p = R.add(R.mul(ev, recips[i]), if ab.floor { 0 } else { r_half });
                        ctx[i * d + hd * dh + t] = trunc(R, p, r_frac);
                    }
                }
            }
            let mut a = lw.attn_out.forward(&ctx, n);
            a.iter_mut().zip(&h).for_each(|(x, &r)| *x = R.add(*x, r));
            normalize(&mut a, d, eps, ab.exact_layernorm);
            let residual = lw.ffn_affine.apply(&a);
            let mut up = lw.ffn_up.forward(&a, n);
            up.iter_mut().for_each(|x| *x = self.gelu(l, *x));
            let mut out = lw.ffn_down.forward(&up, n);
            out.iter_mut()
                .zip(&residual)
                .for_each(|(x, &r)| *x = R.add(*x, r));
            normalize(&mut out, d, eps, ab.exact_layernorm);
            y = out;
        }
        Ok(y)
    }

    /// GELU of layer `l` (the set's, or the ablation's substitute).
    fn gelu(&self, l: usize, x: u64) -> u64 {
        let ab = self.ablation;
        if ab.exact_gelu {
            requantize(x, gelu_f64)
        } else {
            gelu(&self.set, l, x)
        }
    }

    /// Fraction bits of the softmax reciprocals [`Self::softmax_unnormalized`] returns, and
    /// the rounding half at that shift.
    fn recip_frac(&self) -> (u32, u64) {
        let f = self.set.plan.softmax.r_frac;
        (f, 1 << (f - 1))
    }

    /// Softmax of one attention row of layer `l` up to its normalisation: the exps replace the
    /// row, the row sum's reciprocal is returned (at [`Self::recip_frac`] bits). The mirror's
    /// [`softmax_row_unnormalized`], or with the ablation's exps and reciprocal.
    fn softmax_unnormalized(&self, l: usize, row: &mut [u64], mask: Option<&[bool]>) -> u64 {
        let ab = self.ablation;
        if !(ab.exact_exp || ab.exact_reciprocal) {
            return softmax_row_unnormalized(&self.set, l, row, ScoreMask::Private(mask));
        }
        let keep = |i: usize| mask.is_none_or(|m| m[i]);
        let max = (0..row.len())
            .filter(|&i| keep(i))
            .map(|i| R.to_signed(row[i]))
            .max()
            .unwrap_or(0);
        let mut sum = 0u64;
        for (i, v) in row.iter_mut().enumerate() {
            let z = R.sub(*v, R.from_signed(max));
            *v = if !keep(i) {
                0
            } else if ab.exact_exp {
                requantize(z, f64::exp)
            } else {
                exp_nonpositive(&self.set, l, z)
            };
            sum = R.add(sum, *v);
        }
        // The reciprocal at 18 bits, rounded to the plan's r_frac.
        let r = if ab.exact_reciprocal {
            requantize(sum, |s| 1.0 / s)
        } else {
            reciprocal(sum)
        };
        let shift = LIN.frac_bits() - self.recip_frac().0;
        trunc(R, R.add(r, 1 << (shift - 1)), shift)
    }

    /// Mean over tokens of a hidden state: the column sums times 1/n, truncated.
    pub fn mean_pool(&self, hidden: &[u64]) -> Vec<u64> {
        let d = self.config.hidden_size;
        let n = hidden.len() / d;
        (0..d)
            .map(|j| {
                let sum = (0..n).fold(0u64, |s, t| R.add(s, hidden[t * d + j]));
                mul_public(LIN, sum, 1.0 / n as f64)
            })
            .collect()
    }

    /// The pooler output `tanh(h[0] · W + b)`.
    pub fn pooler(&self, hidden: &[u64]) -> Vec<u64> {
        let d = self.config.hidden_size;
        self.pooler
            .forward(&hidden[..d], 1)
            .into_iter()
            .map(tanh)
            .collect()
    }
}

impl Embedder for FixedBert {
    fn embed(&self, ids: &[u32]) -> Result<Vec<f64>> {
        let hidden = self.encode(ids)?;
        Ok(LIN.decode_vec(&self.mean_pool(&hidden)))
    }
}

#[cfg(test)]
mod tests;
