//! Multi-head attention on shares, after the projections: per head h,
//! `softmax(Q_h·K_hᵀ + mask)·V_h`, with grouped-query heads (several query heads reading one
//! key/value head) and a padding or causal mask. The 1/√d_head scale is folded into the query
//! weights by the caller.
//!
//! Steps, each under its own label ([`Component`]):
//! 1. `attention/qk`: Q_h·K_hᵀ for all heads, secret × secret ([`secret_matmul`]); with
//!    grouped queries, the query heads of one key/value head stacked into one product when
//!    that moves fewer bytes (a decoder step's single query row: a third of the ciphertexts
//!    for SmolLM2's groups of three), as in steps 3 and 4;
//! 2. `attention/softmax`: the Softmax up to its normalisation
//!    ([`ot_nonlinear::functions::softmax_unnormalized`]): exps E and per-row reciprocals r; the
//!    mask is applied by the client alone, on its share (a padding mask is its private input,
//!    a causal mask is public);
//! 3. `attention/pv`: E_h·V_h, secret × secret;
//! 4. `attention/normalize`: diag(r_h)·(E_h·V_h) on HE ([`he_linear::row_products`]), which
//!    scales d_head values per row instead of the row's keys.
//!
//! Mirror: [`attention_mirror`]. Cost: [`attention_cost`].
use crate::cast::{round_products, LINEAR};
use crate::keys::HeKeys;
use crate::label::Component;
use crate::matmul::{matmul_cost, matmul_mirror, secret_matmul, PRODUCT_SHIFT};
use crate::tensor::SharedTensor;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products;
use mpc_core::{Error, Result, Ring};
use ot_nonlinear::approx::fixed::softmax_row_unnormalized;
use ot_nonlinear::approx::{ApproxSet, ScoreMask};
use ot_nonlinear::functions::{softmax_unnormalized, softmax_unnormalized_cost};
use ot_nonlinear::mpc::{Cost, Session};

/// Which keys a query may attend to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask<'a> {
    /// Every key.
    Full,
    /// The client's padding mask over the keys (true = a real token): the client's private
    /// input, so the client passes `Some` and the server `None`.
    Padding(Option<&'a [bool]>),
    /// Causal: query i (at absolute position `past + i`) sees keys 0..=past + i. Public.
    Causal {
        /// Positions before the first query (keys already in the cache).
        past: usize,
    },
}

impl Mask<'_> {
    /// Whether query `i` may see key `j` (the padding mask as the client holds it).
    pub(crate) fn allows(&self, i: usize, j: usize) -> bool {
        match *self {
            Mask::Full => true,
            Mask::Padding(m) => m.is_none_or(|m| m[j]),
            Mask::Causal { past } => j <= past + i,
        }
    }

    /// The per-score mask bits of `heads` heads of `q × k` scores as this party passes them
    /// (`None` where nothing is masked, and on the server for the client's padding); see
    /// [`Mask::score_mask`].
    pub(crate) fn score_bits(
        &self,
        sess: &Session,
        heads: usize,
        q: usize,
        k: usize,
    ) -> Result<Option<Vec<bool>>> {
        match *self {
            Mask::Full => return Ok(None),
            Mask::Padding(m) => {
                if sess.is_server() && m.is_some() {
                    return Err(Error::InvalidArgument(
                        "the padding mask is the client's input".into(),
                    ));
                }
                if m.is_some_and(|m| m.len() != k) {
                    return Err(Error::Shape(format!(
                        "a padding mask of {} for {k} keys",
                        m.map_or(0, |m| m.len())
                    )));
                }
                if sess.is_server() {
                    return Ok(None);
                }
            }
            Mask::Causal { past } => {
                if past + q < k {
                    return Err(Error::Shape(format!(
                        "causal mask: {q} queries after {past} positions see fewer than {k} keys"
                    )));
                }
                // A decoder step's single query sees every key.
                if past + 1 >= k {
                    return Ok(None);
                }
            }
        }
        Ok(Some(
            (0..heads * q * k)
                .map(|e| self.allows((e / k) % q, e % k))
                .collect(),
        ))
    }

    /// The Softmax mask over `bits` ([`Mask::score_bits`]): the padding is the client's
    /// private mask, the causal mask a public one both parties apply exactly.
    pub(crate) fn score_mask<'b>(&self, bits: Option<&'b [bool]>) -> ScoreMask<'b> {
        match (self, bits) {
            (_, None) if !matches!(self, Mask::Padding(_)) => ScoreMask::None,
            (Mask::Causal { .. }, Some(b)) => ScoreMask::Public(b),
            (_, b) => ScoreMask::Private(b),
        }
    }
}

/// The shapes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query rows (tokens of this call).
    pub queries: usize,
    /// Key/value rows (the queries' own and any cached ones).
    pub keys: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`; equal to it without grouped queries).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttentionShape {
    fn check(&self) -> Result<()> {
        if self.queries == 0
            || self.keys == 0
            || self.head_dim == 0
            || self.kv_heads == 0
            || self.heads % self.kv_heads != 0
        {
            return Err(Error::Shape(format!("attention shape {self:?}")));
        }
        Ok(())
    }

    /// The key/value head that query head `h` reads.
    pub fn kv_head(&self, h: usize) -> usize {
        h / self.group()
    }

    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// Columns `[h·dh, (h+1)·dh)` of a row-major `rows × (heads·dh)` share.
fn head_columns(x: &SharedTensor, h: usize, dh: usize) -> Result<SharedTensor> {
    let data = (0..x.rows())
        .flat_map(|t| x.row(t)[h * dh..(h + 1) * dh].iter().copied())
        .collect();
    SharedTensor::matrix(x.rows(), dh, x.format(), data)
}

fn transpose(x: &SharedTensor) -> Result<SharedTensor> {
    let m = RingMatrix::new(x.rows(), x.cols(), x.share().to_vec())?.transpose();
    SharedTensor::matrix(m.rows(), m.cols(), x.format(), m.data().to_vec())
}

/// Multi-head attention: Q (queries × heads·dh), K and V (keys × kv_heads·dh), all Z_2^64 with
/// 18 fraction bits; returns the context (queries × heads·dh). `layer` selects the set's exp.
/// The server passes the exp's breakpoints, the client `None`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    sess: &mut Session,
    he: &HeKeys<'_>,
    set: &ApproxSet,
    layer: usize,
    exp_breakpoints: Option<&[f64]>,
    shape: AttentionShape,
    (q, k, v): (&SharedTensor, &SharedTensor, &SharedTensor),
    mask: Mask<'_>,
    tag: &dyn Fn(Component) -> String,
) -> Result<SharedTensor> {
    shape.check()?;
    let AttentionShape {
        queries,
        keys,
        heads,
        kv_heads,
        head_dim: dh,
    } = shape;
    q.expect(
        "queries",
        &crate::Shape::matrix(queries, heads * dh),
        LINEAR,
    )?;
    k.expect("keys", &crate::Shape::matrix(keys, kv_heads * dh), LINEAR)?;
    v.expect("values", &crate::Shape::matrix(keys, kv_heads * dh), LINEAR)?;
    let group = shape.group();
    let [group_qk, group_pv, group_normalize] = grouping(he.product_params, shape)?;
    let qh = (0..heads)
        .map(|h| head_columns(q, h, dh))
        .collect::<Result<Vec<_>>>()?;
    let kt = (0..kv_heads)
        .map(|h| transpose(&head_columns(k, h, dh)?))
        .collect::<Result<Vec<_>>>()?;
    let vh = (0..kv_heads)
        .map(|h| head_columns(v, h, dh))
        .collect::<Result<Vec<_>>>()?;
    let scores = sess.scope(&tag(Component::AttentionQk), |s| {
        if group_qk {
            // The query heads of one key/value head stacked: one product per group.
            let stacked = (0..kv_heads)
                .map(|g| stack_rows(&qh[g * group..(g + 1) * group]))
                .collect::<Result<Vec<_>>>()?;
            let pairs: Vec<_> = stacked.iter().zip(&kt).collect();
            secret_matmul(s, he, &pairs, PRODUCT_SHIFT)
        } else {
            let pairs: Vec<_> = (0..heads)
                .map(|h| (&qh[h], &kt[shape.kv_head(h)]))
                .collect();
            secret_matmul(s, he, &pairs, PRODUCT_SHIFT)
        }
    })?;
    // Heads are consecutive within a group and groups in order: the same flat layout
    // (head-major, then query rows, then keys) either way.
    let flat: Vec<u64> = scores
        .iter()
        .flat_map(|s| s.share().iter().copied())
        .collect();
    let (exps, recips) = sess.scope(&tag(Component::AttentionSoftmax), |s| {
        let bits = mask.score_bits(s, heads, queries, keys)?;
        softmax_unnormalized(
            s,
            set,
            layer,
            heads * queries,
            keys,
            &flat,
            exp_breakpoints,
            mask.score_mask(bits.as_deref()),
        )
    })?;
    let ev = sess.scope(&tag(Component::AttentionPv), |s| {
        let per = if group_pv { group } else { 1 };
        let e = exps
            .chunks_exact(per * queries * keys)
            .map(|eh| SharedTensor::matrix(per * queries, keys, LINEAR, eh.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<_> = e
            .iter()
            .enumerate()
            .map(|(i, e)| (e, &vh[shape.kv_head(i * per)]))
            .collect();
        secret_matmul(s, he, &pairs, PRODUCT_SHIFT)
    })?;
    sess.scope(&tag(Component::AttentionNormalize), |s| {
        let r_frac = set.plan.softmax.r_frac;
        let window = Window::new(he.product_params, r_frac, Ring::R64.bits())?;
        // E·V's rows, head-major, as the normalisation's blocks (a group's heads or one).
        let per = if group_normalize { group } else { 1 };
        let ev_flat: Vec<u64> = ev.iter().flat_map(|o| o.share().iter().copied()).collect();
        let mats = ev_flat
            .chunks_exact(per * queries * dh)
            .map(|o| RingMatrix::new(per * queries, dh, o.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<_> = recips
            .chunks_exact(per * queries)
            .zip(mats.iter())
            .collect();
        let seed = s.fresh_seed();
        let prods = row_products::row_scalar_products(
            &mut s.ch,
            he.product_params,
            he.keys,
            &pairs,
            window,
            seed,
        )?;
        // Back to token-major queries × heads·dh.
        let d = heads * dh;
        let mut ctx = vec![0u64; queries * d];
        let rows = prods
            .iter()
            .flat_map(|p| (0..p.rows()).map(move |r| p.row(r)));
        for (i, row) in rows.enumerate() {
            let (h, t) = (i / queries, i % queries);
            ctx[t * d + h * dh..t * d + (h + 1) * dh].copy_from_slice(row);
        }
        let out = round_products(s, ctx, window)?;
        SharedTensor::matrix(queries, d, LINEAR, out)
    })
}

/// The rows of `parts` (same columns and format) one after the other.
fn stack_rows(parts: &[SharedTensor]) -> Result<SharedTensor> {
    let rows = parts.iter().map(SharedTensor::rows).sum();
    let data = parts
        .iter()
        .flat_map(|p| p.share().iter().copied())
        .collect();
    SharedTensor::matrix(rows, parts[0].cols(), parts[0].format(), data)
}

/// The product shapes of attention's three HE steps, per head or per group of query heads
/// sharing a key/value head (their rows stacked).
fn step_shapes(shape: AttentionShape, grouped: bool) -> [Vec<(usize, usize, usize)>; 3] {
    let AttentionShape {
        queries: q,
        keys,
        heads,
        kv_heads,
        head_dim: dh,
    } = shape;
    let (count, rows) = if grouped {
        (kv_heads, shape.group() * q)
    } else {
        (heads, q)
    };
    [
        vec![(rows, dh, keys); count],
        vec![(rows, keys, dh); count],
        // Each block's diag(r)·O is a secret product of rows × rows by rows × dh.
        vec![(rows, rows, dh); count],
    ]
}

/// For Q·Kᵀ, E·V and the normalisation: whether to run one product per group of query heads
/// (fewer, fuller ciphertexts: a decoder step's single query row) rather than one per head.
/// Chosen by the exact bytes on public shapes, so both parties choose alike; a stacked
/// normalisation grows quadratically with the rows, so a long prompt keeps it per head.
fn grouping(params: &HeParams, shape: AttentionShape) -> Result<[bool; 3]> {
    if shape.group() == 1 {
        return Ok([false; 3]);
    }
    let single = step_shapes(shape, false);
    let grouped = step_shapes(shape, true);
    let mut out = [false; 3];
    for i in 0..3 {
        // Both sides of the comparison reveal the same window: its shift does not decide.
        let a = matmul_cost(params, &single[i], PRODUCT_SHIFT)?.bytes();
        let b = matmul_cost(params, &grouped[i], PRODUCT_SHIFT)?.bytes();
        out[i] = b <= a;
    }
    Ok(out)
}

/// Exact cost of [`attention`] per label: (qk, softmax, pv, normalize).
pub fn attention_cost(
    params: &HeParams,
    set: &ApproxSet,
    layer: usize,
    shape: AttentionShape,
) -> Result<[Cost; 4]> {
    shape.check()?;
    let AttentionShape {
        queries,
        keys,
        heads,
        ..
    } = shape;
    let grouped = grouping(params, shape)?;
    let shapes = |i: usize| step_shapes(shape, grouped[i])[i].clone();
    let qk = matmul_cost(params, &shapes(0), PRODUCT_SHIFT)?;
    let softmax = softmax_unnormalized_cost(set, layer, heads * queries, keys);
    let pv = matmul_cost(params, &shapes(1), PRODUCT_SHIFT)?;
    let normalize = matmul_cost(params, &shapes(2), set.plan.softmax.r_frac)?;
    Ok([qk, softmax, pv, normalize])
}

/// The mirror of [`attention`] on plaintext Q, K, V (same layouts): per head
/// round(round(E·V / 2^18)·r / 2^r_frac) with E, r from the set's Softmax mirror.
pub fn attention_mirror(
    set: &ApproxSet,
    layer: usize,
    shape: AttentionShape,
    (q, k, v): (&[u64], &[u64], &[u64]),
    mask: Mask<'_>,
) -> Vec<u64> {
    let AttentionShape {
        queries,
        keys,
        heads,
        kv_heads,
        head_dim: dh,
    } = shape;
    let cols = |x: &[u64], rows: usize, width: usize, h: usize| -> Vec<u64> {
        (0..rows)
            .flat_map(|t| {
                x[t * width + h * dh..t * width + (h + 1) * dh]
                    .iter()
                    .copied()
            })
            .collect()
    };
    let r_frac = set.plan.softmax.r_frac;
    let d = heads * dh;
    let mut out = vec![0u64; queries * d];
    for h in 0..heads {
        let g = shape.kv_head(h);
        let qh = cols(q, queries, d, h);
        let kh = cols(k, keys, kv_heads * dh, g);
        let vh = cols(v, keys, kv_heads * dh, g);
        let kt: Vec<u64> = (0..dh * keys)
            .map(|i| kh[(i % keys) * dh + i / keys])
            .collect();
        let mut scores = matmul_mirror(&qh, &kt, queries, dh, keys, PRODUCT_SHIFT);
        let mut recips = Vec::with_capacity(queries);
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            let m: Vec<bool> = (0..keys).map(|j| mask.allows(i, j)).collect();
            let row_mask = mask.score_mask(Some(&m));
            recips.push(softmax_row_unnormalized(set, layer, row, row_mask));
        }
        let ev = matmul_mirror(&scores, &vh, queries, keys, dh, PRODUCT_SHIFT);
        let half = 1u64 << (r_frac - 1);
        for t in 0..queries {
            for j in 0..dh {
                let p = ev[t * dh + j].wrapping_mul(recips[t]).wrapping_add(half);
                out[t * d + h * dh + j] = ((p as i64) >> r_frac) as u64;
            }
        }
    }
    out
}
