//! `bench train`: secure logistic-regression training between two data holders on a CSV file
//! (both holders in this process, each on its own thread, over an in-memory link shaped by
//! `--net`), next to its plaintext twin and the f64 reference with the exact sigmoid.
//!
//! Prints per epoch the secure run's cost (holder A's view: bytes both ways, rounds, wall
//! time) and the twin's and the f64 reference's training loss (the secure run opens no
//! intermediate model), then test accuracy, balanced accuracy and AUC of the three models.
//! `--json FILE` writes the keys of issue 20 (plus setup costs and the per-epoch lists).
use crate::seed::RunSeed;
use mpc_core::{Error, NetProfile, Result, Stats};
use nn::sigmoid::SigmoidApprox;
use train::config::{ClassWeight, Reveal, RowSplit, TrainConfig};
use train::data::Dataset;
use train::metrics::{evaluate, log_loss, Metrics};

/// Arguments of `bench train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The CSV file: header, `split` (train/test), `label` (0/1), numeric features.
    #[arg(long)]
    data: std::path::PathBuf,
    /// Rows split between the holders: `rows:K` (A holds the first K training rows) or
    /// `random:SEED`.
    #[arg(long, default_value = "random:1")]
    split: String,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Mini-batch size B.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Learning rate η.
    #[arg(long, default_value_t = 1.0)]
    lr: f64,
    /// `balanced` (cw_c = n/(2·n_c), on shares) or `none`.
    #[arg(long, default_value = "balanced")]
    class_weight: String,
    /// Sigmoid approximation: pl3, pl5 or poly.
    #[arg(long, default_value = "pl5")]
    sigmoid: String,
    /// Who learns the model: both, a or b.
    #[arg(long, default_value = "both")]
    reveal: String,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Keep about 1 minority row in N (the imbalanced variant; seeded by --shuffle-seed).
    #[arg(long)]
    subsample_minority: Option<usize>,
    /// Seed of the public batch order (and of the minority subsample).
    #[arg(long, default_value_t = 1)]
    shuffle_seed: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(serde::Serialize, Debug)]
struct Scores {
    accuracy: f64,
    balanced_accuracy: f64,
    auc: f64,
}

impl From<Metrics> for Scores {
    fn from(m: Metrics) -> Scores {
        Scores {
            accuracy: m.accuracy,
            balanced_accuracy: m.balanced_accuracy,
            auc: m.auc,
        }
    }
}

#[derive(serde::Serialize, Debug, Default, Clone, Copy)]
struct Cost {
    bytes: u64,
    rounds: u64,
    wall_s: f64,
}

impl From<Stats> for Cost {
    fn from(s: Stats) -> Cost {
        Cost {
            bytes: s.bytes(),
            rounds: s.rounds,
            wall_s: s.wall_s,
        }
    }
}

#[derive(serde::Serialize, Debug)]
struct Report {
    data: String,
    split: String,
    net: String,
    sigmoid: String,
    class_weight: String,
    subsample_minority: Option<usize>,
    batch: usize,
    lr: f64,
    n_train: usize,
    n_test: usize,
    train_positives: usize,
    features: usize,
    epochs: usize,
    secure: Scores,
    twin: Scores,
    float: Scores,
    /// Largest |secure − twin| over the opened model's coefficients.
    secure_twin_max_diff: f64,
    /// Largest |secure − twin| / max(1, |twin|) (docs/protocols/training.md, "Secure vs twin").
    secure_twin_max_rel_diff: f64,
    /// Largest |P_secure(y = 1 | x) − P_twin(y = 1 | x)| over the test rows.
    secure_twin_max_prob_diff: f64,
    per_epoch: Cost,
    total: Cost,
    setup: Cost,
    ot_setup: Cost,
    ot_extend: Cost,
    reveal: Cost,
    epochs_cost: Vec<Cost>,
    twin_loss: Vec<f64>,
    float_loss: Vec<f64>,
}

/// Runs `bench train`.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let net: NetProfile = args.net.parse()?;
    let loaded = Dataset::load(&args.data).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let data = match args.subsample_minority {
        Some(k) => loaded.subsample_minority(k, args.shuffle_seed),
        None => loaded,
    };
    let split: RowSplit = args.split.parse()?;
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        class_weight: args.class_weight.parse::<ClassWeight>()?,
        sigmoid: args.sigmoid.parse::<SigmoidApprox>()?,
        shuffle_seed: args.shuffle_seed,
    };
    let reveal: Reveal = args.reveal.parse()?;
    let owners = split.owners(data.train.len())?;
    cfg.check(data.train.len())?;
    let positives = data.train.iter().filter(|s| s.label).count();
    println!(
        "train: {} training rows ({} positive; A holds {}), {} test rows, {} features; \
         {} epochs, batch {}, η = {}, class weights {:?}, sigmoid {}, net {}",
        data.train.len(),
        positives,
        owners
            .iter()
            .filter(|&&h| h == train::config::Holder::A)
            .count(),
        data.test.len(),
        data.features.len(),
        cfg.epochs,
        cfg.batch,
        cfg.lr,
        cfg.class_weight,
        cfg.sigmoid,
        net.name()
    );
    let float = train::float::train_float(&data.train, &cfg);
    let twin = train::twin::train_twin(&data.train, &owners, cfg)?;
    let (a, b) = train::secure::train_two_party(
        &data.train,
        &owners,
        cfg,
        reveal,
        net,
        seed.named("train"),
    )?;
    let secure = a
        .model
        .clone()
        .or(b.model.clone())
        .ok_or_else(|| Error::Unavailable("no holder learnt the model".into()))?;
    println!("epoch | bytes (A's view, both ways) | rounds | wall s | twin loss | f64 loss");
    let total = a.total;
    for (e, s) in a.epochs.iter().enumerate() {
        println!(
            "{:5} | {:>27} | {:6} | {:6.2} | {:9.4} | {:8.4}",
            e + 1,
            s.bytes(),
            s.rounds,
            s.wall_s,
            log_loss(&twin[e], &data.train),
            log_loss(&float[e], &data.train)
        );
    }
    let twin_model = &twin[cfg.epochs - 1];
    let pairs: Vec<(f64, f64)> = std::iter::once((secure.bias, twin_model.bias))
        .chain(
            secure
                .weights
                .iter()
                .copied()
                .zip(twin_model.weights.iter().copied()),
        )
        .collect();
    let diff = pairs.iter().map(|(s, t)| (s - t).abs()).fold(0.0, f64::max);
    // The documented bound's measure (docs/protocols/training.md, "Secure vs twin").
    let rel_diff = pairs
        .iter()
        .map(|(s, t)| (s - t).abs() / t.abs().max(1.0))
        .fold(0.0, f64::max);
    let prob_diff = data
        .test
        .iter()
        .map(|r| (secure.probability(&r.x) - twin_model.probability(&r.x)).abs())
        .fold(0.0, f64::max);
    let (ms, mt, mf) = (
        evaluate(&secure, &data.test),
        evaluate(twin_model, &data.test),
        evaluate(&float[cfg.epochs - 1], &data.test),
    );
    println!(
        "setup: {} bytes, {} rounds, {:.2} s (Ferret setup apart: {} bytes, {:.2} s); \
         COT extensions reserved before the epochs: {} bytes, {:.2} s; reveal: {} bytes, {} rounds",
        a.setup.bytes(),
        a.setup.rounds,
        a.setup.wall_s,
        a.ot_setup.bytes(),
        a.ot_setup.wall_s,
        a.ot_extend.bytes(),
        a.ot_extend.wall_s,
        a.reveal.bytes(),
        a.reveal.rounds
    );
    println!("model | accuracy | balanced accuracy | AUC");
    for (name, m) in [("secure", ms), ("twin", mt), ("f64", mf)] {
        println!(
            "{name:6} | {:8.4} | {:17.4} | {:.4}",
            m.accuracy, m.balanced_accuracy, m.auc
        );
    }
    println!(
        "total (after the Ferret setup): {} bytes, {} rounds, {:.2} s; secure − twin over the model: max {diff:.3e}, \
         max relative (to max(1, |twin|)) {rel_diff:.3e}; test probabilities: max {prob_diff:.3e}",
        total.bytes(),
        total.rounds,
        total.wall_s
    );
    let epochs_cost: Vec<Cost> = a.epochs.iter().map(|&s| s.into()).collect();
    let n_epochs = epochs_cost.len().max(1) as f64;
    let per_epoch = Cost {
        bytes: (epochs_cost.iter().map(|c| c.bytes).sum::<u64>() as f64 / n_epochs).round() as u64,
        rounds: (epochs_cost.iter().map(|c| c.rounds).sum::<u64>() as f64 / n_epochs).round()
            as u64,
        wall_s: epochs_cost.iter().map(|c| c.wall_s).sum::<f64>() / n_epochs,
    };
    if let Some(path) = &args.json {
        let report = Report {
            data: args.data.display().to_string(),
            split: args.split.clone(),
            net: net.name().to_string(),
            sigmoid: cfg.sigmoid.to_string(),
            class_weight: args.class_weight.clone(),
            subsample_minority: args.subsample_minority,
            batch: cfg.batch,
            lr: cfg.lr,
            n_train: data.train.len(),
            n_test: data.test.len(),
            train_positives: positives,
            features: data.features.len(),
            epochs: cfg.epochs,
            secure: ms.into(),
            twin: mt.into(),
            float: mf.into(),
            secure_twin_max_diff: diff,
            secure_twin_max_rel_diff: rel_diff,
            secure_twin_max_prob_diff: prob_diff,
            per_epoch,
            total: total.into(),
            setup: a.setup.into(),
            ot_setup: a.ot_setup.into(),
            ot_extend: a.ot_extend.into(),
            reveal: a.reveal.into(),
            epochs_cost,
            twin_loss: twin.iter().map(|m| log_loss(m, &data.train)).collect(),
            float_loss: float.iter().map(|m| log_loss(m, &data.train)).collect(),
        };
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("JSON: {e}")))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}
