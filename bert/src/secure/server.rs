//! The server: the encoded model, its keys, and the client's public keys after setup.
use super::engine::{self, Role, HEAD_RESCALE, LAYER_RESCALE};
use super::fold::{fold_head, layer_weights, Weights};
use super::public::{redact_breakpoints, Head, PublicModel};
use super::{he_params, AttentionMode, EmbeddingMode};
use crate::fixed_model::FixedBert;
use he_linear::galois::GaloisKeys;
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::secret_product::ProductKeys;
use mpc_core::{AesPrg, Error, Party, Result, Ring, Seed};
use nn::embedding::ServerEmbedding;
use nn::linear::ServerLinear;
use nn::{Component, HeKeys, SharedTensor};
use ot_nonlinear::mpc::Session;

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
                    approx: redact_breakpoints(&public.approx),
                    ..public.clone()
                })?;
                pk.send(ch, params)?;
                let client_pk = PublicKey::recv(ch, params)?;
                let client_galois = GaloisKeys::exchange(ch, pp, galois, true)?;
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

    /// One inference (the server learns nothing; its output is the protocol's completion).
    pub fn infer(&self, sess: &mut Session) -> Result<()> {
        let Some(client_pk) = &self.client_pk else {
            return Err(Error::InvalidArgument("inference before setup".into()));
        };
        let he = HeKeys {
            params: &self.params,
            product_params: &self.product_params,
            keys: ProductKeys {
                my_sk: &self.sk,
                peer_pk: client_pk,
                peer_galois: self.client_galois.as_ref(),
            },
        };
        engine::run(self, sess, &self.public, &he, &|_, _| {}).map(|_| ())
    }
}

impl Role for Server {
    fn party(&self) -> Party {
        Party::Server
    }

    fn linear(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        layer: usize,
        which: Weights,
        x: &SharedTensor,
    ) -> Result<SharedTensor> {
        self.layers[layer][which as usize].online(sess, he, x, LAYER_RESCALE)
    }

    fn head(&self, sess: &mut Session, he: &HeKeys<'_>, h: &SharedTensor) -> Result<SharedTensor> {
        self.head.online(sess, he, h, HEAD_RESCALE)
    }

    fn embed(&self, sess: &mut Session, he: &HeKeys<'_>) -> Result<SharedTensor> {
        let (n, d) = (self.public.seq_len, self.public.config.hidden_size);
        match self.public.embedding {
            EmbeddingMode::Server => {
                let share = self.embedding.lookup(sess, he, n)?;
                // Positions are public and every token has type 0: the server adds both.
                let mut data = share.into_share();
                for (t, row) in data.chunks_exact_mut(d).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = R.add(*v, R.add(self.position[t * d + j], self.token_type[j]));
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
