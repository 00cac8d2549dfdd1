//! `bench --model bert-base --net wan`: a full secure two-party BERT inference, reported per
//! component and per layer like the Nimbus paper (time, MB, rounds), next to Nimbus's published
//! per-block figures; setup (encrypted weights, cached on disk) reported separately.
//!
//! Both parties run in this process on two threads over a shaped in-memory link by default;
//! `--role server --listen ADDR` and `--role client --connect ADDR` run them as two processes
//! over TCP. Correctness is checked before anything is printed: the client's logits must match
//! the fixed-point reference (bound below) and are compared with the float model — always with
//! both parties in this process, with `--check` for `--role client` (a real client holds no
//! model: without `--check` it reads only the public configuration and vocabulary).
//!
//! The server's long-term key seed lives in `--key-file` (default
//! [`crate::DEFAULT_KEY_FILE`], a server-only directory), never in the client's cache: it is
//! created 0600 and refused when inside a cache directory or readable by group or others
//! (`he_linear::key_file`).
use crate::progress::Progress;
use crate::seed::RunSeed;
use bert::fixed_model::FixedBert;
use bert::secure::{self, AttentionMode, Client, EmbeddingMode, Head, Server};
use bert::{BertConfig, BertWeights, FloatBert, Tokenizer};
use he_linear::key_file::load_or_create_key_seed;
use mpc_core::{Channel, Error, NetProfile, Party, Result, Seed, Stats};
use nn::label::{layer_of, Component as Label};
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::mpc::Session;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The sentence of a run without `--text`.
const DEFAULT_TEXT: &str = "a gripping, beautifully acted film whose quiet final scenes stay \
                            with you long after the credits roll";

/// Arguments of the end-to-end run (the top-level `bench --model ...`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// bert-base, bert-large, bert-tiny (2 layers, hidden 128) or a Hugging Face model directory.
    #[arg(long)]
    pub model: String,
    /// Tokens per inference (the sentence is padded or cut to it; padding is masked).
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Approximation set: nimbus or puma.
    #[arg(long, default_value = "nimbus")]
    approx: String,
    /// Fitted approximation tables (approx-tables file); default for nimbus: the model's
    /// committed 3 GELU / 2 exp segment tables (`bert/tables/NAME.nimbus-3x2.json`), else its
    /// one-segment tables (`NAME.nimbus.json`), else the set's starting constants.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Worker threads per process (rayon); default all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// The client's cache of encrypted weights (reused across runs).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The server's key seed (created with mode 0600 if absent; refused inside the cache
    /// directory or when readable by group or others).
    #[arg(long, default_value = crate::DEFAULT_KEY_FILE)]
    key_file: PathBuf,
    /// `--role client`: also load the model and compare the secure logits with the fixed-point
    /// and float references (off by default: a real client has no model file). Always on with
    /// both parties in this process.
    #[arg(long)]
    check: bool,
    /// Who supplies the embedded sequence: server (private tables) or client (papers' setting).
    #[arg(long, default_value = "server")]
    embedding: String,
    /// Attention products: packed (Galois-key merged responses, and LayerNorm's products on HE:
    /// fewer bytes) or unpacked (LayerNorm on COTs: more bytes, less compute). Chosen by the
    /// server in two-process mode.
    #[arg(long, default_value = "packed")]
    attention: String,
    /// The input sentence (tokenized with the model's vocabulary).
    #[arg(long)]
    text: Option<String>,
    /// Sentiment head file (bert-logistic-head-v1) for a model directory; default a
    /// deterministic random 2-class head.
    #[arg(long)]
    head: Option<PathBuf>,
    /// both (two threads, default), server or client (two processes over TCP).
    #[arg(long, default_value = "both")]
    role: String,
    /// Server: address to listen on (two-process mode).
    #[arg(long)]
    listen: Option<String>,
    /// Client: address to connect to (two-process mode).
    #[arg(long)]
    connect: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG chart of the per-layer breakdown to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// What a client needs without the model: its name, public configuration and tokenizer.
struct PublicPart {
    name: String,
    config: BertConfig,
    tokenizer: Option<Tokenizer>,
}

/// The public part from `config.json` and `vocab.txt` only (no weights are read).
fn load_public(args: &Args) -> Result<PublicPart> {
    let config = match args.model.as_str() {
        "bert-base" => BertConfig::bert_base(),
        "bert-large" => BertConfig::bert_large(),
        "bert-tiny" => BertConfig::bert_tiny(),
        dir => {
            let dir = Path::new(dir);
            return Ok(PublicPart {
                name: model_name(dir),
                config: BertConfig::from_model_dir(dir)?,
                tokenizer: Some(Tokenizer::from_model_dir(dir)?),
            });
        }
    };
    Ok(PublicPart {
        name: args.model.clone(),
        config,
        tokenizer: None,
    })
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The model (weights, approximation set, head): the server's inputs and the references.
struct Loaded {
    weights: BertWeights,
    set: ApproxSet,
    head: Head,
}

fn load(args: &Args, public: &PublicPart) -> Result<Loaded> {
    let set = match args.approx.as_str() {
        "nimbus" => ApproxSet::nimbus(),
        "puma" => ApproxSet::puma(),
        s => {
            return Err(Error::InvalidArgument(format!(
                "approximation set `{s}`: expected nimbus or puma"
            )))
        }
    };
    // Built-in shapes get deterministic random weights (seed 1), so they run without files.
    let (weights, committed_tables) = if public.tokenizer.is_none() {
        (BertWeights::random(&public.config, 1)?, None)
    } else {
        let dir = Path::new(&args.model);
        // The 3 GELU / 2 exp segment tables stay within 0.1 point of float on dev (the paper's
        // one-segment shapes lose 0.53): the default when committed; `--tables` picks others.
        let tables = ["nimbus-3x2", "nimbus"]
            .map(|kind| PathBuf::from(format!("bert/tables/{}.{kind}.json", public.name)))
            .into_iter()
            .find(|p| p.exists());
        (BertWeights::from_model_dir(dir)?, tables)
    };
    let layers = weights.config.num_hidden_layers;
    let tables = args
        .tables
        .clone()
        .or_else(|| committed_tables.filter(|_| args.approx == "nimbus"));
    let set = match tables {
        Some(path) => ot_nonlinear::approx::TablesFile::load(&path, layers)?.set,
        None => set,
    };
    let d = weights.config.hidden_size;
    let head = match &args.head {
        Some(path) => Head::from_logistic(&bert::head::LogisticHead::load(path, d)?),
        None => Head::random(d, 2, 7),
    };
    Ok(Loaded { weights, set, head })
}

/// The token ids of the run: the model's tokenizer when it has one; for the built-in shapes
/// with random weights, the text's bytes mapped into the vocabulary between ids 1 and 2 (there
/// is no vocabulary file to tokenize with, and the weights are random anyway).
fn token_ids(text: &str, tokenizer: Option<&Tokenizer>, vocab: usize) -> Vec<u32> {
    match tokenizer {
        Some(t) => t.encode(text),
        None => {
            let span = (vocab.max(4) - 3) as u32;
            std::iter::once(1)
                .chain(text.bytes().map(|b| 3 + b as u32 % span))
                .chain(std::iter::once(2))
                .collect()
        }
    }
}

/// What the client measured, plus the references.
#[derive(Debug, Clone)]
struct Measured {
    setup: Stats,
    online: Stats,
    online_wall: f64,
    labels: BTreeMap<String, Stats>,
    logits: Vec<f64>,
}

/// The component rows of the report, in print order, with the labels they sum.
const COMPONENTS: [(&str, &[Label]); 8] = [
    ("Linear_qkv", &[Label::LinearQkv]),
    ("Linear_o", &[Label::LinearO]),
    ("Linear_h1", &[Label::LinearH1]),
    ("Linear_h2", &[Label::LinearH2]),
    (
        "Softmax",
        &[Label::AttentionSoftmax, Label::AttentionNormalize],
    ),
    ("GELU", &[Label::Activation]),
    ("QKᵀ&PV", &[Label::AttentionQk, Label::AttentionPv]),
    ("LayerNorm", &[Label::NormAttention, Label::NormFfn]),
];

/// Nimbus's published per-block figures (REFERENCE.md): MB, rounds, LAN s, WAN s.
fn nimbus_block(name: &str) -> (Option<f64>, Option<u64>, f64, f64) {
    match name {
        "Linear_qkv" => (Some(10.35), Some(1), 0.17, 0.74),
        "Linear_o" => (Some(3.05), Some(1), 0.06, 0.20),
        "Linear_h1" => (Some(15.52), Some(1), 0.25, 0.87),
        "Linear_h2" => (Some(3.05), Some(1), 0.26, 0.68),
        "Softmax" => (Some(115.35), Some(60), 0.56, 3.07),
        "GELU" => (Some(53.22), Some(24), 0.28, 1.02),
        "QKᵀ&PV" => (None, None, 0.73, 0.98),
        "LayerNorm" => (None, None, 0.14, 0.97),
        _ => (None, None, f64::NAN, f64::NAN),
    }
}

/// One row of the JSON report.
#[derive(serde::Serialize, Debug, Clone)]
struct Component {
    name: String,
    bytes: u64,
    rounds: u64,
    wall_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct BytesWall {
    bytes: u64,
    wall_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct OnlineTotals {
    bytes: u64,
    rounds: u64,
    wall_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct Report {
    model: String,
    seq_len: usize,
    layers: usize,
    net: String,
    approx: String,
    embedding: String,
    attention: String,
    setup: BytesWall,
    online: OnlineTotals,
    components: Vec<Component>,
    per_layer: Vec<Vec<Component>>,
    logits: Vec<f64>,
    /// None when the references were not computed (`--role client` without `--check`).
    max_abs_err_vs_fixed: Option<f64>,
    max_abs_err_vs_float: Option<f64>,
}

/// Sums the stats of every `layerNN/<label>` of `components` in layer `layer` (None: all
/// layers).
fn sum_layer(
    labels: &BTreeMap<String, Stats>,
    layer: Option<usize>,
    components: &[Label],
) -> Stats {
    let mut s = Stats::default();
    for (path, st) in labels {
        let Some((num, tail)) = layer_of(path) else {
            continue;
        };
        if layer.is_some_and(|l| num != l) {
            continue;
        }
        if components.iter().any(|c| c.label() == tail) {
            s.accumulate(st);
        }
    }
    s
}

fn component(name: &str, s: &Stats) -> Component {
    Component {
        name: name.into(),
        bytes: s.bytes(),
        rounds: s.rounds,
        wall_s: s.wall_s,
    }
}

/// The server's side of a run on `ch`.
fn serve(
    ch: Channel,
    server: &mut Server,
    barrier: Option<&std::sync::Barrier>,
    seed: Seed,
) -> Result<()> {
    let mut sess = Session::new(ch, Party::Server, seed)?;
    server.setup(&mut sess)?;
    if let Some(b) = barrier {
        b.wait();
    }
    server.infer(&mut sess)
}

/// The client's side of a run on `ch`.
fn consult(
    ch: Channel,
    cache: &Path,
    ids: &[u32],
    layers: usize,
    barrier: Option<&std::sync::Barrier>,
    seed: Seed,
) -> Result<Measured> {
    let t0 = Instant::now();
    let bar = Progress::new(1 + layers as u64, "setup");
    bar.set_message("OT");
    let mut sess = Session::new(ch, Party::Client, seed)?;
    bar.set_position(1);
    bar.set_message("encrypted weights");
    let client = Client::setup_with_progress(&mut sess, cache, &|done, _| {
        bar.set_position(1 + done as u64)
    })?;
    bar.finish_with_message(&format!("{:.1} s", t0.elapsed().as_secs_f64()));
    let setup = sess.ch.totals();
    if let Some(b) = barrier {
        b.wait();
    }
    let before = sess.ch.totals();
    let bar = Progress::new(layers as u64, "layers");
    let start = Instant::now();
    let logits = sess.scope("online", |s| {
        client.infer_with_progress(s, ids, &|done, _| bar.set_position(done as u64))
    })?;
    let online_wall = start.elapsed().as_secs_f64();
    bar.finish_with_message(&format!("{online_wall:.1} s"));
    let after = sess.ch.totals();
    let online = Stats {
        bytes_sent: after.bytes_sent - before.bytes_sent,
        bytes_recv: after.bytes_recv - before.bytes_recv,
        rounds: after.rounds - before.rounds,
        wall_s: online_wall,
        wait_s: after.wait_s - before.wait_s,
        calls: 1,
    };
    let labels = sess
        .ch
        .stats()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("online/").map(|k| (k.to_string(), *v)))
        .collect();
    Ok(Measured {
        setup,
        online,
        online_wall,
        labels,
        logits,
    })
}

/// Runs the end-to-end inference and prints the report.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let (server_seed, client_seed) = (
        seed.party("e2e", Party::Server),
        seed.party("e2e", Party::Client),
    );
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| Error::InvalidArgument(format!("--threads {t}: {e}")))?;
    }
    let net: NetProfile = args.net.parse()?;
    let mode: EmbeddingMode = args.embedding.parse()?;
    let attention: AttentionMode = args.attention.parse()?;
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| secure::default_cache_dir(&args.model.replace('/', "_")));
    match args.role.as_str() {
        "both" | "client" => {}
        "server" => {
            let loaded = load(&args, &load_public(&args)?)?;
            let fixed = FixedBert::new(&loaded.weights, loaded.set.clone())?;
            let seed = load_or_create_key_seed(&args.key_file, &[&cache])?;
            let mut server = Server::new(&fixed, &loaded.head, args.seq_len, mode, seed)?
                .with_attention(attention)?;
            let addr = args.listen.as_deref().unwrap_or("127.0.0.1:7878");
            let listener = std::net::TcpListener::bind(addr)?;
            eprintln!("server: listening on {addr}");
            let ch = Channel::tcp_accept(&listener)?.shaped(net);
            serve(ch, &mut server, None, server_seed)?;
            eprintln!("server: inference done");
            return Ok(());
        }
        r => {
            return Err(Error::InvalidArgument(format!(
                "--role {r}: expected both, server or client"
            )))
        }
    }
    let checked = args.role == "both" || args.check;
    let public = load_public(&args)?;
    let loaded = if checked {
        Some(load(&args, &public)?)
    } else {
        None
    };
    let c = public.config.clone();
    let text = args.text.as_deref().unwrap_or(DEFAULT_TEXT);
    let ids = token_ids(text, public.tokenizer.as_ref(), c.vocab_size);
    let measured = if args.role == "client" {
        let addr = args.connect.as_deref().unwrap_or("127.0.0.1:7878");
        let ch = Channel::tcp_connect(addr, Duration::from_secs(60))?.shaped(net);
        consult(ch, &cache, &ids, c.num_hidden_layers, None, client_seed)?
    } else {
        let loaded = loaded.as_ref().expect("both roles load the model");
        let fixed = FixedBert::new(&loaded.weights, loaded.set.clone())?;
        let seed = load_or_create_key_seed(&args.key_file, &[&cache])?;
        let mut server = Server::new(&fixed, &loaded.head, args.seq_len, mode, seed)?
            .with_attention(attention)?;
        let (cs, cc) = Channel::mem_pair_shaped(net);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let b2 = barrier.clone();
        let t = std::thread::spawn(move || serve(cs, &mut server, Some(&b2), server_seed));
        let layers = c.num_hidden_layers;
        let m = consult(cc, &cache, &ids, layers, Some(&barrier), client_seed);
        let s = t
            .join()
            .map_err(|_| Error::Unavailable("server thread panicked".into()))?;
        let m = m?;
        s?;
        m
    };
    let references = loaded
        .as_ref()
        .map(|loaded| references(&args, loaded, &ids, &measured.logits))
        .transpose()?;
    let approx = loaded
        .as_ref()
        .map_or(args.approx.clone(), |l| l.set.name.clone());
    let report = build_report(
        &args,
        (&public.name, &approx),
        &c,
        &measured,
        references.as_ref(),
        mode,
    );
    print_report(&report, &measured, references.as_ref());
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Malformed(e.to_string()))?;
        std::fs::write(path, text + "\n")?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg_chart(&report))?;
    }
    if let Some(r) = references.filter(|r| r.err_fixed > secure::FIXED_LOGIT_BOUND) {
        return Err(Error::Malformed(format!(
            "secure logits differ from the fixed-point reference by {:.3e} > {:.1e}",
            r.err_fixed,
            secure::FIXED_LOGIT_BOUND
        )));
    }
    Ok(())
}

/// The plaintext references of a run and the secure logits' largest distance to each.
struct References {
    fixed: Vec<f64>,
    float: Vec<f64>,
    err_fixed: f64,
    err_float: f64,
}

fn references(args: &Args, loaded: &Loaded, ids: &[u32], logits: &[f64]) -> Result<References> {
    let c = &loaded.weights.config;
    let fixed = FixedBert::new(&loaded.weights, loaded.set.clone())?;
    let (padded, mask) = secure::pad(ids, args.seq_len, c.vocab_size)?;
    let want_fixed = secure::fixed_reference(&fixed, &padded, &mask, &loaded.head)?;
    let real = mask.iter().filter(|&&m| m).count();
    let float = FloatBert::new(loaded.weights.clone());
    let want_float = secure::float_reference(&float, &padded[..real], &loaded.head)?;
    let err = |want: &[f64]| {
        logits
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    Ok(References {
        err_fixed: err(&want_fixed),
        err_float: err(&want_float),
        fixed: want_fixed,
        float: want_float,
    })
}

fn build_report(
    args: &Args,
    (model, approx): (&str, &str),
    c: &BertConfig,
    m: &Measured,
    references: Option<&References>,
    mode: EmbeddingMode,
) -> Report {
    let layers = c.num_hidden_layers;
    let mut components: Vec<Component> = COMPONENTS
        .iter()
        .map(|(name, suffixes)| component(name, &sum_layer(&m.labels, None, suffixes)))
        .collect();
    for name in [Label::Embedding.label(), Label::Head.label()] {
        components.push(component(
            name,
            &m.labels.get(name).copied().unwrap_or_default(),
        ));
    }
    components.push(component("total", &m.online));
    let per_layer = (0..layers)
        .map(|l| {
            COMPONENTS
                .iter()
                .map(|(name, suffixes)| component(name, &sum_layer(&m.labels, Some(l), suffixes)))
                .collect()
        })
        .collect();
    Report {
        model: model.to_string(),
        seq_len: args.seq_len,
        layers,
        net: args.net.clone(),
        approx: approx.to_string(),
        embedding: format!("{mode:?}").to_lowercase(),
        attention: args.attention.clone(),
        setup: BytesWall {
            bytes: m.setup.bytes(),
            wall_s: m.setup.wall_s,
        },
        online: OnlineTotals {
            bytes: m.online.bytes(),
            rounds: m.online.rounds,
            wall_s: m.online_wall,
        },
        components,
        per_layer,
        logits: m.logits.clone(),
        max_abs_err_vs_fixed: references.map(|r| r.err_fixed),
        max_abs_err_vs_float: references.map(|r| r.err_float),
    }
}

const MB: f64 = 1e6;

fn print_report(r: &Report, m: &Measured, references: Option<&References>) {
    let layers = r.layers.max(1) as f64;
    println!(
        "\nsecure {} inference: {} layers, {} tokens, net {}, approx {}, embedding {}, attention {}",
        r.model, r.layers, r.seq_len, r.net, r.approx, r.embedding, r.attention
    );
    println!(
        "setup: {:.1} MB, {:.1} s (Ferret setup, keys, encrypted weights; cached weights are not resent)",
        r.setup.bytes as f64 / MB,
        r.setup.wall_s
    );
    println!(
        "\n| component | per block s | per block MB | per block rounds | model s | model MB | model rounds | Nimbus MB / rounds | Nimbus LAN / WAN s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in &r.components {
        let per_block = COMPONENTS.iter().any(|(n, _)| *n == c.name);
        let (nmb, nr, lan, wan) = nimbus_block(&c.name);
        let pb = |v: f64| {
            if per_block {
                format!("{:.3}", v / layers)
            } else {
                "".into()
            }
        };
        let nimbus = match (nmb, nr) {
            (Some(mb), Some(rounds)) => format!("{mb:.2} / {rounds}"),
            _ => "".into(),
        };
        let times = if lan.is_nan() {
            "".into()
        } else {
            format!("{lan:.2} / {wan:.2}")
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.2} | {} | {nimbus} | {times} |",
            c.name,
            pb(c.wall_s),
            pb(c.bytes as f64 / MB),
            if per_block {
                format!("{:.1}", c.rounds as f64 / layers)
            } else {
                "".into()
            },
            c.wall_s,
            c.bytes as f64 / MB,
            c.rounds,
        );
    }
    println!(
        "\nonline: {:.2} MB, {} rounds, {:.2} s wall ({:.2} s of it waiting on the peer)",
        r.online.bytes as f64 / MB,
        r.online.rounds,
        r.online.wall_s,
        m.online.wait_s
    );
    println!("logits (secure):      {:?}", r.logits);
    match references {
        Some(refs) => {
            println!("logits (fixed point): {:?}", refs.fixed);
            println!("logits (float):       {:?}", refs.float);
            println!(
                "max |secure − fixed| = {:.3e} (bound {:.1e}), max |secure − float| = {:.3e}",
                refs.err_fixed,
                secure::FIXED_LOGIT_BOUND,
                refs.err_float
            );
        }
        None => println!("(not compared with the plaintext model: give --check)"),
    }
}

/// Text for an SVG element (`QKᵀ&PV` holds an ampersand).
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// A stacked bar per layer (seconds by component), self-contained SVG.
fn svg_chart(r: &Report) -> String {
    const COLORS: [&str; 8] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    ];
    let (w, h, left, bottom, top) = (900.0, 420.0, 60.0, 40.0, 30.0);
    let layers = r.per_layer.len().max(1);
    let max = r
        .per_layer
        .iter()
        .map(|l| l.iter().map(|c| c.wall_s).sum::<f64>())
        .fold(1e-9, f64::max);
    let plot_h = h - bottom - top;
    let bar_w = (w - left - 180.0) / layers as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"{left}\" y=\"18\" font-size=\"13\">{} secure inference, {} tokens, net {}: seconds per layer by component</text>\n",
        xml_escape(&r.model), r.seq_len, r.net
    );
    for (l, comps) in r.per_layer.iter().enumerate() {
        let x = left + l as f64 * bar_w;
        let mut y = h - bottom;
        for (i, c) in comps.iter().enumerate() {
            let bh = c.wall_s / max * plot_h;
            y -= bh;
            s += &format!(
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>layer {l} {}: {:.3} s, {:.2} MB, {} rounds</title></rect>\n",
                x + 2.0,
                bar_w - 4.0,
                COLORS[i % COLORS.len()],
                xml_escape(&c.name),
                c.wall_s,
                c.bytes as f64 / MB,
                c.rounds
            );
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{l}</text>\n",
            x + bar_w / 2.0,
            h - bottom + 14.0
        );
    }
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = h - bottom - plot_h * k as f64 / 4.0;
        s += &format!(
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ccc\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2} s</text>\n",
            left + bar_w * layers as f64,
            left - 4.0,
            y + 4.0
        );
    }
    for (i, (name, _)) in COMPONENTS.iter().enumerate() {
        let name = xml_escape(name);
        let y = top + 16.0 * i as f64;
        let x = w - 170.0;
        s += &format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n",
            COLORS[i % COLORS.len()],
            x + 16.0,
            y + 10.0
        );
    }
    s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">layer</text>\n</svg>\n",
        left + bar_w * layers as f64 / 2.0,
        h - 6.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// Issue 16, item 7: a client process reads only the public configuration and vocabulary;
    /// the model file is needed for `--check` alone. Its server key lives outside its cache.
    #[test]
    fn a_client_needs_no_model_file_unless_it_checks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 8,
                "max_position_embeddings": 16, "type_vocab_size": 2, "hidden_act": "gelu"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("vocab.txt"),
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nfilm\n##s\n",
        )
        .unwrap();
        let model = dir.path().to_str().unwrap();
        let cli = Cli::parse_from(["bench", "--model", model, "--role", "client"]);
        assert!(!cli.args.check);
        let public = load_public(&cli.args).unwrap();
        assert_eq!(public.config.vocab_size, 8);
        assert_eq!(
            token_ids("a film", public.tokenizer.as_ref(), 8),
            vec![2, 5, 6, 3]
        );
        // There is no model.safetensors: only --check needs it.
        assert!(load(&cli.args, &public).is_err());
        assert!(
            Cli::parse_from(["bench", "--model", model, "--check"])
                .args
                .check
        );
        // The default server key is not under the default client cache.
        let key = std::path::Path::new(crate::DEFAULT_KEY_FILE);
        assert!(!key.starts_with("target/bench-cache"));
        assert_eq!(cli.args.key_file, key);
    }
}
