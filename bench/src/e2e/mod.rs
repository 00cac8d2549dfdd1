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
mod chart;
mod report;

use crate::progress::Progress;
use crate::seed::RunSeed;
use bert::fixed_model::FixedBert;
use bert::secure::{self, AttentionMode, Client, EmbeddingMode, Head, Server};
use bert::{BertConfig, BertWeights, FloatBert, Tokenizer};
use chart::svg_chart;
use he_linear::key_file::load_or_create_key_seed;
use he_linear::layout::Packing;
use mpc_core::{Channel, Error, NetProfile, Party, Result, Seed, Stats};
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::mpc::Session;
use report::{build_report, print_report, Measured};
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
    /// Encrypted weight rows per ciphertext: auto (per layer, the fewest online bytes whose
    /// encrypted weights fit --weights-budget-gb), compact (as many as fit: the smallest setup
    /// and cache) or online (one: the fewest online bytes). Chosen by the server.
    #[arg(long, default_value = "auto")]
    packing: String,
    /// Setup budget of the linear layers' encrypted weights for `--packing auto`, in GB (3.2
    /// leaves room for BERT-base's 0.7 GB embedding table under 4 GB).
    #[arg(long, default_value_t = 3.2)]
    weights_budget_gb: f64,
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
    /// offline (every linear layer's COP on the client's random R, attention's triples,
    /// LayerNorm's, GELU's and exp's correlations, filed on disk for one inference), online (an inference on the
    /// oldest unused material), both (offline, the online pass's COTs set aside, then online;
    /// the default) or single (the single phase, no material).
    #[arg(long, default_value = "both")]
    phase: String,
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

/// Which phases a run executes (`--phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Today's single phase: every linear layer's COP online.
    Single,
    /// The offline phase only: material filed for one later inference.
    Offline,
    /// The online phase on the oldest unused material.
    Online,
    /// Offline, then online on its material.
    Both,
}

impl std::str::FromStr for Phase {
    type Err = Error;
    fn from_str(s: &str) -> Result<Phase> {
        match s {
            "single" => Ok(Phase::Single),
            "offline" => Ok(Phase::Offline),
            "online" => Ok(Phase::Online),
            "both" => Ok(Phase::Both),
            _ => Err(Error::InvalidArgument(format!(
                "--phase {s}: expected offline, online, both or single"
            ))),
        }
    }
}

/// Where each party keeps its offline material: the client under its cache directory, the
/// server next to its key file (a server-only directory).
fn offline_roots(cache: &Path, key_file: &Path) -> (PathBuf, PathBuf) {
    let server = key_file
        .parent()
        .map_or_else(|| PathBuf::from("offline"), |d| d.join("offline"));
    (server, cache.join("offline"))
}

/// The server's side of a run on `ch`.
fn serve(
    ch: Channel,
    server: &mut Server,
    barrier: Option<&std::sync::Barrier>,
    seed: Seed,
    (phase, root): (Phase, &Path),
) -> Result<()> {
    let mut sess = Session::new(ch, Party::Server, seed)?;
    server.setup(&mut sess)?;
    if let Some(b) = barrier {
        b.wait();
    }
    match phase {
        Phase::Single => server.infer(&mut sess),
        Phase::Offline => server.offline(&mut sess, root).map(drop),
        Phase::Online => server.infer_offline(&mut sess, root),
        Phase::Both => {
            let session = server.offline(&mut sess, root)?;
            // The online pass follows on this session: its COTs are made offline too.
            server.set_aside_online_cots(&mut sess, session)?;
            server.infer_offline(&mut sess, root)
        }
    }
}

/// The statistics of the channel between two totals, with `wall` seconds.
fn between(before: &Stats, after: &Stats, wall: f64) -> Stats {
    Stats {
        bytes_sent: after.bytes_sent - before.bytes_sent,
        bytes_recv: after.bytes_recv - before.bytes_recv,
        rounds: after.rounds - before.rounds,
        wall_s: wall,
        wait_s: after.wait_s - before.wait_s,
        calls: 1,
    }
}

/// The client's side of a run on `ch`.
fn consult(
    ch: Channel,
    cache: &Path,
    ids: &[u32],
    layers: usize,
    barrier: Option<&std::sync::Barrier>,
    seed: Seed,
    (phase, root): (Phase, &Path),
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
    let cache_bytes = client.cache_bytes()?;
    if let Some(b) = barrier {
        b.wait();
    }
    let (mut offline, mut session) = (None, None);
    if matches!(phase, Phase::Offline | Phase::Both) {
        let before = sess.ch.totals();
        let start = Instant::now();
        let id = client.offline(&mut sess, root)?;
        if phase == Phase::Both {
            let cots = client.set_aside_online_cots(&mut sess, id)?;
            eprintln!(
                "offline: {} + {} COTs set aside for the online pass",
                cots.server, cots.client
            );
        }
        session = Some(id);
        let wall = start.elapsed().as_secs_f64();
        eprintln!("offline: session {id} filed under {}", root.display());
        offline = Some(between(&before, &sess.ch.totals(), wall));
    }
    if phase == Phase::Online {
        let pending = client.pending_offline(root)?;
        session = Some(*pending.first().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no unused offline material for this model and server key under {}: run \
                 --phase offline first",
                root.display()
            ))
        })?);
    }
    let (mut online, mut logits) = (None, Vec::new());
    if phase != Phase::Offline {
        let before = sess.ch.totals();
        let bar = Progress::new(layers as u64, "layers");
        let progress = |done: usize, _| bar.set_position(done as u64);
        let start = Instant::now();
        logits = sess.scope("online", |s| match session {
            Some(id) => client.infer_offline(s, ids, root, id, &progress),
            None => client.infer_with_progress(s, ids, &progress),
        })?;
        let wall = start.elapsed().as_secs_f64();
        bar.finish_with_message(&format!("{wall:.1} s"));
        online = Some(between(&before, &sess.ch.totals(), wall));
    }
    let labels = sess
        .ch
        .stats()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("online/").map(|k| (k.to_string(), *v)))
        .collect();
    Ok(Measured {
        setup,
        cache_bytes,
        offline,
        online,
        labels,
        logits,
    })
}

/// The server with its layers packed as `packing`, or by cost within `budget` bytes.
fn pack(server: Server, packing: Option<Packing>, budget: u64) -> Result<Server> {
    Ok(match packing {
        Some(p) => server.with_packing(p),
        None => server.with_setup_budget(budget)?.0,
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
    let packing: Option<Packing> = match args.packing.as_str() {
        "auto" => None,
        other => Some(other.parse()?),
    };
    let weights_budget = (args.weights_budget_gb * 1e9) as u64;
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| secure::default_cache_dir(&args.model.replace('/', "_")));
    let phase: Phase = args.phase.parse()?;
    let (server_root, client_root) = offline_roots(&cache, &args.key_file);
    let own = phase == Phase::Both;
    let (server_root, client_root) = (
        seed.offline_root(&server_root, own),
        seed.offline_root(&client_root, own),
    );
    match args.role.as_str() {
        "both" | "client" => {}
        "server" => {
            let loaded = load(&args, &load_public(&args)?)?;
            let fixed = FixedBert::new(&loaded.weights, loaded.set.clone())?;
            let seed = load_or_create_key_seed(&args.key_file, &[&cache])?;
            let server = Server::new(&fixed, &loaded.head, args.seq_len, mode, seed)?
                .with_attention(attention)?;
            let mut server = pack(server, packing, weights_budget)?;
            let addr = args.listen.as_deref().unwrap_or("127.0.0.1:7878");
            let listener = std::net::TcpListener::bind(addr)?;
            eprintln!("server: listening on {addr}");
            let ch = Channel::tcp_accept(&listener)?.shaped(net);
            serve(
                ch,
                &mut server,
                None,
                server_seed,
                (phase, server_root.path()),
            )?;
            eprintln!("server: {phase:?} done");
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
        let phase = (phase, client_root.path());
        consult(
            ch,
            &cache,
            &ids,
            c.num_hidden_layers,
            None,
            client_seed,
            phase,
        )?
    } else {
        let loaded = loaded.as_ref().expect("both roles load the model");
        let fixed = FixedBert::new(&loaded.weights, loaded.set.clone())?;
        let seed = load_or_create_key_seed(&args.key_file, &[&cache])?;
        let server = Server::new(&fixed, &loaded.head, args.seq_len, mode, seed)?
            .with_attention(attention)?;
        let mut server = pack(server, packing, weights_budget)?;
        let (cs, cc) = Channel::mem_pair_shaped(net);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let b2 = barrier.clone();
        let t = std::thread::spawn(move || {
            serve(
                cs,
                &mut server,
                Some(&b2),
                server_seed,
                (phase, server_root.path()),
            )
        });
        let layers = c.num_hidden_layers;
        let phase = (phase, client_root.path());
        let m = consult(cc, &cache, &ids, layers, Some(&barrier), client_seed, phase);
        let s = t
            .join()
            .map_err(|_| Error::Unavailable("server thread panicked".into()))?;
        let m = m?;
        s?;
        m
    };
    let references = loaded
        .as_ref()
        .filter(|_| measured.online.is_some())
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
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::malformed("JSON output", e.to_string(), "serializable data"))?;
        std::fs::write(path, text + "\n")?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg_chart(&report))?;
    }
    if let Some(r) = references.filter(|r| r.err_fixed > secure::FIXED_LOGIT_BOUND) {
        return Err(Error::malformed(
            "secure logits' distance to the fixed-point reference",
            format!("{:.3e}", r.err_fixed),
            format!("at most {:.1e}", secure::FIXED_LOGIT_BOUND),
        ));
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

/// Text for an SVG element (`QKᵀ&PV` holds an ampersand).
#[cfg(test)]
mod tests;
