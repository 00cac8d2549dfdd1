//! The secure evaluator: [`Arith`] on additive shares over Z_2^64, each operation one protocol
//! of `ot-nonlinear` or `nn` on the holder's [`Session`] (holder A as the server, B as the
//! client). [`train_holder`] is one data holder's whole run.
use crate::arith::{Arith, RING};
use crate::config::{Holder, RawModel, Reveal, TrainConfig};
use crate::protocol::{label, TrainView, Trainer};
use mpc_core::{Channel, Result, Stats};
use nn::sigmoid::{sigmoid, SigmoidApprox};
use ot_nonlinear::functions::{reciprocal_any, rsqrt};
use ot_nonlinear::mpc::{drelu, mul, mul_row_scalar, mux, square, trunc_cast, Session, TruncKind};

/// One holder's side of the secure arithmetic.
#[derive(Debug)]
pub struct SecureArith {
    sess: Session,
    me: [Holder; 1],
}

impl SecureArith {
    /// The evaluator of holder `me` on its session (whose role must be `me.party()`).
    pub fn new(sess: Session, me: Holder) -> Result<SecureArith> {
        if sess.party != me.party() {
            return Err(mpc_core::Error::ParamMismatch(format!(
                "holder {me:?} plays {}, the session is the {}",
                me.party(),
                sess.party
            )));
        }
        Ok(SecureArith { sess, me: [me] })
    }
}

impl Arith for SecureArith {
    fn holders(&self) -> &[Holder] {
        &self.me
    }

    fn adds_constants(&self) -> bool {
        self.sess.is_server()
    }

    fn mul(&mut self, x: &[u64], y: &[u64]) -> Result<Vec<u64>> {
        mul(&mut self.sess, x, y, RING)
    }

    fn square(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        square(&mut self.sess, x, RING)
    }

    fn mul_rows(&mut self, x: &[u64], y: &[u64], cols: usize) -> Result<Vec<u64>> {
        mul_row_scalar(&mut self.sess, x, y, cols, RING)
    }

    fn trunc(&mut self, x: &[u64], s: u32) -> Result<Vec<u64>> {
        trunc_cast(&mut self.sess, x, RING, RING, s, TruncKind::KnownMsb)
    }

    fn drelu(&mut self, x: &[u64]) -> Result<Vec<bool>> {
        drelu(&mut self.sess, x, RING)
    }

    fn mux(&mut self, b: &[bool], x: &[u64]) -> Result<Vec<u64>> {
        mux(&mut self.sess, b, x, RING)
    }

    fn rsqrt(&mut self, v: &[u64]) -> Result<Vec<u64>> {
        rsqrt(&mut self.sess, v)
    }

    fn reciprocal(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        reciprocal_any(&mut self.sess, x)
    }

    fn sigmoid(&mut self, approx: SigmoidApprox, x: &[u64]) -> Result<Vec<u64>> {
        sigmoid(&mut self.sess, approx, x)
    }

    fn reveal(&mut self, x: &[u64], to: Reveal) -> Result<Option<Vec<u64>>> {
        let me = self.me[0];
        let peer = match me {
            Holder::A => Holder::B,
            Holder::B => Holder::A,
        };
        self.sess.ch.scope(label::OPEN, |ch| {
            if to.includes(peer) {
                ch.send_u64s(x)?;
            }
            if !to.includes(me) {
                ch.flush()?;
                return Ok(None);
            }
            let theirs = ch.recv_u64s(x.len())?;
            Ok(Some(RING.reconstruct_vec(x, &theirs)?))
        })
    }

    fn scope<R>(&mut self, label: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        // As Session::scope: the channel goes into Channel::scope and is swapped back into the
        // session for the duration (the stand-in carries no traffic).
        let mut outer = std::mem::replace(&mut self.sess.ch, Channel::mem_pair().0);
        let r = outer.scope(label, |ch| {
            std::mem::swap(ch, &mut self.sess.ch);
            let r = f(self);
            std::mem::swap(ch, &mut self.sess.ch);
            r
        });
        self.sess.ch = outer;
        r
    }
}

/// What one holder measured, by phase (its own view of the traffic: bytes both ways).
#[derive(Clone, Debug, Default)]
pub struct HolderReport {
    /// The model, if this holder learns it.
    pub model: Option<RawModel>,
    /// Setup (standardisation and class weights), the Ferret setup excluded.
    pub setup: Stats,
    /// Each epoch.
    pub epochs: Vec<Stats>,
    /// Computing and opening the model.
    pub reveal: Stats,
    /// Of which the opening itself (the shares sent to the holders that learn the model).
    pub open: Stats,
    /// The Ferret setup (base OTs and the first extension).
    pub ot_setup: Stats,
    /// Everything after the Ferret setup: setup, the COT extensions reserved before each
    /// epoch, the epochs and the reveal (rounds and wall time from start to end).
    pub total: Stats,
    /// The Ferret extensions reserved before the epochs (outside the epochs' labels).
    pub ot_extend: Stats,
}

/// One holder's whole secure run on `sess`: setup, `cfg.epochs` epochs, the reveal; every
/// phase's cost read off the channel (labels `train/setup`, `train/epoch`, `train/reveal`).
pub fn train_holder(
    mut sess: Session,
    me: Holder,
    view: &TrainView,
    cfg: TrainConfig,
    reveal: Reveal,
) -> Result<HolderReport> {
    let ot_setup = sess.ch.totals();
    sess.ch.clear_stats();
    let start = std::time::Instant::now();
    let stats = |sess: &Session, path: &str| sess.ch.stats_of(path).unwrap_or_default();
    let delta = |after: Stats, before: Stats| Stats {
        bytes_sent: after.bytes_sent - before.bytes_sent,
        bytes_recv: after.bytes_recv - before.bytes_recv,
        rounds: after.rounds - before.rounds,
        wall_s: after.wall_s - before.wall_s,
        wait_s: after.wait_s - before.wait_s,
        calls: after.calls - before.calls,
    };
    let mut a = SecureArith::new(sess, me)?;
    let mut trainer = a.scope(label::TRAIN, |a| Trainer::setup(a, view, cfg))?;
    let epoch_path = label::path(&[label::EPOCH]);
    let mut ot_extend = Stats::default();
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for e in 0..cfg.epochs {
        let outside = a.sess.ch.totals();
        a.sess.reserve(trainer.epoch_cost(e).1)?;
        ot_extend.accumulate(&delta(a.sess.ch.totals(), outside));
        let before = stats(&a.sess, &epoch_path);
        a.scope(label::TRAIN, |a| trainer.epoch(a, e))?;
        epochs.push(delta(stats(&a.sess, &epoch_path), before));
    }
    let model = a.scope(label::TRAIN, |a| trainer.model(a, reveal))?;
    a.sess.ch.flush()?;

    let end = a.sess.ch.totals();
    let total = Stats {
        wall_s: start.elapsed().as_secs_f64(),
        ..delta(end, ot_setup)
    };
    Ok(HolderReport {
        model,
        total,
        ot_extend,
        setup: stats(&a.sess, &label::path(&[label::SETUP])),
        epochs,
        reveal: stats(&a.sess, &label::path(&[label::REVEAL])),
        open: stats(&a.sess, &label::path(&[label::REVEAL, label::OPEN])),
        ot_setup,
    })
}

/// Both holders' runs on one machine, each on its own thread with its own [`Session`] over an
/// in-memory channel shaped by `net` (the Ferret setup included, reported apart). Holder A's
/// session seed is `seed.derive(0)`, B's `seed.derive(1)`: a run is reproducible from `seed`.
/// Returns (A's report, B's report).
pub fn train_two_party(
    rows: &[crate::data::Sample],
    owners: &[Holder],
    cfg: TrainConfig,
    reveal: Reveal,
    net: mpc_core::NetProfile,
    seed: mpc_core::Seed,
) -> Result<(HolderReport, HolderReport)> {
    let view_a = TrainView::new(rows, owners, &[Holder::A])?;
    let view_b = TrainView::new(rows, owners, &[Holder::B])?;
    let (ch_a, ch_b) = mpc_core::Channel::mem_pair_shaped(net);
    let run = move |ch, me: Holder, view: TrainView| -> Result<HolderReport> {
        let sess = Session::new(ch, me.party(), seed.derive(me as u64))?;
        train_holder(sess, me, &view, cfg, reveal)
    };
    let b = std::thread::spawn(move || run(ch_b, Holder::B, view_b));
    let a = run(ch_a, Holder::A, view_a);
    let b = b
        .join()
        .map_err(|_| mpc_core::Error::Unavailable("holder B's thread panicked".into()))?;
    Ok((a?, b?))
}
