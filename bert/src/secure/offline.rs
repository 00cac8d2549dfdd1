//! The offline phase of a secure BERT inference (issue 17): every linear layer's COP runs on
//! the client's random R before the input exists ([`nn::linear_offline`]), every layer's
//! attention gets its matrix triples for Q·Kᵀ, E·V and the normalisation
//! ([`nn::attention_offline`]), every LayerNorm its correlations for the square sums and the
//! row-scalar product ([`nn::norm_offline`]), every GELU its square's correlation
//! ([`nn::activation_offline`]), and each party files its material in an
//! [`OfflineStore`] under `root/<model id>/<session id>/`.
//!
//! * **Offline** ([`super::Server::offline`] / [`super::Client::offline`], label `offline`):
//!   the client draws the session id (from its session's randomness) and sends it (16 bytes);
//!   then, for every encoder layer in order, its four COP layers on R (one flight client →
//!   server each; consecutive flights merge), its attention triples (the HE products on
//!   random operands, two flights per batch, both parties sending), its two LayerNorms'
//!   correlations (the HE square sums and a row-scaling triple on random operands; the
//!   embedding's LayerNorm's come first) and GELU's (a Gilboa square on random operands, on
//!   COTs extended here), then the head's COP on R,
//!   and the server's end marker (1 byte) once it has filed everything. One session is the
//!   material of exactly one inference.
//! * **Online** ([`super::Server::infer_offline`] / [`super::Client::infer_offline`]): the
//!   client checks that every entry of the session is present and unused, sends the session
//!   id, and both run the usual pass with each linear layer's online step replaced by the
//!   prepared one (the client's X_c − R, no HE), and attention's, LayerNorm's and GELU's
//!   products by openings of operands masked by the correlations (no HE, no product on
//!   COTs); every entry is consumed as it is used.
//!
//! The model id binds the material to the model and the server key: it hashes the layers'
//! keyed cache digests (parameters, packing, server key, weights), which both parties know
//! after setup. A store made for another model or key is not found; an entry made for another
//! layer is refused by its digest (an attention entry by its shape); a peer presenting other
//! material is refused by the entry's tag; material used once is refused (`nn::offline`).
use super::engine::attention_shape;
use super::fold::Weights;
use super::public::PublicModel;
use mpc_core::Result;
use nn::activation::Piecewise;
use nn::activation_offline::PowerTriples;
use nn::attention_offline::AttentionTriples;
use nn::norm_offline::NormTriples;
pub use nn::offline::{OfflineStore, SessionId};
use nn::{Component, HeKeys};
use ot_nonlinear::functions::exp_power_spec;
use ot_nonlinear::mpc::Session;

/// The entry (and cache) name of layer `layer`'s COP `which`.
pub(crate) fn entry(layer: usize, which: Weights) -> String {
    let name = match which {
        Weights::Qkv => "qkv",
        Weights::O => "o",
        Weights::H1 => "h1",
        Weights::H2 => "h2",
    };
    format!("L{layer:02}-{name}")
}

/// The entry of layer `layer`'s attention triples.
pub(crate) fn attention_entry(layer: usize) -> String {
    format!("L{layer:02}-att")
}

/// Where a LayerNorm runs: after the embedding, or in layer `l` after attention or the FFN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NormAt {
    /// The embedding's LayerNorm.
    Embedding,
    /// Layer `l`'s LayerNorm after attention.
    Attention(usize),
    /// Layer `l`'s LayerNorm after the FFN.
    Ffn(usize),
}

impl NormAt {
    /// Its entry of correlations in a session.
    pub(crate) fn entry(self) -> String {
        match self {
            NormAt::Embedding => "emb-ln".to_string(),
            NormAt::Attention(l) => format!("L{l:02}-ln-att"),
            NormAt::Ffn(l) => format!("L{l:02}-ln-ffn"),
        }
    }

    /// Its label (the online phase's, and inside the offline scope).
    pub(crate) fn label(self) -> String {
        match self {
            NormAt::Embedding => Component::Embedding.label().to_string(),
            NormAt::Attention(l) => Component::NormAttention.in_layer(l),
            NormAt::Ffn(l) => Component::NormFfn.in_layer(l),
        }
    }
}

/// This party's correlations for the LayerNorm at `at` (`public.seq_len` rows of the hidden
/// size), generated and filed under its label.
pub(crate) fn prepare_norm(
    sess: &mut Session,
    he: &HeKeys<'_>,
    public: &PublicModel,
    at: NormAt,
    store: &OfflineStore,
) -> Result<()> {
    let (rows, n) = (public.seq_len, public.config.hidden_size);
    sess.scope(&at.label(), |s| NormTriples::generate(s, he, rows, n))?
        .put(store, &at.entry())
}

/// This party's products of layer `layer` other than its COPs: the attention triples (at
/// the model's one attention shape), Softmax's exp power correlations (a piecewise exp), its
/// two LayerNorms' correlations and GELU's power correlations, generated and filed under
/// their steps' labels.
pub(crate) fn prepare_products(
    sess: &mut Session,
    he: &HeKeys<'_>,
    public: &PublicModel,
    layer: usize,
    store: &OfflineStore,
) -> Result<()> {
    let tag = |step: Component| step.in_layer(layer);
    let shape = attention_shape(public);
    AttentionTriples::generate(sess, he, shape, &tag)?.put(store, &attention_entry(layer))?;
    if let Some(spec) = exp_power_spec(&public.approx, layer) {
        sess.scope(&tag(Component::AttentionSoftmax), |s| {
            PowerTriples::generate(s, &spec, shape.scores())
        })?
        .put(store, &exp_entry(layer))?;
    }
    for at in [NormAt::Attention(layer), NormAt::Ffn(layer)] {
        prepare_norm(sess, he, public, at, store)?;
    }
    let set = &public.approx;
    let gelu = Piecewise::for_party(sess, &set.layer(layer).gelu, &set.plan.gelu);
    let n = public.seq_len * public.config.intermediate_size;
    sess.scope(&tag(Component::Activation), |s| {
        PowerTriples::generate(s, gelu.spec(), n)
    })?
    .put(store, &activation_entry(layer))
}

/// Consumes layer `layer`'s attention triples, with the exp's correlations attached when its
/// form is piecewise (what [`prepare_products`] filed).
pub(crate) fn take_attention(
    store: &OfflineStore,
    public: &PublicModel,
    layer: usize,
) -> Result<AttentionTriples> {
    let shape = attention_shape(public);
    let triples = AttentionTriples::take(store, &attention_entry(layer), shape)?;
    Ok(match exp_power_spec(&public.approx, layer) {
        Some(spec) => triples.with_exp(PowerTriples::take(
            store,
            &exp_entry(layer),
            &spec,
            shape.scores(),
        )?),
        None => triples,
    })
}

/// The entry of layer `layer`'s exp correlations (a piecewise exp only).
fn exp_entry(layer: usize) -> String {
    format!("L{layer:02}-exp")
}

/// The entry of layer `layer`'s GELU correlations.
pub(crate) fn activation_entry(layer: usize) -> String {
    format!("L{layer:02}-gelu")
}

/// The entry of the head's COP.
pub(crate) const HEAD: &str = "head";

/// The four COP layers of an encoder layer, in dataflow order.
pub(crate) const WEIGHTS: [Weights; 4] = [Weights::Qkv, Weights::O, Weights::H1, Weights::H2];

/// Every entry of one session of `public`.
pub(crate) fn entries(public: &PublicModel) -> Vec<String> {
    let set = &public.approx;
    std::iter::once(NormAt::Embedding.entry())
        .chain((0..public.config.num_hidden_layers).flat_map(|l| {
            let exp = exp_power_spec(set, l).map(|_| exp_entry(l));
            WEIGHTS
                .map(|w| entry(l, w))
                .into_iter()
                .chain([
                    attention_entry(l),
                    NormAt::Attention(l).entry(),
                    NormAt::Ffn(l).entry(),
                    activation_entry(l),
                ])
                .chain(exp)
        }))
        .chain(std::iter::once(HEAD.to_string()))
        .collect()
}

/// The label of layer `layer`'s COP `which` inside the offline scope.
pub(crate) fn label(layer: usize, which: Weights) -> String {
    match which {
        Weights::Qkv => Component::LinearQkv,
        Weights::O => Component::LinearO,
        Weights::H1 => Component::LinearH1,
        Weights::H2 => Component::LinearH2,
    }
    .in_layer(layer)
}
