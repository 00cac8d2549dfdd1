//! GELU on shares: the set's piecewise table (Nimbus: {0, quadratic, x}; PUMA: {0, cubic,
//! degree 6, x}) by [`super::piecewise()`], under the label `gelu`, result in Z_2^64 with 18
//! fraction bits. Mirror: [`crate::approx::fixed::gelu`].
//!
//! Who sends what: the messages of [`super::piecewise()`] (the server holds the breakpoints);
//! the COTs are reserved first ([`Session::reserve`]) so no Ferret extension runs inside.
//!
//! Cost, Nimbus plan per element: two comparisons (millionaire on 16 bits in two lanes sharing
//! their leaves), square on Z_2^22 of 13-bit operands (14 + 203 bits), truncation by 8 (9), mux
//! on Z_2^22 (46), cast 22 → 30 (9), mux on Z_2^30 (62), up-cast 30 → 64 (35): ≈ 646 bits and
//! 49 COTs; [`gelu_cost`] gives the exact bytes; 16 rounds.
use super::piecewise::{piecewise, piecewise_cost, piecewise_cots, Output, PiecewiseSpec};
use crate::approx::ApproxSet;
use crate::mpc::{Cost, Session};
use mpc_core::Result;

/// The public part of layer `layer`'s GELU under `set` and the server-only breakpoints.
pub fn gelu_spec(set: &ApproxSet, layer: usize) -> (PiecewiseSpec<'_>, &[f64]) {
    let t = &set.layer(layer).gelu;
    (
        PiecewiseSpec {
            pieces: &t.pieces,
            plan: &set.plan.gelu,
        },
        &t.breakpoints,
    )
}

/// Exact cost of [`gelu`] on n elements (label `gelu`, the reservation excluded).
pub fn gelu_cost(spec: &PiecewiseSpec, n: usize) -> Cost {
    piecewise_cost(spec, n, Output::Linear)
}

/// Shares of GELU(x) for shares `x` (Z_2^64, 18 bits); the server passes the breakpoints, the
/// client `None`. Label `gelu`.
pub fn gelu(
    sess: &mut Session,
    spec: &PiecewiseSpec,
    breakpoints: Option<&[f64]>,
    x: &[u64],
) -> Result<Vec<u64>> {
    sess.reserve(piecewise_cots(spec, x.len(), Output::Linear))?;
    sess.scope("gelu", |sess| {
        piecewise(sess, spec, breakpoints, x, Output::Linear)
    })
}
