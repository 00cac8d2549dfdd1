//! exp(x) on x ≤ 0 as a piecewise cubic for Softmax ([`ExpMethod::Piecewise`]), the decoders'
//! exp: 0 below −13, then nine cubics on [−13, −9), [−9, −6.5), …, [−0.5, ∞) (narrower towards
//! 0, where exp is large), each the least-squares cubic on its interval extended by one
//! comparison step (the comparison may pick the piece on the left up to 2^-6 above a
//! breakpoint), evaluated under [`exp_plan`].
//!
//! Why not PUMA's (1 + x/2^8)^(2^8): its eight squarings are eight products and truncations in
//! sequence, 39 rounds per Softmax, and its error grows as x²/2^9 (7·10^-4 at x = −1,
//! 9·10^-4 at −3). The table's comparisons run in parallel lanes and its powers need two
//! products (x², x³): 16 rounds, and its error is below [`EXP_TABLE_MAX_ERROR`] everywhere
//! (measured by the test, exactly as the mirror evaluates it).
//!
//! ```
//! use nn::exp_table::{exp_plan, exp_table};
//! use ot_nonlinear::approx::fixed::eval_piecewise;
//! use mpc_core::FixedPoint;
//!
//! let (table, plan) = (exp_table()?, exp_plan());
//! let lin = FixedPoint::LINEAR;
//! let e = lin.decode(eval_piecewise(&table, &plan, lin.encode(-1.0)?));
//! assert!((e - (-1.0f64).exp()).abs() < 1e-4);
//! # Ok::<(), mpc_core::Error>(())
//! ```
//!
//! [`ExpMethod::Piecewise`]: ot_nonlinear::approx::ExpMethod::Piecewise
use crate::least_squares::weighted_least_squares;
use mpc_core::{Result, Ring};
use ot_nonlinear::approx::{Piece, PiecewisePlan, PiecewisePoly};

/// The breakpoints: below the first, exp is taken as 0 (exp(−13) = 2.3·10^-6).
pub const EXP_TABLE_BREAKPOINTS: [f64; 9] =
    [-13.0, -9.0, -6.5, -4.75, -3.5, -2.5, -1.75, -1.125, -0.5];

/// Where the last cubic is fitted up to: Softmax's inputs x − max are at most the max tree's
/// slack (1/32) above 0.
const TOP: f64 = 0.0625;

/// Largest error of the table under [`exp_plan`] against exp on [−16, 1/16] at every
/// 2^-18 step the test samples (measured: 8.7·10^-5).
pub const EXP_TABLE_MAX_ERROR: f64 = 1e-4;

/// The plan: comparisons at 1/64 on Z_2^17 (|x| < 512, Softmax's range with a mask), u at 14
/// fraction bits (the input's rounding costs at most 2^-15 relative), coefficients at 26 bits
/// (the far pieces' cubic terms are ≈ 10^-6: a coarser grid would cost more than the fit),
/// powers and the polynomial in Z_2^44 (|u³| ≤ 13³ at 28 bits before its truncation, each term
/// below 2^41 at 40 bits), the result in Z_2^21 (exp ≤ e^{1/4} < 2).
pub fn exp_plan() -> PiecewisePlan {
    PiecewisePlan {
        range: [-512.0, 0.25],
        cmp_frac: 6,
        cmp_bits: Ring::new_const(17),
        poly_bits: Ring::new_const(44),
        poly_frac: 14,
        coef_frac: 26,
        out_bits: Ring::new_const(21),
    }
}

/// The table (see the module doc), checked against [`exp_plan`].
pub fn exp_table() -> Result<PiecewisePoly> {
    let step = 1.0 / 64.0;
    let bps = EXP_TABLE_BREAKPOINTS;
    let mut pieces = vec![Piece::Zero];
    for (i, &lo) in bps.iter().enumerate() {
        let hi = bps.get(i + 1).copied().unwrap_or(TOP) + step;
        const POINTS: usize = 2001;
        let points: Vec<(f64, f64)> = (0..POINTS)
            .map(|p| (lo + (hi - lo) * p as f64 / (POINTS - 1) as f64, 1.0))
            .collect();
        let center = (lo + hi) / 2.0;
        let coeffs =
            weighted_least_squares(f64::exp, (center, (hi - lo) / 2.0), &points, &[0, 1, 2, 3])?;
        pieces.push(Piece::Poly(coeffs));
    }
    let table = PiecewisePoly {
        breakpoints: bps.to_vec(),
        pieces,
    };
    exp_plan().validate(&table)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::FixedPoint;
    use ot_nonlinear::approx::fixed::{eval_piecewise, exp_squaring};

    /// Largest |approximation − exp| over x ∈ [−16, 1/16] on a 2^-18 grid with stride 23.
    fn worst(f: impl Fn(u64) -> u64) -> (f64, f64) {
        let lin = FixedPoint::LINEAR;
        let ring = lin.ring();
        let (lo, hi) = ((-16i64) << 18, 1i64 << 14);
        (lo..=hi)
            .step_by(23)
            .map(|x| {
                let v = ring.from_signed(x);
                let xf = x as f64 / (1u64 << 18) as f64;
                ((lin.decode(f(v)) - xf.exp()).abs(), xf)
            })
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    }

    #[test]
    fn the_table_is_within_its_documented_error_and_beats_puma_squaring() {
        let (table, plan) = (exp_table().unwrap(), exp_plan());
        let (err, at) = worst(|v| eval_piecewise(&table, &plan, v));
        let (puma, puma_at) = worst(|v| exp_squaring(8, -14.0, v));
        eprintln!("exp table: max error {err:.2e} at {at}; PUMA t = 8: {puma:.2e} at {puma_at}");
        assert!(err < EXP_TABLE_MAX_ERROR, "max error {err} at {at}");
        assert!(
            puma > 5.0 * err,
            "PUMA's squaring {puma} vs the table {err}"
        );
    }
}
