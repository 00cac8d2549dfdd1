//! BERT model: configuration, weights, tokenizer, and the plaintext references the secure run is
//! judged against.
//!
//! * [`config`]: shapes (bert-base, bert-large, a model directory's `config.json`).
//! * [`weights`]: safetensors loading and deterministic random weights.
//! * [`tokenizer`]: uncased WordPiece.
//! * [`float_model`]: the f32 reference.
//! * [`fixed_model`]: the fixed-point reference (what the secure run computes).
//! * [`data`]: labelled TSV sentences.
//! * [`head`]: the logistic-regression sentiment head.
//! * [`classifier`]: parallel sentence embeddings.
//! * [`calibrate`], [`fit`]: per-layer Nimbus fitting of GELU and exp on calibration inputs.
//! * [`secure`]: the secure two-party inference (server and client roles) and its mirror.
//! * [`reveals`]: the HE coefficients an inference reveals per key, checked against the floods.
#![warn(missing_docs)]

pub mod calibrate;
pub mod classifier;
pub mod config;
pub mod data;
pub mod fit;
pub mod fixed_model;
pub mod float_model;
pub mod head;
mod linalg;
pub mod reveals;
pub mod secure;
pub mod tokenizer;
pub mod weights;

pub use config::BertConfig;
pub use fixed_model::FixedBert;
pub use float_model::FloatBert;
pub use tokenizer::Tokenizer;
pub use weights::BertWeights;
