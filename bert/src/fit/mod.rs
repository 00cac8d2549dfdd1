//! Per-layer fitting of the Nimbus approximations (Nimbus §4.2, Alg. 4): density-weighted least
//! squares on the calibration inputs, with a grid search over the breakpoints, for the precision
//! at which the secure plan (`SetPlan::nimbus`) evaluates them.
//!
//! The calibration inputs are the density: every sample weighs 1 (or a given weight), so the
//! objective is the mean squared error over the empirical input distribution, counting all pieces:
//! * GELU ≈ {0 for x < T1; a u² + b u + c on [T1, T2); x for x ≥ T2}, T1 ∈ [−4, −1],
//!   T2 ∈ [−0.5, 3];
//! * exp(x), x ≤ 0, ≈ {0 for x < T; cubic in u on [T, 0]}, T ∈ [−8, −1].
//!
//! Fitted for the plan's arithmetic: breakpoints on its comparison grid (1/64), the polynomial in
//! the powers the plan computes (u = x rounded to `poly_frac` = 8 bits, u^k floored at 8 bits:
//! [`planned_powers`]), coefficients rounded to the plan's bits one at a time from the leading one
//! down, re-solving the lower ones after each rounding. For each breakpoint candidate the
//! least-squares polynomial and its error come from prefix sums of the sorted samples' moments,
//! so the search costs O(grid) after one sort. The reported errors are those of the plaintext
//! mirror ([`eval_piecewise`]) on the calibration inputs.
mod search;

use crate::calibrate::Calibration;
use crate::float_model::gelu_f64;
use crate::BertWeights;
use mpc_core::{Error, FixedPoint, Result};
use ot_nonlinear::approx::fixed::eval_piecewise;
use ot_nonlinear::approx::tables::{FitReport, TABLES_FORMAT};
use ot_nonlinear::approx::{
    ApproxSet, ExpMethod, LayerTables, Piece, PiecewisePlan, PiecewisePoly, TablesFile,
};
use search::{search, Ends, Moments};

/// x·2^bits rounded down, over 2^bits.
fn floor_to(x: f64, bits: u32) -> f64 {
    let s = (bits as f64).exp2();
    (x * s).floor() / s
}

/// The powers 1, u, …, u^d a polynomial piece sees under `plan`: u = x rounded to nearest at
/// `poly_frac` bits, u^k = ⌊u^⌈k/2⌉ · u^⌊k/2⌋⌋ at the same bits.
pub fn planned_powers(plan: &PiecewisePlan, x: f64, degree: usize) -> Vec<f64> {
    let f = plan.poly_frac;
    let mut p = vec![1.0, floor_to(x + 0.5 / (f as f64).exp2(), f)];
    for k in 2..=degree {
        p.push(floor_to(p[k.div_ceil(2)] * p[k / 2], f));
    }
    p.truncate(degree + 1);
    p
}

/// Bits of coefficient k of a degree-`d` polynomial: the plan's (constant at poly_frac +
/// coef_frac, the others at coef_frac), capped by what the tables' `format` stores (leading at
/// f, the others at 2f bits).
fn coeff_bits(plan: &PiecewisePlan, format: FixedPoint, k: usize, d: usize) -> u32 {
    let f = format.frac_bits();
    let planned = if k == 0 {
        plan.poly_frac + plan.coef_frac
    } else {
        plan.coef_frac
    };
    planned.min(if k == d { f } else { 2 * f })
}

/// The shapes to fit: how many polynomial segments each function has, and the largest error a
/// piece may have on its interval. Nimbus' shapes ([`Segments::NIMBUS`]) have one segment each
/// (GELU {0, quadratic, x}, exp {0, cubic}) and no bound: density-weighted least squares alone
/// (Alg. 4). More segments cost one comparison and one multiplexer on the polynomial ring per
/// element each; they are fitted under [`Segments::GELU_BOUND`] and [`Segments::EXP_BOUND`],
/// so the largest error, not only the mean, meets the targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segments {
    /// Quadratic segments of GELU between the zero and the identity piece.
    pub gelu: usize,
    /// Cubic segments of exp between the zero piece and 0.
    pub exp: usize,
    /// Largest error of any GELU piece (zero, quadratic, identity) on its interval, checked on
    /// the 1/64 grid between the smallest and largest calibration input.
    pub gelu_bound: f64,
    /// Largest error of any exp piece on its interval, likewise.
    pub exp_bound: f64,
}

impl Segments {
    /// Nimbus' shapes: one polynomial segment each, unbounded.
    pub const NIMBUS: Segments = Segments {
        gelu: 1,
        exp: 1,
        gelu_bound: f64::INFINITY,
        exp_bound: f64::INFINITY,
    };
    /// The approximation error allowed to a GELU piece when fitting more segments: 0.015, which
    /// leaves 0.005 of the 0.02 target for the fixed-point evaluation.
    pub const GELU_BOUND: f64 = 0.015;
    /// The approximation error allowed to an exp piece: 0.007 of the 0.01 target.
    pub const EXP_BOUND: f64 = 0.007;

    /// `G,E` (e.g. `2,2`), each between 1 and 4; `1,1` is [`Segments::NIMBUS`], anything else
    /// is bounded by [`Segments::GELU_BOUND`] and [`Segments::EXP_BOUND`].
    pub fn parse(s: &str) -> Result<Segments> {
        let bad =
            || Error::InvalidArgument(format!("segments `{s}`: expected G,E with 1 ≤ G, E ≤ 4"));
        let (g, e) = s.split_once(',').ok_or_else(bad)?;
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=4).contains(n))
        };
        let (gelu, exp) = (parse(g).ok_or_else(bad)?, parse(e).ok_or_else(bad)?);
        if (gelu, exp) == (1, 1) {
            return Ok(Segments::NIMBUS);
        }
        Ok(Segments {
            gelu,
            exp,
            gelu_bound: Segments::GELU_BOUND,
            exp_bound: Segments::EXP_BOUND,
        })
    }
}

/// The pieces between `breakpoints`: zero, the rounded least-squares polynomials, then the
/// identity when `identity`.
fn rounded_pieces(
    m: &Moments,
    plan: &PiecewisePlan,
    format: FixedPoint,
    breakpoints: &[f64],
    identity: bool,
) -> Option<Vec<Piece>> {
    let d = m.degree;
    let bits: Vec<u32> = (0..=d).map(|k| coeff_bits(plan, format, k, d)).collect();
    let mut bounds: Vec<usize> = breakpoints.iter().map(|&t| m.index(t)).collect();
    if !identity {
        bounds.push(m.xs.len());
    }
    let mut pieces = vec![Piece::Zero];
    for w in bounds.windows(2) {
        pieces.push(Piece::Poly(m.fit_rounded(w[0], w[1], &bits)?));
    }
    if identity {
        pieces.push(Piece::Identity);
    }
    Some(pieces)
}

/// The searched breakpoints and rounded pieces of `function` (named in errors) on the moments
/// `m`: the identity piece last when `ends` has a last range.
fn fit_shape(
    m: &Moments,
    function: &str,
    ends: &Ends,
    format: FixedPoint,
    (segments, bound): (usize, f64),
) -> Result<PiecewisePoly> {
    let none = || {
        Error::InvalidArgument(format!(
            "{} {function} calibration inputs admit no fit with {segments} segments within {bound}",
            m.xs.len()
        ))
    };
    let breakpoints = search(m, ends, segments, bound).ok_or_else(none)?;
    let identity = ends.last.is_some();
    let pieces = rounded_pieces(m, &m.plan, format, &breakpoints, identity).ok_or_else(none)?;
    Ok(PiecewisePoly {
        breakpoints,
        pieces,
    })
}

/// Fits GELU on calibration inputs (optionally weighted): {0; `segments` quadratics; x}, the
/// first breakpoint in [−4, −1], the last in [−0.5, 3], every piece within `bound` of GELU on
/// its interval.
pub fn fit_gelu(
    samples: &[f32],
    weights: Option<&[f32]>,
    plan: &PiecewisePlan,
    format: FixedPoint,
    shape: (usize, f64),
) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, weights, plan, 2, gelu_f64);
    let ends = Ends {
        first: [-4.0, -1.0],
        last: Some([-0.5, 3.0]),
    };
    fit_shape(&m, "GELU", &ends, format, shape)
}

/// Fits exp on calibration inputs (≤ 0): {0; `segments` cubics up to 0}, the first breakpoint
/// in [−8, −1], every piece within `bound` of exp on its interval.
pub fn fit_exp(
    samples: &[f32],
    plan: &PiecewisePlan,
    format: FixedPoint,
    shape: (usize, f64),
) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, None, plan, 3, f64::exp);
    let ends = Ends {
        first: [-8.0, -1.0],
        last: None,
    };
    fit_shape(&m, "exp", &ends, format, shape)
}

/// RMSE and largest error of the plaintext mirror of `pw` under `plan` against `f` on the
/// samples.
fn report(
    layer: usize,
    function: &str,
    (pw, plan): (&PiecewisePoly, &PiecewisePlan),
    samples: &[f32],
    f: fn(f64) -> f64,
) -> FitReport {
    let lin = FixedPoint::LINEAR;
    let (mut sq, mut max) = (0.0, 0.0f64);
    for &x in samples {
        let x = x as f64;
        let enc = lin.encode(x).expect("calibration input fits Z_2^64");
        let e = (lin.decode(eval_piecewise(pw, plan, enc)) - f(x)).abs();
        sq += e * e;
        max = max.max(e);
    }
    FitReport {
        layer,
        function: function.into(),
        samples: samples.len(),
        rmse: (sq / samples.len().max(1) as f64).sqrt(),
        max_error: max,
    }
}

/// Per-sample weights of a layer's GELU inputs (row-major `tokens × intermediate`): the squared
/// norm of the output-projection row their error goes through, normalised to mean 1.
fn gelu_sensitivity(samples: usize, ffn_down: &ndarray::Array2<f32>) -> Vec<f32> {
    let norms: Vec<f64> = ffn_down
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&w| (w as f64).powi(2)).sum())
        .collect();
    let mean = norms.iter().sum::<f64>() / norms.len() as f64;
    (0..samples)
        .map(|i| (norms[i % norms.len()] / mean) as f32)
        .collect()
}

/// Fits every layer's GELU and exp from `calibration` into a Nimbus tables file with the given
/// number of polynomial segments per function ([`Segments::NIMBUS`]: Nimbus' own shapes). With
/// `weights`, each GELU input is weighted by its downstream sensitivity (the squared norm of its
/// row of the output projection) instead of 1.
pub fn fit_nimbus(
    calibration: &Calibration,
    weights: Option<&BertWeights>,
    segments: Segments,
    model: &str,
    description: &str,
) -> Result<TablesFile> {
    let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for (l, (g, e)) in calibration.gelu.iter().zip(&calibration.exp).enumerate() {
        let w = weights.map(|w| gelu_sensitivity(g.len(), &w.layers[l].ffn_down.w));
        let gelu = fit_gelu(
            g,
            w.as_deref(),
            &plan.gelu,
            format,
            (segments.gelu, segments.gelu_bound),
        )?;
        let exp = fit_exp(e, &plan.exp, format, (segments.exp, segments.exp_bound))?;
        errors.push(report(l, "gelu", (&gelu, &plan.gelu), g, gelu_f64));
        errors.push(report(l, "exp", (&exp, &plan.exp), e, f64::exp));
        layers.push(LayerTables {
            gelu,
            exp: ExpMethod::Piecewise(exp),
        });
    }
    let set = ApproxSet {
        name: "nimbus".into(),
        format,
        layers,
        plan,
    };
    set.validate(calibration.gelu.len())?;
    Ok(TablesFile {
        format: TABLES_FORMAT.into(),
        model: model.into(),
        calibration: description.into(),
        set,
        errors,
    })
}

#[cfg(test)]
mod tests;
