//! The float model and the tokenizer against `reference-outputs.json` of all-MiniLM-L6-v2.
use bert::float_model::{l2_normalize, mean_pool};
use bert::{BertWeights, FloatBert, Tokenizer};
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/all-MiniLM-L6-v2")
}

#[test]
fn float_model_matches_reference_outputs() {
    let dir = model_dir();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference-outputs.json")).unwrap())
            .unwrap();
    let tokenizer = Tokenizer::from_model_dir(&dir).unwrap();
    let model = FloatBert::new(BertWeights::from_model_dir(&dir).unwrap());
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ids = tokenizer.encode(text);
        let want: Vec<u32> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, want, "{text}");
        let hidden = model.encode(&ids).unwrap();
        for (j, want) in floats(&case["last_hidden_state_token0_first8"])
            .iter()
            .enumerate()
        {
            let got = hidden[[0, j]];
            assert!(
                (got - want).abs() < 2e-5,
                "{text}: h[0][{j}] {got} vs {want}"
            );
        }
        let emb = l2_normalize(mean_pool(hidden.view()).view());
        let want = floats(&case["sentence_embedding"]);
        assert_eq!(emb.len(), want.len());
        let worst = emb
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{text}: embedding off by {worst}");
    }
}
