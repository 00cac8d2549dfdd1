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
use crate::cast::{truncate, truncate_cost, truncate_mirror, upcast_window, LINEAR};
use crate::keys::HeKeys;
use crate::norm_offline::NormTriples;
use crate::tensor::SharedTensor;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products::{self, SquareSumsRole};
use he_linear::secret_product::ProductKeys;
use mpc_core::{FixedPoint, Party, Result, Ring};
use ot_nonlinear::approx::layernorm::normalize_row_with;
use ot_nonlinear::functions::{
    normalize_cost, normalize_cots_with, normalize_with, Centering, OtProducts, RowProducts,
};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
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
    pub(crate) fn centering(self) -> Centering {
        match self {
            Norm::LayerNorm => Centering::Mean,
            Norm::RmsNorm => Centering::None,
        }
    }
}

/// Where the normalisation's two row products run.
#[derive(Debug)]
pub enum RowProductBackend<'a> {
    /// Homomorphic products with packed keys.
    He(&'a HeKeys<'a>),
    /// Gilboa products on the session's COTs.
    Ot,
    /// Openings of operands masked by correlations made offline
    /// ([`crate::norm_offline`]).
    Prepared(Box<NormTriples>),
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
        RowProductBackend::Prepared(mut triples) => normalize_with(
            sess,
            x.share(),
            x.cols(),
            eps,
            norm.centering(),
            triples.as_mut(),
        )?,
    };
    SharedTensor::new(x.shape().clone(), LINEAR, y)
}

/// Largest rms a row of `n` may reach after [`normalize_prescaled`]'s shift: the variance
/// enters the reciprocal square root below 2^14 (`RSQRT_BITS` = 32 at 18 fraction bits), and
/// the row's sum of squares at 12 fraction bits stays below 2^36 (`SQUARE_RING` = Z_2^38, known
/// MSB): rms < min(128, 2^12/√n).
pub fn prescaled_rms_limit(n: usize) -> f64 {
    128f64.min(4096.0 / (n.max(1) as f64).sqrt())
}

/// [`normalize`] of the rows of `x` each scaled by a public power of two, `2^shifts[r]` for row
/// `r`: the same ŷ in exact arithmetic (both norms are scale invariant) but inside the plan's
/// ranges. A positive shift (a row of small rms) is local (each party shifts its own share)
/// and shrinks the variance's truncation carries (one unit of 2^-6 per element, which do not
/// cancel in an uncentred row) relative to the variance: a row of rms 0.5 shifted by 5 goes
/// from ≈ 3 % to ≈ 0.1 % relative error. A negative shift (a row whose rms would overflow the
/// reciprocal square root, e.g. a decoder's attention-sink position) is one known-MSB
/// truncation of those rows. The caller picks the shifts from calibration so that every row
/// stays below [`prescaled_rms_limit`]. ε is scaled by 4^max(shifts): exact for the most
/// up-scaled rows, relatively larger (still negligible when the variance ≫ ε) for the others.
pub fn normalize_prescaled(
    sess: &mut Session,
    norm: Norm,
    x: &SharedTensor,
    eps: f64,
    backend: RowProductBackend<'_>,
    shifts: &[i32],
) -> Result<SharedTensor> {
    x.expect("normalisation input", x.shape(), LINEAR)?;
    check_shifts(x.rows(), shifts)?;
    let n = x.cols();
    let mut y = x.share().to_vec();
    // Up-scaled rows: local.
    for (row, &s) in y.chunks_exact_mut(n).zip(shifts) {
        if s > 0 {
            row.iter_mut().for_each(|v| *v = v.wrapping_shl(s as u32));
        }
    }
    // Down-scaled rows: one truncation per distinct shift.
    for k in down_shifts(shifts) {
        let rows: Vec<usize> = (0..shifts.len())
            .filter(|&r| -shifts[r] == k as i32)
            .collect();
        let gathered: Vec<u64> = rows
            .iter()
            .flat_map(|&r| y[r * n..(r + 1) * n].iter().copied())
            .collect();
        let wide = SharedTensor::matrix(
            rows.len(),
            n,
            FixedPoint::new(Ring::R64, LINEAR.frac_bits() + k)?,
            gathered,
        )?;
        sess.reserve(trunc_cots(
            wide.share().len(),
            Ring::R64,
            Ring::R64,
            k,
            TruncKind::KnownMsb,
        )?)?;
        let t = truncate(sess, &wide, k, Ring::R64)?;
        for (i, &r) in rows.iter().enumerate() {
            y[r * n..(r + 1) * n].copy_from_slice(&t.share()[i * n..(i + 1) * n]);
        }
    }
    let scaled = SharedTensor::new(x.shape().clone(), LINEAR, y)?;
    normalize(sess, norm, &scaled, prescaled_eps(eps, shifts), backend)
}

/// Exact cost of [`normalize_prescaled`] (OT products) on rows of `n` with these shifts.
pub fn norm_prescaled_cost(norm: Norm, n: usize, shifts: &[i32]) -> Result<Cost> {
    let mut cost: Option<Cost> = None;
    for k in down_shifts(shifts) {
        let rows = shifts.iter().filter(|&&s| -s == k as i32).count();
        let c = truncate_cost(rows * n, Ring::R64, Ring::R64, k)?;
        cost = Some(cost.map_or(c, |a| a.then(c)));
    }
    let c = norm_cost(norm, shifts.len(), n);
    Ok(cost.map_or(c, |a| a.then(c)))
}

/// COTs [`normalize_prescaled`] draws with [`RowProductBackend::Ot`] (reserve them beforehand
/// for a cost without COT extension traffic).
pub fn norm_prescaled_cots(norm: Norm, n: usize, shifts: &[i32]) -> Result<CotDemand> {
    let mut d = normalize_cots_with(shifts.len(), n, norm.centering(), &OtProducts);
    for k in down_shifts(shifts) {
        let rows = shifts.iter().filter(|&&s| -s == k as i32).count();
        d = d.plus(trunc_cots(
            rows * n,
            Ring::R64,
            Ring::R64,
            k,
            TruncKind::KnownMsb,
        )?);
    }
    Ok(d)
}

/// The mirror of [`normalize_prescaled`].
pub fn norm_mirror_prescaled(
    norm: Norm,
    x: &[u64],
    n: usize,
    eps: f64,
    shifts: &[i32],
) -> Result<Vec<u64>> {
    if n == 0 || x.len() != shifts.len() * n {
        return Err(mpc_core::Error::shape(
            "normalisation values",
            x.len(),
            [shifts.len(), n],
        ));
    }
    check_shifts(shifts.len(), shifts)?;
    let mut y = Vec::with_capacity(x.len());
    for (row, &s) in x.chunks_exact(n).zip(shifts) {
        if s >= 0 {
            y.extend(row.iter().map(|v| v.wrapping_shl(s as u32)));
        } else {
            y.extend(truncate_mirror(row, Ring::R64, Ring::R64, (-s) as u32));
        }
    }
    Ok(norm_mirror(norm, &y, n, prescaled_eps(eps, shifts)))
}

/// Largest |shift| accepted.
pub const MAX_PRESCALE: i32 = 24;

fn check_shifts(rows: usize, shifts: &[i32]) -> Result<()> {
    if shifts.len() != rows {
        return Err(mpc_core::Error::shape(
            "prescales (one per row)",
            shifts.len(),
            rows,
        ));
    }
    if let Some(s) = shifts.iter().find(|s| s.abs() > MAX_PRESCALE) {
        return Err(mpc_core::Error::out_of_range(
            "prescale",
            s.to_string(),
            format!("within ±{MAX_PRESCALE}"),
        ));
    }
    Ok(())
}

fn down_shifts(shifts: &[i32]) -> Vec<u32> {
    let mut ks: Vec<u32> = shifts
        .iter()
        .filter(|&&s| s < 0)
        .map(|&s| (-s) as u32)
        .collect();
    ks.sort_unstable();
    ks.dedup();
    ks
}

fn prescaled_eps(eps: f64, shifts: &[i32]) -> f64 {
    let top = shifts.iter().copied().max().unwrap_or(0);
    eps * 4f64.powi(top)
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
        // The client holds the key of the square sums, the server evaluates.
        let role = match sess.party {
            Party::Client => SquareSumsRole::KeyHolder {
                sk: self.keys.my_sk,
            },
            Party::Server => SquareSumsRole::Evaluator {
                holder_pk: self.keys.peer_pk,
                holder_galois: self.keys.peer_galois,
            },
        };
        row_products::row_square_sums(&mut sess.ch, self.params, role, &v, ring.bits(), seed)
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
