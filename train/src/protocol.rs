//! Logistic-regression training by mini-batch gradient descent, written once on [`Arith`]
//! (shares in the secure run, values in the twin). docs/protocols/training.md gives every
//! step's cost; the fixed-point formats are the constants below.
//!
//! Setup (once):
//! 1. moments: each holder encodes Σx/n (18 fraction bits) and Σx²/n (36) of its own rows per
//!    feature; the sums of the two are shares of the joint mean μ and second moment;
//! 2. var = E\[x²\] − μ² + ε (36 bits; μ² by a square, exact);
//! 3. s = 1/σ at [`S_FRAC`] bits by two LayerNorm rsqrts, one on var at 30 bits (its range
//!    is var < 4) and one at 6 bits (var ≥ 4), multiplexed by [var ≥ 4] (one DReLU);
//! 4. z = trunc((x − μ)·s, 26): each row's holder puts x in its share; one row-scalar product;
//!    the bias column is the constant 1;
//! 5. class weights (balanced): the holders' class counts n_1 (and n_0 = n − n_1) at 10 bits,
//!    one reciprocal each, κ_c = cw_c·η/B = trunc((1/n_c)·round(n·η/(2B)·2^24), 26); each
//!    row's κ_i = κ_0 + y_i·(κ_1 − κ_0), a multiplexer on the bit its holder owns. With
//!    `none`, κ = η/B is public.
//!
//! Each batch I: u = trunc(Z_I·w, 18) (one row-scalar product, w's bits shared over the rows);
//! p = σ̃(u) (all comparisons in one flight); e = p − y (the holders subtract their labels);
//! r = trunc(e·κ, 18) at [`R_FRAC`] bits (a product with class weights, a local public product
//! without); g = Z_Iᵀ·r (one row-scalar product); w ← w − trunc(g, 24).
//!
//! The model revealed: the raw-feature weights v = trunc(w·s, 14) (30 bits) and the bias
//! w_0 − Σ μ·v; nothing else is opened.
use crate::arith::{Arith, RING};
use crate::config::{ClassWeight, Holder, RawModel, Reveal, TrainConfig};
use crate::data::Sample;
use mpc_core::{Error, Result};
use nn::sigmoid::{sigmoid_cost, sigmoid_cots};
use ot_nonlinear::mpc::product::{mul_cost, mul_cots};
use ot_nonlinear::mpc::trunc::{trunc_cost, trunc_cots};
use ot_nonlinear::mpc::{Cost, CotDemand, TruncKind};

/// Accounting labels, defined once (the secure run nests them under [`label::TRAIN`]).
pub mod label {
    /// The whole training.
    pub const TRAIN: &str = "train";
    /// Standardisation and class weights.
    pub const SETUP: &str = "setup";
    /// Means and 1/σ.
    pub const STANDARDISE: &str = "standardise";
    /// The standardised rows.
    pub const ROWS: &str = "rows";
    /// The row weights κ.
    pub const CLASS_WEIGHTS: &str = "class_weights";
    /// One pass over the rows.
    pub const EPOCH: &str = "epoch";
    /// Computing and opening the model.
    pub const REVEAL: &str = "reveal";
    /// Opening the model's shares (inside [`REVEAL`]).
    pub const OPEN: &str = "open";

    /// `train/<label>`, the path of a phase in the secure run's accounting.
    pub fn path(parts: &[&str]) -> String {
        std::iter::once(TRAIN)
            .chain(parts.iter().copied())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Fraction bits of the activations, weights, means and labels.
pub const FRAC: u32 = 18;
/// Fraction bits of the second moment and the variance.
pub const MOMENT_FRAC: u32 = 36;
/// Fraction bits of 1/σ.
pub const S_FRAC: u32 = 26;
/// Fraction bits of the weighted residual r and of the row weight κ.
pub const R_FRAC: u32 = 24;
/// Fraction bits of the revealed model.
pub const MODEL_FRAC: u32 = 30;
/// ε added to the variance, in units of 2^-36 (2^-20).
pub const VAR_EPSILON: u64 = 1 << 16;
/// The variance from which the coarse rsqrt branch is used (var ≥ 4).
pub const VAR_SPLIT_BITS: u32 = 2;
/// The fine branch: var at 30 bits (rsqrt's range: 2^-30 ≤ var < 4), its result (2^-6/σ at
/// 20 bits) × 2^12.
const FINE_SHIFT: u32 = 6;
const FINE_SCALE: u32 = 12;
/// The coarse branch: var at 6 bits (2^-6 ≤ var < 2^26), its result 2^6/σ at 20 bits as is.
const COARSE_SHIFT: u32 = 30;
/// Fraction bits of the class counts fed to the reciprocal (n_c/2^8 at 18 bits).
const COUNT_FRAC: u32 = 10;
/// Fraction bits of 1/n_c out of the reciprocal.
const INV_COUNT_FRAC: u32 = 26;

/// The training rows as one evaluator sees them: the public owner of each row, and the rows it
/// may read (its own in the secure run, all in the twin).
#[derive(Clone, Debug)]
pub struct TrainView {
    /// Owner of each training row.
    pub owners: Vec<Holder>,
    /// The row, where this evaluator may read it.
    pub rows: Vec<Option<Sample>>,
    /// Number of features.
    pub features: usize,
}

impl TrainView {
    /// The view of `holders` on `rows` owned as `owners` says.
    pub fn new(rows: &[Sample], owners: &[Holder], holders: &[Holder]) -> Result<TrainView> {
        if rows.len() != owners.len() || rows.is_empty() {
            return Err(Error::shape(
                "rows (one per owner, at least one)",
                rows.len(),
                owners.len(),
            ));
        }
        let features = rows[0].x.len();
        if let Some(r) = rows.iter().find(|r| r.x.len() != features) {
            return Err(Error::shape(
                format!("line {}: features (the first row's)", r.line),
                r.x.len(),
                features,
            ));
        }
        Ok(TrainView {
            owners: owners.to_vec(),
            rows: rows
                .iter()
                .zip(owners)
                .map(|(r, o)| holders.contains(o).then(|| r.clone()))
                .collect(),
            features,
        })
    }

    /// The rows of `h` (those this view holds).
    fn rows_of(&self, h: Holder) -> impl Iterator<Item = &Sample> {
        self.rows
            .iter()
            .zip(&self.owners)
            .filter(move |(_, &o)| o == h)
            .filter_map(|(r, _)| r.as_ref())
    }
}

fn encode(x: f64, frac: u32) -> u64 {
    RING.from_signed((x * (frac as f64).exp2()).round() as i64)
}

/// The per-row weight of the residual.
#[derive(Clone, Debug)]
enum RowWeight {
    /// η/B for every row, public, at [`R_FRAC`] bits.
    Public(u64),
    /// κ_i per training row (shared).
    Shared(Vec<u64>),
}

/// The state of a training run on one evaluator.
#[derive(Clone, Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    n: usize,
    d: usize,
    /// Standardised rows with the bias column first, n × (d + 1).
    z: Vec<u64>,
    labels: Vec<Option<bool>>,
    owners: Vec<Holder>,
    kappa: RowWeight,
    mu: Vec<u64>,
    s: Vec<u64>,
    /// Bias then weights, on standardised features, [`FRAC`] bits.
    w: Vec<u64>,
}

impl Trainer {
    /// Setup: standardisation, class weights (label `setup`).
    pub fn setup<A: Arith>(a: &mut A, view: &TrainView, cfg: TrainConfig) -> Result<Trainer> {
        let (n, d) = (view.owners.len(), view.features);
        cfg.check(n)?;
        a.scope(label::SETUP, |a| {
            let (mu, s) = a.scope(label::STANDARDISE, |a| inverse_std(a, view))?;
            let z = a.scope(label::ROWS, |a| standardised_rows(a, view, &mu, &s))?;
            let kappa = a.scope(label::CLASS_WEIGHTS, |a| row_weights(a, view, &cfg))?;
            Ok(Trainer {
                cfg,
                n,
                d,
                z,
                labels: view
                    .rows
                    .iter()
                    .map(|r| r.as_ref().map(|r| r.label))
                    .collect(),
                owners: view.owners.clone(),
                kappa,
                mu,
                s,
                w: vec![0; d + 1],
            })
        })
    }

    /// One pass over the training rows (label `epoch`).
    pub fn epoch<A: Arith>(&mut self, a: &mut A, epoch: usize) -> Result<()> {
        a.scope(label::EPOCH, |a| {
            for batch in self.cfg.batches(self.n, epoch) {
                self.step(a, &batch)?;
            }
            Ok(())
        })
    }

    /// Exact bytes each way (A = server, B = client) of epoch `epoch` and the COTs it draws
    /// (reserve them beforehand and the epoch holds no Ferret extension). The rounds are the
    /// steps' sum, an upper bound: consecutive steps' flights merge on the channel.
    pub fn epoch_cost(&self, epoch: usize) -> (Cost, CotDemand) {
        batch_costs(&self.cfg, self.n, self.d, epoch)
    }

    fn step<A: Arith>(&mut self, a: &mut A, batch: &[usize]) -> Result<()> {
        let (b, cols) = (batch.len(), self.d + 1);
        let row = |i: usize| &self.z[i * cols..(i + 1) * cols];
        // u = Z_I·w: unit j (weight w_j) times column j of the batch.
        let zt: Vec<u64> = (0..cols)
            .flat_map(|j| batch.iter().map(move |&i| row(i)[j]))
            .collect();
        let prod = a.mul_rows(&zt, &self.w, b)?;
        let u36: Vec<u64> = (0..b)
            .map(|k| (0..cols).fold(0, |acc, j| RING.add(acc, prod[j * b + k])))
            .collect();
        let u = a.trunc(&u36, FRAC)?;
        let p = a.sigmoid(self.cfg.sigmoid, &u)?;
        let y = a.input(|h| {
            batch
                .iter()
                .map(|&i| match self.labels[i] {
                    Some(true) if self.owners[i] == h => encode(1.0, FRAC),
                    _ => 0,
                })
                .collect()
        });
        let e: Vec<u64> = p.iter().zip(&y).map(|(&p, &y)| RING.sub(p, y)).collect();
        let weighted = match &self.kappa {
            RowWeight::Public(k) => e.iter().map(|&v| RING.mul(v, *k)).collect(),
            RowWeight::Shared(kappa) => {
                let k: Vec<u64> = batch.iter().map(|&i| kappa[i]).collect();
                a.mul(&e, &k)?
            }
        };
        let r = a.trunc(&weighted, FRAC)?;
        // g = Z_Iᵀ·r: unit k (residual r_k) times row k of the batch.
        let zb: Vec<u64> = batch.iter().flat_map(|&i| row(i).iter().copied()).collect();
        let prod = a.mul_rows(&zb, &r, cols)?;
        let g: Vec<u64> = (0..cols)
            .map(|j| (0..b).fold(0, |acc, k| RING.add(acc, prod[k * cols + j])))
            .collect();
        let step = a.trunc(&g, R_FRAC)?;
        for (w, s) in self.w.iter_mut().zip(step) {
            *w = RING.sub(*w, s);
        }
        Ok(())
    }

    /// The raw-feature model, opened to the holders `to` selects (label `reveal`); `None` for
    /// a holder that does not learn it.
    pub fn model<A: Arith>(&self, a: &mut A, to: Reveal) -> Result<Option<RawModel>> {
        a.scope(label::REVEAL, |a| {
            let d = self.d;
            let vs = a.mul(&self.w[1..], &self.s)?;
            let v = a.trunc(&vs, FRAC + S_FRAC - MODEL_FRAC)?;
            let mv = a.mul(&self.mu, &v)?;
            let sum = mv.iter().fold(0, |acc, &x| RING.add(acc, x));
            let shift = a.trunc(&[sum], FRAC)?;
            let bias = RING.sub(self.w[0] << (MODEL_FRAC - FRAC), shift[0]);
            let mut out = vec![bias];
            out.extend(v);
            Ok(a.reveal(&out, to)?.map(|m| {
                let dec = |x: u64| RING.to_signed(x) as f64 / (MODEL_FRAC as f64).exp2();
                RawModel {
                    bias: dec(m[0]),
                    weights: m[1..=d].iter().map(|&x| dec(x)).collect(),
                }
            }))
        })
    }
}

/// Shares of μ (18 bits) and 1/σ ([`S_FRAC`] bits) per feature.
fn inverse_std<A: Arith>(a: &mut A, view: &TrainView) -> Result<(Vec<u64>, Vec<u64>)> {
    let (n, d) = (view.owners.len() as f64, view.features);
    let moment = |h: Holder, power: i32, frac: u32| -> Vec<u64> {
        (0..d)
            .map(|j| {
                encode(
                    view.rows_of(h).map(|r| r.x[j].powi(power)).sum::<f64>() / n,
                    frac,
                )
            })
            .collect()
    };
    let mu = a.input(|h| moment(h, 1, FRAC));
    let second = a.input(|h| moment(h, 2, MOMENT_FRAC));
    let mu2 = a.square(&mu)?;
    let eps = a.public(VAR_EPSILON);
    let var: Vec<u64> = second
        .iter()
        .zip(&mu2)
        .map(|(&e, &m)| RING.add(RING.sub(e, m), eps))
        .collect();
    let fine = a.trunc(&var, FINE_SHIFT)?;
    let coarse = a.trunc(&var, COARSE_SHIFT)?;
    let both: Vec<u64> = fine.iter().chain(&coarse).copied().collect();
    let r = a.rsqrt(&both)?;
    let (r_fine, r_coarse) = r.split_at(d);
    let split = a.public(1 << (MOMENT_FRAC + VAR_SPLIT_BITS));
    let over: Vec<u64> = var.iter().map(|&v| RING.sub(v, split)).collect();
    let big = a.drelu(&over)?;
    let fine: Vec<u64> = r_fine
        .iter()
        .map(|&x| RING.reduce(x << FINE_SCALE))
        .collect();
    let diff: Vec<u64> = r_coarse
        .iter()
        .zip(&fine)
        .map(|(&c, &f)| RING.sub(c, f))
        .collect();
    let chosen = a.mux(&big, &diff)?;
    let s = fine
        .iter()
        .zip(chosen)
        .map(|(&f, c)| RING.add(f, c))
        .collect();
    Ok((mu, s))
}

/// Z (n × (d + 1), bias column first): trunc((x − μ)·s, [`S_FRAC`]).
fn standardised_rows<A: Arith>(
    a: &mut A,
    view: &TrainView,
    mu: &[u64],
    s: &[u64],
) -> Result<Vec<u64>> {
    let (n, d) = (view.owners.len(), view.features);
    // Feature-major x − μ: the holder of row i inputs x, every evaluator subtracts its μ share.
    let x = a.input(|h| {
        (0..d)
            .flat_map(|j| {
                (0..n).map(move |i| match &view.rows[i] {
                    Some(r) if view.owners[i] == h => encode(r.x[j], FRAC),
                    _ => 0,
                })
            })
            .collect()
    });
    let centred: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(k, &v)| RING.sub(v, mu[k / n]))
        .collect();
    let prod = a.mul_rows(&centred, s, n)?;
    let zt = a.trunc(&prod, S_FRAC)?;
    let one = a.public(encode(1.0, FRAC));
    let zt = &zt;
    Ok((0..n)
        .flat_map(|i| std::iter::once(one).chain((0..d).map(move |j| zt[j * n + i])))
        .collect())
}

/// κ per row: cw·η/B at [`R_FRAC`] bits.
fn row_weights<A: Arith>(a: &mut A, view: &TrainView, cfg: &TrainConfig) -> Result<RowWeight> {
    let n = view.owners.len();
    let step = cfg.lr / cfg.batch as f64;
    if cfg.class_weight == ClassWeight::None {
        return Ok(RowWeight::Public(encode(step, R_FRAC)));
    }
    let positives = a.input(|h| {
        let count = view.rows_of(h).filter(|r| r.label).count() as u64;
        vec![count << COUNT_FRAC]
    });
    let all = a.public((n as u64) << COUNT_FRAC);
    let counts = [RING.sub(all, positives[0]), positives[0]];
    let inv = a.reciprocal(&counts)?;
    let k = encode(n as f64 * step / 2.0, R_FRAC);
    let scaled: Vec<u64> = inv.iter().map(|&v| RING.mul(v, k)).collect();
    let kappa = a.trunc(&scaled, INV_COUNT_FRAC)?;
    let bits = a.input_bits(|h| {
        (0..n)
            .map(|i| view.owners[i] == h && view.rows[i].as_ref().is_some_and(|r| r.label))
            .collect()
    });
    let delta = RING.sub(kappa[1], kappa[0]);
    let picked = a.mux(&bits, &vec![delta; n])?;
    Ok(RowWeight::Shared(
        picked.into_iter().map(|p| RING.add(kappa[0], p)).collect(),
    ))
}

/// The protocol steps of every batch of an epoch, in [`Trainer`]'s order, summed.
fn batch_costs(cfg: &TrainConfig, n: usize, d: usize, epoch: usize) -> (Cost, CotDemand) {
    let cols = d + 1;
    let trunc = |m: usize, s: u32| {
        let c = trunc_cost(m, RING, RING, s, TruncKind::KnownMsb).expect("s ≤ 62");
        let t = trunc_cots(m, RING, RING, s, TruncKind::KnownMsb).expect("s ≤ 62");
        (c, t)
    };
    let mut steps = Vec::new();
    for batch in cfg.batches(n, epoch) {
        let b = batch.len();
        steps.push((mul_cost(cols, b, RING), mul_cots(cols, RING)));
        steps.push(trunc(b, FRAC));
        steps.push((sigmoid_cost(cfg.sigmoid, b), sigmoid_cots(cfg.sigmoid, b)));
        if cfg.class_weight == ClassWeight::Balanced {
            steps.push((mul_cost(b, 1, RING), mul_cots(b, RING)));
        }
        steps.push(trunc(b, FRAC));
        steps.push((mul_cost(b, cols, RING), mul_cots(b, RING)));
        steps.push(trunc(cols, R_FRAC));
    }
    steps.into_iter().fold(
        (Cost::default(), CotDemand::default()),
        |(c, t), (c2, t2)| (c.then(c2), t.plus(t2)),
    )
}
