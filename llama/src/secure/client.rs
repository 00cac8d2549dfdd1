//! The client: its keys, the server's public keys, the encrypted embedding table in its cache
//! (the only encrypted weights it holds: the projections run on SIP), and one generation's
//! state.
use super::engine::{self, Role, Sequence};
use super::public::PublicLlama;
use super::{check_call, he_params, product_params, RevealBudget};
use crate::fixed_model::Projection;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Party, Result, Turn};
use nn::embedding::ClientEmbedding;
use nn::linear::Rescale;
use nn::sip_linear::ClientSipLinear;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::Session;
use std::path::Path;

/// Largest public description accepted from the server (bytes).
const PUBLIC_LIMIT: usize = 1 << 20;

/// The client's half of the secure decoder.
pub struct Client {
    public: PublicLlama,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    server_pk: PublicKey,
    server_galois: Option<GaloisKeys>,
    layers: Vec<[ClientSipLinear; 4]>,
    head: ClientSipLinear,
    embedding: ClientEmbedding,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("public", &self.public.shape)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Setup against [`super::Server::setup`]: receives the description and the encrypted
    /// embedding table (cached in `cache_dir`, reused when it matches); the client's HE keys
    /// derive from the session's seed.
    pub fn setup(sess: &mut Session, cache_dir: &Path) -> Result<Client> {
        let params = he_params()?;
        let product_params = product_params()?;
        sess.scope(Component::Setup.label(), |s| {
            let key_seed = s.fresh_seed();
            let ch = &mut s.ch;
            let public: PublicLlama = ch.recv_msg(PUBLIC_LIMIT)?;
            public.check(true)?;
            let server_pk = PublicKey::recv(ch, &params)?;
            let mut rng = AesPrg::new(key_seed);
            let sk = SecretKey::generate(&params, &mut rng);
            let pk = PublicKey::generate(&params, &sk, &mut rng);
            pk.send(ch, &params)?;
            let galois = GaloisKeys::generate(&product_params, &sk, &mut rng);
            let server_galois =
                GaloisKeys::exchange(ch, &product_params, &galois, Turn::ReceiveFirst)?;
            let embedding = ClientEmbedding::setup(ch, &params, cache_dir, "llama-embedding")?;
            let shape = public.shape;
            let linear = |p: Projection| {
                let (m, n) = shape.projection(p);
                ClientSipLinear::new(&params, m, n)
            };
            let layer = [
                linear(Projection::Qkv)?,
                linear(Projection::O)?,
                linear(Projection::GateUp)?,
                linear(Projection::Down)?,
            ];
            let head = ClientSipLinear::new(&params, shape.hidden, shape.vocab)?;
            Ok(Client {
                layers: vec![layer; shape.n_layers],
                head,
                public,
                params,
                product_params,
                sk,
                server_pk,
                server_galois,
                embedding,
            })
        })
    }

    /// The public description received from the server.
    pub fn public(&self) -> &PublicLlama {
        &self.public
    }

    /// A new sequence (empty key/value caches) against [`super::Server::serve`].
    pub fn generation(&self) -> Generation<'_> {
        Generation {
            client: self,
            seq: Sequence::new(&self.public),
            budget: RevealBudget::new(&self.params),
        }
    }
}

/// One generation in progress on the client.
#[derive(Debug)]
pub struct Generation<'a> {
    client: &'a Client,
    seq: Sequence,
    budget: RevealBudget,
}

/// A call's ids as the client's [`Role`].
struct Call<'a> {
    client: &'a Client,
    ids: &'a [u32],
}

impl Generation<'_> {
    /// Positions run so far.
    pub fn positions(&self) -> usize {
        self.seq.positions()
    }

    /// Runs `ids` (the prompt, or the last generated token) and returns the next token id,
    /// which only the client learns. `progress(done, total)` after each block.
    pub fn run(
        &mut self,
        sess: &mut Session,
        ids: &[u32],
        progress: &dyn Fn(usize, usize),
    ) -> Result<u32> {
        Ok(self.run_with_share(sess, ids, progress)?.0)
    }

    /// [`Generation::run`], also returning the client's own share of the last position's
    /// logits (uniformly random on its own; tests add the server's share to check the run).
    pub fn run_with_share(
        &mut self,
        sess: &mut Session,
        ids: &[u32],
        progress: &dyn Fn(usize, usize),
    ) -> Result<(u32, SharedTensor)> {
        let c = self.client;
        crate::fixed_model::check_ids(&c.public.shape, ids, self.seq.positions())?;
        check_call(&c.public, &self.seq, ids.len() as u64, &mut self.budget)?;
        sess.ch.send_u64s(&[ids.len() as u64])?;
        let he = HeKeys {
            params: &c.params,
            product_params: &c.product_params,
            keys: ProductKeys {
                my_sk: &c.sk,
                peer_pk: &c.server_pk,
                peer_galois: c.server_galois.as_ref(),
            },
        };
        let call = Call { client: c, ids };
        let (next, logits) = engine::forward(
            &call,
            sess,
            &c.public,
            &he,
            &mut self.seq,
            ids.len(),
            progress,
        )?;
        let next =
            next.ok_or_else(|| mpc_core::Error::Malformed("the argmax was not revealed".into()))?;
        Ok((next, logits))
    }

    /// Ends the sequence (the server's [`super::Server::serve`] returns).
    pub fn finish(self, sess: &mut Session) -> Result<()> {
        sess.ch.send_u64s(&[0])?;
        sess.ch.flush()
    }
}

impl Role for Call<'_> {
    fn party(&self) -> Party {
        Party::Client
    }

    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        p: Projection,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        self.client.layers[layer][p as usize].online(sess, he, x, Rescale::Truncate)
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, y: &SharedTensor) -> Result<SharedTensor> {
        self.client.head.online(sess, he, y, Rescale::Truncate)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>, _rows: usize) -> Result<SharedTensor> {
        self.client.embedding.lookup(sess, he, self.ids)
    }
}
