//! Row normalisations: LayerNorm (ŷ = (x − mean)/√(var + ε)) and RMSNorm (ŷ = x/√(mean(x²) +
//! ε)), each row of the hidden size; the affine γ·ŷ (+ β) is folded by the caller into the
//! linear layer that consumes ŷ, where it is free.
//!
//! The protocol is [`ot_nonlinear::functions::normalize_with`]: a mean (LayerNorm), the
//! square sums, 1/√ per row, and the row-scalar product ŷ = v·r. The two products run on HE
//! ([`HeRowProducts`], when the session has packed product keys: 3.2× fewer bytes at BERT-base's
//! 128 × 768) or on COTs ([`OtProducts`]). Same values either way.
//!
//! Precision: the variance is taken from v at 6 fraction bits (the LayerNorm plan,
//! `ot_nonlinear::approx::layernorm`). Centred, the truncations' carries cancel across a row;
//! uncentred (RMSNorm) they do not, and the secure result may sit up to 2·mean|x|·2^-6/mean(x²)
//! relatively from the mirror (≈ 3 % for a row of values near 0.5, < 0.5 % for rms ≥ 4).
//!
//! Mirror: [`norm_mirror`]. Cost: [`norm_cost`] (OT products; the HE products' bytes are
//! [`he_linear::row_products`]'s).
use crate::cast::{upcast_window, LINEAR};
use crate::keys::HeKeys;
use crate::tensor::SharedTensor;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products;
use he_linear::secret_product::ProductKeys;
use mpc_core::{Result, Ring};
use ot_nonlinear::approx::layernorm::normalize_row_with;
use ot_nonlinear::functions::{normalize_cost, normalize_with, Centering, OtProducts, RowProducts};
use ot_nonlinear::mpc::{Cost, CotDemand, Session};

/// Which normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// LayerNorm (BERT).
    LayerNorm,
    /// RMSNorm (LLaMA).
    RmsNorm,
}

impl Norm {
    fn centering(self) -> Centering {
        match self {
            Norm::LayerNorm => Centering::Mean,
            Norm::RmsNorm => Centering::None,
        }
    }
}

/// Where the normalisation's two row products run.
#[derive(Clone, Copy, Debug)]
pub enum RowProductBackend<'a> {
    /// Homomorphic products with packed keys.
    He(&'a HeKeys<'a>),
    /// Gilboa products on the session's COTs.
    Ot,
}

/// The normalised rows ŷ (Z_2^64, 18 fraction bits) of `x` (rows of the hidden size).
pub fn normalize(
    sess: &mut Session,
    norm: Norm,
    x: &SharedTensor,
    eps: f64,
    backend: RowProductBackend<'_>,
) -> Result<SharedTensor> {
    x.expect("normalisation input", x.shape(), LINEAR)?;
    let y = match backend {
        RowProductBackend::He(he) => {
            let mut products = HeRowProducts::new(he.product_params, he.keys);
            normalize_with(
                sess,
                x.share(),
                x.cols(),
                eps,
                norm.centering(),
                &mut products,
            )?
        }
        RowProductBackend::Ot => normalize_with(
            sess,
            x.share(),
            x.cols(),
            eps,
            norm.centering(),
            &mut OtProducts,
        )?,
    };
    SharedTensor::new(x.shape().clone(), LINEAR, y)
}

/// Largest rms a row of `n` may reach after [`normalize_prescaled`]'s shift: the variance
/// enters the reciprocal square root below 2^14 (`RSQRT_BITS` = 32 at 18 fraction bits), and
/// the row's sum of squares at 12 fraction bits stays below 2^36 (`SQUARE_BITS` = 38, known
/// MSB): rms < min(128, 2^12/√n).
pub fn prescaled_rms_limit(n: usize) -> f64 {
    128f64.min(4096.0 / (n.max(1) as f64).sqrt())
}

/// [`normalize`] of `x·2^shift` with ε·4^shift: the same ŷ in exact arithmetic (both norms are
/// scale invariant), but the variance's truncation carries (one unit of 2^-6 per element,
/// which do not cancel in an uncentred row) shrink by 2^shift relative to the variance. Each
/// party shifts its own share (no message). The caller picks `shift` (public) from calibration
/// so that rows stay below [`prescaled_rms_limit`] after the shift; a row of rms 0.5 with
/// `shift = 5` goes from ≈ 3 % to ≈ 0.1 % relative error.
pub fn normalize_prescaled(
    sess: &mut Session,
    norm: Norm,
    x: &SharedTensor,
    eps: f64,
    backend: RowProductBackend<'_>,
    shift: u32,
) -> Result<SharedTensor> {
    let scaled = prescale(x.share(), shift)?;
    let x = SharedTensor::new(x.shape().clone(), x.format(), scaled)?;
    normalize(sess, norm, &x, eps * 4f64.powi(shift as i32), backend)
}

/// The mirror of [`normalize_prescaled`] (the same refusal of a shift above 24).
pub fn norm_mirror_prescaled(
    norm: Norm,
    x: &[u64],
    n: usize,
    eps: f64,
    shift: u32,
) -> Result<Vec<u64>> {
    let scaled = prescale(x, shift)?;
    Ok(norm_mirror(norm, &scaled, n, eps * 4f64.powi(shift as i32)))
}

fn prescale(x: &[u64], shift: u32) -> Result<Vec<u64>> {
    if shift > 24 {
        return Err(mpc_core::Error::InvalidArgument(format!(
            "normalisation prescale by 2^{shift} (at most 2^24)"
        )));
    }
    Ok(x.iter().map(|&v| v.wrapping_shl(shift)).collect())
}

/// Exact cost of [`normalize`] with [`RowProductBackend::Ot`] on `rows` rows of `n`.
pub fn norm_cost(norm: Norm, rows: usize, n: usize) -> Cost {
    normalize_cost(rows, n, norm.centering())
}

/// The mirror of [`normalize`] on plaintext rows of `n` values.
pub fn norm_mirror(norm: Norm, x: &[u64], n: usize, eps: f64) -> Vec<u64> {
    let mut y = x.to_vec();
    for row in y.chunks_exact_mut(n) {
        normalize_row_with(row, eps, norm == Norm::LayerNorm);
    }
    y
}

/// The normalisation's row products on HE ([`row_products`]): at BERT-base's 128 × 768,
/// 8.6 MB instead of the 27.3 MB of Gilboa products on COTs, the same values. Needs the
/// packed products' parameters ([`HeParams::packed_products`]) and both parties' keys, the
/// peer's Galois keys included.
#[derive(Debug)]
pub struct HeRowProducts<'a> {
    params: &'a HeParams,
    keys: ProductKeys<'a>,
}

impl<'a> HeRowProducts<'a> {
    /// Row products with these parameters and keys.
    pub fn new(params: &'a HeParams, keys: ProductKeys<'a>) -> Self {
        HeRowProducts { params, keys }
    }
}

impl RowProducts for HeRowProducts<'_> {
    fn cots(&self, _: usize, _: usize) -> CotDemand {
        CotDemand::default()
    }

    fn row_square_sums(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        n: usize,
        ring: Ring,
    ) -> Result<Vec<u64>> {
        let v = RingMatrix::new(v.len() / n, n, v.to_vec())?;
        let seed = sess.fresh_seed();
        row_products::row_square_sums(
            &mut sess.ch,
            self.params,
            self.keys,
            sess.party,
            &v,
            ring.bits(),
            seed,
        )
    }

    fn row_scalar_product(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        r: &[u64],
        n: usize,
        ring: Ring,
        shift: u32,
    ) -> Result<Vec<u64>> {
        let v = RingMatrix::new(v.len() / n, n, v.to_vec())?;
        // The responses reveal bits [shift, ring) only: shares of ⌊r·v / 2^shift⌋ (within 3
        // units), up-cast to Z_2^64.
        let window = Window::new(self.params, shift, ring.bits())?;
        let seed = sess.fresh_seed();
        let y = row_products::row_scalar_product(
            &mut sess.ch,
            self.params,
            self.keys,
            r,
            &v,
            window,
            seed,
        )?;
        upcast_window(sess, y.data(), window)
    }
}
