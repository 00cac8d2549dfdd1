//! Secret × secret matrix products (attention's Q·Kᵀ and E·V): both operands shared, every
//! cross term on HE ([`he_linear::secret_product`]: each party encrypts its share of the cheaper
//! operand, the peer multiplies its plaintext share in and returns the masked, flooded result;
//! packed parameters merge the outputs with Galois keys). Several products (heads) share the
//! same two flights.
//!
//! The responses reveal only bits [shift, 64) ([`Window`]); the shares are rounded
//! ([`round_products`]) and up-cast back to Z_2^64. Result: ⌊X·Y / 2^shift⌉ within 3 units.
//! Mirror: [`matmul_mirror`]. Cost: [`matmul_cost`] (bytes of both directions, exact).
use crate::cast::{round_products, upcast_cost, LINEAR};
use crate::keys::HeKeys;
use crate::linear::ring_matmul;
use crate::tensor::SharedTensor;
use he_linear::matrix::{ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::secret_product::{secret_products, ProductPlan};
use mpc_core::{Error, Result, Ring};
use ot_nonlinear::mpc::{Cost, Session, Side};

/// Shares of ⌊X_i·Y_i / 2^shift⌉ (Z_2^64) for every pair, all in the same flights.
pub fn secret_matmul(
    sess: &mut Session,
    he: &HeKeys<'_>,
    pairs: &[(&SharedTensor, &SharedTensor)],
    shift: u32,
) -> Result<Vec<SharedTensor>> {
    let mut mats = Vec::with_capacity(pairs.len());
    for (x, y) in pairs {
        if x.cols() != y.rows() {
            return Err(Error::shape(
                format!(
                    "rows of the right factor of a secret product of {}",
                    x.shape()
                ),
                y.rows(),
                x.cols(),
            ));
        }
        if x.ring() != Ring::R64 || y.ring() != Ring::R64 {
            return Err(Error::shape(
                "ring bits of a secret product's factors",
                [x.ring().bits() as usize, y.ring().bits() as usize],
                [64, 64],
            ));
        }
        mats.push((
            RingMatrix::new(x.rows(), x.cols(), x.share().to_vec())?,
            RingMatrix::new(y.rows(), y.cols(), y.share().to_vec())?,
        ));
    }
    let window = Window::new(he.product_params, shift, Ring::R64.bits())?;
    let prods = he_products(sess, he, &mats, window)?;
    let shapes: Vec<(usize, usize)> = prods.iter().map(|p| (p.rows(), p.cols())).collect();
    let flat: Vec<u64> = prods
        .iter()
        .flat_map(|p| p.data().iter().copied())
        .collect();
    let out = round_products(sess, flat, window)?;
    let format = mpc_core::FixedPoint::new(
        Ring::R64,
        (pairs[0].0.frac_bits() + pairs[0].1.frac_bits()).saturating_sub(shift),
    )?;
    let mut at = 0;
    shapes
        .into_iter()
        .map(|(r, c)| {
            let t = SharedTensor::matrix(r, c, format, out[at..at + r * c].to_vec());
            at += r * c;
            t
        })
        .collect()
}

/// This party's shares of the products of `mats` (its shares of each pair) through `window`,
/// on the session's channel and a fresh seed ([`secret_products`]).
pub(crate) fn he_products(
    sess: &mut Session,
    he: &HeKeys<'_>,
    mats: &[(RingMatrix, RingMatrix)],
    window: Window,
) -> Result<Vec<RingMatrix>> {
    let refs: Vec<(&RingMatrix, &RingMatrix)> = mats.iter().map(|(x, y)| (x, y)).collect();
    let seed = sess.fresh_seed();
    secret_products(
        &mut sess.ch,
        he.product_params,
        he.keys,
        &refs,
        window,
        seed,
    )
}

/// Exact cost of [`secret_matmul`] on products of the given (k, m, n) shapes.
pub fn matmul_cost(
    params: &HeParams,
    shapes: &[(usize, usize, usize)],
    shift: u32,
) -> Result<Cost> {
    let window = Window::new(params, shift, Ring::R64.bits())?;
    let outputs = shapes.iter().map(|&(k, _, n)| k * n).sum();
    Ok(products_cost(params, shapes, window)?.then(upcast_cost(outputs, window)?))
}

/// Exact cost of [`he_linear::secret_product::secret_products`] on products of the given
/// (k, m, n) shapes through `window` (the HE flights alone, before any up-cast).
pub fn products_cost(
    params: &HeParams,
    shapes: &[(usize, usize, usize)],
    window: Window,
) -> Result<Cost> {
    let mut cost = Cost::default();
    let mut start = 0;
    // The products go in groups of at most `max_revealed` outputs, two flights each (both
    // parties send their encryptions, then both their responses).
    while start < shapes.len() {
        let (mut end, mut revealed, mut bytes) = (start, 0u64, 0u64);
        while end < shapes.len() {
            let (k, m, n) = shapes[end];
            revealed += (k * n) as u64;
            if end > start && revealed > params.max_revealed() {
                break;
            }
            let plan = ProductPlan::new(params, ProductShape { k, m, n })?;
            let sip = plan.sip.with_window(window);
            bytes += (sip.input_bytes(params) + sip.output_bytes(params)) as u64;
            end += 1;
        }
        for _ in 0..2 {
            cost = cost.then(Cost {
                server_bytes: 0,
                client_bytes: 0,
                rounds: 1,
                first: Side::Both,
                last: Side::Both,
            });
        }
        cost.server_bytes += bytes;
        cost.client_bytes += bytes;
        start = end;
    }
    Ok(cost)
}

/// The mirror: ⌊X·Y / 2^shift⌉ (round to nearest) in Z_2^64, X of k×m, Y of m×n.
pub fn matmul_mirror(x: &[u64], y: &[u64], k: usize, m: usize, n: usize, shift: u32) -> Vec<u64> {
    let half = if shift == 0 { 0 } else { 1u64 << (shift - 1) };
    ring_matmul(x, y, k, m, n)
        .into_iter()
        .map(|v| ((v.wrapping_add(half) as i64) >> shift) as u64)
        .collect()
}

/// The activation format of attention's products ([`LINEAR`] operands, truncated by 18).
pub const PRODUCT_SHIFT: u32 = LINEAR.frac_bits();
