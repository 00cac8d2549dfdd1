//! Element-wise product of two shared tensors (SwiGLU's SiLU(gate)·up): Gilboa products on
//! COTs ([`ot_nonlinear::mpc::mul`], both cross terms in the same two flights) at 36 fraction
//! bits, then one known-MSB truncation by 18. Coefficient-encoded HE has no element-wise
//! product (see `ot_nonlinear::mpc::product`), hence OT.
//!
//! Mirror: [`product_mirror`], ⌊x·y / 2^18⌋ (wrapping product); the secure result is that or
//! one unit less. Cost: [`product_cost`] (exact, COT extension reserved beforehand).
//!
//! On offline material ([`elementwise_product_prepared`], an element-wise triple of
//! [`crate::triple`]) the product is Beaver's: the masked operands opened in one round, then
//! the same truncation: the same result, ⌊x·y / 2^18⌋ or one less.
use crate::cast::{truncate, truncate_cost, truncate_mirror, LINEAR};
use crate::tensor::SharedTensor;
use crate::triple::{
    triple_products, triple_products_cost, triple_products_cots, Rounding, Triple, TripleShape,
};
use mpc_core::{FixedPoint, Result, Ring};
use ot_nonlinear::mpc::product::{mul_cost, mul_cots};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
use ot_nonlinear::mpc::{mul, Cost, CotDemand, Session};

const R: Ring = Ring::R64;

/// Shares of ⌊x·y / 2^18⌋ element-wise, x and y of the same shape (Z_2^64, 18 fraction bits).
/// Labels `mul` and `trunc` (inside the caller's).
pub fn elementwise_product(
    sess: &mut Session,
    x: &SharedTensor,
    y: &SharedTensor,
) -> Result<SharedTensor> {
    x.expect("product operand", x.shape(), LINEAR)?;
    y.expect("product operand", x.shape(), LINEAR)?;
    let n = x.share().len();
    let shift = LINEAR.frac_bits();
    sess.reserve(product_cots(n)?)?;
    let z = mul(sess, x.share(), y.share(), R)?;
    let wide = SharedTensor::new(x.shape().clone(), FixedPoint::new(R, 2 * shift)?, z)?;
    truncate(sess, &wide, shift, R)
}

/// [`elementwise_product`] on an element-wise triple made offline ([`crate::triple`]): one
/// round of openings (8 bytes per element and operand each way) and the same truncation,
/// no COT for the product online. Labels `trunc` (inside the caller's).
pub fn elementwise_product_prepared(
    sess: &mut Session,
    x: &SharedTensor,
    y: &SharedTensor,
    triple: &Triple,
) -> Result<SharedTensor> {
    x.expect("product operand", x.shape(), LINEAR)?;
    y.expect("product operand", x.shape(), LINEAR)?;
    let n = x.share().len();
    sess.reserve(trunc_cots(
        n,
        R,
        R,
        LINEAR.frac_bits(),
        TruncKind::KnownMsb,
    )?)?;
    let z = triple_products(
        sess,
        std::slice::from_ref(triple),
        &[(x.share(), y.share())],
        LINEAR.frac_bits(),
        Rounding::Floor,
    )?;
    SharedTensor::new(x.shape().clone(), LINEAR, z.concat())
}

/// Exact cost of [`elementwise_product_prepared`] on `n` elements.
pub fn product_prepared_cost(n: usize) -> Result<Cost> {
    triple_products_cost(&[TripleShape::Elementwise(n)], LINEAR.frac_bits())
}

/// COTs [`elementwise_product_prepared`] draws on `n` elements.
pub fn product_prepared_cots(n: usize) -> Result<CotDemand> {
    triple_products_cots(&[TripleShape::Elementwise(n)], LINEAR.frac_bits())
}

/// Exact cost of [`elementwise_product`] on `n` elements.
pub fn product_cost(n: usize) -> Result<Cost> {
    Ok(mul_cost(n, 1, R).then(truncate_cost(n, R, R, LINEAR.frac_bits())?))
}

/// COTs [`elementwise_product`] draws on `n` elements (it reserves them itself).
pub fn product_cots(n: usize) -> Result<CotDemand> {
    let shift = LINEAR.frac_bits();
    Ok(mul_cots(n, R).plus(trunc_cots(n, R, R, shift, TruncKind::KnownMsb)?))
}

/// The mirror of [`elementwise_product`].
pub fn product_mirror(x: &[u64], y: &[u64]) -> Vec<u64> {
    let wide: Vec<u64> = x.iter().zip(y).map(|(&a, &b)| a.wrapping_mul(b)).collect();
    truncate_mirror(&wide, R, R, LINEAR.frac_bits())
}
