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
use crate::calibrate::Calibration;
use crate::float_model::gelu_f64;
use crate::linalg::cholesky_solve;
use crate::BertWeights;
use mpc_core::{Error, FixedPoint, Result};
use ot_nonlinear::approx::fixed::eval_piecewise;
use ot_nonlinear::approx::tables::{FitReport, TABLES_FORMAT};
use ot_nonlinear::approx::{
    ApproxSet, ExpMethod, LayerTables, Piece, PiecewisePlan, PiecewisePoly, TablesFile,
};

/// Most samples used per layer and function (a deterministic stride beyond this).
const MAX_SAMPLES: usize = 400_000;

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

/// Weighted prefix sums over samples sorted by x: φ_iφ_j (i ≤ j ≤ d), φ_k·f, f², (x − f)², where
/// φ are the [`planned_powers`].
struct Moments {
    xs: Vec<f64>,
    degree: usize,
    plan: PiecewisePlan,
    f: fn(f64) -> f64,
    gram: Vec<Vec<f64>>,
    phi_f: Vec<Vec<f64>>,
    f2: Vec<f64>,
    id_err: Vec<f64>,
}

impl Moments {
    fn new(
        samples: &[f32],
        weights: Option<&[f32]>,
        plan: &PiecewisePlan,
        degree: usize,
        f: fn(f64) -> f64,
    ) -> Moments {
        let stride = samples.len().div_ceil(MAX_SAMPLES).max(1);
        let mut xw: Vec<(f64, f64)> = (0..samples.len())
            .step_by(stride)
            .map(|i| (samples[i] as f64, weights.map_or(1.0, |w| w[i] as f64)))
            .collect();
        xw.sort_by(|a, b| a.0.total_cmp(&b.0));
        let m = degree + 1;
        let n = xw.len();
        let zeros = || vec![0.0; n + 1];
        let mut gram = vec![zeros(); m * m];
        let mut phi_f = vec![zeros(); m];
        let (mut f2, mut id_err) = (zeros(), zeros());
        for (t, &(x, w)) in xw.iter().enumerate() {
            let phi = planned_powers(plan, x, degree);
            let fx = f(x);
            for i in 0..m {
                for j in i..m {
                    gram[i * m + j][t + 1] = gram[i * m + j][t] + w * phi[i] * phi[j];
                }
                phi_f[i][t + 1] = phi_f[i][t] + w * phi[i] * fx;
            }
            f2[t + 1] = f2[t] + w * fx * fx;
            id_err[t + 1] = id_err[t] + w * (x - fx).powi(2);
        }
        Moments {
            xs: xw.into_iter().map(|(x, _)| x).collect(),
            degree,
            plan: *plan,
            f,
            gram,
            phi_f,
            f2,
            id_err,
        }
    }

    /// Index of the first sample ≥ t.
    fn index(&self, t: f64) -> usize {
        self.xs.partition_point(|&x| x < t)
    }

    /// Least-squares polynomial on samples `lo..hi` with the coefficients of degree > `free`
    /// fixed to `fixed[k]`, and its squared error; None if too few samples.
    fn fit(&self, lo: usize, hi: usize, fixed: &[f64], free: usize) -> Option<(Vec<f64>, f64)> {
        let m = self.degree + 1;
        if hi < lo + 4 * m {
            return None;
        }
        let s = |p: &Vec<f64>| p[hi] - p[lo];
        let g = |i: usize, j: usize| s(&self.gram[i.min(j) * m + i.max(j)]);
        let k = free + 1;
        let mut a: Vec<f64> = (0..k * k).map(|i| g(i / k, i % k)).collect();
        let b: Vec<f64> = (0..k)
            .map(|i| s(&self.phi_f[i]) - (k..m).map(|j| fixed[j] * g(i, j)).sum::<f64>())
            .collect();
        let ridge = 1e-12 * (0..k).map(|i| a[i * k + i]).sum::<f64>();
        (0..k).for_each(|i| a[i * k + i] += ridge);
        let mut c = cholesky_solve(&mut a, &b, k).ok()?;
        c.extend_from_slice(&fixed[k..m]);
        // Σ w (f − c·φ)² = Σ f² − 2 c·Σφf + cᵀ G c.
        let quad: f64 = (0..m)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| c[i] * g(i, j) * c[j])
            .sum();
        let cb: f64 = (0..m).map(|i| c[i] * s(&self.phi_f[i])).sum();
        Some((c, (s(&self.f2) - 2.0 * cb + quad).max(0.0)))
    }

    /// [`Moments::fit`] with the coefficients rounded to `bits[k]` fraction bits, from the
    /// leading one down, re-solving the lower ones after each rounding.
    fn fit_rounded(&self, lo: usize, hi: usize, bits: &[u32]) -> Option<Vec<f64>> {
        let mut c = vec![0.0; self.degree + 1];
        for k in (0..=self.degree).rev() {
            let (sol, _) = self.fit(lo, hi, &c, k)?;
            let s = (bits[k] as f64).exp2();
            c[k] = (sol[k] * s).round() / s;
        }
        Some(c)
    }
}

/// The breakpoint grid of `plan` on [lo, hi].
fn grid(plan: &PiecewisePlan, lo: f64, hi: f64) -> Vec<f64> {
    let step = 1.0 / (plan.cmp_frac as f64).exp2();
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(move |i| lo + i as f64 * step).collect()
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

/// The ends of a piecewise search: where the first breakpoint (zero piece to its left) may lie,
/// and either where the last one (identity to its right) may lie or `None` (the last polynomial
/// runs to the largest sample).
struct Ends {
    first: [f64; 2],
    last: Option<[f64; 2]>,
}

/// Breakpoints (on `plan`'s grid, at least two comparison steps apart) minimising the total
/// squared error of {0; `segments` polynomials; x or nothing} by dynamic programming over the
/// grid: the best cost of j segments ending at each grid point from the best of j − 1, with every
/// segment's least-squares error from the prefix moments. Only pieces whose largest error on
/// their interval (the 1/64 grid from the smallest to the largest sample) is within `bound`
/// take part. None if no admissible split exists.
fn search(m: &Moments, ends: &Ends, segments: usize, bound: f64) -> Option<Vec<f64>> {
    let plan = &m.plan;
    let n = m.xs.len();
    let (&xlo, &xhi) = (m.xs.first()?, m.xs.last()?);
    let hi = ends.last.map_or(0.0, |l| l[1]);
    // Polynomial pieces stay where their powers fit the plan's ring.
    let reach = (2..=m.degree)
        .map(|k| plan.poly_reach(k))
        .fold(f64::INFINITY, f64::min);
    let points: Vec<f64> = grid(plan, ends.first[0], hi)
        .into_iter()
        .filter(|t| t.abs() < reach)
        .collect();
    let within = |t: f64, r: [f64; 2]| t >= r[0] - 1e-9 && t <= r[1] + 1e-9;
    let step = 1.0 / (plan.cmp_frac as f64).exp2();
    let largest = |lo: f64, hi: f64, err: &dyn Fn(f64) -> f64| {
        if !bound.is_finite() {
            return 0.0;
        }
        let k = ((hi - lo) / step).ceil().max(0.0) as usize;
        (0..=k)
            .map(|i| err((lo + i as f64 * step).min(hi)))
            .fold(0.0, f64::max)
    };
    let f = m.f;
    // Node i < points.len() is a grid breakpoint; without an identity piece one more node stands
    // for the end of the samples.
    let idx: Vec<usize> = points
        .iter()
        .map(|&t| m.index(t))
        .chain(ends.last.is_none().then_some(n))
        .collect();
    let nodes = idx.len();
    let right = |b: usize| points.get(b).copied().unwrap_or(xhi);
    let is_end = |b: usize| match ends.last {
        Some(r) => b < points.len() && within(points[b], r),
        None => b == points.len(),
    };
    let zero = vec![0.0; m.degree + 1];
    // The segment's error, or None if its fit fails, is no better than `beat`, or leaves the
    // bound (checked last: it is the expensive part).
    let segment = |a: usize, b: usize, beat: f64| {
        let (c, e) = m.fit(idx[a], idx[b], &zero, m.degree)?;
        if e >= beat {
            return None;
        }
        let poly = |x: f64| {
            let phi = planned_powers(plan, x, m.degree);
            (c.iter().zip(&phi).map(|(c, p)| c * p).sum::<f64>() - f(x)).abs()
        };
        (largest(points[a], right(b) - 1e-9, &poly) <= bound).then_some(e)
    };
    let tail = |b: usize| match ends.last {
        Some(_) if largest(points[b], xhi, &|x| (x - f(x)).abs()) <= bound => {
            Some(m.id_err[n] - m.id_err[idx[b]])
        }
        Some(_) => None,
        None => Some(0.0),
    };
    // best[b]: least error with the current number of segments, the last ending at node b;
    // from[j][b] the node where that segment started.
    let mut best: Vec<f64> = (0..nodes)
        .map(|b| {
            let zero_ok = b < points.len()
                && within(points[b], ends.first)
                && largest(xlo, points[b] - 1e-9, &|x| f(x).abs()) <= bound;
            if zero_ok {
                m.f2[idx[b]]
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let mut from = vec![vec![usize::MAX; nodes]; segments];
    for level in from.iter_mut() {
        let mut next = vec![f64::INFINITY; nodes];
        for b in 0..nodes {
            for a in 0..b.saturating_sub(1) {
                if !best[a].is_finite() {
                    continue;
                }
                if let Some(e) = segment(a, b, next[b] - best[a]) {
                    next[b] = best[a] + e;
                    level[b] = a;
                }
            }
        }
        best = next;
    }
    let (mut b, _) = (0..nodes)
        .filter(|&b| is_end(b) && best[b].is_finite())
        .filter_map(|b| tail(b).map(|t| (b, best[b] + t)))
        .min_by(|x, y| x.1.total_cmp(&y.1))?;
    let mut cuts = vec![b];
    for level in from.iter().rev() {
        b = level[b];
        cuts.push(b);
    }
    cuts.reverse();
    Some(
        cuts.into_iter()
            .filter(|&b| b < points.len())
            .map(|b| points[b])
            .collect(),
    )
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
mod tests {
    use super::*;

    const ONE: (usize, f64) = (1, f64::INFINITY);

    fn normal_samples(n: usize, mean: f64, sd: f64) -> Vec<f32> {
        // Deterministic normal quantiles by inverting a fine CDF table (no RNG needed).
        (0..n)
            .map(|i| {
                let p = (i as f64 + 0.5) / n as f64;
                let (mut lo, mut hi) = (-10.0, 10.0);
                for _ in 0..60 {
                    let mid = 0.5 * (lo + hi);
                    if 0.5 * (1.0 + crate::float_model::erf(mid / std::f64::consts::SQRT_2)) < p {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                (mean + sd * lo) as f32
            })
            .collect()
    }

    #[test]
    fn gelu_fit_beats_the_starting_constants_on_its_distribution() {
        let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
        let xs = normal_samples(20_000, -1.0, 1.2);
        let fitted = fit_gelu(&xs, None, &plan.gelu, format, ONE).unwrap();
        let start = ApproxSet::nimbus().layers[0].gelu.clone();
        let r_fit = report(0, "gelu", (&fitted, &plan.gelu), &xs, gelu_f64);
        let r_start = report(0, "gelu", (&start, &plan.gelu), &xs, gelu_f64);
        assert!(r_fit.rmse < r_start.rmse, "{r_fit:?} vs {r_start:?}");
        assert!(r_fit.rmse < 0.035, "{r_fit:?}");
        fitted.validate(format).unwrap();
        plan.gelu.validate(&fitted).unwrap();
        let b = &fitted.breakpoints;
        assert!(b[0] < b[1] && (b[0] * 64.0).fract() == 0.0, "{b:?}");
        // Coefficients on the plan's grid (10 fraction bits above the constant).
        let Piece::Poly(c) = &fitted.pieces[1] else {
            panic!("{fitted:?}")
        };
        assert!(c[1..].iter().all(|v| (v * 1024.0).fract() == 0.0), "{c:?}");
        // Sensitivity weights that favour no sample change nothing.
        let ones = vec![1.0; xs.len()];
        assert_eq!(
            fit_gelu(&xs, Some(&ones), &plan.gelu, format, ONE).unwrap(),
            fitted
        );
    }

    #[test]
    fn more_segments_cut_the_error_and_respect_the_plan() {
        let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
        let gx = normal_samples(20_000, -1.0, 1.5);
        let ex: Vec<f32> = normal_samples(20_000, 0.0, 2.5)
            .iter()
            .map(|x| -x.abs())
            .collect();
        let mut last = (f64::INFINITY, f64::INFINITY);
        for k in 1..=3 {
            let g = fit_gelu(&gx, None, &plan.gelu, format, (k, f64::INFINITY)).unwrap();
            let e = fit_exp(&ex, &plan.exp, format, (k, f64::INFINITY)).unwrap();
            assert_eq!(
                (g.breakpoints.len(), g.pieces.len()),
                (k + 1, k + 2),
                "{g:?}"
            );
            assert_eq!((e.breakpoints.len(), e.pieces.len()), (k, k + 1), "{e:?}");
            for (pw, pl) in [(&g, &plan.gelu), (&e, &plan.exp)] {
                pw.validate(format).unwrap();
                pl.validate(pw).unwrap();
                // On the comparison grid, at least two steps apart.
                assert!(pw.breakpoints.iter().all(|t| (t * 64.0).fract() == 0.0));
                assert!(pw.breakpoints.windows(2).all(|w| w[1] - w[0] >= 2.0 / 64.0));
            }
            assert!(g.breakpoints[0] >= -4.0 && g.breakpoints[k] <= 3.0, "{g:?}");
            assert!(
                e.breakpoints[0] >= -8.0 && e.breakpoints[k - 1] < 0.0,
                "{e:?}"
            );
            let rg = report(0, "gelu", (&g, &plan.gelu), &gx, gelu_f64).rmse;
            let re = report(0, "exp", (&e, &plan.exp), &ex, f64::exp).rmse;
            assert!(rg < last.0 && re < last.1, "{k}: {rg} {re} after {last:?}");
            last = (rg, re);
        }
        // Bounded: the mirror's largest error (fixed point included) meets the targets.
        let s = Segments::parse("3,2").unwrap();
        let g = fit_gelu(&gx, None, &plan.gelu, format, (s.gelu, s.gelu_bound)).unwrap();
        let e = fit_exp(&ex, &plan.exp, format, (s.exp, s.exp_bound)).unwrap();
        let rg = report(0, "gelu", (&g, &plan.gelu), &gx, gelu_f64);
        let re = report(0, "exp", (&e, &plan.exp), &ex, f64::exp);
        assert!(
            rg.max_error <= 0.02 && re.max_error <= 0.01,
            "{g:?} {rg:?} {e:?} {re:?}"
        );
        // Two quadratics cannot stay within 0.015 of GELU: an error, not a silent unbounded fit.
        let two = (2, Segments::GELU_BOUND);
        assert!(fit_gelu(&gx, None, &plan.gelu, format, two).is_err());
        assert_eq!(Segments::parse("1,1").unwrap(), Segments::NIMBUS);
        assert_eq!((s.gelu, s.exp, s.exp_bound), (3, 2, Segments::EXP_BOUND));
        for bad in ["2", "0,1", "1,5", "a,b"] {
            assert!(Segments::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exp_fit_is_accurate_and_too_few_samples_are_an_error() {
        let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
        let xs: Vec<f32> = normal_samples(20_000, 0.0, 2.0)
            .iter()
            .map(|x| -x.abs())
            .collect();
        let fitted = fit_exp(&xs, &plan.exp, format, ONE).unwrap();
        plan.exp.validate(&fitted).unwrap();
        let r = report(0, "exp", (&fitted, &plan.exp), &xs, f64::exp);
        assert!(r.rmse < 0.01 && r.max_error < 0.06, "{r:?}");
        assert!(fit_exp(&[-1.0, -0.5], &plan.exp, format, ONE).is_err());
    }
}
