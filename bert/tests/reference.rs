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

#[test]
fn fixed_model_tracks_float_on_real_sentences() {
    use bert::classifier::Embedder;
    use bert::FixedBert;
    use ot_nonlinear::approx::ApproxSet;
    let dir = model_dir();
    let tokenizer = Tokenizer::from_model_dir(&dir).unwrap();
    let weights = BertWeights::from_model_dir(&dir).unwrap();
    let float = FloatBert::new(weights.clone());
    let ids = tokenizer.encode("it's a bad sign when you're rooting for the film to end.");
    let want = float.embed(&ids).unwrap();
    // Nimbus tables fitted per layer on a few training sentences.
    let train = bert::data::read_tsv(&dir.join("../sentiment/train.tsv")).unwrap();
    let texts: Vec<&str> = train.iter().take(16).map(|e| e.text.as_str()).collect();
    let calibration = bert::calibrate::collect(&float, &tokenizer, &texts).unwrap();
    let fitted = bert::fit::fit_nimbus(
        &calibration,
        None,
        bert::fit::Segments::NIMBUS,
        "all-MiniLM-L6-v2",
        "test",
    )
    .unwrap();
    assert_eq!(fitted.set.layers.len(), 6);
    for (l, t) in fitted.set.layers.iter().enumerate() {
        eprintln!("layer {l}: {:?}", t);
    }
    for set in [ApproxSet::puma(), fitted.set] {
        let name = set.name.clone();
        let fixed = FixedBert::new(&weights, set).unwrap();
        let got = fixed.embed(&ids).unwrap();
        let dot: f64 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cos = dot / (norm(&got) * norm(&want));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: cosine {cos}, max error {worst}");
        // Nimbus's low-degree pieces (identity above T2) cost more than PUMA's; the accuracy
        // command measures what that does to the classifier.
        let min_cos = if name == "puma" { 0.999 } else { 0.98 };
        assert!(cos > min_cos, "{name}: cosine {cos}, max error {worst}");
    }
}

#[test]
fn committed_nimbus_tables_load() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tables/all-MiniLM-L6-v2.nimbus.json");
    let file = ot_nonlinear::approx::TablesFile::load(&path, 6).unwrap();
    assert_eq!(file.set.layers.len(), 6);
    assert_eq!(file.errors.len(), 12);
    assert!(ot_nonlinear::approx::TablesFile::load(&path, 12).is_err());
}
