//! The operations of `bench nonlinear`: one row of [`OPS`] each, with its COTs, plaintext
//! input, secure computation, mirror, f64 function, output ring and tolerance.
use super::inputs::{activations, as_u64, uniform, Gauss};
use super::Ctx;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Channel, Error, FixedPoint, Party, Result, Ring, Seed, Turn};
use nn::norm::HeRowProducts;
use ot_nonlinear::approx::layernorm::normalize_row;
use ot_nonlinear::approx::{fixed, ScoreMask};
use ot_nonlinear::functions::{self as funcs, exp_breakpoints, gelu_spec, Output};
use ot_nonlinear::mpc::{self, drelu::drelu_cots, product::mul_cots, relu::relu_cots};
use ot_nonlinear::mpc::{trunc::trunc_cots, CotDemand, Session, TruncKind};
use ot_nonlinear::Block;

/// A party's keys for HE products: its secret key and the peer's public and Galois keys.
pub(super) struct HeKeys {
    pub(super) params: HeParams,
    pub(super) sk: SecretKey,
    pub(super) peer_pk: PublicKey,
    pub(super) peer_galois: GaloisKeys,
}

impl std::fmt::Debug for HeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeKeys { .. }")
    }
}

impl HeKeys {
    /// Generates this party's keys and swaps public and Galois keys with the peer.
    pub(super) fn exchange(ch: &mut Channel, role: Party, seed: Seed) -> Result<HeKeys> {
        let params = HeParams::packed_products()?;
        let mut rng = AesPrg::new(seed);
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let galois = GaloisKeys::generate(&params, &sk, &mut rng);
        let (server, turn) = match role {
            Party::Server => (true, Turn::SendFirst),
            Party::Client => (false, Turn::ReceiveFirst),
        };
        let peer_pk = if server {
            pk.send(ch, &params)?;
            PublicKey::recv(ch, &params)?
        } else {
            let peer = PublicKey::recv(ch, &params)?;
            pk.send(ch, &params)?;
            peer
        };
        let peer_galois = GaloisKeys::exchange(ch, &params, &galois, turn)?
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
pub(super) fn he_keys(c: &Ctx) -> Result<&HeKeys> {
    c.he.as_deref()
        .ok_or_else(|| Error::InvalidArgument("this operation needs HE keys".into()))
}

/// How far the secure output may be from the mirror (in units of the output ring).
pub(super) enum Tolerance {
    /// The same bound for every element.
    Units(u64),
    /// One bound per element, from the plaintext input and the mirror's output (LayerNorm:
    /// its carries scale with 1/σ of the row).
    Each(fn(&Ctx, &[u64], &[u64]) -> Vec<u64>),
}

/// A function in f64 on the decoded input (the whole batch, so row-wise functions fit).
pub(super) type Exact = fn(&Ctx, &[f64]) -> Vec<f64>;

/// One benchmarked operation.
pub(super) struct Op {
    pub(super) name: &'static str,
    /// Whether the operation reads the approximation set (others run as approx `none`).
    pub(super) uses_approx: bool,
    /// Whether it runs HE products: both parties exchange public and Galois keys of the packed
    /// products' parameters first (counted as setup).
    pub(super) he_keys: bool,
    /// Its BERT-base block shape: the default element count and the shape's trailing
    /// dimensions in the report.
    pub(super) block: &'static [usize],
    /// Default ring of the input.
    pub(super) ring: Ring,
    pub(super) cots: fn(&Ctx) -> Result<CotDemand>,
    /// Plaintext input in `ctx.ring` (n values, or 2n for two operands), from `prg`.
    pub(super) input: fn(&Ctx, &mut AesPrg) -> Vec<u64>,
    /// This party's output share from its input share.
    pub(super) secure: fn(&Ctx, &mut Session, &[u64]) -> Result<Vec<u64>>,
    /// The plaintext mirror's output.
    pub(super) reference: fn(&Ctx, &[u64]) -> Vec<u64>,
    /// The f64 function of the decoded input (the functions; their inputs and outputs are
    /// Z_2^64 with 18 fraction bits).
    pub(super) exact: Option<Exact>,
    /// The output ring.
    pub(super) out_ring: fn(&Ctx) -> Ring,
    pub(super) tolerance: Tolerance,
    /// Whether output shares are XOR-shared bits (as 0/1) instead of additive.
    pub(super) boolean: bool,
}

/// Fixed-point format of the functions' inputs and outputs.
pub(super) const LIN: FixedPoint = FixedPoint::LINEAR;
/// LayerNorm row length (BERT-base hidden size) and ε (BERT's).
pub(super) const LN_COLS: usize = 768;
pub(super) const LN_EPS: f64 = 1e-12;
/// Softmax row length (sequence length).
pub(super) const SM_COLS: usize = 128;
/// Seed of the inputs: every run of an operation sees the same values.
pub(super) const INPUT_SEED: Block = Block(0x5eed);

/// LayerNorm's inputs: residual-stream rows (see the module comment).
pub(super) fn layernorm_input(c: &Ctx, prg: &mut AesPrg) -> Vec<u64> {
    activations(
        c,
        prg,
        LN_COLS,
        |g| (g.normal(), 2.0 * g.normal().abs() + 0.3),
        |g| g.normal(),
    )
}

/// LayerNorm's plaintext mirror, row by row.
pub(super) fn layernorm_reference(_: &Ctx, x: &[u64]) -> Vec<u64> {
    let mut y = x.to_vec();
    y.chunks_mut(LN_COLS).for_each(|r| normalize_row(r, LN_EPS));
    y
}

/// (x − mean)/√(var + ε) per row in f64.
pub(super) fn layernorm_exact(_: &Ctx, x: &[f64]) -> Vec<f64> {
    x.chunks(LN_COLS)
        .flat_map(|row| {
            let (mean, var) = mean_var(row);
            row.iter().map(move |v| (v - mean) / (var + LN_EPS).sqrt())
        })
        .collect()
}

/// `t` real units as a tolerance at 18 fraction bits.
pub(super) const fn real(t: f64) -> Tolerance {
    Tolerance::Units((t * (1u64 << 18) as f64) as u64)
}

/// The operations (one row each).
pub(super) const OPS: &[Op] = &[
    Op {
        name: "relu",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: Ring::new_const(37),
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
        ring: Ring::new_const(37),
        cots: |c| Ok(drelu_cots(c.n, c.ring)),
        input: uniform,
        secure: |c, s, x| Ok(as_u64(mpc::drelu(s, x, c.ring)?)),
        reference: |c, x| x.iter().map(|&v| !c.ring.msb(v) as u64).collect(),
        exact: None,
        out_ring: |_| const { Ring::new_const(1) },
        tolerance: Tolerance::Units(0),
        boolean: true,
    },
    Op {
        name: "trunc",
        uses_approx: false,
        he_keys: false,
        block: &[12, 128, 256],
        ring: Ring::new_const(37),
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
        ring: Ring::new_const(37),
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
        ring: Ring::R64,
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
        ring: Ring::R64,
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
        ring: Ring::R64,
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
            funcs::softmax(
                s,
                &c.set,
                c.layer,
                c.n / SM_COLS,
                SM_COLS,
                x,
                bps,
                ScoreMask::None,
            )
        },
        reference: |c, x| {
            let mut y = x.to_vec();
            y.chunks_mut(SM_COLS)
                .for_each(|r| fixed::softmax_row(&c.set, c.layer, r, ScoreMask::None));
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
        ring: Ring::R64,
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
        ring: Ring::R64,
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
        ring: Ring::R64,
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
        ring: Ring::R64,
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
pub(super) const SUITE: [&str; 4] = ["gelu", "softmax", "layernorm", "layernorm-he"];

/// The functions take Z_2^64 shares with 18 fraction bits, `cols`-long rows.
pub(super) fn function_ring(c: &Ctx, cols: usize) -> Result<()> {
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
pub(super) fn layernorm_tolerance(_: &Ctx, x: &[u64], mirror: &[u64]) -> Vec<u64> {
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
pub(super) fn reciprocal_tolerance(_: &Ctx, x: &[u64], _: &[u64]) -> Vec<u64> {
    x.iter()
        .map(|&v| {
            let k = (63 - v.max(1).leading_zeros()).min(36);
            (12.0 * (17.0 - k as f64).exp2()).ceil() as u64 + 1
        })
        .collect()
}

pub(super) fn mean_var(row: &[f64]) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    (
        mean,
        row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
    )
}

pub(super) fn softmax_f64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().fold(f64::MIN, f64::max);
    let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| (v - m).exp() / z).collect()
}
