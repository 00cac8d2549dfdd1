//! Multi-head attention on shares, after the projections: per head h,
//! `softmax(Q_h·K_hᵀ + mask)·V_h`, with grouped-query heads (several query heads reading one
//! key/value head) and a padding or causal mask. The 1/√d_head scale is folded into the query
//! weights by the caller.
//!
//! Steps, each under its own label ([`Component`]):
//! 1. `attention/qk`: Q_h·K_hᵀ for all heads, secret × secret ([`secret_matmul`]), in one of
//!    three layouts, as in steps 3 and 4, whichever costs least in bytes and ciphertext
//!    operations: one product per head (a prompt); with grouped queries, the query heads of
//!    one key/value head stacked into one product (a decoder step's single query row: a
//!    third of the ciphertexts for SmolLM2's groups of three); or all heads in one product,
//!    the groups' blocks on the diagonal of one operand and the key/value heads stacked in the
//!    other (a decoder step's normalisation: 0.54 MB each way and 8 operations per layer
//!    instead of 1.61 MB and 15 at SmolLM2's shapes);
//! 2. `attention/softmax`: the Softmax up to its normalisation
//!    ([`ot_nonlinear::functions::softmax_unnormalized`]): exps E and per-row reciprocals r; a
//!    padding mask is the client's private input, applied on its share; a causal mask is
//!    public, applied exactly by both parties;
//! 3. `attention/pv`: E_h·V_h, secret × secret;
//! 4. `attention/normalize`: diag(r_h)·(E_h·V_h) on HE ([`he_linear::row_products`]), which
//!    scales d_head values per row instead of the row's keys.
//!
//! Mirror: [`attention_mirror`]. Cost: [`attention_cost`].
use crate::attention_offline::AttentionTriples;
use crate::cast::{round_products, LINEAR};
use crate::keys::HeKeys;
use crate::label::Component;
use crate::matmul::{matmul_cost, matmul_mirror, secret_matmul, PRODUCT_SHIFT};
use crate::tensor::SharedTensor;
use crate::triple::{triple_products, Rounding, Triple};
use he_linear::matrix::{ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products;
use he_linear::secret_product::ProductPlan;
use mpc_core::{Error, Result, Ring};
use ot_nonlinear::approx::fixed::softmax_row_unnormalized;
use ot_nonlinear::approx::{ApproxSet, ScoreMask};
use ot_nonlinear::functions::{
    softmax_unnormalized_cost, softmax_unnormalized_with, PowerProducts,
};
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
                        "a private padding mask is the other party's input".into(),
                    ));
                }
                if m.is_some_and(|m| m.len() != k) {
                    return Err(Error::shape(
                        "padding mask (one entry per key)",
                        m.map_or(0, |m| m.len()),
                        k,
                    ));
                }
                if sess.is_server() {
                    return Ok(None);
                }
            }
            Mask::Causal { past } => {
                if past + q < k {
                    return Err(Error::shape(
                        format!("keys seen by {q} causal queries after {past} positions"),
                        past + q,
                        mpc_core::Dims::AtLeast(k),
                    ));
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
    pub(crate) fn check(&self) -> Result<()> {
        if self.queries == 0
            || self.keys == 0
            || self.head_dim == 0
            || self.kv_heads == 0
            || self.heads % self.kv_heads != 0
        {
            return Err(Error::shape(
                "attention",
                format!("{self:?}"),
                "non-zero sizes, query heads a multiple of key/value heads",
            ));
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

    /// The scores Softmax runs on: heads · queries · keys (the exp's elements).
    pub fn scores(&self) -> usize {
        self.heads * self.queries * self.keys
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
    triples: Option<AttentionTriples>,
    tag: &dyn Fn(Component) -> String,
) -> Result<SharedTensor> {
    shape.check()?;
    if let Some(t) = &triples {
        t.check(shape)?;
    }
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
    // Offline triples are made per key/value head (`attention_offline`).
    let [layout_qk, layout_pv, layout_normalize] = match &triples {
        Some(_) => [Layout::PerGroup; 3],
        None => layouts(he.product_params, shape)?,
    };
    let (steps, mut exp) = match triples.map(AttentionTriples::into_parts) {
        Some((steps, exp)) => (Some(steps), exp),
        None => (None, None),
    };
    let step = |i: usize| steps.as_ref().map(|s| &s[i][..]);
    let qh = (0..heads)
        .map(|h| head_columns(q, h, dh))
        .collect::<Result<Vec<_>>>()?;
    let kt = (0..kv_heads)
        .map(|h| transpose(&head_columns(k, h, dh)?))
        .collect::<Result<Vec<_>>>()?;
    let vh = (0..kv_heads)
        .map(|h| head_columns(v, h, dh))
        .collect::<Result<Vec<_>>>()?;
    let scores = sess.scope(&tag(Component::AttentionQk), |s| match layout_qk {
        Layout::PerHead => {
            let pairs: Vec<_> = (0..heads)
                .map(|h| (&qh[h], &kt[shape.kv_head(h)]))
                .collect();
            products(s, he, step(0), &pairs)
        }
        Layout::PerGroup | Layout::BlockDiagonal => {
            // The query heads of one key/value head stacked: one product per group.
            let stacked = (0..kv_heads)
                .map(|g| stack_rows(&qh[g * group..(g + 1) * group]))
                .collect::<Result<Vec<_>>>()?;
            if layout_qk == Layout::PerGroup {
                let pairs: Vec<_> = stacked.iter().zip(&kt).collect();
                products(s, he, step(0), &pairs)
            } else {
                // diag(Q_0, Q_1, …)·[K_0ᵀ; K_1ᵀ; …] = [Q_0·K_0ᵀ; Q_1·K_1ᵀ; …].
                let x = block_diagonal(&stacked)?;
                let y = stack_rows(&kt)?;
                secret_matmul(s, he, &[(&x, &y)], PRODUCT_SHIFT)
            }
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
        softmax_unnormalized_with(
            s,
            set,
            layer,
            heads * queries,
            keys,
            &flat,
            exp_breakpoints,
            mask.score_mask(bits.as_deref()),
            exp.as_mut().map(|e| e as &mut dyn PowerProducts),
        )
    })?;
    let ev = sess.scope(&tag(Component::AttentionPv), |s| {
        // A block-diagonal E·V's blocks are the groups' exps.
        let per = match layout_pv {
            Layout::BlockDiagonal => group,
            layout => layout.heads_per_block(shape),
        };
        let e = exps
            .chunks_exact(per * queries * keys)
            .map(|eh| SharedTensor::matrix(per * queries, keys, LINEAR, eh.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        if layout_pv == Layout::BlockDiagonal {
            // diag(E_0, E_1, …)·[V_0; V_1; …] = [E_0·V_0; E_1·V_1; …], E_g a group's heads.
            let x = block_diagonal(&e)?;
            let y = stack_rows(&vh)?;
            return secret_matmul(s, he, &[(&x, &y)], PRODUCT_SHIFT);
        }
        let pairs: Vec<_> = e
            .iter()
            .enumerate()
            .map(|(i, e)| (e, &vh[shape.kv_head(i * per)]))
            .collect();
        products(s, he, step(1), &pairs)
    })?;
    sess.scope(&tag(Component::AttentionNormalize), |s| {
        let r_frac = set.plan.softmax.r_frac;
        // E·V's rows, head-major, as the normalisation's blocks (one head, a group's heads
        // or all of them).
        let per = layout_normalize.heads_per_block(shape);
        let ev_flat: Vec<u64> = ev.iter().flat_map(|o| o.share().iter().copied()).collect();
        let blocks: Vec<_> = recips
            .chunks_exact(per * queries)
            .zip(ev_flat.chunks_exact(per * queries * dh))
            .collect();
        // Token-major queries × heads·dh from the blocks' rows (head-major).
        let d = heads * dh;
        let token_major = |rows: &mut dyn Iterator<Item = &[u64]>| {
            let mut ctx = vec![0u64; queries * d];
            for (i, row) in rows.enumerate() {
                let (h, t) = (i / queries, i % queries);
                ctx[t * d + h * dh..t * d + (h + 1) * dh].copy_from_slice(row);
            }
            ctx
        };
        if let Some(triples) = step(2) {
            let outs = triple_products(s, triples, &blocks, r_frac, Rounding::Nearest)?;
            let out = token_major(&mut outs.iter().flat_map(|o| o.chunks_exact(dh)));
            return SharedTensor::matrix(queries, d, LINEAR, out);
        }
        let window = Window::new(he.product_params, r_frac, Ring::R64.bits())?;
        let mats = blocks
            .iter()
            .map(|(_, o)| RingMatrix::new(per * queries, dh, o.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<_> = blocks.iter().map(|(r, _)| *r).zip(mats.iter()).collect();
        let seed = s.fresh_seed();
        let prods = row_products::row_scalar_products(
            &mut s.ch,
            he.product_params,
            he.keys,
            &pairs,
            window,
            seed,
        )?;
        let ctx = token_major(
            &mut prods
                .iter()
                .flat_map(|p| (0..p.rows()).map(move |r| p.row(r))),
        );
        let out = round_products(s, ctx, window)?;
        SharedTensor::matrix(queries, d, LINEAR, out)
    })
}

/// Shares of ⌊X_i·Y_i / 2^18⌉ for every pair: on HE ([`secret_matmul`]), or on the step's
/// offline triples ([`triple_products`]).
fn products(
    sess: &mut Session,
    he: &HeKeys<'_>,
    triples: Option<&[Triple]>,
    pairs: &[(&SharedTensor, &SharedTensor)],
) -> Result<Vec<SharedTensor>> {
    let Some(triples) = triples else {
        return secret_matmul(sess, he, pairs, PRODUCT_SHIFT);
    };
    let operands: Vec<_> = pairs.iter().map(|(x, y)| (x.share(), y.share())).collect();
    let outs = triple_products(sess, triples, &operands, PRODUCT_SHIFT, Rounding::Nearest)?;
    pairs
        .iter()
        .zip(outs)
        .map(|((x, y), z)| SharedTensor::matrix(x.rows(), y.cols(), LINEAR, z))
        .collect()
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

/// The rows of `blocks` on the diagonal of a zero matrix (same format): the party's share of
/// diag(B_0, B_1, …), whose zeros are public and so shared as zeros by both parties.
fn block_diagonal(blocks: &[SharedTensor]) -> Result<SharedTensor> {
    let rows = blocks.iter().map(SharedTensor::rows).sum();
    let cols: usize = blocks.iter().map(SharedTensor::cols).sum();
    let mut data = vec![0u64; rows * cols];
    let (mut r0, mut c0) = (0, 0);
    for b in blocks {
        for r in 0..b.rows() {
            let at = (r0 + r) * cols + c0;
            data[at..at + b.cols()].copy_from_slice(b.row(r));
        }
        r0 += b.rows();
        c0 += b.cols();
    }
    SharedTensor::matrix(rows, cols, blocks[0].format(), data)
}

/// How one of attention's HE steps batches the heads into products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One product per query head.
    PerHead,
    /// One product per key/value head, its query heads' rows stacked.
    PerGroup,
    /// One product for all heads: the groups' blocks on the diagonal of the encrypted-side
    /// operand, the key/value heads stacked in the other (the normalisation: one block of all
    /// heads' rows). A decoder step's few query rows fill one ciphertext instead of one per
    /// group.
    BlockDiagonal,
}

impl Layout {
    /// Query heads per block of the Softmax's exps and of the normalisation.
    pub(crate) fn heads_per_block(self, shape: AttentionShape) -> usize {
        match self {
            Layout::PerHead => 1,
            Layout::PerGroup => shape.group(),
            Layout::BlockDiagonal => shape.heads,
        }
    }

    /// The product shapes (k, m, n) of attention's three HE steps in this layout.
    pub(crate) fn step_shapes(self, shape: AttentionShape) -> [Vec<(usize, usize, usize)>; 3] {
        let AttentionShape {
            queries: q,
            keys,
            heads,
            kv_heads,
            head_dim: dh,
        } = shape;
        let rows = self.heads_per_block(shape) * q;
        if self == Layout::BlockDiagonal {
            return [
                vec![(rows, kv_heads * dh, keys)],
                vec![(rows, kv_heads * keys, dh)],
                vec![(rows, rows, dh)],
            ];
        }
        let count = heads / self.heads_per_block(shape);
        [
            vec![(rows, dh, keys); count],
            vec![(rows, keys, dh); count],
            // Each block's diag(r)·O is a secret product of rows × rows by rows × dh.
            vec![(rows, rows, dh); count],
        ]
    }
}

/// The ciphertext operations of one party's cross terms on these product shapes, counted
/// alike: encryptions, ring products, key switches (merges) and decryptions (the time that
/// bytes do not show).
fn he_operations(params: &HeParams, shapes: &[(usize, usize, usize)]) -> Result<usize> {
    let mut operations = 0;
    for &(k, m, n) in shapes {
        let plan = ProductPlan::new(params, ProductShape { k, m, n })?.sip;
        operations += plan.input_cts() + plan.ring_products() + plan.merges() + plan.output_cts();
    }
    Ok(operations)
}

/// One ciphertext operation in bytes: 1–1.1 ms per operation per party, measured on this
/// project's VM (a 37-token prompt's normalisation, 582 operations per layer, 0.64 s), is what
/// ≈ 375 KB take at `lan`'s 3 Gbps (at `wan`'s 400 Mbps, 55 KB: operations then weigh less
/// than this, but the layouts' bytes differ by a few MB per layer against seconds of work).
const OPERATION_COST_BYTES: u64 = 375_000;

/// For Q·Kᵀ, E·V and the normalisation: the layout to run, on public shapes so both parties
/// choose alike: the fewest bytes plus ciphertext operations ([`he_operations`]) priced at
/// [`OPERATION_COST_BYTES`]; ties keep the earlier of per head, per group, block-diagonal.
/// Bytes alone mislead both ways: the block-diagonal layout halves a step's bytes but
/// evaluates its zero blocks (chosen by bytes, a step's Q·Kᵀ over 45 keys took 1.6× the time:
/// 80 operations against 45), and stacking a prompt's query heads cuts bytes but not work (a
/// 32-token prompt's normalisation: 582 operations per layer stacked, 153 per head).
fn layouts(params: &HeParams, shape: AttentionShape) -> Result<[Layout; 3]> {
    // Every layout reveals the same window: the normalisation's shift does not decide.
    let cost = |shapes: &[(usize, usize, usize)]| -> Result<u64> {
        // Both directions and both parties' operations run in parallel: one of each counts.
        let cost = matmul_cost(params, shapes, PRODUCT_SHIFT)?;
        let bytes = cost.server_bytes.max(cost.client_bytes);
        Ok(bytes + he_operations(params, shapes)? as u64 * OPERATION_COST_BYTES)
    };
    let mut candidates = vec![Layout::PerHead];
    if shape.group() > 1 {
        candidates.push(Layout::PerGroup);
    }
    if shape.kv_heads > 1 {
        candidates.push(Layout::BlockDiagonal);
    }
    let mut best = [(Layout::PerHead, u64::MAX); 3];
    for layout in candidates {
        for (step, shapes) in layout.step_shapes(shape).iter().enumerate() {
            let cost = match (layout, cost(shapes)) {
                // Beyond the parameters' inner width (E·V over long contexts) it does not apply.
                (Layout::BlockDiagonal, Err(_)) => continue,
                (_, cost) => cost?,
            };
            if cost < best[step].1 {
                best[step] = (layout, cost);
            }
        }
    }
    Ok(best.map(|(layout, _)| layout))
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
    let layouts = layouts(params, shape)?;
    let shapes = |i: usize| layouts[i].step_shapes(shape)[i].clone();
    let qk = matmul_cost(params, &shapes(0), PRODUCT_SHIFT)?;
    let softmax = softmax_unnormalized_cost(set, layer, heads * queries, keys, false);
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
