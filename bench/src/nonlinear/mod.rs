//! `bench nonlinear`: nonlinear two-party operations on batches of shared values, both parties
//! in this process (one thread each, sharing the rayon pool on the machine's cores) over an
//! in-memory link shaped by `--net`.
//!
//! Without `--op` it runs the BERT-base block suite ([`SUITE`]): GELU on 128×3072, Softmax on
//! 12×128 rows of 128 and LayerNorm on 128 rows of 768, the first two under each approximation
//! set of `--approx` (default `nimbus,puma`; `--tables FILE` replaces nimbus' starting
//! constants by a fitted file's layer `--layer`), LayerNorm once with its products over COTs
//! and once on HE (`layernorm-he`; approx `none`: it has no approximation set). With `--op X`
//! it runs that one operation (relu, drelu, trunc, mul, gelu, exp, softmax, layernorm,
//! layernorm-he, reciprocal, tanh) at `--n` elements, by default its block
//! size (768 for reciprocal and tanh: the pooler's one vector per inference).
//!
//! Each run sets up fresh Ferret instances per party (reported as setup, not timed), then, from
//! a common start: reserves the COTs the operation draws (Ferret extensions, `ferret/extend`)
//! and runs the operation (label `op`). Reported: bytes of both directions (operation +
//! extensions; MB and bits per element), rounds (extensions + operation, and the operation
//! alone), wall time until both hold their output shares, and errors of the reconstructed
//! output:
//! * against the plaintext mirror (the function's fixed-point reference, or the exact
//!   plaintext result of a primitive), checked before anything is printed: an output outside
//!   the operation's tolerance is an error;
//! * for the functions (gelu, exp, softmax, layernorm, reciprocal, tanh), against the f64 function of the same
//!   (fixed-point) inputs, in real units (outputs decoded at 18 fraction bits): `max_err`,
//!   `mean_err` of the JSON. The exact primitives (relu, drelu, trunc, mul) have no f64
//!   function: their `max_err`, `mean_err` are against the plaintext reference in ring units
//!   (`err_units` says which).
//!
//! `--json FILE` writes an array of the rows (keys `op`, `approx`, `shape`, `bytes`, `rounds`,
//! `wall_s`, `max_err`, `mean_err`, and the details of [`Row`]).
//!
//! Inputs are drawn like real activations by one generator
//! ([`activations`](inputs::activations), fixed seed, so every approximation set sees the same
//! values; the shares' masks come from the run seed):
//! * gelu: x = −0.6 + 1.1·t₅ (Student t, 5 degrees of freedom: a normal-like bulk with heavy
//!   tails), an assumed shape of FFN pre-activations;
//! * exp: x = −|N(0, 3²)| (attention scores minus the row maximum);
//! * softmax: scores N(0, 2²) plus a per-row N(0, 1) offset, no padding;
//! * layernorm: residual-stream rows: per row an offset N(0, 1) and a scale |N(0, 1)|·2 + 0.3,
//!   entries offset + scale·N(0, 1) (row standard deviations from 0.3 to ≈ 8);
//! * reciprocal: x = 2^u, u uniform on [−4, 12) (log-uniform: row sums, norms and variances
//!   of activations; the protocol's range is 2^-18 ≤ x < 2^18);
//! * tanh: x = N(0, 2²), an assumed shape of the pooler's pre-activations (its dense layer on
//!   the \[CLS\] vector);
//! * primitives: uniform ring elements (trunc known-MSB: within its precondition).
//!
//! All activations (not the reciprocal's inputs) are clamped to ±60 (only GELU's t₅ tail reaches it) and encoded in Z_2^64
//! with 18 fraction bits.
//!
//! Operations are rows of [`OPS`]: a name, the COTs to reserve, the plaintext input, the
//! secure computation on one party's share, the mirror, the f64 function, the output ring and
//! the tolerance. A new operation is one row and its functions.
mod inputs;
mod ops;

use crate::seed::RunSeed;
use inputs::uniform_n;
use mpc_core::AesPrg;
use mpc_core::{Channel, Error, NetProfile, Party, Result, Ring, Seed, Stats};
use ops::{HeKeys, Op, Tolerance, INPUT_SEED, LIN, OPS, SUITE};
use ot_nonlinear::approx::{ApproxSet, TablesFile};
use ot_nonlinear::mpc::{Session, TruncKind};
use ot_nonlinear::Block;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Arguments of `bench nonlinear`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Operation: relu, drelu, trunc, mul; gelu, exp, softmax (with --approx), layernorm,
    /// layernorm-he, reciprocal, tanh.
    /// Without it: the BERT-base block suite (gelu, softmax per set; layernorm).
    #[arg(long)]
    op: Option<String>,
    /// Ring bit width ℓ of the input shares (default: 37 for the primitives, 64 for the
    /// functions, which need 64).
    #[arg(long)]
    ring: Option<u32>,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Elements (with --op; default: the operation's BERT-base block, e.g. 393 216 = 12 heads
    /// × 128 × 256 for the primitives, OpenCheetah's ReLU benchmark size).
    #[arg(long)]
    n: Option<usize>,
    /// Approximation set: with --op, nimbus or puma (functions only, default nimbus); in the
    /// suite, a comma-separated list (default nimbus,puma).
    #[arg(long)]
    approx: Option<String>,
    /// Fitted tables file (e.g. bert/tables/all-MiniLM-L6-v2.nimbus.json): its set replaces the
    /// nimbus starting constants.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Layer whose tables the functions use (matters for fitted per-layer tables).
    #[arg(long, default_value_t = 0)]
    layer: usize,
    /// trunc: shift s.
    #[arg(long, default_value_t = 12)]
    shift: u32,
    /// trunc: output ring bit width L (default ℓ).
    #[arg(long)]
    to_ring: Option<u32>,
    /// trunc: known-msb (|x| < 2^{ℓ−2}), one-bit, faithful.
    #[arg(long, default_value = "known-msb")]
    kind: String,
    /// Write the rows as a JSON array to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The parameters an operation sees.
#[derive(Debug, Clone)]
pub struct Ctx {
    n: usize,
    ring: Ring,
    to_ring: Ring,
    shift: u32,
    kind: TruncKind,
    /// The approximation set (only the functions read it).
    set: ApproxSet,
    /// The layer whose tables the functions use.
    layer: usize,
    /// This party's HE keys (operations with `he_keys`, set by each party after the exchange).
    he: Option<Arc<HeKeys>>,
}

/// One measured run.
#[derive(serde::Serialize, Debug)]
struct Row {
    op: String,
    /// `nimbus`, `puma`, `nimbus-fit-L<layer>` (with `--tables`), or `none`.
    approx: String,
    /// The `--tables` file, if the set came from one.
    tables: Option<String>,
    /// e.g. "128x3072"; a plain count when n is not a multiple of the block's rows.
    shape: String,
    n: usize,
    ring: u32,
    net: String,
    /// Operation + Ferret extension bytes, both directions.
    bytes: u64,
    bits_per_element: f64,
    /// Rounds of extensions + operation from a common start.
    rounds: u64,
    wall_s: f64,
    /// Against f64 in real units (functions) or the plaintext reference in ring units
    /// (primitives), see `err_units`.
    max_err: f64,
    mean_err: f64,
    /// `real` or `ring`.
    err_units: &'static str,
    /// Against the mirror, in `err_units`.
    max_err_vs_mirror: f64,
    op_bytes: u64,
    op_rounds: u64,
    op_wall_s: f64,
    ferret_bytes: u64,
    setup_bytes: u64,
    setup_s: f64,
}

/// What one party measured.
struct PartyOut {
    share: Vec<u64>,
    op: Stats,
    total: Stats,
    ferret: Stats,
    setup: Stats,
    start: Instant,
    done: Instant,
}

fn party(
    ch: Channel,
    role: Party,
    op: &'static Op,
    ctx: Ctx,
    share: Vec<u64>,
    barrier: Arc<Barrier>,
    seed: Seed,
) -> Result<PartyOut> {
    // Everything before the barrier may fail; both parties reach it regardless (a party that
    // failed drops its channel after it, so the peer's next receive fails instead of hanging).
    let prepared = (|| -> Result<_> {
        let mut sess = Session::new(ch, role, seed.derive(0))?;
        let mut ctx = ctx;
        if op.he_keys {
            let keys = HeKeys::exchange(&mut sess.ch, role, seed.derive(1))?;
            ctx.he = Some(Arc::new(keys));
        }
        let setup = sess.ch.totals();
        sess.ch.clear_stats();
        let demand = (op.cots)(&ctx)?;
        Ok((sess, ctx, setup, demand))
    })();
    barrier.wait();
    let (mut sess, ctx, setup, demand) = prepared?;
    let start = Instant::now();
    let before = sess.ch.totals();
    let out = sess.scope("run", |sess| {
        sess.reserve(demand)?;
        sess.scope("op", |sess| (op.secure)(&ctx, sess, &share))
    })?;
    sess.ch.flush()?;
    let done = Instant::now();
    let after = sess.ch.totals();
    let total = Stats {
        bytes_sent: after.bytes_sent - before.bytes_sent,
        bytes_recv: after.bytes_recv - before.bytes_recv,
        rounds: sess.ch.stats_of("run").map_or(0, |s| s.rounds),
        wall_s: (done - start).as_secs_f64(),
        ..Stats::default()
    };
    let ferret = sess
        .ch
        .stats()
        .iter()
        .filter(|(k, _)| k.ends_with("ferret/extend"))
        .fold(Stats::default(), |mut a, (_, s)| {
            a.accumulate(s);
            a
        });
    Ok(PartyOut {
        share: out,
        op: sess.ch.stats_of("run/op").unwrap_or_default(),
        total,
        ferret,
        setup,
        start,
        done,
    })
}

/// One planned run: the operation, its parameters and the approximation set's label.
struct Run {
    op: &'static Op,
    ctx: Ctx,
    approx: String,
}

/// Runs `op` once on fresh shares of its input and checks the output against the mirror.
fn measure(run: &Run, net: NetProfile, tables: Option<&PathBuf>, seed: Seed) -> Result<Row> {
    let Run { op, ctx, approx } = run;
    let op: &'static Op = op;
    let ring = ctx.ring;
    let x = (op.input)(ctx, &mut AesPrg::from_block(INPUT_SEED));
    let mask = uniform_n(
        ring,
        x.len(),
        &mut AesPrg::from_block(Block::from_bytes(seed.0)),
    );
    let client_share: Vec<u64> = x.iter().zip(&mask).map(|(&v, &m)| ring.sub(v, m)).collect();
    let (cs, cc) = Channel::mem_pair_shaped(net);
    let barrier = Arc::new(Barrier::new(2));
    let (b2, c2) = (barrier.clone(), ctx.clone());
    let (server_seed, client_seed) = (seed.derive(1), seed.derive(2));
    let server =
        std::thread::spawn(move || party(cs, Party::Server, op, c2, mask, b2, server_seed));
    let client = party(
        cc,
        Party::Client,
        op,
        ctx.clone(),
        client_share,
        barrier,
        client_seed,
    );
    let server = server
        .join()
        .map_err(|_| Error::Unavailable("server thread panicked".into()))??;
    let client = client?;

    let out_ring = (op.out_ring)(ctx);
    let want = (op.reference)(ctx, &x);
    let got: Vec<u64> = if op.boolean {
        server
            .share
            .iter()
            .zip(&client.share)
            .map(|(a, b)| a ^ b)
            .collect()
    } else {
        out_ring.reconstruct_vec(&server.share, &client.share)?
    };
    let errs: Vec<u64> = got
        .iter()
        .zip(&want)
        .map(|(&g, &w)| out_ring.to_signed(out_ring.sub(g, w)).unsigned_abs())
        .collect();
    let bound = |i: usize, tol: &dyn Fn(usize) -> u64| {
        if errs[i] > tol(i) {
            return Err(Error::malformed(
                format!(
                    "{} ({approx}): output {i}'s distance to the mirror",
                    op.name
                ),
                errs[i].to_string(),
                format!("at most {}", tol(i)),
            ));
        }
        Ok(())
    };
    match &op.tolerance {
        Tolerance::Units(t) => (0..errs.len()).try_for_each(|i| bound(i, &|_| *t))?,
        Tolerance::Each(f) => {
            let t = f(ctx, &x, &want);
            (0..errs.len()).try_for_each(|i| bound(i, &|i| t[i]))?
        }
    }
    let max_mirror = errs.iter().copied().max().unwrap_or(0) as f64;
    let (max_err, mean_err, max_err_vs_mirror, err_units) = match op.exact {
        Some(exact) => {
            let xd: Vec<f64> = x.iter().map(|&v| LIN.decode(v)).collect();
            let e: Vec<f64> = got
                .iter()
                .zip(exact(ctx, &xd))
                .map(|(&g, w)| (LIN.decode(g) - w).abs())
                .collect();
            let unit = (-(LIN.frac_bits() as f64)).exp2();
            let max = e.iter().copied().fold(0.0, f64::max);
            (max, mean(&e), max_mirror * unit, "real")
        }
        None => {
            let e: Vec<f64> = errs.iter().map(|&v| v as f64).collect();
            (max_mirror, mean(&e), max_mirror, "ring")
        }
    };
    let wall = (server.done.max(client.done) - server.start.min(client.start)).as_secs_f64();
    let bytes = server.total.bytes_sent + client.total.bytes_sent;
    Ok(Row {
        op: op.name.into(),
        approx: approx.clone(),
        tables: tables
            .filter(|_| approx.contains("-fit-"))
            .map(|p| p.display().to_string()),
        shape: shape(op.block, ctx.n),
        n: ctx.n,
        ring: ring.bits(),
        net: net.to_string(),
        bytes,
        bits_per_element: 8.0 * bytes as f64 / ctx.n as f64,
        rounds: server.total.rounds.max(client.total.rounds),
        wall_s: wall,
        max_err,
        mean_err,
        err_units,
        max_err_vs_mirror,
        op_bytes: server.op.bytes_sent + client.op.bytes_sent,
        op_rounds: server.op.rounds.max(client.op.rounds),
        op_wall_s: server.op.wall_s.max(client.op.wall_s),
        ferret_bytes: server.ferret.bytes_sent + client.ferret.bytes_sent,
        setup_bytes: server.setup.bytes_sent + client.setup.bytes_sent,
        setup_s: server.setup.wall_s.max(client.setup.wall_s),
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// "128x3072" for n elements of a block [128, 3072] (the leading dimension follows n), or n
/// itself when it does not fill whole rows of the trailing dimensions.
fn shape(block: &[usize], n: usize) -> String {
    let tail: usize = block[1..].iter().product();
    if n % tail != 0 {
        return n.to_string();
    }
    let dims: String = block[1..].iter().map(|d| format!("x{d}")).collect();
    format!("{}{dims}", n / tail)
}

fn find_op(name: &str) -> Result<&'static Op> {
    OPS.iter().find(|o| o.name == name).ok_or_else(|| {
        let names: Vec<&str> = OPS.iter().map(|o| o.name).collect();
        Error::InvalidArgument(format!("unknown --op {name} (one of {names:?})"))
    })
}

/// The set named `name` with its report label; `nimbus` is the fitted set when `--tables`
/// gave one (the files are Nimbus-form fits).
fn named_set(name: &str, fitted: Option<&(ApproxSet, String)>) -> Result<(ApproxSet, String)> {
    match (name, fitted) {
        ("nimbus", Some((set, label))) => Ok((set.clone(), label.clone())),
        ("nimbus", None) => Ok((ApproxSet::nimbus(), name.into())),
        ("puma", _) => Ok((ApproxSet::puma(), name.into())),
        (a, _) => Err(Error::InvalidArgument(format!(
            "--approx {a}: expected nimbus or puma"
        ))),
    }
}

/// The runs the arguments ask for, in order.
fn plan(args: &Args) -> Result<Vec<Run>> {
    let kind = match args.kind.as_str() {
        "known-msb" => TruncKind::KnownMsb,
        "one-bit" => TruncKind::OneBitError,
        "faithful" => TruncKind::Faithful,
        k => {
            return Err(Error::InvalidArgument(format!(
                "--kind {k}: expected known-msb, one-bit or faithful"
            )))
        }
    };
    let fitted = match &args.tables {
        Some(path) => {
            // `load` checks the layer count against a model's; without a model the file's own
            // count is the one to accept (one entry per layer, or one for all).
            let text = std::fs::read_to_string(path)?;
            let layers = serde_json::from_str::<TablesFile>(&text)
                .map_err(|e| {
                    Error::malformed(path.display().to_string(), e.to_string(), "a tables file")
                })?
                .set
                .layers
                .len();
            let set = TablesFile::load(path, layers)?.set;
            Some((set, format!("nimbus-fit-L{}", args.layer)))
        }
        None => None,
    };
    let run_of =
        |op: &'static Op, n: Option<usize>, ring: Option<u32>, approx: &str| -> Result<Run> {
            let n = n.unwrap_or_else(|| op.block.iter().product());
            let ring = ring.map_or(Ok(op.ring), Ring::new)?;
            let (set, label) = if op.uses_approx {
                named_set(approx, fitted.as_ref())?
            } else {
                (ApproxSet::nimbus(), "none".into())
            };
            Ok(Run {
                op,
                ctx: Ctx {
                    n,
                    ring,
                    to_ring: Ring::new(args.to_ring.unwrap_or(ring.bits()))?,
                    shift: args.shift,
                    kind,
                    set,
                    layer: args.layer,
                    he: None,
                },
                approx: label,
            })
        };
    let runs: Vec<Run> = match &args.op {
        Some(name) => {
            let op = find_op(name)?;
            let approx = match (&args.approx, op.uses_approx) {
                (None, true) => "nimbus",
                (None, false) => "none",
                (Some(a), true) => a.as_str(),
                (Some(a), false) if a == "none" => a.as_str(),
                (Some(a), false) => {
                    return Err(Error::InvalidArgument(format!(
                        "--op {name} has no approximation set (got --approx {a})"
                    )))
                }
            };
            vec![run_of(op, args.n, args.ring, approx)?]
        }
        None => {
            if args.n.is_some() || args.ring.is_some() {
                return Err(Error::InvalidArgument(
                    "the suite runs the BERT-base block shapes on Z_2^64; --n and --ring need --op"
                        .into(),
                ));
            }
            let sets: Vec<&str> = args
                .approx
                .as_deref()
                .unwrap_or("nimbus,puma")
                .split(',')
                .collect();
            let mut runs = Vec::new();
            for name in SUITE {
                let op = find_op(name)?;
                if op.uses_approx {
                    for &set in &sets {
                        runs.push(run_of(op, None, None, set)?);
                    }
                } else {
                    runs.push(run_of(op, None, None, "none")?);
                }
            }
            runs
        }
    };
    let uses_fitted = runs.iter().any(|r| r.approx.contains("-fit-"));
    if fitted.is_some() && !uses_fitted {
        return Err(Error::InvalidArgument(
            "--tables replaces the nimbus set: run a function with --approx nimbus".into(),
        ));
    }
    Ok(runs)
}

/// Runs `bench nonlinear`.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let net: NetProfile = args.net.parse()?;
    let runs = plan(&args)?;
    println!(
        "# bench nonlinear: net = {net}, {} cores, both parties in this process; bytes both \
         directions incl. Ferret extensions, setup excluded; errors vs f64 in real units (vs the \
         plaintext reference in ring units for the primitives)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<9} {:<13} {:>12} {:>4} {:>10} {:>10} {:>6} {:>9} {:>8} {:>11} {:>11} {:>11}",
        "op",
        "approx",
        "shape",
        "ring",
        "MB",
        "bits/elem",
        "rounds",
        "op rounds",
        "wall s",
        "max vs f64",
        "mean vs f64",
        "max vs mirr"
    );
    let mut rows = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        let run_seed = seed.named(&format!("nonlinear/{i}"));
        let row = measure(run, net, args.tables.as_ref(), run_seed)?;
        let err = |v: f64| {
            if row.err_units == "real" {
                format!("{v:.5}")
            } else {
                format!("{v}")
            }
        };
        let (max_f64, mean_f64) = if run.op.exact.is_some() {
            (err(row.max_err), err(row.mean_err))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{:<9} {:<13} {:>12} {:>4} {:>10.3} {:>10.1} {:>6} {:>9} {:>8.2} {:>11} {:>11} {:>11}",
            row.op,
            row.approx,
            row.shape,
            row.ring,
            row.bytes as f64 / 1e6,
            row.bits_per_element,
            row.rounds,
            row.op_rounds,
            row.wall_s,
            max_f64,
            mean_f64,
            err(row.max_err_vs_mirror),
        );
        rows.push(row);
    }
    for row in &rows {
        println!(
            "# {} {}: setup (Ferret, both directions, once per session, not included) {:.3} MB, \
             {:.3} s; Ferret extensions {:.3} MB (included)",
            row.op,
            row.approx,
            row.setup_bytes as f64 / 1e6,
            row.setup_s,
            row.ferret_bytes as f64 / 1e6
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}
