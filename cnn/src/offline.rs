//! The offline phase of a secure CNN inference: every HE convolution's COP runs on the
//! client's random R before the image exists ([`nn::conv_he_offline`]); online those layers
//! send the client's masked input and compute in plaintext, with no HE.
//!
//! * **Offline** ([`offline`], label `offline`): the client draws the session id (from its
//!   session's randomness) and sends it (16 bytes); then every HE convolution's COP on
//!   im2col(R), in layer order (one flight client → server each; consecutive flights merge);
//!   the server's end marker (1 byte) once it has filed everything. One session is the
//!   material of exactly one inference.
//! * **Online** ([`open`], then [`crate::secure::infer`] with the store): each HE convolution
//!   uses and consumes its entry; every other layer runs as in the single phase.
//!
//! The model id hashes the HE layers' keyed digests (parameters, packing, server key, kernel),
//! so material made for another model or key is not found, and material used once is refused
//! (`nn::offline`).
use crate::secure::{layer_label, HeConv, HeLayers};
use crate::Result;
use mpc_core::{Error, Party};
use nn::label::Component;
pub use nn::offline::{OfflineStore, SessionId};
use ot_nonlinear::mpc::Session;
use std::path::Path;

/// The id binding offline material to these HE layers' kernels and the server's key.
pub fn model_id(he: &HeLayers<'_>) -> Result<[u8; 32]> {
    let mut digests = Vec::new();
    for layer in he.layers.iter().flatten() {
        digests.push(*match layer {
            HeConv::Server(c) => c.digest()?,
            HeConv::Client(c) => c.digest(),
        });
    }
    Ok(nn::offline::model_id(digests.iter()))
}

/// The entry names of one session (one per HE convolution).
fn entries(he: &HeLayers<'_>) -> Vec<String> {
    he.layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_some())
        .map(|(i, _)| layer_label(i))
        .collect()
}

/// The offline phase of one inference (both parties, label `offline`): files this party's
/// material under `root` and returns the session id (drawn by the client).
pub fn offline(sess: &mut Session, he: &HeLayers<'_>, root: &Path) -> Result<SessionId> {
    let model = model_id(he)?;
    sess.scope(Component::Offline.label(), |s| -> Result<SessionId> {
        let session = match s.party {
            Party::Client => {
                let id = SessionId(s.fresh_seed().0);
                s.ch.send(&id.0)?;
                id
            }
            Party::Server => {
                let mut id = [0u8; 16];
                s.ch.recv(&mut id)?;
                SessionId(id)
            }
        };
        let store = OfflineStore::create(root, model, session)?;
        for (i, layer) in he.layers.iter().enumerate() {
            let name = layer_label(i);
            match layer {
                Some(HeConv::Server(c)) => c.offline(s, &he.keys, &store, &name)?,
                Some(HeConv::Client(c)) => c.offline(s, &he.keys, &store, &name)?,
                None => {}
            }
        }
        // The phase ends when both parties have filed their material.
        match s.party {
            Party::Server => {
                s.ch.send(&[1])?;
                s.ch.flush()?;
            }
            Party::Client => {
                let mut done = [0u8; 1];
                s.ch.recv(&mut done)?;
                if done != [1] {
                    return Err(Error::malformed(
                        "offline phase end marker",
                        format!("{done:?}"),
                        "[1]",
                    )
                    .into());
                }
            }
        }
        Ok(session)
    })
}

/// This party's store of `session` under `root`, checked: every entry present and unused
/// (refused with a clear error otherwise, before anything is sent).
pub fn open(he: &HeLayers<'_>, root: &Path, session: SessionId) -> Result<OfflineStore> {
    let store = OfflineStore::open(root, model_id(he)?, session)?;
    let names = entries(he);
    store.check_unused(names.iter().map(|n| n.as_str()))?;
    Ok(store)
}
