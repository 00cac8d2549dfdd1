//! The decoder's approximation set: SiLU fitted per layer on calibration prompts (as
//! `bert::fit` fits GELU), exp by PUMA's squarings, all under PUMA's Z_2^64 / 18-bit plans.
//!
//! Fit: the float model runs the calibration prompts with its trace on, which records every
//! gate pre-activation entering SiLU, per layer. For each layer, every candidate interval ±T
//! ([`BOUNDS`]) gets `nn::silu`'s degree-6 least-squares polynomial (0 below −T, x from T);
//! the layer keeps the T whose table has the smallest mean squared error over that layer's
//! observed inputs. A layer whose gates reach far needs a wide interval (its tails matter), a
//! layer whose gates stay within ±4 a narrow one (better in the middle).
//!
//! The set's per-layer `gelu` slot holds the FFN activation, SiLU here.
use crate::{FloatModel, Model};
use mpc_core::{Error, Result};
use nn::silu::{silu_default, silu_exact, silu_plan, silu_table};
use ot_nonlinear::approx::tables::FitReport;
use ot_nonlinear::approx::{ApproxSet, ExpMethod, LayerTables, PiecewisePoly, SetPlan};

/// Candidate half-widths of the polynomial piece.
pub const BOUNDS: [f64; 7] = [4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0];

/// Degree of the polynomial piece (the plan's highest).
pub const DEGREE: usize = 6;

/// The set: `silu` per layer (one entry per layer), or the default SiLU table everywhere.
pub fn llama_set(silu: Option<Vec<PiecewisePoly>>, n_layers: usize) -> Result<ApproxSet> {
    let tables = match silu {
        Some(t) => t,
        None => vec![silu_default()?],
    };
    let set = ApproxSet {
        name: "llama-silu".into(),
        format: mpc_core::FixedPoint::LINEAR,
        layers: tables
            .into_iter()
            .map(|gelu| LayerTables {
                gelu,
                exp: ExpMethod::Squaring { t: 8, lower: -14.0 },
            })
            .collect(),
        plan: SetPlan {
            gelu: silu_plan(),
            ..SetPlan::puma()
        },
    };
    set.validate(n_layers)?;
    Ok(set)
}

/// The best table over `samples` (see the module doc) and its report.
pub fn fit_silu(layer: usize, samples: &[f32]) -> Result<(PiecewisePoly, FitReport)> {
    if samples.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no SiLU input observed in layer {layer}"
        )));
    }
    let mut best: Option<(f64, PiecewisePoly, f64)> = None;
    for &bound in &BOUNDS {
        let table = silu_table(DEGREE, bound)?;
        let (mut se, mut worst) = (0.0, 0.0f64);
        for &x in samples {
            let x = f64::from(x);
            let e = (table.eval_f64(x) - silu_exact(x)).abs();
            se += e * e;
            worst = worst.max(e);
        }
        let mse = se / samples.len() as f64;
        if best.as_ref().is_none_or(|b| mse < b.0) {
            best = Some((mse, table, worst));
        }
    }
    let (mse, table, worst) = best.expect("at least one bound");
    Ok((
        table,
        FitReport {
            layer,
            function: "silu".into(),
            samples: samples.len(),
            rmse: mse.sqrt(),
            max_error: worst,
        },
    ))
}

/// Runs `prompts` (token ids) through the float model with its trace and fits SiLU per layer.
pub fn calibrate(model: &Model, prompts: &[Vec<u32>]) -> Result<(ApproxSet, Vec<FitReport>)> {
    let n = model.config.n_layers;
    let mut gates: Vec<Vec<f32>> = vec![Vec::new(); n];
    for ids in prompts {
        let mut fm = FloatModel::new(model).with_trace();
        fm.prefill(ids)
            .map_err(|e| Error::InvalidArgument(format!("calibration prompt: {e}")))?;
        let trace = fm
            .take_trace()
            .ok_or_else(|| Error::InvalidArgument("the float model kept no trace".into()))?;
        for (l, t) in trace.per_layer.iter().enumerate() {
            gates[l].extend_from_slice(&t.gate_pre);
        }
    }
    let mut tables = Vec::with_capacity(n);
    let mut reports = Vec::with_capacity(n);
    for (l, g) in gates.iter().enumerate() {
        let (t, r) = fit_silu(l, g)?;
        tables.push(t);
        reports.push(r);
    }
    Ok((llama_set(Some(tables), n)?, reports))
}
