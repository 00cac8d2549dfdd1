//! The logistic sigmoid σ(x) = 1/(1 + e^−x) by MPC-friendly approximations, on a whole batch at
//! once: every comparison of every element runs in one batched reduced-ring DReLU (one
//! millionaire tree), then the pieces are combined and multiplexed. Secure version
//! [`sigmoid`] (on [`piecewise()`]), mirror [`sigmoid_fixed`] (on
//! [`eval_piecewise`]), exact cost [`sigmoid_cost`].
//!
//! | approximation | pieces | max \|σ̃ − σ\| on [−8, 8] |
//! |---|---|---|
//! | [`SigmoidApprox::Pl3`] | 0; 1/2 + 0.177x on [−2.825, 2.825); 1 | 0.0561 |
//! | [`SigmoidApprox::Pl5`] | 0; two outer lines on ±[1.675, 4.064); 1/2 + 0.2152x; 1 | 0.0180 |
//! | [`SigmoidApprox::Poly`] | 0; 1/2 + 0.2169x − 0.006588x³ on [−3.854, 3.854); 1 | 0.0207 |
//!
//! (The maxima are those of the real-valued tables, asserted by a test; the fixed-point
//! evaluation adds at most [`SigmoidApprox::carry_bound`] plus the rounding of u to 2^-12.)
//! The constants were fitted by a minimax search on [−8, 8]. pl3 and pl5 are continuous up to
//! 0.003; the cubic jumps by 0.04 at its clip points.
//!
//! Plan ([`SIGMOID_PLAN`]): comparisons at 1/256 on Z_2^20 (valid for |x| < 1024); u at 12
//! fraction bits in Z_2^58 (a free down-cast of the input, and u³ fits for |x| < 1625, which
//! the plan's check needs because the constant-1 piece is a polynomial piece too);
//! coefficients at 18 bits; the pieces summed in Z_2^24 (a free down-cast), then one up-cast
//! to Z_2^64.
//!
//! Inputs must satisfy |x| < 1024 (18 fraction bits); callers bound their logits.
//! Who sends what: only what [`piecewise()`] sends (the comparisons' millionaire messages, the
//! products', multiplexers' and truncations' COT messages). The breakpoints are public here
//! (the server passes them because the protocol keeps them on its side).
//!
//! ```
//! use nn::sigmoid::{sigmoid_fixed, SigmoidApprox};
//! use mpc_core::FixedPoint;
//! let fp = FixedPoint::LINEAR;
//! let y = fp.decode(sigmoid_fixed(SigmoidApprox::Pl5, fp.encode(1.0)?));
//! assert!((y - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 0.02);
//! # Ok::<(), mpc_core::Error>(())
//! ```
use mpc_core::{Error, Result, Ring};
use ot_nonlinear::approx::fixed::eval_piecewise;
use ot_nonlinear::approx::{Piece, PiecewisePlan, PiecewisePoly};
use ot_nonlinear::functions::{piecewise, piecewise_cost, piecewise_cots, Output, PiecewiseSpec};
use ot_nonlinear::mpc::{Cost, CotDemand, Session};

/// The evaluation plan shared by the three approximations.
pub const SIGMOID_PLAN: PiecewisePlan = PiecewisePlan {
    range: [-1024.0, 1024.0],
    cmp_frac: 8,
    cmp_bits: Ring::new_const(20),
    poly_bits: Ring::new_const(58),
    poly_frac: 12,
    coef_frac: 18,
    out_bits: Ring::new_const(24),
};

/// The interval on which the approximations' errors are stated.
pub const ERROR_INTERVAL: [f64; 2] = [-8.0, 8.0];

/// Which approximation of σ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigmoidApprox {
    /// Piecewise linear, 3 pieces: 0, a line through (0, 1/2), 1.
    Pl3,
    /// Piecewise linear, 5 pieces: 0, line, line through (0, 1/2), line, 1.
    Pl5,
    /// An odd cubic around 1/2 on a clipped range, 0 and 1 outside.
    Poly,
}

impl SigmoidApprox {
    /// All three, in the order of the table above.
    pub const ALL: [SigmoidApprox; 3] =
        [SigmoidApprox::Pl3, SigmoidApprox::Pl5, SigmoidApprox::Poly];

    /// The name used on command lines (`pl3`, `pl5`, `poly`).
    pub fn name(self) -> &'static str {
        match self {
            SigmoidApprox::Pl3 => "pl3",
            SigmoidApprox::Pl5 => "pl5",
            SigmoidApprox::Poly => "poly",
        }
    }

    /// The approximation as a table: breakpoints and pieces.
    pub fn table(self) -> PiecewisePoly {
        // The constant 1 is a polynomial piece with a zero slope (pieces of degree 0 other
        // than zero are not in the piece language).
        let one = Piece::Poly(vec![1.0, 0.0]);
        match self {
            SigmoidApprox::Pl3 => PiecewisePoly {
                breakpoints: vec![-2.825, 2.825],
                pieces: vec![Piece::Zero, Piece::Poly(vec![0.5, 0.177]), one],
            },
            SigmoidApprox::Pl5 => {
                let (c, b) = (0.7642, 0.05737);
                PiecewisePoly {
                    breakpoints: vec![-4.064, -1.675, 1.675, 4.064],
                    pieces: vec![
                        Piece::Zero,
                        Piece::Poly(vec![1.0 - c, b]),
                        Piece::Poly(vec![0.5, 0.2152]),
                        Piece::Poly(vec![c, b]),
                        one,
                    ],
                }
            }
            SigmoidApprox::Poly => PiecewisePoly {
                breakpoints: vec![-3.854, 3.854],
                pieces: vec![
                    Piece::Zero,
                    Piece::Poly(vec![0.5, 0.2169, 0.0, -0.006588]),
                    one,
                ],
            },
        }
    }

    /// The largest |σ̃(x) − σ(x)| of the real-valued table on [`ERROR_INTERVAL`], sampled on a
    /// grid of 2^-10 (both functions have slopes ≤ 1/4, so the true maximum is at most 2^-12
    /// above the sampled one).
    pub fn max_error(self) -> f64 {
        let t = self.table();
        let [lo, hi] = ERROR_INTERVAL;
        let steps = ((hi - lo) * 1024.0) as usize;
        (0..=steps)
            .map(|i| lo + i as f64 / 1024.0)
            .map(|x| (t.eval_f64(x) - sigmoid_exact(x)).abs())
            .fold(0.0, f64::max)
    }

    /// Largest difference between [`sigmoid`] and [`sigmoid_fixed`] away from the breakpoints
    /// (the truncation carries), real value.
    pub fn carry_bound(self) -> f64 {
        SIGMOID_PLAN.carry_bound(&self.table())
    }

    fn spec(pieces: &[Piece]) -> PiecewiseSpec<'_> {
        PiecewiseSpec {
            pieces,
            plan: &SIGMOID_PLAN,
        }
    }
}

impl std::str::FromStr for SigmoidApprox {
    type Err = Error;
    fn from_str(s: &str) -> Result<SigmoidApprox> {
        SigmoidApprox::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("sigmoid approximation {s:?}: use pl3, pl5 or poly"))
            })
    }
}

impl std::fmt::Display for SigmoidApprox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// σ(x) in f64.
pub fn sigmoid_exact(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The mirror: σ̃(x) for x ∈ Z_2^64 with 18 fraction bits, step by step as [`sigmoid`] computes
/// it (every truncation a floor).
pub fn sigmoid_fixed(approx: SigmoidApprox, x: u64) -> u64 {
    eval_piecewise(&approx.table(), &SIGMOID_PLAN, x)
}

/// Shares of σ̃(x) (Z_2^64, 18 fraction bits) for shares `x` (same format, |x| < 1024), all
/// comparisons of the batch in one flight. Label `sigmoid` (with `piecewise` inside).
pub fn sigmoid(sess: &mut Session, approx: SigmoidApprox, x: &[u64]) -> Result<Vec<u64>> {
    let table = approx.table();
    let spec = SigmoidApprox::spec(&table.pieces);
    let breakpoints = sess.is_server().then_some(table.breakpoints.as_slice());
    sess.scope("sigmoid", |sess| {
        piecewise(sess, &spec, breakpoints, x, Output::Linear)
    })
}

/// Exact cost of [`sigmoid`] on n elements.
pub fn sigmoid_cost(approx: SigmoidApprox, n: usize) -> Cost {
    let table = approx.table();
    piecewise_cost(&SigmoidApprox::spec(&table.pieces), n, Output::Linear)
}

/// COTs drawn by [`sigmoid`] on n elements.
pub fn sigmoid_cots(approx: SigmoidApprox, n: usize) -> CotDemand {
    let table = approx.table();
    piecewise_cots(&SigmoidApprox::spec(&table.pieces), n, Output::Linear)
}
