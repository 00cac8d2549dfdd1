//! The decoder's weights, dequantized to f32 from a GGUF file's tensors.
//!
//! Matrices are row-major `out × in` (GGUF stores them with `in` as the fastest dimension, so a
//! tensor of ggml shape `[in, out]` is read as is).

use rayon::prelude::*;

use crate::config::LlamaConfig;
use crate::dequant::{dequantize, GgmlType};
use crate::error::LlamaError;
use crate::gguf::GgufFile;

/// One transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm gain before attention, `[hidden]`.
    pub attn_norm: Vec<f32>,
    /// Query projection, `[n_heads·head_dim × hidden]`.
    pub wq: Vec<f32>,
    /// Key projection, `[n_kv_heads·head_dim × hidden]`.
    pub wk: Vec<f32>,
    /// Value projection, `[n_kv_heads·head_dim × hidden]`.
    pub wv: Vec<f32>,
    /// Attention output projection, `[hidden × n_heads·head_dim]`.
    pub wo: Vec<f32>,
    /// RMSNorm gain before the feed-forward, `[hidden]`.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate, `[ffn × hidden]`.
    pub w_gate: Vec<f32>,
    /// SwiGLU up projection, `[ffn × hidden]`.
    pub w_up: Vec<f32>,
    /// SwiGLU down projection, `[hidden × ffn]`.
    pub w_down: Vec<f32>,
}

/// All weights of the decoder.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Token embedding table, `[vocab × hidden]`.
    pub token_embedding: Vec<f32>,
    /// The blocks in order.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm gain, `[hidden]`.
    pub output_norm: Vec<f32>,
    /// Output head `[vocab × hidden]`; `None` when tied to the token embedding.
    pub output: Option<Vec<f32>>,
}

impl Weights {
    /// Reads and dequantizes every tensor the configuration calls for, checking names, shapes
    /// and types.
    pub fn from_gguf(gguf: &GgufFile, config: &LlamaConfig) -> Result<Weights, LlamaError> {
        let c = config;
        let q_width = c.n_heads * c.head_dim;
        let layers = (0..c.n_layers)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Ok(LayerWeights {
                    attn_norm: read_tensor(gguf, &name("attn_norm"), &[c.hidden])?,
                    wq: read_tensor(gguf, &name("attn_q"), &[c.hidden, q_width])?,
                    wk: read_tensor(gguf, &name("attn_k"), &[c.hidden, c.kv_width()])?,
                    wv: read_tensor(gguf, &name("attn_v"), &[c.hidden, c.kv_width()])?,
                    wo: read_tensor(gguf, &name("attn_output"), &[q_width, c.hidden])?,
                    ffn_norm: read_tensor(gguf, &name("ffn_norm"), &[c.hidden])?,
                    w_gate: read_tensor(gguf, &name("ffn_gate"), &[c.hidden, c.ffn])?,
                    w_up: read_tensor(gguf, &name("ffn_up"), &[c.hidden, c.ffn])?,
                    w_down: read_tensor(gguf, &name("ffn_down"), &[c.ffn, c.hidden])?,
                })
            })
            .collect::<Result<Vec<_>, LlamaError>>()?;
        let output = match gguf.tensor("output.weight") {
            Some(_) => Some(read_tensor(gguf, "output.weight", &[c.hidden, c.vocab])?),
            None => None,
        };
        Ok(Weights {
            token_embedding: read_tensor(gguf, "token_embd.weight", &[c.hidden, c.vocab])?,
            layers,
            output_norm: read_tensor(gguf, "output_norm.weight", &[c.hidden])?,
            output,
        })
    }

    /// The output head's `[vocab × hidden]` matrix (the embedding table when tied).
    pub fn head(&self) -> &[f32] {
        self.output.as_deref().unwrap_or(&self.token_embedding)
    }
}

/// Reads the tensor `name`, which must have ggml shape `dims` (fastest first), as f32.
pub fn read_tensor(gguf: &GgufFile, name: &str, dims: &[usize]) -> Result<Vec<f32>, LlamaError> {
    let path = || gguf.path().to_path_buf();
    let info = gguf.tensor(name).ok_or_else(|| LlamaError::MissingTensor {
        path: path(),
        tensor: name.into(),
    })?;
    let expected: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    if info.dims != expected {
        return Err(LlamaError::TensorShape {
            path: path(),
            tensor: name.into(),
            expected,
            found: info.dims.clone(),
        });
    }
    let ty =
        GgmlType::from_id(info.ggml_type).ok_or_else(|| LlamaError::UnsupportedTensorType {
            path: path(),
            tensor: name.into(),
            ggml_type: info.ggml_type,
        })?;
    let row = dims[0];
    let row_bytes = ty
        .bytes_for(row as u64)
        .ok_or_else(|| LlamaError::Malformed {
            path: path(),
            what: format!(
                "tensor {name}: rows of {row} weights are not whole {ty:?} blocks of {}",
                ty.block_elements()
            ),
        })?;
    let n = info.n_elements();
    let n_bytes = row_bytes * (n / row as u64);
    // Checked against the file before the output is allocated.
    let bytes = gguf.tensor_data(info, n_bytes)?;
    let mut out = vec![0f32; n as usize];
    out.par_chunks_mut(row)
        .zip(bytes.par_chunks(row_bytes as usize))
        .for_each(|(w, b)| dequantize(ty, b, w));
    Ok(out)
}
