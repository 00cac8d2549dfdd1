//! `bench cnn`: secure CNN inference (ResNet-18/32 with CIFAR-100 shapes, or an ONNX file),
//! per-layer table from the channel counters, accuracy on a labelled CSV; `--compare` prints
//! the exact per-protocol costs of the convolutions side by side without running them.
use crate::report::Cost;
use crate::seed::RunSeed;
use cnn::cost::network_cost;
use cnn::reference::{
    argmax, decode_output, encode_image, fixed_forward, float_forward, value_frac_bits,
};
use cnn::secure::{
    he_setup_client, he_setup_server, infer, layer_label, ConvPlan, LayerProtocol, Role,
};
use cnn::{cnn_format, data, onnx, resnet, Network, Op, Quantized};
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use mpc_core::{AesPrg, Seed};
use mpc_core::{Channel, Error, NetProfile, Party, Result};
use nn::conv::ConvProtocol;
use nn::HeKeys;
use ot_nonlinear::mpc::Session;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// resnet18-cifar100, resnet32-cifar100 or an ONNX file.
    #[arg(long)]
    model: String,
    /// Convolution protocol: auto, direct-ot, winograd-ot, he (winograd-he: refused).
    #[arg(long, default_value = "auto")]
    conv: String,
    /// Labelled images (`split,label,values…`); only `test` rows are evaluated.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Factor applied to the CSV's values.
    #[arg(long, default_value_t = 1.0)]
    input_scale: f32,
    /// At most this many test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Seed of the ResNets' random weights and image (the protocols' randomness follows the
    /// global --seed).
    #[arg(long, default_value_t = 1)]
    weights_seed: u64,
    /// Print the exact costs of every protocol (no secure run).
    #[arg(long)]
    compare: bool,
    /// The client's cache of encrypted kernels (default `target/bench-cache/cnn/<model>`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Phases per image: both (the HE convolutions' COP offline, before the image exists, then
    /// the online pass with no HE; the default) or single (every COP online).
    #[arg(long, default_value = "both")]
    phase: String,
    /// Write the report (per-layer costs, accuracy, setup) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(serde::Serialize, Debug)]
struct LayerRow {
    name: String,
    op: String,
    protocol: String,
    bytes: u64,
    rounds: u64,
    wall_s: f64,
    predicted_bytes: u64,
}

#[derive(serde::Serialize, Debug)]
struct Report {
    model: String,
    conv: String,
    net: String,
    layers: Vec<LayerRow>,
    total: Cost,
    setup: Cost,
    /// The first image's offline phase (`--phase both`).
    #[serde(skip_serializing_if = "Option::is_none")]
    offline: Option<Cost>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    float_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_with_float: Option<f64>,
}

fn cnn_err(e: cnn::CnnError) -> Error {
    match e {
        cnn::CnnError::Mpc(e) => e,
        other => Error::InvalidArgument(other.to_string()),
    }
}

fn load_model(name: &str, seed: u64) -> Result<Network> {
    match name {
        "resnet18-cifar100" => resnet::resnet18_cifar100(seed),
        "resnet32-cifar100" => resnet::resnet32_cifar100(seed),
        file => onnx::load(std::path::Path::new(file)),
    }
    .map_err(cnn_err)
}

pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let net_profile: NetProfile = args.net.parse()?;
    let plan = ConvPlan::parse(&args.conv).map_err(cnn_err)?;
    let split = crate::report::split_phase(&args.phase)?;
    let net = load_model(&args.model, args.weights_seed)?;
    let fp = cnn_format();
    let params = HeParams::default_params()?;
    if args.compare {
        return compare(&net, &args.model, &params);
    }
    let q = Quantized::new(&net, fp).map_err(cnn_err)?;
    let inputs: usize = net.input_shape().iter().product();
    let images: Vec<(Option<usize>, Vec<f32>)> = match &args.data {
        Some(path) => data::load(path, "test", inputs, args.input_scale)
            .map_err(cnn_err)?
            .into_iter()
            .take(args.limit.unwrap_or(usize::MAX))
            .map(|s| (Some(s.label), s.values))
            .collect(),
        None => {
            // One deterministic image in [0, 1).
            let mut x = seed_values(args.weights_seed, inputs);
            x.iter_mut().for_each(|v| *v = v.abs());
            vec![(None, x)]
        }
    };
    println!(
        "cnn: {} ({} layers, input {:?}, {} classes), conv {}, net {}, {} image(s)",
        args.model,
        net.layers().len(),
        net.input_shape(),
        net.classes(),
        args.conv,
        net_profile,
        images.len()
    );
    let frac = value_frac_bits(&net, net.output(), fp);
    let (cs, cc) = Channel::mem_pair_shaped(net_profile);
    let count = images.len();
    // Each party's HE key pair from the run seed; the server's public key reaches the client
    // with the encrypted kernels (its bytes are part of the setup).
    let (server_keys, client_keys) = (
        key_pair(&params, seed.named("cnn/keys/server")),
        key_pair(&params, seed.named("cnn/keys/client")),
    );
    let (server_seed, client_seed) = (
        seed.party("cnn/session", Party::Server),
        seed.party("cnn/session", Party::Client),
    );
    let setup_seed = seed.named("cnn/he-setup");
    let (server_pk, client_pk) = (server_keys.1.clone(), client_keys.1.clone());
    let (server_net, server_q, server_params) = (net.clone(), q.clone(), params.clone());
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        PathBuf::from("target/bench-cache/cnn").join(
            std::path::Path::new(&args.model)
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().to_string()),
        )
    });
    let (server_root, client_root) = (
        seed.offline_root(&cache_dir.join("offline-server"), true),
        seed.offline_root(&cache_dir.join("offline-client"), true),
    );
    let server = std::thread::spawn(move || -> Result<Channel> {
        let mut s = Session::new(cs, Party::Server, server_seed)?;
        let keys = HeKeys::unpacked(&server_params, &server_keys.0, &client_pk);
        let he = he_setup_server(
            &mut s.ch,
            &server_net,
            &server_q,
            plan,
            keys,
            &server_keys.1,
            setup_seed,
        )
        .map_err(cnn_err)?;
        for _ in 0..count {
            let store = match split {
                true => Some(prepare(&mut s, &he, server_root.path())?),
                false => None,
            };
            infer(
                &mut s,
                &server_net,
                fp,
                Role::Server(&server_q),
                plan,
                Some(&he),
                store.as_ref(),
            )
            .map_err(cnn_err)?;
        }
        s.ch.flush()?;
        Ok(s.ch)
    });
    let t0 = Instant::now();
    let mut client = Session::new(cc, Party::Client, client_seed)?;
    let public = net.public();
    std::fs::create_dir_all(&cache_dir)?;
    let keys = HeKeys::unpacked(&params, &client_keys.0, &server_pk);
    let he =
        he_setup_client(&mut client.ch, &public, fp, plan, keys, &cache_dir).map_err(cnn_err)?;
    let setup = Cost {
        wall_s: t0.elapsed().as_secs_f64(),
        ..client.ch.totals().into()
    };
    let predicted = network_cost(&net, plan, fp, Some(&params), split).map_err(cnn_err)?;
    let mut offline_cost = None;
    let (mut correct, mut float_correct, mut fixed_correct, mut agree) = (0, 0, 0, 0);
    let mut first: Option<(Vec<LayerRow>, Cost)> = None;
    for (idx, (label, image)) in images.iter().enumerate() {
        client.ch.clear_stats();
        let store = match split {
            true => {
                let (before, t) = (client.ch.totals(), Instant::now());
                let store = prepare(&mut client, &he, client_root.path())?;
                let after = client.ch.totals();
                offline_cost.get_or_insert(Cost {
                    bytes: after.bytes() - before.bytes(),
                    rounds: after.rounds - before.rounds,
                    wall_s: t.elapsed().as_secs_f64(),
                });
                Some(store)
            }
            false => None,
        };
        let before = client.ch.totals();
        let t = Instant::now();
        let x = encode_image(image, fp).map_err(cnn_err)?;
        let y = infer(
            &mut client,
            &public,
            fp,
            Role::Client(&x),
            plan,
            Some(&he),
            store.as_ref(),
        )
        .map_err(cnn_err)?
        .ok_or_else(|| Error::Unavailable("the client got no output".into()))?;
        let after = client.ch.totals();
        let wall = t.elapsed().as_secs_f64();
        let logits = decode_output(&y, fp, frac).map_err(cnn_err)?;
        let pred = argmax(&logits);
        let float = argmax(&float_forward(&net, image).map_err(cnn_err)?);
        let fixed_out = fixed_forward(&net, &q, &x).map_err(cnn_err)?;
        let fixed = argmax(&decode_output(&fixed_out, fp, frac).map_err(cnn_err)?);
        agree += (pred == float) as usize;
        if let Some(l) = label {
            correct += (pred == *l) as usize;
            float_correct += (float == *l) as usize;
            fixed_correct += (fixed == *l) as usize;
        }
        if first.is_none() {
            let rows = layer_rows(&net, &client.ch, &predicted);
            let total = Cost {
                bytes: after.bytes() - before.bytes(),
                rounds: after.rounds - before.rounds,
                wall_s: wall,
            };
            first = Some((rows, total));
        }
        if count > 1 && (idx + 1) % 20 == 0 {
            eprintln!(
                "{} / {count} images, {} agree with float so far",
                idx + 1,
                agree
            );
        }
    }
    server
        .join()
        .map_err(|_| Error::Unavailable("server thread panicked".into()))??;
    let (layers, total) = first.ok_or_else(|| Error::InvalidArgument("no test image".into()))?;
    print_table(&layers, total, setup);
    if let Some(off) = offline_cost {
        let exact = cnn::cost::offline_cost(&net, plan, fp, &params).map_err(cnn_err)?;
        println!(
            "offline (first image, before it exists): {:.2} MB ({:.2} MB exact), {} rounds, \
             {:.2} s; the total above is the online phase",
            mb(off.bytes),
            mb(exact.server_bytes + exact.client_bytes),
            off.rounds,
            off.wall_s
        );
    }
    let with_data = args.data.is_some();
    let frac_of = |c: usize| with_data.then(|| c as f64 / count as f64);
    let report = Report {
        model: args.model.clone(),
        conv: args.conv.clone(),
        net: net_profile.name().into(),
        layers,
        total,
        setup,
        offline: offline_cost,
        n: with_data.then_some(count),
        accuracy: frac_of(correct),
        float_accuracy: frac_of(float_correct),
        fixed_accuracy: frac_of(fixed_correct),
        agreement_with_float: frac_of(agree),
    };
    if with_data {
        println!(
            "{count} test images: secure accuracy {:.4}, float {:.4}, fixed-point mirror {:.4}, \
             secure = float on {agree} / {count}",
            correct as f64 / count as f64,
            float_correct as f64 / count as f64,
            fixed_correct as f64 / count as f64
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::malformed("JSON output", e.to_string(), "serializable data"))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}

fn key_pair(params: &HeParams, seed: Seed) -> (SecretKey, PublicKey) {
    let mut rng = AesPrg::new(seed);
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(params, &sk, &mut rng);
    (sk, pk)
}

fn seed_values(seed: u64, n: usize) -> Vec<f32> {
    let mut prg = mpc_core::AesPrg::new(mpc_core::Seed([0x1c; 16]).derive(seed));
    prg.u64s(n)
        .iter()
        .map(|&v| (v >> 40) as f32 / (1u64 << 24) as f32)
        .collect()
}

fn layer_rows(net: &Network, ch: &Channel, predicted: &[cnn::cost::LayerCost]) -> Vec<LayerRow> {
    net.layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let s = ch.stats_of(&layer_label(i)).unwrap_or_default();
            LayerRow {
                name: l.name.clone(),
                op: l.op.kind().label().into(),
                protocol: predicted[i]
                    .protocol
                    .map_or("-".into(), |p| p.name().to_string()),
                bytes: s.bytes(),
                rounds: s.rounds,
                wall_s: s.wall_s,
                predicted_bytes: predicted[i].cost.bytes(),
            }
        })
        .collect()
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn print_table(rows: &[LayerRow], total: Cost, setup: Cost) {
    println!(
        "{:<14} {:<8} {:<12} {:>12} {:>12} {:>7} {:>9}",
        "layer", "op", "protocol", "MB", "op MB", "rounds", "s"
    );
    for r in rows {
        println!(
            "{:<14} {:<8} {:<12} {:>12.3} {:>12.3} {:>7} {:>9.3}",
            r.name,
            r.op,
            r.protocol,
            mb(r.bytes),
            mb(r.predicted_bytes),
            r.rounds,
            r.wall_s
        );
    }
    println!(
        "total (one image): {:.2} MB, {} rounds, {:.2} s; setup (Ferret) {:.2} MB, {:.2} s",
        mb(total.bytes),
        total.rounds,
        total.wall_s,
        mb(setup.bytes),
        setup.wall_s
    );
    println!(
        "(MB: the layer's traffic incl. its Ferret extensions; op MB: the operator's exact cost)"
    );
}

/// One inference's offline phase, and this party's checked store of it.
fn prepare(
    sess: &mut Session,
    he: &cnn::secure::HeLayers<'_>,
    root: &std::path::Path,
) -> Result<cnn::offline::OfflineStore> {
    let session = cnn::offline::offline(sess, he, root).map_err(cnn_err)?;
    cnn::offline::open(he, root, session).map_err(cnn_err)
}

/// Exact cost of every protocol, convolutions and the rest, side by side.
fn compare(net: &Network, model: &str, params: &HeParams) -> Result<()> {
    let fp = cnn_format();
    let plans = [
        (
            "direct-ot",
            ConvPlan::Forced(LayerProtocol::Ot(ConvProtocol::DirectOt)),
        ),
        (
            "winograd-ot",
            ConvPlan::Forced(LayerProtocol::Ot(ConvProtocol::WinogradOt)),
        ),
        ("he", ConvPlan::Forced(LayerProtocol::He)),
        ("auto", ConvPlan::Auto),
    ];
    println!(
        "{model}: exact online operator bytes (formulas checked against the channel counters in \
         tests; Ferret extensions and the HE setup not included)"
    );
    println!(
        "{:<12} {:>14} {:>14} {:>14} {:>8}  protocols chosen",
        "protocol", "conv MB", "other MB", "total MB", "rounds"
    );
    let mut conv_bytes = Vec::new();
    for (name, plan) in plans {
        let costs = network_cost(net, plan, fp, Some(params), false).map_err(cnn_err)?;
        let (mut conv, mut other, mut rounds) = (0u64, 0u64, 0u64);
        let mut chosen = std::collections::BTreeMap::<&str, usize>::new();
        for (l, c) in net.layers().iter().zip(&costs) {
            if matches!(l.op, Op::Conv(_)) {
                conv += c.cost.bytes();
            } else {
                other += c.cost.bytes();
            }
            if let Some(p) = c.protocol {
                *chosen.entry(p.name()).or_default() += 1;
            }
            rounds += c.cost.rounds;
        }
        println!(
            "{:<12} {:>14.1} {:>14.1} {:>14.1} {:>8}  {:?}",
            name,
            mb(conv),
            mb(other),
            mb(conv + other),
            rounds,
            chosen
        );
        conv_bytes.push(conv);
    }
    println!(
        "direct-ot / winograd-ot in the convolutions: {:.2}x (CoPriv: 2.1x on the whole model)",
        conv_bytes[0] as f64 / conv_bytes[1] as f64
    );
    Ok(())
}
