//! The decoder's approximation set: SiLU fitted per layer on calibration prompts (as
//! `bert::fit` fits GELU) under PUMA's Z_2^64 / 18-bit plan, exp by `nn::exp_table`'s
//! piecewise cubic (16 rounds per Softmax instead of the 39 of PUMA's eight squarings, and
//! 15× more accurate).
//!
//! Fit: the float model runs the calibration prompts with its trace on, which records every
//! gate pre-activation entering SiLU, per layer. For each layer, every candidate interval ±T
//! ([`BOUNDS`]) gets `nn::silu`'s degree-6 least-squares polynomial (0 below −T, x from T);
//! the layer keeps the T whose table has the smallest mean squared error over that layer's
//! observed inputs. A layer whose gates reach far needs a wide interval (its tails matter), a
//! layer whose gates stay within ±4 a narrow one (better in the middle).
//!
//! The set's per-layer `gelu` slot holds the FFN activation, SiLU here.
use crate::{render_chat, FloatModel, LlamaError, Model};
use mpc_core::{Error, Result};
use nn::exp_table::{exp_plan, exp_table};
use nn::norm::{prescaled_rms_limit, MAX_PRESCALE};
use nn::silu::{silu_default, silu_exact, silu_fit, silu_plan, silu_table};
use ot_nonlinear::approx::tables::FitReport;
use ot_nonlinear::approx::{ApproxSet, ExpMethod, LayerTables, PiecewisePoly, SetPlan};

/// Candidate half-widths of the polynomial piece: the plan's degree-6 powers fit Z_2^46 only
/// for |x| < 10 (`PiecewisePlan::validate`), hence no wider candidate.
pub const BOUNDS: [f64; 7] = [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

/// Degree of the polynomial piece (the plan's highest).
pub const DEGREE: usize = 6;

/// The public power-of-two prescales of the RMSNorms ([`nn::norm::normalize_prescaled`]), each
/// a pair: [position 0, every later position]. A decoder's residual stream has a small rms in
/// its first blocks (SmolLM2's embeddings: ≈ 0.1), where the variance's truncation carries
/// would be tens of percent of the variance (shift up), and a huge one at its first position
/// from the middle blocks on (the "attention sink": SmolLM2's reaches rms ≈ 1000 from block
/// 12), which would overflow the reciprocal square root (shift down).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NormShifts {
    /// Per block, before attention.
    pub attention: Vec<[i32; 2]>,
    /// Per block, before the feed-forward.
    pub ffn: Vec<[i32; 2]>,
    /// The final norm.
    pub output: [i32; 2],
}

impl NormShifts {
    /// No prescaling.
    pub fn none(n_layers: usize) -> NormShifts {
        NormShifts {
            attention: vec![[0; 2]; n_layers],
            ffn: vec![[0; 2]; n_layers],
            output: [0; 2],
        }
    }

    /// The shift for rows of width `n` whose largest observed mean square is `max_mean_sq`:
    /// down when the rms exceeds half the limit ([`prescaled_rms_limit`]), to a quarter of it;
    /// up when it is below an eighth, to an eighth; else none (a truncation saved).
    pub fn for_rows(n: usize, max_mean_sq: f64) -> i32 {
        if !(max_mean_sq.is_finite() && max_mean_sq > 0.0) {
            return 0;
        }
        let (rms, limit) = (max_mean_sq.sqrt(), prescaled_rms_limit(n));
        let s = if rms > limit / 2.0 {
            -(rms * 4.0 / limit).log2().ceil()
        } else if rms < limit / 8.0 {
            (limit / 8.0 / rms).log2().floor()
        } else {
            0.0
        };
        s.clamp(-f64::from(MAX_PRESCALE), f64::from(MAX_PRESCALE)) as i32
    }

    /// The shifts of `rows` rows after `past` positions under the pair `pair`.
    pub fn rows(pair: [i32; 2], rows: usize, past: usize) -> Vec<i32> {
        (past..past + rows)
            .map(|p| if p == 0 { pair[0] } else { pair[1] })
            .collect()
    }

    /// Checks the lengths and the range.
    pub fn check(&self, n_layers: usize) -> Result<()> {
        if self.attention.len() != n_layers || self.ffn.len() != n_layers {
            return Err(Error::shape(
                "attention and feed-forward norm shifts (one per block each)",
                [self.attention.len(), self.ffn.len()],
                [n_layers, n_layers],
            ));
        }
        let all = self.attention.iter().chain(&self.ffn).chain([&self.output]);
        if let Some(s) = all.flatten().find(|s| s.abs() > MAX_PRESCALE) {
            return Err(Error::InvalidArgument(format!(
                "norm shift {s} (within ±{MAX_PRESCALE})"
            )));
        }
        Ok(())
    }
}

/// The set: `silu` per layer (one entry per layer), or the default SiLU table everywhere.
pub fn llama_set(silu: Option<Vec<PiecewisePoly>>, n_layers: usize) -> Result<ApproxSet> {
    let tables = match silu {
        Some(t) => t,
        None => vec![silu_default()?],
    };
    let exp = exp_table()?;
    let set = ApproxSet {
        name: "llama-silu".into(),
        format: mpc_core::FixedPoint::LINEAR,
        layers: tables
            .into_iter()
            .map(|gelu| LayerTables {
                gelu,
                exp: ExpMethod::Piecewise(exp.clone()),
            })
            .collect(),
        plan: SetPlan {
            gelu: silu_plan(),
            exp: exp_plan(),
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
    let candidates = BOUNDS
        .iter()
        .flat_map(|&bound| [silu_table(DEGREE, bound), silu_fit(DEGREE, bound, samples)]);
    for table in candidates {
        let table = table?;
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

/// The server's calibration texts: generic English (never a client's prompt), each used plain
/// and, when the model has a chat template, as a user turn.
pub const CALIBRATION_TEXTS: [&str; 4] = [
    "The history of science is the study of how people came to understand the natural world, \
     from early astronomy and medicine to modern physics, chemistry and biology.",
    "Write a short poem about the sea at night, with the moon on the water.",
    "How do I bake bread at home? List the ingredients and the steps.",
    "In 1969, two astronauts walked on the Moon while a third orbited above; the mission \
     lasted eight days and returned 21.5 kg of samples.",
];

/// [`CALIBRATION_TEXTS`] as token ids (plain, then through the chat template if any).
pub fn calibration_prompts(model: &Model) -> std::result::Result<Vec<Vec<u32>>, LlamaError> {
    let mut out = Vec::new();
    for text in CALIBRATION_TEXTS {
        out.push(model.tokenizer.encode(text)?);
        if let Some(template) = &model.chat_template {
            let rendered = render_chat(template, text, &model.tokenizer)?;
            out.push(model.tokenizer.encode(&rendered)?);
        }
    }
    let context = model.config.context;
    out.iter_mut().for_each(|ids| ids.truncate(context));
    Ok(out)
}

/// Runs `prompts` (token ids) through the float model with its trace, fits SiLU per layer and
/// picks the norms' prescales from the largest mean squares seen.
pub fn calibrate(
    model: &Model,
    prompts: &[Vec<u32>],
) -> Result<(ApproxSet, NormShifts, Vec<FitReport>)> {
    let n = model.config.n_layers;
    let d = model.config.hidden;
    let mut gates: Vec<Vec<f32>> = vec![Vec::new(); n];
    // [attention, ffn] × [position 0, later positions]; the output norm's pair.
    let mut peaks = vec![[[0f64; 2]; 2]; n];
    let mut output_peak = [0f64; 2];
    let peak = |v: &[f32]| -> [f64; 2] {
        let at = |s: &[f32]| s.iter().fold(0f64, |a, &x| a.max(f64::from(x)));
        [at(&v[..v.len().min(1)]), at(&v[v.len().min(1)..])]
    };
    let max2 = |a: [f64; 2], b: [f64; 2]| [a[0].max(b[0]), a[1].max(b[1])];
    for ids in prompts {
        let mut fm = FloatModel::new(model).with_trace();
        fm.prefill(ids)
            .map_err(|e| Error::InvalidArgument(format!("calibration prompt: {e}")))?;
        let trace = fm
            .take_trace()
            .ok_or_else(|| Error::InvalidArgument("the float model kept no trace".into()))?;
        for (l, t) in trace.per_layer.iter().enumerate() {
            gates[l].extend_from_slice(&t.gate_pre);
            peaks[l][0] = max2(peaks[l][0], peak(&t.attn_norm_mean_sq));
            peaks[l][1] = max2(peaks[l][1], peak(&t.ffn_norm_mean_sq));
        }
        output_peak = max2(output_peak, peak(&trace.output_norm_mean_sq));
    }
    let pair = |p: [f64; 2]| p.map(|m| NormShifts::for_rows(d, m));
    let shifts = NormShifts {
        attention: peaks.iter().map(|p| pair(p[0])).collect(),
        ffn: peaks.iter().map(|p| pair(p[1])).collect(),
        output: pair(output_peak),
    };
    let mut tables = Vec::with_capacity(n);
    let mut reports = Vec::with_capacity(n);
    for (l, g) in gates.iter().enumerate() {
        let (t, r) = fit_silu(l, g)?;
        tables.push(t);
        reports.push(r);
    }
    Ok((llama_set(Some(tables), n)?, shifts, reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_bound_fits_the_plan() {
        for b in BOUNDS {
            silu_table(DEGREE, b).unwrap_or_else(|e| panic!("bound {b}: {e}"));
        }
    }

    #[test]
    fn the_fit_prefers_a_narrow_interval_for_narrow_inputs_and_refuses_none() {
        let narrow: Vec<f32> = (0..2000).map(|i| -3.0 + 6.0 * i as f32 / 2000.0).collect();
        let (table, report) = fit_silu(0, &narrow).unwrap();
        assert_eq!(table.breakpoints, vec![-4.0, 4.0]);
        assert!(report.max_error < 0.1, "{report:?}");
        assert!(fit_silu(3, &[]).is_err());
    }
}
