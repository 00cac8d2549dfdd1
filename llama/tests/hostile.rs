//! Broken GGUF files (written by `llama::gguf_write` in a temporary directory) and oversized
//! requests give a clear error naming the file (and the tensor or key), never a panic.
use llama::gguf_write::GgufWriter;
use llama::synthetic::{random_model_writer, SyntheticSpec};
use llama::{FloatModel, LlamaError, Model};
use std::path::Path;

fn writer() -> GgufWriter {
    random_model_writer(&SyntheticSpec::tiny(), 5).unwrap()
}

fn load(dir: &Path, name: &str, bytes: &[u8]) -> (String, Result<Model, LlamaError>) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    (path.display().to_string(), Model::load(&path))
}

fn error_of(dir: &Path, name: &str, bytes: &[u8]) -> (String, LlamaError) {
    let (path, r) = load(dir, name, bytes);
    let e = r.expect_err("a broken file must be refused");
    let msg = e.to_string();
    eprintln!("{name}: {msg}");
    assert!(msg.contains(&path), "{msg:?} does not name {path}");
    (msg, e)
}

#[test]
fn the_synthetic_file_itself_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = load(dir.path(), "ok.gguf", &writer().to_bytes());
    let model = r.unwrap();
    assert_eq!(model.config.n_layers, 2);
    assert_eq!(model.config.vocab, 300);
}

#[test]
fn a_truncated_file_is_refused_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = writer().to_bytes();
    // Cut inside the header, the metadata, the tensor infos and the data; every cut refused.
    let step = bytes.len() / 97;
    for cut in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
        let (path, r) = load(dir.path(), "cut.gguf", &bytes[..cut]);
        let msg = r.expect_err("truncated").to_string();
        assert!(msg.contains(&path), "cut at {cut}: {msg}");
    }
    // A cut in the last tensor's data names that tensor.
    let (msg, e) = error_of(dir.path(), "cut-data.gguf", &bytes[..bytes.len() - 1]);
    assert!(matches!(e, LlamaError::Truncated { .. }), "{e:?}");
    assert!(msg.contains("tensor"), "{msg}");
}

#[test]
fn a_wrong_magic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer();
    w.magic = *b"GGML";
    let (_, e) = error_of(dir.path(), "magic.gguf", &w.to_bytes());
    assert!(matches!(e, LlamaError::BadMagic { found, .. } if &found == b"GGML"));
}

#[test]
fn an_unsupported_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for version in [1, 4] {
        let mut w = writer();
        w.version = version;
        let (msg, e) = error_of(dir.path(), "version.gguf", &w.to_bytes());
        assert!(
            matches!(e, LlamaError::UnsupportedVersion { version: v, .. } if v == version),
            "{msg}"
        );
    }
}

#[test]
fn an_unsupported_tensor_type_is_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer();
    // ggml type 10 (Q2_K): 84 bytes per 256 weights; 64 × 64 weights = 16 blocks.
    w.tensor_raw("blk.1.attn_q.weight", &[64, 64], 10, vec![0; 16 * 84]);
    let (msg, e) = error_of(dir.path(), "type.gguf", &w.to_bytes());
    assert!(
        matches!(&e, LlamaError::UnsupportedTensorType { tensor, ggml_type: 10, .. }
            if tensor == "blk.1.attn_q.weight"),
        "{msg}"
    );
}

#[test]
fn a_missing_tensor_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer();
    w.remove_tensor("blk.1.ffn_down.weight");
    let (msg, e) = error_of(dir.path(), "missing.gguf", &w.to_bytes());
    assert!(
        matches!(&e, LlamaError::MissingTensor { tensor, .. } if tensor == "blk.1.ffn_down.weight"),
        "{msg}"
    );
}

#[test]
fn a_misshapen_tensor_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer();
    // attn_k is 64 → 32 (two key/value heads of 16); written 64 → 64.
    w.tensor_f32("blk.0.attn_k.weight", &[64, 64], &vec![0.0; 64 * 64]);
    let (msg, e) = error_of(dir.path(), "shape.gguf", &w.to_bytes());
    assert!(
        matches!(&e, LlamaError::TensorShape { tensor, expected, found, .. }
            if tensor == "blk.0.attn_k.weight" && expected == &[64, 32] && found == &[64, 64]),
        "{msg}"
    );
    // A tensor whose announced size runs past the end of the file.
    let mut w = writer();
    w.tensor_raw("output_norm.weight", &[64], 0, vec![0; 16]);
    let (msg, e) = error_of(dir.path(), "short.gguf", &w.to_bytes());
    assert!(
        matches!(&e, LlamaError::Truncated { .. }) && msg.contains("output_norm.weight"),
        "{msg}"
    );
}

#[test]
fn a_missing_metadata_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer();
    w.remove_meta("llama.block_count");
    let (msg, _) = error_of(dir.path(), "meta.gguf", &w.to_bytes());
    assert!(msg.contains("llama.block_count"), "{msg}");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = load(dir.path(), "ok.gguf", &writer().to_bytes());
    let model = r.unwrap();
    let ids = vec![65u32; model.config.context + 1];
    let e = FloatModel::new(&model)
        .generate_greedy(&ids, 1)
        .unwrap_err();
    assert!(matches!(e, LlamaError::ContextExceeded { .. }), "{e}");
    let fixed = llama::fixed_model::FixedLlama::with_default_set(&model).unwrap();
    let e = llama::fixed_model::FixedDecoder::new(&fixed)
        .forward(&ids)
        .unwrap_err();
    assert!(e.to_string().contains("context"), "{e}");
}
