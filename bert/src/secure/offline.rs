//! The offline phase of a secure BERT inference (issue 17): every linear layer's COP runs on
//! the client's random R before the input exists ([`nn::linear_offline`]), and each party
//! files its material in an [`OfflineStore`] under `root/<model id>/<session id>/`.
//!
//! * **Offline** ([`super::Server::offline`] / [`super::Client::offline`], label `offline`):
//!   the client draws the session id (from its session's randomness) and sends it (16 bytes);
//!   then, for every encoder layer's four COP layers and the head in dataflow order, the COP on
//!   R (one flight client → server each; consecutive flights merge), and the server's end
//!   marker (1 byte) once it has filed everything: two flights in all. One session is the
//!   material of exactly one inference.
//! * **Online** ([`super::Server::infer_offline`] / [`super::Client::infer_offline`]): the
//!   client checks that every entry of the session is present and unused, sends the session
//!   id, and both run the usual pass with each linear layer's online step replaced by the
//!   prepared one (the client's X_c − R, no HE); every entry is consumed as it is used.
//!
//! The model id binds the material to the model and the server key: it hashes the layers'
//! keyed cache digests (parameters, packing, server key, weights), which both parties know
//! after setup. A store made for another model or key is not found; an entry made for another
//! layer is refused by its digest; a peer presenting other material is refused by the entry's
//! tag; material used once is refused (`nn::offline`).
use super::fold::Weights;
pub use nn::offline::{OfflineStore, SessionId};

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

/// The entry of the head's COP.
pub(crate) const HEAD: &str = "head";

/// The four COP layers of an encoder layer, in dataflow order.
pub(crate) const WEIGHTS: [Weights; 4] = [Weights::Qkv, Weights::O, Weights::H1, Weights::H2];

/// Every entry of one session of a model with `layers` encoder layers.
pub(crate) fn entries(layers: usize) -> Vec<String> {
    (0..layers)
        .flat_map(|l| WEIGHTS.map(|w| entry(l, w)))
        .chain(std::iter::once(HEAD.to_string()))
        .collect()
}

/// The label of layer `layer`'s COP `which` inside the offline scope.
pub(crate) fn label(layer: usize, which: Weights) -> String {
    use nn::Component;
    match which {
        Weights::Qkv => Component::LinearQkv,
        Weights::O => Component::LinearO,
        Weights::H1 => Component::LinearH1,
        Weights::H2 => Component::LinearH2,
    }
    .in_layer(layer)
}
