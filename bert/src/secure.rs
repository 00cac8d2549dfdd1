//! Secure two-party BERT inference: the server holds the model, the client holds the token ids;
//! together they compute the classifier's logits, which only the client learns.
//!
//! Roles: [`Server`] (weights, HE secret key of the linear layers) and [`Client`] (input, the
//! encrypted weights cached on its disk). Both run the same sequence of two-party protocols on a
//! [`Session`] (one channel, Ferret in both directions), each with its own shares.
//!
//! **Setup** (once per model and server key): the server sends the public description (shapes,
//! sequence length, the approximation set's public part), both exchange RLWE public keys, and
//! the server sends its encrypted weights for every linear layer (COP) and, with a private
//! embedding, its encrypted word-embedding table. The client caches them on disk keyed by a
//! digest of (parameters, server key, weights) and reuses them across runs; layers are mapped
//! one at a time during inference.
//!
//! **Online**, all values additively shared over Z_2^64 with 18 fraction bits:
//! * embedding: private table lookup ([`he_linear::embedding`]) plus the position and token-type
//!   rows on the server's share (positions are public), or, in the papers' setting, the client
//!   supplies the embedded sequence; then LayerNorm;
//! * per layer: fused QKV (COP), QKᵀ per head (secret × secret, all heads in 2 flights),
//!   Softmax up to its normalisation with the client's padding mask (exps E, reciprocals r),
//!   E·V per head, its rows scaled by r on HE (diag(r)·(E·V), 64 values per row and head
//!   instead of 128 exps), output projection (COP), residual, LayerNorm, FFN up (COP), GELU,
//!   FFN down (COP), residual, LayerNorm. Every HE product that is truncated next reveals only
//!   the bits kept ([`Window`]: 18 low bits dropped at 36 fraction bits, 16 for the
//!   normalisation, LayerNorm's products modulo 2^38), and the shares are cast back up to
//!   Z_2^64 by a known-MSB cast; they sum to the truncated product within a few units;
//! * LayerNorm computes the normalisation ŷ only; its affine γ·ŷ + β is folded into the COP
//!   that consumes it, whose weights are `[diag(γ) | diag(γ)·W]` (the first block yields the
//!   residual branch γ·ŷ + β, the second the layer): same setup size (one ciphertext per row
//!   either way), 128×d more outputs online;
//! * head: per-token logits `ŷ_t·(diag(γ)·W) + β·W + b` (COP, 36 fraction bits), the
//!   client's mask applied by a multiplexer, the sum over tokens revealed to the client only,
//!   which divides by its own number of real tokens.
//!
//! The mirror of all of it is [`fixed_reference`] (the fixed-point model's arithmetic); the
//! secure logits differ from it by the truncation carries (the windows' included) and the
//! comparisons near breakpoints (bound [`FIXED_LOGIT_BOUND`], measured).
//!
//! Every step runs under a channel label `layerNN/<component>` (or `embedding`, `head`), so the
//! bench reports bytes, rounds and time per component and per layer.
use crate::fixed_model::{FixedAffine, FixedBert, FixedLinear};
use crate::BertConfig;
use he_linear::cop;
use he_linear::embedding::{self, CachedTable, EmbeddingLayout};
use he_linear::galois::GaloisKeys;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::row_products;
use he_linear::secret_product::{secret_products_window, ProductKeys};
use he_linear::weight_store::{self, CachedLayer};
use mpc_core::{AesPrg, Error, FixedPoint, Party, Result, Ring, Seed};
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::functions::{self, exp_breakpoints, gelu_spec, OtProducts, RowProducts};
use ot_nonlinear::mpc::{mux, trunc_cast, CotDemand, Session, TruncKind};
use std::path::{Path, PathBuf};

const LIN: FixedPoint = FixedPoint::LINEAR;
const R: Ring = Ring::R64;

/// Who supplies the embedded sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EmbeddingMode {
    /// The server's tables stay private: secure lookup of the client's ids.
    Server,
    /// The papers' setting: the client holds the tables and supplies the embedded sequence.
    Client,
}

impl std::str::FromStr for EmbeddingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "server" => Ok(EmbeddingMode::Server),
            "client" => Ok(EmbeddingMode::Client),
            _ => Err(Error::InvalidArgument(format!(
                "embedding mode `{s}`: expected `server` or `client`"
            ))),
        }
    }
}

/// How attention's secret × secret products (QKᵀ, P·V) return their results, and with them
/// where LayerNorm's row products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttentionMode {
    /// Outputs merged with Galois keys (`he_linear::galois`): 7× fewer bytes for attention;
    /// LayerNorm's square sums and row-scalar product run on HE with the same keys
    /// (`he_linear::row_products`, 3.2× fewer bytes than on COTs). Several seconds more compute
    /// per BERT-base block on this 2-core machine. The default.
    Packed,
    /// One response per Cheetah output block, and LayerNorm's products on COTs: more bytes,
    /// less compute (faster on a LAN).
    Unpacked,
}

impl std::str::FromStr for AttentionMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "packed" => Ok(AttentionMode::Packed),
            "unpacked" => Ok(AttentionMode::Unpacked),
            _ => Err(Error::InvalidArgument(format!(
                "attention mode `{s}`: expected `packed` or `unpacked`"
            ))),
        }
    }
}

impl AttentionMode {
    /// The HE parameters of the products in this mode (same N, primes and keys as the linear
    /// layers').
    fn params(self) -> Result<HeParams> {
        match self {
            AttentionMode::Packed => HeParams::packed_products(),
            AttentionMode::Unpacked => he_params(),
        }
    }
}

/// What both parties know: shapes, the sequence length, the head's width, the embedding and
/// attention modes and the approximation set (the server sends it during setup).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublicModel {
    /// Encoder shape.
    pub config: BertConfig,
    /// Tokens per inference (the client pads or cuts its sentence to this length).
    pub seq_len: usize,
    /// Logits of the head.
    pub classes: usize,
    /// Who supplies the embedded sequence.
    pub embedding: EmbeddingMode,
    /// How the attention products return their outputs.
    pub attention: AttentionMode,
    /// The approximation set (GELU and exp tables per layer).
    pub approx: ApproxSet,
}

impl PublicModel {
    /// Checks the shapes and the set; `redacted`: the set's breakpoints are placeholders (the
    /// client's copy), so only what does not depend on them is checked.
    fn check(&self, redacted: bool) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        if self.seq_len == 0 || self.seq_len > c.max_position_embeddings {
            return Err(Error::Shape(format!(
                "sequence length {} outside 1..={}",
                self.seq_len, c.max_position_embeddings
            )));
        }
        if self.classes == 0 || self.classes > 1024 {
            return Err(Error::Shape(format!("{} head outputs", self.classes)));
        }
        crate::reveals::check(self)?;
        if redacted {
            self.approx.validate_redacted(c.num_hidden_layers)
        } else {
            self.approx.validate(c.num_hidden_layers)
        }
    }
}

/// A linear classification head on mean-pooled embeddings: `logits = mean_t(h_t)·W + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// `d × classes`, row-major.
    pub w: Vec<f64>,
    /// `classes` biases.
    pub b: Vec<f64>,
}

impl Head {
    /// The sentiment head (one logit).
    pub fn from_logistic(h: &crate::head::LogisticHead) -> Head {
        Head {
            w: h.weights.clone(),
            b: vec![h.bias],
        }
    }

    /// A deterministic random head (for models without a trained one).
    pub fn random(d: usize, classes: usize, seed: u64) -> Head {
        let mut rng = AesPrg::new(Seed([seed as u8; 16]).derive(seed));
        let scale = 1.0 / (d as f64).sqrt();
        let mut uniform = || (rng.u64s(1)[0] >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        Head {
            w: (0..d * classes).map(|_| uniform() * scale).collect(),
            b: (0..classes).map(|_| uniform() * 0.1).collect(),
        }
    }

    fn classes(&self) -> usize {
        self.b.len()
    }
}

/// The set as the client receives it: the breakpoints and PUMA's exp lower bound are the
/// server's inputs to the comparisons (it subtracts them from its share) and are replaced by
/// placeholders; the coefficients and plans are public (docs/security.md says what the
/// coefficients reveal about the breakpoints).
fn redact_breakpoints(set: &ApproxSet) -> ApproxSet {
    let placeholder = |b: &mut Vec<f64>| {
        for (i, v) in b.iter_mut().enumerate() {
            *v = i as f64;
        }
    };
    let mut out = set.clone();
    for t in &mut out.layers {
        placeholder(&mut t.gelu.breakpoints);
        match &mut t.exp {
            ot_nonlinear::approx::ExpMethod::Piecewise(pw) => placeholder(&mut pw.breakpoints),
            ot_nonlinear::approx::ExpMethod::Squaring { lower, .. } => *lower = -1.0,
        }
    }
    out
}

/// The HE parameters of every linear layer (checked, 128-bit).
fn he_params() -> Result<HeParams> {
    HeParams::default_params()
}

/// Shares of a window of HE products (modulo 2^{window.bits()}, top two bits clear) up-cast
/// to Z_2^64 by a known-MSB cast.
fn upcast_window(sess: &mut Session, y: &[u64], window: Window) -> Result<Vec<u64>> {
    trunc_cast(
        sess,
        y,
        Ring::new(window.bits())?,
        R,
        0,
        TruncKind::KnownMsb,
    )
}

/// The server: the encoded model, its keys, and the client's public key after setup.
pub struct Server {
    public: PublicModel,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    pk: PublicKey,
    galois: GaloisKeys,
    model: ServerWeights,
    client_pk: Option<PublicKey>,
    client_galois: Option<GaloisKeys>,
}

struct ServerLayer {
    /// `[diag(γ_in) | Q | K | V]` folded with the input LayerNorm.
    qkv: RingMatrix,
    qkv_b: Vec<u64>,
    o: RingMatrix,
    o_b: Vec<u64>,
    /// `[diag(γ_attn) | W_up]` folded with the attention LayerNorm.
    h1: RingMatrix,
    h1_b: Vec<u64>,
    h2: RingMatrix,
    h2_b: Vec<u64>,
}

struct ServerWeights {
    word: Vec<u64>,
    position: Vec<u64>,
    token_type: Vec<u64>,
    layers: Vec<ServerLayer>,
    head_w: RingMatrix,
    head_b: Vec<u64>,
}

fn matrix(rows: usize, cols: usize, data: Vec<u64>) -> Result<RingMatrix> {
    RingMatrix::new(rows, cols, data)
}

/// `[diag(γ) | W]` and `[β | b]`: one COP yields the residual branch and the layer.
fn with_residual(affine: &FixedAffine, lin: &FixedLinear) -> Result<(RingMatrix, Vec<u64>)> {
    let (d, n) = (lin.inputs, lin.outputs);
    let mut w = Vec::with_capacity(d * (d + n));
    for i in 0..d {
        w.extend((0..d).map(|j| if i == j { affine.gamma[i] } else { 0 }));
        w.extend_from_slice(&lin.w[i * n..(i + 1) * n]);
    }
    let b = affine.beta.iter().chain(&lin.b).copied().collect();
    Ok((matrix(d, d + n, w)?, b))
}

/// The head folded with the last LayerNorm, at 18 bits (weights) and 36 bits (biases, no
/// rounding half: the per-token logits are summed, not truncated).
fn fold_head(fixed: &FixedBert, head: &Head) -> Result<(RingMatrix, Vec<u64>)> {
    let ln = fixed.final_ln();
    let (d, classes) = (ln.gamma.len(), head.classes());
    if head.w.len() != d * classes {
        return Err(Error::Shape(format!(
            "head of {} weights for hidden size {d} and {classes} classes",
            head.w.len()
        )));
    }
    let wide = FixedPoint::new(R, 2 * LIN.frac_bits())?;
    let ctx = |e: Error| Error::OutOfRange(format!("head: {e}"));
    let w = (0..d * classes)
        .map(|i| LIN.encode(ln.gamma[i / classes] as f64 * head.w[i]))
        .collect::<Result<Vec<_>>>()
        .map_err(ctx)?;
    let b = (0..classes)
        .map(|c| {
            let folded: f64 = (0..d)
                .map(|i| ln.beta[i] as f64 * head.w[i * classes + c])
                .sum();
            wide.encode(folded + head.b[c])
        })
        .collect::<Result<Vec<_>>>()
        .map_err(ctx)?;
    Ok((matrix(d, classes, w)?, b))
}

/// The fixed-point mirror of a secure inference: the logits the client would get without the
/// truncation carries, for padded `ids` and the client's `mask`.
pub fn fixed_reference(
    fixed: &FixedBert,
    ids: &[u32],
    mask: &[bool],
    head: &Head,
) -> Result<Vec<f64>> {
    let y = fixed.normalized(ids, Some(mask))?;
    let (w, b) = fold_head(fixed, head)?;
    let (d, classes) = (w.rows(), w.cols());
    let mut sums = vec![0u64; classes];
    for (t, row) in y.chunks_exact(d).enumerate() {
        if !mask[t] {
            continue;
        }
        for (c, s) in sums.iter_mut().enumerate() {
            let z = (0..d).fold(b[c], |a, i| R.add(a, R.mul(row[i], w.get(i, c))));
            *s = R.add(*s, z);
        }
    }
    Ok(logits_from_sums(&sums, mask))
}

/// The logits of the float model with the same head (mean over the real tokens).
pub fn float_reference(float: &crate::FloatBert, ids: &[u32], head: &Head) -> Result<Vec<f64>> {
    let h = float.encode(ids)?;
    let pooled = crate::float_model::mean_pool(h.view());
    let classes = head.classes();
    Ok((0..classes)
        .map(|c| {
            pooled.iter().enumerate().fold(head.b[c], |a, (i, &x)| {
                a + x as f64 * head.w[i * classes + c]
            })
        })
        .collect())
}

/// Sums of masked per-token logits at 36 fraction bits → the mean over the real tokens.
fn logits_from_sums(sums: &[u64], mask: &[bool]) -> Vec<f64> {
    let real = mask.iter().filter(|&&m| m).count().max(1) as f64;
    let scale = ((2 * LIN.frac_bits()) as f64).exp2();
    sums.iter()
        .map(|&s| R.to_signed(s) as f64 / scale / real)
        .collect()
}

/// Bound on |secure − fixed| logits for the built-in tests and the bench's check: the
/// truncation carries (one unit at 2^-18 per truncation) through ≤ 24 layers, and comparisons
/// that fall on the other side of a breakpoint within their resolution.
pub const FIXED_LOGIT_BOUND: f64 = 0.05;

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
        let layers = fixed
            .layers()
            .iter()
            .map(|l| {
                let (qkv, qkv_b) = with_residual(&l.input_affine, &l.qkv)?;
                let (h1, h1_b) = with_residual(&l.ffn_affine, &l.ffn_up)?;
                let plain = |lin: &FixedLinear| matrix(lin.inputs, lin.outputs, lin.w.clone());
                Ok(ServerLayer {
                    qkv,
                    qkv_b,
                    o: plain(&l.attn_out)?,
                    o_b: l.attn_out.b.clone(),
                    h1,
                    h1_b,
                    h2: plain(&l.ffn_down)?,
                    h2_b: l.ffn_down.b.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (head_w, head_b) = fold_head(fixed, head)?;
        let (word, position, token_type) = fixed.embeddings();
        Ok(Server {
            public,
            params,
            product_params,
            sk,
            pk,
            galois,
            model: ServerWeights {
                word: word.to_vec(),
                position: position.to_vec(),
                token_type: token_type.to_vec(),
                layers,
                head_w,
                head_b,
            },
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

    /// Setup against [`Client::setup`] (label `setup`).
    pub fn setup(&mut self, sess: &mut Session) -> Result<()> {
        let (params, sk, pk) = (&self.params, &self.sk, &self.pk);
        let (pp, galois) = (&self.product_params, &self.galois);
        let m = &self.model;
        let public = &self.public;
        let (client_pk, client_galois) = sess.scope("setup", |s| -> Result<_> {
            let ch = &mut s.ch;
            ch.send_msg(&PublicModel {
                approx: redact_breakpoints(&public.approx),
                ..public.clone()
            })?;
            pk.send(ch, params)?;
            let client_pk = PublicKey::recv(ch, params)?;
            let client_galois = GaloisKeys::exchange(ch, pp, galois, true)?;
            for l in &m.layers {
                for w in [&l.qkv, &l.o, &l.h1, &l.h2] {
                    cop::server_setup(ch, params, sk, pk, w)?;
                }
            }
            cop::server_setup(ch, params, sk, pk, &m.head_w)?;
            let d = public.config.hidden_size;
            match public.embedding {
                EmbeddingMode::Server => {
                    let layout = EmbeddingLayout::densest(params, public.config.vocab_size, d)?;
                    embedding::server_setup(ch, params, sk, pk, &layout, &m.word)?;
                }
                EmbeddingMode::Client => {
                    for t in [&m.word, &m.position, &m.token_type] {
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
        let mut eng = Engine {
            public: &self.public,
            params: &self.params,
            product_params: &self.product_params,
            role: Role::Server {
                sk: &self.sk,
                model: &self.model,
            },
            products: ProductKeys {
                my_sk: &self.sk,
                peer_pk: client_pk,
                peer_galois: self.client_galois.as_ref(),
            },
            mask: None,
            progress: &|_, _| {},
        };
        eng.run(sess, None).map(|_| ())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The weights and the secret key stay out of logs.
        f.debug_struct("Server")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The client: its keys, the server's public key and the cached encrypted weights.
pub struct Client {
    public: PublicModel,
    params: HeParams,
    product_params: HeParams,
    sk: SecretKey,
    server_pk: PublicKey,
    server_galois: Option<GaloisKeys>,
    layers: Vec<[CachedLayer; 4]>,
    head: CachedLayer,
    embedding: ClientEmbedding,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

enum ClientEmbedding {
    Private(CachedTable),
    Plain {
        word: Vec<u64>,
        position: Vec<u64>,
        token_type: Vec<u64>,
    },
}

impl Client {
    /// Setup against [`Server::setup`]: receives the public model and the encrypted weights
    /// (or reuses the cache in `cache_dir`).
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
        sess.scope("setup", |s| {
            let ch = &mut s.ch;
            let public: PublicModel = ch.recv_msg(1 << 20)?;
            public.check(true)?;
            check_cache_room(&params, &public, cache_dir)?;
            let product_params = public.attention.params()?;
            let server_pk = PublicKey::recv(ch, &params)?;
            let mut rng = AesPrg::new(Seed::random());
            let sk = SecretKey::generate(&params, &mut rng);
            let pk = PublicKey::generate(&params, &sk, &mut rng);
            pk.send(ch, &params)?;
            let galois = GaloisKeys::generate(&product_params, &sk, &mut rng);
            let server_galois = GaloisKeys::exchange(ch, &product_params, &galois, false)?;
            let c = &public.config;
            let layers = (0..c.num_hidden_layers)
                .map(|l| {
                    let mut get = |name: &str| {
                        cop::client_setup(ch, &params, cache_dir, &format!("L{l:02}-{name}"))
                    };
                    let layer = [get("qkv")?, get("o")?, get("h1")?, get("h2")?];
                    progress(l + 1, c.num_hidden_layers);
                    Ok(layer)
                })
                .collect::<Result<Vec<_>>>()?;
            let head = cop::client_setup(ch, &params, cache_dir, "head")?;
            let d = c.hidden_size;
            let embedding = match public.embedding {
                EmbeddingMode::Server => ClientEmbedding::Private(embedding::client_setup(
                    ch, &params, cache_dir, "word",
                )?),
                EmbeddingMode::Client => {
                    let values = |rows: usize| {
                        rows.checked_mul(d).ok_or_else(|| {
                            Error::Shape(format!("an embedding table of {rows} × {d} values"))
                        })
                    };
                    ClientEmbedding::Plain {
                        word: ch.recv_u64s(values(c.vocab_size)?)?,
                        position: ch.recv_u64s(values(c.max_position_embeddings)?)?,
                        token_type: ch.recv_u64s(values(c.type_vocab_size)?)?,
                    }
                }
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
        let mut eng = Engine {
            public: &self.public,
            params: &self.params,
            product_params: &self.product_params,
            role: Role::Client { client: self },
            products: ProductKeys {
                my_sk: &self.sk,
                peer_pk: &self.server_pk,
                peer_galois: self.server_galois.as_ref(),
            },
            mask: Some(&mask),
            progress,
        };
        let sums = eng.run(sess, Some(&ids))?;
        Ok(logits_from_sums(&sums, &mask))
    }
}

/// Refuses, before any weight is sent, a setup whose cache cannot fit in `cache_dir`: the
/// encrypted weights need at least one ciphertext per weight row (layers of at most N columns,
/// as in BERT-base and -large, need exactly that) and the private embedding table; entries
/// already in the directory may be reused, so the check is need ≤ free space + their size and
/// never refuses a setup that could succeed. (`write_cache_file` still checks each file.)
fn check_cache_room(params: &HeParams, public: &PublicModel, cache_dir: &Path) -> Result<()> {
    let c = &public.config;
    let d = c.hidden_size;
    let rows_per_layer = [d, d, d, c.intermediate_size];
    let per_layer = rows_per_layer
        .iter()
        .map(|&m| weight_store::layer_file_bytes(params, m, 1))
        .fold(0u64, u64::saturating_add);
    let mut need = per_layer
        .saturating_mul(c.num_hidden_layers as u64)
        .saturating_add(weight_store::layer_file_bytes(params, d, 1));
    if public.embedding == EmbeddingMode::Server {
        let layout = EmbeddingLayout::densest(params, c.vocab_size, d)?;
        need = need.saturating_add(embedding::table_file_bytes(params, &layout));
    }
    std::fs::create_dir_all(cache_dir)?;
    let Some(free) = weight_store::free_bytes(cache_dir)? else {
        return Ok(());
    };
    let mut existing = 0u64;
    for entry in std::fs::read_dir(cache_dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            existing += meta.len();
        }
    }
    if need > free.saturating_add(existing) {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "the encrypted weights need at least {:.1} GB in {}; its file system has \
                 {:.1} GB free and the directory's entries (reused where they match) hold \
                 {:.1} GB: free space or choose another --cache-dir",
                need as f64 / 1e9,
                cache_dir.display(),
                free as f64 / 1e9,
                existing as f64 / 1e9
            ),
        )));
    }
    Ok(())
}

/// Cuts or pads `ids` to `len` (pad id 0) and returns the mask of real tokens.
pub fn pad(ids: &[u32], len: usize, vocab: usize) -> Result<(Vec<u32>, Vec<bool>)> {
    if ids.is_empty() {
        return Err(Error::Shape("an empty token sequence".into()));
    }
    if len == 0 || len > crate::config::limits::POSITIONS {
        return Err(Error::Shape(format!(
            "sequence length {len} outside 1..={}",
            crate::config::limits::POSITIONS
        )));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::OutOfRange(format!(
            "token id {id} outside the vocabulary of {vocab}"
        )));
    }
    let real = ids.len().min(len);
    let mut out = ids[..real].to_vec();
    out.resize(len, 0);
    let mask = (0..len).map(|t| t < real).collect();
    Ok((out, mask))
}

enum Role<'a> {
    Server {
        sk: &'a SecretKey,
        model: &'a ServerWeights,
    },
    Client {
        client: &'a Client,
    },
}

/// The online computation, written once for both parties.
struct Engine<'a> {
    public: &'a PublicModel,
    params: &'a HeParams,
    /// Parameters of the packed attention products.
    product_params: &'a HeParams,
    role: Role<'a>,
    /// This party's key and the peer's evaluation keys for the attention products.
    products: ProductKeys<'a>,
    /// The client's padding mask (the server has none).
    mask: Option<&'a [bool]>,
    /// Called with (layers done, layers) after each encoder layer.
    progress: &'a dyn Fn(usize, usize),
}

/// LayerNorm's row products on HE ([`row_products`]) for
/// [`functions::layernorm_with`](ot_nonlinear::functions::layernorm_with): at BERT-base's
/// 128 × 768, 8.6 MB instead of the 27.3 MB of Gilboa products on COTs, the same values.
/// Needs the packed products' parameters ([`HeParams::packed_products`]) and both parties'
/// keys, the peer's Galois keys included.
#[derive(Debug)]
pub struct HeRowProducts<'a> {
    params: &'a HeParams,
    keys: ProductKeys<'a>,
}

impl<'a> HeRowProducts<'a> {
    /// Row products with these parameters and keys.
    pub fn new(params: &'a HeParams, keys: ProductKeys<'a>) -> Self {
        HeRowProducts { params, keys }
    }
}

impl RowProducts for HeRowProducts<'_> {
    fn cots(&self, _: usize, _: usize) -> CotDemand {
        CotDemand::default()
    }

    fn row_square_sums(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        n: usize,
        ring: Ring,
    ) -> Result<Vec<u64>> {
        let v = matrix(v.len() / n, n, v.to_vec())?;
        row_products::row_square_sums(
            &mut sess.ch,
            self.params,
            self.keys,
            sess.party,
            &v,
            ring.bits(),
        )
    }

    fn row_scalar_product(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        r: &[u64],
        n: usize,
        ring: Ring,
        shift: u32,
    ) -> Result<Vec<u64>> {
        let v = matrix(v.len() / n, n, v.to_vec())?;
        // The responses reveal bits [shift, ring) only: shares of ⌊r·v / 2^shift⌋ (within 3
        // units), up-cast to Z_2^64.
        let window = Window::new(self.params, shift, ring.bits())?;
        let y =
            row_products::row_scalar_product(&mut sess.ch, self.params, self.keys, r, &v, window)?;
        upcast_window(sess, y.data(), window)
    }
}

/// Which of a layer's four COP weights.
#[derive(Clone, Copy)]
enum Weights {
    Qkv,
    O,
    H1,
    H2,
}

impl Engine<'_> {
    /// Runs the whole inference; returns the client's sums of masked per-token logits at 36
    /// fraction bits (the server returns an empty vector).
    fn run(&mut self, sess: &mut Session, ids: Option<&[u32]>) -> Result<Vec<u64>> {
        let c = self.public.config.clone();
        let n = self.public.seq_len;
        let mut h = sess.scope("embedding", |s| self.embed(s, ids))?;
        for l in 0..c.num_hidden_layers {
            h = self.layer(sess, l, &h)?;
            (self.progress)(l + 1, c.num_hidden_layers);
        }
        sess.scope("head", |s| self.head(s, &h, n))
    }

    fn embed(&self, sess: &mut Session, ids: Option<&[u32]>) -> Result<Vec<u64>> {
        let (n, d) = (self.public.seq_len, self.public.config.hidden_size);
        let x = match (&self.role, ids) {
            (Role::Server { sk, model }, _) => {
                let mut share = match self.public.embedding {
                    EmbeddingMode::Server => {
                        let layout = EmbeddingLayout::densest(
                            self.params,
                            self.public.config.vocab_size,
                            d,
                        )?;
                        embedding::server_lookup(&mut sess.ch, self.params, sk, &layout, n)?
                    }
                    EmbeddingMode::Client => vec![0; n * d],
                };
                if self.public.embedding == EmbeddingMode::Server {
                    // Positions are public and every token has type 0: the server adds both.
                    for (t, row) in share.chunks_exact_mut(d).enumerate() {
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = R.add(*v, R.add(model.position[t * d + j], model.token_type[j]));
                        }
                    }
                }
                share
            }
            (Role::Client { client }, Some(ids)) => match &client.embedding {
                ClientEmbedding::Private(table) => embedding::client_lookup(
                    &mut sess.ch,
                    self.params,
                    self.products.peer_pk,
                    &table.open(self.params)?,
                    ids,
                )?,
                ClientEmbedding::Plain {
                    word,
                    position,
                    token_type,
                } => ids
                    .iter()
                    .enumerate()
                    .flat_map(|(t, &id)| {
                        let id = id as usize;
                        (0..d).map(move |j| {
                            R.add(R.add(word[id * d + j], position[t * d + j]), token_type[j])
                        })
                    })
                    .collect(),
            },
            (Role::Client { .. }, None) => {
                return Err(Error::InvalidArgument("the client runs without ids".into()))
            }
        };
        self.layernorm(sess, &x)
    }

    /// `trunc(X·W + b, 18)` for the layer's weights `which`.
    fn linear(
        &self,
        sess: &mut Session,
        layer: usize,
        which: Weights,
        x: &[u64],
        rows: usize,
    ) -> Result<Vec<u64>> {
        let cols_in = x.len() / rows;
        let x = matrix(rows, cols_in, x.to_vec())?;
        // trunc(X·W + b, 18): the responses reveal bits [18, 64) only.
        let window = Window::new(self.params, LIN.frac_bits(), R.bits())?;
        let y = match &self.role {
            Role::Server { sk, model } => {
                let l = &model.layers[layer];
                let (w, b) = match which {
                    Weights::Qkv => (&l.qkv, &l.qkv_b),
                    Weights::O => (&l.o, &l.o_b),
                    Weights::H1 => (&l.h1, &l.h1_b),
                    Weights::H2 => (&l.h2, &l.h2_b),
                };
                let mut y =
                    cop::server_online_window(&mut sess.ch, self.params, sk, w, &x, window)?;
                add_bias(&mut y, b, window);
                y
            }
            Role::Client { client } => {
                let cached = &client.layers[layer][which as usize];
                let enc = cached.open(self.params)?;
                let pk = self.products.peer_pk;
                cop::client_online_window(&mut sess.ch, self.params, pk, &enc, &x, window)?
            }
        };
        upcast_window(sess, y.data(), window)
    }

    /// One encoder layer on the normalised input ŷ (the previous LayerNorm's, its affine
    /// folded into this layer's QKV); returns this layer's normalised output.
    fn layer(&self, sess: &mut Session, l: usize, y: &[u64]) -> Result<Vec<u64>> {
        let c = &self.public.config;
        let (n, d, heads) = (self.public.seq_len, c.hidden_size, c.num_attention_heads);
        let dh = d / heads;
        let tag = |name: &str| format!("layer{l:02}/{name}");
        // [h | Q | K | V]: the residual branch and the fused projections.
        let hqkv = sess.scope(&tag("linear_qkv"), |s| {
            self.linear(s, l, Weights::Qkv, y, n)
        })?;
        let (h, qkv) = split_columns(&hqkv, n, d);
        // Q, K, V of head hd: columns [hd·dh, (hd+1)·dh) of each third.
        let head_cols = |part: usize, hd: usize| -> Result<RingMatrix> {
            let data = (0..n)
                .flat_map(|t| {
                    let at = t * 3 * d + part * d + hd * dh;
                    qkv[at..at + dh].iter().copied()
                })
                .collect();
            matrix(n, dh, data)
        };
        let mut q = Vec::with_capacity(heads);
        let mut kt = Vec::with_capacity(heads);
        let mut v = Vec::with_capacity(heads);
        for hd in 0..heads {
            q.push(head_cols(0, hd)?);
            kt.push(head_cols(1, hd)?.transpose());
            v.push(head_cols(2, hd)?);
        }
        let scores = sess.scope(&tag("attention/qk"), |s| -> Result<Vec<u64>> {
            let pairs: Vec<_> = q.iter().zip(&kt).collect();
            self.truncated_products(s, &pairs, LIN.frac_bits())
        })?;
        // Softmax up to its normalisation: the exps E and each row's reciprocal r; P·V is
        // computed as diag(r)·(E·V), per head, which scales 64 values per row instead of 128.
        let (exps, recips) = sess.scope(&tag("attention/softmax"), |s| {
            let set = &self.public.approx;
            let mask: Option<Vec<bool>> = self
                .mask
                .map(|m| (0..heads * n * n).map(|i| m[i % n]).collect());
            let bps = self.is_server().then(|| exp_breakpoints(set, l));
            functions::softmax_unnormalized(
                s,
                set,
                l,
                heads * n,
                n,
                &scores,
                bps.as_deref(),
                mask.as_deref(),
            )
        })?;
        let ev = sess.scope(&tag("attention/pv"), |s| -> Result<Vec<RingMatrix>> {
            let e: Vec<RingMatrix> = exps
                .chunks_exact(n * n)
                .map(|eh| matrix(n, n, eh.to_vec()))
                .collect::<Result<_>>()?;
            let pairs: Vec<_> = e.iter().zip(&v).collect();
            self.truncated_products(s, &pairs, LIN.frac_bits())?
                .chunks_exact(n * dh)
                .map(|oh| matrix(n, dh, oh.to_vec()))
                .collect()
        })?;
        let ctx = sess.scope(&tag("attention/normalize"), |s| -> Result<Vec<u64>> {
            let pairs: Vec<_> = recips.chunks_exact(n).zip(ev.iter()).collect();
            let r_frac = self.public.approx.plan.softmax.r_frac;
            let window = Window::new(self.product_params, r_frac, R.bits())?;
            let prods = row_products::row_scalar_products(
                &mut s.ch,
                self.product_params,
                self.products,
                &pairs,
                window,
            )?;
            // Back to token-major n × d (head hd in columns hd·dh..).
            let mut ctx = vec![0u64; n * d];
            for (hd, ph) in prods.iter().enumerate() {
                for t in 0..n {
                    ctx[t * d + hd * dh..t * d + (hd + 1) * dh].copy_from_slice(ph.row(t));
                }
            }
            self.round_products(s, ctx, window)
        })?;
        let mut a = sess.scope(&tag("linear_o"), |s| self.linear(s, l, Weights::O, &ctx, n))?;
        add_residual(&mut a, &h);
        let y1 = sess.scope(&tag("layernorm"), |s| self.layernorm(s, &a))?;
        let aup = sess.scope(&tag("linear_h1"), |s| {
            self.linear(s, l, Weights::H1, &y1, n)
        })?;
        let (a_res, up) = split_columns(&aup, n, d);
        let act = sess.scope(&tag("gelu"), |s| {
            let (spec, bps) = gelu_spec(&self.public.approx, l);
            let bps = self.is_server().then_some(bps);
            functions::gelu(s, &spec, bps, &up)
        })?;
        let mut out = sess.scope(&tag("linear_h2"), |s| {
            self.linear(s, l, Weights::H2, &act, n)
        })?;
        add_residual(&mut out, &a_res);
        sess.scope(&tag("layernorm"), |s| self.layernorm(s, &out))
    }

    fn is_server(&self) -> bool {
        matches!(self.role, Role::Server { .. })
    }

    /// LayerNorm's normalisation of rows of the hidden size; its two row products run on HE
    /// with the attention products' keys when those pack outputs, else on COTs.
    fn layernorm(&self, sess: &mut Session, x: &[u64]) -> Result<Vec<u64>> {
        let (d, eps) = (
            self.public.config.hidden_size,
            self.public.config.layer_norm_eps,
        );
        match self.public.attention {
            AttentionMode::Packed => {
                let mut he = HeRowProducts::new(self.product_params, self.products);
                functions::layernorm_with(sess, x, d, eps, &mut he)
            }
            AttentionMode::Unpacked => functions::layernorm_with(sess, x, d, eps, &mut OtProducts),
        }
    }

    /// Shares of secret × secret products through a truncating `window`, up-cast to Z_2^64.
    /// Each of the two cross terms comes out ½ unit low on average (its mask's carry and the
    /// response's rounding); the server adds one unit, so that the shares sum to X·Y / 2^lo
    /// rounded to the nearest on average, as the mirror's products are.
    fn round_products(
        &self,
        sess: &mut Session,
        mut y: Vec<u64>,
        window: Window,
    ) -> Result<Vec<u64>> {
        if self.is_server() {
            y.iter_mut()
                .for_each(|v| *v = window.reduce(v.wrapping_add(1)));
        }
        upcast_window(sess, &y, window)
    }

    /// Secret × secret products truncated by `shift` (their responses reveal bits
    /// [shift, 64) only), concatenated, up-cast back to Z_2^64: ⌊X·Y / 2^shift⌋ within 3 units.
    fn truncated_products(
        &self,
        sess: &mut Session,
        pairs: &[(&RingMatrix, &RingMatrix)],
        shift: u32,
    ) -> Result<Vec<u64>> {
        let window = Window::new(self.product_params, shift, R.bits())?;
        let prods = secret_products_window(
            &mut sess.ch,
            self.product_params,
            self.products,
            pairs,
            window,
        )?;
        let flat: Vec<u64> = prods.iter().flat_map(|p| p.data().to_vec()).collect();
        self.round_products(sess, flat, window)
    }

    /// Per-token logits, the client's mask, the sum over tokens revealed to the client.
    fn head(&self, sess: &mut Session, h: &[u64], n: usize) -> Result<Vec<u64>> {
        let d = self.public.config.hidden_size;
        let classes = self.public.classes;
        let x = matrix(n, d, h.to_vec())?;
        let z = match &self.role {
            Role::Server { sk, model } => {
                let mut z = cop::server_online(&mut sess.ch, self.params, sk, &model.head_w, &x)?;
                add_bias(&mut z, &model.head_b, Window::full(self.params));
                z
            }
            Role::Client { client } => {
                let enc = client.head.open(self.params)?;
                cop::client_online(&mut sess.ch, self.params, self.products.peer_pk, &enc, &x)?
            }
        };
        // The mask is the client's input: its bit shares are the mask, the server's are 0.
        let bits: Vec<bool> = match self.mask {
            Some(mask) => (0..n * classes).map(|i| mask[i / classes]).collect(),
            None => vec![false; n * classes],
        };
        let masked = mux(sess, &bits, z.data(), R)?;
        let mut sums = vec![0u64; classes];
        for (i, &v) in masked.iter().enumerate() {
            sums[i % classes] = R.add(sums[i % classes], v);
        }
        match sess.party {
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
}

/// Adds the bias (36 fraction bits) to the server's share of a product revealed through
/// `window`, rounded into it.
fn add_bias(y: &mut RingMatrix, b: &[u64], window: Window) {
    let cols = y.cols();
    for row in y.data_mut().chunks_exact_mut(cols) {
        for (v, &bb) in row.iter_mut().zip(b) {
            *v = window.reduce(v.wrapping_add(window.local_share(bb)));
        }
    }
}

/// Splits rows of `first + rest` columns into (the first `first` columns, the rest).
fn split_columns(x: &[u64], rows: usize, first: usize) -> (Vec<u64>, Vec<u64>) {
    let cols = x.len() / rows;
    let mut a = Vec::with_capacity(rows * first);
    let mut b = Vec::with_capacity(rows * (cols - first));
    for row in x.chunks_exact(cols) {
        a.extend_from_slice(&row[..first]);
        b.extend_from_slice(&row[first..]);
    }
    (a, b)
}

fn add_residual(x: &mut [u64], r: &[u64]) {
    for (v, &rr) in x.iter_mut().zip(r) {
        *v = R.add(*v, rr);
    }
}

/// Where a model's encrypted weights are cached by default.
pub fn default_cache_dir(model: &str) -> PathBuf {
    PathBuf::from("target/bench-cache/secure").join(model)
}
