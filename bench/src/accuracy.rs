//! `bench accuracy`: sentiment accuracy of the classifier (encoder + mean pooling + logistic
//! head) on a labelled TSV file, in float, fixed-point or secure mode, and its agreement with the
//! float model's predictions.
//!
//! The head is read from `--head FILE`, or trained once on `--train` (float embeddings) and
//! cached in `--cache-dir`. Secure mode runs the two-party inference (both parties in this
//! process, one setup, one inference per sentence at `--seq-len` tokens, private padding mask)
//! and also reports the agreement with the fixed-point mirror of the same padded inputs.
use crate::seed::RunSeed;
use bert::calibrate::collect;
use bert::classifier::embed_all;
use bert::data::{read_tsv, Example};
use bert::fit::{fit_nimbus, Segments};
use bert::fixed_model::Ablation;
use bert::head::LogisticHead;
use bert::secure::{self, Client, EmbeddingMode, Head, Server};
use bert::{BertWeights, FixedBert, FloatBert, Tokenizer};
use mpc_core::{Channel, Error, Party, Result, Seed};
use ot_nonlinear::approx::{ApproxSet, TablesFile};
use ot_nonlinear::mpc::Session;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Evaluation mode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The f32 reference.
    Float,
    /// The fixed-point reference (what the secure run computes).
    Fixed,
    /// Secure two-party inference.
    Secure,
}

/// Approximation set of the nonlinear functions.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Approx {
    /// Nimbus: per-layer fitted low-degree pieces.
    Nimbus,
    /// PUMA: fixed high-degree pieces, exp by repeated squaring.
    Puma,
}

/// A part of the fixed-point pipeline to swap out (an ablation; see `bert::fixed_model::Ablation`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// GELU in f64.
    ExactGelu,
    /// Softmax exps in f64.
    ExactExp,
    /// Softmax reciprocal in f64.
    ExactReciprocal,
    /// LayerNorm in f64.
    ExactLayernorm,
    /// Floor truncations instead of round-to-nearest in linear layers and attention products.
    Floor,
}

/// Arguments of `bench accuracy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hugging Face model directory (config.json, model.safetensors, vocab.txt).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled TSV file (`label<TAB>…<TAB>text`, with a header).
    #[arg(long)]
    pub data: PathBuf,
    /// float, fixed or secure.
    #[arg(long, value_enum, default_value_t = Mode::Float)]
    pub mode: Mode,
    /// Approximation set for fixed and secure modes.
    #[arg(long, value_enum, default_value_t = Approx::Nimbus)]
    pub approx: Approx,
    /// Evaluate only the first N sentences.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Logistic head file; trained on `--train` and cached if absent.
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Training sentences for the head.
    #[arg(long, default_value = "../shared/data/sentiment/train.tsv")]
    pub train: PathBuf,
    /// Where the trained head (and fitted tables) are cached.
    #[arg(long, default_value = "target/bench-cache")]
    pub cache_dir: PathBuf,
    /// The server's key seed for `--mode secure` (created with mode 0600 if absent; refused
    /// inside `--cache-dir` or when readable by group or others).
    #[arg(long, default_value = crate::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Fitted Nimbus tables (`approx-tables-v1` JSON); if absent they are fitted on the first
    /// `--calibration` sentences of `--train` and cached in `--cache-dir`.
    #[arg(long)]
    pub tables: Option<PathBuf>,
    /// Number of calibration sentences for fitting the Nimbus tables.
    #[arg(long, default_value_t = 256)]
    pub calibration: usize,
    /// Weight each GELU calibration input by its downstream sensitivity (the squared norm of its
    /// output-projection row) when fitting.
    #[arg(long)]
    pub weighted: bool,
    /// Polynomial segments of the fitted GELU and exp, `G,E`. Default `3,2`: within 0.1 point
    /// of float on dev (Nimbus' shapes, `1,1`, lose 0.53); each segment more costs one
    /// comparison and one multiplexer per element.
    #[arg(long, default_value = "3,2", value_parser = parse_segments)]
    pub segments: Segments,
    /// Fixed mode only: parts of the pipeline to swap out, comma-separated (ablation studies).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub ablate: Vec<Swap>,
    /// Fixed mode only: run the fixed-point model only on sentences whose float logit is within
    /// ±M (the others keep the float prediction; a shortcut for ablations — check that the
    /// reported largest logit shift stays well below M).
    #[arg(long)]
    pub margin: Option<f64>,
    /// Secure mode only: tokens per inference (sentences are padded with a private mask, or cut).
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    /// Secure mode only: pad each sentence to the next multiple of B tokens (at most
    /// `--seq-len`) instead of to `--seq-len`; sentences of one length class share a session.
    /// The padded length is public, as `--seq-len` is.
    #[arg(long)]
    pub bucket: Option<usize>,
    /// Write `{"mode","approx","n","accuracy","agreement_with_float"}` here (secure mode adds
    /// `agreement_with_fixed`).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// L2 strength of the head (on standardised features).
const HEAD_L2: f64 = 1.0;

#[derive(serde::Serialize)]
struct Report {
    mode: Mode,
    approx: Approx,
    n: usize,
    accuracy: f64,
    agreement_with_float: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_with_fixed: Option<f64>,
    /// Accuracy of the float model on the same sentences (secure mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    float_accuracy: Option<f64>,
    /// Accuracy of the fixed-point mirror on the same padded inputs (secure mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_accuracy: Option<f64>,
}

/// Runs `bench accuracy`.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let mut examples = read_tsv(&args.data)?;
    if let Some(limit) = args.limit {
        examples.truncate(limit);
    }
    if examples.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no sentences to evaluate",
            args.data.display()
        )));
    }
    let tokenizer = Tokenizer::from_model_dir(&args.model)?;
    let float = FloatBert::new(BertWeights::from_model_dir(&args.model)?);
    let head = load_or_train_head(&args, &float, &tokenizer)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();

    let start = Instant::now();
    let float_logits = logits(&head, &embed_all(&float, &tokenizer, &texts)?);
    let float_pred = predict(&float_logits);
    eprintln!(
        "float: {} sentences in {:.1?}",
        texts.len(),
        start.elapsed()
    );
    let mut agreement_with_fixed = None;
    let mut fixed_accuracy = None;
    let pred = match args.mode {
        Mode::Float => float_pred.clone(),
        Mode::Fixed => {
            let set = approx_set(&args, &float, &tokenizer)?;
            let fixed = FixedBert::ablated(float.weights(), set, ablation(&args.ablate))?;
            let margin = args.margin.unwrap_or(f64::INFINITY);
            let close: Vec<usize> = (0..texts.len())
                .filter(|&i| float_logits[i].abs() < margin)
                .collect();
            let subset: Vec<&str> = close.iter().map(|&i| texts[i]).collect();
            let start = Instant::now();
            let fixed_logits = logits(&head, &embed_all(&fixed, &tokenizer, &subset)?);
            eprintln!(
                "fixed: {} sentences in {:.1?}",
                subset.len(),
                start.elapsed()
            );
            let float_close: Vec<f64> = close.iter().map(|&i| float_logits[i]).collect();
            print_logit_shift(&float_close, &fixed_logits);
            let mut pred = float_pred.clone();
            for (&i, p) in close.iter().zip(predict(&fixed_logits)) {
                pred[i] = p;
            }
            pred
        }
        Mode::Secure => {
            let set = approx_set(&args, &float, &tokenizer)?;
            let fixed = FixedBert::new(float.weights(), set)?;
            let (pred, fixed_pred) =
                secure_predictions(&args, seed, &fixed, &head, &tokenizer, &texts)?;
            agreement_with_fixed = Some(fraction(&pred, &fixed_pred, |p, f| p == *f));
            fixed_accuracy = Some(fraction(&fixed_pred, &examples, |p, e| p == e.label));
            pred
        }
    };
    let n = examples.len();
    let report = Report {
        mode: args.mode,
        approx: args.approx,
        n,
        accuracy: fraction(&pred, &examples, |p, e| p == e.label),
        agreement_with_float: fraction(&pred, &float_pred, |p, f| p == *f),
        agreement_with_fixed,
        float_accuracy: fixed_accuracy
            .map(|_| fraction(&float_pred, &examples, |p, e| p == e.label)),
        fixed_accuracy,
    };
    println!(
        "mode {:?} approx {:?}: n = {n}, accuracy = {:.4}, agreement with float = {:.4}{}",
        report.mode,
        report.approx,
        report.accuracy,
        report.agreement_with_float,
        agreement_with_fixed.map_or(String::new(), |a| format!(", with fixed point = {a:.4}"))
    );
    if let (Some(fl), Some(fx)) = (report.float_accuracy, report.fixed_accuracy) {
        println!("same sentences: float accuracy = {fl:.4}, fixed-point accuracy = {fx:.4}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::malformed("JSON output", e.to_string(), "serializable data"))?;
        mpc_core::error::write_file(path, text + "\n")?;
    }
    Ok(())
}

/// Secure predictions of every sentence (both parties in this process, one setup per padded
/// length, one inference per sentence) and the fixed-point mirror's predictions of the same
/// padded inputs.
fn secure_predictions(
    args: &Args,
    seed: RunSeed,
    fixed: &FixedBert,
    head: &LogisticHead,
    tokenizer: &Tokenizer,
    texts: &[&str],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let head = Head::from_logistic(head);
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
    let padded_len = |n: usize| match args.bucket {
        Some(b) if b > 0 => n.max(1).div_ceil(b).saturating_mul(b).min(args.seq_len),
        _ => args.seq_len,
    };
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, s) in ids.iter().enumerate() {
        by_len.entry(padded_len(s.len())).or_default().push(i);
    }
    let (mut pred, mut fixed_pred) = (vec![0u8; texts.len()], vec![0u8; texts.len()]);
    let (start, mut done, mut agreed) = (Instant::now(), 0, 0);
    for (&seq_len, members) in &by_len {
        let batch: Vec<&[u32]> = members.iter().map(|&i| ids[i].as_slice()).collect();
        let batch_seed = seed.named(&format!("accuracy/{seq_len}"));
        let (p, f) = secure_batch(
            args,
            batch_seed,
            fixed,
            &head,
            seq_len,
            &batch,
            |k, same| {
                eprintln!(
                "secure: {}/{} sentences in {:.1?} ({seq_len} tokens), {} agree with the mirror",
                done + k,
                texts.len(),
                start.elapsed(),
                agreed + same
            )
            },
        )?;
        done += members.len();
        agreed += p.iter().zip(&f).filter(|(a, b)| a == b).count();
        for (j, &i) in members.iter().enumerate() {
            (pred[i], fixed_pred[i]) = (p[j], f[j]);
        }
    }
    Ok((pred, fixed_pred))
}

/// One session at `seq_len` tokens: setup (the client's encrypted-weight cache is shared by
/// every length), then one inference per sentence; `progress(k, agreeing)` after every tenth
/// (`agreeing`: how many of the k secure predictions equal the mirror's).
fn secure_batch(
    args: &Args,
    seed: Seed,
    fixed: &FixedBert,
    head: &Head,
    seq_len: usize,
    sentences: &[&[u32]],
    progress: impl Fn(usize, usize),
) -> Result<(Vec<u8>, Vec<u8>)> {
    let vocab = fixed.config().vocab_size;
    let dir = args.cache_dir.join("secure-accuracy");
    let key_seed =
        he_linear::key_file::load_or_create_key_seed(&args.key_file, &[&args.cache_dir])?;
    let mut server = Server::new(fixed, head, seq_len, EmbeddingMode::Server, key_seed)?;
    let (cs, cc) = Channel::mem_pair();
    let n = sentences.len();
    let t = std::thread::spawn(move || -> Result<()> {
        let mut sess = Session::new(cs, Party::Server, seed.derive(0))?;
        server.setup(&mut sess)?;
        (0..n).try_for_each(|_| server.infer(&mut sess))
    });
    let client_side = || -> Result<(Vec<u8>, Vec<u8>)> {
        let mut sess = Session::new(cc, Party::Client, seed.derive(1))?;
        let client = Client::setup(&mut sess, &dir)?;
        let (mut pred, mut fixed_pred) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (i, ids) in sentences.iter().enumerate() {
            let logits = client.infer(&mut sess, ids)?;
            let (padded, mask) = secure::pad(ids, seq_len, vocab)?;
            let want = secure::fixed_reference(fixed, &padded, &mask, head)?;
            pred.extend(predict(&logits));
            fixed_pred.extend(predict(&want));
            if (i + 1) % 10 == 0 || i + 1 == n {
                let same = pred.iter().zip(&fixed_pred).filter(|(a, b)| a == b).count();
                progress(i + 1, same);
            }
        }
        Ok((pred, fixed_pred))
    };
    let result = client_side();
    let server = t
        .join()
        .map_err(|_| Error::Unavailable("server thread panicked".into()))?;
    let out = result?;
    server?;
    Ok(out)
}

/// The approximation set of `--approx`: PUMA's constants, or the Nimbus tables fitted per layer
/// (from `--tables`, the cache, or a fresh fit that is then cached).
fn approx_set(args: &Args, float: &FloatBert, tokenizer: &Tokenizer) -> Result<ApproxSet> {
    let layers = float.weights().config.num_hidden_layers;
    if args.approx == Approx::Puma {
        return Ok(ApproxSet::puma());
    }
    if let Some(path) = &args.tables {
        return Ok(TablesFile::load(path, layers)?.set);
    }
    let name = model_name(&args.model);
    let segments = args.segments;
    let shape = if segments == Segments::NIMBUS {
        String::new()
    } else {
        format!(", {} GELU and {} exp segments", segments.gelu, segments.exp)
    };
    let calibration = format!(
        "first {} sentences of {}{}{shape}",
        args.calibration,
        canonical(&args.train),
        if args.weighted {
            ", GELU weighted by sensitivity"
        } else {
            ""
        }
    );
    let suffix = if segments == Segments::NIMBUS {
        String::new()
    } else {
        format!("-{}x{}", segments.gelu, segments.exp)
    };
    let cache = args
        .cache_dir
        .join(format!("{name}-nimbus{suffix}-tables.json"));
    if let Ok(file) = TablesFile::load(&cache, layers) {
        if file.calibration.starts_with(&format!("{calibration} (")) {
            eprintln!("tables: cached {}", cache.display());
            return Ok(file.set);
        }
    }
    let train = read_tsv(&args.train)?;
    let texts: Vec<&str> = train
        .iter()
        .take(args.calibration)
        .map(|e| e.text.as_str())
        .collect();
    let calib = collect(float, tokenizer, &texts)?;
    let description = format!("{calibration} ({} tokens)", calib.tokens);
    let file = fit_nimbus(
        &calib,
        args.weighted.then(|| float.weights()),
        segments,
        &name,
        &description,
    )?;
    for (l, t) in file.set.layers.iter().enumerate() {
        eprintln!("layer {l}: gelu {:?}, exp {:?}", t.gelu, t.exp);
    }
    for r in &file.errors {
        eprintln!(
            "layer {} {}: {} inputs, rmse {:.5}, max error {:.5}",
            r.layer, r.function, r.samples, r.rmse, r.max_error
        );
    }
    std::fs::create_dir_all(&args.cache_dir)?;
    file.save(&cache)?;
    eprintln!(
        "tables: fitted on {description}, cached at {}",
        cache.display()
    );
    Ok(file.set)
}

fn parse_segments(s: &str) -> std::result::Result<Segments, String> {
    Segments::parse(s).map_err(|e| e.to_string())
}

fn ablation(swaps: &[Swap]) -> Ablation {
    let has = |s| swaps.contains(&s);
    Ablation {
        exact_gelu: has(Swap::ExactGelu),
        exact_exp: has(Swap::ExactExp),
        exact_reciprocal: has(Swap::ExactReciprocal),
        exact_layernorm: has(Swap::ExactLayernorm),
        floor: has(Swap::Floor),
    }
}

fn logits(head: &LogisticHead, embeddings: &[Vec<f64>]) -> Vec<f64> {
    embeddings.iter().map(|e| head.logit(e)).collect()
}

fn predict(logits: &[f64]) -> Vec<u8> {
    logits.iter().map(|&z| u8::from(z >= 0.0)).collect()
}

/// How the head's logit moves from float to fixed point (mean and spread of the shift), and how
/// many sentences the float model decides by a margin smaller than the shift's spread.
fn print_logit_shift(float: &[f64], fixed: &[f64]) {
    let n = float.len() as f64;
    let d: Vec<f64> = fixed.iter().zip(float).map(|(a, b)| a - b).collect();
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let close = |m: f64| float.iter().filter(|z| z.abs() < m).count();
    eprintln!(
        "logit shift fixed − float: mean {mean:+.4}, sd {sd:.4}, max |shift| {:.4}; \
         float |logit| < sd: {}, < 2 sd: {}, < 0.05: {}",
        d.iter().fold(0.0f64, |m, x| m.max(x.abs())),
        close(sd),
        close(2.0 * sd),
        close(0.05)
    );
}

fn fraction<T>(pred: &[u8], truth: &[T], same: impl Fn(u8, &T) -> bool) -> f64 {
    let hits = pred.iter().zip(truth).filter(|(&p, t)| same(p, t)).count();
    hits as f64 / pred.len() as f64
}

/// The head from `--head`, or the cached one trained on `--train`, or a freshly trained one.
fn load_or_train_head(
    args: &Args,
    float: &FloatBert,
    tokenizer: &Tokenizer,
) -> Result<LogisticHead> {
    let dim = float.weights().config.hidden_size;
    if let Some(path) = &args.head {
        return LogisticHead::load(path, dim);
    }
    let provenance = format!(
        "model {} train {} l2 {HEAD_L2} floored scales",
        canonical(&args.model),
        canonical(&args.train)
    );
    let cache = args
        .cache_dir
        .join(format!("{}-head.json", model_name(&args.model)));
    if let Ok(head) = LogisticHead::load(&cache, dim) {
        if head.trained_on == provenance {
            eprintln!("head: cached {}", cache.display());
            return Ok(head);
        }
    }
    let train = read_tsv(&args.train)?;
    let start = Instant::now();
    let feats = train_embeddings(args, float, tokenizer, &train)?;
    let labels: Vec<u8> = train.iter().map(|e: &Example| e.label).collect();
    let head = LogisticHead::train(&feats, &labels, HEAD_L2, &provenance)?;
    let train_acc = fraction(
        &predict(&logits(
            &head,
            &feats
                .iter()
                .map(|f| f.iter().map(|&x| x as f64).collect())
                .collect::<Vec<_>>(),
        )),
        &train,
        |p, e| p == e.label,
    );
    eprintln!(
        "head: trained on {} sentences in {:.1?} (train accuracy {train_acc:.4}), cached at {}",
        train.len(),
        start.elapsed(),
        cache.display()
    );
    std::fs::create_dir_all(&args.cache_dir)?;
    head.save(&cache)?;
    Ok(head)
}

/// Float embeddings of the training sentences, cached in `--cache-dir` (they cost minutes).
fn train_embeddings(
    args: &Args,
    float: &FloatBert,
    tokenizer: &Tokenizer,
    train: &[Example],
) -> Result<Vec<Vec<f32>>> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cached {
        provenance: String,
        embeddings: Vec<Vec<f32>>,
    }
    let provenance = format!(
        "model {} train {}",
        canonical(&args.model),
        canonical(&args.train)
    );
    let path = args
        .cache_dir
        .join(format!("{}-train-embeddings.json", model_name(&args.model)));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(c) = serde_json::from_str::<Cached>(&text) {
            if c.provenance == provenance && c.embeddings.len() == train.len() {
                return Ok(c.embeddings);
            }
        }
    }
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let embeddings: Vec<Vec<f32>> = embed_all(float, tokenizer, &texts)?
        .into_iter()
        .map(|e| e.into_iter().map(|x| x as f32).collect())
        .collect();
    std::fs::create_dir_all(&args.cache_dir)?;
    let cached = Cached {
        provenance,
        embeddings,
    };
    let text = serde_json::to_string(&cached)
        .map_err(|e| Error::malformed("JSON output", e.to_string(), "serializable data"))?;
    std::fs::write(&path, text)?;
    Ok(cached.embeddings)
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

fn model_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: Mode, data: &str) -> Args {
        Args {
            model: "../../shared/data/all-MiniLM-L6-v2".into(),
            data: data.into(),
            mode,
            approx: Approx::Nimbus,
            limit: None,
            head: None,
            train: "../../shared/data/sentiment/train.tsv".into(),
            cache_dir: std::env::temp_dir(),
            key_file: crate::DEFAULT_KEY_FILE.into(),
            tables: None,
            calibration: 256,
            weighted: false,
            segments: Segments::NIMBUS,
            ablate: vec![],
            margin: None,
            seq_len: 64,
            bucket: None,
            json: None,
        }
    }

    #[test]
    fn secure_mode_reports_a_missing_data_file() {
        let err = run(
            args(Mode::Secure, "no-such-file.tsv"),
            RunSeed::from_arg(Some(1)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no-such-file.tsv"), "{err}");
    }

    #[test]
    fn bad_data_file_is_named() {
        let dir = std::env::temp_dir().join(format!("acc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.tsv");
        std::fs::write(&path, "label\ttext\n1\tgood\nyes\tbad\n").unwrap();
        let err = run(
            args(Mode::Float, path.to_str().unwrap()),
            RunSeed::from_arg(Some(1)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bad.tsv:3: got label `yes`, expected 0 or 1"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
