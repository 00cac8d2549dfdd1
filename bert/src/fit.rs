//! Per-layer fitting of the Nimbus approximations (Nimbus §4.2, Alg. 4): density-weighted least
//! squares on the calibration inputs, with a grid search over the breakpoints.
//!
//! The calibration inputs are the density: every sample weighs 1, so the objective is the mean
//! squared error over the empirical input distribution, counting all pieces:
//! * GELU ≈ {0 for x < T1; a x² + b x + c on [T1, T2); x for x ≥ T2}, T1 ∈ [−4, −1],
//!   T2 ∈ [−0.5, 3];
//! * exp(x), x ≤ 0, ≈ {0 for x < T; cubic on [T, 0]}, T ∈ [−8, −1].
//!
//! Breakpoints run over a grid of step 1/32 (exact in the 12-bit evaluation format). For each
//! candidate the least-squares polynomial and its error come from prefix sums of the sorted
//! samples' moments, so the whole search costs O(grid) after one sort. The chosen coefficients
//! are rounded to the evaluation format (leading one at f bits, the others at 2f bits) and the
//! reported errors are measured with the rounded table.
use crate::calibrate::Calibration;
use crate::float_model::gelu_f64;
use crate::linalg::cholesky_solve;
use mpc_core::{Error, FixedPoint, Result};
use ot_nonlinear::approx::tables::{FitReport, TABLES_FORMAT};
use ot_nonlinear::approx::{ApproxSet, ExpMethod, LayerTables, Piece, PiecewisePoly, TablesFile};

/// Step of the breakpoint grid.
const GRID_STEP: f64 = 1.0 / 32.0;
/// Most samples used per layer and function (a deterministic stride beyond this).
const MAX_SAMPLES: usize = 400_000;

/// Prefix sums over sorted samples of x^k (k ≤ 2d), x^k·f(x) (k ≤ d), f², and (x − f)².
struct Moments {
    xs: Vec<f64>,
    degree: usize,
    pow: Vec<Vec<f64>>,
    pow_f: Vec<Vec<f64>>,
    f2: Vec<f64>,
    id_err: Vec<f64>,
}

impl Moments {
    fn new(samples: &[f32], degree: usize, f: fn(f64) -> f64) -> Moments {
        let stride = samples.len().div_ceil(MAX_SAMPLES).max(1);
        let mut xs: Vec<f64> = samples.iter().step_by(stride).map(|&x| x as f64).collect();
        xs.sort_by(f64::total_cmp);
        let prefix = |g: &dyn Fn(f64) -> f64| {
            let mut p = Vec::with_capacity(xs.len() + 1);
            p.push(0.0);
            for &x in &xs {
                p.push(p[p.len() - 1] + g(x));
            }
            p
        };
        let pow = (0..=2 * degree)
            .map(|k| prefix(&|x| x.powi(k as i32)))
            .collect();
        let pow_f = (0..=degree)
            .map(|k| prefix(&|x| x.powi(k as i32) * f(x)))
            .collect();
        let f2 = prefix(&|x| f(x).powi(2));
        let id_err = prefix(&|x| (x - f(x)).powi(2));
        Moments {
            xs,
            degree,
            pow,
            pow_f,
            f2,
            id_err,
        }
    }

    /// Index of the first sample ≥ t.
    fn index(&self, t: f64) -> usize {
        self.xs.partition_point(|&x| x < t)
    }

    /// Least-squares polynomial on samples `lo..hi` and its squared error; None if too few.
    fn fit(&self, lo: usize, hi: usize) -> Option<(Vec<f64>, f64)> {
        let m = self.degree + 1;
        if hi < lo + 4 * m {
            return None;
        }
        let s = |p: &Vec<f64>| p[hi] - p[lo];
        let mut a: Vec<f64> = (0..m * m).map(|i| s(&self.pow[i / m + i % m])).collect();
        let gram = a.clone();
        let b: Vec<f64> = (0..m).map(|k| s(&self.pow_f[k])).collect();
        let ridge = 1e-12 * (0..m).map(|i| a[i * m + i]).sum::<f64>();
        (0..m).for_each(|i| a[i * m + i] += ridge);
        let c = cholesky_solve(&mut a, &b, m).ok()?;
        let quad: f64 = (0..m)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| c[i] * gram[i * m + j] * c[j])
            .sum();
        let cb: f64 = c.iter().zip(&b).map(|(x, y)| x * y).sum();
        Some((c, (s(&self.f2) - 2.0 * cb + quad).max(0.0)))
    }
}

fn grid(lo: f64, hi: f64) -> impl Iterator<Item = f64> + Clone {
    let n = ((hi - lo) / GRID_STEP).round() as usize;
    (0..=n).map(move |i| lo + i as f64 * GRID_STEP)
}

/// Rounds coefficients to what the evaluation format holds (leading at f bits, others at 2f).
fn round_coeffs(c: &[f64], format: FixedPoint) -> Vec<f64> {
    let f = format.frac_bits() as f64;
    let d = c.len() - 1;
    c.iter()
        .enumerate()
        .map(|(k, &v)| {
            let s = if k == d { f.exp2() } else { (2.0 * f).exp2() };
            (v * s).round() / s
        })
        .collect()
}

/// Fits GELU on calibration inputs: {0; quadratic on [T1, T2); x}.
pub fn fit_gelu(samples: &[f32], format: FixedPoint) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, 2, gelu_f64);
    let n = m.xs.len();
    let mut best: Option<(f64, f64, f64, Vec<f64>)> = None;
    for t1 in grid(-4.0, -1.0) {
        let lo = m.index(t1);
        for t2 in grid(-0.5, 3.0) {
            let hi = m.index(t2);
            let Some((c, sse)) = m.fit(lo, hi) else {
                continue;
            };
            let err = m.f2[lo] + sse + (m.id_err[n] - m.id_err[hi]);
            if best.as_ref().is_none_or(|b| err < b.0) {
                best = Some((err, t1, t2, c));
            }
        }
    }
    let (_, t1, t2, c) = best.ok_or_else(|| {
        Error::InvalidArgument(format!("{n} GELU calibration inputs are too few to fit"))
    })?;
    Ok(PiecewisePoly {
        breakpoints: vec![t1, t2],
        pieces: vec![
            Piece::Zero,
            Piece::Poly(round_coeffs(&c, format)),
            Piece::Identity,
        ],
    })
}

/// Fits exp on calibration inputs (≤ 0): {0; cubic on [T, 0]}.
pub fn fit_exp(samples: &[f32], format: FixedPoint) -> Result<PiecewisePoly> {
    let m = Moments::new(samples, 3, f64::exp);
    let n = m.xs.len();
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for t in grid(-8.0, -1.0) {
        let lo = m.index(t);
        let Some((c, sse)) = m.fit(lo, n) else {
            continue;
        };
        let err = m.f2[lo] + sse;
        if best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, t, c));
        }
    }
    let (_, t, c) = best.ok_or_else(|| {
        Error::InvalidArgument(format!("{n} exp calibration inputs are too few to fit"))
    })?;
    Ok(PiecewisePoly {
        breakpoints: vec![t],
        pieces: vec![Piece::Zero, Piece::Poly(round_coeffs(&c, format))],
    })
}

/// RMSE and largest error of `pw` against `f` on the samples.
fn report(
    layer: usize,
    function: &str,
    pw: &PiecewisePoly,
    samples: &[f32],
    f: fn(f64) -> f64,
) -> FitReport {
    let (mut sq, mut max) = (0.0, 0.0f64);
    for &x in samples {
        let e = (pw.eval_f64(x as f64) - f(x as f64)).abs();
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

/// Fits every layer's GELU and exp from `calibration` into a Nimbus tables file.
pub fn fit_nimbus(calibration: &Calibration, model: &str, description: &str) -> Result<TablesFile> {
    let format = ApproxSet::nimbus().format;
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for (l, (g, e)) in calibration.gelu.iter().zip(&calibration.exp).enumerate() {
        let gelu = fit_gelu(g, format)?;
        let exp = fit_exp(e, format)?;
        errors.push(report(l, "gelu", &gelu, g, gelu_f64));
        errors.push(report(l, "exp", &exp, e, f64::exp));
        layers.push(LayerTables {
            gelu,
            exp: ExpMethod::Piecewise(exp),
        });
    }
    let set = ApproxSet {
        name: "nimbus".into(),
        format,
        layers,
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
        let format = ApproxSet::nimbus().format;
        let xs = normal_samples(20_000, -1.0, 1.2);
        let fitted = fit_gelu(&xs, format).unwrap();
        let start = ApproxSet::nimbus().layers[0].gelu.clone();
        let r_fit = report(0, "gelu", &fitted, &xs, gelu_f64);
        let r_start = report(0, "gelu", &start, &xs, gelu_f64);
        assert!(r_fit.rmse < r_start.rmse, "{r_fit:?} vs {r_start:?}");
        assert!(r_fit.rmse < 0.035, "{r_fit:?}");
        fitted.validate(format).unwrap();
        let b = &fitted.breakpoints;
        assert!(b[0] < b[1] && (b[0] * 32.0).fract() == 0.0, "{b:?}");
    }

    #[test]
    fn exp_fit_is_accurate_and_too_few_samples_are_an_error() {
        let format = ApproxSet::nimbus().format;
        let xs: Vec<f32> = normal_samples(20_000, 0.0, 2.0)
            .iter()
            .map(|x| -x.abs())
            .collect();
        let fitted = fit_exp(&xs, format).unwrap();
        let r = report(0, "exp", &fitted, &xs, f64::exp);
        assert!(r.rmse < 0.01 && r.max_error < 0.06, "{r:?}");
        assert!(fit_exp(&[-1.0, -0.5], format).is_err());
    }
}
