//! A piecewise polynomial as data: breakpoints and pieces, its validation against a fixed-point
//! format and its f64 evaluation. The tables ([`super::tables`]) and the plans
//! ([`super::plan`]) both build on it.
use mpc_core::{Error, FixedPoint, Result};

/// One piece of a piecewise function.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Piece {
    /// The constant 0.
    Zero,
    /// x itself (taken from the Z_2^64 input, exact).
    Identity,
    /// A polynomial of degree ≥ 1, coefficients from the constant term up.
    Poly(Vec<f64>),
}

/// A piecewise function: breakpoints b_1 < … < b_k and k + 1 pieces; piece `i` applies when
/// exactly `i` breakpoints are ≤ x.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PiecewisePoly {
    /// Increasing breakpoints.
    pub breakpoints: Vec<f64>,
    /// `breakpoints.len() + 1` pieces, left to right.
    pub pieces: Vec<Piece>,
}

impl PiecewisePoly {
    /// Checks the shape and that every constant is representable in `format` (breakpoints and the
    /// leading coefficient at f bits, the other coefficients at 2f bits).
    pub fn validate(&self, format: FixedPoint) -> Result<()> {
        if self.pieces.len() != self.breakpoints.len() + 1 {
            return Err(Error::malformed(
                format!("pieces for {} breakpoints", self.breakpoints.len()),
                self.pieces.len(),
                self.breakpoints.len() + 1,
            ));
        }
        if self.breakpoints.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::malformed(
                "breakpoints",
                format!("{:?}, not increasing", self.breakpoints),
                "increasing breakpoints",
            ));
        }
        let wide = FixedPoint::new(format.ring(), 2 * format.frac_bits())?;
        for &b in &self.breakpoints {
            format.encode(b)?;
        }
        for piece in &self.pieces {
            if let Piece::Poly(c) = piece {
                if c.len() < 2 {
                    return Err(Error::malformed(
                        format!("coefficients of polynomial {c:?} (use `zero` for none)"),
                        c.len(),
                        mpc_core::Dims::AtLeast(2),
                    ));
                }
                format.encode(c[c.len() - 1])?;
                for &ck in &c[..c.len() - 1] {
                    wide.encode(ck)?;
                }
            }
        }
        Ok(())
    }

    /// The index of the piece that applies at `x`.
    pub fn piece_index(&self, x: f64) -> usize {
        self.breakpoints.iter().filter(|&&b| x >= b).count()
    }

    /// The approximation evaluated in f64 (for fitting and error reports).
    pub fn eval_f64(&self, x: f64) -> f64 {
        match &self.pieces[self.piece_index(x)] {
            Piece::Zero => 0.0,
            Piece::Identity => x,
            Piece::Poly(c) => c.iter().rev().fold(0.0, |acc, &ck| acc * x + ck),
        }
    }
}
