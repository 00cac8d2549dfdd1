//! The online computation, written once over the two roles: the parts where the parties'
//! work differs (their halves of the linear layers, the embedding, the head's reveal) are the
//! [`Role`] trait's; everything else is a composition of `nn` operators that both parties call
//! alike.
use super::fold::Weights;
use super::offline::{self, NormAt, OfflineStore};
use super::public::PublicModel;
use super::AttentionMode;
use mpc_core::{Party, Result, Ring};
use nn::activation::{piecewise, Piecewise};
use nn::activation_offline::{piecewise_prepared, PowerTriples};
use nn::attention::{attention, AttentionShape, Mask};
use nn::linear::Rescale;
use nn::norm::{normalize, Norm, RowProductBackend};
use nn::norm_offline::NormTriples;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::functions::exp_breakpoints;
use ot_nonlinear::mpc::{mux, Session};

const R: Ring = Ring::R64;

/// What only one role does.
pub(crate) trait Role {
    /// Which party this is.
    fn party(&self) -> Party;
    /// This party's half of layer `layer`'s COP `which` on `x`.
    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        which: Weights,
        x: &SharedTensor,
    ) -> Result<SharedTensor>;
    /// The head's per-token logits (36 fraction bits).
    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, h: &SharedTensor) -> Result<SharedTensor>;
    /// This party's share of the embedded sequence (before its LayerNorm).
    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>) -> Result<SharedTensor>;
    /// The client's padding mask (the server has none).
    fn mask(&self) -> Option<&[bool]>;
    /// The inference's offline material, if it runs on any.
    fn store(&self) -> Option<&OfflineStore>;
}

/// Runs the whole inference; returns the client's sums of masked per-token logits at 36
/// fraction bits (the server returns an empty vector).
pub(crate) fn run(
    role: &dyn Role,
    sess: &mut Session,
    public: &PublicModel,
    he: &HeKeys<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<u64>> {
    let layers = public.config.num_hidden_layers;
    let mut h = sess.scope(Component::Embedding.label(), |s| {
        let x = role.embed(s, he)?;
        layernorm(s, role, public, he, NormAt::Embedding, &x)
    })?;
    for l in 0..layers {
        h = layer(role, sess, public, he, l, &h)?;
        progress(l + 1, layers);
    }
    sess.scope(Component::Head.label(), |s| head(role, s, public, he, &h))
}

/// LayerNorm's normalisation at `at`; its two row products on the correlations made offline
/// when the inference runs on offline material, else on HE with the attention products' keys
/// when those pack outputs, else on COTs.
fn layernorm(
    sess: &mut Session,
    role: &dyn Role,
    public: &PublicModel,
    he: &HeKeys<'_>,
    at: NormAt,
    x: &SharedTensor,
) -> Result<SharedTensor> {
    let backend = match (role.store(), public.attention) {
        (Some(store), _) => RowProductBackend::Prepared(Box::new(NormTriples::take(
            store,
            &at.entry(),
            x.rows(),
            x.cols(),
        )?)),
        (None, AttentionMode::Packed) => RowProductBackend::He(he),
        (None, AttentionMode::Unpacked) => RowProductBackend::Ot,
    };
    normalize(
        sess,
        Norm::LayerNorm,
        x,
        public.config.layer_norm_eps,
        backend,
    )
}

/// The shape of every layer's attention (one key/value head per query head).
pub(crate) fn attention_shape(public: &PublicModel) -> AttentionShape {
    let c = &public.config;
    let (n, heads) = (public.seq_len, c.num_attention_heads);
    AttentionShape {
        queries: n,
        keys: n,
        heads,
        kv_heads: heads,
        head_dim: c.hidden_size / heads,
    }
}

/// One encoder layer on the normalised input ŷ (the previous LayerNorm's, its affine folded
/// into this layer's QKV); returns this layer's normalised output.
fn layer(
    role: &dyn Role,
    sess: &mut Session,
    public: &PublicModel,
    he: &HeKeys<'_>,
    l: usize,
    y: &SharedTensor,
) -> Result<SharedTensor> {
    let c = &public.config;
    let d = c.hidden_size;
    let tag = |comp: Component| comp.in_layer(l);
    let server = role.party() == Party::Server;
    // [h | Q | K | V]: the residual branch and the fused projections.
    let hqkv = sess.scope(&tag(Component::LinearQkv), |s| {
        role.linear(s, he, l, Weights::Qkv, y)
    })?;
    let (h, qkv) = hqkv.split_columns(d)?;
    let (q, kv) = qkv.split_columns(d)?;
    let (k, v) = kv.split_columns(d)?;
    let set = &public.approx;
    let bps = server.then(|| exp_breakpoints(set, l));
    let mask = Mask::Padding(role.mask());
    let shape = attention_shape(public);
    let triples = role
        .store()
        .map(|store| offline::take_attention(store, public, l))
        .transpose()?;
    let ctx = attention(
        sess,
        he,
        set,
        l,
        bps.as_deref(),
        shape,
        (&q, &k, &v),
        mask,
        triples,
        &tag,
    )?;
    let a = sess.scope(&tag(Component::LinearO), |s| {
        role.linear(s, he, l, Weights::O, &ctx)
    })?;
    let a = a.add(&h)?;
    let y1 = sess.scope(&tag(Component::NormAttention), |s| {
        layernorm(s, role, public, he, NormAt::Attention(l), &a)
    })?;
    let aup = sess.scope(&tag(Component::LinearH1), |s| {
        role.linear(s, he, l, Weights::H1, &y1)
    })?;
    let (a_res, up) = aup.split_columns(d)?;
    let act = sess.scope(&tag(Component::Activation), |s| {
        let gelu = Piecewise::for_party(s, &set.layer(l).gelu, &set.plan.gelu);
        match role.store() {
            Some(store) => {
                let entry = offline::activation_entry(l);
                let triples = PowerTriples::take(store, &entry, gelu.spec(), up.share().len())?;
                piecewise_prepared(s, gelu, &up, triples)
            }
            None => piecewise(s, gelu, &up),
        }
    })?;
    let out = sess.scope(&tag(Component::LinearH2), |s| {
        role.linear(s, he, l, Weights::H2, &act)
    })?;
    let out = out.add(&a_res)?;
    sess.scope(&tag(Component::NormFfn), |s| {
        layernorm(s, role, public, he, NormAt::Ffn(l), &out)
    })
}

/// Per-token logits, the client's mask, the sum over tokens revealed to the client.
fn head(
    role: &dyn Role,
    sess: &mut Session,
    public: &PublicModel,
    he: &HeKeys<'_>,
    h: &SharedTensor,
) -> Result<Vec<u64>> {
    let (n, classes) = (public.seq_len, public.classes);
    let z = role.head(sess, he, h)?;
    // The mask is the client's input: its bit shares are the mask, the server's are 0.
    let bits: Vec<bool> = match role.mask() {
        Some(mask) => (0..n * classes).map(|i| mask[i / classes]).collect(),
        None => vec![false; n * classes],
    };
    let masked = mux(sess, &bits, z.share(), R)?;
    let mut sums = vec![0u64; classes];
    for (i, &v) in masked.iter().enumerate() {
        sums[i % classes] = R.add(sums[i % classes], v);
    }
    match role.party() {
        Party::Server => {
            sess.ch.send_u64s(&sums)?;
            sess.ch.flush()?;
            Ok(Vec::new())
        }
        Party::Client => {
            let theirs = sess.ch.recv_u64s(classes)?;
            Ok(sums
                .iter()
                .zip(&theirs)
                .map(|(&a, &b)| R.add(a, b))
                .collect())
        }
    }
}

/// The head's rescaling: its per-token logits keep all 36 fraction bits (they are summed).
pub(crate) const HEAD_RESCALE: Rescale = Rescale::Keep;

/// The linear layers' rescaling.
pub(crate) const LAYER_RESCALE: Rescale = Rescale::Truncate;
