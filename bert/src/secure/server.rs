//! The server: the encoded model, its keys, and the client's public keys after setup.
use super::cots;
use super::engine::{self, Role, HEAD_RESCALE, LAYER_RESCALE};
use super::fold::{fold_head, layer_weights, Weights};
use super::offline::{self, NormAt, OfflineStore, SessionId, HEAD, WEIGHTS};
use super::public::{Head, PublicModel};
use super::{he_params, AttentionMode, EmbeddingMode};
use crate::fixed_model::FixedBert;
use he_linear::cop;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Ring, Seed, Turn};
use nn::embedding::ServerEmbedding;
use nn::linear::{Packing, ServerLinear};
use nn::linear_half::LinearHalf;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::{CotDemand, Session};
use std::path::Path;

const R: Ring = Ring::R64;

/// The server: the encoded model, its keys, and the client's public key after setup.
pub struct Server {
    public: PublicModel,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    pk: PublicKey,
    galois: GaloisKeys,
    layers: Vec<[ServerLinear; 4]>,
    head: ServerLinear,
    embedding: ServerEmbedding,
    position: Vec<u64>,
    token_type: Vec<u64>,
    client_pk: Option<PublicKey>,
    client_galois: Option<GaloisKeys>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The weights and the secret key stay out of logs.
        f.debug_struct("Server")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Encodes the model (the same encoding as the fixed-point reference); the HE keys come
    /// from `key_seed` (the server's secret: the same seed gives the same keys, so a client's
    /// cache of encrypted weights stays valid across runs — see
    /// [`he_linear::key_file::load_or_create_key_seed`]).
    pub fn new(
        fixed: &FixedBert,
        head: &Head,
        seq_len: usize,
        embedding: EmbeddingMode,
        key_seed: Seed,
    ) -> Result<Server> {
        let c = fixed.config().clone();
        let public = PublicModel {
            config: c.clone(),
            seq_len,
            classes: head.classes(),
            embedding,
            attention: AttentionMode::Packed,
            approx: fixed.set().clone(),
        };
        public.check(false)?;
        let params = he_params()?;
        let product_params = AttentionMode::Packed.params()?;
        let mut rng = AesPrg::new(key_seed);
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        let galois = GaloisKeys::generate(&product_params, &sk, &mut rng);
        let (head_w, head_b) = fold_head(fixed, head)?;
        let (word, position, token_type) = fixed.embeddings();
        let embedding = ServerEmbedding::new(&params, word.to_vec(), c.vocab_size, c.hidden_size)?;
        Ok(Server {
            public,
            params,
            product_params,
            sk,
            pk,
            galois,
            layers: layer_weights(fixed)?,
            head: ServerLinear::new(head_w, head_b)?,
            embedding,
            position: position.to_vec(),
            token_type: token_type.to_vec(),
            client_pk: None,
            client_galois: None,
        })
    }

    /// The public description the client receives.
    pub fn public(&self) -> &PublicModel {
        &self.public
    }

    /// Chooses how the attention products return their outputs (before setup; default
    /// [`AttentionMode::Packed`]).
    pub fn with_attention(mut self, mode: AttentionMode) -> Result<Server> {
        self.product_params = mode.params()?;
        self.public.attention = mode;
        Ok(self)
    }

    /// Chooses how every linear layer packs its encrypted rows (before setup; default
    /// [`Packing::Compact`], the smallest setup and cache; [`Packing::Online`] sends ⌊N/n⌋
    /// times more at setup for fewer single-phase online bytes).
    pub fn with_packing(mut self, packing: Packing) -> Server {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|layer| layer.map(|w| w.with_packing(packing)))
            .collect();
        self.head = self.head.with_packing(packing);
        self
    }

    /// Chooses each linear layer's packing by cost: the fewest online bytes (at this model's
    /// sequence length, single phase) whose encrypted weights fit `budget` setup bytes.
    /// Starting from one row per ciphertext everywhere ([`Packing::Online`]), it packs
    /// ([`Packing::Compact`]) the layers that save the most setup bytes per online byte added
    /// until the weights fit; if even all-compact does not fit, every layer is compact (the
    /// client's disk check still refuses a cache it cannot hold). Returns the setup bytes of
    /// the linear layers.
    pub fn with_setup_budget(mut self, budget: u64) -> Result<(Server, u64)> {
        let (params, k) = (&self.params, self.public.seq_len);
        // (setup bytes online, setup bytes compact, online bytes online, online bytes compact)
        let mut costs = Vec::new();
        for w in self
            .layers
            .iter()
            .flatten()
            .chain(std::iter::once(&self.head))
        {
            let cost = |packing: Packing| -> Result<(u64, u64)> {
                let layout = w.layout_with(params, packing)?;
                Ok((
                    layout.setup_bytes(params) as u64,
                    cop::online_bytes(params, &layout, k, Window::full(params)) as u64,
                ))
            };
            let ((s1, o1), (sc, oc)) = (cost(Packing::Online)?, cost(Packing::Compact)?);
            costs.push((s1, sc, o1, oc));
        }
        let mut total: u64 = costs.iter().map(|c| c.0).sum();
        let mut order: Vec<usize> = (0..costs.len()).collect();
        // Most setup saved per online byte added first.
        let ratio =
            |c: &(u64, u64, u64, u64)| (c.0 - c.1) as f64 / (c.3.saturating_sub(c.2) + 1) as f64;
        order.sort_by(|&a, &b| ratio(&costs[b]).total_cmp(&ratio(&costs[a])));
        let mut packings = vec![Packing::Online; costs.len()];
        for i in order {
            if total <= budget {
                break;
            }
            packings[i] = Packing::Compact;
            total = total - costs[i].0 + costs[i].1;
        }
        let mut it = packings.into_iter();
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|layer| layer.map(|w| w.with_packing(it.next().unwrap_or_default())))
            .collect();
        self.head = self.head.with_packing(it.next().unwrap_or_default());
        Ok((self, total))
    }

    /// Setup against [`super::Client::setup`] (label `setup`).
    pub fn setup(&mut self, sess: &mut Session) -> Result<()> {
        let (params, sk, pk) = (&self.params, &self.sk, &self.pk);
        let (pp, galois) = (&self.product_params, &self.galois);
        let public = &self.public;
        let (layers, head, emb) = (&self.layers, &self.head, &self.embedding);
        let tables = [emb.table(), &self.position[..], &self.token_type[..]];
        let (client_pk, client_galois) =
            sess.scope(Component::Setup.label(), |s| -> Result<_> {
                // One child seed per encrypted matrix, in the order they are sent.
                let setup_seed = s.fresh_seed();
                let mut next = (0u64..).map(|i| setup_seed.derive(i));
                let mut seed = move || next.next().expect("an unbounded range");
                let ch = &mut s.ch;
                ch.send_msg(&PublicModel {
                    approx: public.approx.redacted(),
                    ..public.clone()
                })?;
                pk.send(ch, params)?;
                let client_pk = PublicKey::recv(ch, params)?;
                let client_galois = GaloisKeys::exchange(ch, pp, galois, Turn::SendFirst)?;
                for layer in layers {
                    for w in layer {
                        w.setup(ch, params, sk, pk, seed())?;
                    }
                }
                head.setup(ch, params, sk, pk, seed())?;
                match public.embedding {
                    EmbeddingMode::Server => emb.setup(ch, params, sk, pk, seed())?,
                    EmbeddingMode::Client => {
                        for t in tables {
                            ch.send_u64s(t)?;
                        }
                    }
                }
                ch.flush()?;
                Ok((client_pk, client_galois))
            })?;
        self.client_pk = Some(client_pk);
        self.client_galois = client_galois;
        Ok(())
    }

    /// The HE context after setup.
    fn he(&self) -> Result<HeKeys<'_>> {
        let Some(client_pk) = &self.client_pk else {
            return Err(Error::InvalidArgument("inference before setup".into()));
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

    /// One inference (the server learns nothing; its output is the protocol's completion).
    pub fn infer(&self, sess: &mut Session) -> Result<()> {
        let pass = ServerPass {
            server: self,
            store: None,
        };
        engine::run(&pass, sess, &self.public, &self.he()?, &|_, _| {}).map(|_| ())
    }

    /// The id binding offline material to this model and server key (after setup): a hash of
    /// the linear layers' cache digests, the same the client computes.
    pub fn model_id(&self) -> Result<[u8; 32]> {
        let digests = self
            .layers
            .iter()
            .flatten()
            .chain(std::iter::once(&self.head))
            .map(|w| w.digest())
            .collect::<Result<Vec<_>>>()?;
        Ok(nn::offline::model_id(digests))
    }

    /// The offline phase of one inference against [`super::Client::offline`] (label
    /// `offline`, `super::offline`): receives the client's session id and files the server's
    /// shares of every linear layer's R·W under `root`. Returns the session id.
    pub fn offline(&self, sess: &mut Session, root: &Path) -> Result<SessionId> {
        let he = self.he()?;
        let model = self.model_id()?;
        let k = self.public.seq_len;
        sess.scope(Component::Offline.label(), |s| {
            let mut id = [0u8; 16];
            s.ch.recv(&mut id)?;
            let store = OfflineStore::create(root, model, SessionId(id))?;
            offline::prepare_norm(s, &he, &self.public, NormAt::Embedding, &store)?;
            for (l, layer) in self.layers.iter().enumerate() {
                for (w, which) in layer.iter().zip(WEIGHTS) {
                    s.scope(&offline::label(l, which), |s| {
                        w.offline(s, &he, k, LAYER_RESCALE, &store, &offline::entry(l, which))
                    })?;
                }
                offline::prepare_products(s, &he, &self.public, l, &store)?;
            }
            s.scope(Component::Head.label(), |s| {
                self.head.offline(s, &he, k, HEAD_RESCALE, &store, HEAD)
            })?;
            // The phase ends when both parties have filed their material.
            s.ch.send(&[1])?;
            s.ch.flush()?;
            Ok(store.session())
        })
    }

    /// Right after [`Server::offline`] on the same session (against
    /// [`super::Client::set_aside_online_cots`]): extends the COTs the online pass of offline
    /// session `session` will draw and keeps them for it ([`cots`], label `offline/cots`).
    /// Returns what it set aside.
    pub fn set_aside_online_cots(
        &self,
        sess: &mut Session,
        session: SessionId,
    ) -> Result<CotDemand> {
        sess.scope(Component::Offline.label(), |s| {
            cots::set_aside_online_cots(s, &self.public, &self.params, session)
        })
    }

    /// One inference on offline material (against [`super::Client::infer_offline`]): the
    /// client names its session; every linear layer uses (and consumes) its entry, no HE.
    pub fn infer_offline(&self, sess: &mut Session, root: &Path) -> Result<()> {
        let he = self.he()?;
        let mut id = [0u8; 16];
        sess.ch.recv(&mut id)?;
        let store = OfflineStore::open(root, self.model_id()?, SessionId(id))?;
        let names = offline::entries(&self.public);
        store.check_unused(names.iter().map(|n| n.as_str()))?;
        cots::restore_online_cots(sess, SessionId(id));
        let pass = ServerPass {
            server: self,
            store: Some(&store),
        };
        engine::run(&pass, sess, &self.public, &he, &|_, _| {}).map(|_| ())
    }
}

/// The server's side of one inference: its model, and the offline material it uses (if any).
struct ServerPass<'a> {
    server: &'a Server,
    store: Option<&'a OfflineStore>,
}

impl Role for ServerPass<'_> {
    fn party(&self) -> Party {
        Party::Server
    }

    fn store(&self) -> Option<&OfflineStore> {
        self.store
    }

    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        which: Weights,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        let name = offline::entry(layer, which);
        let w = &self.server.layers[layer][which as usize];
        w.run(
            sess,
            he,
            x,
            LAYER_RESCALE,
            self.store.map(|s| (s, name.as_str())),
        )
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, h: &SharedTensor) -> Result<SharedTensor> {
        let prepared = self.store.map(|s| (s, HEAD));
        self.server.head.run(sess, he, h, HEAD_RESCALE, prepared)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>) -> Result<SharedTensor> {
        let server = self.server;
        let (n, d) = (server.public.seq_len, server.public.config.hidden_size);
        match server.public.embedding {
            EmbeddingMode::Server => {
                let share = server.embedding.lookup(sess, he, n)?;
                // Positions are public and every token has type 0: the server adds both.
                let mut data = share.into_share();
                for (t, row) in data.chunks_exact_mut(d).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = R.add(*v, R.add(server.position[t * d + j], server.token_type[j]));
                    }
                }
                SharedTensor::matrix(n, d, nn::cast::LINEAR, data)
            }
            EmbeddingMode::Client => Ok(SharedTensor::zeros(
                nn::Shape::matrix(n, d),
                nn::cast::LINEAR,
            )),
        }
    }

    fn mask(&self) -> Option<&[bool]> {
        None
    }
}
