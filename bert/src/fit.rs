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
fn grid(plan: &PiecewisePlan, lo: f64, hi: f64) -> impl Iterator<Item = f64> + Clone {
    let step = 1.0 / (plan.cmp_frac as f64).exp2();
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(move |i| lo + i as f64 * step)
}

/// Fits GELU on calibration inputs (optionally weighted): {0; quadratic on [T1, T2); x}.
pub fn fit_gelu(
    samples: &[f32],
    weights: Option<&[f32]>,
    plan: &PiecewisePlan,
    format: FixedPoint,
) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, weights, plan, 2, gelu_f64);
    let n = m.xs.len();
    let mut best: Option<(f64, f64, f64)> = None;
    for t1 in grid(plan, -4.0, -1.0) {
        let lo = m.index(t1);
        for t2 in grid(plan, -0.5, 3.0) {
            let hi = m.index(t2);
            let Some((_, sse)) = m.fit(lo, hi, &[0.0; 3], 2) else {
                continue;
            };
            let err = m.f2[lo] + sse + (m.id_err[n] - m.id_err[hi]);
            if best.is_none_or(|b| err < b.0) {
                best = Some((err, t1, t2));
            }
        }
    }
    let too_few =
        || Error::InvalidArgument(format!("{n} GELU calibration inputs are too few to fit"));
    let (_, t1, t2) = best.ok_or_else(too_few)?;
    let bits: Vec<u32> = (0..3).map(|k| coeff_bits(plan, format, k, 2)).collect();
    let c = m
        .fit_rounded(m.index(t1), m.index(t2), &bits)
        .ok_or_else(too_few)?;
    Ok(PiecewisePoly {
        breakpoints: vec![t1, t2],
        pieces: vec![Piece::Zero, Piece::Poly(c), Piece::Identity],
    })
}

/// Fits exp on calibration inputs (≤ 0): {0; cubic on [T, 0]}.
pub fn fit_exp(samples: &[f32], plan: &PiecewisePlan, format: FixedPoint) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, None, plan, 3, f64::exp);
    let n = m.xs.len();
    let mut best: Option<(f64, f64)> = None;
    for t in grid(plan, -8.0, -1.0) {
        let lo = m.index(t);
        let Some((_, sse)) = m.fit(lo, n, &[0.0; 4], 3) else {
            continue;
        };
        let err = m.f2[lo] + sse;
        if best.is_none_or(|b| err < b.0) {
            best = Some((err, t));
        }
    }
    let too_few =
        || Error::InvalidArgument(format!("{n} exp calibration inputs are too few to fit"));
    let (_, t) = best.ok_or_else(too_few)?;
    let bits: Vec<u32> = (0..4).map(|k| coeff_bits(plan, format, k, 3)).collect();
    let c = m.fit_rounded(m.index(t), n, &bits).ok_or_else(too_few)?;
    Ok(PiecewisePoly {
        breakpoints: vec![t],
        pieces: vec![Piece::Zero, Piece::Poly(c)],
    })
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

/// Fits every layer's GELU and exp from `calibration` into a Nimbus tables file. With
/// `weights`, each GELU input is weighted by its downstream sensitivity (the squared norm of its
/// row of the output projection) instead of 1.
pub fn fit_nimbus(
    calibration: &Calibration,
    weights: Option<&BertWeights>,
    model: &str,
    description: &str,
) -> Result<TablesFile> {
    let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for (l, (g, e)) in calibration.gelu.iter().zip(&calibration.exp).enumerate() {
        let w = weights.map(|w| gelu_sensitivity(g.len(), &w.layers[l].ffn_down.w));
        let gelu = fit_gelu(g, w.as_deref(), &plan.gelu, format)?;
        let exp = fit_exp(e, &plan.exp, format)?;
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
        let fitted = fit_gelu(&xs, None, &plan.gelu, format).unwrap();
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
            fit_gelu(&xs, Some(&ones), &plan.gelu, format).unwrap(),
            fitted
        );
    }

    #[test]
    fn exp_fit_is_accurate_and_too_few_samples_are_an_error() {
        let ApproxSet { format, plan, .. } = ApproxSet::nimbus();
        let xs: Vec<f32> = normal_samples(20_000, 0.0, 2.0)
            .iter()
            .map(|x| -x.abs())
            .collect();
        let fitted = fit_exp(&xs, &plan.exp, format).unwrap();
        plan.exp.validate(&fitted).unwrap();
        let r = report(0, "exp", (&fitted, &plan.exp), &xs, f64::exp);
        assert!(r.rmse < 0.01 && r.max_error < 0.06, "{r:?}");
        assert!(fit_exp(&[-1.0, -0.5], &plan.exp, format).is_err());
    }
}
