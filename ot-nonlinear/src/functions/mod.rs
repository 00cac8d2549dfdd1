//! Nonlinear functions on shares, each following its plan in [`crate::approx::plan`] and
//! mirrored bit for bit (up to documented carries) by [`crate::approx::fixed`].
//!
//! | file | computes | Nimbus plan cost per element |
//! |---|---|---|
//! | [`piecewise`](mod@piecewise) | piecewise polynomial, server-held breakpoints, public coefficients | comparisons + powers + muxes + casts |
//! | [`gelu`](mod@gelu) | GELU (Z_2^64, 18 bits) | Nimbus ≈ 700 bits, 15 rounds; PUMA ≈ 6300 bits, 25 rounds |
//! | [`exp`](mod@exp) | exp(x), x ≤ 0 (Z_2^64, 18 bits) | Nimbus ≈ 1280 bits, 17 rounds; PUMA (t = 8) ≈ 17 000 bits, 39 rounds |
//!
//! Every function is called by both parties with their shares and the same public arguments;
//! server-only inputs (breakpoints) are `Option`s that the client passes as `None`.
pub mod exp;
pub mod gelu;
pub mod piecewise;

pub use exp::{exp, exp_breakpoints, exp_cost};
pub use gelu::{gelu, gelu_cost, gelu_spec};
pub use piecewise::{piecewise, piecewise_cost, piecewise_cots, Output, PiecewiseSpec};
