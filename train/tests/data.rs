//! Bad training files give a clear error naming the line; good ones load.
use train::data::{DataError, Dataset};

const HEADER: &str = "split,label,a,b";

fn parse(body: &str) -> Result<Dataset, DataError> {
    Dataset::parse(&format!("{HEADER}\n{body}"))
}

const GOOD: &str = "train,1,1.0,2.0\ntrain,0,0.5,-1.0\ntest,1,0.3,0.2\n";

#[test]
fn a_good_file_loads_in_any_column_order() {
    let d = parse(GOOD).unwrap();
    assert_eq!((d.train.len(), d.test.len(), d.features.len()), (2, 1, 2));
    assert_eq!(d.train[1].x, vec![0.5, -1.0]);
    assert_eq!(d.train[1].line, 3);
    let swapped =
        Dataset::parse("a,label,b,split\n1.0,1,2.0,train\n0.5,0,-1.0,train\n0.3,1,0.2,test\n")
            .unwrap();
    assert_eq!(swapped.train, d.train);
    assert_eq!(swapped.features, vec!["a", "b"]);
}

#[test]
fn missing_columns_are_named() {
    let e = Dataset::parse("label,a\n1,2.0\n").unwrap_err();
    assert!(
        matches!(e, DataError::MissingColumn { column: "split" }),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "line 1: missing column `split` in the header"
    );
    let e = Dataset::parse("split,a\ntrain,2.0\n").unwrap_err();
    assert!(
        matches!(e, DataError::MissingColumn { column: "label" }),
        "{e}"
    );
    let e = Dataset::parse("").unwrap_err();
    assert!(matches!(e, DataError::MissingColumn { .. }), "{e}");
    let e = Dataset::parse("split,label\ntrain,1\n").unwrap_err();
    assert!(matches!(e, DataError::BadHeader { .. }), "{e}");
    let e = Dataset::parse("split,label,a,a\ntrain,1,1,1\n").unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
}

#[test]
fn non_numeric_values_name_line_and_column() {
    let e = parse("train,1,1.0,2.0\ntrain,0,abc,-1.0\ntest,1,0.3,0.2\n").unwrap_err();
    match &e {
        DataError::BadValue {
            line,
            column,
            value,
            ..
        } => {
            assert_eq!((*line, column.as_str(), value.as_str()), (3, "a", "abc"));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().starts_with("line 3, column `a`"), "{e}");
    for bad in ["NaN", "inf", "", "1e9", "-6000"] {
        let e = parse(&format!(
            "train,1,1.0,2.0\ntrain,0,0.5,{bad}\ntest,1,0.3,0.2\n"
        ))
        .unwrap_err();
        assert!(
            matches!(e, DataError::BadValue { line: 3, .. }),
            "{bad}: {e}"
        );
    }
    let e = parse("train,2,1.0,2.0\n").unwrap_err();
    assert!(
        matches!(e, DataError::BadValue { line: 2, .. }) && e.to_string().contains("0 or 1"),
        "{e}"
    );
    let e = parse("valid,1,1.0,2.0\n").unwrap_err();
    assert!(e.to_string().contains("`train` or `test`"), "{e}");
    let e = parse("train,1,1.0\n").unwrap_err();
    assert!(
        matches!(
            e,
            DataError::FieldCount {
                line: 2,
                found: 3,
                expected: 4
            }
        ),
        "{e}"
    );
}

#[test]
fn one_class_and_empty_splits_are_refused() {
    let e = parse("train,1,1.0,2.0\ntrain,1,0.5,-1.0\ntest,0,0.3,0.2\n").unwrap_err();
    assert!(
        matches!(
            e,
            DataError::OneClass {
                label: 1,
                last_line: 4
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("label 1"), "{e}");
    let e = parse("test,1,1.0,2.0\ntest,0,0.5,-1.0\n").unwrap_err();
    assert!(
        matches!(e, DataError::EmptySplit { split: "train", .. }),
        "{e}"
    );
    let e = parse("train,1,1.0,2.0\ntrain,0,0.5,-1.0\n\n").unwrap_err();
    assert!(
        matches!(
            e,
            DataError::EmptySplit {
                split: "test",
                last_line: 4
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("no `test` row"), "{e}");
}

#[test]
fn a_missing_file_is_an_error() {
    let e = Dataset::load(std::path::Path::new("/nonexistent/x.csv")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
}

#[test]
fn subsampling_keeps_one_minority_row_in_nine() {
    let mut body = String::new();
    for i in 0..90 {
        body += &format!("train,{},{}.0,1.0\n", (i % 3 == 0) as u8, i);
    }
    body += "test,1,0.0,0.0\ntest,0,0.0,0.0\n";
    let d = parse(&body).unwrap();
    let thin = d.subsample_minority(9, 7);
    let pos = thin.train.iter().filter(|s| s.label).count();
    let neg = thin.train.iter().filter(|s| !s.label).count();
    assert_eq!((pos, neg), (60 / 8, 60));
    assert_eq!(thin.test.len(), 2);
    assert_eq!(d.subsample_minority(9, 7), thin, "seeded");
}

#[test]
fn metrics_on_a_known_ranking() {
    use train::config::RawModel;
    use train::metrics::evaluate;
    // P(y = 1 | x) = σ(x): scores 0.9, 0.2 (positives) and 0.5, 0.1 (negatives) in logit form.
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let rows: Vec<_> = [(0.9, true), (0.2, true), (0.5, false), (0.1, false)]
        .iter()
        .enumerate()
        .map(|(i, &(p, label))| train::data::Sample {
            x: vec![logit(p)],
            label,
            line: i + 2,
        })
        .collect();
    let m = evaluate(
        &RawModel {
            bias: 0.0,
            weights: vec![1.0],
        },
        &rows,
    );
    // Pairs: (0.9 > 0.5, 0.9 > 0.1, 0.2 < 0.5, 0.2 > 0.1) → 3/4; predictions ≥ 1/2: 0.9, 0.5.
    assert!((m.auc - 0.75).abs() < 1e-12, "{m:?}");
    assert!((m.accuracy - 0.5).abs() < 1e-12, "{m:?}");
    assert!((m.balanced_accuracy - 0.5).abs() < 1e-12, "{m:?}");
}
