//! Approximation sets of the nonlinear functions, as data, and their plaintext fixed-point
//! evaluators on ring elements.
//!
//! * [`piecewise_poly`]: a piecewise polynomial (breakpoints + coefficients) as data.
//! * [`plan`]: the evaluation plans (rings and fraction bits of each step on shares), as data.
//! * [`tables`]: the exp methods, per-layer tables, the named sets `nimbus` and `puma` with their
//!   plans, and the fitted-tables file format (modules depend downwards: piecewise_poly ← plan ←
//!   tables, no cycle).
//! * [`fixed`]: the evaluators (truncation, casts, GELU, exp, reciprocal, rsqrt, softmax row,
//!   LayerNorm row, tanh) written on `u64` ring elements with every truncation explicit, so the
//!   secure protocols can reproduce them bit for bit.
//!
//! Conventions (docs/protocols/approximations.md has the full account):
//! * activations live in [`mpc_core::FixedPoint::LINEAR`] (Z_2^64, 18 fraction bits);
//! * a truncation by `s` is the exact arithmetic shift (floor of the signed value / 2^s), what a
//!   faithful secure truncation computes;
//! * a piecewise polynomial with breakpoints b_1 < … < b_k uses piece `i` = #{j : x ≥ b_j} (the
//!   secure version compares with DReLU(x − b_j));
//! * polynomials are evaluated by Horner's rule in the set's evaluation format (f fraction bits):
//!   `p ← acc·x + c_k` at 2f bits, then `acc ← p / 2^f`; the last `p` (2f bits) is brought back to
//!   Z_2^64 with 18 bits by one fused truncation (by 2f − 18) and up-cast.
//!
//! This module holds no OT or other cryptographic code.

pub mod fixed;
pub mod layernorm;
pub mod piecewise_poly;
pub mod plan;
pub mod score_mask;
pub mod tables;

pub use piecewise_poly::{Piece, PiecewisePoly};
pub use plan::{PiecewisePlan, SetPlan, SoftmaxPlan};
pub use score_mask::ScoreMask;
pub use tables::{ApproxSet, ExpMethod, LayerTables, TablesFile};
