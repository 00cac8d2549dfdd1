//! The plaintext twin's run: [`Trainer`] on [`Twin`], with the model after every epoch (the
//! twin may open its weights at no cost; the secure run opens only the last).
use crate::arith::Twin;
use crate::config::{Holder, RawModel, Reveal, TrainConfig};
use crate::data::Sample;
use crate::protocol::{TrainView, Trainer};
use mpc_core::{Error, Result};

/// The twin's raw-feature model after each epoch.
pub fn train_twin(rows: &[Sample], owners: &[Holder], cfg: TrainConfig) -> Result<Vec<RawModel>> {
    let view = TrainView::new(rows, owners, &Holder::BOTH)?;
    let mut twin = Twin;
    let mut trainer = Trainer::setup(&mut twin, &view, cfg)?;
    let mut models = Vec::with_capacity(cfg.epochs);
    for e in 0..cfg.epochs {
        trainer.epoch(&mut twin, e)?;
        let model = trainer
            .model(&mut twin, Reveal::Both)?
            .ok_or_else(|| Error::Unavailable("the twin always opens its model".into()))?;
        models.push(model);
    }
    Ok(models)
}
