//! The server: the encoded decoder (every projection's blocks encoded for SIP, the embedding
//! table for the private lookup), its keys, and the client's public keys after setup.
use super::engine::{self, Role, Sequence};
use super::offline::{
    self, check_plan, entry, head_entry, next_call, prepare_calls, put_plan, restore_online_cots,
    run_linear, set_aside_online_cots, take_plan, OfflineStore, Prepared, SessionId, MAX_CALLS,
};
use super::public::PublicLlama;
use super::{check_call, check_plan_budget, he_params, product_params, RevealBudget};
use crate::fixed_model::{FixedLlama, Projection};
use he_linear::galois::GaloisKeys;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Seed, Turn};
use nn::embedding::ServerEmbedding;
use nn::sip_linear::ServerSipLinear;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::Session;
use std::path::Path;

/// The server's half of the secure decoder.
pub struct Server {
    public: PublicLlama,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    pk: PublicKey,
    galois: GaloisKeys,
    layers: Vec<[ServerSipLinear; 4]>,
    head: ServerSipLinear,
    embedding: ServerEmbedding,
    client_pk: Option<PublicKey>,
    client_galois: Option<GaloisKeys>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The weights and the secret key stay out of logs.
        f.debug_struct("Server")
            .field("public", &self.public.shape)
            .finish_non_exhaustive()
    }
}

fn sip(params: &HeParams, w: &RingMatrix) -> Result<ServerSipLinear> {
    ServerSipLinear::new(params, w.clone(), vec![0; w.cols()])
}

impl Server {
    /// Encodes the model's blocks for SIP (the server's memory: ≈ 28 bytes per weight, in the
    /// NTT domain) and derives the HE keys from `key_seed`; `progress(done, total)` after each
    /// block.
    pub fn new(
        fixed: &FixedLlama,
        key_seed: Seed,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Server> {
        let public = PublicLlama {
            shape: fixed.shape(),
            approx: fixed.set().clone(),
            norm_shifts: fixed.shifts().clone(),
        };
        public.check(false)?;
        let params = he_params()?;
        let product_params = product_params()?;
        let mut rng = AesPrg::new(key_seed);
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let galois = GaloisKeys::generate(&product_params, &sk, &mut rng);
        let n = public.shape.n_layers;
        let layers = (0..n)
            .map(|l| {
                let w = &fixed.layer(l).linears;
                let layer = [
                    sip(&params, &w[0])?,
                    sip(&params, &w[1])?,
                    sip(&params, &w[2])?,
                    sip(&params, &w[3])?,
                ];
                progress(l + 1, n + 1);
                Ok(layer)
            })
            .collect::<Result<Vec<_>>>()?;
        let head = sip(&params, fixed.head())?;
        progress(n + 1, n + 1);
        let s = &public.shape;
        let embedding =
            ServerEmbedding::new(&params, fixed.embedding().to_vec(), s.vocab, s.hidden)?;
        Ok(Server {
            public,
            params,
            product_params,
            sk,
            pk,
            galois,
            layers,
            head,
            embedding,
            client_pk: None,
            client_galois: None,
        })
    }

    /// The public description.
    pub fn public(&self) -> &PublicLlama {
        &self.public
    }

    /// Setup against [`super::Client::setup`] (label `setup`): the redacted description, the
    /// public keys both ways, Galois keys both ways, the encrypted embedding table.
    pub fn setup(&mut self, sess: &mut Session) -> Result<()> {
        let (params, pp) = (&self.params, &self.product_params);
        let (sk, pk, galois) = (&self.sk, &self.pk, &self.galois);
        let (public, embedding) = (&self.public, &self.embedding);
        let (client_pk, client_galois) =
            sess.scope(Component::Setup.label(), |s| -> Result<_> {
                let table_seed = s.fresh_seed();
                let ch = &mut s.ch;
                ch.send_msg(&PublicLlama {
                    approx: public.approx.redacted(),
                    ..public.clone()
                })?;
                pk.send(ch, params)?;
                let client_pk = PublicKey::recv(ch, params)?;
                let client_galois = GaloisKeys::exchange(ch, pp, galois, Turn::SendFirst)?;
                embedding.setup(ch, params, sk, pk, table_seed)?;
                ch.flush()?;
                Ok((client_pk, client_galois))
            })?;
        self.client_pk = Some(client_pk);
        self.client_galois = client_galois;
        Ok(())
    }

    fn he(&self) -> Result<HeKeys<'_>> {
        let Some(client_pk) = &self.client_pk else {
            return Err(Error::InvalidArgument("generation before setup".into()));
        };
        Ok(HeKeys {
            params: &self.params,
            product_params: &self.product_params,
            keys: ProductKeys {
                my_sk: &self.sk,
                peer_pk: client_pk,
                peer_galois: self.client_galois.as_ref(),
            },
        })
    }

    /// The id binding offline material to this server's key and the decoder's shape.
    pub fn model_id(&self) -> Result<[u8; 32]> {
        offline::model_id(&self.params, &self.public.shape, &self.pk)
    }

    /// The offline phase of one generation against [`super::Client::offline`] (label
    /// `offline`): receives the session id and the plan of calls, checks the plan, and files
    /// its share of every call's projections and head under `root`.
    pub fn offline(&self, sess: &mut Session, root: &Path) -> Result<SessionId> {
        let he = self.he()?;
        let model = self.model_id()?;
        sess.scope(Component::Offline.label(), |s| {
            let mut id = [0u8; 16];
            s.ch.recv(&mut id)?;
            let n = s.ch.recv_u64s(1)?[0];
            if n == 0 || n > MAX_CALLS as u64 {
                return Err(Error::malformed(
                    "offline plan calls",
                    n.to_string(),
                    mpc_core::Dims::within(1, MAX_CALLS),
                ));
            }
            let calls = check_plan(&self.public.shape, &s.ch.recv_u64s(n as usize)?)?;
            check_plan_budget(&self.public, &self.params, &calls)?;
            let store = OfflineStore::create(root, model, SessionId(id))?;
            put_plan(&store, &calls)?;
            prepare_calls(
                s,
                &he,
                (&self.public.shape, &self.layers, &self.head),
                &calls,
                &store,
            )?;
            set_aside_online_cots(s, &self.public, &self.params, store.session(), &calls)?;
            // The phase ends when both parties have filed their material.
            s.ch.send(&[1])?;
            s.ch.flush()?;
            Ok(store.session())
        })
    }

    /// Serves one generation: runs every call the client announces (a prompt, then one token
    /// at a time) until it ends the sequence; returns the number of calls. The server learns
    /// no token and no logit, only each call's number of rows.
    pub fn serve(&self, sess: &mut Session) -> Result<usize> {
        self.serve_observed(sess, None, &mut |_| {})
    }

    /// [`Server::serve`] on the offline material of the session the client names, under
    /// `root` (against [`super::Client::generation_offline`]): every projection and head uses
    /// (and consumes) its entry, no HE.
    pub fn serve_offline(&self, sess: &mut Session, root: &Path) -> Result<usize> {
        let mut id = [0u8; 16];
        sess.ch.recv(&mut id)?;
        let store = OfflineStore::open(root, self.model_id()?, SessionId(id))?;
        self.serve_observed(sess, Some(&store), &mut |_| {})
    }

    /// [`Server::serve`] (on the offline material of `store` if given), handing `observe` the
    /// server's own share of each call's last-position logits (uniformly random on its own;
    /// tests add the client's share to check the run).
    pub fn serve_observed(
        &self,
        sess: &mut Session,
        store: Option<&OfflineStore>,
        observe: &mut dyn FnMut(&SharedTensor),
    ) -> Result<usize> {
        let he = self.he()?;
        let plan = match store {
            Some(store) => take_plan(store, &self.public.shape)?,
            None => Vec::new(),
        };
        let mut seq = Sequence::new(&self.public);
        let mut budget = RevealBudget::new(&self.params);
        let mut calls = 0;
        loop {
            let rows = sess.ch.recv_u64s(1)?[0];
            if rows == 0 {
                return Ok(calls);
            }
            let rows = check_call(&self.public, &seq, rows, &mut budget)?;
            let prepared = match store {
                Some(store) => {
                    let call = next_call(&plan, calls, rows)?;
                    restore_online_cots(sess, store.session(), call);
                    Some(Prepared { store, call })
                }
                None => None,
            };
            let call = ServerCall {
                server: self,
                prepared,
            };
            let (_, logits) =
                engine::forward(&call, sess, &self.public, &he, &mut seq, rows, &|_, _| {})?;
            observe(&logits);
            calls += 1;
        }
    }
}

/// One call as the server's [`Role`].
struct ServerCall<'a> {
    server: &'a Server,
    prepared: Option<Prepared<'a>>,
}

impl Role for ServerCall<'_> {
    fn party(&self) -> Party {
        Party::Server
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
        let w = &self.server.layers[layer][p as usize];
        run_linear(w, self.prepared, |c| entry(c, layer, p), sess, he, x)
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, y: &SharedTensor) -> Result<SharedTensor> {
        run_linear(&self.server.head, self.prepared, head_entry, sess, he, y)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>, rows: usize) -> Result<SharedTensor> {
        self.server.embedding.lookup(sess, he, rows)
    }
}
