//! Oblivious transfer and the nonlinear two-party protocols.
//!
//! * [`approx`]: approximation sets (piecewise polynomials and their constants, as data) and the
//!   plaintext fixed-point evaluators that the secure protocols mirror bit for bit.
#![warn(missing_docs)]

pub mod approx;
