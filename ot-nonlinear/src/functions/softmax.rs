//! Softmax of rows on shares with an optional client-side mask, following the set's
//! [`crate::approx::SoftmaxPlan`]; label `softmax`. Mirror: [`crate::approx::fixed::softmax_row`].
//!
//! 1. mask: the client subtracts `mask_offset` from its share of its own padding entries (no
//!    message; the server never learns which);
//! 2. [`row_max`] (tournament tree, comparisons on Z_2^max_keep, muxes on Z_2^k with k the
//!    low bits the exp reads, [`exp_input_bits`]: 35 for the Nimbus exp, 64 for PUMA's);
//! 3. d = x − max (local; correct modulo 2^k, which is all the exp reads), exp of the set
//!    ([`super::exp::exp_reserved`]), row sums (local);
//! 4. [`reciprocal`] of the row sums (one per row);
//! 5. free down-casts e → Z_2^prod_bits at e_frac bits and r (at r_frac bits) → Z_2^prod_bits, one
//!    [`mul_row_scalar`] (the row's r against every e of the row), one fused known-MSB
//!    truncation + up-cast back to Z_2^64 with 18 bits.
//!
//! All COTs are reserved at the start, so no Ferret extension runs inside. Cost:
//! [`softmax_cost`] (exact bytes; rounds as the steps' sum, the measured count is lower where
//! flights merge).
//!
//! Secure vs mirror: the tree's winner may differ from the mirror's by < 2^{max_drop+1−18}
//! (1/32), which shifts every d alike (softmax is shift-invariant up to the exp
//! approximation's change over such a shift), plus the exp's and the truncations' carries.
use super::exp::{exp_cost, exp_cots, exp_input_bits, exp_reserved};
use super::max::{row_max, row_max_cost, row_max_cots};
use super::reciprocal::{reciprocal, reciprocal_cost, reciprocal_cots};
use super::{total_cost, total_cots};
use crate::approx::ApproxSet;
use crate::mpc::product::{mul_cost, mul_cots, mul_row_scalar};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, FixedPoint, Result, Ring};

fn steps(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> Vec<(Cost, CotDemand)> {
    let p = &set.plan.softmax;
    let n = rows * cols;
    let pr = Ring::new(p.prod_bits).expect("validated plan");
    let s = p.e_frac + p.r_frac - FixedPoint::LINEAR.frac_bits();
    let value = max_ring(set, layer);
    vec![
        (
            row_max_cost(p, rows, cols, value),
            row_max_cots(p, rows, cols, value),
        ),
        (exp_cost(set, layer, n), exp_cots(set, layer, n)),
        (reciprocal_cost(p, rows), reciprocal_cots(p, rows)),
        (mul_cost(rows, cols, pr), mul_cots(rows, pr)),
        (
            trunc_cost(n, pr, Ring::R64, s, TruncKind::KnownMsb).expect("validated plan"),
            trunc_cots(n, pr, Ring::R64, s, TruncKind::KnownMsb).expect("validated plan"),
        ),
    ]
}

/// The ring of the row maxima: the low bits of x − max that layer `layer`'s exp reads.
fn max_ring(set: &ApproxSet, layer: usize) -> Ring {
    Ring::new(exp_input_bits(set, layer)).expect("1 ≤ bits ≤ 64")
}

/// Exact cost of [`softmax`] (label `softmax`, the reservation excluded).
pub fn softmax_cost(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> Cost {
    total_cost(steps(set, layer, rows, cols))
}

/// COTs drawn by [`softmax`] (it reserves them itself at its start).
pub fn softmax_cots(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> CotDemand {
    total_cots(steps(set, layer, rows, cols))
}

/// Shares of the softmax of each row of `x` (rows × cols, row-major, Z_2^64, 18 bits) under
/// layer `layer` of `set`. The server passes `Some(exp breakpoints)` and no mask; the client
/// passes `None` and optionally its mask (`false` = padding, excluded). Label `softmax`.
#[allow(clippy::too_many_arguments)]
pub fn softmax(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    x: &[u64],
    exp_breakpoints: Option<&[f64]>,
    mask: Option<&[bool]>,
) -> Result<Vec<u64>> {
    let p = &set.plan.softmax;
    let n = rows * cols;
    if cols == 0 || x.len() != n || mask.is_some_and(|m| m.len() != n) {
        return Err(Error::Shape(format!(
            "softmax: {} elements (mask {:?}) are not {rows} rows of {cols}",
            x.len(),
            mask.map(|m| m.len())
        )));
    }
    if sess.is_server() && mask.is_some() {
        return Err(Error::InvalidArgument(
            "softmax: the mask is the client's input".into(),
        ));
    }
    sess.reserve(softmax_cots(set, layer, rows, cols))?;
    let r64 = Ring::R64;
    let lin = FixedPoint::LINEAR;
    sess.scope("softmax", |sess| {
        let offset = lin.encode(p.mask_offset)?;
        let xm: Vec<u64> = match mask {
            Some(m) => x
                .iter()
                .zip(m)
                .map(|(&v, &keep)| if keep { v } else { r64.sub(v, offset) })
                .collect(),
            None => x.to_vec(),
        };
        let max = row_max(sess, p, &xm, (rows, cols), max_ring(set, layer))?;
        let d: Vec<u64> = xm
            .iter()
            .enumerate()
            .map(|(i, &v)| r64.sub(v, max[i / cols]))
            .collect();
        let e = exp_reserved(sess, set, layer, exp_breakpoints, &d)?;
        let sums: Vec<u64> = e
            .chunks(cols)
            .map(|row| row.iter().fold(0, |a, &v| r64.add(a, v)))
            .collect();
        let r = reciprocal(sess, p, &sums)?;
        let pr = Ring::new(p.prod_bits)?;
        let f = lin.frac_bits();
        let es = trunc_cast(sess, &e, r64, pr, f - p.e_frac, TruncKind::KnownMsb)?;
        // r is at r_frac bits in Z_2^recip_bits: a free down-cast (no shift).
        let rs: Vec<u64> = r.iter().map(|&v| pr.reduce(v)).collect();
        let prod = mul_row_scalar(sess, &es, &rs, cols, pr)?;
        trunc_cast(
            sess,
            &prod,
            pr,
            r64,
            p.e_frac + p.r_frac - f,
            TruncKind::KnownMsb,
        )
    })
}
