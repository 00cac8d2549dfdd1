//! The client: its keys, the server's public keys and the cached encrypted weights.
use super::cache::check_cache_room;
use super::engine::{self, Role, HEAD_RESCALE, LAYER_RESCALE};
use super::fold::Weights;
use super::public::PublicModel;
use super::reference::logits_from_sums;
use super::{he_params, pad, EmbeddingMode};
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Ring};
use nn::embedding::ClientEmbedding;
use nn::linear::ClientLinear;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::Session;
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

/// The client's state during one inference: the padded ids and their mask.
struct Query<'a> {
    client: &'a Client,
    ids: Vec<u32>,
    mask: Vec<bool>,
}

impl Client {
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
            let server_galois = GaloisKeys::exchange(ch, &product_params, &galois, false)?;
            let c = &public.config;
            let layers = (0..c.num_hidden_layers)
                .map(|l| {
                    let mut get = |name: &str| {
                        ClientLinear::setup(ch, &params, cache_dir, &format!("L{l:02}-{name}"))
                    };
                    let layer = [get("qkv")?, get("o")?, get("h1")?, get("h2")?];
                    progress(l + 1, c.num_hidden_layers);
                    Ok(layer)
                })
                .collect::<Result<Vec<_>>>()?;
            let head = ClientLinear::setup(ch, &params, cache_dir, "head")?;
            let d = c.hidden_size;
            let table = |ch: &mut mpc_core::Channel, rows: usize| {
                let n = rows.checked_mul(d).ok_or_else(|| {
                    Error::Shape(format!("an embedding table of {rows} rows of {d}"))
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
        let (ids, mask) = pad(ids, self.public.seq_len, self.public.config.vocab_size)?;
        let he = HeKeys {
            params: &self.params,
            product_params: &self.product_params,
            keys: ProductKeys {
                my_sk: &self.sk,
                peer_pk: &self.server_pk,
                peer_galois: self.server_galois.as_ref(),
            },
        };
        let query = Query {
            client: self,
            ids,
            mask,
        };
        let sums = engine::run(&query, sess, &self.public, &he, progress)?;
        Ok(logits_from_sums(&sums, &query.mask))
    }
}

impl Role for Query<'_> {
    fn party(&self) -> Party {
        Party::Client
    }

    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        which: Weights,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        self.client.layers[layer][which as usize].online(sess, he, x, LAYER_RESCALE)
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, h: &SharedTensor) -> Result<SharedTensor> {
        self.client.head.online(sess, he, h, HEAD_RESCALE)
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
