//! The COTs one inference on offline material draws online, counted from the public plan
//! ([`online_cots`]), and their set-aside: run right after the offline phase on the same
//! session (as `bench --phase both` does), [`super::Server::set_aside_online_cots`] and
//! [`super::Client::set_aside_online_cots`] extend them there, within [`MAX_RESERVED_COTS`]
//! per direction, and keep them under the offline session's key; the online pass
//! (`infer_offline`) puts them in front of the pools as it starts, so it
//! runs no COT extension up to that budget. A later session (`--phase online` in another
//! process) has none set aside and extends its own as it goes.
//!
//! The set-aside COTs never leave the party that holds them and are served once, in stream
//! order, exactly as if they had been extended online (docs/security.md).
use super::engine::{attention_shape, HEAD_RESCALE, LAYER_RESCALE};
use super::offline::SessionId;
use super::public::PublicModel;
use he_linear::params::HeParams;
use mpc_core::Result;
use nn::activation_offline::piecewise_prepared_cots;
use nn::attention_offline::attention_prepared_cots;
use nn::linear_offline::linear_online_cots;
use nn::norm::Norm;
use nn::norm_offline::norm_prepared_cots;
pub use nn::offline::MAX_RESERVED_COTS;
use ot_nonlinear::functions::exp_power_spec;
use ot_nonlinear::mpc::mux::mux_cots;
use ot_nonlinear::mpc::{CotDemand, Session, StashKey};

/// COTs by direction that the online pass of one inference on offline material draws
/// (`params`: the linear layers' HE parameters): each layer's four prepared COPs' up-casts,
/// attention on triples (Softmax and the truncations), GELU and two LayerNorms on their
/// correlations (comparisons, truncations, reciprocal square roots, multiplexers; exp's
/// products on its correlations when its form is piecewise); the embedding's LayerNorm; the
/// head's mask.
pub fn online_cots(public: &PublicModel, params: &HeParams) -> Result<CotDemand> {
    let c = &public.config;
    let (n, d, f) = (public.seq_len, c.hidden_size, c.intermediate_size);
    let set = &public.approx;
    let norm = norm_prepared_cots(Norm::LayerNorm, n, d);
    let mut total = norm;
    for l in 0..c.num_hidden_layers {
        // [h | Q | K | V], the output projection, [h | up], FFN down.
        for width in [4 * d, d, d + f, d] {
            total = total.plus(linear_online_cots(params, n, width, LAYER_RESCALE)?);
        }
        let gelu = &set.layer(l).gelu;
        total = total
            .plus(attention_prepared_cots(
                set,
                l,
                attention_shape(public),
                exp_power_spec(set, l).is_some(),
            )?)
            .plus(piecewise_prepared_cots(gelu, &set.plan.gelu, n * f))
            .plus(norm)
            .plus(norm);
    }
    Ok(total
        .plus(linear_online_cots(params, n, public.classes, HEAD_RESCALE)?)
        .plus(mux_cots(n * public.classes)))
}

/// What the set-aside reserves of `demand`: all of it up to `cap` per direction.
///
/// ```
/// use bert::secure::cots::{capped, MAX_RESERVED_COTS};
/// use ot_nonlinear::mpc::CotDemand;
/// let need = CotDemand { server: 300_000_000, client: 57_000_000 };
/// let kept = capped(need, MAX_RESERVED_COTS);
/// assert_eq!((kept.server, kept.client), (1 << 27, 57_000_000));
/// ```
pub fn capped(demand: CotDemand, cap: usize) -> CotDemand {
    CotDemand {
        server: demand.server.min(cap),
        client: demand.client.min(cap),
    }
}

/// The key of an offline session's online COTs.
fn cot_key(session: SessionId) -> StashKey {
    StashKey {
        scope: session.0,
        index: 0,
    }
}

/// Extends the online pass's COTs ([`online_cots`], capped at [`MAX_RESERVED_COTS`] per
/// direction) and sets them aside for offline session `session` (label `cots` inside the
/// caller's). Both parties call it at the same point with the same public plan. Returns
/// what it set aside.
pub(crate) fn set_aside_online_cots(
    sess: &mut Session,
    public: &PublicModel,
    params: &HeParams,
    session: SessionId,
) -> Result<CotDemand> {
    let demand = capped(online_cots(public, params)?, MAX_RESERVED_COTS);
    sess.scope("cots", |s| s.set_aside_cots(cot_key(session), demand))?;
    Ok(demand)
}

/// Puts offline session `session`'s COTs in front of the pools (nothing if this session holds
/// none for it); both parties call it as the online pass starts.
pub(crate) fn restore_online_cots(sess: &mut Session, session: SessionId) -> CotDemand {
    sess.restore_cots(cot_key(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_applies_per_direction() {
        let d = CotDemand {
            server: 300,
            client: 20,
        };
        assert_eq!(
            capped(d, 100),
            CotDemand {
                server: 100,
                client: 20
            }
        );
        assert_eq!(capped(d, 1000), d);
    }
}
