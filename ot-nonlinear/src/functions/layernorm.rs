//! LayerNorm's normalisation on shares, label `layernorm`: ŷ = (x − mean)/√(var + ε) per row,
//! following [`crate::approx::layernorm`] step by step (its mirror is
//! [`normalize_row`](crate::approx::layernorm::normalize_row)). The affine γ·ŷ + β (γ, β the
//! server's) is not computed here: the caller folds it into the next linear layer (a COP with
//! `[diag(γ) | diag(γ)·W]`), where it is free.
//!
//! Who sends what, per call on rows × n values (Z_2^64, 18 fraction bits):
//! 1. `mean = trunc(Σx·C_n, 30)`: local sum and public multiplier, one known-MSB truncation per
//!    row;
//! 2. `vs = floor((x − mean)/2^12)` on Z_2^38 (free down-cast), [`square_narrow`] on Z_2^38
//!    reading vs's low [`SQUARE_INPUT_BITS`] = 20 bits (exact: |vs| < 2^18), row sums,
//!    up-cast to Z_2^64 and `var = trunc(Σvs²·C_n, 30)·2^6 + ε` (per row);
//! 3. `r = rsqrt(var)` ([`super::rsqrt()`], per row, 20 fraction bits);
//! 4. `ŷ = trunc(floor((x − mean)/2^8)·r, 12)`: the row-scalar product ([`mul_row_scalar`]) on
//!    Z_2^38 and one known-MSB truncation with up-cast to Z_2^64.
//!
//! Cost ([`layernorm_cost`], exact): per element 21 + 567 = 588 bits (square) + 38·39 =
//! 1482 bits (row-scalar product) + 39 bits (truncation with up-cast) ≈ 2109 bits, plus per row
//! the truncations and [`super::rsqrt()`] (≈ 40 kbit). Rounds: 12 + rsqrt's.
//! Ranges (checked by the plan's tests, documented in `approx::layernorm`): row standard
//! deviation below 2^7, |ŷ| < 64.
//!
//! The two row-structured products (the square sums of step 2 and the row-scalar product of
//! step 4) go through [`RowProducts`]: [`OtProducts`] runs them as above; a caller holding HE
//! keys may run them on HE instead (`bert::secure` does, with `he_linear::row_products`, at
//! 8.6 MB instead of 27.3 MB for 128 × 768). Both compute the same values exactly.
use super::rsqrt::{rsqrt, rsqrt_cost, rsqrt_cots};
use super::{total_cost, total_cots};
use crate::approx::fixed::PUBLIC_FRAC_BITS;
use crate::approx::layernorm::{
    epsilon, mean_multiplier, PRODUCT_RING, PRODUCT_V_FRAC, R_FRAC, SQUARE_INPUT_BITS, SQUARE_RING,
    VAR_FRAC,
};
use crate::mpc::product::{
    mul_cost, mul_cots, mul_row_scalar, square_narrow, square_narrow_cost, square_narrow_cots,
};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, FixedPoint, Result, Ring};

const LIN: FixedPoint = FixedPoint::LINEAR;

fn rings() -> (Ring, Ring, Ring) {
    (Ring::R64, SQUARE_RING, PRODUCT_RING)
}

/// LayerNorm's two row-structured products, on shares of the given ring (values < 2^ℓ).
pub trait RowProducts {
    /// COTs both products draw on `rows` rows of n (reserved with the rest of LayerNorm).
    fn cots(&self, rows: usize, n: usize) -> CotDemand;
    /// Shares of Σ_j v_ij² for each row of n values, in `ring`.
    fn row_square_sums(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        n: usize,
        ring: Ring,
    ) -> Result<Vec<u64>>;
    /// Shares in Z_2^64 of ⌊r_i·v_ij / 2^shift⌋ (v in rows of n, one r per row, both shared in
    /// `ring`; the product fits it with its top two bits clear), within a few units where the
    /// implementation truncates with carries.
    fn row_scalar_product(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        r: &[u64],
        n: usize,
        ring: Ring,
        shift: u32,
    ) -> Result<Vec<u64>>;
}

/// Gilboa products on the session's COTs: [`square_narrow`] with local row sums, and
/// [`mul_row_scalar`] with a known-MSB truncation (exact).
#[derive(Clone, Copy, Debug, Default)]
pub struct OtProducts;

impl RowProducts for OtProducts {
    fn cots(&self, rows: usize, n: usize) -> CotDemand {
        let (_, sq, prod) = rings();
        square_narrow_cots(rows * n, sq, SQUARE_INPUT_BITS).plus(mul_cots(rows, prod))
    }

    fn row_square_sums(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        n: usize,
        ring: Ring,
    ) -> Result<Vec<u64>> {
        let squares = square_narrow(sess, v, ring, SQUARE_INPUT_BITS)?;
        Ok(squares
            .chunks_exact(n)
            .map(|row| row.iter().fold(0, |a, &s| ring.add(a, s)))
            .collect())
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
        let y = mul_row_scalar(sess, v, r, n, ring)?;
        trunc_cast(sess, &y, ring, Ring::R64, shift, TruncKind::KnownMsb)
    }
}

/// The steps of [`layernorm`] (`center`: with the mean; RMSNorm without), with the two
/// products' costs where they run (`products`: the square sums, then the row-scalar product)
/// or without them.
fn steps(
    rows: usize,
    n: usize,
    center: Centering,
    products: Option<[(Cost, CotDemand); 2]>,
) -> Vec<(Cost, CotDemand)> {
    let (r64, sq, prod) = rings();
    let f = LIN.frac_bits();
    let tr = |count: usize, from: Ring, s: u32| {
        (
            trunc_cost(count, from, r64, s, TruncKind::KnownMsb).expect("valid"),
            trunc_cots(count, from, r64, s, TruncKind::KnownMsb).expect("valid"),
        )
    };
    let (square, scale) = match products {
        Some([square, scale]) => (Some(square), Some(scale)),
        None => (None, None),
    };
    let mut v = Vec::new();
    if center == Centering::Mean {
        v.push(tr(rows, r64, PUBLIC_FRAC_BITS));
    }
    v.extend(square);
    v.extend([
        tr(rows, sq, 0),
        tr(rows, r64, PUBLIC_FRAC_BITS),
        (rsqrt_cost(rows), rsqrt_cots(rows)),
    ]);
    v.extend(scale);
    // The row-scalar product's closing known-MSB truncation to Z_2^64: by 12 from Z_2^38
    // over COTs or on opened triples; on HE the responses already dropped those bits
    // ([`RowProducts`] implementations end with one known-MSB cast of the same size, from
    // Z_2^26 by 0).
    v.push(tr(rows * n, prod, PRODUCT_V_FRAC + R_FRAC - f));
    v
}

/// Exact cost of [`layernorm`] on `rows` rows of n values (label `layernorm`).
pub fn layernorm_cost(rows: usize, n: usize) -> Cost {
    normalize_cost(rows, n, Centering::Mean)
}

/// Exact cost of [`normalize_with`] on `rows` rows of n values with the products on COTs.
pub fn normalize_cost(rows: usize, n: usize, center: Centering) -> Cost {
    let (_, sq, prod) = rings();
    let square = square_narrow_cost(rows * n, sq, SQUARE_INPUT_BITS);
    normalize_cost_with(rows, n, center, [square, mul_cost(rows, n, prod)])
}

/// Exact cost of [`normalize_with`] on `rows` rows of n values whose two products cost
/// `products` (the square sums, then the row-scalar product; the closing truncation is
/// counted here).
pub fn normalize_cost_with(rows: usize, n: usize, center: Centering, products: [Cost; 2]) -> Cost {
    let products = products.map(|c| (c, CotDemand::default()));
    total_cost(steps(rows, n, center, Some(products)))
}

/// Whether a normalisation subtracts the row mean (LayerNorm) or not (RMSNorm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Centering {
    /// LayerNorm: ŷ = (x − mean)/√(var + ε).
    Mean,
    /// RMSNorm: ŷ = x/√(mean(x²) + ε).
    None,
}

/// COTs drawn by [`layernorm`].
pub fn layernorm_cots(rows: usize, n: usize) -> CotDemand {
    layernorm_cots_with(rows, n, &OtProducts)
}

/// COTs drawn by [`layernorm_with`] with `products`.
pub fn layernorm_cots_with(rows: usize, n: usize, products: &dyn RowProducts) -> CotDemand {
    normalize_cots_with(rows, n, Centering::Mean, products)
}

/// COTs drawn by [`normalize_with`].
pub fn normalize_cots_with(
    rows: usize,
    n: usize,
    center: Centering,
    products: &dyn RowProducts,
) -> CotDemand {
    normalize_cots_besides_products(rows, n, center).plus(products.cots(rows, n))
}

/// COTs drawn by [`normalize_with`] outside its two products (all it draws when they run on
/// HE or on correlations made offline).
pub fn normalize_cots_besides_products(rows: usize, n: usize, center: Centering) -> CotDemand {
    total_cots(steps(rows, n, center, None))
}

/// Shares of the normalised rows ŷ (Z_2^64, 18 fraction bits) of `x` (rows of n values,
/// row-major, Z_2^64 with 18 fraction bits). Label `layernorm`.
pub fn layernorm(sess: &mut Session, x: &[u64], n: usize, eps: f64) -> Result<Vec<u64>> {
    layernorm_with(sess, x, n, eps, &mut OtProducts)
}

/// [`layernorm`] with the two row-structured products run by `products`.
pub fn layernorm_with(
    sess: &mut Session,
    x: &[u64],
    n: usize,
    eps: f64,
    products: &mut dyn RowProducts,
) -> Result<Vec<u64>> {
    normalize_with(sess, x, n, eps, Centering::Mean, products)
}

/// The normalisation of rows of n values, centred (LayerNorm) or not (RMSNorm: the mean is
/// taken as 0 and step 1 is skipped; the same ranges hold for the row's root mean square),
/// the two row-structured products run by `products`. Label `layernorm` or `rmsnorm`. Mirror:
/// [`normalize_row_with`](crate::approx::layernorm::normalize_row_with).
pub fn normalize_with(
    sess: &mut Session,
    x: &[u64],
    n: usize,
    eps: f64,
    center: Centering,
    products: &mut dyn RowProducts,
) -> Result<Vec<u64>> {
    if n == 0 || !x.len().is_multiple_of(n) {
        return Err(Error::shape(
            format!("LayerNorm values (rows of {n})"),
            x.len(),
            mpc_core::Dims::MultipleOf(n),
        ));
    }
    let rows = x.len() / n;
    let (r64, sq_ring, prod) = rings();
    let f = LIN.frac_bits();
    let server = sess.is_server();
    let c_n = mean_multiplier(n);
    sess.reserve(normalize_cots_with(rows, n, center, products))?;
    let label = match center {
        Centering::Mean => "layernorm",
        Centering::None => "rmsnorm",
    };
    sess.scope(label, |sess| {
        let known = |sess: &mut Session, v: &[u64], from: Ring, s: u32| {
            trunc_cast(sess, v, from, r64, s, TruncKind::KnownMsb)
        };
        // 1. Means.
        let sums: Vec<u64> = x
            .chunks_exact(n)
            .map(|row| row.iter().fold(0, |a, &v| r64.add(a, v)).wrapping_mul(c_n))
            .collect();
        let mean = match center {
            Centering::Mean => known(sess, &sums, r64, PUBLIC_FRAC_BITS)?,
            Centering::None => vec![0; rows],
        };
        let v: Vec<u64> = x
            .iter()
            .enumerate()
            .map(|(i, &xi)| r64.sub(xi, mean[i / n]))
            .collect();
        // 2. Variances.
        let vs = trunc_cast(sess, &v, r64, sq_ring, f - VAR_FRAC, TruncKind::KnownMsb)?;
        let row_sums = products.row_square_sums(sess, &vs, n, sq_ring)?;
        let sq64 = known(sess, &row_sums, sq_ring, 0)?;
        let scaled: Vec<u64> = sq64.iter().map(|&s| s.wrapping_mul(c_n)).collect();
        let eps = if server { epsilon(eps) } else { 0 };
        let var: Vec<u64> = known(sess, &scaled, r64, PUBLIC_FRAC_BITS)?
            .into_iter()
            .map(|s| r64.add(s << (f - 2 * VAR_FRAC), eps))
            .collect();
        // 3. 1/√var per row, 20 fraction bits, down-cast to the product ring (free).
        let inv: Vec<u64> = rsqrt(sess, &var)?
            .into_iter()
            .map(|r| prod.reduce(r))
            .collect();
        // 4. ŷ.
        let vp = trunc_cast(sess, &v, r64, prod, f - PRODUCT_V_FRAC, TruncKind::KnownMsb)?;
        products.row_scalar_product(sess, &vp, &inv, n, prod, PRODUCT_V_FRAC + R_FRAC - f)
    })
}
