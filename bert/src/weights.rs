//! Model weights: loaded from Hugging Face safetensors, or drawn at random from a fixed seed.
//!
//! Linear weights are stored as `in × out` (transposed from PyTorch's `out × in`), so a layer
//! computes `X · W + b` with `X` of shape `tokens × in`.
use crate::config::BertConfig;
use mpc_core::{Error, Result};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// A dense layer `X · w + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Weight, `in × out`.
    pub w: Array2<f32>,
    /// Bias, `out`.
    pub b: Array1<f32>,
}

/// LayerNorm's affine parameters.
#[derive(Clone, Debug)]
pub struct LayerNormParams {
    /// Scale γ.
    pub gamma: Array1<f32>,
    /// Shift β.
    pub beta: Array1<f32>,
}

/// One Transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Attention output projection.
    pub attn_out: Linear,
    /// LayerNorm after attention.
    pub attn_ln: LayerNormParams,
    /// Feed-forward up-projection (followed by GELU).
    pub ffn_up: Linear,
    /// Feed-forward down-projection.
    pub ffn_down: Linear,
    /// LayerNorm after the feed-forward block.
    pub ffn_ln: LayerNormParams,
}

/// All weights of a BERT encoder with its pooler.
#[derive(Clone, Debug)]
pub struct BertWeights {
    /// The configuration the weights were checked against.
    pub config: BertConfig,
    /// Word embeddings, `vocab × d`.
    pub word_embeddings: Array2<f32>,
    /// Position embeddings, `max_positions × d`.
    pub position_embeddings: Array2<f32>,
    /// Token-type embeddings, `type_vocab × d`.
    pub token_type_embeddings: Array2<f32>,
    /// LayerNorm after the embeddings.
    pub embeddings_ln: LayerNormParams,
    /// The Transformer blocks.
    pub layers: Vec<LayerWeights>,
    /// The pooler (dense + tanh on the first token).
    pub pooler: Linear,
}

/// PyTorch names of the tensors of one block, relative to `encoder.layer.{i}.`.
const LINEAR_NAMES: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

impl BertWeights {
    /// Deterministic random weights (ChaCha20 from `seed`): matrices uniform with the standard
    /// deviation 0.02 of BERT's initialiser, LayerNorm γ = 1, β = 0, biases small.
    pub fn random(config: &BertConfig, seed: u64) -> Result<BertWeights> {
        config.validate()?;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        // Uniform on [−a, a] has standard deviation a/√3.
        let a = 0.02f32 * 3f32.sqrt();
        let mut matrix = |rows: usize, cols: usize| {
            Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-a..=a))
        };
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let ln = || LayerNormParams {
            gamma: Array1::ones(d),
            beta: Array1::zeros(d),
        };
        let word_embeddings = matrix(config.vocab_size, d);
        let position_embeddings = matrix(config.max_position_embeddings, d);
        let token_type_embeddings = matrix(config.type_vocab_size, d);
        let mut linear = |i: usize, o: usize| Linear {
            w: matrix(i, o),
            b: Array1::from_elem(o, 0.01),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerWeights {
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                attn_out: linear(d, d),
                attn_ln: ln(),
                ffn_up: linear(d, ff),
                ffn_down: linear(ff, d),
                ffn_ln: ln(),
            })
            .collect();
        let pooler = linear(d, d);
        Ok(BertWeights {
            config: config.clone(),
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln: ln(),
            layers,
            pooler,
        })
    }

    /// Loads `model.safetensors` weights for `config`; tensor names may carry a `bert.` prefix.
    /// Errors name the file and the tensor: missing, wrong shape, wrong dtype, truncated file.
    pub fn from_safetensors(path: &Path, config: &BertConfig) -> Result<BertWeights> {
        config.validate()?;
        let bytes = mpc_core::error::read_file(path)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::malformed(
                path.display().to_string(),
                format!("{e} (truncated or corrupt?)"),
                "a valid safetensors file",
            )
        })?;
        let loader = Loader { st: &st, path };
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let ln = |name: &str| -> Result<LayerNormParams> {
            Ok(LayerNormParams {
                gamma: loader.vector(&format!("{name}.weight"), d)?,
                beta: loader.vector(&format!("{name}.bias"), d)?,
            })
        };
        let linear = |name: &str, i: usize, o: usize| -> Result<Linear> {
            Ok(Linear {
                w: loader
                    .matrix(&format!("{name}.weight"), o, i)?
                    .reversed_axes(),
                b: loader.vector(&format!("{name}.bias"), o)?,
            })
        };
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let p = |s: &str| format!("encoder.layer.{l}.{s}");
                let shapes = [(d, d), (d, d), (d, d), (d, d), (d, ff), (ff, d)];
                let mut lin = LINEAR_NAMES
                    .iter()
                    .zip(shapes)
                    .map(|(n, (i, o))| linear(&p(n), i, o))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter();
                let mut next = || lin.next().expect("six linear layers");
                Ok(LayerWeights {
                    query: next(),
                    key: next(),
                    value: next(),
                    attn_out: next(),
                    attn_ln: ln(&p("attention.output.LayerNorm"))?,
                    ffn_up: next(),
                    ffn_down: next(),
                    ffn_ln: ln(&p("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertWeights {
            config: config.clone(),
            word_embeddings: loader.matrix(
                "embeddings.word_embeddings.weight",
                config.vocab_size,
                d,
            )?,
            position_embeddings: loader.matrix(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                d,
            )?,
            token_type_embeddings: loader.matrix(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size,
                d,
            )?,
            embeddings_ln: ln("embeddings.LayerNorm")?,
            layers,
            pooler: linear("pooler.dense", d, d)?,
        })
    }

    /// Loads a Hugging Face model directory: `config.json` and `model.safetensors`.
    pub fn from_model_dir(dir: &Path) -> Result<BertWeights> {
        let config = BertConfig::from_model_dir(dir)?;
        BertWeights::from_safetensors(&dir.join("model.safetensors"), &config)
    }

    /// Writes the weights as safetensors in the Hugging Face layout (f32, `out × in` matrices).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
            tensors.push((name, shape, f32_le_bytes(&data)));
        };
        let mat = |m: &Array2<f32>| (m.shape().to_vec(), m.iter().copied().collect::<Vec<_>>());
        let vec = |v: &Array1<f32>| (vec![v.len()], v.to_vec());
        let linear = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), n: &str, l: &Linear| {
            let t = l.w.t();
            put(
                format!("{n}.weight"),
                t.shape().to_vec(),
                t.iter().copied().collect(),
            );
            let (s, v) = vec(&l.b);
            put(format!("{n}.bias"), s, v);
        };
        let ln =
            |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), n: &str, p: &LayerNormParams| {
                let (s, v) = vec(&p.gamma);
                put(format!("{n}.weight"), s, v);
                let (s, v) = vec(&p.beta);
                put(format!("{n}.bias"), s, v);
            };
        for (name, m) in [
            ("embeddings.word_embeddings.weight", &self.word_embeddings),
            (
                "embeddings.position_embeddings.weight",
                &self.position_embeddings,
            ),
            (
                "embeddings.token_type_embeddings.weight",
                &self.token_type_embeddings,
            ),
        ] {
            let (s, v) = mat(m);
            put(name.to_string(), s, v);
        }
        ln(&mut put, "embeddings.LayerNorm", &self.embeddings_ln);
        for (l, w) in self.layers.iter().enumerate() {
            let p = |s: &str| format!("encoder.layer.{l}.{s}");
            let lins = [
                &w.query,
                &w.key,
                &w.value,
                &w.attn_out,
                &w.ffn_up,
                &w.ffn_down,
            ];
            for (n, lin) in LINEAR_NAMES.iter().zip(lins) {
                linear(&mut put, &p(n), lin);
            }
            ln(&mut put, &p("attention.output.LayerNorm"), &w.attn_ln);
            ln(&mut put, &p("output.LayerNorm"), &w.ffn_ln);
        }
        linear(&mut put, "pooler.dense", &self.pooler);
        let views = tensors
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<HashMap<_, _>, _>>()
            .map_err(|e| {
                Error::malformed(path.display().to_string(), e.to_string(), "valid tensors")
            })?;
        let bytes = safetensors::serialize(views, None).map_err(|e| {
            Error::malformed(path.display().to_string(), e.to_string(), "valid tensors")
        })?;
        std::fs::write(path, bytes)?;
        Ok(())
    }
}

fn f32_le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads named f32 tensors from a safetensors file, accepting an optional `bert.` prefix.
struct Loader<'a> {
    st: &'a SafeTensors<'a>,
    path: &'a Path,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self
            .st
            .tensor(name)
            .or_else(|_| self.st.tensor(&format!("bert.{name}")))
            .map_err(|_| {
                Error::malformed(
                    format!("{}: tensor `{name}`", self.path.display()),
                    "a missing tensor (also tried `bert.{name}`)",
                    "a tensor",
                )
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::malformed(
                format!("{}: tensor `{name}` dtype", self.path.display()),
                format!("{:?}", view.dtype()),
                "F32",
            ));
        }
        if view.shape() != shape {
            return Err(Error::malformed(
                format!("{}: tensor `{name}` shape", self.path.display()),
                view.shape(),
                shape,
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn vector(&self, name: &str, n: usize) -> Result<Array1<f32>> {
        Ok(Array1::from_vec(self.tensor(name, &[n])?))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let data = self.tensor(name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), data)
            .map_err(|e| Error::shape("tensor values", e.to_string(), [rows, cols]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_file() -> (tempfile::TempDir, std::path::PathBuf, BertWeights) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let w = BertWeights::random(&BertConfig::tiny(), 7).unwrap();
        w.save_safetensors(&path).unwrap();
        (dir, path, w)
    }

    #[test]
    fn random_is_deterministic_and_round_trips() {
        let (_dir, path, w) = tiny_file();
        let again = BertWeights::random(&BertConfig::tiny(), 7).unwrap();
        assert_eq!(w.layers[1].ffn_down.w, again.layers[1].ffn_down.w);
        let loaded = BertWeights::from_safetensors(&path, &BertConfig::tiny()).unwrap();
        assert_eq!(loaded.layers[1].ffn_up.w, w.layers[1].ffn_up.w);
        assert_eq!(loaded.pooler.b, w.pooler.b);
        assert_eq!(loaded.word_embeddings, w.word_embeddings);
    }

    fn rewrite(path: &Path, f: impl Fn(&str, &mut Vec<usize>, &mut Dtype) -> bool) {
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut kept = Vec::new();
        for (name, v) in st.tensors() {
            let (mut shape, mut dtype) = (v.shape().to_vec(), v.dtype());
            if f(&name, &mut shape, &mut dtype) {
                let data = v.data().to_vec();
                let data = if dtype == Dtype::F16 {
                    data[..data.len() / 2].to_vec()
                } else {
                    data
                };
                kept.push((name, shape, dtype, data));
            }
        }
        let views: HashMap<String, _> = kept
            .iter()
            .map(|(n, s, d, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    fn load_err(path: &Path) -> String {
        BertWeights::from_safetensors(path, &BertConfig::tiny())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bert_prefix_is_accepted() {
        let (_dir, path, _) = tiny_file();
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let views: HashMap<String, _> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (format!("bert.{n}"), v))
            .collect();
        let prefixed = path.with_file_name("prefixed.safetensors");
        std::fs::write(&prefixed, safetensors::serialize(views, None).unwrap()).unwrap();
        BertWeights::from_safetensors(&prefixed, &BertConfig::tiny()).unwrap();
    }

    #[test]
    fn missing_tensor_is_named() {
        let (_dir, path, _) = tiny_file();
        rewrite(&path, |n, _, _| n != "encoder.layer.1.output.dense.bias");
        let err = load_err(&path);
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(
            err.contains("tensor `encoder.layer.1.output.dense.bias`: got a missing tensor"),
            "{err}"
        );
    }

    #[test]
    fn wrong_shape_is_named() {
        let (_dir, path, _) = tiny_file();
        rewrite(&path, |n, s, _| {
            if n == "pooler.dense.weight" {
                *s = vec![16, 64];
            }
            true
        });
        let err = load_err(&path);
        assert!(
            err.contains("tensor `pooler.dense.weight` shape: got 16×64, expected 32×32"),
            "{err}"
        );
    }

    #[test]
    fn wrong_dtype_is_named() {
        let (_dir, path, _) = tiny_file();
        rewrite(&path, |n, _, d| {
            if n == "embeddings.LayerNorm.weight" {
                *d = Dtype::F16;
            }
            true
        });
        let err = load_err(&path);
        assert!(
            err.contains("tensor `embeddings.LayerNorm.weight` dtype: got F16, expected F32"),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_is_reported() {
        let (_dir, path, _) = tiny_file();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = load_err(&path);
        assert!(
            err.contains("model.safetensors") && err.contains("truncated"),
            "{err}"
        );
        let missing = path.with_file_name("nope.safetensors");
        assert!(load_err(&missing).contains("nope.safetensors"));
    }
}
