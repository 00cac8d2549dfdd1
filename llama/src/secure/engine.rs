//! The online computation of one call (a prompt, or one generated token), written once over the
//! two roles: what differs between them (their halves of the linear layers and of the
//! embedding lookup) is the [`Role`] trait's; everything else is `nn` operators both call alike.
use super::offline::{product_triple, take_attention, take_product, Prepared};
use super::public::PublicLlama;
use crate::calibrate::NormShifts;
use crate::fixed_model::Projection;
use mpc_core::{Party, Result};
use nn::activation::{piecewise, Piecewise};
use nn::argmax::argmax;
use nn::attention::{attention, Mask};
use nn::kv_cache::KvCache;
use nn::norm::{normalize_prescaled, Norm, RowProductBackend};
use nn::product::{elementwise_product, elementwise_product_prepared};
use nn::rotary::rotary;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::functions::exp::exp_breakpoints;
use ot_nonlinear::mpc::Session;

/// What only one role does.
pub(crate) trait Role {
    /// Which party this is.
    fn party(&self) -> Party;
    /// The call's offline material, if it runs on any.
    fn prepared(&self) -> Option<Prepared<'_>>;
    /// This party's half of block `layer`'s projection `p` on `x` (truncated to 18 bits).
    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        p: Projection,
        x: &SharedTensor,
    ) -> Result<SharedTensor>;
    /// This party's half of the head's logits on the normalised last row.
    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, y: &SharedTensor) -> Result<SharedTensor>;
    /// This party's share of the embedded rows (the client knows the ids, the server only
    /// their number).
    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>, rows: usize) -> Result<SharedTensor>;
}

/// One sequence's state: the key/value caches of shares and the positions run so far.
#[derive(Debug)]
pub(crate) struct Sequence {
    pub caches: Vec<KvCache>,
}

impl Sequence {
    pub fn new(public: &PublicLlama) -> Sequence {
        let s = &public.shape;
        Sequence {
            caches: (0..s.n_layers)
                .map(|_| KvCache::new(s.kv_width(), s.context))
                .collect(),
        }
    }

    pub fn positions(&self) -> usize {
        self.caches.first().map_or(0, KvCache::len)
    }
}

/// Runs `rows` new positions; the client gets the next token id, the server `None`; both get
/// their own share of the last position's logits (uniformly random alone).
pub(crate) fn forward(
    role: &dyn Role,
    sess: &mut Session,
    public: &PublicLlama,
    he: &HeKeys<'_>,
    seq: &mut Sequence,
    rows: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<(Option<u32>, SharedTensor)> {
    let shape = &public.shape;
    let mut x = sess.scope(Component::Embedding.label(), |s| role.embed(s, he, rows))?;
    for l in 0..shape.n_layers {
        block(role, sess, public, he, seq, l, &mut x)?;
        progress(l + 1, shape.n_layers);
    }
    sess.scope(Component::Head.label(), |s| {
        let (_, last) = x.split_rows(rows - 1)?;
        let past = seq.positions() - 1;
        let shift = NormShifts::rows(public.norm_shifts.output, 1, past);
        let y = rmsnorm(s, public, &last, &shift)?;
        let logits = role.head(s, he, &y)?;
        let next = argmax(s, &logits, Party::Client)?.map(|idx| idx[0] as u32);
        Ok((next, logits))
    })
}

fn rmsnorm(
    sess: &mut Session,
    public: &PublicLlama,
    x: &SharedTensor,
    shifts: &[i32],
) -> Result<SharedTensor> {
    normalize_prescaled(
        sess,
        Norm::RmsNorm,
        x,
        public.shape.rms_eps,
        RowProductBackend::Ot,
        shifts,
    )
}

/// One block on the residual stream `x` (updated in place).
fn block(
    role: &dyn Role,
    sess: &mut Session,
    public: &PublicLlama,
    he: &HeKeys<'_>,
    seq: &mut Sequence,
    l: usize,
    x: &mut SharedTensor,
) -> Result<()> {
    let shape = &public.shape;
    let (qw, kvw) = (shape.q_width(), shape.kv_width());
    let rows = x.rows();
    let past = seq.caches[l].len();
    let tag = |c: Component| c.in_layer(l);
    let set = &public.approx;
    let server = role.party() == Party::Server;
    let shifts = &public.norm_shifts;
    let y = sess.scope(&tag(Component::NormAttention), |s| {
        rmsnorm(
            s,
            public,
            x,
            &NormShifts::rows(shifts.attention[l], rows, past),
        )
    })?;
    let qkv = sess.scope(&tag(Component::LinearQkv), |s| {
        role.linear(s, he, l, Projection::Qkv, &y)
    })?;
    let (qk, v) = qkv.split_columns(qw + kvw)?;
    let qk = sess.scope(&tag(Component::Rotary), |s| {
        rotary(s, &shape.rotary(), &qk, past)
    })?;
    let (q, k) = qk.split_columns(qw)?;
    seq.caches[l].append(&k, &v)?;
    let (keys, values) = seq.caches[l].tensors()?;
    let bps = server.then(|| exp_breakpoints(set, l));
    let attention_shape = shape.attention(rows, past);
    let triples = take_attention(role.prepared(), l, attention_shape)?;
    let ctx = attention(
        sess,
        he,
        set,
        l,
        bps.as_deref(),
        attention_shape,
        (&q, &keys, &values),
        Mask::Causal { past },
        triples,
        &tag,
    )?;
    let a = sess.scope(&tag(Component::LinearO), |s| {
        role.linear(s, he, l, Projection::O, &ctx)
    })?;
    *x = x.add(&a)?;
    let y = sess.scope(&tag(Component::NormFfn), |s| {
        rmsnorm(s, public, x, &NormShifts::rows(shifts.ffn[l], rows, past))
    })?;
    let gu = sess.scope(&tag(Component::LinearH1), |s| {
        role.linear(s, he, l, Projection::GateUp, &y)
    })?;
    let (g, u) = gu.split_columns(shape.ffn)?;
    let act = sess.scope(&tag(Component::Activation), |s| {
        let f = Piecewise::for_party(s, &set.layer(l).gelu, &set.plan.gelu);
        let sg = piecewise(s, f, &g)?;
        match take_product(role.prepared(), l, product_triple(shape, rows))? {
            Some(t) => elementwise_product_prepared(s, &sg, &u, &t),
            None => elementwise_product(s, &sg, &u),
        }
    })?;
    let d = sess.scope(&tag(Component::LinearH2), |s| {
        role.linear(s, he, l, Projection::Down, &act)
    })?;
    *x = x.add(&d)?;
    Ok(())
}
