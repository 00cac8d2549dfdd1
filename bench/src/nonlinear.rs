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
//! Inputs are drawn like real activations by one generator ([`activations`], fixed seed, so
//! every approximation set sees the same values; the shares' masks are fresh):
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
use crate::seed::RunSeed;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Channel, Error, FixedPoint, NetProfile, Party, Result, Ring, Seed, Stats};
use nn::norm::HeRowProducts;
use ot_nonlinear::approx::layernorm::normalize_row;
use ot_nonlinear::approx::{fixed, ApproxSet, TablesFile};
use ot_nonlinear::block::Block;
use ot_nonlinear::functions::{self as funcs, exp_breakpoints, gelu_spec, Output};
use ot_nonlinear::mpc::{self, drelu::drelu_cots, product::mul_cots, relu::relu_cots};
use ot_nonlinear::mpc::{trunc::trunc_cots, CotDemand, Session, TruncKind};
use ot_nonlinear::prg::BlockPrg;
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

/// A party's keys for HE products: its secret key and the peer's public and Galois keys.
pub struct HeKeys {
    params: HeParams,
    sk: SecretKey,
    peer_pk: PublicKey,
    peer_galois: GaloisKeys,
}

impl std::fmt::Debug for HeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeKeys { .. }")
    }
}

impl HeKeys {
    /// Generates this party's keys and swaps public and Galois keys with the peer.
    fn exchange(ch: &mut Channel, role: Party, seed: Seed) -> Result<HeKeys> {
        let params = HeParams::packed_products()?;
        let mut rng = AesPrg::new(seed);
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let galois = GaloisKeys::generate(&params, &sk, &mut rng);
        let server = role == Party::Server;
        let peer_pk = if server {
            pk.send(ch, &params)?;
            PublicKey::recv(ch, &params)?
        } else {
            let peer = PublicKey::recv(ch, &params)?;
            pk.send(ch, &params)?;
            peer
        };
        let peer_galois = GaloisKeys::exchange(ch, &params, &galois, server)?
            .ok_or_else(|| Error::InvalidArgument("no Galois keys for packed products".into()))?;
        // The client sends last: its keys must leave before it waits at the barrier.
        ch.flush()?;
        Ok(HeKeys {
            params,
            sk,
            peer_pk,
            peer_galois,
        })
    }

    /// The row products of LayerNorm on these keys.
    fn row_products(&self) -> HeRowProducts<'_> {
        HeRowProducts::new(
            &self.params,
            ProductKeys {
                my_sk: &self.sk,
                peer_pk: &self.peer_pk,
                peer_galois: Some(&self.peer_galois),
            },
        )
    }
}

/// The HE keys of an operation with `he_keys`.
fn he_keys(c: &Ctx) -> Result<&HeKeys> {
    c.he.as_deref()
        .ok_or_else(|| Error::InvalidArgument("this operation needs HE keys".into()))
}

/// How far the secure output may be from the mirror (in units of the output ring).
enum Tolerance {
    /// The same bound for every element.
    Units(u64),
    /// One bound per element, from the plaintext input and the mirror's output (LayerNorm:
    /// its carries scale with 1/σ of the row).
    Each(fn(&Ctx, &[u64], &[u64]) -> Vec<u64>),
}

/// A function in f64 on the decoded input (the whole batch, so row-wise functions fit).
type Exact = fn(&Ctx, &[f64]) -> Vec<f64>;

/// One benchmarked operation.
struct Op {
    name: &'static str,
    /// Whether the operation reads the approximation set (others run as approx `none`).
    uses_approx: bool,
    /// Whether it runs HE products: both parties exchange public and Galois keys of the packed
    /// products' parameters first (counted as setup).
    he_keys: bool,
    /// Its BERT-base block shape: the default element count and the shape's trailing
    /// dimensions in the report.
    block: &'static [usize],
    /// Default ring bit width of the input.
    ring: u32,
    cots: fn(&Ctx) -> Result<CotDemand>,
    /// Plaintext input in `ctx.ring` (n values, or 2n for two operands), from `prg`.
    input: fn(&Ctx, &mut BlockPrg) -> Vec<u64>,
    /// This party's output share from its input share.
    secure: fn(&Ctx, &mut Session, &[u64]) -> Result<Vec<u64>>,
    /// The plaintext mirror's output.
    reference: fn(&Ctx, &[u64]) -> Vec<u64>,
    /// The f64 function of the decoded input (the functions; their inputs and outputs are
    /// Z_2^64 with 18 fraction bits).
    exact: Option<Exact>,
    /// The output ring.
    out_ring: fn(&Ctx) -> Ring,
    tolerance: Tolerance,
    /// Whether output shares are XOR-shared bits (as 0/1) instead of additive.
    boolean: bool,
}

/// Fixed-point format of the functions' inputs and outputs.
const LIN: FixedPoint = FixedPoint::LINEAR;
/// LayerNorm row length (BERT-base hidden size) and ε (BERT's).
const LN_COLS: usize = 768;
const LN_EPS: f64 = 1e-12;
/// Softmax row length (sequence length).
const SM_COLS: usize = 128;
/// Seed of the inputs: every run of an operation sees the same values.
const INPUT_SEED: Block = Block(0x5eed);

/// LayerNorm's inputs: residual-stream rows (see the module comment).
fn layernorm_input(c: &Ctx, prg: &mut BlockPrg) -> Vec<u64> {
    activations(
        c,
        prg,
        LN_COLS,
        |g| (g.normal(), 2.0 * g.normal().abs() + 0.3),
        |g| g.normal(),
    )
}

/// LayerNorm's plaintext mirror, row by row.
fn layernorm_reference(_: &Ctx, x: &[u64]) -> Vec<u64> {
    let mut y = x.to_vec();
    y.chunks_mut(LN_COLS).for_each(|r| normalize_row(r, LN_EPS));
    y
}

/// (x − mean)/√(var + ε) per row in f64.
fn layernorm_exact(_: &Ctx, x: &[f64]) -> Vec<f64> {
    x.chunks(LN_COLS)
        .flat_map(|row| {
            let (mean, var) = mean_var(row);
            row.iter().map(move |v| (v - mean) / (var + LN_EPS).sqrt())
        })
        .collect()
}

/// `t` real units as a tolerance at 18 fraction bits.
const fn real(t: f64) -> Tolerance {
    Tolerance::Units((t * (1u64 << 18) as f64) as u64)
}

/// The operations (one row each).
const OPS: &[Op] = &[
    Op {
        name: "relu",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: 37,
        cots: |c| Ok(relu_cots(c.n, c.ring)),
        input: uniform,
        secure: |c, s, x| mpc::relu(s, x, c.ring),
        reference: |c, x| {
            x.iter()
                .map(|&v| if c.ring.msb(v) { 0 } else { v })
                .collect()
        },
        exact: None,
        out_ring: |c| c.ring,
        tolerance: Tolerance::Units(0),
        boolean: false,
    },
    Op {
        name: "drelu",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: 37,
        cots: |c| Ok(drelu_cots(c.n, c.ring)),
        input: uniform,
        secure: |c, s, x| Ok(as_u64(mpc::drelu(s, x, c.ring)?)),
        reference: |c, x| x.iter().map(|&v| !c.ring.msb(v) as u64).collect(),
        exact: None,
        out_ring: |_| Ring::new(1).expect("Z_2"),
        tolerance: Tolerance::Units(0),
        boolean: true,
    },
    Op {
        name: "trunc",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: 37,
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
        exact: None,
        out_ring: |c| c.to_ring,
        tolerance: Tolerance::Units(1),
        boolean: false,
    },
    Op {
        name: "mul",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: 37,
        cots: |c| Ok(mul_cots(c.n, c.ring)),
        input: |c, prg| {
            let mut x = uniform(c, prg);
            x.extend(uniform(c, prg));
            x
        },
        secure: |c, s, xy| mpc::mul(s, &xy[..c.n], &xy[c.n..], c.ring),
        reference: |c, xy| (0..c.n).map(|i| c.ring.mul(xy[i], xy[c.n + i])).collect(),
        exact: None,
        out_ring: |c| c.ring,
        tolerance: Tolerance::Units(0),
        boolean: false,
    },
    Op {
        name: "gelu",
        uses_approx: true,
        he_keys: false,
        block: &[128, 3072],
        ring: 64,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::piecewise_cots(
                &gelu_spec(&c.set, c.layer).0,
                c.n,
                Output::Linear,
            ))
        },
        input: |c, prg| activations(c, prg, 1, |_| (-0.6, 1.1), |g| g.student5()),
        secure: |c, s, x| {
            let (spec, bps) = gelu_spec(&c.set, c.layer);
            funcs::gelu(s, &spec, s.is_server().then_some(bps), x)
        },
        reference: |c, x| x.iter().map(|&v| fixed::gelu(&c.set, c.layer, v)).collect(),
        exact: Some(|_, x| {
            x.iter()
                .map(|&v| ot_nonlinear::approx::fixed::gelu_exact(v))
                .collect()
        }),
        out_ring: |_| Ring::R64,
        // Carries (≤ 0.007) plus the largest jump at a breakpoint (0.145 for the starting
        // constants' T2 = 0.2), where the left piece may apply within 1/64 above it.
        tolerance: real(0.16),
        boolean: false,
    },
    Op {
        name: "exp",
        uses_approx: true,
        he_keys: false,
        block: &[128, 3072],
        ring: 64,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::exp::exp_cots(&c.set, c.layer, c.n))
        },
        input: |c, prg| activations(c, prg, 1, |_| (0.0, -3.0), |g| g.normal().abs()),
        secure: |c, s, x| {
            let bps = exp_breakpoints(&c.set, c.layer);
            funcs::exp(s, &c.set, c.layer, s.is_server().then_some(&bps[..]), x)
        },
        reference: |c, x| {
            x.iter()
                .map(|&v| fixed::exp_nonpositive(&c.set, c.layer, v))
                .collect()
        },
        exact: Some(|_, x| x.iter().map(|&v| v.exp()).collect()),
        out_ring: |_| Ring::R64,
        // Carries (≤ 0.021 by the bound, 0.005 measured) plus exp(T) ≈ 0.018 at the threshold.
        tolerance: real(0.04),
        boolean: false,
    },
    Op {
        name: "softmax",
        uses_approx: true,
        he_keys: false,
        block: &[12, 128, SM_COLS],
        ring: 64,
        cots: |c| {
            function_ring(c, SM_COLS)?;
            Ok(funcs::softmax::softmax_cots(
                &c.set,
                c.layer,
                c.n / SM_COLS,
                SM_COLS,
            ))
        },
        input: |c, prg| activations(c, prg, SM_COLS, |g| (g.normal(), 2.0), |g| g.normal()),
        secure: |c, s, x| {
            let bps = exp_breakpoints(&c.set, c.layer);
            let bps = s.is_server().then_some(&bps[..]);
            funcs::softmax(s, &c.set, c.layer, c.n / SM_COLS, SM_COLS, x, bps, None)
        },
        reference: |c, x| {
            let mut y = x.to_vec();
            y.chunks_mut(SM_COLS)
                .for_each(|r| fixed::softmax_row(&c.set, c.layer, r, None));
            y
        },
        // No mask, as in the secure call.
        exact: Some(|_, x| x.chunks(SM_COLS).flat_map(softmax_f64).collect()),
        out_ring: |_| Ring::R64,
        // The tournament's winner may differ from the mirror's by < 1/32 (which moves every exp
        // argument alike: only the exp approximation's non-exponential shape shows), plus
        // carries: 0.0035–0.0075 measured.
        tolerance: real(0.02),
        boolean: false,
    },
    Op {
        name: "layernorm",
        uses_approx: false,
        he_keys: false,
        block: &[128, LN_COLS],
        ring: 64,
        cots: |c| {
            function_ring(c, LN_COLS)?;
            Ok(funcs::layernorm::layernorm_cots(c.n / LN_COLS, LN_COLS))
        },
        input: layernorm_input,
        secure: |_, s, x| funcs::layernorm(s, x, LN_COLS, LN_EPS),
        reference: layernorm_reference,
        // Only the normalisation: the secure LayerNorm leaves γ·ŷ + β to the next linear layer.
        exact: Some(layernorm_exact),
        out_ring: |_| Ring::R64,
        tolerance: Tolerance::Each(layernorm_tolerance),
        boolean: false,
    },
    Op {
        name: "layernorm-he",
        uses_approx: false,
        he_keys: true,
        block: &[128, LN_COLS],
        ring: 64,
        cots: |c| {
            function_ring(c, LN_COLS)?;
            let products = he_keys(c)?.row_products();
            Ok(funcs::layernorm::layernorm_cots_with(
                c.n / LN_COLS,
                LN_COLS,
                &products,
            ))
        },
        input: layernorm_input,
        secure: |c, s, x| {
            let mut products = he_keys(c)?.row_products();
            funcs::layernorm_with(s, x, LN_COLS, LN_EPS, &mut products)
        },
        reference: layernorm_reference,
        // The same values as `layernorm`: its square sums and row-scalar product on HE.
        exact: Some(layernorm_exact),
        out_ring: |_| Ring::R64,
        tolerance: Tolerance::Each(layernorm_tolerance),
        boolean: false,
    },
    Op {
        name: "reciprocal",
        uses_approx: false,
        he_keys: false,
        block: &[768],
        ring: 64,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::reciprocal_any::reciprocal_any_cots(c.n))
        },
        input: |c, prg| {
            let mut g = Gauss(prg);
            (0..c.n)
                .map(|_| {
                    let v = (-4.0 + 16.0 * g.uniform()).exp2();
                    LIN.encode(v).expect("2^-4 ≤ x < 2^12")
                })
                .collect()
        },
        secure: |_, s, x| funcs::reciprocal_any(s, x),
        reference: |_, x| x.iter().map(|&v| fixed::reciprocal(v)).collect(),
        exact: Some(|_, x| x.iter().map(|&v| 1.0 / v).collect()),
        out_ring: |_| Ring::R64,
        tolerance: Tolerance::Each(reciprocal_tolerance),
        boolean: false,
    },
    Op {
        name: "tanh",
        uses_approx: false,
        he_keys: false,
        block: &[768],
        ring: 64,
        cots: |c| {
            function_ring(c, 1)?;
            Ok(funcs::tanh::tanh_cots(c.n))
        },
        input: |c, prg| activations(c, prg, 1, |_| (0.0, 2.0), |g| g.normal()),
        secure: |_, s, x| funcs::tanh(s, x),
        reference: |_, x| x.iter().map(|&v| fixed::tanh(v)).collect(),
        exact: Some(|_, x| x.iter().map(|&v| v.tanh()).collect()),
        out_ring: |_| Ring::R64,
        // The squarings' carries, amplified (the bound of ot_nonlinear::functions::tanh).
        tolerance: Tolerance::Units(1024),
        boolean: false,
    },
];

/// The block suite run without `--op`: BERT-base's nonlinear layers.
const SUITE: [&str; 4] = ["gelu", "softmax", "layernorm", "layernorm-he"];

/// The functions take Z_2^64 shares with 18 fraction bits, `cols`-long rows.
fn function_ring(c: &Ctx, cols: usize) -> Result<()> {
    if c.ring != Ring::R64 || c.n % cols != 0 {
        return Err(Error::InvalidArgument(format!(
            "the functions need --ring 64 and a multiple of {cols} elements"
        )));
    }
    Ok(())
}

/// Per element of a LayerNorm output, the secure run's truncation carries (each truncation
/// there may return one less than the mirror's floor):
/// * v at 10 fraction bits one unit low moves ŷ by 2^-10/σ (the `unit`), the final truncation
///   by one more unit of 2^-18 (below one unit): 2 units;
/// * the variance's vs = floor(v/2^12) may be one low per element, changing Σvs² by
///   1 − 2·vs there: in expectation by about n/2 (Σvs ≈ 0), with standard deviation ≈
///   √(Σvs²)/2; relative to Σvs² = n·(2^6·σ)² that is at most 6/(2^6·σ·√n) at six standard
///   deviations (per row; the n/2 part is 1/(2·(2^6·σ)²), negligible), and r = 1/√var moves by
///   half of it, so ŷ by |ŷ| times that, plus the rsqrt's own carries (≤ 3e-5 relative,
///   `ot-nonlinear/tests/layernorm.rs` allows 1e-4 there).
fn layernorm_tolerance(_: &Ctx, x: &[u64], mirror: &[u64]) -> Vec<u64> {
    let xd: Vec<f64> = x.iter().map(|&v| LIN.decode(v)).collect();
    let root_n = (LN_COLS as f64).sqrt();
    xd.chunks(LN_COLS)
        .zip(mirror.chunks(LN_COLS))
        .flat_map(|(row, m)| {
            let sd = mean_var(row).1.sqrt();
            let unit = (-10f64).exp2() / sd;
            let relative = 3.0 / (64.0 * sd * root_n) + 1e-4;
            m.iter().map(move |&m| {
                let t = 2.0 * unit + relative * LIN.decode(m).abs();
                (t * (1u64 << 18) as f64).ceil() as u64
            })
        })
        .collect()
}

/// Per element of a reciprocal output, the secure run's carries (ot_nonlinear's
/// `functions::reciprocal_any`): 12 units of w at 18 bits scaled by 2^{17−k} (k the input's
/// highest bit, at most 36), plus one.
fn reciprocal_tolerance(_: &Ctx, x: &[u64], _: &[u64]) -> Vec<u64> {
    x.iter()
        .map(|&v| {
            let k = (63 - v.max(1).leading_zeros()).min(36);
            (12.0 * (17.0 - k as f64).exp2()).ceil() as u64 + 1
        })
        .collect()
}

fn mean_var(row: &[f64]) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    (
        mean,
        row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
    )
}

fn softmax_f64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().fold(f64::MIN, f64::max);
    let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| (v - m).exp() / z).collect()
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

/// The activation generator: n values in rows of `cols`, x = offset + scale·z with (offset,
/// scale) drawn once per row by `row` and z per element by `draw`, clamped to ±60 and encoded
/// in Z_2^64 with 18 fraction bits (the distributions are in the module comment).
fn activations(
    c: &Ctx,
    prg: &mut BlockPrg,
    cols: usize,
    row: fn(&mut Gauss) -> (f64, f64),
    draw: fn(&mut Gauss) -> f64,
) -> Vec<u64> {
    let mut g = Gauss(prg);
    let mut x = Vec::with_capacity(c.n);
    for _ in 0..c.n / cols {
        let (offset, scale) = row(&mut g);
        x.extend((0..cols).map(|_| {
            let v = (offset + scale * draw(&mut g)).clamp(-60.0, 60.0);
            LIN.encode(v).expect("clamped input")
        }));
    }
    x
}

fn uniform(c: &Ctx, prg: &mut BlockPrg) -> Vec<u64> {
    uniform_n(c.ring, c.n, prg)
}

fn uniform_n(ring: Ring, n: usize, prg: &mut BlockPrg) -> Vec<u64> {
    let mut blocks = vec![Block::ZERO; n];
    prg.fill(&mut blocks);
    blocks.iter().map(|b| ring.reduce(b.low_u64())).collect()
}

fn as_u64(bits: Vec<bool>) -> Vec<u64> {
    bits.into_iter().map(u64::from).collect()
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
    let x = (op.input)(ctx, &mut BlockPrg::new(INPUT_SEED));
    let mask = uniform_n(ring, x.len(), &mut BlockPrg::new(Block::from_bytes(seed.0)));
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
            return Err(Error::Malformed(format!(
                "{} ({approx}): output {i} off the mirror by {} (tolerance {})",
                op.name,
                errs[i],
                tol(i)
            )));
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
                .map_err(|e| Error::Malformed(format!("{}: {e}", path.display())))?
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
            let ring = Ring::new(ring.unwrap_or(op.ring))?;
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
