//! The crate's typed error: every variant names the file (and the tensor or key) it is about.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a LLaMA-family model.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// The file could not be opened, read or memory-mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The file ends before a structure it announces.
    #[error("{path}: truncated: {what} needs {needed} bytes at offset {offset}, the file has {file_len}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (a header field, a key, a tensor's data).
        what: String,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{path}: not a GGUF file (magic {found:02x?}, expected \"GGUF\")")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first bytes found.
        found: [u8; 4],
    },
    /// A GGUF version other than 2 or 3.
    #[error("{path}: GGUF version {version} is not supported (only 2 and 3)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the header.
        version: u32,
    },
    /// A structurally invalid file: a bad type tag, non-UTF-8 text, a count larger than the file
    /// could hold, an overlapping or misaligned tensor, …
    #[error("{path}: malformed GGUF: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key or tensor.
        what: String,
    },
    /// A tensor stored in a ggml type this crate does not dequantize.
    #[error("{path}: tensor {tensor}: ggml type {ggml_type} is not supported (F32, F16, Q4_0, Q4_1, Q8_0 are)")]
    UnsupportedTensorType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The ggml type id in the file.
        ggml_type: u32,
    },
    /// A tensor the model needs is not in the file.
    #[error("{path}: tensor {tensor} is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A tensor whose dimensions disagree with the configuration.
    #[error("{path}: tensor {tensor} has shape {found:?}, expected {expected:?} (ggml order: fastest dimension first)")]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What the configuration implies.
        expected: Vec<u64>,
        /// What the file says.
        found: Vec<u64>,
    },
    /// A metadata key is missing or has the wrong type or an unusable value.
    #[error("{path}: metadata {key}: {what}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong with it.
        what: String,
    },
    /// The tokenizer cannot encode or decode the input.
    #[error("tokenizer: {what}")]
    Tokenizer {
        /// What failed.
        what: String,
    },
    /// The chat template failed to parse or render.
    #[error("chat template: {what}")]
    Template {
        /// The template engine's message.
        what: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The sequence would exceed the model's context length.
    #[error("sequence of {needed} tokens exceeds the context length {context}")]
    ContextExceeded {
        /// Positions the request needs (cached plus new).
        needed: usize,
        /// The model's context length.
        context: usize,
    },
    /// A request that makes no sense (an empty prompt, …).
    #[error("invalid request: {what}")]
    InvalidRequest {
        /// What is wrong.
        what: String,
    },
}
