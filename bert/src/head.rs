//! The sentiment head: logistic regression on mean-pooled (not normalised) sentence embeddings.
//!
//! Training is deterministic full-batch Newton's method on the L2-regularised log-loss over
//! standardised features (scales floored at a tenth of the median, so no weight explodes); the
//! standardisation is folded back into the weights, so the saved head
//! is a plain affine map `logit = w · e + b` (a linear layer the secure run can evaluate).
use crate::linalg::cholesky_solve;
use mpc_core::{Error, Result};
use std::path::Path;

/// File format tag of a saved head.
const FORMAT: &str = "bert-logistic-head-v1";

/// A binary logistic-regression head.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogisticHead {
    /// Format tag, `bert-logistic-head-v1`.
    pub format: String,
    /// Weights, one per embedding dimension.
    pub weights: Vec<f64>,
    /// Bias.
    pub bias: f64,
    /// L2 strength used in training (on standardised features).
    pub l2: f64,
    /// Where the training data came from (free text, for provenance checks).
    pub trained_on: String,
}

impl LogisticHead {
    /// Trains on `features` (one embedding per example) and 0/1 `labels`.
    pub fn train(features: &[Vec<f32>], labels: &[u8], l2: f64, trained_on: &str) -> Result<Self> {
        let n = features.len();
        if n == 0 || n != labels.len() {
            return Err(Error::shape(
                "feature vectors (one per label, at least one)",
                n,
                labels.len(),
            ));
        }
        let d = features[0].len();
        if features.iter().any(|f| f.len() != d) {
            return Err(Error::shape(
                "feature vector lengths",
                "different lengths",
                format!("all {d}"),
            ));
        }
        let mean: Vec<f64> = (0..d)
            .map(|j| features.iter().map(|f| f[j] as f64).sum::<f64>() / n as f64)
            .collect();
        let mut std: Vec<f64> = (0..d)
            .map(|j| {
                let v = features
                    .iter()
                    .map(|f| (f[j] as f64 - mean[j]).powi(2))
                    .sum::<f64>();
                (v / n as f64).sqrt()
            })
            .collect();
        // A near-constant dimension would get a huge weight once unstandardised, and the head
        // would then amplify tiny fixed-point errors: floor the scale at a tenth of the median.
        let mut sorted = std.clone();
        sorted.sort_by(f64::total_cmp);
        let floor = (0.1 * sorted[d / 2]).max(1e-12);
        std.iter_mut().for_each(|s| *s = s.max(floor));
        // Standardised design matrix with a trailing 1 for the bias.
        let x: Vec<Vec<f64>> = features
            .iter()
            .map(|f| {
                let mut row: Vec<f64> = (0..d).map(|j| (f[j] as f64 - mean[j]) / std[j]).collect();
                row.push(1.0);
                row
            })
            .collect();
        let m = d + 1;
        let mut theta = vec![0.0; m];
        for _ in 0..30 {
            let mut grad = vec![0.0; m];
            let mut hess = vec![0.0; m * m];
            for (row, &y) in x.iter().zip(labels) {
                let p = sigmoid(dot(row, &theta));
                let (g, h) = (p - y as f64, p * (1.0 - p));
                for i in 0..m {
                    grad[i] += g * row[i];
                    let hi = h * row[i];
                    for (hij, &xj) in hess[i * m..i * m + i + 1].iter_mut().zip(row) {
                        *hij += hi * xj;
                    }
                }
            }
            for i in 0..d {
                grad[i] += l2 * theta[i];
                hess[i * m + i] += l2;
            }
            hess[d * m + d] += 1e-9;
            let step = cholesky_solve(&mut hess, &grad, m)?;
            let size = step.iter().map(|s| s * s).sum::<f64>().sqrt();
            theta.iter_mut().zip(&step).for_each(|(t, s)| *t -= s);
            if size < 1e-10 {
                break;
            }
        }
        let weights: Vec<f64> = (0..d).map(|j| theta[j] / std[j]).collect();
        let bias = theta[d] - (0..d).map(|j| weights[j] * mean[j]).sum::<f64>();
        Ok(LogisticHead {
            format: FORMAT.into(),
            weights,
            bias,
            l2,
            trained_on: trained_on.into(),
        })
    }

    /// `w · e + b`.
    pub fn logit(&self, embedding: &[f64]) -> f64 {
        dot(&self.weights, embedding) + self.bias
    }

    /// The predicted label, `logit ≥ 0`.
    pub fn predict(&self, embedding: &[f64]) -> u8 {
        (self.logit(embedding) >= 0.0) as u8
    }

    /// Writes the head as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| Error::malformed("head", e.to_string(), "a serializable head"))?;
        mpc_core::error::write_file(path, text)
    }

    /// Reads a head written by [`LogisticHead::save`]; `dim` is the expected embedding size.
    pub fn load(path: &Path, dim: usize) -> Result<LogisticHead> {
        let text = mpc_core::error::read_file_text(path)?;
        let head: LogisticHead = serde_json::from_str(&text).map_err(|e| {
            Error::malformed(path.display().to_string(), e.to_string(), "a head file")
        })?;
        if head.format != FORMAT || head.weights.len() != dim {
            return Err(Error::ParamMismatch(format!(
                "{}: format `{}` with {} weights, expected `{FORMAT}` with {dim}",
                path.display(),
                head.format,
                head.weights.len()
            )));
        }
        Ok(head)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_linear_problem_and_round_trips() {
        // Label = [2·x0 − x1 + 0.5 > 0], with a redundant constant feature.
        let mut feats = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let (a, b) = ((i % 20) as f32 / 5.0 - 2.0, (i / 20) as f32 / 2.5 - 2.0);
            feats.push(vec![a, b, 3.0]);
            labels.push((2.0 * a - b + 0.5 > 0.0) as u8);
        }
        let head = LogisticHead::train(&feats, &labels, 1e-3, "toy").unwrap();
        let acc = feats
            .iter()
            .zip(&labels)
            .filter(|(f, &l)| head.predict(&f.iter().map(|&x| x as f64).collect::<Vec<_>>()) == l)
            .count();
        assert!(acc >= 198, "{acc}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        head.save(&path).unwrap();
        assert_eq!(LogisticHead::load(&path, 3).unwrap(), head);
        assert!(LogisticHead::load(&path, 4)
            .unwrap_err()
            .to_string()
            .contains("head.json"));
    }
}
