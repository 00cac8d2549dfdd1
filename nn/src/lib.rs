//! Model-independent secure operators, each on the protocols of `ot-nonlinear` (and
//! `he-linear`), each with its fixed-point mirror and its exact cost.
//!
//! * [`sigmoid`]: the logistic function's MPC-friendly approximations (3- and 5-piece linear,
//!   a cubic on a clipped range), the whole batch's comparisons in one flight.
#![warn(missing_docs)]

pub mod sigmoid;
