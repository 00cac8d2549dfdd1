//! Uncased BERT WordPiece tokenizer: a basic tokenizer (clean, lower-case, strip accents, split on
//! whitespace, punctuation and CJK characters) followed by greedy longest-match WordPiece.
//!
//! Accent stripping covers combining marks (U+0300–U+036F) and the precomposed Latin-1 letters
//! (U+00C0–U+00FF); other precomposed letters are kept as they are (no full Unicode NFD table).
//! Punctuation is ASCII punctuation plus the Unicode punctuation blocks (General Punctuation,
//! Supplemental Punctuation, CJK Symbols and Punctuation, Latin-1 punctuation signs).
use mpc_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Words longer than this (in characters) become `[UNK]`, as in BERT.
const MAX_WORD_CHARS: usize = 100;

/// An uncased WordPiece tokenizer over a fixed vocabulary.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    cls: u32,
    sep: u32,
    unk: u32,
}

impl Tokenizer {
    /// Builds the tokenizer from vocabulary lines (token `i` on line `i`); `[CLS]`, `[SEP]` and
    /// `[UNK]` must be present.
    pub fn from_vocab_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Tokenizer> {
        let vocab: HashMap<String, u32> = lines
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t.trim_end_matches('\r').to_string(), i as u32))
            .collect();
        let special = |t: &str| {
            vocab.get(t).copied().ok_or_else(|| {
                Error::malformed(
                    "vocabulary",
                    format!("no `{t}` token"),
                    format!("a `{t}` token"),
                )
            })
        };
        Ok(Tokenizer {
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            unk: special("[UNK]")?,
            vocab,
        })
    }

    /// Reads `vocab.txt` (one token per line).
    pub fn from_vocab_file(path: &Path) -> Result<Tokenizer> {
        let text = mpc_core::error::read_file_text(path)?;
        Tokenizer::from_vocab_lines(text.lines()).map_err(|e| e.context(path.display()))
    }

    /// Reads `vocab.txt` from a model directory.
    pub fn from_model_dir(dir: &Path) -> Result<Tokenizer> {
        Tokenizer::from_vocab_file(&dir.join("vocab.txt"))
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The id of `[UNK]`.
    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// Token ids of `text` as `[CLS] pieces… [SEP]`, no padding and no truncation.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.cls];
        for word in basic_tokenize(text) {
            self.wordpiece(&word, &mut ids);
        }
        ids.push(self.sep);
        ids
    }

    /// Greedy longest-match-first WordPiece of one word; `[UNK]` if any part has no match.
    fn wordpiece(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let found = (start + 1..=chars.len()).rev().find_map(|end| {
                let mut piece: String = chars[start..end].iter().collect();
                if start > 0 {
                    piece.insert_str(0, "##");
                }
                self.vocab.get(&piece).map(|&id| (id, end))
            });
            match found {
                Some((id, end)) => {
                    pieces.push(id);
                    start = end;
                }
                None => {
                    out.push(self.unk);
                    return;
                }
            }
        }
        out.extend(pieces);
    }
}

/// BERT's BasicTokenizer with lower-casing: words and punctuation marks, in order.
fn basic_tokenize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, words: &mut Vec<String>| {
        if !current.is_empty() {
            words.push(std::mem::take(current));
        }
    };
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) {
            continue;
        }
        if c.is_whitespace() {
            flush(&mut current, &mut words);
            continue;
        }
        for lc in c.to_lowercase() {
            let Some(base) = strip_accent(lc) else {
                continue;
            };
            if is_punctuation(base) || is_cjk(base) {
                flush(&mut current, &mut words);
                words.push(base.to_string());
            } else {
                current.push(base);
            }
        }
    }
    flush(&mut current, &mut words);
    words
}

/// The base letter of an accented lower-case letter; `None` for a combining mark (dropped).
fn strip_accent(c: char) -> Option<char> {
    const LATIN1: &str = "aaaaaaæceeeeiiiiðnooooo÷øuuuuyþy";
    match c {
        '\u{300}'..='\u{36f}' => None,
        'à'..='ÿ' => LATIN1.chars().nth(c as usize - 'à' as usize),
        _ => Some(c),
    }
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c,
            '\u{a1}' | '\u{a7}' | '\u{ab}' | '\u{b6}' | '\u{b7}' | '\u{bb}' | '\u{bf}'
            | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205e}' | '\u{2e00}'..='\u{2e7f}'
            | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}' | '\u{3014}'..='\u{301f}')
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{20000}'..='\u{2a6df}'
        | '\u{2a700}'..='\u{2b73f}' | '\u{2b740}'..='\u{2b81f}' | '\u{2b820}'..='\u{2ceaf}'
        | '\u{f900}'..='\u{faff}' | '\u{2f800}'..='\u{2fa1f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Tokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nun\n##aff\n##able\nhello\n,\n!\ncafe\n中\n";
        Tokenizer::from_vocab_lines(vocab.lines()).unwrap()
    }

    #[test]
    fn wordpiece_greedy_and_unknown() {
        let t = toy();
        assert_eq!(t.encode("UNaffable"), vec![2, 4, 5, 6, 3]);
        assert_eq!(t.encode("Hello,  unknown!"), vec![2, 7, 8, 1, 9, 3]);
        assert_eq!(t.encode("Café中"), vec![2, 10, 11, 3]);
        assert_eq!(t.encode("cafe\u{301}"), vec![2, 10, 3]);
        assert_eq!(t.encode(""), vec![2, 3]);
        assert_eq!(t.unk_id(), 1);
    }

    #[test]
    fn basic_tokenizer_splits_punctuation() {
        assert_eq!(
            basic_tokenize("it's a \"test\"…"),
            ["it", "'", "s", "a", "\"", "test", "\"", "…"]
        );
        assert_eq!(strip_accent('é'), Some('e'));
        assert_eq!(strip_accent('ñ'), Some('n'));
        assert_eq!(strip_accent('æ'), Some('æ'));
    }

    #[test]
    fn missing_special_token_is_an_error() {
        let err = Tokenizer::from_vocab_lines(["[CLS]", "[SEP]"]).unwrap_err();
        assert!(err.to_string().contains("[UNK]"));
    }
}
