//! The fixed-point mirror of the secure decoder: the same encoding (Z_2^64, 18 fraction bits),
//! the same folded weights and the same `nn` mirrors in the same order as
//! [`crate::secure`], so that the secure run reproduces it up to the truncation carries and the
//! comparisons that land on a carry.
//!
//! Folding (done once, here, for both): RMSNorm computes ŷ = x/√(mean(x²) + ε) only; its gain
//! γ scales the rows of the linear layer that consumes ŷ (diag(γ)·W); the attention scale
//! 1/√d_head is folded into the query columns; the layer's projections are fused where they
//! share an input: [Q | K | V] (hidden × (heads + 2·kv_heads)·d_head) and [gate | up]
//! (hidden × 2·ffn). The head is the (tied) output matrix with the final RMSNorm's γ folded in.
//!
//! Per block on T new rows x at positions p..p+T (the cache holds p):
//! ŷ = rmsnorm(x); [q|k|v] = ŷ·W_qkv; q, k = rope(q, k); cache ← (k, v);
//! x += attention(q, K, V, causal after p)·W_o; ŷ = rmsnorm(x); [g|u] = ŷ·W_gu;
//! x += (SiLU_l(g) ⊙ u)·W_down. Head: logits = rmsnorm(x_last)·W_head; next = argmax.
use crate::calibrate::{llama_set, NormShifts};
use crate::secure::public::DecoderShape;
use crate::{LlamaConfig, Model};
use he_linear::matrix::RingMatrix;
use mpc_core::{Error, FixedPoint, Result};
use nn::activation::piecewise_mirror;
use nn::argmax::argmax_mirror;
use nn::attention::{attention_mirror, Mask};
use nn::linear::{linear_mirror, Rescale};
use nn::norm::{norm_mirror_prescaled, Norm};
use nn::product::product_mirror;
use nn::rotary::rotary_mirror;
use ot_nonlinear::approx::ApproxSet;

const LIN: FixedPoint = FixedPoint::LINEAR;

/// The four fused linear layers of a block, in its dataflow order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// [Q | K | V], hidden × (heads + 2·kv_heads)·d_head, attention RMSNorm γ folded.
    Qkv = 0,
    /// Attention output, heads·d_head × hidden.
    O = 1,
    /// [gate | up], hidden × 2·ffn, FFN RMSNorm γ folded.
    GateUp = 2,
    /// Down, ffn × hidden.
    Down = 3,
}

/// One block's encoded weights (each in × out, row-major, 18 fraction bits).
#[derive(Clone, Debug)]
pub struct FixedLayer {
    /// Indexed by [`Projection`].
    pub linears: [RingMatrix; 4],
}

/// The encoded model: the folded, fused weights, the tied head, the embedding table and the
/// approximation set (SiLU per layer, exp).
#[derive(Clone, Debug)]
pub struct FixedLlama {
    config: LlamaConfig,
    set: ApproxSet,
    shifts: NormShifts,
    layers: Vec<FixedLayer>,
    head: RingMatrix,
    embedding: Vec<u64>,
}

/// `w` (out × in, row-major as in GGUF) transposed to in × out, row i scaled by `row_gain[i]`
/// and column j by `col_gain(j)`, encoded.
fn encode_transposed(
    w: &[f32],
    outs: usize,
    ins: usize,
    row_gain: &[f32],
    col_gain: impl Fn(usize) -> f64,
    what: &str,
) -> Result<Vec<u64>> {
    if w.len() != outs * ins {
        return Err(Error::shape(
            format!("{what}: weights"),
            w.len(),
            [outs, ins],
        ));
    }
    if row_gain.len() != ins {
        return Err(Error::shape(format!("{what}: gains"), row_gain.len(), ins));
    }
    let mut out = vec![0u64; ins * outs];
    for j in 0..outs {
        let cg = col_gain(j);
        for i in 0..ins {
            let v = f64::from(w[j * ins + i]) * f64::from(row_gain[i]) * cg;
            out[i * outs + j] = LIN.encode(v)?;
        }
    }
    Ok(out)
}

/// Concatenates in × n_a and in × n_b column blocks.
fn hcat(blocks: &[(&[u64], usize)], ins: usize) -> Vec<u64> {
    let total: usize = blocks.iter().map(|b| b.1).sum();
    let mut out = Vec::with_capacity(ins * total);
    for i in 0..ins {
        for &(b, n) in blocks {
            out.extend_from_slice(&b[i * n..(i + 1) * n]);
        }
    }
    out
}

impl FixedLlama {
    /// Encodes `model` with the approximation set `set` (one SiLU table per layer) and the
    /// norms' prescales `shifts` (see [`crate::calibrate`]).
    pub fn new(model: &Model, set: ApproxSet, shifts: NormShifts) -> Result<FixedLlama> {
        let c = model.config.clone();
        set.validate(c.n_layers)?;
        shifts.check(c.n_layers)?;
        let w = &model.weights;
        let (d, dh) = (c.hidden, c.head_dim);
        let (qw, kvw) = (c.n_heads * dh, c.kv_width());
        let ones = vec![1.0f32; qw.max(c.ffn)];
        let scale = 1.0 / (dh as f64).sqrt();
        let mut layers = Vec::with_capacity(c.n_layers);
        for (l, lw) in w.layers.iter().enumerate() {
            let name = |t: &str| format!("layer {l} {t}");
            let q = encode_transposed(&lw.wq, qw, d, &lw.attn_norm, |_| scale, &name("wq"))?;
            let k = encode_transposed(&lw.wk, kvw, d, &lw.attn_norm, |_| 1.0, &name("wk"))?;
            let v = encode_transposed(&lw.wv, kvw, d, &lw.attn_norm, |_| 1.0, &name("wv"))?;
            let o = encode_transposed(&lw.wo, d, qw, &ones[..qw], |_| 1.0, &name("wo"))?;
            let g = encode_transposed(&lw.w_gate, c.ffn, d, &lw.ffn_norm, |_| 1.0, &name("gate"))?;
            let u = encode_transposed(&lw.w_up, c.ffn, d, &lw.ffn_norm, |_| 1.0, &name("up"))?;
            let dn =
                encode_transposed(&lw.w_down, d, c.ffn, &ones[..c.ffn], |_| 1.0, &name("down"))?;
            let qkv = hcat(&[(&q, qw), (&k, kvw), (&v, kvw)], d);
            let gu = hcat(&[(&g, c.ffn), (&u, c.ffn)], d);
            layers.push(FixedLayer {
                linears: [
                    RingMatrix::new(d, qw + 2 * kvw, qkv)?,
                    RingMatrix::new(qw, d, o)?,
                    RingMatrix::new(d, 2 * c.ffn, gu)?,
                    RingMatrix::new(c.ffn, d, dn)?,
                ],
            });
        }
        let head = encode_transposed(w.head(), c.vocab, d, &w.output_norm, |_| 1.0, "head")?;
        let embedding = w
            .token_embedding
            .iter()
            .map(|&v| LIN.encode(f64::from(v)))
            .collect::<Result<Vec<u64>>>()?;
        Ok(FixedLlama {
            config: c.clone(),
            set,
            shifts,
            layers,
            head: RingMatrix::new(d, c.vocab, head)?,
            embedding,
        })
    }

    /// Encodes `model` with the default set ([`llama_set`] on the default SiLU table) and no
    /// prescales.
    pub fn with_default_set(model: &Model) -> Result<FixedLlama> {
        let n = model.config.n_layers;
        FixedLlama::new(model, llama_set(None, n)?, NormShifts::none(n))
    }

    /// The norms' prescales.
    pub fn shifts(&self) -> &NormShifts {
        &self.shifts
    }

    /// The shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The approximation set.
    pub fn set(&self) -> &ApproxSet {
        &self.set
    }

    /// Block `l`'s weights.
    pub fn layer(&self, l: usize) -> &FixedLayer {
        &self.layers[l]
    }

    /// The head (hidden × vocab, final γ folded).
    pub fn head(&self) -> &RingMatrix {
        &self.head
    }

    /// The embedding table (vocab × hidden).
    pub fn embedding(&self) -> &[u64] {
        &self.embedding
    }

    /// The shape both parties know.
    pub fn shape(&self) -> DecoderShape {
        DecoderShape::from(&self.config)
    }
}

/// The mirror's running state: one sequence's key/value cache (plaintext ring values).
#[derive(Debug)]
pub struct FixedDecoder<'a> {
    model: &'a FixedLlama,
    keys: Vec<Vec<u64>>,
    values: Vec<Vec<u64>>,
    positions: usize,
}

impl<'a> FixedDecoder<'a> {
    /// An empty cache.
    pub fn new(model: &'a FixedLlama) -> FixedDecoder<'a> {
        let n = model.config.n_layers;
        FixedDecoder {
            model,
            keys: vec![Vec::new(); n],
            values: vec![Vec::new(); n],
            positions: 0,
        }
    }

    /// Positions cached.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Runs `ids` (the prompt, or one generated token) and returns the last position's logits
    /// (18 fraction bits).
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<u64>> {
        let m = self.model;
        let c = &m.config;
        check_ids(&m.shape(), ids, self.positions)?;
        let d = c.hidden;
        let mut x: Vec<u64> = ids
            .iter()
            .flat_map(|&id| {
                m.embedding[id as usize * d..(id as usize + 1) * d]
                    .iter()
                    .copied()
            })
            .collect();
        for l in 0..c.n_layers {
            self.block(l, &mut x, ids.len())?;
        }
        self.positions += ids.len();
        let last = &x[(ids.len() - 1) * d..];
        let eps = f64::from(c.rms_eps);
        let last_position = self.positions - 1;
        let shift = NormShifts::rows(m.shifts.output, 1, last_position);
        let y = norm_mirror_prescaled(Norm::RmsNorm, last, d, eps, &shift)?;
        Ok(linear_mirror(
            &y,
            m.head.data(),
            &vec![0; c.vocab],
            1,
            Rescale::Truncate,
        ))
    }

    /// [`FixedDecoder::forward`] and the argmax of its logits.
    pub fn next_token(&mut self, ids: &[u32]) -> Result<u32> {
        let logits = self.forward(ids)?;
        Ok(argmax_mirror(&logits, logits.len())[0] as u32)
    }

    /// Greedy generation of `new_tokens` after `prompt`.
    pub fn generate_greedy(&mut self, prompt: &[u32], new_tokens: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(new_tokens);
        if new_tokens == 0 {
            return Ok(out);
        }
        let mut next = self.next_token(prompt)?;
        out.push(next);
        while out.len() < new_tokens {
            next = self.next_token(&[next])?;
            out.push(next);
        }
        Ok(out)
    }

    /// Teacher forcing: the argmax after `prompt`, then after each token of `continuation` fed
    /// in turn (not the decoder's own choices), one per token of `continuation`. Compared with
    /// `continuation` itself (another model's greedy ids), it measures agreement step by
    /// step without one near-tie derailing the rest.
    pub fn follow(&mut self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(continuation.len());
        let Some((_, fed)) = continuation.split_last() else {
            return Ok(out);
        };
        out.push(self.next_token(prompt)?);
        for &id in fed {
            out.push(self.next_token(&[id])?);
        }
        Ok(out)
    }

    fn block(&mut self, l: usize, x: &mut [u64], t: usize) -> Result<()> {
        let m = self.model;
        let c = &m.config;
        let (d, eps) = (c.hidden, f64::from(c.rms_eps));
        let (qw, kvw) = (c.n_heads * c.head_dim, c.kv_width());
        let shape = m.shape();
        let lin = |p: Projection, y: &[u64]| {
            let w = &m.layers[l].linears[p as usize];
            linear_mirror(y, w.data(), &vec![0; w.cols()], t, Rescale::Truncate)
        };
        let rows = |pair| NormShifts::rows(pair, t, self.positions);
        let y = norm_mirror_prescaled(Norm::RmsNorm, x, d, eps, &rows(m.shifts.attention[l]))?;
        let qkv = lin(Projection::Qkv, &y);
        let (qk, v, _) = split3(&qkv, t, qw + kvw, kvw, 0);
        let qk = rotary_mirror(&shape.rotary(), &qk, qw + kvw, self.positions);
        let (q, k, _) = split3(&qk, t, qw, kvw, 0);
        self.keys[l].extend_from_slice(&k);
        self.values[l].extend_from_slice(&v);
        let ctx = attention_mirror(
            &m.set,
            l,
            shape.attention(t, self.positions),
            (&q, &self.keys[l], &self.values[l]),
            Mask::Causal {
                past: self.positions,
            },
        );
        add_into(x, &lin(Projection::O, &ctx));
        let y = norm_mirror_prescaled(Norm::RmsNorm, x, d, eps, &rows(m.shifts.ffn[l]))?;
        let gu = lin(Projection::GateUp, &y);
        let (g, u, _) = split3(&gu, t, c.ffn, c.ffn, 0);
        let s = piecewise_mirror(&m.set.layer(l).gelu, &m.set.plan.gelu, &g);
        let p = product_mirror(&s, &u);
        add_into(x, &lin(Projection::Down, &p));
        Ok(())
    }
}

/// Checks a run's ids against the vocabulary and the context after `past` positions.
pub fn check_ids(c: &DecoderShape, ids: &[u32], past: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::shape("tokens to run", 0, mpc_core::Dims::AtLeast(1)));
    }
    if past + ids.len() > c.context {
        return Err(Error::shape(
            format!("context positions ({} tokens after {past})", ids.len()),
            past + ids.len(),
            mpc_core::Dims::AtMost(c.context),
        ));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab) {
        return Err(Error::out_of_range(
            "token id",
            id as usize,
            mpc_core::Dims::Below(c.vocab),
        ));
    }
    Ok(())
}

/// Splits rows of a + b + c columns into three row-major blocks.
pub(crate) fn split3(
    x: &[u64],
    rows: usize,
    a: usize,
    b: usize,
    c: usize,
) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let w = a + b + c;
    let (mut xa, mut xb, mut xc) = (
        Vec::with_capacity(rows * a),
        Vec::with_capacity(rows * b),
        Vec::with_capacity(rows * c),
    );
    for row in x.chunks_exact(w) {
        xa.extend_from_slice(&row[..a]);
        xb.extend_from_slice(&row[a..a + b]);
        xc.extend_from_slice(&row[a + b..]);
    }
    (xa, xb, xc)
}

fn add_into(x: &mut [u64], y: &[u64]) {
    x.iter_mut()
        .zip(y)
        .for_each(|(a, &b)| *a = a.wrapping_add(b));
}
