//! The f64 reference: the same batches, learning rate and class weights, with exact
//! standardisation (population variance), exact class weights and the exact sigmoid, so that
//! the gap between it and the twin is the fixed point's and the approximation's.
use crate::config::{ClassWeight, RawModel, TrainConfig};
use crate::data::Sample;
use nn::sigmoid::sigmoid_exact;

/// The raw-feature model after each epoch (the last one is the result).
pub fn train_float(rows: &[Sample], cfg: &TrainConfig) -> Vec<RawModel> {
    let (n, d) = (rows.len(), rows[0].x.len());
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r.x[j]).sum::<f64>() / n as f64)
        .collect();
    let inv_std: Vec<f64> = (0..d)
        .map(|j| {
            let var = rows.iter().map(|r| (r.x[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
            1.0 / (var + (-20f64).exp2()).sqrt()
        })
        .collect();
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| (0..d).map(|j| (r.x[j] - mean[j]) * inv_std[j]).collect())
        .collect();
    let positives = rows.iter().filter(|r| r.label).count() as f64;
    let cw = |label: bool| match cfg.class_weight {
        ClassWeight::None => 1.0,
        ClassWeight::Balanced => {
            n as f64
                / (2.0
                    * if label {
                        positives
                    } else {
                        n as f64 - positives
                    })
        }
    };
    let step = cfg.lr / cfg.batch as f64;
    let (mut bias, mut w) = (0.0, vec![0.0; d]);
    let mut models = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        for batch in cfg.batches(n, epoch) {
            let (mut gb, mut gw) = (0.0, vec![0.0; d]);
            for &i in &batch {
                let u = bias + w.iter().zip(&z[i]).map(|(a, b)| a * b).sum::<f64>();
                let r = cw(rows[i].label) * (sigmoid_exact(u) - rows[i].label as u8 as f64);
                gb += r;
                gw.iter_mut().zip(&z[i]).for_each(|(g, x)| *g += r * x);
            }
            bias -= step * gb;
            w.iter_mut().zip(&gw).for_each(|(w, g)| *w -= step * g);
        }
        let weights: Vec<f64> = w.iter().zip(&inv_std).map(|(w, s)| w * s).collect();
        let shift: f64 = weights.iter().zip(&mean).map(|(v, m)| v * m).sum();
        models.push(RawModel {
            bias: bias - shift,
            weights,
        });
    }
    models
}
