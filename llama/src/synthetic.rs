//! Small random LLaMA-architecture models written as GGUF files, for tests and for trying the
//! secure decoder quickly (`bench generate --model FILE` takes them like any other file).
//!
//! The vocabulary is GPT-2's 256 byte tokens (so any text encodes, one token per byte), then
//! `<|im_start|>` and `<|im_end|>` as control tokens, then filler tokens up to
//! [`SyntheticSpec::vocab`]; no merges; a ChatML template. Weights are F32, uniform with the
//! variance of `N(0, 1/in)` for projections (unit-variance outputs), `N(0, 1)` for the tied
//! embedding, RMSNorm gains in `[0.9, 1.1]`; drawn from a SplitMix64 stream of `seed` (these are
//! test data, not secrets).
//!
//! ```
//! use llama::synthetic::{write_random_model, SyntheticSpec};
//! use llama::{FloatModel, Model};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! write_random_model(&path, &SyntheticSpec::tiny(), 7)?;
//! let model = Model::load(&path)?;
//! let ids = model.tokenizer.encode("hello")?;
//! assert_eq!(ids.len(), 5);
//! let next = FloatModel::new(&model).generate_greedy(&ids, 3)?;
//! assert_eq!(next.len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use crate::error::LlamaError;
use crate::gguf_write::{GgufWriter, Meta};
use crate::tokenizer::byte_chars;

/// The ChatML template the synthetic files carry (SmolLM2's, without its default system turn).
pub const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n\
{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}\
<|im_start|>assistant\n{% endif %}";

/// The shape of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Blocks.
    pub n_layers: usize,
    /// Width.
    pub hidden: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// SwiGLU inner width.
    pub ffn: usize,
    /// Vocabulary (at least 258: the bytes and the two ChatML tokens).
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Rotary base.
    pub rope_base: f32,
    /// Whether the output head is the embedding table (no `output.weight`), as in SmolLM2.
    pub tied: bool,
}

impl SyntheticSpec {
    /// Two blocks of width 64, four query heads over two key/value heads of 16, FFN 128,
    /// vocabulary 300, context 64, a head of its own (a random tied head mostly repeats the
    /// last token).
    pub fn tiny() -> SyntheticSpec {
        SyntheticSpec {
            n_layers: 2,
            hidden: 64,
            n_heads: 4,
            n_kv_heads: 2,
            ffn: 128,
            vocab: 300,
            context: 64,
            rope_base: 10_000.0,
            tied: false,
        }
    }
}

/// SplitMix64: a fixed, portable stream for test weights.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
    }

    /// `n` values uniform with standard deviation `std`.
    fn uniform(&mut self, n: usize, std: f32) -> Vec<f32> {
        let a = std * 3f32.sqrt();
        (0..n).map(|_| a * self.unit()).collect()
    }
}

/// The vocabulary of a synthetic model of `vocab` tokens.
fn vocabulary(vocab: usize) -> Vec<String> {
    let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    tokens.push("<|im_start|>".into());
    tokens.push("<|im_end|>".into());
    let mut i = 0;
    while tokens.len() < vocab {
        tokens.push(format!("<filler{i}>"));
        i += 1;
    }
    tokens
}

/// The GGUF writer holding a random model of shape `spec` (callers may break it before writing).
pub fn random_model_writer(spec: &SyntheticSpec, seed: u64) -> Result<GgufWriter, LlamaError> {
    let s = spec;
    if s.vocab < 258 || s.n_heads == 0 || s.n_kv_heads == 0 || s.hidden % s.n_heads != 0 {
        return Err(LlamaError::InvalidRequest {
            what: format!("synthetic model {s:?}: vocabulary below 258 or heads not dividing"),
        });
    }
    let mut rng = SplitMix(seed);
    let head_dim = s.hidden / s.n_heads;
    let kv = s.n_kv_heads * head_dim;
    let mut w = GgufWriter::new();
    let u = |v: usize| Meta::U32(v as u32);
    w.meta("general.architecture", Meta::Str("llama".into()))
        .meta("general.name", Meta::Str(format!("synthetic-{seed}")))
        .meta("llama.block_count", u(s.n_layers))
        .meta("llama.embedding_length", u(s.hidden))
        .meta("llama.attention.head_count", u(s.n_heads))
        .meta("llama.attention.head_count_kv", u(s.n_kv_heads))
        .meta("llama.feed_forward_length", u(s.ffn))
        .meta("llama.context_length", u(s.context))
        .meta("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5))
        .meta("llama.rope.freq_base", Meta::F32(s.rope_base))
        .meta("llama.rope.dimension_count", u(head_dim))
        .meta("tokenizer.ggml.model", Meta::Str("gpt2".into()))
        .meta("tokenizer.ggml.pre", Meta::Str("smollm".into()))
        .meta("tokenizer.ggml.tokens", Meta::Strs(vocabulary(s.vocab)))
        .meta("tokenizer.ggml.merges", Meta::Strs(Vec::new()))
        .meta(
            "tokenizer.ggml.token_type",
            Meta::I32s(
                (0..s.vocab)
                    .map(|i| if i == 256 || i == 257 { 3 } else { 1 })
                    .collect(),
            ),
        )
        .meta("tokenizer.ggml.bos_token_id", u(256))
        .meta("tokenizer.ggml.eos_token_id", u(257))
        .meta("tokenizer.chat_template", Meta::Str(CHATML.into()));
    let dims = |a: usize, b: usize| [a as u64, b as u64];
    let mut matrix = |w: &mut GgufWriter, name: &str, ins: usize, outs: usize| {
        let values = rng.uniform(ins * outs, 1.0 / (ins as f32).sqrt());
        w.tensor_f32(name, &dims(ins, outs), &values);
    };
    let gain = |rng: &mut SplitMix, n: usize| -> Vec<f32> {
        (0..n).map(|_| 1.0 + 0.1 * rng.unit()).collect()
    };
    for l in 0..s.n_layers {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        matrix(&mut w, &name("attn_q"), s.hidden, s.hidden);
        matrix(&mut w, &name("attn_k"), s.hidden, kv);
        matrix(&mut w, &name("attn_v"), s.hidden, kv);
        matrix(&mut w, &name("attn_output"), s.hidden, s.hidden);
        matrix(&mut w, &name("ffn_gate"), s.hidden, s.ffn);
        matrix(&mut w, &name("ffn_up"), s.hidden, s.ffn);
        matrix(&mut w, &name("ffn_down"), s.ffn, s.hidden);
    }
    let embedding = rng.uniform(s.vocab * s.hidden, 1.0);
    w.tensor_f32("token_embd.weight", &dims(s.hidden, s.vocab), &embedding);
    for l in 0..s.n_layers {
        let g1 = gain(&mut rng, s.hidden);
        let g2 = gain(&mut rng, s.hidden);
        w.tensor_f32(
            &format!("blk.{l}.attn_norm.weight"),
            &[s.hidden as u64],
            &g1,
        );
        w.tensor_f32(&format!("blk.{l}.ffn_norm.weight"), &[s.hidden as u64], &g2);
    }
    let g = gain(&mut rng, s.hidden);
    w.tensor_f32("output_norm.weight", &[s.hidden as u64], &g);
    if !s.tied {
        let head = rng.uniform(s.vocab * s.hidden, 1.0);
        w.tensor_f32("output.weight", &dims(s.hidden, s.vocab), &head);
    }
    Ok(w)
}

/// Writes a random model of shape `spec` drawn from `seed` to `path`.
pub fn write_random_model(path: &Path, spec: &SyntheticSpec, seed: u64) -> Result<(), LlamaError> {
    random_model_writer(spec, seed)?.write(path)
}
