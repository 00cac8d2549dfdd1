//! The offline phase of a secure generation (issue 17 applied to the decoder, issue 18's
//! per-token target): every projection's and the head's SIP runs on the client's random R
//! before the prompt exists ([`nn::sip_offline`]), and every block's attention gets its
//! matrix triples for Q·Kᵀ, E·V and the normalisation ([`nn::attention_offline`]), one entry
//! per call, layer and projection (and per call and layer for attention); each party files its
//! material in an [`OfflineStore`] under `root/<model id>/<session id>/`.
//!
//! * **Offline** ([`super::Server::offline`] / [`super::Client::offline`], label `offline`):
//!   the client draws the session id, sends it with the plan (the rows of each call it will
//!   make: the prompt's, then one per generated token after the first), both parties check
//!   the plan against the context and the generation's reveal budget and file it (entry
//!   `plan`); then, for each call, every block's four projections (the SIP on R, two flights
//!   each: the client's ciphertexts, the server's responses) and its attention triples (the
//!   HE products on random operands at the call's shape: the plan fixes each call's keys),
//!   the head; then both extend the COTs the online calls will draw and set each call's
//!   aside (`set_aside_online_cots`), and the server sends its end marker.
//! * **Online** ([`super::Server::serve_offline`] / [`super::Client::generation_offline`]):
//!   the client checks that the session's material is present and unused, sends the session
//!   id, and both run the usual calls with each projection's and the head's online step
//!   replaced by the prepared one (the client's X_c − R, no HE) and attention's products by
//!   openings of operands masked by the triples (no HE). A call whose rows differ from the
//!   plan's, or a call beyond it, is refused before anything of it is sent.
//!
//! The model id binds the material to the server's key and the decoder's shape (both parties
//! know them after setup); an entry is bound to its layer's shape (client) or weights
//! (server), or to its attention call's shape, to the session, and is used once
//! (`nn::offline`). The number of rows of each call is public in the online phase already;
//! the offline phase makes it known earlier. The triples reveal the same coefficients under
//! each key as the online HE products they replace, so the plan's reveal budget is unchanged.
use super::cost::plan_call_cots;
use super::public::{DecoderShape, PublicLlama};
use crate::fixed_model::Projection;
use he_linear::params::HeParams;
use he_linear::rlwe::PublicKey;
use mpc_core::{Error, Result};
use nn::attention::AttentionShape;
use nn::attention_offline::AttentionTriples;
use nn::linear::Rescale;
use nn::linear_half::LinearHalf;
pub use nn::offline::{OfflineStore, SessionId};
use nn::sip_linear::ClientSipLinear;
use nn::triple::{generate_triples, Triple, TripleShape};
use nn::Component;
use nn::{HeKeys, SharedTensor};
use ot_nonlinear::mpc::{CotDemand, Session, StashKey};

/// The entry holding the plan (the rows of each call).
pub(crate) const PLAN: &str = "plan";

/// Most calls in one plan.
pub const MAX_CALLS: usize = 4096;

/// Most COTs per direction the offline phase sets aside for the online calls (SmolLM2-135M:
/// the seven one-token calls after a 32-token prompt draw 100 M server-sent COTs, the
/// prompt's call 328 M).
pub use nn::offline::MAX_RESERVED_COTS;

/// The four projections of a block, in dataflow order.
pub(crate) const PROJECTIONS: [Projection; 4] = [
    Projection::Qkv,
    Projection::O,
    Projection::GateUp,
    Projection::Down,
];

/// The entry of call `call`'s projection `p` in block `layer`.
pub(crate) fn entry(call: usize, layer: usize, p: Projection) -> String {
    let name = match p {
        Projection::Qkv => "qkv",
        Projection::O => "o",
        Projection::GateUp => "h1",
        Projection::Down => "h2",
    };
    format!("c{call:04}-L{layer:02}-{name}")
}

/// The accounting label of projection `p` (`linear_qkv`, …).
pub(crate) fn component(p: Projection) -> Component {
    match p {
        Projection::Qkv => Component::LinearQkv,
        Projection::O => Component::LinearO,
        Projection::GateUp => Component::LinearH1,
        Projection::Down => Component::LinearH2,
    }
}

/// The entry of call `call`'s attention triples in block `layer`.
pub(crate) fn attention_entry(call: usize, layer: usize) -> String {
    format!("c{call:04}-L{layer:02}-att")
}

/// The entry of call `call`'s SwiGLU product triple in block `layer`.
pub(crate) fn product_entry(call: usize, layer: usize) -> String {
    format!("c{call:04}-L{layer:02}-act")
}

/// The SwiGLU product's triple shape on `rows` positions.
pub(crate) fn product_triple(shape: &DecoderShape, rows: usize) -> TripleShape {
    TripleShape::Elementwise(rows * shape.ffn)
}

/// The entry of call `call`'s head.
pub(crate) fn head_entry(call: usize) -> String {
    format!("c{call:04}-head")
}

/// Every entry of a session of `calls` calls on `layers` blocks (the plan excluded).
pub(crate) fn entries(layers: usize, calls: usize) -> Vec<String> {
    (0..calls)
        .flat_map(|c| {
            (0..layers)
                .flat_map(move |l| {
                    PROJECTIONS
                        .map(|p| entry(c, l, p))
                        .into_iter()
                        .chain([attention_entry(c, l), product_entry(c, l)])
                })
                .chain(std::iter::once(head_entry(c)))
        })
        .collect()
}

/// The plan's digest (both parties file the plan under it).
pub(crate) const PLAN_DIGEST: [u8; 32] = [0x70; 32];

/// Checks a plan of call lengths against the shape: 1 ..= `MAX_CALLS` calls of at least one
/// row, all within the context.
pub(crate) fn check_plan(shape: &DecoderShape, calls: &[u64]) -> Result<Vec<usize>> {
    let total: u64 = calls.iter().sum();
    if calls.is_empty()
        || calls.len() > MAX_CALLS
        || calls.contains(&0)
        || total > shape.context as u64
    {
        return Err(Error::shape(
            format!(
                "an offline plan of {} calls ({total} positions)",
                calls.len()
            ),
            calls.iter().map(|&c| c as usize).collect::<Vec<_>>(),
            format!(
                "1..={MAX_CALLS} calls of at least one row, at most {} positions",
                shape.context
            ),
        ));
    }
    Ok(calls.iter().map(|&c| c as usize).collect())
}

/// The id binding offline material to the server's key and the decoder's shape.
pub(crate) fn model_id(
    params: &HeParams,
    shape: &DecoderShape,
    server_pk: &PublicKey,
) -> Result<[u8; 32]> {
    let mut digests = vec![server_pk.digest()];
    for p in PROJECTIONS {
        let (m, n) = shape.projection(p);
        digests.push(ClientSipLinear::new(params, m, n)?.digest());
    }
    digests.push(ClientSipLinear::new(params, shape.hidden, shape.vocab)?.digest());
    // The shape's counts the projections' digests do not name (32 bytes: four words).
    let mut counts = [0u8; 32];
    let words = [
        shape.n_layers,
        shape.context,
        shape.n_heads,
        shape.n_kv_heads,
    ];
    for (dst, w) in counts.chunks_exact_mut(8).zip(words) {
        dst.copy_from_slice(&(w as u64).to_le_bytes());
    }
    digests.push(counts);
    Ok(nn::offline::model_id(digests.iter()))
}

/// The offline material one call of the online phase uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prepared<'a> {
    /// The session's store.
    pub store: &'a OfflineStore,
    /// The call's index in the plan.
    pub call: usize,
}

/// Files the plan (padded to [`MAX_CALLS`] words, so that it is read back without knowing
/// its length).
pub(crate) fn put_plan(store: &OfflineStore, calls: &[usize]) -> Result<()> {
    let mut words = vec![0u64; MAX_CALLS];
    for (w, &c) in words.iter_mut().zip(calls) {
        *w = c as u64;
    }
    store.put(PLAN, &PLAN_DIGEST, &[], &words)
}

/// Consumes the session's plan and checks that the rest of its material is present and
/// unused.
pub(crate) fn take_plan(store: &OfflineStore, shape: &DecoderShape) -> Result<Vec<usize>> {
    let words = store.take(PLAN, &PLAN_DIGEST, &[], MAX_CALLS)?;
    let len = words.iter().position(|&w| w == 0).unwrap_or(MAX_CALLS);
    let calls = check_plan(shape, &words[..len])?;
    let names = entries(shape.n_layers, calls.len());
    store.check_unused(names.iter().map(|n| n.as_str()))?;
    Ok(calls)
}

/// The call after `done` calls of `plan`, if it has `rows` rows: refused otherwise.
pub(crate) fn next_call(plan: &[usize], done: usize, rows: usize) -> Result<usize> {
    match plan.get(done) {
        Some(&r) if r == rows => Ok(done),
        Some(&r) => Err(Error::InvalidArgument(format!(
            "call {done} has {rows} rows, the offline plan prepared {r}"
        ))),
        None => Err(Error::InvalidArgument(format!(
            "call {done} is beyond the offline plan's {} calls (run the offline phase for a \
             longer generation)",
            plan.len()
        ))),
    }
}

/// The attention triples of block `layer` in the call's offline material, if it has any.
pub(crate) fn take_attention(
    prepared: Option<Prepared<'_>>,
    layer: usize,
    shape: AttentionShape,
) -> Result<Option<AttentionTriples>> {
    prepared
        .map(|p| AttentionTriples::take(p.store, &attention_entry(p.call, layer), shape))
        .transpose()
}

/// The SwiGLU product triple of block `layer` in the call's offline material, if it has any.
pub(crate) fn take_product(
    prepared: Option<Prepared<'_>>,
    layer: usize,
    shape: TripleShape,
) -> Result<Option<Triple>> {
    prepared
        .map(|p| Triple::take(p.store, &product_entry(p.call, layer), shape))
        .transpose()
}

/// Runs `w`, this party's half of a projection or the head, on the entry `name(call)` of the
/// call's offline material if it has any, single-phase otherwise.
pub(crate) fn run_linear(
    w: &dyn LinearHalf,
    prepared: Option<Prepared<'_>>,
    name: impl Fn(usize) -> String,
    sess: &mut Session,
    he: &HeKeys<'_>,
    x: &SharedTensor,
) -> Result<SharedTensor> {
    let entry = prepared.map(|p| (p.store, name(p.call)));
    let entry = entry.as_ref().map(|(s, n)| (*s, n.as_str()));
    w.run(sess, he, x, Rescale::Truncate, entry)
}

/// This party's offline phase of every call of `calls` (after the plan): each block's four
/// projections on the call's rows, its attention's triples (the keys of the call's position
/// in the plan) and its SwiGLU product's element-wise triple (on COTs), then the head on one
/// row, in dataflow order, each under its component's label.
pub(crate) fn prepare_calls<L: LinearHalf>(
    sess: &mut Session,
    he: &HeKeys<'_>,
    (shape, layers, head): (&DecoderShape, &[[L; 4]], &L),
    calls: &[usize],
    store: &OfflineStore,
) -> Result<()> {
    let mut past = 0;
    for (c, &rows) in calls.iter().enumerate() {
        for (l, layer) in layers.iter().enumerate() {
            for (w, p) in layer.iter().zip(PROJECTIONS) {
                sess.scope(&component(p).in_layer(l), |s| {
                    w.offline(s, he, rows, Rescale::Truncate, store, &entry(c, l, p))
                })?;
            }
            let tag = |step: Component| step.in_layer(l);
            AttentionTriples::generate(sess, he, shape.attention(rows, past), &tag)?
                .put(store, &attention_entry(c, l))?;
            let product = [product_triple(shape, rows)];
            sess.scope(&tag(Component::Activation), |s| {
                generate_triples(s, he, &product)?[0].put(store, &product_entry(c, l))
            })?;
        }
        past += rows;
        sess.scope(Component::Head.label(), |s| {
            head.offline(s, he, 1, Rescale::Truncate, store, &head_entry(c))
        })?;
    }
    Ok(())
}

/// The COTs each call of a plan gets set aside (`set_aside_online_cots`), from the calls'
/// demands (`demands[c]`, the prompt's first) and at most `budget` per direction in all: the
/// generated tokens' calls first, in order (their latency is the one a user waits on per
/// token), then the prompt's call with what is left. A call given less than its demand
/// extends the rest online.
pub fn cot_reservation(demands: &[CotDemand], budget: usize) -> Vec<CotDemand> {
    let mut left = CotDemand {
        server: budget,
        client: budget,
    };
    let mut out = vec![CotDemand::default(); demands.len()];
    for c in (1..demands.len()).chain(0..demands.len().min(1)) {
        out[c] = CotDemand {
            server: demands[c].server.min(left.server),
            client: demands[c].client.min(left.client),
        };
        left.server -= out[c].server;
        left.client -= out[c].client;
    }
    out
}

/// The key under which call `call` of offline session `session` finds its COTs.
pub(crate) fn cot_key(session: SessionId, call: usize) -> StashKey {
    StashKey {
        scope: session.0,
        index: call as u64,
    }
}

/// Extends the COTs the online calls of `calls` will draw ([`plan_call_cots`]) and sets each
/// call's aside in this session under [`cot_key`] ([`cot_reservation`] within
/// [`MAX_RESERVED_COTS`] per direction), so that the online phase runs no COT extension when
/// it follows on the same session (as `bench generate` runs it): each call puts its own in
/// front of the pools as it starts ([`restore_online_cots`]). A later session extends its own
/// as it goes. Both parties call it with the same public description (the client's
/// approximation set is redacted, which changes no COT count). Returns the demand set aside.
pub(crate) fn set_aside_online_cots(
    sess: &mut Session,
    public: &PublicLlama,
    params: &HeParams,
    session: SessionId,
    calls: &[usize],
) -> Result<CotDemand> {
    let (set, shifts) = (&public.approx, &public.norm_shifts);
    let demands = plan_call_cots(&public.shape, set, shifts, params, calls)?;
    let mut total = CotDemand::default();
    for (c, d) in cot_reservation(&demands, MAX_RESERVED_COTS)
        .into_iter()
        .enumerate()
    {
        sess.scope("cots", |s| s.set_aside_cots(cot_key(session, c), d))?;
        total = total.plus(d);
    }
    Ok(total)
}

/// Puts call `call`'s COTs of offline session `session` in front of the pools (nothing if this
/// session holds none for it); both parties call it as the call starts.
pub(crate) fn restore_online_cots(sess: &mut Session, session: SessionId, call: usize) {
    sess.restore_cots(cot_key(session, call));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(server: usize, client: usize) -> CotDemand {
        CotDemand { server, client }
    }

    #[test]
    fn the_reservation_serves_the_steps_first_then_the_prompt_within_the_budget() {
        let demands = [d(40, 10), d(13, 3), d(13, 4), d(14, 3)];
        // Everything fits.
        assert_eq!(cot_reservation(&demands, 100), demands.to_vec());
        // The steps take 40 of 45 server-sent COTs, the prompt the rest; client-sent all fit.
        assert_eq!(
            cot_reservation(&demands, 45),
            vec![d(5, 10), d(13, 3), d(13, 4), d(14, 3)]
        );
        // Too little for the steps: the earliest steps first, a partial one, nothing after.
        assert_eq!(
            cot_reservation(&demands, 20),
            vec![d(0, 10), d(13, 3), d(7, 4), d(0, 3)]
        );
        assert_eq!(cot_reservation(&demands, 0), vec![d(0, 0); 4]);
        assert_eq!(cot_reservation(&[d(5, 5)], 3), vec![d(3, 3)]);
        assert!(cot_reservation(&[], 3).is_empty());
    }
}
