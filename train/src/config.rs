//! The public parameters of a training run: who holds which rows, the schedule, the options,
//! and the checks that the fixed-point formats hold them.
use mpc_core::{Error, Party, Result};
use nn::sigmoid::SigmoidApprox;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One of the two data holders. Holder A plays the protocols' server role (P0), B the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// The first data holder.
    A,
    /// The second data holder.
    B,
}

impl Holder {
    /// Both, A first.
    pub const BOTH: [Holder; 2] = [Holder::A, Holder::B];

    /// The role this holder plays in the two-party protocols.
    pub fn party(self) -> Party {
        match self {
            Holder::A => Party::Server,
            Holder::B => Party::Client,
        }
    }
}

/// How the training rows are divided between the holders (public).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowSplit {
    /// A holds the first K training rows, B the rest (`rows:K`).
    Rows(usize),
    /// Each row goes to A or B by a seeded coin (`random:SEED`).
    Random(u64),
}

impl std::str::FromStr for RowSplit {
    type Err = Error;
    fn from_str(s: &str) -> Result<RowSplit> {
        let bad = || Error::InvalidArgument(format!("--split {s:?}: use rows:K or random:SEED"));
        match s.split_once(':') {
            Some(("rows", k)) => k.parse().map(RowSplit::Rows).map_err(|_| bad()),
            Some(("random", seed)) => seed.parse().map(RowSplit::Random).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl RowSplit {
    /// The owner of each of `n` training rows; each holder must get at least one row.
    pub fn owners(self, n: usize) -> Result<Vec<Holder>> {
        let owners: Vec<Holder> = match self {
            RowSplit::Rows(k) => (0..n)
                .map(|i| if i < k { Holder::A } else { Holder::B })
                .collect(),
            RowSplit::Random(seed) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                (0..n)
                    .map(|_| {
                        if rand::Rng::random_bool(&mut rng, 0.5) {
                            Holder::A
                        } else {
                            Holder::B
                        }
                    })
                    .collect()
            }
        };
        for h in Holder::BOTH {
            if !owners.contains(&h) {
                return Err(Error::InvalidArgument(format!(
                    "split {self:?} leaves holder {h:?} no training row (of {n})"
                )));
            }
        }
        Ok(owners)
    }
}

/// Class weights in the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassWeight {
    /// Every row weighs 1.
    None,
    /// cw_c = n / (2·n_c), computed on shares.
    Balanced,
}

impl std::str::FromStr for ClassWeight {
    type Err = Error;
    fn from_str(s: &str) -> Result<ClassWeight> {
        match s {
            "none" => Ok(ClassWeight::None),
            "balanced" => Ok(ClassWeight::Balanced),
            _ => Err(Error::InvalidArgument(format!(
                "--class-weight {s:?}: use balanced or none"
            ))),
        }
    }
}

/// Who learns the trained model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reveal {
    /// Both holders.
    Both,
    /// Holder A only.
    A,
    /// Holder B only.
    B,
}

impl Reveal {
    /// Whether `h` learns the model.
    pub fn includes(self, h: Holder) -> bool {
        matches!(
            (self, h),
            (Reveal::Both, _) | (Reveal::A, Holder::A) | (Reveal::B, Holder::B)
        )
    }
}

impl std::str::FromStr for Reveal {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reveal> {
        match s {
            "both" => Ok(Reveal::Both),
            "a" => Ok(Reveal::A),
            "b" => Ok(Reveal::B),
            _ => Err(Error::InvalidArgument(format!(
                "--reveal {s:?}: use both, a or b"
            ))),
        }
    }
}

/// The training schedule and options (all public).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per mini-batch B (the last batch of an epoch may be smaller; the step is η/B).
    pub batch: usize,
    /// Learning rate η.
    pub lr: f64,
    /// Class weights.
    pub class_weight: ClassWeight,
    /// The sigmoid's approximation (the f64 reference uses the exact sigmoid).
    pub sigmoid: SigmoidApprox,
    /// Seed of the public batch order.
    pub shuffle_seed: u64,
}

impl TrainConfig {
    /// Refuses a schedule that the fixed-point formats cannot hold for `n` training rows
    /// (docs/protocols/training.md, "Ranges"): the largest row weight κ = n·η/(2B) (class
    /// weights with a class of one row) and the gradient bound n^1.5·η/2 < 2^19.
    pub fn check(&self, n: usize) -> Result<()> {
        if self.epochs == 0 || self.batch == 0 || self.batch > n {
            return Err(Error::InvalidArgument(format!(
                "epochs {} and batch {} must be ≥ 1, batch ≤ {n} training rows",
                self.epochs, self.batch
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "learning rate {} must be > 0",
                self.lr
            )));
        }
        let kappa = n as f64 * self.lr / (2.0 * self.batch as f64);
        let gradient = (n as f64).powf(1.5) * self.lr / 2.0;
        if kappa >= 4096.0
            || gradient >= (1u64 << 19) as f64
            || self.lr / (self.batch as f64) < 1e-6
        {
            return Err(Error::out_of_range(
                format!(
                    "learning rate with batch {} and {n} rows (the fixed-point ranges)",
                    self.batch
                ),
                self.lr.to_string(),
                "n·η/(2B) < 4096, n^1.5·η/2 < 2^19 and η/B ≥ 1e-6",
            ));
        }
        Ok(())
    }

    /// The public batches of epoch `epoch` over `n` rows: a seeded permutation cut into
    /// chunks of B.
    pub fn batches(&self, n: usize, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.shuffle_seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        order.shuffle(&mut rng);
        order.chunks(self.batch).map(<[usize]>::to_vec).collect()
    }
}

/// A trained logistic-regression model on the raw features: P(y = 1 | x) = σ(bias + w·x).
#[derive(Clone, Debug, PartialEq)]
pub struct RawModel {
    /// Bias.
    pub bias: f64,
    /// One weight per feature.
    pub weights: Vec<f64>,
}

impl RawModel {
    /// The predicted probability of the positive class.
    pub fn probability(&self, x: &[f64]) -> f64 {
        let u = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
        nn::sigmoid::sigmoid_exact(u)
    }
}
