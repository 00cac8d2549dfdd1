//! Labelled images in CSV: a header, then `split,label,v0,v1,…` per row, the values in the
//! model's input order (NCHW), scaled by the caller's factor.
use crate::{CnnError, Result};
use std::path::Path;

/// One row: its split (`train`, `test`, …), label and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The split column.
    pub split: String,
    /// The class.
    pub label: usize,
    /// The input values, already multiplied by the scale.
    pub values: Vec<f32>,
}

/// Reads the rows of `split` from `path`, each with exactly `inputs` values times `scale`.
pub fn load(path: &Path, split: &str, inputs: usize, scale: f32) -> Result<Vec<Sample>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CnnError::Io {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let err = |line: usize, reason: String| CnnError::Data {
        file: file.clone(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, h)| h).unwrap_or_default();
    if !header.starts_with("split,label") {
        return Err(err(1, "header must start with `split,label`".into()));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split(',');
        let row_split = cols.next().unwrap_or_default().trim();
        if row_split != split {
            continue;
        }
        let label = cols
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| err(i + 1, "label is not a class index".into()))?;
        let values = cols
            .map(|v| v.trim().parse::<f32>().map(|x| x * scale))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| err(i + 1, format!("value: {e}")))?;
        if values.len() != inputs {
            return Err(err(
                i + 1,
                format!("{} values, the model takes {inputs}", values.len()),
            ));
        }
        out.push(Sample {
            split: row_split.into(),
            label,
            values,
        });
    }
    Ok(out)
}
