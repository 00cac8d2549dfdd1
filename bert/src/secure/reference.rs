//! The references a secure run is checked against: the fixed-point mirror (the same
//! arithmetic without the truncation carries) and the float model with the same head.
use super::fold::fold_head;
use super::public::Head;
use crate::fixed_model::FixedBert;
use mpc_core::{FixedPoint, Result, Ring};

const LIN: FixedPoint = FixedPoint::LINEAR;
const R: Ring = Ring::R64;

/// The fixed-point mirror of a secure inference: the logits the client would get without the
/// truncation carries, for padded `ids` and the client's `mask`.
pub fn fixed_reference(
    fixed: &FixedBert,
    ids: &[u32],
    mask: &[bool],
    head: &Head,
) -> Result<Vec<f64>> {
    let y = fixed.normalized(ids, Some(mask))?;
    let (w, b) = fold_head(fixed, head)?;
    let (d, classes) = (w.rows(), w.cols());
    let mut sums = vec![0u64; classes];
    for (t, row) in y.chunks_exact(d).enumerate() {
        if !mask[t] {
            continue;
        }
        for (c, s) in sums.iter_mut().enumerate() {
            let z = (0..d).fold(b[c], |a, i| R.add(a, R.mul(row[i], w.get(i, c))));
            *s = R.add(*s, z);
        }
    }
    Ok(logits_from_sums(&sums, mask))
}

/// The logits of the float model with the same head (mean over the real tokens).
pub fn float_reference(float: &crate::FloatBert, ids: &[u32], head: &Head) -> Result<Vec<f64>> {
    let h = float.encode(ids)?;
    let pooled = crate::float_model::mean_pool(h.view());
    let classes = head.classes();
    Ok((0..classes)
        .map(|c| {
            pooled.iter().enumerate().fold(head.b[c], |a, (i, &x)| {
                a + x as f64 * head.w[i * classes + c]
            })
        })
        .collect())
}

/// Sums of masked per-token logits at 36 fraction bits → the mean over the real tokens.
pub(crate) fn logits_from_sums(sums: &[u64], mask: &[bool]) -> Vec<f64> {
    let real = mask.iter().filter(|&&m| m).count().max(1) as f64;
    let scale = ((2 * LIN.frac_bits()) as f64).exp2();
    sums.iter()
        .map(|&s| R.to_signed(s) as f64 / scale / real)
        .collect()
}

/// Bound on |secure − fixed| logits for the built-in tests and the bench's check: the
/// truncation carries (one unit at 2^-18 per truncation) through ≤ 24 layers, and comparisons
/// that fall on the other side of a breakpoint within their resolution.
pub const FIXED_LOGIT_BOUND: f64 = 0.05;

