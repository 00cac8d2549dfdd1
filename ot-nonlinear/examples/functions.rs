//! Measures the secure functions at BERT-base shapes: both parties in one process (one thread
//! each) over an in-memory channel shaped to a network profile; prints bytes (both ways, Ferret
//! extensions included, setup excluded), rounds, wall time, and the error against f64 and
//! against the plaintext mirror; `--json` prints one JSON object.
//!
//!     cargo run --release -p ot-nonlinear --example functions -- --op gelu --approx nimbus --net lan
//!     … --op exp --approx puma --net lan
//!     … --op gelu --tables bert/tables/all-MiniLM-L6-v2.nimbus.json --layer 0   (fitted tables)
//!
//! Inputs (fixed seeds, documented in docs/protocols/nonlinear.md, "Functions"):
//! * gelu: x = −0.6 + 1.1·t₅ (Student t, 5 degrees of freedom: a normal-like bulk with heavy
//!   tails), clamped to ±60, 128 × 3072;
//! * exp: x = −|N(0, 3)| (scores minus the row max), 128 × 3072;
//! * softmax: attention scores N(0, 2²) plus a per-row N(0, 1) offset, 12 × 128 rows of 128.
use mpc_core::{Channel, FixedPoint, NetProfile, Party, Result};
use ot_nonlinear::approx::{fixed, ApproxSet};
use ot_nonlinear::block::Block;
use ot_nonlinear::functions::*;
use ot_nonlinear::mpc::Session;
use ot_nonlinear::prg::BlockPrg;
use std::sync::Arc;
use std::time::Instant;

const LIN: FixedPoint = FixedPoint::LINEAR;

struct Rng(BlockPrg);
impl Rng {
    fn uniform(&mut self) -> f64 {
        ((self.0.block().low_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
    fn student5(&mut self) -> f64 {
        let z = self.normal();
        let chi: f64 = (0..5).map(|_| self.normal().powi(2)).sum();
        z / (chi / 5.0).sqrt()
    }
}

fn gelu_exact(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    if z.abs() > 4.5 {
        return if x > 0.0 { x } else { 0.0 };
    }
    let (mut term, mut sum) = (z, z);
    for n in 1..300 {
        term *= -z * z / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    0.5 * x * (1.0 + sum * 2.0 / std::f64::consts::PI.sqrt())
}

type Op = Arc<dyn Fn(&mut Session, &[u64]) -> Result<Vec<u64>> + Send + Sync>;

/// The f64 function on the whole input.
type Exact = Box<dyn Fn(&[f64]) -> Vec<f64>>;
/// The mirror on the whole input.
type Mirror = Box<dyn Fn(&[u64]) -> Vec<u64>>;

/// One measured function: shape, inputs, the f64 function and the mirror (on the whole input,
/// so row-wise functions fit), the protocol.
struct Case {
    shape: String,
    xs: Vec<f64>,
    exact: Exact,
    mirror: Mirror,
    f: Op,
}

/// An element-wise f64 function on the whole input.
fn each(f: fn(f64) -> f64) -> Exact {
    Box::new(move |x| x.iter().map(|&v| f(v)).collect())
}

/// Softmax of each row of 128 in f64.
fn softmax_f64(x: &[f64]) -> Vec<f64> {
    x.chunks(128)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| (v - m).exp() / z).collect::<Vec<_>>()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: &str| -> String {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| d.to_string())
    };
    let op = get("--op", "gelu");
    let approx = get("--approx", "nimbus");
    let net = get("--net", "lan");
    let json = args.iter().any(|a| a == "--json");
    let layer: usize = get("--layer", "0").parse().expect("--layer N");
    let tables = get("--tables", "");
    let set = match approx.as_str() {
        _ if !tables.is_empty() => {
            ot_nonlinear::approx::TablesFile::load(std::path::Path::new(&tables), 6)
                .expect("--tables: a fitted-tables file for a 6-layer model")
                .set
        }
        "nimbus" => ApproxSet::nimbus(),
        "puma" => ApproxSet::puma(),
        other => panic!("unknown --approx {other}"),
    };
    let profile = NetProfile::ALL
        .into_iter()
        .find(|p| p.name() == net)
        .expect("--net none|lan|wan|bolt-lan|bolt-wan");
    let mut rng = Rng(BlockPrg::new(Block(0x5eed)));
    let Case {
        shape,
        xs,
        exact,
        mirror,
        f,
    } = match op.as_str() {
        "gelu" => {
            let xs = (0..128 * 3072)
                .map(|_| (-0.6 + 1.1 * rng.student5()).clamp(-60.0, 60.0))
                .collect();
            let (s1, s2) = (set.clone(), set.clone());
            Case {
                shape: "128x3072".into(),
                xs,
                exact: each(gelu_exact),
                mirror: Box::new(move |x| x.iter().map(|&v| fixed::gelu(&s1, layer, v)).collect()),
                f: Arc::new(move |sess: &mut Session, x: &[u64]| {
                    let (spec, bps) = gelu_spec(&s2, layer);
                    let bps = sess.is_server().then_some(bps);
                    gelu(sess, &spec, bps, x)
                }),
            }
        }
        "exp" => {
            let xs = (0..128 * 3072)
                .map(|_| -(3.0 * rng.normal()).abs())
                .collect();
            let (s1, s2) = (set.clone(), set.clone());
            Case {
                shape: "128x3072".into(),
                xs,
                exact: each(f64::exp),
                mirror: Box::new(move |x| {
                    x.iter()
                        .map(|&v| fixed::exp_nonpositive(&s1, layer, v))
                        .collect()
                }),
                f: Arc::new(move |sess: &mut Session, x: &[u64]| {
                    let bps = exp_breakpoints(&s2, layer);
                    let bps = sess.is_server().then_some(&bps[..]);
                    exp(sess, &s2, layer, bps, x)
                }),
            }
        }
        "softmax" => {
            // Attention scores: N(0, 2²) per entry plus a per-row N(0, 1) offset; 12 heads × 128
            // rows of 128, no padding.
            let mut xs = Vec::with_capacity(12 * 128 * 128);
            for _ in 0..12 * 128 {
                let off = rng.normal();
                xs.extend((0..128).map(|_| off + 2.0 * rng.normal()));
            }
            let (s1, s2) = (set.clone(), set.clone());
            Case {
                shape: "12x128x128".into(),
                xs,
                exact: Box::new(softmax_f64),
                mirror: Box::new(move |x| {
                    let mut y = x.to_vec();
                    y.chunks_mut(128)
                        .for_each(|r| fixed::softmax_row(&s1, layer, r, None));
                    y
                }),
                f: Arc::new(move |sess: &mut Session, x: &[u64]| {
                    let bps = exp_breakpoints(&s2, layer);
                    let bps = sess.is_server().then_some(&bps[..]);
                    softmax(sess, &s2, layer, x.len() / 128, 128, x, bps, None)
                }),
            }
        }
        other => panic!("unknown --op {other}"),
    };
    let n = xs.len();
    let x: Vec<u64> = xs.iter().map(|&v| LIN.encode(v).unwrap()).collect();
    let xs_share: Vec<u64> = (0..n).map(|_| rng.0.block().low_u64()).collect();
    let xc_share: Vec<u64> = x
        .iter()
        .zip(&xs_share)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect();
    let (a, b) = Channel::mem_pair_shaped(profile);
    let run =
        |ch: Channel, party: Party, share: Vec<u64>, f: Op| -> Result<(Vec<u64>, u64, u64, f64)> {
            let mut sess = Session::new(ch, party)?;
            sess.ch.send(&[0])?;
            sess.ch.recv_vec(1)?;
            let t0 = sess.ch.totals();
            let start = Instant::now();
            let y = f(&mut sess, &share)?;
            sess.ch.flush()?;
            // A final exchange so both clocks stop after the last message arrived.
            sess.ch.send(&[0])?;
            sess.ch.recv_vec(1)?;
            let wall = start.elapsed().as_secs_f64();
            let t1 = sess.ch.totals();
            Ok((
                y,
                t1.bytes_sent - t0.bytes_sent - 1,
                t1.rounds - t0.rounds - 2,
                wall,
            ))
        };
    let fc = f.clone();
    let t = std::thread::spawn(move || run(b, Party::Client, xc_share, fc).unwrap());
    let (ys, sent_s, rounds, wall) = run(a, Party::Server, xs_share, f).unwrap();
    let (yc, sent_c, _, _) = t.join().unwrap();
    let (mut max_err, mut sum_err, mut max_mirror) = (0.0f64, 0.0, 0.0f64);
    let xd: Vec<f64> = x.iter().map(|&v| LIN.decode(v)).collect();
    let (want, mirrored) = (exact(&xd), mirror(&x));
    for i in 0..n {
        let got = LIN.decode(ys[i].wrapping_add(yc[i]));
        let e = (got - want[i]).abs();
        max_err = max_err.max(e);
        sum_err += e;
        max_mirror = max_mirror.max((got - LIN.decode(mirrored[i])).abs());
    }
    let bytes = sent_s + sent_c;
    let report = serde_json::json!({
        "op": op, "approx": approx, "shape": shape, "net": net,
        "bytes": bytes, "bytes_server": sent_s, "bytes_client": sent_c,
        "rounds": rounds, "wall_s": wall,
        "max_err": max_err, "mean_err": sum_err / n as f64, "max_err_vs_mirror": max_mirror,
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "{op} {approx} {shape} net {net}: {:.2} MB ({:.1} bits/element), {rounds} rounds, {wall:.2} s; \
             max err {max_err:.4}, mean err {:.5} vs f64; max {max_mirror:.2e} vs mirror",
            bytes as f64 / 1e6,
            bytes as f64 * 8.0 / n as f64,
            sum_err / n as f64
        );
    }
}
