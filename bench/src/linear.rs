//! `bench linear`: secure Y = X·W at the BERT-base linear shapes (k = 128 tokens), COP and SIP
//! side by side in one run, over a shaped in-memory link, both parties in this process (one
//! thread each plus rayon workers on the machine's cores).
//!
//! Reported per shape and protocol: setup bytes (COP: encrypted weights; SIP: the client's
//! public key), online bytes (both directions) and rounds as measured by the channel, client and
//! server compute (wall time minus time blocked on the peer), and the online wall time from a
//! common start until both parties hold their output shares. Correctness of every run is
//! checked (the shares must reconstruct to X·W) before any number is printed.
//!
//! Protocol `attn` adds attention's secret × secret products at the same token count (12 heads
//! of 64: QKᵀ then P·V, each a batch of 12 products), unpacked (`X·Y`) and packed with Galois
//! keys (`X·Y pk`, the default in `bert::secure`) side by side; setup is the key exchange.
use crate::seed::RunSeed;
use he_linear::cop;
use he_linear::galois::GaloisKeys;
use he_linear::layout::{CopLayout, Packing};
use he_linear::matrix::{MatDims, ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::{secret_products, ProductKeys};
use he_linear::sip::{self, SipPlan};
use mpc_core::{AesPrg, Channel, Error, NetProfile, Result, Seed, Stats, Turn};
use rand_core::RngCore;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Arguments of `bench linear`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Tokens (rows of X).
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Only these shapes, e.g. `768x768` (repeatable); default the four BERT-base shapes.
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Protocols to run: cop, sip, attn (repeatable); default all three.
    #[arg(long = "protocol")]
    protocols: Vec<String>,
    /// COP row packings: compact (rows per ciphertext as fit: row `COPc`), online (one row per
    /// ciphertext: row `COP1`); repeatable, default both.
    #[arg(long = "packing")]
    packings: Vec<String>,
    /// Directory for the client's encrypted-weight cache (default: a temporary directory,
    /// removed afterwards, so setup is measured from scratch).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One measured row.
#[derive(serde::Serialize, Debug, Clone)]
struct Row {
    shape: String,
    protocol: String,
    setup_bytes: u64,
    setup_s: f64,
    online_bytes: u64,
    rounds: u64,
    client_s: f64,
    server_s: f64,
    wall_s: f64,
}

/// Nimbus's published COP online MB at the BERT-base shapes (arXiv 2411.15707, per-block table).
fn nimbus_mb(m: usize, n: usize) -> Option<f64> {
    match (m, n) {
        (768, 2304) => Some(10.35),
        (768, 768) => Some(3.05),
        (768, 3072) => Some(15.52),
        (3072, 768) => Some(3.05),
        _ => None,
    }
}

fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::InvalidArgument(format!("shape `{s}` is not MxN (e.g. 768x768)"));
    let (a, b) = s.split_once('x').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// Runs `server` and `client` on two threads over a shaped channel pair; each returns its share
/// and its stats for `label`. Returns (server result, client result, online wall seconds).
fn run_pair<S, C>(
    net: NetProfile,
    server: S,
    client: C,
) -> Result<(RingMatrix, RingMatrix, Stats, Stats, f64)>
where
    S: FnOnce(&mut Channel, &Barrier) -> Result<RingMatrix> + Send + 'static,
    C: FnOnce(&mut Channel, &Barrier) -> Result<RingMatrix>,
{
    let (mut cs, mut cc) = Channel::mem_pair_shaped(net);
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let t = std::thread::spawn(move || {
        let r = cs.scope("run", |ch| server(ch, &b2));
        let done = Instant::now();
        (r, cs.stats_of("run/online").unwrap_or_default(), done)
    });
    let r = cc.scope("run", |ch| client(ch, &barrier));
    let client_done = Instant::now();
    let client_stats = cc.stats_of("run/online").unwrap_or_default();
    drop(cc);
    let (sr, server_stats, server_done) = t
        .join()
        .map_err(|_| Error::Unavailable("server thread panicked".into()))?;
    let (s, c) = (sr?, r?);
    // Both entered "online" right after the barrier; the later finisher ends the phase.
    let start = server_done.min(client_done)
        - std::time::Duration::from_secs_f64(if server_done < client_done {
            server_stats.wall_s
        } else {
            client_stats.wall_s
        });
    let wall = server_done.max(client_done) - start;
    Ok((s, c, server_stats, client_stats, wall.as_secs_f64()))
}

/// Streams of a row's seed: its inputs, the server's randomness, the client's.
const INPUTS: u64 = 0;
const SERVER: u64 = 1;
const CLIENT: u64 = 2;

fn random_inputs(
    k: usize,
    m: usize,
    n: usize,
    seed: Seed,
) -> (RingMatrix, RingMatrix, RingMatrix, RingMatrix) {
    let mut rng = AesPrg::new(seed.derive(INPUTS));
    // Weights: 18-bit fixed point in [−2, 2); activations: any ring element, shares uniform.
    let w = RingMatrix::new(
        m,
        n,
        (0..m * n)
            .map(|_| ((rng.next_u64() >> 44) as i64 - (1 << 19)) as u64)
            .collect(),
    )
    .expect("shape");
    let x = RingMatrix::new(k, m, rng.u64s(k * m)).expect("shape");
    let x_c = RingMatrix::new(k, m, rng.u64s(k * m)).expect("shape");
    let x_s = x.sub(&x_c).expect("shape");
    (w, x, x_c, x_s)
}

fn run_cop(
    params: &HeParams,
    net: NetProfile,
    k: usize,
    (m, n): (usize, usize),
    packing: Packing,
    cache: &std::path::Path,
    seed: Seed,
) -> Result<Row> {
    let layout = CopLayout::choose(params, MatDims { rows: m, cols: n }, packing)?;
    let (w, x, x_c, x_s) = random_inputs(k, m, n, seed);
    let want = x.matmul(&w)?;
    let (sp, cp) = (params.clone(), params.clone());
    let cache = cache.to_path_buf();
    let name = format!("cop-{m}x{n}-p{}", layout.rows_per_ct);
    let setup_stats = Arc::new(std::sync::Mutex::new((Stats::default(), Stats::default())));
    let (ss, cs_) = (setup_stats.clone(), setup_stats.clone());
    let (server_share, client_share, s_stats, c_stats, wall) = run_pair(
        net,
        move |ch, barrier| {
            let mut rng = AesPrg::new(seed.derive(SERVER));
            let sk = SecretKey::generate(&sp, &mut rng);
            let pk = PublicKey::generate(&sp, &sk, &mut rng);
            let setup_seed = Seed::from_rng(&mut rng);
            ch.scope("setup", |ch| {
                pk.send(ch, &sp)?;
                cop::server_setup(ch, &sp, &sk, &pk, &layout, &w, setup_seed)
            })?;
            ss.lock().unwrap().0 = ch.stats_of("run/setup").unwrap_or_default();
            barrier.wait();
            ch.scope("online", |ch| {
                cop::server_online(ch, &sp, &sk, &layout, &w, &x_s, Window::full(&sp))
            })
        },
        move |ch, barrier| {
            let (pk, cached) = ch.scope("setup", |ch| {
                let pk = PublicKey::recv(ch, &cp)?;
                let cached = cop::client_setup(ch, &cp, &cache, &name)?;
                Ok::<_, Error>((pk, cached))
            })?;
            cs_.lock().unwrap().1 = ch.stats_of("run/setup").unwrap_or_default();
            let layer = cached.open(&cp)?;
            barrier.wait();
            ch.scope("online", |ch| {
                let full = Window::full(&cp);
                cop::client_online(ch, &cp, &pk, &layer, &x_c, full, seed.derive(CLIENT))
            })
        },
    )?;
    check(&server_share, &client_share, &want, "COP")?;
    let (s_setup, c_setup) = *setup_stats.lock().unwrap();
    Ok(Row {
        shape: format!("{k}x{m}x{n}"),
        protocol: match packing {
            Packing::Compact => "COPc",
            Packing::Online => "COP1",
        }
        .into(),
        setup_bytes: c_setup.bytes(),
        setup_s: s_setup.wall_s.max(c_setup.wall_s),
        online_bytes: c_stats.bytes(),
        rounds: c_stats.rounds.max(s_stats.rounds),
        client_s: c_stats.wall_s - c_stats.wait_s,
        server_s: s_stats.wall_s - s_stats.wait_s,
        wall_s: wall,
    })
}

fn run_sip(
    params: &HeParams,
    net: NetProfile,
    (k, m, n): (usize, usize, usize),
    seed: Seed,
) -> Result<Row> {
    let (w, x, x_c, x_s) = random_inputs(k, m, n, seed);
    let want = x.matmul(&w)?;
    let (sp, cp) = (params.clone(), params.clone());
    let setup = Arc::new(std::sync::Mutex::new(Stats::default()));
    let setup2 = setup.clone();
    let (server_share, client_share, s_stats, c_stats, wall) = run_pair(
        net,
        move |ch, barrier| {
            let t0 = Instant::now();
            let client_pk = PublicKey::recv(ch, &sp)?;
            let plan = SipPlan::new(&sp, ProductShape { k, m, n })?;
            let plain = sip::encode_plain(&sp, &plan, &w)?;
            *setup2.lock().unwrap() = Stats {
                wall_s: t0.elapsed().as_secs_f64(),
                ..Stats::default()
            };
            // Acknowledge, so the online phase starts a flight of its own.
            ch.send(&[1])?;
            ch.flush()?;
            barrier.wait();
            ch.scope("online", |ch| {
                sip::server_online(ch, &sp, &client_pk, &w, &plain, &x_s, seed.derive(SERVER))
            })
        },
        move |ch, barrier| {
            let mut rng = AesPrg::new(seed.derive(CLIENT));
            let sk = SecretKey::generate(&cp, &mut rng);
            let pk = PublicKey::generate(&cp, &sk, &mut rng);
            let online_seed = Seed::from_rng(&mut rng);
            pk.send(ch, &cp)?;
            ch.recv_vec(1)?;
            barrier.wait();
            ch.scope("online", |ch| {
                sip::client_online(ch, &cp, &sk, &x_c, n, online_seed)
            })
        },
    )?;
    check(&server_share, &client_share, &want, "SIP")?;
    let pk_bytes = 8 + 16 + 4 * params.n() * params.rns().len();
    let setup_s = setup.lock().map(|s| s.wall_s).unwrap_or_default();
    Ok(Row {
        shape: format!("{k}x{m}x{n}"),
        protocol: "SIP".into(),
        setup_bytes: pk_bytes as u64,
        setup_s,
        online_bytes: c_stats.bytes(),
        rounds: c_stats.rounds.max(s_stats.rounds),
        client_s: c_stats.wall_s - c_stats.wait_s,
        server_s: s_stats.wall_s - s_stats.wait_s,
        wall_s: wall,
    })
}

/// Attention heads and head width of the `attn` rows (BERT-base).
const HEADS: usize = 12;
const HEAD_DIM: usize = 64;

/// One party's attention products: QKᵀ for every head, then P·V, returned as one row of all
/// outputs. `inputs[h] = (Q, Kᵀ, P, V)`.
fn attention_products(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    inputs: &[[RingMatrix; 4]],
    seed: Seed,
) -> Result<RingMatrix> {
    let qk: Vec<_> = inputs.iter().map(|m| (&m[0], &m[1])).collect();
    let pv: Vec<_> = inputs.iter().map(|m| (&m[2], &m[3])).collect();
    let mut out = Vec::new();
    for (i, pairs) in [qk, pv].into_iter().enumerate() {
        let full = Window::full(params);
        for z in secret_products(ch, params, keys, &pairs, full, seed.derive(i as u64))? {
            out.extend_from_slice(z.data());
        }
    }
    RingMatrix::new(1, out.len(), out)
}

/// One party of the `attn` row: keys, the key exchange (the server, `setup == None`, sends
/// first; the client records its setup stats in `setup`), then the products.
fn attention_party(
    ch: &mut Channel,
    barrier: &Barrier,
    params: &HeParams,
    inputs: &[[RingMatrix; 4]],
    setup: Option<&std::sync::Mutex<Stats>>,
    seed: Seed,
) -> Result<RingMatrix> {
    let first = setup.is_none();
    let mut rng = AesPrg::new(seed);
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(params, &sk, &mut rng);
    let gk = GaloisKeys::generate(params, &sk, &mut rng);
    let (peer_pk, peer_gk) = ch.scope("setup", |ch| {
        let peer_pk = if first {
            pk.send(ch, params)?;
            PublicKey::recv(ch, params)?
        } else {
            let peer = PublicKey::recv(ch, params)?;
            pk.send(ch, params)?;
            peer
        };
        let turn = if first {
            Turn::SendFirst
        } else {
            Turn::ReceiveFirst
        };
        let peer_gk = GaloisKeys::exchange(ch, params, &gk, turn)?;
        ch.flush()?;
        Ok::<_, Error>((peer_pk, peer_gk))
    })?;
    if let Some(s) = setup {
        *s.lock().unwrap() = ch.stats_of("run/setup").unwrap_or_default();
    }
    barrier.wait();
    let keys = ProductKeys {
        my_sk: &sk,
        peer_pk: &peer_pk,
        peer_galois: peer_gk.as_ref(),
    };
    let online_seed = Seed::from_rng(&mut rng);
    ch.scope("online", |ch| {
        attention_products(ch, params, keys, inputs, online_seed)
    })
}

/// The `attn` row: 12 heads of QKᵀ and P·V on random shares, packed or not.
fn run_attention(packed: bool, net: NetProfile, k: usize, seed: Seed) -> Result<Row> {
    let params = if packed {
        HeParams::packed_products()?
    } else {
        HeParams::default_params()?
    };
    let mut rng = AesPrg::new(seed.derive(INPUTS));
    let shapes = [(k, HEAD_DIM), (HEAD_DIM, k), (k, k), (k, HEAD_DIM)];
    let mut random = || shapes.map(|(r, c)| RingMatrix::new(r, c, rng.u64s(r * c)).expect("shape"));
    let (mut server_in, mut client_in, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..HEADS {
        let (full, client) = (random(), random());
        let server = [0, 1, 2, 3].map(|i| full[i].sub(&client[i]).expect("same shape"));
        plain.push(full);
        server_in.push(server);
        client_in.push(client);
    }
    // The outputs in the order `attention_products` returns them: every QKᵀ, then every P·V.
    let mut want = Vec::new();
    for first in [0, 2] {
        for m in &plain {
            want.extend_from_slice(m[first].matmul(&m[first + 1])?.data());
        }
    }
    let want = RingMatrix::new(1, want.len(), want)?;
    let sp = params.clone();
    let setup = std::sync::Mutex::new(Stats::default());
    let (server_share, client_share, s_stats, c_stats, wall) = run_pair(
        net,
        move |ch, barrier| {
            let seed = seed.derive(SERVER);
            attention_party(ch, barrier, &sp, &server_in, None, seed)
        },
        |ch, barrier| {
            let seed = seed.derive(CLIENT);
            attention_party(ch, barrier, &params, &client_in, Some(&setup), seed)
        },
    )?;
    check(&server_share, &client_share, &want, "attention products")?;
    let setup = *setup.lock().unwrap();
    Ok(Row {
        shape: format!("{HEADS}h {k}x{HEAD_DIM}"),
        protocol: if packed { "X·Y pk" } else { "X·Y" }.into(),
        setup_bytes: setup.bytes(),
        setup_s: setup.wall_s,
        online_bytes: c_stats.bytes(),
        rounds: c_stats.rounds.max(s_stats.rounds),
        client_s: c_stats.wall_s - c_stats.wait_s,
        server_s: s_stats.wall_s - s_stats.wait_s,
        wall_s: wall,
    })
}

fn check(s: &RingMatrix, c: &RingMatrix, want: &RingMatrix, what: &str) -> Result<()> {
    if &s.add(c)? != want {
        return Err(Error::malformed(
            format!("{what}: output shares"),
            "shares that do not reconstruct X·W",
            "shares of X·W",
        ));
    }
    Ok(())
}

/// Runs `bench linear`.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let net: NetProfile = args.net.parse()?;
    let params = HeParams::default_params()?;
    let shapes: Vec<(usize, usize)> = if args.shapes.is_empty() {
        vec![(768, 2304), (768, 768), (768, 3072), (3072, 768)]
    } else {
        args.shapes
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_>>()?
    };
    let protocols: Vec<String> = if args.protocols.is_empty() {
        vec!["cop".into(), "sip".into(), "attn".into()]
    } else {
        args.protocols.iter().map(|p| p.to_lowercase()).collect()
    };
    if let Some(p) = protocols
        .iter()
        .find(|p| !["cop", "sip", "attn"].contains(&p.as_str()))
    {
        return Err(Error::InvalidArgument(format!(
            "unknown protocol `{p}` (cop, sip or attn)"
        )));
    }
    let packings = if args.packings.is_empty() {
        vec![Packing::Compact, Packing::Online]
    } else {
        args.packings
            .iter()
            .map(|p| p.to_lowercase().parse())
            .collect::<Result<_>>()?
    };
    let (cache, temporary) = match &args.cache_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("he-linear-bench-{}", std::process::id())),
            true,
        ),
    };
    println!(
        "# bench linear: k = {} tokens, net = {net}, {}",
        args.tokens,
        params.describe()
    );
    println!(
        "# machine: {} cores ({}), both parties in this process",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_name()
    );
    let mut rows = Vec::new();
    for &(m, n) in &shapes {
        for p in &protocols {
            let done = match p.as_str() {
                "cop" => packings
                    .iter()
                    .map(|&packing| {
                        let name = format!("linear/cop/{m}x{n}/{packing:?}");
                        let seed = seed.named(&name);
                        run_cop(&params, net, args.tokens, (m, n), packing, &cache, seed)
                    })
                    .collect::<Result<Vec<_>>>()?,
                "sip" => {
                    let seed = seed.named(&format!("linear/sip/{m}x{n}"));
                    vec![run_sip(&params, net, (args.tokens, m, n), seed)?]
                }
                _ => continue,
            };
            for row in done {
                eprintln!("  done {} {}", row.shape, row.protocol);
                rows.push(row);
            }
        }
    }
    if protocols.iter().any(|p| p == "attn") {
        for packed in [false, true] {
            let row_seed = seed.named(&format!("linear/attention/{packed}"));
            let row = run_attention(packed, net, args.tokens, row_seed)?;
            eprintln!("  done {} {}", row.shape, row.protocol);
            rows.push(row);
        }
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&cache);
    }
    println!(
        "{:<14} {:<5} {:>12} {:>9} {:>12} {:>10} {:>7} {:>9} {:>9} {:>8}",
        "shape",
        "proto",
        "setup MB",
        "setup s",
        "online MB",
        "Nimbus MB",
        "rounds",
        "client s",
        "server s",
        "wall s"
    );
    for r in &rows {
        let (m, n) = {
            let d: Vec<usize> = r.shape.split('x').map(|v| v.parse().unwrap_or(0)).collect();
            (
                d.get(1).copied().unwrap_or(0),
                d.get(2).copied().unwrap_or(0),
            )
        };
        let nimbus = if r.protocol.starts_with("COP") && args.tokens == 128 {
            nimbus_mb(m, n)
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into())
        } else {
            "-".into()
        };
        println!(
            "{:<14} {:<5} {:>12.2} {:>9.2} {:>12.3} {:>10} {:>7} {:>9.3} {:>9.3} {:>8.3}",
            r.shape,
            r.protocol,
            r.setup_bytes as f64 / 1e6,
            r.setup_s,
            r.online_bytes as f64 / 1e6,
            nimbus,
            r.rounds,
            r.client_s,
            r.server_s,
            r.wall_s
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
