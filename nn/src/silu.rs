//! SiLU(x) = x·σ(x) as a piecewise polynomial for [`crate::activation::piecewise`]: 0 below
//! −T, a polynomial of degree d on [−T, T), x from T on, the polynomial fitted by least squares
//! on a uniform grid (a model family refits it per layer on calibration data, as GELU's
//! tables are). SiLU − x/2 is even, so the fit is close to x/2 plus even powers.
//!
//! Evaluated under [`SetPlan::puma`]'s GELU plan (degree ≤ 6, coefficients at 18 bits).
use crate::least_squares::weighted_least_squares;
use mpc_core::{Error, Result};
use ot_nonlinear::approx::Piece;
use ot_nonlinear::approx::{PiecewisePlan, PiecewisePoly, SetPlan};

/// The exact SiLU.
pub fn silu_exact(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The plan SiLU tables are evaluated under.
pub fn silu_plan() -> PiecewisePlan {
    SetPlan::puma().gelu
}

/// The SiLU table {0 below −bound; the least-squares polynomial of `degree` on [−bound,
/// bound); x above}, checked against [`silu_plan`].
pub fn silu_table(degree: usize, bound: f64) -> Result<PiecewisePoly> {
    if !((1..=6).contains(&degree) && bound > 0.0 && bound <= 16.0) {
        return Err(Error::InvalidArgument(format!(
            "SiLU fit of degree {degree} on ±{bound}: degree 1..=6, bound in (0, 16]"
        )));
    }
    let coeffs = least_squares(silu_exact, -bound, bound, degree)?;
    let table = PiecewisePoly {
        breakpoints: vec![-bound, bound],
        pieces: vec![Piece::Zero, Piece::Poly(coeffs), Piece::Identity],
    };
    silu_plan().validate(&table)?;
    Ok(table)
}

/// The default table: degree 6 on [−5, 5). A wider interval costs more in the middle than it
/// saves in the tails (±6: 0.071, ±5: 0.040, ±4: 0.072, measured on [−16, 16]); SiLU(−5) =
/// −0.033 is the tail's own floor.
pub fn silu_default() -> Result<PiecewisePoly> {
    silu_table(6, 5.0)
}

/// Largest error of [`silu_default`] against the exact SiLU on [−16, 16] (measured by the
/// test: 0.0403, at the interval's ends).
pub const SILU_DEFAULT_MAX_ERROR: f64 = 0.05;

/// Coefficients (constant term first) of the degree-`degree` polynomial closest to `f` in
/// least squares on 4001 uniform points of [lo, hi] (see [`weighted_least_squares`]).
fn least_squares(f: impl Fn(f64) -> f64, lo: f64, hi: f64, degree: usize) -> Result<Vec<f64>> {
    if lo + hi != 0.0 {
        return Err(Error::InvalidArgument(
            "least squares on a symmetric interval only".into(),
        ));
    }
    let powers: Vec<usize> = (0..=degree).collect();
    weighted_least_squares(f, (0.0, hi), &uniform_points(hi, 1.0), &powers)
}

/// 4001 uniform points of [−bound, bound], each of weight `weight`.
fn uniform_points(bound: f64, weight: f64) -> Vec<(f64, f64)> {
    const POINTS: usize = 4001;
    (0..POINTS)
        .map(|p| (bound * (2.0 * p as f64 / (POINTS - 1) as f64 - 1.0), weight))
        .collect()
}

/// Most calibration samples [`silu_fit`] reads (a deterministic stride beyond).
const MAX_FIT_SAMPLES: usize = 200_000;

/// Weight of the uniform points in [`silu_fit`], as a fraction of the samples' total.
pub const SILU_FIT_PRIOR: f64 = 0.05;

/// The SiLU table {0 below −bound; a degree-`degree` polynomial on [−bound, bound); x above}
/// fitted to the observed inputs `samples` (density-weighted, as `bert::fit` fits GELU).
///
/// SiLU(x) − x/2 = (x/2)·tanh(x/2) is even, so the polynomial is x/2 plus an even polynomial
/// fitted to that even part: the odd powers above the first have zero coefficients, which
/// the plan does not compute (x⁵ is skipped: one product fewer than a full degree-6 fit), and
/// the fit reads the samples' |x|. The even polynomial minimises the squared error over the
/// samples inside the interval plus uniform points carrying [`SILU_FIT_PRIOR`] of their
/// weight, so that it stays close where few samples fall. Checked against [`silu_plan`];
/// [`silu_table`] when fewer than a hundred samples fall inside.
pub fn silu_fit(degree: usize, bound: f64, samples: &[f32]) -> Result<PiecewisePoly> {
    let uniform = silu_table(degree, bound)?;
    let stride = samples.len().div_ceil(MAX_FIT_SAMPLES).max(1);
    let mut points: Vec<(f64, f64)> = samples
        .iter()
        .step_by(stride)
        .map(|&x| f64::from(x))
        .filter(|x| (-bound..bound).contains(x))
        .map(|x| (x, 1.0))
        .collect();
    if points.len() < 100 {
        return Ok(uniform);
    }
    let prior = SILU_FIT_PRIOR * points.len() as f64 / 4001.0;
    points.extend(uniform_points(bound, prior));
    let even: Vec<usize> = (0..=degree).step_by(2).collect();
    let mut coeffs =
        weighted_least_squares(|x| silu_exact(x) - x / 2.0, (0.0, bound), &points, &even)?;
    coeffs.resize(coeffs.len().max(2), 0.0);
    coeffs[1] = 0.5;
    let table = PiecewisePoly {
        pieces: vec![Piece::Zero, Piece::Poly(coeffs), Piece::Identity],
        ..uniform
    };
    silu_plan().validate(&table)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_silu_fit_is_within_its_documented_error() {
        let t = silu_default().unwrap();
        let worst = (-1600..=1600)
            .map(|i| i as f64 / 100.0)
            .map(|x| (t.eval_f64(x) - silu_exact(x)).abs())
            .fold(0.0, f64::max);
        eprintln!("SiLU default table: max error {worst:.4} on [−16, 16]");
        assert!(worst < SILU_DEFAULT_MAX_ERROR, "max error {worst}");
    }

    #[test]
    fn the_density_fit_is_x_over_2_plus_an_even_polynomial_and_beats_the_uniform_one_there() {
        // Inputs concentrated near 0, as most gates are.
        let samples: Vec<f32> = (0..20_000)
            .map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 3.0)
            .collect();
        let fit = silu_fit(6, 8.0, &samples).unwrap();
        let Piece::Poly(c) = &fit.pieces[1] else {
            panic!("a polynomial middle piece")
        };
        assert_eq!(c.len(), 7);
        assert_eq!((c[1], c[3], c[5]), (0.5, 0.0, 0.0), "{c:?}");
        let mse = |t: &PiecewisePoly| {
            samples
                .iter()
                .map(|&x| (t.eval_f64(f64::from(x)) - silu_exact(f64::from(x))).powi(2))
                .sum::<f64>()
                / samples.len() as f64
        };
        let uniform = silu_table(6, 8.0).unwrap();
        assert!(
            mse(&fit) < mse(&uniform) / 4.0,
            "{} vs {}",
            mse(&fit),
            mse(&uniform)
        );
        // Too few samples inside: the uniform table.
        assert_eq!(silu_fit(6, 8.0, &[0.5; 10]).unwrap(), uniform);
    }

    #[test]
    fn a_polynomial_is_recovered_exactly() {
        let c = least_squares(|x| 0.5 - 0.25 * x + 0.125 * x * x * x, -2.0, 2.0, 3).unwrap();
        for (got, want) in c.iter().zip([0.5, -0.25, 0.0, 0.125]) {
            assert!((got - want).abs() < 1e-9, "{c:?}");
        }
    }
}
