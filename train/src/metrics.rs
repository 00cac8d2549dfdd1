//! Test metrics of a model: accuracy, balanced accuracy, AUC, log-loss.
use crate::config::RawModel;
use crate::data::Sample;

/// Accuracy, balanced accuracy (mean of the two classes' recalls, threshold 1/2) and ROC AUC.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Fraction of rows classified right.
    pub accuracy: f64,
    /// Mean of the recalls of the two classes.
    pub balanced_accuracy: f64,
    /// Area under the ROC curve (ties count one half).
    pub auc: f64,
}

/// The metrics of `model` on `rows` (both classes must occur).
pub fn evaluate(model: &RawModel, rows: &[Sample]) -> Metrics {
    let p: Vec<f64> = rows.iter().map(|r| model.probability(&r.x)).collect();
    let mut right = [0usize; 2];
    let mut total = [0usize; 2];
    for (r, &p) in rows.iter().zip(&p) {
        let c = r.label as usize;
        total[c] += 1;
        right[c] += ((p >= 0.5) == r.label) as usize;
    }
    let recall = |c: usize| right[c] as f64 / total[c].max(1) as f64;
    // AUC: the fraction of (positive, negative) pairs ordered right, ties one half.
    let scores = |label: bool| -> Vec<f64> {
        rows.iter()
            .zip(&p)
            .filter(|(r, _)| r.label == label)
            .map(|(_, &q)| q)
            .collect()
    };
    let (pos, neg) = (scores(true), scores(false));
    let pairs: f64 = pos
        .iter()
        .flat_map(|&a| neg.iter().map(move |&b| a - b))
        .map(|d| {
            if d > 0.0 {
                1.0
            } else if d == 0.0 {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    Metrics {
        accuracy: (right[0] + right[1]) as f64 / rows.len() as f64,
        balanced_accuracy: (recall(0) + recall(1)) / 2.0,
        auc: pairs / (total[0] * total[1]).max(1) as f64,
    }
}

/// Mean log-loss of `model` on `rows` (probabilities clamped to [1e-12, 1 − 1e-12]).
pub fn log_loss(model: &RawModel, rows: &[Sample]) -> f64 {
    rows.iter()
        .map(|r| {
            let p = model.probability(&r.x).clamp(1e-12, 1.0 - 1e-12);
            -(if r.label { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / rows.len() as f64
}
