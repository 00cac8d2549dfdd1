//! The client: its keys, the server's public keys, the encrypted embedding table in its cache
//! (the only encrypted weights it holds: the projections run on SIP), and one generation's
//! state.
use super::engine::{self, Role, Sequence};
use super::offline::{
    self, check_plan, entry, head_entry, next_call, prepare_calls, put_plan, restore_online_cots,
    run_linear, set_aside_online_cots, take_plan, OfflineStore, Prepared, SessionId,
};
use super::public::PublicLlama;
use super::{check_call, check_plan_budget, he_params, product_params, RevealBudget};
use crate::fixed_model::Projection;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Turn};
use nn::embedding::ClientEmbedding;
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

    fn he(&self) -> HeKeys<'_> {
        HeKeys {
            params: &self.params,
            product_params: &self.product_params,
            keys: ProductKeys {
                my_sk: &self.sk,
                peer_pk: &self.server_pk,
                peer_galois: self.server_galois.as_ref(),
            },
        }
    }

    /// The id binding offline material to the server's key and the decoder's shape (the
    /// server computes the same).
    pub fn model_id(&self) -> Result<[u8; 32]> {
        offline::model_id(&self.params, &self.public.shape, &self.server_pk)
    }

    /// A new sequence (empty key/value caches) against [`super::Server::serve`].
    pub fn generation(&self) -> Generation<'_> {
        Generation {
            client: self,
            seq: Sequence::new(&self.public),
            budget: RevealBudget::new(&self.params),
            prepared: None,
            calls: 0,
        }
    }

    /// The offline phase of one generation against [`super::Server::offline`] (label
    /// `offline`): draws a session id, sends it with the plan `calls` (the rows of each call
    /// the generation will make: the prompt's length, then 1 per further token), and files R
    /// and the client's shares of every call's projections and head under `root`. Returns the
    /// session id.
    pub fn offline(&self, sess: &mut Session, root: &Path, calls: &[usize]) -> Result<SessionId> {
        let words: Vec<u64> = calls.iter().map(|&c| c as u64).collect();
        let calls = check_plan(&self.public.shape, &words)?;
        check_plan_budget(&self.public, &self.params, &calls)?;
        let he = self.he();
        sess.scope(Component::Offline.label(), |s| {
            let session = SessionId(s.fresh_seed().0);
            let store = OfflineStore::create(root, self.model_id()?, session)?;
            put_plan(&store, &calls)?;
            s.ch.send(&session.0)?;
            s.ch.send_u64s(&[words.len() as u64])?;
            s.ch.send_u64s(&words)?;
            prepare_calls(
                s,
                &he,
                (&self.public.shape, &self.layers, &self.head),
                &calls,
                &store,
            )?;
            set_aside_online_cots(s, &self.public, &self.params, session, &calls)?;
            let mut done = [0u8; 1];
            s.ch.recv(&mut done)?;
            if done != [1] {
                return Err(Error::malformed(
                    "offline phase end marker",
                    format!("{done:?}"),
                    "[1]",
                ));
            }
            Ok(session)
        })
    }

    /// The sessions of offline material under `root` for this model and server key that are
    /// still unused, oldest first.
    pub fn pending_offline(&self, root: &Path) -> Result<Vec<SessionId>> {
        OfflineStore::pending(root, &self.model_id()?)
    }

    /// A new sequence on the offline material of `session` under `root`, against
    /// [`super::Server::serve_offline`]: checks that all of it is present and unused, then
    /// names the session to the server. Each call must have the rows the plan prepared.
    pub fn generation_offline(
        &self,
        sess: &mut Session,
        root: &Path,
        session: SessionId,
    ) -> Result<Generation<'_>> {
        let store = OfflineStore::open(root, self.model_id()?, session)?;
        let plan = take_plan(&store, &self.public.shape)?;
        sess.ch.send(&session.0)?;
        Ok(Generation {
            prepared: Some((store, plan)),
            ..self.generation()
        })
    }
}

/// One generation in progress on the client.
#[derive(Debug)]
pub struct Generation<'a> {
    client: &'a Client,
    seq: Sequence,
    budget: RevealBudget,
    /// The offline session's store and plan, if the generation runs on offline material.
    prepared: Option<(OfflineStore, Vec<usize>)>,
    calls: usize,
}

/// A call's ids as the client's [`Role`].
struct Call<'a> {
    client: &'a Client,
    ids: &'a [u32],
    prepared: Option<Prepared<'a>>,
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
        let prepared = match &self.prepared {
            Some((store, plan)) => {
                let call = next_call(plan, self.calls, ids.len())?;
                restore_online_cots(sess, store.session(), call);
                Some(Prepared { store, call })
            }
            None => None,
        };
        sess.ch.send_u64s(&[ids.len() as u64])?;
        let he = c.he();
        let call = Call {
            client: c,
            ids,
            prepared,
        };
        let (next, logits) = engine::forward(
            &call,
            sess,
            &c.public,
            &he,
            &mut self.seq,
            ids.len(),
            progress,
        )?;
        self.calls += 1;
        let next = next.ok_or_else(|| {
            mpc_core::Error::malformed("argmax", "nothing revealed", "a revealed index")
        })?;
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

    fn prepared(&self) -> Option<Prepared<'_>> {
        self.prepared
    }

    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        p: Projection,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        let w = &self.client.layers[layer][p as usize];
        run_linear(w, self.prepared, |c| entry(c, layer, p), sess, he, x)
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, y: &SharedTensor) -> Result<SharedTensor> {
        run_linear(&self.client.head, self.prepared, head_entry, sess, he, y)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>, _rows: usize) -> Result<SharedTensor> {
        self.client.embedding.lookup(sess, he, self.ids)
    }
}
