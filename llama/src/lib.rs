//! LLaMA-family decoders (SmolLM2, LLaMA): GGUF loading, the byte-level BPE tokenizer, the file's
//! chat template, and the float reference the fixed-point and secure models are judged against.
//!
//! * [`gguf`]: a bounds-checked GGUF v2/v3 reader over a memory map.
//! * [`dequant`]: F32, F16, Q4_0, Q4_1 and Q8_0 blocks to f32.
//! * [`config`]: the shape from the `llama.*` metadata.
//! * [`weights`]: the tensors, dequantized and shape-checked.
//! * [`tokenizer`]: byte-level BPE with the `smollm` pre-tokenizer and special tokens.
//! * [`chat`]: the file's Jinja chat template rendered with `minijinja`.
//! * [`float_model`]: the f32 decoder with a key/value cache, greedy generation and a trace of
//!   the ranges the secure model's approximations are fitted on.
//! * [`calibrate`]: SiLU per layer and the RMSNorm prescales, fitted on the server's own texts.
//! * [`fixed_model`]: the fixed-point mirror of the secure decoder.
//! * [`secure`]: two-party greedy generation (server: the model; client: the prompt and the
//!   generated ids).
//! * [`gguf_write`], [`synthetic`]: a small GGUF writer and random LLaMA-architecture models
//!   for tests.
//!
//! ```no_run
//! use llama::{render_chat, FloatModel, Model};
//! let model = Model::load("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let template = model.chat_template.as_deref().expect("the file has a chat template");
//! let prompt = render_chat(template, "What is the capital of France?", &model.tokenizer)?;
//! let ids = model.tokenizer.encode(&prompt)?;
//! let generated = FloatModel::new(&model).generate_greedy(&ids, 8)?;
//! println!("{}", model.tokenizer.decode_skip_special(&generated)?);
//! # Ok::<(), llama::LlamaError>(())
//! ```
#![warn(missing_docs)]

pub mod calibrate;
pub mod chat;
pub mod config;
pub mod dequant;
pub mod error;
pub mod fixed_model;
pub mod float_model;
pub mod gguf;
pub mod gguf_write;
pub mod secure;
pub mod synthetic;
pub mod tokenizer;
pub mod weights;

use std::path::Path;

pub use chat::{render_chat, render_chat_with};
pub use config::LlamaConfig;
pub use error::LlamaError;
pub use float_model::{argmax, FloatModel, LayerTrace, Trace};
pub use gguf::GgufFile;
pub use tokenizer::Tokenizer;
pub use weights::{LayerWeights, Weights};

/// A loaded model: shape, f32 weights, tokenizer and chat template.
#[derive(Debug)]
pub struct Model {
    /// The shape.
    pub config: LlamaConfig,
    /// The dequantized weights.
    pub weights: Weights,
    /// The tokenizer from the file's vocabulary and merges.
    pub tokenizer: Tokenizer,
    /// The file's `tokenizer.chat_template`, if it has one.
    pub chat_template: Option<String>,
}

impl Model {
    /// Loads a GGUF file (`general.architecture = llama`).
    pub fn load(path: &Path) -> Result<Model, LlamaError> {
        let gguf = GgufFile::open(path)?;
        Model::from_gguf(&gguf)
    }

    /// Builds the model from an opened GGUF file.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Model, LlamaError> {
        let config = LlamaConfig::from_gguf(gguf)?;
        let tokenizer = Tokenizer::from_gguf(gguf)?;
        let weights = Weights::from_gguf(gguf, &config)?;
        let chat_template = match gguf.get("tokenizer.chat_template") {
            None => None,
            Some(_) => Some(gguf.get_str("tokenizer.chat_template")?.to_owned()),
        };
        Ok(Model {
            config,
            weights,
            tokenizer,
            chat_template,
        })
    }
}
