//! Byte-level BPE (GPT-2 style) built from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Encoding, as Hugging Face `tokenizers` and llama.cpp do it for SmolLM2:
//! 1. special tokens (ggml token types control and user-defined, e.g. `<|im_start|>`) are cut
//!    out first and emitted whole;
//! 2. pre-tokenizer `smollm`: every digit becomes its own piece, then the GPT-2 regex splits the
//!    rest (`gpt2`: the regex only); no prefix space is added;
//! 3. each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged pairwise,
//!    lowest merge rank first, until no listed merge applies.

use std::collections::HashMap;

use fancy_regex::Regex;

use crate::error::LlamaError;
use crate::gguf::{GgufFile, MetaValue};

/// GPT-2's pre-tokenizer regex (Hugging Face `ByteLevel`, with the trailing `\s+` fallback).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// ggml token types that are matched as whole tokens before pre-tokenization.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// A byte-level BPE tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens, longest first so that a prefix never shadows a longer token.
    specials: Vec<(String, u32)>,
    is_special: Vec<bool>,
    /// The single-byte token of each byte (a vocabulary may lack some control bytes).
    byte_token: [Option<u32>; 256],
    char_byte: HashMap<char, u8>,
    split_digits: bool,
    pattern: Regex,
    eos: Option<u32>,
    bos: Option<u32>,
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes map to themselves,
/// the others to U+0100 onwards in byte order.
pub(crate) fn byte_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        chars[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("U+0100..U+0143 are chars");
            next += 1;
            c
        };
    }
    chars
}

impl Tokenizer {
    /// Builds the tokenizer from the file's vocabulary, merges, token types and special ids.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, LlamaError> {
        let bad = |key: &str, what: String| LlamaError::Metadata {
            path: gguf.path().to_path_buf(),
            key: key.into(),
            what,
        };
        let model = gguf.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(bad(
                "tokenizer.ggml.model",
                format!("{model:?} is not supported (only byte-level BPE \"gpt2\")"),
            ));
        }
        let split_digits = match gguf.get("tokenizer.ggml.pre").and_then(MetaValue::as_str) {
            None | Some("gpt2") => false,
            Some("smollm") => true,
            Some(other) => {
                return Err(bad(
                    "tokenizer.ggml.pre",
                    format!("pre-tokenizer {other:?} is not supported (gpt2, smollm)"),
                ))
            }
        };
        let tokens: Vec<String> = gguf
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            // Later duplicates are unreachable by encoding; the first id wins, as in llama.cpp.
            ids.entry(token.clone()).or_insert(id as u32);
        }
        let id_of = |key: &str, piece: &str| {
            ids.get(piece)
                .copied()
                .ok_or_else(|| bad(key, format!("{piece:?} is not in the vocabulary")))
        };
        let mut merges = HashMap::new();
        for (rank, merge) in gguf
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
        {
            let (left, right) = merge.split_once(' ').ok_or_else(|| {
                bad(
                    "tokenizer.ggml.merges",
                    format!("merge {rank} {merge:?} is not two tokens"),
                )
            })?;
            let pair = (
                id_of("tokenizer.ggml.merges", left)?,
                id_of("tokenizer.ggml.merges", right)?,
            );
            let merged = id_of("tokenizer.ggml.merges", &format!("{left}{right}"))?;
            merges.entry(pair).or_insert((rank as u32, merged));
        }
        let mut is_special = vec![false; tokens.len()];
        if let Some(MetaValue::Array(types)) = gguf.get("tokenizer.ggml.token_type") {
            if types.len() != tokens.len() {
                return Err(bad(
                    "tokenizer.ggml.token_type",
                    format!("{} types for {} tokens", types.len(), tokens.len()),
                ));
            }
            for (flag, ty) in is_special.iter_mut().zip(types) {
                *flag = matches!(
                    ty,
                    MetaValue::I32(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
                );
            }
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&is_special)
            .enumerate()
            .filter(|(_, (token, &special))| special && !token.is_empty())
            .map(|(id, (token, _))| (token.clone(), id as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let chars = byte_chars();
        let mut byte_token = [None; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_token[b] = ids.get(&c.to_string()).copied();
        }
        let special_id = |key: &str| -> Result<Option<u32>, LlamaError> {
            match gguf.get(key) {
                None => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(id) if (id as usize) < tokens.len() => Ok(Some(id as u32)),
                    _ => Err(bad(
                        key,
                        format!("{v:?} is not a token id below {}", tokens.len()),
                    )),
                },
            }
        };
        let eos = special_id("tokenizer.ggml.eos_token_id")?;
        let bos = special_id("tokenizer.ggml.bos_token_id")?;
        Ok(Tokenizer {
            char_byte: chars
                .iter()
                .enumerate()
                .map(|(b, &c)| (c, b as u8))
                .collect(),
            tokens,
            ids,
            merges,
            specials,
            is_special,
            byte_token,
            split_digits,
            pattern: Regex::new(GPT2_PATTERN).expect("the GPT-2 pattern is valid"),
            eos,
            bos,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The end-of-sequence id from the metadata, if any.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The beginning-of-sequence id from the metadata, if any (SmolLM2 does not add it).
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The id of a token given in its stored form (e.g. `<|im_end|>`), if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The stored form of a token (special tokens as text, others in GPT-2's byte alphabet).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Encodes text to ids; special tokens written in the text are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlamaError> {
        let mut out = Vec::new();
        let mut plain_start = 0;
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            if let Some((token, id)) = self
                .specials
                .iter()
                .find(|(t, _)| rest.starts_with(t.as_str()))
            {
                self.encode_plain(&text[plain_start..pos], &mut out)?;
                out.push(*id);
                pos += token.len();
                plain_start = pos;
            } else {
                pos += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_plain(&text[plain_start..], &mut out)?;
        Ok(out)
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), LlamaError> {
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if self.split_digits && c.is_numeric() {
                self.encode_regex_pieces(&text[start..i], out)?;
                self.encode_piece(&text[i..i + c.len_utf8()], out)?;
                start = i + c.len_utf8();
            }
        }
        self.encode_regex_pieces(&text[start..], out)
    }

    fn encode_regex_pieces(&self, text: &str, out: &mut Vec<u32>) -> Result<(), LlamaError> {
        let mut covered = 0;
        for m in self.pattern.find_iter(text) {
            let m = m.map_err(|e| LlamaError::Tokenizer {
                what: format!("pre-tokenizer regex: {e}"),
            })?;
            // The pattern's last alternatives cover every character; encode any gap all the same.
            if m.start() > covered {
                self.encode_piece(&text[covered..m.start()], out)?;
            }
            self.encode_piece(m.as_str(), out)?;
            covered = m.end();
        }
        if covered < text.len() {
            self.encode_piece(&text[covered..], out)?;
        }
        Ok(())
    }

    /// BPE on one pre-token: start from its bytes, apply the lowest-ranked merge until none
    /// applies.
    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) -> Result<(), LlamaError> {
        let mut symbols = piece
            .bytes()
            .map(|b| {
                self.byte_token[b as usize].ok_or_else(|| LlamaError::Tokenizer {
                    what: format!("byte {b:#04x} has no token in the vocabulary"),
                })
            })
            .collect::<Result<Vec<u32>, LlamaError>>()?;
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.merges
                        .get(&(w[0], w[1]))
                        .map(|&(rank, id)| (rank, i, id))
                })
                .min();
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        out.extend_from_slice(&symbols);
        Ok(())
    }

    /// The bytes of the ids' text (special tokens as their text); a generated prefix may end in
    /// the middle of a UTF-8 character.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, LlamaError> {
        let mut bytes = Vec::new();
        for &id in ids {
            let token = self.token(id).ok_or(LlamaError::TokenOutOfRange {
                id,
                vocab: self.vocab_size(),
            })?;
            if self.is_special[id as usize] {
                if !skip_special {
                    bytes.extend_from_slice(token.as_bytes());
                }
                continue;
            }
            for c in token.chars() {
                match self.char_byte.get(&c) {
                    Some(&b) => bytes.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
        }
        Ok(bytes)
    }

    /// Decodes ids to text, special tokens included as text; invalid UTF-8 (a cut character)
    /// becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlamaError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, false)?).into_owned())
    }

    /// Decodes ids to text without the special tokens (what a chat user sees).
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String, LlamaError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, true)?).into_owned())
    }
}
