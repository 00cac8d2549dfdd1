//! Tests of the fits: better than the starting constants, more segments within the plan, exp and too few samples.
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
