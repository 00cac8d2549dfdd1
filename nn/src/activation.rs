//! Element-wise activations on shares, Z_2^64 with 18 fraction bits in and out:
//!
//! * GELU and SiLU: a piecewise polynomial ([`ot_nonlinear::functions::piecewise()`]) whose
//!   breakpoints stay with the server (it subtracts them from its share before the
//!   comparisons) and whose coefficients are public; GELU's tables come from the approximation
//!   set, SiLU's from [`crate::silu`];
//! * ReLU: DReLU and a multiplexer ([`ot_nonlinear::mpc::relu()`]), exact.
//!
//! Mirrors: [`piecewise_mirror`], [`relu_mirror`]. Costs: [`piecewise_cost`], [`relu_cost`].
use crate::cast::LINEAR;
use crate::tensor::SharedTensor;
use mpc_core::{Result, Ring};
use ot_nonlinear::approx::fixed::eval_piecewise;
use ot_nonlinear::approx::{PiecewisePlan, PiecewisePoly};
use ot_nonlinear::functions::{gelu, Output, PiecewiseSpec};
use ot_nonlinear::mpc::relu::{relu_cost as ot_relu_cost, relu_cots};
use ot_nonlinear::mpc::{relu as ot_relu, Cost, CotDemand, Session};

/// A piecewise activation as one party holds it: the public pieces and plan, and on the
/// server the breakpoints.
#[derive(Clone, Copy, Debug)]
pub struct Piecewise<'a> {
    spec: PiecewiseSpec<'a>,
    breakpoints: Option<&'a [f64]>,
}

impl<'a> Piecewise<'a> {
    /// The server's view: it knows the breakpoints.
    pub fn server(table: &'a PiecewisePoly, plan: &'a PiecewisePlan) -> Self {
        Piecewise {
            spec: PiecewiseSpec {
                pieces: &table.pieces,
                plan,
            },
            breakpoints: Some(&table.breakpoints),
        }
    }

    /// The client's view: pieces and plan only (its copy's breakpoints are placeholders).
    pub fn client(table: &'a PiecewisePoly, plan: &'a PiecewisePlan) -> Self {
        Piecewise {
            spec: PiecewiseSpec {
                pieces: &table.pieces,
                plan,
            },
            breakpoints: None,
        }
    }

    /// The public pieces and plan.
    pub fn spec(&self) -> &PiecewiseSpec<'a> {
        &self.spec
    }

    /// The breakpoints (the server's view), or `None` (the client's).
    pub fn breakpoints(&self) -> Option<&'a [f64]> {
        self.breakpoints
    }

    /// The view of `table` for this session's party.
    pub fn for_party(sess: &Session, table: &'a PiecewisePoly, plan: &'a PiecewisePlan) -> Self {
        if sess.is_server() {
            Piecewise::server(table, plan)
        } else {
            Piecewise::client(table, plan)
        }
    }
}

/// Shares of f(x) element-wise, f the piecewise function (label `gelu`, the protocol's).
pub fn piecewise(sess: &mut Session, f: Piecewise<'_>, x: &SharedTensor) -> Result<SharedTensor> {
    x.expect("activation input", x.shape(), LINEAR)?;
    let y = gelu(sess, &f.spec, f.breakpoints, x.share())?;
    SharedTensor::new(x.shape().clone(), LINEAR, y)
}

/// Exact cost of [`piecewise`] on `n` elements.
pub fn piecewise_cost(pieces: &PiecewisePoly, plan: &PiecewisePlan, n: usize) -> Cost {
    ot_nonlinear::functions::piecewise_cost(
        &PiecewiseSpec {
            pieces: &pieces.pieces,
            plan,
        },
        n,
        Output::Linear,
    )
}

/// COTs [`piecewise`] draws on `n` elements.
pub fn piecewise_cots(pieces: &PiecewisePoly, plan: &PiecewisePlan, n: usize) -> CotDemand {
    ot_nonlinear::functions::piecewise_cots(
        &PiecewiseSpec {
            pieces: &pieces.pieces,
            plan,
        },
        n,
        Output::Linear,
    )
}

/// The mirror of [`piecewise`].
pub fn piecewise_mirror(table: &PiecewisePoly, plan: &PiecewisePlan, x: &[u64]) -> Vec<u64> {
    x.iter().map(|&v| eval_piecewise(table, plan, v)).collect()
}

/// Shares of max(x, 0), exact, on any ring.
pub fn relu(sess: &mut Session, x: &SharedTensor) -> Result<SharedTensor> {
    sess.reserve(relu_cots(x.share().len(), x.ring()))?;
    let y = ot_relu(sess, x.share(), x.ring())?;
    SharedTensor::new(x.shape().clone(), x.format(), y)
}

/// Exact cost of [`relu`] on `n` elements of `ring`.
pub fn relu_cost(n: usize, ring: Ring) -> Cost {
    ot_relu_cost(n, ring)
}

/// The mirror of [`relu`].
pub fn relu_mirror(x: &[u64], ring: Ring) -> Vec<u64> {
    x.iter().map(|&v| if ring.msb(v) { 0 } else { v }).collect()
}
