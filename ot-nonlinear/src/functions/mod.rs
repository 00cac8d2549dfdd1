//! Nonlinear functions on shares, each following its plan in [`crate::approx::plan`] and
//! mirrored bit for bit (up to documented carries) by [`crate::approx::fixed`].
//!
//! | file | computes | cost per element (Nimbus plan where it has one) |
//! |---|---|---|
//! | [`piecewise`](mod@piecewise) | piecewise polynomial, server-held breakpoints, public coefficients | comparisons + powers + muxes + casts |
//! | [`gelu`](mod@gelu) | GELU (Z_2^64, 18 bits) | Nimbus ≈ 700 bits, 15 rounds; PUMA ≈ 6300 bits, 25 rounds |
//! | [`exp`](mod@exp) | exp(x), x ≤ 0 (Z_2^64, 18 bits) | Nimbus ≈ 1280 bits, 17 rounds; PUMA (t = 8) ≈ 17 000 bits, 39 rounds |
//! | [`max`](mod@max) | row maximum, tournament tree of a chosen shape (Softmax plan) | Softmax's shape: 1.11 comparisons on Z_2^15 (7-bit digits) + 0.23 ANDs + 0.99 muxes of two values on Z_2^35 (Nimbus exp) per element |
//! | [`reciprocal`](mod@reciprocal) | 1/s for row sums (Softmax plan): comparisons, 3 lookups, mux, Newton | per row |
//! | [`layernorm`](mod@layernorm) | LayerNorm's normalisation (γ, β folded into the next linear layer) | ≈ 2260 bits per element + per row rsqrt |
//! | [`rsqrt`](mod@rsqrt) | 1/√v per LayerNorm row: highest bit, quartic guess, Newton | ≈ 40 kbit per row |
//! | [`softmax`](mod@softmax) | Softmax rows with a client-side mask; or up to the normalisation (exps and reciprocals, `softmax_unnormalized`) | max + exp + reciprocal + row-scalar product |
//! | [`reciprocal_any`](mod@reciprocal_any) | 1/x for 2^-18 ≤ x < 2^18 (0 beyond): highest bit, normalisation, Goldschmidt; or on a public range of highest bits | 50 646 bits, 28 rounds (on 18..20: 27 220 bits) |
//! | [`tanh`](mod@tanh) | tanh(x), \|x\| < 2^13 (the pooler): sign, exp by 8 squarings, square, reciprocal of 1 + e, product, sign | 51 598 bits, 86 rounds |
//!
//! Every function is called by both parties with their shares and the same public arguments;
//! server-only inputs (breakpoints) are `Option`s that the client passes as `None`.
pub mod exp;
pub mod gelu;
pub mod layernorm;
pub mod max;
pub mod piecewise;
pub mod reciprocal;
pub mod reciprocal_any;
pub mod rsqrt;
pub mod softmax;
pub mod tanh;

pub use exp::{exp, exp_breakpoints, exp_cost, exp_input_ring, exp_power_spec};
pub use gelu::{gelu, gelu_cost, gelu_spec};
pub use layernorm::{
    layernorm, layernorm_cost, layernorm_with, normalize_cost, normalize_cost_with,
    normalize_cots_besides_products, normalize_cots_with, normalize_with, Centering, OtProducts,
    RowProducts,
};
pub use max::{row_max, row_max_cost, row_max_cots, MaxShape};
pub use piecewise::{
    piecewise, piecewise_cost, piecewise_cots, piecewise_prepared_cost, piecewise_prepared_cots,
    piecewise_with, power_steps, OtPowers, Output, PiecewiseSpec, PowerProducts,
};
pub use reciprocal::{reciprocal, reciprocal_cost};
pub use reciprocal_any::{
    reciprocal_any, reciprocal_any_cost, reciprocal_within, reciprocal_within_cost,
};
pub use rsqrt::{rsqrt, rsqrt_cost};
pub use softmax::{
    softmax, softmax_cost, softmax_unnormalized, softmax_unnormalized_cost,
    softmax_unnormalized_with,
};
pub use tanh::{tanh, tanh_cost};

use crate::mpc::product::{mul, mul_cost, mul_cots, square, square_cost, square_cots};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Result, Ring};

/// A protocol's exact cost from its steps (run one after another; flights merge as
/// [`Cost::then`] says).
pub(crate) fn total_cost(steps: Vec<(Cost, CotDemand)>) -> Cost {
    steps
        .into_iter()
        .fold(Cost::default(), |a, (c, _)| a.then(c))
}

/// The COTs a protocol draws, from its steps.
pub(crate) fn total_cots(steps: Vec<(Cost, CotDemand)>) -> CotDemand {
    steps
        .into_iter()
        .fold(CotDemand::default(), |a, (_, d)| a.plus(d))
}

/// `trunc(a·b, s)` on Z_2^64 (`b = None`: a² by [`square`]), the truncation known-MSB
/// (|a·b| < 2^62; the result is the floor or one less). Steps: [`product_trunc_steps`].
pub(crate) fn product_trunc(
    sess: &mut Session,
    a: &[u64],
    b: Option<&[u64]>,
    s: u32,
) -> Result<Vec<u64>> {
    let r64 = Ring::R64;
    let p = match b {
        Some(b) => mul(sess, a, b, r64)?,
        None => square(sess, a, r64)?,
    };
    trunc_cast(sess, &p, r64, r64, s, TruncKind::KnownMsb)
}

/// The two steps of [`product_trunc`] on n values (`square`: b = None).
pub(crate) fn product_trunc_steps(n: usize, square: bool, s: u32) -> [(Cost, CotDemand); 2] {
    let r64 = Ring::R64;
    let product = if square {
        (square_cost(n, r64), square_cots(n, r64))
    } else {
        (mul_cost(n, 1, r64), mul_cots(n, r64))
    };
    [product, known_msb_trunc_step(n, s)]
}

/// A known-MSB truncation by s (s ≤ 62) of n values on Z_2^64, as a step.
pub(crate) fn known_msb_trunc_step(n: usize, s: u32) -> (Cost, CotDemand) {
    let r64 = Ring::R64;
    (
        trunc_cost(n, r64, r64, s, TruncKind::KnownMsb).expect("s ≤ 62"),
        trunc_cots(n, r64, r64, s, TruncKind::KnownMsb).expect("s ≤ 62"),
    )
}
