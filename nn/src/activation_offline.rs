//! A piecewise activation's power products (GELU's u², a cubic's u² and u³) on correlations
//! made offline: [`crate::activation::piecewise`] with its step 3 replaced by openings.
//!
//! **Offline** ([`PowerTriples::generate`]), per step of the plan's power schedule, on n
//! elements of Z_2^ℓ (ℓ = the plan's poly_bits), each party drawing its shares uniformly from
//! its session PRG:
//! * a square: A and C = A² (the cross term 2·A_c·A_s by one Gilboa product on COTs,
//!   [`ot_nonlinear::mpc::product::square`]);
//! * a product of two powers: A, B and C = A·B ([`ot_nonlinear::mpc::product::mul`]).
//!
//! **Online** ([`PowerProducts`] for [`PowerTriples`]), each product one round in which both
//! parties send their shares of the masked operands (ℓ bits per operand and element): with
//! D = x − A (and E = y − B) opened, x² = D² + 2·D·A + C and x·y = D·E + D·B + A·E + C,
//! exact modulo 2^ℓ: the values the narrow Gilboa products give wherever a polynomial piece
//! applies, so the mirror is [`crate::activation::piecewise_mirror`] unchanged. At BERT-base's
//! GELU (128 × 3072, ℓ = 22) the square sends 1 081 344 bytes per party instead of ≈ 12 MB of
//! OT messages, and its COTs move offline.
//!
//! What each party sees online: D and E, uniform whatever x and y are (A and B uniform, used
//! once: a step served twice is refused, and [`crate::offline::OfflineStore`] refuses a
//! second use of an entry). Offline: the Gilboa products' view on random operands.
//!
//! ```
//! use nn::activation_offline::piecewise_prepared_cost;
//! use ot_nonlinear::approx::ApproxSet;
//! let set = ApproxSet::nimbus();
//! let gelu = &set.layer(0).gelu;
//! let cost = piecewise_prepared_cost(gelu, &set.plan.gelu, 1000);
//! assert!(cost.client_bytes > 1000 * 22 / 8);
//! ```
use crate::activation::Piecewise;
use crate::cast::LINEAR;
use crate::offline::OfflineStore;
use crate::tensor::SharedTensor;
use crate::triple::open_packed as open;
use mpc_core::{AesPrg, Dims, Error, Result, Ring};
use ot_nonlinear::approx::{PiecewisePlan, PiecewisePoly};
use ot_nonlinear::functions::{
    piecewise_prepared_cost as ot_prepared_cost, piecewise_prepared_cots as ot_prepared_cots,
    piecewise_with, power_steps, Output, PiecewiseSpec, PowerProducts,
};
use ot_nonlinear::mpc::product::{mul, mul_cots, square, square_cots};
use ot_nonlinear::mpc::{Cost, CotDemand, Session};

/// One step's correlation: the operands' masks and the product of the masks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StepTriple {
    /// A and C = A².
    Square { a: Vec<u64>, c: Vec<u64> },
    /// A, B and C = A·B.
    Mul {
        a: Vec<u64>,
        b: Vec<u64>,
        c: Vec<u64>,
    },
}

impl StepTriple {
    fn words(&self) -> Vec<u64> {
        match self {
            StepTriple::Square { a, c } => [&a[..], c].concat(),
            StepTriple::Mul { a, b, c } => [&a[..], b, c].concat(),
        }
    }
}

/// One party's correlations for one piecewise activation on n elements: one per step of the
/// power schedule, each served once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerTriples {
    ring: Ring,
    n: usize,
    /// `None` once served.
    steps: Vec<Option<StepTriple>>,
}

/// The digest power-triple entries are filed under (their schedule is the metadata).
const DIGEST: [u8; 32] = *b"nn power triples v1 ............";

/// The schedule as metadata words: ring bits, n, steps, and the squares as a bit mask.
fn meta(ring: Ring, n: usize, squares: &[bool]) -> Result<[u64; 4]> {
    if squares.len() > 64 {
        return Err(Error::out_of_range(
            "power schedule steps",
            squares.len(),
            Dims::AtMost(64),
        ));
    }
    let mask = squares
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &sq)| m | (sq as u64) << i);
    Ok([ring.bits() as u64, n as u64, squares.len() as u64, mask])
}

impl PowerTriples {
    /// Generates this party's correlations for `spec`'s power schedule on `n` elements (offline:
    /// nothing depends on the input); the COTs of the Gilboa products are reserved here.
    pub fn generate(
        sess: &mut Session,
        spec: &PiecewiseSpec<'_>,
        n: usize,
    ) -> Result<PowerTriples> {
        let ring = spec.plan.poly_bits;
        let squares = power_steps(spec);
        let demand = squares.iter().fold(CotDemand::default(), |d, &sq| {
            d.plus(if sq {
                square_cots(n, ring)
            } else {
                mul_cots(n, ring)
            })
        });
        sess.reserve(demand)?;
        let mut prg = AesPrg::new(sess.fresh_seed());
        let mut draw = || -> Vec<u64> { prg.u64s(n).into_iter().map(|v| ring.reduce(v)).collect() };
        let mut steps = Vec::with_capacity(squares.len());
        for sq in squares {
            steps.push(Some(if sq {
                let a = draw();
                let c = square(sess, &a, ring)?;
                StepTriple::Square { a, c }
            } else {
                let (a, b) = (draw(), draw());
                let c = mul(sess, &a, &b, ring)?;
                StepTriple::Mul { a, b, c }
            }));
        }
        Ok(PowerTriples { ring, n, steps })
    }

    /// Files this party's correlations as entry `name` of `store` (refused once a step has
    /// been served).
    pub fn put(&self, store: &OfflineStore, name: &str) -> Result<()> {
        let squares: Vec<bool> = self
            .steps
            .iter()
            .map(|s| matches!(s, Some(StepTriple::Square { .. })))
            .collect();
        let mut words = Vec::new();
        for s in &self.steps {
            words.extend(s.as_ref().ok_or_else(served)?.words());
        }
        store.put(name, &DIGEST, &meta(self.ring, self.n, &squares)?, &words)
    }

    /// Consumes entry `name` of `store`, which must hold correlations for `spec`'s schedule
    /// on `n` elements (refused otherwise, or if used before).
    pub fn take(
        store: &OfflineStore,
        name: &str,
        spec: &PiecewiseSpec<'_>,
        n: usize,
    ) -> Result<PowerTriples> {
        let ring = spec.plan.poly_bits;
        let squares = power_steps(spec);
        let len: usize = squares
            .iter()
            .map(|&sq| if sq { 2 * n } else { 3 * n })
            .sum();
        let words = store.take(name, &DIGEST, &meta(ring, n, &squares)?, len)?;
        let mut parts = words.chunks_exact(n.max(1));
        let mut next = || parts.next().map(<[u64]>::to_vec).unwrap_or_default();
        let steps = squares
            .iter()
            .map(|&sq| {
                Some(if sq {
                    StepTriple::Square {
                        a: next(),
                        c: next(),
                    }
                } else {
                    StepTriple::Mul {
                        a: next(),
                        b: next(),
                        c: next(),
                    }
                })
            })
            .collect();
        Ok(PowerTriples { ring, n, steps })
    }

    /// Step `step`'s correlation, taken out: refused, leaving it in place, if the step does
    /// not exist, was served, is of the other kind (`square` or not) or shape.
    fn serve(&mut self, step: usize, ring: Ring, len: usize, square: bool) -> Result<StepTriple> {
        if ring != self.ring || len != self.n {
            return Err(Error::shape(
                "operands on power triples (elements, ring bits)",
                [len, ring.bits() as usize],
                [self.n, self.ring.bits() as usize],
            ));
        }
        let steps = self.steps.len();
        let slot = self
            .steps
            .get_mut(step)
            .ok_or_else(|| Error::shape("power schedule step", step, steps))?;
        match slot {
            None => Err(served()),
            Some(StepTriple::Square { .. }) if !square => Err(Error::InvalidArgument(format!(
                "power triples: step {step} is a square, not a product"
            ))),
            Some(StepTriple::Mul { .. }) if square => Err(Error::InvalidArgument(format!(
                "power triples: step {step} is a product, not a square"
            ))),
            Some(_) => slot.take().ok_or_else(served),
        }
    }
}

fn served() -> Error {
    Error::InvalidArgument(
        "power triples: a step already served (each serves one product)".to_string(),
    )
}

impl PowerProducts for PowerTriples {
    fn square(
        &mut self,
        sess: &mut Session,
        step: usize,
        x: &[u64],
        ring: Ring,
        _: u32,
    ) -> Result<Vec<u64>> {
        let StepTriple::Square { a, c } = self.serve(step, ring, x.len(), true)? else {
            unreachable!("serve checked the kind");
        };
        let mine: Vec<u64> = x.iter().zip(&a).map(|(&x, &a)| ring.sub(x, a)).collect();
        let d = open(sess, &mine, ring)?;
        let server = sess.is_server();
        Ok((0..x.len())
            .map(|i| {
                let mut z = c[i].wrapping_add(d[i].wrapping_mul(a[i]).wrapping_mul(2));
                if server {
                    z = z.wrapping_add(d[i].wrapping_mul(d[i]));
                }
                ring.reduce(z)
            })
            .collect())
    }

    fn mul(
        &mut self,
        sess: &mut Session,
        step: usize,
        x: &[u64],
        y: &[u64],
        ring: Ring,
        _: u32,
    ) -> Result<Vec<u64>> {
        if y.len() != x.len() {
            return Err(Error::shape("power product operands", y.len(), x.len()));
        }
        let StepTriple::Mul { a, b, c } = self.serve(step, ring, x.len(), false)? else {
            unreachable!("serve checked the kind");
        };
        let mine: Vec<u64> = x
            .iter()
            .zip(&a)
            .chain(y.iter().zip(&b))
            .map(|(&v, &m)| ring.sub(v, m))
            .collect();
        let opened = open(sess, &mine, ring)?;
        let (d, e) = opened.split_at(x.len());
        let server = sess.is_server();
        Ok((0..x.len())
            .map(|i| {
                let mut z = c[i]
                    .wrapping_add(d[i].wrapping_mul(b[i]))
                    .wrapping_add(a[i].wrapping_mul(e[i]));
                if server {
                    z = z.wrapping_add(d[i].wrapping_mul(e[i]));
                }
                ring.reduce(z)
            })
            .collect())
    }
}

/// [`crate::activation::piecewise`] with its power products on `triples` (label `gelu`).
pub fn piecewise_prepared(
    sess: &mut Session,
    f: Piecewise<'_>,
    x: &SharedTensor,
    mut triples: PowerTriples,
) -> Result<SharedTensor> {
    x.expect("activation input", x.shape(), LINEAR)?;
    let n = x.share().len();
    sess.reserve(ot_prepared_cots(f.spec(), n, Output::Linear))?;
    let y = sess.scope("gelu", |s| {
        piecewise_with(
            s,
            f.spec(),
            f.breakpoints(),
            x.share(),
            Output::Linear,
            &mut triples,
        )
    })?;
    SharedTensor::new(x.shape().clone(), LINEAR, y)
}

fn spec<'a>(pieces: &'a PiecewisePoly, plan: &'a PiecewisePlan) -> PiecewiseSpec<'a> {
    PiecewiseSpec {
        pieces: &pieces.pieces,
        plan,
    }
}

/// Exact bytes of [`piecewise_prepared`] on `n` elements (rounds: an upper bound, as both
/// parties send each opening at once).
pub fn piecewise_prepared_cost(pieces: &PiecewisePoly, plan: &PiecewisePlan, n: usize) -> Cost {
    ot_prepared_cost(&spec(pieces, plan), n, Output::Linear)
}

/// COTs [`piecewise_prepared`] draws on `n` elements.
pub fn piecewise_prepared_cots(
    pieces: &PiecewisePoly,
    plan: &PiecewisePlan,
    n: usize,
) -> CotDemand {
    ot_prepared_cots(&spec(pieces, plan), n, Output::Linear)
}
