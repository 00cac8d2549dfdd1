//! Labelled sentences from TSV files: a header line, then `label<TAB>…<TAB>text` (the label is
//! the first column, 0 or 1; the text is the last column).
use mpc_core::{Dims, Error, Result};
use std::path::Path;

/// One labelled sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// 0 (negative) or 1 (positive).
    pub label: u8,
    /// The sentence.
    pub text: String,
}

/// Reads a TSV file; errors name `file:line` and what is wrong.
pub fn read_tsv(path: &Path) -> Result<Vec<Example>> {
    let text = mpc_core::error::read_file_text(path)?;
    parse_tsv(&text, &path.display().to_string())
}

/// Parses TSV text; `name` is used in error messages.
pub fn parse_tsv(text: &str, name: &str) -> Result<Vec<Example>> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.contains('\t') => {}
        _ => {
            return Err(Error::malformed(
                format!("{name}:1"),
                "no header line",
                "a header line `label<TAB>…<TAB>text`",
            ))
        }
    }
    lines
        .map(|(i, line)| {
            let bad =
                |got: Dims, want: Dims| Error::malformed(format!("{name}:{}", i + 1), got, want);
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 2 {
                return Err(bad(
                    format!("{} tab-separated columns", cols.len()).into(),
                    "at least 2".into(),
                ));
            }
            let label = match cols[0].trim() {
                "0" => 0,
                "1" => 1,
                other => return Err(bad(format!("label `{other}`").into(), "0 or 1".into())),
            };
            let text = cols[cols.len() - 1].trim();
            if text.is_empty() {
                return Err(bad("an empty text".into(), "a text".into()));
            }
            Ok(Example {
                label,
                text: text.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_bad_lines() {
        let ok = parse_tsv(
            "label\trating\ttext\n1\t0.5\tgood\n0\t-1\tbad film\n",
            "f.tsv",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[1],
            Example {
                label: 0,
                text: "bad film".into()
            }
        );
        let err = |t: &str| parse_tsv(t, "f.tsv").unwrap_err().to_string();
        assert!(
            err("h\tx\n1\t0.5\tok\n2\t0\tx\n").contains("f.tsv:3: got label `2`, expected 0 or 1")
        );
        assert!(err("h\tx\nno tabs here\n").contains("f.tsv:2: got 1 tab-separated columns"));
        assert!(err("h\tx\n1\t0.5\t \n").contains("f.tsv:2: got an empty text"));
        assert!(err("").contains("f.tsv:1: got no header line, expected a header"));
        let missing = read_tsv(Path::new("/nonexistent/x.tsv"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("/nonexistent/x.tsv"));
    }
}
