//! The client: its keys, the server's public keys and the cached encrypted weights.
use super::cache::check_cache_room;
use super::cots;
use super::engine::{self, Role, HEAD_RESCALE, LAYER_RESCALE};
use super::fold::Weights;
use super::offline::{self, NormAt, OfflineStore, SessionId, HEAD, WEIGHTS};
use super::public::PublicModel;
use super::reference::logits_from_sums;
use super::{he_params, pad, EmbeddingMode};
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Ring, Turn};
use nn::embedding::ClientEmbedding;
use nn::linear::ClientLinear;
use nn::linear_half::LinearHalf;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::{CotDemand, Session};
use std::path::Path;

const R: Ring = Ring::R64;

/// The client: its keys, the server's public key and the cached encrypted weights.
pub struct Client {
    public: PublicModel,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    server_pk: PublicKey,
    server_galois: Option<GaloisKeys>,
    layers: Vec<[ClientLinear; 4]>,
    head: ClientLinear,
    embedding: Embedding,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The client's means of embedding its ids.
enum Embedding {
    /// The server's table stays private: the cached encryption.
    Private(ClientEmbedding),
    /// The papers' setting: the tables in the clear.
    Plain {
        word: Vec<u64>,
        position: Vec<u64>,
        token_type: Vec<u64>,
    },
}

/// The client's state during one inference: the padded ids, their mask and the offline
/// material it uses (if any).
struct Query<'a> {
    client: &'a Client,
    ids: Vec<u32>,
    mask: Vec<bool>,
    store: Option<&'a OfflineStore>,
}

impl Client {
    /// Bytes of this model's entries in the client's cache (encrypted weights and table).
    pub fn cache_bytes(&self) -> Result<u64> {
        let mut files: Vec<&std::path::Path> = self
            .layers
            .iter()
            .flatten()
            .chain(std::iter::once(&self.head))
            .map(|l| l.cache_file())
            .collect();
        if let Embedding::Private(e) = &self.embedding {
            files.push(e.cache_file());
        }
        files
            .into_iter()
            .try_fold(0u64, |acc, f| Ok(acc + std::fs::metadata(f)?.len()))
    }

    /// Setup against [`super::Server::setup`]: receives the public model and the encrypted
    /// weights (or reuses the cache in `cache_dir`).
    pub fn setup(sess: &mut Session, cache_dir: &Path) -> Result<Client> {
        Client::setup_with_progress(sess, cache_dir, &|_, _| {})
    }

    /// [`Client::setup`], calling `progress(done, total)` after each layer's weights.
    pub fn setup_with_progress(
        sess: &mut Session,
        cache_dir: &Path,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Client> {
        let params = he_params()?;
        sess.scope(Component::Setup.label(), |s| {
            let key_seed = s.fresh_seed();
            let ch = &mut s.ch;
            let public: PublicModel = ch.recv_msg(1 << 20)?;
            public.check(true)?;
            check_cache_room(&params, &public, cache_dir)?;
            let product_params = public.attention.params()?;
            let server_pk = PublicKey::recv(ch, &params)?;
            let mut rng = AesPrg::new(key_seed);
            let sk = SecretKey::generate(&params, &mut rng);
            let pk = PublicKey::generate(&params, &sk, &mut rng);
            pk.send(ch, &params)?;
            let galois = GaloisKeys::generate(&product_params, &sk, &mut rng);
            let server_galois =
                GaloisKeys::exchange(ch, &product_params, &galois, Turn::ReceiveFirst)?;
            let c = &public.config;
            let layers = (0..c.num_hidden_layers)
                .map(|l| {
                    let mut get = |which: Weights| {
                        ClientLinear::setup(ch, &params, cache_dir, &offline::entry(l, which))
                    };
                    let layer = [
                        get(Weights::Qkv)?,
                        get(Weights::O)?,
                        get(Weights::H1)?,
                        get(Weights::H2)?,
                    ];
                    progress(l + 1, c.num_hidden_layers);
                    Ok(layer)
                })
                .collect::<Result<Vec<_>>>()?;
            let head = ClientLinear::setup(ch, &params, cache_dir, HEAD)?;
            let d = c.hidden_size;
            let table = |ch: &mut mpc_core::Channel, rows: usize| {
                let n = rows.checked_mul(d).ok_or_else(|| {
                    Error::shape("embedding table", [rows, d], "fewer than 2^64 values")
                })?;
                ch.recv_u64s(n)
            };
            let embedding = match public.embedding {
                EmbeddingMode::Server => {
                    Embedding::Private(ClientEmbedding::setup(ch, &params, cache_dir, "word")?)
                }
                EmbeddingMode::Client => Embedding::Plain {
                    word: table(ch, c.vocab_size)?,
                    position: table(ch, c.max_position_embeddings)?,
                    token_type: table(ch, c.type_vocab_size)?,
                },
            };
            Ok(Client {
                public,
                params,
                product_params,
                sk,
                server_pk,
                server_galois,
                layers,
                head,
                embedding,
            })
        })
    }

    /// The public description received from the server.
    pub fn public(&self) -> &PublicModel {
        &self.public
    }

    /// One inference on `ids` (cut or padded to the sequence length; padding is masked out of
    /// attention and pooling): returns the logits, which only the client learns.
    pub fn infer(&self, sess: &mut Session, ids: &[u32]) -> Result<Vec<f64>> {
        self.infer_with_progress(sess, ids, &|_, _| {})
    }

    /// [`Client::infer`], calling `progress(done, total)` after each encoder layer.
    pub fn infer_with_progress(
        &self,
        sess: &mut Session,
        ids: &[u32],
        progress: &dyn Fn(usize, usize),
    ) -> Result<Vec<f64>> {
        self.run(sess, ids, None, progress)
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

    fn run(
        &self,
        sess: &mut Session,
        ids: &[u32],
        store: Option<&OfflineStore>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Vec<f64>> {
        let (ids, mask) = pad(ids, self.public.seq_len, self.public.config.vocab_size)?;
        let query = Query {
            client: self,
            ids,
            mask,
            store,
        };
        let sums = engine::run(&query, sess, &self.public, &self.he(), progress)?;
        Ok(logits_from_sums(&sums, &query.mask))
    }

    /// The id binding offline material to this model and server key: a hash of the cached
    /// layers' digests (the server computes the same).
    pub fn model_id(&self) -> [u8; 32] {
        nn::offline::model_id(
            self.layers
                .iter()
                .flatten()
                .chain(std::iter::once(&self.head))
                .map(|l| l.digest()),
        )
    }

    /// The offline phase of one inference against [`super::Server::offline`] (label
    /// `offline`, `super::offline`): draws a session id, sends it, and files R and the
    /// client's shares of every linear layer's R·W under `root`. Returns the session id.
    pub fn offline(&self, sess: &mut Session, root: &Path) -> Result<SessionId> {
        let he = self.he();
        let k = self.public.seq_len;
        sess.scope(Component::Offline.label(), |s| {
            let session = SessionId(s.fresh_seed().0);
            let store = OfflineStore::create(root, self.model_id(), session)?;
            s.ch.send(&session.0)?;
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

    /// Right after [`Client::offline`] on the same session (against
    /// [`super::Server::set_aside_online_cots`]): extends the COTs the online pass of offline
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

    /// The sessions of offline material under `root` for this model and server key that are
    /// still unused, oldest first.
    pub fn pending_offline(&self, root: &Path) -> Result<Vec<SessionId>> {
        OfflineStore::pending(root, &self.model_id())
    }

    /// [`Client::infer`] on the offline material of `session` under `root` (against
    /// [`super::Server::infer_offline`]): checks that all of it is present and unused before
    /// anything is sent, then consumes it layer by layer; no HE in the linear layers.
    pub fn infer_offline(
        &self,
        sess: &mut Session,
        ids: &[u32],
        root: &Path,
        session: SessionId,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Vec<f64>> {
        let store = OfflineStore::open(root, self.model_id(), session)?;
        let names = offline::entries(&self.public);
        store.check_unused(names.iter().map(|n| n.as_str()))?;
        sess.ch.send(&session.0)?;
        cots::restore_online_cots(sess, session);
        self.run(sess, ids, Some(&store), progress)
    }
}

impl Role for Query<'_> {
    fn party(&self) -> Party {
        Party::Client
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
        let w = &self.client.layers[layer][which as usize];
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
        self.client.head.run(sess, he, h, HEAD_RESCALE, prepared)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>) -> Result<SharedTensor> {
        let d = self.client.public.config.hidden_size;
        match &self.client.embedding {
            Embedding::Private(table) => table.lookup(sess, he, &self.ids),
            Embedding::Plain {
                word,
                position,
                token_type,
            } => {
                let data = self
                    .ids
                    .iter()
                    .enumerate()
                    .flat_map(|(t, &id)| {
                        let id = id as usize;
                        (0..d).map(move |j| {
                            R.add(R.add(word[id * d + j], position[t * d + j]), token_type[j])
                        })
                    })
                    .collect();
                SharedTensor::matrix(self.ids.len(), d, nn::cast::LINEAR, data)
            }
        }
    }

    fn mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }
}
