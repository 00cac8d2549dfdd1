//! Softmax of rows on shares with an optional mask, following the set's
//! [`crate::approx::SoftmaxPlan`]; label `softmax`. Mirror: [`crate::approx::fixed::softmax_row`].
//!
//! 1. mask ([`ScoreMask`], local, no message): the client subtracts `mask_offset` from its
//!    share of its own padding entries (the server never learns which); under a public mask
//!    both parties copy their share of the row's first kept score into the excluded entries;
//! 2. [`row_max`] ([`MaxShape::for_softmax`]: on rows wider than 64 [`MaxShape::SOFTMAX`],
//!    three levels of pairs, two of 4-way groups; on shorter rows groups of 8; comparisons
//!    on Z_2^max_keep, muxes of (x, y) on Z_2^k with k the low bits the exp reads,
//!    [`exp_input_ring`]: 35 for the Nimbus exp, 64 for PUMA's);
//! 3. d = x − max (local; correct modulo 2^k, which is all the exp reads), exp of the set
//!    ([`super::exp::exp_reserved`]), a public mask's excluded exps zeroed by both parties,
//!    row sums (local);
//! 4. [`reciprocal`] of the row sums (one per row, Z_2^64 at r_frac bits);
//! 5. free down-casts e → Z_2^prod_bits at e_frac bits and r → Z_2^prod_bits, one
//!    [`mul_row_scalar`] (the row's r against every e of the row), one fused known-MSB
//!    truncation + up-cast back to Z_2^64 with 18 bits.
//!
//! [`softmax_unnormalized`] stops after step 4 and returns the exps and the reciprocals: a
//! caller that multiplies the probabilities into a matrix next (attention's P·V) can scale the
//! product's rows instead, which is cheaper when the product has fewer columns than the rows
//! of P (`bert::secure` does, on HE: 64 values per row and head instead of 128).
//!
//! All COTs are reserved at the start, so no Ferret extension runs inside. Cost:
//! [`softmax_cost`] (exact bytes; rounds as the steps' sum, the measured count is lower where
//! flights merge).
//!
//! Secure vs mirror: the tree's winner may differ from the mirror's by < 2^{max_drop+1−18}
//! (1/32), which shifts every d alike (softmax is shift-invariant up to the exp
//! approximation's change over such a shift), plus the exp's and the truncations' carries.
use super::exp::{
    exp_cost, exp_cots, exp_input_ring, exp_prepared_cost, exp_prepared_cots, exp_reserved_with,
};
use super::max::{row_max, row_max_cost, row_max_cots, MaxShape};
use super::piecewise::PowerProducts;
use super::reciprocal::{reciprocal, reciprocal_cost, reciprocal_cots};
use super::{total_cost, total_cots};
use crate::approx::ApproxSet;
use crate::approx::ScoreMask;
use crate::mpc::product::{mul_cost, mul_cots, mul_row_scalar};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, FixedPoint, Result, Ring};

/// Steps 2–4 (max, exp, reciprocal); `prepared`: exp's power products on correlations.
fn unnormalized_steps(
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    prepared: bool,
) -> Vec<(Cost, CotDemand)> {
    let p = &set.plan.softmax;
    let value = exp_input_ring(set, layer);
    let n = rows * cols;
    vec![
        (
            row_max_cost(p, MaxShape::for_softmax(cols), (rows, cols), value),
            row_max_cots(p, MaxShape::for_softmax(cols), (rows, cols), value),
        ),
        if prepared {
            (
                exp_prepared_cost(set, layer, n),
                exp_prepared_cots(set, layer, n),
            )
        } else {
            (exp_cost(set, layer, n), exp_cots(set, layer, n))
        },
        (reciprocal_cost(p, rows), reciprocal_cots(p, rows)),
    ]
}

/// Steps 2–5.
fn steps(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> Vec<(Cost, CotDemand)> {
    let p = &set.plan.softmax;
    let n = rows * cols;
    let pr = p.prod_bits;
    let s = p.e_frac + p.r_frac - FixedPoint::LINEAR.frac_bits();
    let mut v = unnormalized_steps(set, layer, rows, cols, false);
    v.extend([
        (mul_cost(rows, cols, pr), mul_cots(rows, pr)),
        (
            trunc_cost(n, pr, Ring::R64, s, TruncKind::KnownMsb).expect("validated plan"),
            trunc_cots(n, pr, Ring::R64, s, TruncKind::KnownMsb).expect("validated plan"),
        ),
    ]);
    v
}

/// Exact cost of [`softmax`] (label `softmax`, the reservation excluded).
pub fn softmax_cost(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> Cost {
    total_cost(steps(set, layer, rows, cols))
}

/// COTs drawn by [`softmax`] (it reserves them itself at its start).
pub fn softmax_cots(set: &ApproxSet, layer: usize, rows: usize, cols: usize) -> CotDemand {
    total_cots(steps(set, layer, rows, cols))
}

/// Exact cost of [`softmax_unnormalized`] (label `softmax`, the reservation excluded);
/// `prepared`: exp's power products on correlations ([`softmax_unnormalized_with`]; rounds
/// then an upper bound).
pub fn softmax_unnormalized_cost(
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    prepared: bool,
) -> Cost {
    total_cost(unnormalized_steps(set, layer, rows, cols, prepared))
}

/// COTs drawn by [`softmax_unnormalized`] (it reserves them itself at its start), or with
/// `prepared` by [`softmax_unnormalized_with`] on power correlations.
pub fn softmax_unnormalized_cots(
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    prepared: bool,
) -> CotDemand {
    total_cots(unnormalized_steps(set, layer, rows, cols, prepared))
}

/// Shares of the softmax of each row of `x` (rows × cols, row-major, Z_2^64, 18 bits) under
/// layer `layer` of `set`. The server passes `Some(exp breakpoints)`, the client `None`; the
/// mask (`false` = excluded) is the client's private one ([`ScoreMask::Private`]: `Some` on
/// the client, `None` on the server) or a public one both pass. Label `softmax`.
#[allow(clippy::too_many_arguments)]
pub fn softmax(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    x: &[u64],
    exp_breakpoints: Option<&[f64]>,
    mask: ScoreMask<'_>,
) -> Result<Vec<u64>> {
    check_inputs(sess, rows, cols, x, mask)?;
    sess.reserve(softmax_cots(set, layer, rows, cols))?;
    let p = &set.plan.softmax;
    let f = FixedPoint::LINEAR.frac_bits();
    sess.scope("softmax", |sess| {
        let (e, r) = unnormalized(sess, set, layer, cols, x, exp_breakpoints, mask, None)?;
        let pr = p.prod_bits;
        let es = trunc_cast(sess, &e, Ring::R64, pr, f - p.e_frac, TruncKind::KnownMsb)?;
        // r is at r_frac bits: a free down-cast (no shift).
        let rs: Vec<u64> = r.iter().map(|&v| pr.reduce(v)).collect();
        let prod = mul_row_scalar(sess, &es, &rs, cols, pr)?;
        trunc_cast(
            sess,
            &prod,
            pr,
            Ring::R64,
            p.e_frac + p.r_frac - f,
            TruncKind::KnownMsb,
        )
    })
}

/// Softmax up to the normalisation: shares of the exps e (rows × cols, Z_2^64, 18 bits, in
/// [0, 1]) and of the reciprocals r of their row sums (one per row, Z_2^64 with
/// `set.plan.softmax.r_frac` fraction bits), so that e_ij·r_i is row i's softmax. Arguments
/// and label as [`softmax`]. Mirror: [`crate::approx::fixed::softmax_row_unnormalized`].
#[allow(clippy::too_many_arguments)]
pub fn softmax_unnormalized(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    x: &[u64],
    exp_breakpoints: Option<&[f64]>,
    mask: ScoreMask<'_>,
) -> Result<(Vec<u64>, Vec<u64>)> {
    softmax_unnormalized_with(sess, set, layer, rows, cols, x, exp_breakpoints, mask, None)
}

/// [`softmax_unnormalized`] with exp's power products run by `powers` (correlations made
/// offline for the piecewise exp; refused for the squaring method). Label `softmax`.
#[allow(clippy::too_many_arguments)]
pub fn softmax_unnormalized_with(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    rows: usize,
    cols: usize,
    x: &[u64],
    exp_breakpoints: Option<&[f64]>,
    mask: ScoreMask<'_>,
    powers: Option<&mut dyn PowerProducts>,
) -> Result<(Vec<u64>, Vec<u64>)> {
    check_inputs(sess, rows, cols, x, mask)?;
    let prepared = powers.is_some();
    sess.reserve(softmax_unnormalized_cots(set, layer, rows, cols, prepared))?;
    sess.scope("softmax", |sess| {
        unnormalized(sess, set, layer, cols, x, exp_breakpoints, mask, powers)
    })
}

fn check_inputs(
    sess: &Session,
    rows: usize,
    cols: usize,
    x: &[u64],
    mask: ScoreMask<'_>,
) -> Result<()> {
    if cols == 0 || x.len() != rows * cols {
        return Err(Error::shape("softmax elements", x.len(), [rows, cols]));
    }
    mask.check(sess.is_server(), rows, cols)
}

/// Steps 1–4 on checked inputs, COTs reserved.
#[allow(clippy::too_many_arguments)]
fn unnormalized(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    cols: usize,
    x: &[u64],
    exp_breakpoints: Option<&[f64]>,
    mask: ScoreMask<'_>,
    powers: Option<&mut dyn PowerProducts>,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let p = &set.plan.softmax;
    let r64 = Ring::R64;
    let mut xm = x.to_vec();
    mask.before_max(&mut xm, cols, FixedPoint::LINEAR.encode(p.mask_offset)?);
    let dims = (x.len() / cols, cols);
    let max = row_max(
        sess,
        p,
        MaxShape::for_softmax(cols),
        &xm,
        dims,
        exp_input_ring(set, layer),
    )?;
    let d: Vec<u64> = xm
        .iter()
        .enumerate()
        .map(|(i, &v)| r64.sub(v, max[i / cols]))
        .collect();
    let mut e = exp_reserved_with(sess, set, layer, exp_breakpoints, &d, powers)?;
    mask.after_exp(&mut e);
    let sums: Vec<u64> = e
        .chunks(cols)
        .map(|row| row.iter().fold(0, |a, &v| r64.add(a, v)))
        .collect();
    let r = reciprocal(sess, p, &sums)?;
    Ok((e, r))
}
