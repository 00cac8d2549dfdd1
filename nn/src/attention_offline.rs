//! Attention's three secret × secret products on offline triples ([`crate::triple`]): Q·Kᵀ,
//! E·V and the normalisation diag(r)·O move their HE work before the query exists, and the
//! online phase of [`crate::attention::attention`] sends only the masked operands.
//!
//! Per key/value head g (its query heads' rows stacked, `G` = heads / kv_heads, `q` queries,
//! `T` keys, `d` = head width), one triple per step:
//! * `attention/qk`: (G·q × d)·(d × T), opened 8·(G·q·d + d·T) bytes per party;
//! * `attention/pv`: (G·q × T)·(T × d), opened 8·(G·q·T + T·d);
//! * `attention/normalize`: diag(r)·O with O of G·q × d, opened 8·(G·q + G·q·d);
//!
//! each followed by a known-MSB truncation of its outputs. A decoder step at SmolLM2's shapes
//! (q = 1, G = 3, d = 64) over 45 keys opens ≈ 150 KB per layer instead of ≈ 4.4 MB of
//! ciphertexts, in 3 rounds per step instead of 4.
//!
//! Offline: [`AttentionTriples::generate`] (the same HE products on random operands, one label
//! per step), filed in an [`OfflineStore`] entry bound to the attention's shape
//! ([`AttentionTriples::put`] / [`AttentionTriples::take`], used once).
//!
//! ```
//! use nn::attention::AttentionShape;
//! use nn::attention_offline::AttentionTriples;
//! let shape = AttentionShape { queries: 1, keys: 45, heads: 9, kv_heads: 3, head_dim: 64 };
//! let [qk, pv, normalize] = AttentionTriples::shapes(shape)?;
//! assert_eq!((qk.len(), pv.len(), normalize.len()), (3, 3, 3));
//! assert_eq!(qk[0].opened_words(), 3 * 64 + 64 * 45);
//! # Ok::<(), mpc_core::Error>(())
//! ```
use crate::activation_offline::PowerTriples;
use crate::attention::{AttentionShape, Layout};
use crate::keys::HeKeys;
use crate::label::Component;
use crate::matmul::PRODUCT_SHIFT;
use crate::offline::OfflineStore;
use crate::triple::{
    generate_cost, generate_triples, triple_products_cost, triple_products_cots, Triple,
    TripleShape,
};
use he_linear::matrix::{MatDims, ProductShape};
use he_linear::params::HeParams;
use mpc_core::{Error, Result};
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::functions::softmax::softmax_unnormalized_cots;
use ot_nonlinear::functions::softmax_unnormalized_cost;
use ot_nonlinear::mpc::{Cost, CotDemand, Session};

/// The labels of the three steps, in order.
const STEPS: [Component; 3] = [
    Component::AttentionQk,
    Component::AttentionPv,
    Component::AttentionNormalize,
];

/// One party's triples for one attention call: Q·Kᵀ, E·V and the normalisation, one per
/// key/value head each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionTriples {
    shape: AttentionShape,
    steps: [Vec<Triple>; 3],
    /// Softmax's exp power correlations, if the caller attached them
    /// ([`AttentionTriples::with_exp`]; filed in their own entry).
    exp: Option<PowerTriples>,
}

impl AttentionTriples {
    /// The triple shapes of the three steps (module docs).
    pub fn shapes(shape: AttentionShape) -> Result<[Vec<TripleShape>; 3]> {
        shape.check()?;
        let [qk, pv, _] = Layout::PerGroup.step_shapes(shape);
        let matmul = |s: Vec<(usize, usize, usize)>| {
            s.into_iter()
                .map(|(k, m, n)| TripleShape::Matmul(ProductShape { k, m, n }))
                .collect()
        };
        let rows = Layout::PerGroup.heads_per_block(shape) * shape.queries;
        let normalize = vec![
            TripleShape::RowScale(MatDims {
                rows,
                cols: shape.head_dim,
            });
            shape.kv_heads
        ];
        Ok([matmul(qk), matmul(pv), normalize])
    }

    /// Generates this party's triples for an attention call of `shape` (offline: nothing
    /// depends on the input), each step under its label `tag(step)`.
    pub fn generate(
        sess: &mut Session,
        he: &HeKeys<'_>,
        shape: AttentionShape,
        tag: &dyn Fn(Component) -> String,
    ) -> Result<AttentionTriples> {
        let shapes = Self::shapes(shape)?;
        let mut steps: [Vec<Triple>; 3] = Default::default();
        for ((step, shapes), label) in steps.iter_mut().zip(&shapes).zip(STEPS) {
            *step = sess.scope(&tag(label), |s| generate_triples(s, he, shapes))?;
        }
        Ok(AttentionTriples {
            shape,
            steps,
            exp: None,
        })
    }

    /// These triples with Softmax's exp running its power products on `exp` (correlations
    /// made offline for the exp's piecewise form on heads·queries·keys elements,
    /// [`crate::activation_offline`]).
    pub fn with_exp(self, exp: PowerTriples) -> Self {
        AttentionTriples {
            exp: Some(exp),
            ..self
        }
    }

    /// Exact cost of [`AttentionTriples::generate`] per step (qk, pv, normalize).
    pub fn generate_cost(params: &HeParams, shape: AttentionShape) -> Result<[Cost; 3]> {
        let [qk, pv, normalize] = Self::shapes(shape)?;
        Ok([
            generate_cost(params, &qk)?,
            generate_cost(params, &pv)?,
            generate_cost(params, &normalize)?,
        ])
    }

    /// The store's metadata and length of a call of `shape`.
    fn layout(shape: AttentionShape) -> Result<([u64; 5], usize)> {
        let len = Self::shapes(shape)?
            .iter()
            .flatten()
            .map(|t| t.sizes().iter().sum::<usize>())
            .sum();
        let AttentionShape {
            queries,
            keys,
            heads,
            kv_heads,
            head_dim,
        } = shape;
        Ok((
            [queries, keys, heads, kv_heads, head_dim].map(|v| v as u64),
            len,
        ))
    }

    /// The digest attention entries are filed under (their shape is the metadata).
    const DIGEST: [u8; 32] = *b"nn attention triples v1 ........";

    /// Files this party's triples as entry `name` of `store`.
    pub fn put(&self, store: &OfflineStore, name: &str) -> Result<()> {
        let (meta, _) = Self::layout(self.shape)?;
        let words: Vec<u64> = self
            .steps
            .iter()
            .flatten()
            .flat_map(Triple::to_words)
            .collect();
        store.put(name, &Self::DIGEST, &meta, &words)
    }

    /// Consumes entry `name` of `store`, which must hold triples for an attention call of
    /// `shape` (refused otherwise, or if used before).
    pub fn take(store: &OfflineStore, name: &str, shape: AttentionShape) -> Result<Self> {
        let (meta, len) = Self::layout(shape)?;
        let words = store.take(name, &Self::DIGEST, &meta, len)?;
        let mut at = 0;
        let mut steps: [Vec<Triple>; 3] = Default::default();
        for (step, shapes) in steps.iter_mut().zip(Self::shapes(shape)?) {
            for t in shapes {
                let n: usize = t.sizes().iter().sum();
                step.push(Triple::from_words(t, &words[at..at + n])?);
                at += n;
            }
        }
        Ok(AttentionTriples {
            shape,
            steps,
            exp: None,
        })
    }

    /// Refuses triples made for another call's shape.
    pub(crate) fn check(&self, shape: AttentionShape) -> Result<()> {
        if self.shape != shape {
            return Err(Error::shape(
                "attention triples' call",
                format!("{:?}", self.shape),
                format!("{shape:?}"),
            ));
        }
        Ok(())
    }

    /// The three steps' triples, and the exp's correlations if attached.
    pub(crate) fn into_parts(self) -> ([Vec<Triple>; 3], Option<PowerTriples>) {
        (self.steps, self.exp)
    }
}

/// Exact cost of [`crate::attention::attention`] on offline triples, per label: (qk,
/// softmax, pv, normalize); `exp_prepared`: the exp's power correlations attached
/// ([`AttentionTriples::with_exp`]; the softmax's rounds are then an upper bound).
pub fn attention_prepared_cost(
    set: &ApproxSet,
    layer: usize,
    shape: AttentionShape,
    exp_prepared: bool,
) -> Result<[Cost; 4]> {
    let [qk, pv, normalize] = AttentionTriples::shapes(shape)?;
    let rows = shape.heads * shape.queries;
    Ok([
        triple_products_cost(&qk, PRODUCT_SHIFT)?,
        softmax_unnormalized_cost(set, layer, rows, shape.keys, exp_prepared),
        triple_products_cost(&pv, PRODUCT_SHIFT)?,
        triple_products_cost(&normalize, set.plan.softmax.r_frac)?,
    ])
}

/// COTs attention on triples draws (the three truncations and Softmax up to the
/// normalisation; `exp_prepared` as in [`attention_prepared_cost`]).
pub fn attention_prepared_cots(
    set: &ApproxSet,
    layer: usize,
    shape: AttentionShape,
    exp_prepared: bool,
) -> Result<CotDemand> {
    let [qk, pv, normalize] = AttentionTriples::shapes(shape)?;
    let rows = shape.heads * shape.queries;
    Ok(triple_products_cots(&qk, PRODUCT_SHIFT)?
        .plus(softmax_unnormalized_cots(
            set,
            layer,
            rows,
            shape.keys,
            exp_prepared,
        ))
        .plus(triple_products_cots(&pv, PRODUCT_SHIFT)?)
        .plus(triple_products_cots(&normalize, set.plan.softmax.r_frac)?))
}
