//! Softmax of rows on shares (Z_2^64, 18 fraction bits in and out), with a padding mask (the
//! client's private input) or a causal mask (public): the protocol of
//! [`ot_nonlinear::functions::softmax()`] (row max by a tournament, the set's exp, reciprocal of
//! the row sums, row-scalar product); padded scores are lowered on the client's share before
//! the max, causally masked ones excluded exactly by both parties
//! ([`ot_nonlinear::approx::ScoreMask`]). Attention uses the unnormalised form inside
//! [`crate::attention`].
//!
//! Mirror: [`softmax_mirror`]. Cost: [`softmax_cost`].
pub use crate::attention::Mask;
use crate::cast::LINEAR;
use crate::tensor::SharedTensor;
use mpc_core::{Error, Result};
use ot_nonlinear::approx::fixed::softmax_row;
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::functions::softmax as ot_softmax;
use ot_nonlinear::mpc::{Cost, Session};

/// Softmax of every row of `x` (`queries × keys`; several heads stacked as rows keep the
/// mask's query index modulo `queries`) under layer `layer`'s exp of `set`. The server passes
/// the exp's breakpoints, the client `None`.
pub fn softmax(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    exp_breakpoints: Option<&[f64]>,
    x: &SharedTensor,
    queries: usize,
    mask: Mask<'_>,
) -> Result<SharedTensor> {
    x.expect("softmax input", x.shape(), LINEAR)?;
    let (rows, keys) = (x.rows(), x.cols());
    if queries == 0 || rows % queries != 0 {
        return Err(Error::shape(
            format!("score rows (heads of {queries} queries)"),
            rows,
            mpc_core::Dims::MultipleOf(queries),
        ));
    }
    let bits = mask.score_bits(sess, rows / queries, queries, keys)?;
    let y = ot_softmax(
        sess,
        set,
        layer,
        rows,
        keys,
        x.share(),
        exp_breakpoints,
        mask.score_mask(bits.as_deref()),
    )?;
    SharedTensor::new(x.shape().clone(), LINEAR, y)
}

/// Exact cost of [`softmax`] on `rows` rows of `keys` (label `softmax`).
pub fn softmax_cost(set: &ApproxSet, layer: usize, rows: usize, keys: usize) -> Cost {
    ot_nonlinear::functions::softmax_cost(set, layer, rows, keys)
}

/// The mirror of [`softmax`] on plaintext rows.
pub fn softmax_mirror(
    set: &ApproxSet,
    layer: usize,
    x: &[u64],
    keys: usize,
    queries: usize,
    mask: Mask<'_>,
) -> Vec<u64> {
    let mut y = x.to_vec();
    for (r, row) in y.chunks_exact_mut(keys).enumerate() {
        let m: Vec<bool> = (0..keys).map(|j| mask.allows(r % queries, j)).collect();
        softmax_row(set, layer, row, mask.score_mask(Some(&m)));
    }
    y
}
