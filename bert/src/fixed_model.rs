//! The fixed-point reference: exactly the arithmetic the secure run performs, on ring elements.
//!
//! * Activations: Z_2^64 with 18 fraction bits ([`FixedPoint::LINEAR`]).
//! * Linear layers: `X · W` with both operands at 18 bits (36-bit products, wrapping `u64`), plus
//!   the bias encoded at 36 bits, then one truncation by 18 (exact arithmetic shift).
//! * Attention: the scale 1/√d_head is folded into the query weights and bias before encoding
//!   (free, and exact for the float model up to rounding), so `Q·Kᵀ` and `P·V` are plain ring
//!   products followed by a truncation by 18.
//! * Softmax, GELU, LayerNorm, tanh: the evaluators of [`ot_nonlinear::approx::fixed`] with the
//!   chosen [`ApproxSet`] (GELU and exp per layer).
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
use ot_nonlinear::approx::fixed::{
    exp_nonpositive, gelu, layernorm_row, mul_public, mul_trunc, reciprocal, softmax_row, tanh,
    trunc,
};
use ot_nonlinear::approx::ApproxSet;

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
    /// LayerNorm rows in f64 (mean, variance, 1/√·, γ, β).
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

/// A dense layer in fixed point: `w` (`inputs × outputs`, row-major) at 18 bits, `b` at 36 bits.
#[derive(Clone, Debug)]
struct FixedLinear {
    w: Vec<u64>,
    b: Vec<u64>,
    inputs: usize,
    outputs: usize,
}

impl FixedLinear {
    /// Encodes `scale · l`; `offset` (at 36 bits) is added to every bias (the rounding half).
    fn encode(l: &Linear, scale: f32, offset: u64, name: &str) -> Result<FixedLinear> {
        let wide = FixedPoint::new(R, 2 * LIN.frac_bits())?;
        let ctx = |e: Error| Error::OutOfRange(format!("{name}: {e}"));
        Ok(FixedLinear {
            w: l.w
                .iter()
                .map(|&x| LIN.encode((x * scale) as f64))
                .collect::<Result<_>>()
                .map_err(ctx)?,
            b: l.b
                .iter()
                .map(|&x| Ok(R.add(wide.encode((x * scale) as f64)?, offset)))
                .collect::<Result<_>>()
                .map_err(ctx)?,
            inputs: l.w.nrows(),
            outputs: l.w.ncols(),
        })
    }

    /// `trunc(X · W + b, 18)` for `X` of `rows × inputs`.
    fn forward(&self, x: &[u64], rows: usize) -> Vec<u64> {
        let mut out = matmul(x, &self.w, rows, self.inputs, self.outputs);
        for row in out.chunks_exact_mut(self.outputs) {
            for (v, &b) in row.iter_mut().zip(&self.b) {
                *v = trunc(R, v.wrapping_add(b), LIN.frac_bits());
            }
        }
        out
    }
}

/// `A · B` in Z_2^64 (wrapping), `A` is `n × k`, `B` is `k × m`, both row-major; no truncation.
///
/// When every signed entry fits 32 bits (the usual case at 18 fraction bits) the products are
/// 32 × 32 → 64-bit signed multiplies, which equal the ring products exactly and vectorise
/// (AVX2 `vpmuldq`, chosen at run time); otherwise full 64-bit wrapping products.
fn matmul(a: &[u64], b: &[u64], n: usize, k: usize, m: usize) -> Vec<u64> {
    let fits = |v: &[u64]| v.iter().all(|&x| i32::try_from(x as i64).is_ok());
    let mut out = vec![0u64; n * m];
    if fits(a) && fits(b) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { matmul_small_avx2(a, b, k, m, &mut out) };
            return out;
        }
        matmul_small(a, b, k, m, &mut out);
    } else {
        for (orow, arow) in out.chunks_exact_mut(m).zip(a.chunks_exact(k)) {
            for (&x, brow) in arow.iter().zip(b.chunks_exact(m)) {
                for (o, &y) in orow.iter_mut().zip(brow) {
                    *o = o.wrapping_add(x.wrapping_mul(y));
                }
            }
        }
    }
    out
}

/// [`matmul`] for entries that fit 32 signed bits, accumulating into `out`.
#[inline(always)]
fn matmul_small(a: &[u64], b: &[u64], k: usize, m: usize, out: &mut [u64]) {
    for (orow, arow) in out.chunks_exact_mut(m).zip(a.chunks_exact(k)) {
        for (&x, brow) in arow.iter().zip(b.chunks_exact(m)) {
            let x = x as i32 as i64;
            for (o, &y) in orow.iter_mut().zip(brow) {
                *o = o.wrapping_add(x.wrapping_mul(y as i32 as i64) as u64);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matmul_small_avx2(a: &[u64], b: &[u64], k: usize, m: usize, out: &mut [u64]) {
    matmul_small(a, b, k, m, out)
}

#[derive(Clone, Debug)]
struct FixedLayerNorm {
    gamma: Vec<u64>,
    beta: Vec<u64>,
}

impl FixedLayerNorm {
    fn encode(p: &LayerNormParams, name: &str) -> Result<FixedLayerNorm> {
        let enc = |v: &ndarray::Array1<f32>| {
            v.iter()
                .map(|&x| LIN.encode(x as f64))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| Error::OutOfRange(format!("{name}: {e}")))
        };
        Ok(FixedLayerNorm {
            gamma: enc(&p.gamma)?,
            beta: enc(&p.beta)?,
        })
    }

    fn apply(&self, x: &mut [u64], eps: f64, exact: bool) {
        for row in x.chunks_exact_mut(self.gamma.len()) {
            if exact {
                let n = row.len() as f64;
                let v = LIN.decode_vec(row);
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let inv = 1.0 / (var + eps).sqrt();
                for (i, o) in row.iter_mut().enumerate() {
                    let (g, b) = (LIN.decode(self.gamma[i]), LIN.decode(self.beta[i]));
                    *o = encode((v[i] - mean) * inv * g + b);
                }
            } else {
                layernorm_row(row, &self.gamma, &self.beta, eps);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct FixedLayer {
    query: FixedLinear,
    key: FixedLinear,
    value: FixedLinear,
    attn_out: FixedLinear,
    attn_ln: FixedLayerNorm,
    ffn_up: FixedLinear,
    ffn_down: FixedLinear,
    ffn_ln: FixedLayerNorm,
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
    embeddings_ln: FixedLayerNorm,
    layers: Vec<FixedLayer>,
    pooler: FixedLinear,
}

impl FixedBert {
    /// Encodes the weights (18 bits; biases 36 bits; 1/√d_head folded into the queries) and
    /// checks the approximation set against the number of layers.
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
                .map_err(|e| Error::OutOfRange(format!("{name}: {e}")))
        };
        let scale = 1.0 / (c.head_dim() as f32).sqrt();
        let layers = weights
            .layers
            .iter()
            .enumerate()
            .map(|(l, w)| {
                let n = |s: &str| format!("layer {l} {s}");
                Ok(FixedLayer {
                    query: FixedLinear::encode(&w.query, scale, half, &n("query"))?,
                    key: FixedLinear::encode(&w.key, 1.0, half, &n("key"))?,
                    value: FixedLinear::encode(&w.value, 1.0, half, &n("value"))?,
                    attn_out: FixedLinear::encode(&w.attn_out, 1.0, half, &n("attention output"))?,
                    attn_ln: FixedLayerNorm::encode(&w.attn_ln, &n("attention LayerNorm"))?,
                    ffn_up: FixedLinear::encode(&w.ffn_up, 1.0, half, &n("intermediate"))?,
                    ffn_down: FixedLinear::encode(&w.ffn_down, 1.0, half, &n("output"))?,
                    ffn_ln: FixedLayerNorm::encode(&w.ffn_ln, &n("output LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FixedBert {
            config: c.clone(),
            set,
            ablation,
            word: table(&weights.word_embeddings, "word embeddings")?,
            position: table(&weights.position_embeddings, "position embeddings")?,
            token_type: table(&weights.token_type_embeddings, "token type embeddings")?,
            embeddings_ln: FixedLayerNorm::encode(&weights.embeddings_ln, "embeddings LayerNorm")?,
            layers,
            pooler: FixedLinear::encode(&weights.pooler, 1.0, half, "pooler")?,
        })
    }

    /// The approximation set.
    pub fn set(&self) -> &ApproxSet {
        &self.set
    }

    /// The last hidden state (`tokens × d`, row-major, Z_2^64 with 18 bits) of one unpadded
    /// sequence (token type 0).
    pub fn encode(&self, ids: &[u32]) -> Result<Vec<u64>> {
        let c = &self.config;
        check_ids(ids, c.vocab_size, c.max_position_embeddings)?;
        let (n, d, eps) = (ids.len(), c.hidden_size, c.layer_norm_eps);
        let mut h = Vec::with_capacity(n * d);
        for (t, &id) in ids.iter().enumerate() {
            let (w, p) = (id as usize * d, t * d);
            h.extend((0..d).map(|j| {
                R.add(
                    R.add(self.word[w + j], self.position[p + j]),
                    self.token_type[j],
                )
            }));
        }
        let ab = self.ablation;
        let half = if ab.floor { 0 } else { HALF };
        self.embeddings_ln.apply(&mut h, eps, ab.exact_layernorm);
        let (heads, dh) = (c.num_attention_heads, c.head_dim());
        for (l, lw) in self.layers.iter().enumerate() {
            let q = lw.query.forward(&h, n);
            let k = lw.key.forward(&h, n);
            let v = lw.value.forward(&h, n);
            let mut ctx = vec![0u64; n * d];
            for hd in 0..heads {
                let cols = |m: &[u64]| -> Vec<u64> {
                    m.chunks_exact(d)
                        .flat_map(|r| r[hd * dh..(hd + 1) * dh].to_vec())
                        .collect()
                };
                let (qh, kh, vh) = (cols(&q), cols(&k), cols(&v));
                let kt: Vec<u64> = (0..dh * n).map(|i| kh[(i % n) * dh + i / n]).collect();
                let mut scores = matmul(&qh, &kt, n, dh, n);
                for row in scores.chunks_exact_mut(n) {
                    row.iter_mut()
                        .for_each(|s| *s = trunc(R, R.add(*s, half), LIN.frac_bits()));
                    self.softmax(l, row);
                }
                let out = matmul(&scores, &vh, n, n, dh);
                for (i, orow) in out.chunks_exact(dh).enumerate() {
                    for (t, &o) in orow.iter().enumerate() {
                        ctx[i * d + hd * dh + t] = trunc(R, R.add(o, half), LIN.frac_bits());
                    }
                }
            }
            let mut a = lw.attn_out.forward(&ctx, n);
            a.iter_mut().zip(&h).for_each(|(x, &r)| *x = R.add(*x, r));
            lw.attn_ln.apply(&mut a, eps, ab.exact_layernorm);
            let mut up = lw.ffn_up.forward(&a, n);
            up.iter_mut().for_each(|x| *x = self.gelu(l, *x));
            let mut out = lw.ffn_down.forward(&up, n);
            out.iter_mut().zip(&a).for_each(|(x, &r)| *x = R.add(*x, r));
            lw.ffn_ln.apply(&mut out, eps, ab.exact_layernorm);
            h = out;
        }
        Ok(h)
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

    /// Softmax of one attention row of layer `l`: the mirror's [`softmax_row`], or with the
    /// ablation's exps and reciprocal.
    fn softmax(&self, l: usize, row: &mut [u64]) {
        let ab = self.ablation;
        if !(ab.exact_exp || ab.exact_reciprocal) {
            return softmax_row(&self.set, l, row, None);
        }
        let max = row.iter().map(|&v| R.to_signed(v)).max().unwrap_or(0);
        let mut sum = 0u64;
        for v in row.iter_mut() {
            let z = R.sub(*v, R.from_signed(max));
            *v = if ab.exact_exp {
                requantize(z, f64::exp)
            } else {
                exp_nonpositive(&self.set, l, z)
            };
            sum = R.add(sum, *v);
        }
        let r = if ab.exact_reciprocal {
            requantize(sum, |s| 1.0 / s)
        } else {
            reciprocal(sum)
        };
        row.iter_mut().for_each(|v| *v = mul_trunc(LIN, *v, r));
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
mod tests {
    use super::*;
    use crate::float_model::mean_pool;
    use crate::FloatBert;

    #[test]
    fn matmul_wraps_and_linear_truncates() {
        // [[1, 2]] · [[3], [−4]] = −5 in the ring.
        let a = [1, 2];
        let b = [3, R.from_signed(-4)];
        assert_eq!(matmul(&a, &b, 1, 2, 1), vec![R.from_signed(-5)]);
        // The 32-bit fast path and the 64-bit path agree with the ring definition.
        for big in [0u64, 1 << 40] {
            let a: Vec<u64> = (0..12u64)
                .map(|i| R.from_signed(i as i64 * 7919 - 40_000) ^ big)
                .collect();
            let b: Vec<u64> = (0..20u64)
                .map(|i| R.from_signed(30_011 - i as i64 * 3001))
                .collect();
            let want: Vec<u64> = (0..3 * 5)
                .map(|ij| {
                    let (i, j) = (ij / 5, ij % 5);
                    (0..4).fold(0u64, |s, t| {
                        s.wrapping_add(a[i * 4 + t].wrapping_mul(b[t * 5 + j]))
                    })
                })
                .collect();
            assert_eq!(matmul(&a, &b, 3, 4, 5), want);
        }
        let l = Linear {
            w: Array2::from_shape_vec((2, 1), vec![0.5, -0.25]).unwrap(),
            b: ndarray::Array1::from_vec(vec![0.125]),
        };
        let fl = FixedLinear::encode(&l, 1.0, 0, "t").unwrap();
        let x = LIN.encode_vec(&[2.0, 3.0]).unwrap();
        assert_eq!(LIN.decode(fl.forward(&x, 1)[0]), 1.0 - 0.75 + 0.125);
    }

    #[test]
    fn tiny_model_tracks_float_and_is_deterministic() {
        let w = BertWeights::random(&BertConfig::tiny(), 3).unwrap();
        let float = FloatBert::new(w.clone());
        let ids = [2, 17, 99, 5, 3];
        let want = mean_pool(float.encode(&ids).unwrap().view());
        for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
            let fixed = FixedBert::new(&w, set).unwrap();
            let h = fixed.encode(&ids).unwrap();
            assert_eq!(h, fixed.encode(&ids).unwrap());
            let got = fixed.embed(&ids).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, &b)| (a - b as f64).abs())
                .fold(0.0, f64::max);
            assert!(err < 0.1, "{}: {err}", fixed.set().name);
            assert_eq!(fixed.pooler(&h).len(), 32);
        }
        // Swapping every approximation for f64 brings the nimbus model closer to float.
        let err = |ab: Ablation| {
            let fixed = FixedBert::ablated(&w, ApproxSet::nimbus(), ab).unwrap();
            let got = fixed.embed(&ids).unwrap();
            got.iter()
                .zip(&want)
                .map(|(a, &b)| (a - b as f64).abs())
                .fold(0.0, f64::max)
        };
        let exact = Ablation {
            exact_gelu: true,
            exact_exp: true,
            exact_reciprocal: true,
            exact_layernorm: true,
            floor: false,
        };
        assert!(err(exact) < 1e-3 && err(exact) < err(Ablation::default()));
        // A set fitted for another depth is refused.
        let mut set = ApproxSet::nimbus();
        set.layers = vec![set.layers[0].clone(); 3];
        assert!(FixedBert::new(&w, set).is_err());
    }
}
