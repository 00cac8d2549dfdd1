//! The training file: CSV with a header, a `split` column (`train`/`test`), a `label` column
//! (0/1) and numeric features, in any column order. Every problem is a [`DataError`] naming the
//! line (1-based, the header is line 1) and the column.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Largest |feature value| accepted (below 2^12.5): x² and μ² at 36 fraction bits stay below
/// 2^61 in the secure run's ring, and the variance below 2^25 (the coarse rsqrt's range).
pub const MAX_ABS_FEATURE: f64 = 5792.0;

/// A row of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Feature values, in the header's order.
    pub x: Vec<f64>,
    /// The label (1 = positive).
    pub label: bool,
    /// Line in the file (1-based), for messages.
    pub line: usize,
}

/// The loaded file: the features' names and the train and test rows, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Feature names.
    pub features: Vec<String>,
    /// Rows marked `train`.
    pub train: Vec<Sample>,
    /// Rows marked `test`.
    pub test: Vec<Sample>,
}

/// What is wrong with a training file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The header lacks a required column.
    #[error("line 1: missing column `{column}` in the header")]
    MissingColumn {
        /// `split` or `label`.
        column: &'static str,
    },
    /// The header has no feature column, or a column twice.
    #[error("line 1: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// A row with the wrong number of fields.
    #[error("line {line}: {found} fields, the header has {expected}")]
    FieldCount {
        /// Line (1-based).
        line: usize,
        /// Fields found.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// A field that is not what its column needs.
    #[error("line {line}, column `{column}`: {value:?} is not {expected}")]
    BadValue {
        /// Line (1-based).
        line: usize,
        /// Column name.
        column: String,
        /// The field as found.
        value: String,
        /// What the column accepts.
        expected: &'static str,
    },
    /// A split with no row.
    #[error("no `{split}` row in the file (last line {last_line})")]
    EmptySplit {
        /// `train` or `test`.
        split: &'static str,
        /// The file's last line.
        last_line: usize,
    },
    /// Training rows of one class only.
    #[error(
        "every `train` row has label {label} (lines 2..={last_line}); training needs both classes"
    )]
    OneClass {
        /// The only label.
        label: u8,
        /// The file's last line.
        last_line: usize,
    },
}

impl Dataset {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Dataset, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Dataset::parse(&text)
    }

    /// Parses and checks the text of a file.
    pub fn parse(text: &str) -> Result<Dataset, DataError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let header: Vec<String> = match lines.next() {
            Some((_, h)) => h.split(',').map(|s| s.trim().to_string()).collect(),
            None => return Err(DataError::MissingColumn { column: "split" }),
        };
        let find = |column: &'static str| {
            header
                .iter()
                .position(|h| h == column)
                .ok_or(DataError::MissingColumn { column })
        };
        let (split_col, label_col) = (find("split")?, find("label")?);
        let feature_cols: Vec<usize> = (0..header.len())
            .filter(|&c| c != split_col && c != label_col)
            .collect();
        if feature_cols.is_empty() {
            return Err(DataError::BadHeader {
                reason: "no feature column".into(),
            });
        }
        if let Some(c) = (0..header.len()).find(|&c| header[..c].contains(&header[c])) {
            return Err(DataError::BadHeader {
                reason: format!("column `{}` appears twice", header[c]),
            });
        }
        let mut data = Dataset {
            features: feature_cols.iter().map(|&c| header[c].clone()).collect(),
            train: Vec::new(),
            test: Vec::new(),
        };
        let mut last_line = 1;
        for (line, text) in lines {
            last_line = line;
            if text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(DataError::FieldCount {
                    line,
                    found: fields.len(),
                    expected: header.len(),
                });
            }
            let bad = |c: usize, expected| DataError::BadValue {
                line,
                column: header[c].clone(),
                value: fields[c].to_string(),
                expected,
            };
            let label = match fields[label_col] {
                "0" => false,
                "1" => true,
                _ => return Err(bad(label_col, "0 or 1")),
            };
            let x = feature_cols
                .iter()
                .map(|&c| match fields[c].parse::<f64>() {
                    Ok(v) if v.is_finite() && v.abs() < MAX_ABS_FEATURE => Ok(v),
                    _ => Err(bad(c, "a finite number of magnitude below 5792")),
                })
                .collect::<Result<Vec<f64>, _>>()?;
            let sample = Sample { x, label, line };
            match fields[split_col] {
                "train" => data.train.push(sample),
                "test" => data.test.push(sample),
                _ => return Err(bad(split_col, "`train` or `test`")),
            }
        }
        for (rows, split) in [(&data.train, "train"), (&data.test, "test")] {
            if rows.is_empty() {
                return Err(DataError::EmptySplit { split, last_line });
            }
        }
        let positives = data.train.iter().filter(|s| s.label).count();
        if positives == 0 || positives == data.train.len() {
            return Err(DataError::OneClass {
                label: (positives > 0) as u8,
                last_line,
            });
        }
        Ok(data)
    }

    /// The imbalanced variant: in each split, keeps every row of the majority class and a
    /// seeded random subset of the minority class (the class with fewer training rows) so that
    /// it makes about 1 row in `one_in` (at least one row per split).
    pub fn subsample_minority(&self, one_in: usize, seed: u64) -> Dataset {
        let positives = self.train.iter().filter(|s| s.label).count();
        let minority = 2 * positives < self.train.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut thin = |rows: &[Sample]| -> Vec<Sample> {
            let majority = rows.iter().filter(|s| s.label != minority).count();
            let keep = (majority / (one_in.max(2) - 1)).max(1);
            let mut idx: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].label == minority)
                .collect();
            idx.shuffle(&mut rng);
            idx.truncate(keep);
            idx.sort_unstable();
            let mut keep_row = vec![false; rows.len()];
            for i in idx {
                keep_row[i] = true;
            }
            rows.iter()
                .zip(&keep_row)
                .filter(|(s, &k)| s.label != minority || k)
                .map(|(s, _)| s.clone())
                .collect()
        };
        Dataset {
            features: self.features.clone(),
            train: thin(&self.train),
            test: thin(&self.test),
        }
    }
}
