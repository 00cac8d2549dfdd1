//! `bench nonlinear`: one nonlinear two-party operation on a batch of shared values, both
//! parties in this process (one thread each, sharing the rayon pool on the machine's cores)
//! over an in-memory link shaped by `--net`.
//!
//! Each party sets up its Ferret instances (reported as setup, not timed), then, from a common
//! start: reserves the COTs the operation draws (Ferret extensions, `ferret/extend`) and runs
//! the operation (label `op`). Reported: bytes of both directions (operation + extensions;
//! MB and bits per element), rounds (extensions + operation, and the operation alone), wall
//! time until both hold their output shares, and the error of the reconstructed output
//! against the plaintext reference (checked before anything is printed: an output outside the
//! operation's tolerance is an error). `--json FILE` writes the row.
//!
//! Operations are rows of [`OPS`]: a name, the COTs to reserve, the plaintext input, the
//! secure computation on one party's share, the reference, the output ring and the tolerance.
//! A new operation is one row and its functions.
use mpc_core::{Channel, Error, FixedPoint, NetProfile, Party, Result, Ring, Stats};
use ot_nonlinear::approx::{fixed, ApproxSet};
use ot_nonlinear::block::Block;
use ot_nonlinear::functions::{self as funcs, exp_breakpoints, gelu_spec, Output};
use ot_nonlinear::mpc::{self, drelu::drelu_cots, product::mul_cots, relu::relu_cots};
use ot_nonlinear::mpc::{trunc::trunc_cots, CotDemand, Session, TruncKind};
use ot_nonlinear::prg::BlockPrg;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Arguments of `bench nonlinear`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Operation: relu, drelu, trunc, mul; gelu, exp, softmax (with --ring 64 and --approx).
    #[arg(long, default_value = "relu")]
    op: String,
    /// Ring bit width ℓ of the input shares.
    #[arg(long, default_value_t = 37)]
    ring: u32,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// Elements (default: 393 216 = 12 heads × 128 × 256, OpenCheetah's ReLU benchmark size).
    #[arg(long, default_value_t = 393_216)]
    n: usize,
    /// Approximation set, for the operations that have one.
    #[arg(long, default_value = "none")]
    approx: String,
    /// trunc: shift s.
    #[arg(long, default_value_t = 12)]
    shift: u32,
    /// trunc: output ring bit width L (default ℓ).
    #[arg(long)]
    to_ring: Option<u32>,
    /// trunc: known-msb (|x| < 2^{ℓ−2}), one-bit, faithful.
    #[arg(long, default_value = "known-msb")]
    kind: String,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// The parameters an operation sees.
#[derive(Debug, Clone)]
pub struct Ctx {
    n: usize,
    ring: Ring,
    to_ring: Ring,
    shift: u32,
    kind: TruncKind,
    /// `--approx` (nimbus when `none`; only the functions read it).
    set: ApproxSet,
}

/// One benchmarked operation.
struct Op {
    name: &'static str,
    /// Whether the operation reads `--approx` (others refuse anything but `none`).
    uses_approx: bool,
    cots: fn(&Ctx) -> Result<CotDemand>,
    /// Plaintext input in `ctx.ring` (n values, or 2n for two operands), from `prg`.
    input: fn(&Ctx, &mut BlockPrg) -> Vec<u64>,
    /// This party's output share from its input share.
    secure: fn(&Ctx, &mut Session, &[u64]) -> Result<Vec<u64>>,
    /// The plaintext output.
    reference: fn(&Ctx, &[u64]) -> Vec<u64>,
    /// The output ring.
    out_ring: fn(&Ctx) -> Ring,
    /// Largest accepted |output − reference| (in units of the output ring).
    tolerance: u64,
    /// Whether output shares are XOR-shared bits (as 0/1) instead of additive.
    boolean: bool,
}

/// The operations (one row each).
const OPS: &[Op] = &[
    Op {
        name: "relu",
        uses_approx: false,
        cots: |c| Ok(relu_cots(c.n, c.ring)),
        input: uniform,
        secure: |c, s, x| mpc::relu(s, x, c.ring),
        reference: |c, x| {
            x.iter()
                .map(|&v| if c.ring.msb(v) { 0 } else { v })
                .collect()
        },
        out_ring: |c| c.ring,
        tolerance: 0,
        boolean: false,
    },
    Op {
        name: "drelu",
        uses_approx: false,
        cots: |c| Ok(drelu_cots(c.n, c.ring)),
        input: uniform,
        secure: |c, s, x| Ok(as_u64(mpc::drelu(s, x, c.ring)?)),
        reference: |c, x| x.iter().map(|&v| !c.ring.msb(v) as u64).collect(),
        out_ring: |_| Ring::new(1).expect("Z_2"),
        tolerance: 0,
        boolean: true,
    },
    Op {
        name: "trunc",
        uses_approx: false,
        cots: |c| trunc_cots(c.n, c.ring, c.to_ring, c.shift, c.kind),
        input: |c, prg| {
            // The known-MSB path's precondition |x| < 2^{ℓ−2}; the other kinds take any x.
            let x = uniform(c, prg);
            if c.kind != TruncKind::KnownMsb {
                return x;
            }
            let l = c.ring.bits();
            x.iter()
                .map(|&v| c.ring.reduce(v >> 2).wrapping_sub(1 << (l - 3)) & c.ring.mask())
                .collect()
        },
        secure: |c, s, x| mpc::trunc_cast(s, x, c.ring, c.to_ring, c.shift, c.kind),
        reference: |c, x| {
            x.iter()
                .map(|&v| c.to_ring.from_signed(c.ring.to_signed(v) >> c.shift))
                .collect()
        },
        out_ring: |c| c.to_ring,
        tolerance: 1,
        boolean: false,
    },
    Op {
        name: "mul",
        uses_approx: false,
        cots: |c| Ok(mul_cots(c.n, c.ring)),
        input: |c, prg| {
            let mut x = uniform(c, prg);
            x.extend(uniform(c, prg));
            x
        },
        secure: |c, s, xy| mpc::mul(s, &xy[..c.n], &xy[c.n..], c.ring),
        reference: |c, xy| (0..c.n).map(|i| c.ring.mul(xy[i], xy[c.n + i])).collect(),
        out_ring: |c| c.ring,
        tolerance: 0,
        boolean: false,
    },
    Op {
        name: "gelu",
        uses_approx: true,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::piecewise_cots(
                &gelu_spec(&c.set, 0).0,
                c.n,
                Output::Linear,
            ))
        },
        input: |c, prg| activations(c, prg, |g| (-0.6 + 1.1 * g.student5()).clamp(-60.0, 60.0)),
        secure: |c, s, x| {
            let (spec, bps) = gelu_spec(&c.set, 0);
            funcs::gelu(s, &spec, s.is_server().then_some(bps), x)
        },
        reference: |c, x| x.iter().map(|&v| fixed::gelu(&c.set, 0, v)).collect(),
        out_ring: |_| Ring::R64,
        // Carries (≤ 0.007) plus the largest jump at a breakpoint (0.145 for the starting
        // constants' T2 = 0.2), where the left piece may apply within 1/64 above it.
        tolerance: (0.16 * (1u64 << 18) as f64) as u64,
        boolean: false,
    },
    Op {
        name: "exp",
        uses_approx: true,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::exp::exp_cots(&c.set, 0, c.n))
        },
        input: |c, prg| activations(c, prg, |g| -(3.0 * g.normal()).abs()),
        secure: |c, s, x| {
            let bps = exp_breakpoints(&c.set, 0);
            funcs::exp(s, &c.set, 0, s.is_server().then_some(&bps[..]), x)
        },
        reference: |c, x| {
            x.iter()
                .map(|&v| fixed::exp_nonpositive(&c.set, 0, v))
                .collect()
        },
        out_ring: |_| Ring::R64,
        // Carries (≤ 0.021 by the bound, 0.005 measured) plus exp(T) ≈ 0.018 at the threshold.
        tolerance: (0.04 * (1u64 << 18) as f64) as u64,
        boolean: false,
    },
    Op {
        name: "softmax",
        uses_approx: true,
        cots: |c| {
            function_ring(c, 128)?;
            Ok(funcs::softmax::softmax_cots(&c.set, 0, c.n / 128, 128))
        },
        input: |c, prg| {
            let mut g = Gauss(prg);
            let mut x = Vec::with_capacity(c.n);
            for _ in 0..c.n / 128 {
                let off = g.normal();
                x.extend((0..128).map(|_| off + 2.0 * g.normal()));
            }
            x.iter()
                .map(|&v| FixedPoint::LINEAR.encode(v).expect("|x| < 60"))
                .collect()
        },
        secure: |c, s, x| {
            let bps = exp_breakpoints(&c.set, 0);
            let bps = s.is_server().then_some(&bps[..]);
            funcs::softmax(s, &c.set, 0, c.n / 128, 128, x, bps, None)
        },
        reference: |c, x| {
            let mut y = x.to_vec();
            y.chunks_mut(128)
                .for_each(|r| fixed::softmax_row(&c.set, 0, r, None));
            y
        },
        out_ring: |_| Ring::R64,
        // The tournament's winner may differ from the mirror's by < 1/32 (which moves every exp
        // argument alike: only the exp approximation's non-exponential shape shows), plus
        // carries: 0.0035–0.0075 measured.
        tolerance: (0.02 * (1u64 << 18) as f64) as u64,
        boolean: false,
    },
];

/// The functions take Z_2^64 shares with 18 fraction bits, `cols`-long rows.
fn function_ring(c: &Ctx, cols: usize) -> Result<()> {
    if c.ring != Ring::R64 || c.n % cols != 0 {
        return Err(Error::InvalidArgument(format!(
            "the functions need --ring 64 and a multiple of {cols} elements"
        )));
    }
    Ok(())
}

/// Normal and Student-t draws from the bench generator (Box–Muller).
struct Gauss<'a>(&'a mut BlockPrg);

impl Gauss<'_> {
    fn uniform(&mut self) -> f64 {
        ((self.0.block().low_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }

    /// Student t with 5 degrees of freedom: a normal-like bulk with heavy tails.
    fn student5(&mut self) -> f64 {
        let z = self.normal();
        let chi: f64 = (0..5).map(|_| self.normal().powi(2)).sum();
        z / (chi / 5.0).sqrt()
    }
}

/// n activations drawn by `draw`, encoded in Z_2^64 with 18 fraction bits (documented in
/// docs/protocols/nonlinear.md, "Functions").
fn activations(c: &Ctx, prg: &mut BlockPrg, draw: fn(&mut Gauss) -> f64) -> Vec<u64> {
    let mut g = Gauss(prg);
    (0..c.n)
        .map(|_| {
            FixedPoint::LINEAR
                .encode(draw(&mut g))
                .expect("clamped input")
        })
        .collect()
}

fn uniform(c: &Ctx, prg: &mut BlockPrg) -> Vec<u64> {
    let mut blocks = vec![Block::ZERO; c.n];
    prg.fill(&mut blocks);
    blocks.iter().map(|b| c.ring.reduce(b.low_u64())).collect()
}

fn as_u64(bits: Vec<bool>) -> Vec<u64> {
    bits.into_iter().map(u64::from).collect()
}

/// One measured run.
#[derive(serde::Serialize, Debug)]
struct Row {
    op: String,
    approx: String,
    shape: String,
    ring: u32,
    net: String,
    /// Operation + Ferret extension bytes, both directions.
    bytes: u64,
    bits_per_element: f64,
    /// Rounds of extensions + operation from a common start.
    rounds: u64,
    wall_s: f64,
    max_err: f64,
    mean_err: f64,
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
) -> Result<PartyOut> {
    let mut sess = Session::new(ch, role)?;
    let setup = sess.ch.totals();
    sess.ch.clear_stats();
    let demand = (op.cots)(&ctx)?;
    barrier.wait();
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

/// Runs `bench nonlinear`.
pub fn run(args: Args) -> Result<()> {
    let net: NetProfile = args.net.parse()?;
    let op: &'static Op = OPS.iter().find(|o| o.name == args.op).ok_or_else(|| {
        let names: Vec<&str> = OPS.iter().map(|o| o.name).collect();
        Error::InvalidArgument(format!("unknown --op {} (one of {names:?})", args.op))
    })?;
    if !op.uses_approx && args.approx != "none" {
        return Err(Error::InvalidArgument(format!(
            "--op {} has no approximation set (got --approx {})",
            op.name, args.approx
        )));
    }
    let ring = Ring::new(args.ring)?;
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
    let ctx = Ctx {
        n: args.n,
        ring,
        to_ring: Ring::new(args.to_ring.unwrap_or(args.ring))?,
        shift: args.shift,
        kind,
        set: match args.approx.as_str() {
            "puma" => ApproxSet::puma(),
            "nimbus" | "none" => ApproxSet::nimbus(),
            a => {
                return Err(Error::InvalidArgument(format!(
                    "--approx {a}: expected nimbus or puma"
                )))
            }
        },
    };
    let mut prg = BlockPrg::from_entropy();
    let x = (op.input)(&ctx, &mut prg);
    let mask: Vec<u64> = uniform(
        &Ctx {
            n: x.len(),
            ..ctx.clone()
        },
        &mut prg,
    );
    let client_share: Vec<u64> = x.iter().zip(&mask).map(|(&v, &m)| ring.sub(v, m)).collect();
    println!(
        "# bench nonlinear: op = {}, n = {}, ring = Z_2^{}, net = {net}, {} cores, both parties in this process",
        op.name,
        ctx.n,
        ring.bits(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (cs, cc) = Channel::mem_pair_shaped(net);
    let barrier = Arc::new(Barrier::new(2));
    let (b2, c2) = (barrier.clone(), ctx.clone());
    let server = std::thread::spawn(move || party(cs, Party::Server, op, c2, mask, b2));
    let client = party(cc, Party::Client, op, ctx.clone(), client_share, barrier);
    let server = server
        .join()
        .map_err(|_| Error::Unavailable("server thread panicked".into()))??;
    let client = client?;

    let out_ring = (op.out_ring)(&ctx);
    let want = (op.reference)(&ctx, &x);
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
    let max_err = errs.iter().copied().max().unwrap_or(0);
    if max_err > op.tolerance {
        return Err(Error::Malformed(format!(
            "{}: output off by up to {max_err} (tolerance {})",
            op.name, op.tolerance
        )));
    }
    let mean_err = errs.iter().sum::<u64>() as f64 / errs.len().max(1) as f64;
    let start = server.start.min(client.start);
    let wall = (server.done.max(client.done) - start).as_secs_f64();
    let op_wall = server.op.wall_s.max(client.op.wall_s);
    let bytes = server.total.bytes_sent + client.total.bytes_sent;
    let row = Row {
        op: op.name.into(),
        approx: args.approx.clone(),
        shape: format!("{}", ctx.n),
        ring: ring.bits(),
        net: net.to_string(),
        bytes,
        bits_per_element: 8.0 * bytes as f64 / ctx.n as f64,
        rounds: server.total.rounds.max(client.total.rounds),
        wall_s: wall,
        max_err: max_err as f64,
        mean_err,
        op_bytes: server.op.bytes_sent + client.op.bytes_sent,
        op_rounds: server.op.rounds.max(client.op.rounds),
        op_wall_s: op_wall,
        ferret_bytes: server.ferret.bytes_sent + client.ferret.bytes_sent,
        setup_bytes: server.setup.bytes_sent + client.setup.bytes_sent,
        setup_s: server.setup.wall_s.max(client.setup.wall_s),
    };
    println!(
        "{:<7} {:>9} {:>12} {:>10} {:>7} {:>9} {:>12} {:>10} {:>10} {:>8} {:>9}",
        "op",
        "n",
        "MB",
        "bits/elem",
        "rounds",
        "wall s",
        "op MB",
        "op rounds",
        "ferret MB",
        "op s",
        "max err"
    );
    println!(
        "{:<7} {:>9} {:>12.3} {:>10.1} {:>7} {:>9.3} {:>12.3} {:>10} {:>10.3} {:>8.3} {:>9}",
        row.op,
        ctx.n,
        row.bytes as f64 / 1e6,
        row.bits_per_element,
        row.rounds,
        row.wall_s,
        row.op_bytes as f64 / 1e6,
        row.op_rounds,
        row.ferret_bytes as f64 / 1e6,
        row.op_wall_s,
        row.max_err
    );
    println!(
        "# setup (Ferret, both directions, once per session, not included): {:.3} MB, {:.3} s",
        row.setup_bytes as f64 / 1e6,
        row.setup_s
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&row)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}
