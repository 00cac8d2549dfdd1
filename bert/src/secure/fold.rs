//! The server's weights as the secure run uses them: each LayerNorm's affine folded into the
//! COP that consumes it (`[diag(γ) | W]`, one COP for the residual branch and the layer), the
//! head folded with the last LayerNorm.
use super::public::Head;
use crate::fixed_model::{FixedAffine, FixedBert, FixedLinear};
use he_linear::matrix::RingMatrix;
use mpc_core::{Error, FixedPoint, Result, Ring};
use nn::linear::ServerLinear;

const LIN: FixedPoint = FixedPoint::LINEAR;
const R: Ring = Ring::R64;

/// A layer's COP weights in dataflow order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// `[diag(γ_in) | Q | K | V]`.
    Qkv = 0,
    /// Attention's output projection.
    O = 1,
    /// `[diag(γ_attn) | W_up]`.
    H1 = 2,
    /// FFN down.
    H2 = 3,
}

/// The four COP layers of every encoder layer, in [`Weights`] order.
pub fn layer_weights(fixed: &FixedBert) -> Result<Vec<[ServerLinear; 4]>> {
    fixed
        .layers()
        .iter()
        .map(|l| {
            let plain = |lin: &FixedLinear| {
                ServerLinear::new(
                    RingMatrix::new(lin.inputs, lin.outputs, lin.w.clone())?,
                    lin.b.clone(),
                )
            };
            let (qkv, qkv_b) = with_residual(&l.input_affine, &l.qkv)?;
            let (h1, h1_b) = with_residual(&l.ffn_affine, &l.ffn_up)?;
            Ok([
                ServerLinear::new(qkv, qkv_b)?,
                plain(&l.attn_out)?,
                ServerLinear::new(h1, h1_b)?,
                plain(&l.ffn_down)?,
            ])
        })
        .collect()
}

/// `[diag(γ) | W]` and `[β | b]`: one COP yields the residual branch and the layer.
pub(crate) fn with_residual(
    affine: &FixedAffine,
    lin: &FixedLinear,
) -> Result<(RingMatrix, Vec<u64>)> {
    let (d, n) = (lin.inputs, lin.outputs);
    let mut w = Vec::with_capacity(d * (d + n));
    for i in 0..d {
        w.extend((0..d).map(|j| if i == j { affine.gamma[i] } else { 0 }));
        w.extend_from_slice(&lin.w[i * n..(i + 1) * n]);
    }
    let b = affine.beta.iter().chain(&lin.b).copied().collect();
    Ok((RingMatrix::new(d, d + n, w)?, b))
}

/// The head folded with the last LayerNorm, at 18 bits (weights) and 36 bits (biases, no
/// rounding half: the per-token logits are summed, not truncated).
pub fn fold_head(fixed: &FixedBert, head: &Head) -> Result<(RingMatrix, Vec<u64>)> {
    let ln = fixed.final_ln();
    let (d, classes) = (ln.gamma.len(), head.classes());
    if head.w.len() != d * classes {
        return Err(Error::shape("head weights", head.w.len(), [d, classes]));
    }
    let wide = FixedPoint::new(R, 2 * LIN.frac_bits())?;
    let ctx = |e: Error| e.context("head");
    let w = (0..d * classes)
        .map(|i| LIN.encode(ln.gamma[i / classes] as f64 * head.w[i]))
        .collect::<Result<Vec<_>>>()
        .map_err(ctx)?;
    let b = (0..classes)
        .map(|c| {
            let folded: f64 = (0..d)
                .map(|i| ln.beta[i] as f64 * head.w[i * classes + c])
                .sum();
            wide.encode(folded + head.b[c])
        })
        .collect::<Result<Vec<_>>>()
        .map_err(ctx)?;
    Ok((RingMatrix::new(d, classes, w)?, b))
}
