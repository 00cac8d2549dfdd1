//! exp(x) for x ≤ 0 on shares (Z_2^64, 18 fraction bits), label `exp`. Mirror:
//! [`crate::approx::fixed::exp_nonpositive`].
//!
//! * Nimbus ({0 below T; cubic on [T, 0]}): [`super::piecewise()`] with the set's exp plan — one
//!   comparison (millionaire on 16 bits), u² by [`crate::mpc::square_narrow`] (15-bit operands)
//!   and u³ = u²·u by [`crate::mpc::mul_narrow`] (18-bit operands) on Z_2^25, two 9-bit
//!   truncations, one mux on Z_2^25, a free down-cast to Z_2^22 and an up-cast to Z_2^64 (43
//!   bits); ≈ 1182 bits and 81 COTs per element, 17 rounds.
//! * PUMA (0 below `lower`, else (1 + x/2^t)^(2^t)): the comparison `[x ≥ lower]` by
//!   reduced-ring DReLU (drop 12, keep Z_2^20, [`SQUARING_CMP`]: exact for |x − lower| < 2^13),
//!   1 + x/2^t by a known-MSB truncation by t on Z_2^64, t squarings on
//!   Z_2^64 each followed by a known-MSB truncation by 18, one mux on Z_2^64; ≈ 17 000 bits per
//!   element for t = 8, 39 rounds.
//!
//! Who sends what: the primitives' messages only; `lower` and the breakpoint are server-only
//! inputs like every breakpoint.
use super::piecewise::{
    piecewise, piecewise_cost, piecewise_cots, piecewise_prepared_cost, piecewise_prepared_cots,
    piecewise_with, Output, PiecewiseSpec, PowerProducts,
};
use super::{known_msb_trunc_step, product_trunc, product_trunc_steps, total_cost, total_cots};
use crate::approx::{ApproxSet, ExpMethod};
use crate::mpc::drelu::{drelu_cost, drelu_cots, drelu_reduced};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::trunc::{trunc_cast, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, FixedPoint, Result, Ring};

/// The ring of the squaring method's comparison (it keeps these bits after dropping 12):
/// |x − lower| < 2^13.
pub const SQUARING_CMP: Ring = Ring::new_const(20);
const SQUARING_CMP_DROP: u32 = 12;

/// Exact cost of [`exp`] on n elements of layer `layer` (label `exp`, reservation excluded).
pub fn exp_cost(set: &ApproxSet, layer: usize, n: usize) -> Cost {
    total_cost(steps(set, layer, n, false))
}

/// Exact bytes of [`exp_reserved_with`] on n elements with the piecewise form's power
/// products on correlations made offline (rounds: an upper bound); the squaring form has none.
pub fn exp_prepared_cost(set: &ApproxSet, layer: usize, n: usize) -> Cost {
    total_cost(steps(set, layer, n, true))
}

/// The piecewise form's pieces and plan (what power correlations for its products are made
/// for), `None` for the squaring method.
pub fn exp_power_spec(set: &ApproxSet, layer: usize) -> Option<PiecewiseSpec<'_>> {
    match &set.layer(layer).exp {
        ExpMethod::Piecewise(pw) => Some(PiecewiseSpec {
            pieces: &pw.pieces,
            plan: &set.plan.exp,
        }),
        ExpMethod::Squaring { .. } => None,
    }
}

fn steps(set: &ApproxSet, layer: usize, n: usize, prepared: bool) -> Vec<(Cost, CotDemand)> {
    let spec = match &set.layer(layer).exp {
        ExpMethod::Squaring { t, .. } => return squaring_steps(n, *t),
        ExpMethod::Piecewise(pw) => PiecewiseSpec {
            pieces: &pw.pieces,
            plan: &set.plan.exp,
        },
    };
    vec![if prepared {
        (
            piecewise_prepared_cost(&spec, n, Output::Linear),
            piecewise_prepared_cots(&spec, n, Output::Linear),
        )
    } else {
        (
            piecewise_cost(&spec, n, Output::Linear),
            piecewise_cots(&spec, n, Output::Linear),
        )
    }]
}

/// The steps of [`squaring`] on n elements.
pub(crate) fn squaring_steps(n: usize, t: u32) -> Vec<(Cost, CotDemand)> {
    let cmp = SQUARING_CMP;
    let f = FixedPoint::LINEAR.frac_bits();
    let mut v = vec![
        (drelu_cost(n, cmp), drelu_cots(n, cmp)),
        known_msb_trunc_step(n, t),
    ];
    for _ in 0..t {
        v.extend(product_trunc_steps(n, true, f));
    }
    v.push((mux_cost(n, Ring::R64), mux_cots(n)));
    v
}

/// Shares of exp(x) for shares `x ≤ 0` (Z_2^64, 18 bits) under layer `layer` of `set`. The
/// server passes `Some(exp_breakpoints(set, layer))`, the client `None`; on the client only the
/// public parts of `set` are read (pieces, coefficients, plan, t), so its copy may carry any
/// breakpoint values. Label `exp`.
pub fn exp(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    breakpoints: Option<&[f64]>,
    x: &[u64],
) -> Result<Vec<u64>> {
    sess.reserve(exp_cots(set, layer, x.len()))?;
    exp_reserved(sess, set, layer, breakpoints, x)
}

/// COTs drawn by [`exp`] on n elements.
pub fn exp_cots(set: &ApproxSet, layer: usize, n: usize) -> CotDemand {
    total_cots(steps(set, layer, n, false))
}

/// COTs drawn by [`exp_reserved_with`] on n elements with power correlations.
pub fn exp_prepared_cots(set: &ApproxSet, layer: usize, n: usize) -> CotDemand {
    total_cots(steps(set, layer, n, true))
}

/// [`exp`] without its own reservation (the caller reserved [`exp_cots`] with the rest of its
/// protocol, so no Ferret extension runs in between). Label `exp`.
pub fn exp_reserved(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    breakpoints: Option<&[f64]>,
    x: &[u64],
) -> Result<Vec<u64>> {
    exp_reserved_with(sess, set, layer, breakpoints, x, None)
}

/// [`exp_reserved`] with the piecewise form's power products run by `powers` (correlations
/// made offline; refused for the squaring method, which has none). Label `exp`.
pub fn exp_reserved_with(
    sess: &mut Session,
    set: &ApproxSet,
    layer: usize,
    breakpoints: Option<&[f64]>,
    x: &[u64],
    powers: Option<&mut dyn PowerProducts>,
) -> Result<Vec<u64>> {
    sess.scope("exp", |sess| {
        match (&set.layer(layer).exp, exp_power_spec(set, layer), powers) {
            (_, Some(spec), Some(powers)) => {
                piecewise_with(sess, &spec, breakpoints, x, Output::Linear, powers)
            }
            (_, Some(spec), None) => piecewise(sess, &spec, breakpoints, x, Output::Linear),
            (ExpMethod::Squaring { t, .. }, None, None) => squaring(sess, *t, breakpoints, x),
            _ => Err(Error::InvalidArgument(
                "exp: the squaring method has no power products to run on correlations".into(),
            )),
        }
    })
}

/// PUMA's exp on shares of x ≤ 0 (no label of its own): 0 below `lower`, else
/// (1 + x/2^t)^(2^t) — `[x ≥ lower]` by the reduced-ring DReLU, 1 + x/2^t by a known-MSB
/// truncation, t squarings each truncated by 18, one mux. The server passes `Some([lower])`,
/// the client `None`. Mirror: [`crate::approx::fixed::exp_squaring`]`(t, lower, ·)`.
pub(crate) fn squaring(
    sess: &mut Session,
    t: u32,
    lower: Option<&[f64]>,
    x: &[u64],
) -> Result<Vec<u64>> {
    let r = Ring::R64;
    let lin = FixedPoint::LINEAR;
    let server = sess.is_server();
    let lower = match (server, lower) {
        (true, Some([l])) => lin.encode(*l)?,
        (false, None) => 0,
        _ => {
            return Err(Error::InvalidArgument(
                "exp: the lower bound is passed by its holder only".into(),
            ))
        }
    };
    let shifted: Vec<u64> = x.iter().map(|&v| v.wrapping_sub(lower)).collect();
    let keep = drelu_reduced(sess, &shifted, r, SQUARING_CMP_DROP, SQUARING_CMP.bits())?;
    let mut y = trunc_cast(sess, x, r, r, t, TruncKind::KnownMsb)?;
    if server {
        let one = lin.encode(1.0)?;
        y.iter_mut().for_each(|v| *v = v.wrapping_add(one));
    }
    for _ in 0..t {
        y = product_trunc(sess, &y, None, lin.frac_bits())?;
    }
    mux(sess, &keep, &y, r)
}

/// The ring of the low bits of its input layer `layer`'s exp reads
/// ([`PiecewisePlan::input_ring`] for the piecewise form; Z_2^64 for the squaring method, whose
/// first truncation needs the whole value): shares correct modulo its size suffice.
///
/// [`PiecewisePlan::input_ring`]: crate::approx::PiecewisePlan::input_ring
pub fn exp_input_ring(set: &ApproxSet, layer: usize) -> Ring {
    match &set.layer(layer).exp {
        ExpMethod::Piecewise(pw) => set.plan.exp.input_ring(&pw.pieces),
        ExpMethod::Squaring { .. } => Ring::R64,
    }
}

/// The server-only breakpoints of layer `layer`'s exp: the piecewise breakpoints, or the
/// squaring method's lower bound.
pub fn exp_breakpoints(set: &ApproxSet, layer: usize) -> Vec<f64> {
    match &set.layer(layer).exp {
        ExpMethod::Piecewise(pw) => pw.breakpoints.clone(),
        ExpMethod::Squaring { lower, .. } => vec![*lower],
    }
}
