//! The end-to-end report: per-component rows from the channel counters, the JSON form and
//! the printed tables (offline and online phases).
use super::{Args, References};
use bert::secure::{self, EmbeddingMode};
use bert::BertConfig;
use mpc_core::Stats;
use nn::label::{layer_of, Component as Label};
use std::collections::BTreeMap;

/// What the client measured.
#[derive(Debug, Clone)]
pub(super) struct Measured {
    pub setup: Stats,
    pub cache_bytes: u64,
    /// The offline phase (phases `offline` and `both`).
    pub offline: Option<Stats>,
    /// The online phase (every phase but `offline`), and its per-label stats.
    pub online: Option<Stats>,
    pub labels: BTreeMap<String, Stats>,
    /// Empty without an online phase.
    pub logits: Vec<f64>,
}

/// The component rows of the report, in print order, with the labels they sum.
pub(super) const COMPONENTS: [(&str, &[Label]); 8] = [
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

/// Nimbus's published per-block figures (arXiv 2411.15707): MB, rounds, LAN s, WAN s.
pub(super) fn nimbus_block(name: &str) -> (Option<f64>, Option<u64>, f64, f64) {
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
pub(super) struct Component {
    pub name: String,
    pub bytes: u64,
    pub rounds: u64,
    pub wall_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct BytesWall {
    bytes: u64,
    wall_s: f64,
}

/// A phase's totals.
#[derive(serde::Serialize, Debug)]
pub(super) struct Totals {
    pub bytes: u64,
    pub rounds: u64,
    pub wall_s: f64,
}

impl Totals {
    fn of(s: &Stats) -> Totals {
        Totals {
            bytes: s.bytes(),
            rounds: s.rounds,
            wall_s: s.wall_s,
        }
    }
}

#[derive(serde::Serialize, Debug)]
pub(super) struct Report {
    pub model: String,
    pub seq_len: usize,
    pub layers: usize,
    pub net: String,
    /// single (no offline phase), offline, online or both.
    phase: String,
    approx: String,
    embedding: String,
    attention: String,
    packing: String,
    setup: BytesWall,
    /// Bytes of the client's cache directory after setup (encrypted weights and table).
    cache_bytes: u64,
    /// The input-independent phase: every linear layer's COP on the client's random R,
    /// attention's triples, the LayerNorms', GELU's and exp's correlations (and with `both`,
    /// the online pass's COTs).
    pub offline: Option<Totals>,
    pub online: Option<Totals>,
    /// The online phase per component (empty without one).
    components: Vec<Component>,
    pub per_layer: Vec<Vec<Component>>,
    logits: Vec<f64>,
    /// None when the references were not computed (`--role client` without `--check`).
    max_abs_err_vs_fixed: Option<f64>,
    max_abs_err_vs_float: Option<f64>,
}

/// Sums the stats of every `layerNN/<label>` of `components` in layer `layer` (None: all
/// layers).
pub(super) fn sum_layer(
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

pub(super) fn build_report(
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
    match &m.online {
        Some(online) => components.push(component("total", online)),
        None => components.clear(),
    }
    let per_layer = (0..layers * m.online.is_some() as usize)
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
        packing: args.packing.clone(),
        cache_bytes: m.cache_bytes,
        setup: BytesWall {
            bytes: m.setup.bytes(),
            wall_s: m.setup.wall_s,
        },
        phase: args.phase.clone(),
        offline: m.offline.as_ref().map(Totals::of),
        online: m.online.as_ref().map(Totals::of),
        components,
        per_layer,
        logits: m.logits.clone(),
        max_abs_err_vs_fixed: references.map(|r| r.err_fixed),
        max_abs_err_vs_float: references.map(|r| r.err_float),
    }
}

pub(super) const MB: f64 = 1e6;

pub(super) fn print_report(r: &Report, m: &Measured, references: Option<&References>) {
    let layers = r.layers.max(1) as f64;
    println!(
        "\nsecure {} inference: {} layers, {} tokens, net {}, approx {}, embedding {}, attention {}, phase {}",
        r.model, r.layers, r.seq_len, r.net, r.approx, r.embedding, r.attention, r.phase
    );
    println!(
        "setup: {:.1} MB, {:.1} s (Ferret setup, keys, encrypted weights; cached weights are not resent); \
         weight rows packed {}, client cache {:.1} MB",
        r.setup.bytes as f64 / MB,
        r.setup.wall_s,
        r.packing,
        r.cache_bytes as f64 / MB
    );
    if let (Some(off), Some(s)) = (&r.offline, &m.offline) {
        println!(
            "offline: {:.2} MB, {} rounds, {:.2} s wall ({:.2} s of it waiting on the peer): \
             every linear layer's COP on the client's random R, attention's triples, \
             LayerNorm's, GELU's and exp's correlations, filed for one inference (with --phase both, also the \
             online pass's COTs, set aside)",
            off.bytes as f64 / MB,
            off.rounds,
            off.wall_s,
            s.wait_s
        );
    }
    let (Some(online), Some(m_online)) = (&r.online, &m.online) else {
        println!("(no online phase: run with --phase online to use the material)");
        return;
    };
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
        online.bytes as f64 / MB,
        online.rounds,
        online.wall_s,
        m_online.wait_s
    );
    if let Some(off) = &r.offline {
        println!(
            "offline + online: {:.2} MB, {} rounds, {:.2} s",
            (off.bytes + online.bytes) as f64 / MB,
            off.rounds + online.rounds,
            off.wall_s + online.wall_s
        );
    }
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
