//! A secure linear layer Y = X·W + b: the server holds W and b in the clear, X is shared, and
//! the product runs on Nimbus's client-side outer product ([`he_linear::cop`]): the server
//! encrypted W once (setup), the client caches Enc(W), and online the client multiplies its
//! share into the cached ciphertexts and returns them, masked, re-randomized and flooded.
//!
//! Roles are types: [`ServerLinear`] holds the weights, [`ClientLinear`] the cached
//! encryption; each has its own `setup` and `online`.
//!
//! Online, per call on X of k×m and W of m×n (labels are the caller's):
//! 1. client → server: the COP responses ([`cop::online_bytes`] bytes, one flight;
//!    how many depends on the layer's row packing, [`Packing`], chosen by the server),
//!    revealing only the bits the [`Rescale`] keeps (bits [18, 64) for a truncated layer);
//! 2. the server adds its bias (36 fraction bits) rounded into the window;
//! 3. [`Rescale::Truncate`]: a known-MSB up-cast of the window shares to Z_2^64 (2 flights,
//!    19 bits per element: [`crate::cast::upcast_cost`]).
//!
//! Cost: [`linear_cost`] (exact). Mirror: [`linear_mirror`], ⌊(X·W + b) / 2^18⌋ with wrapping
//! products; the secure result is within 2 units of it (the windows' roundings).
use crate::cast::{upcast_cost, upcast_window, LINEAR};
use crate::keys::HeKeys;
use crate::tensor::SharedTensor;
use he_linear::cop;
pub use he_linear::layout::{CopLayout, Packing};
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::rlwe::{PublicKey, SecretKey};
use he_linear::weight_store::CachedLayer;
use mpc_core::{Channel, Error, FixedPoint, Result, Ring, Seed};
use ot_nonlinear::mpc::{Cost, Session, Side};
use std::path::Path;
use std::sync::OnceLock;

/// What a linear layer does with its 36-fraction-bit products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescale {
    /// Truncate by 18 (the responses reveal bits [18, 64) only) and up-cast back to Z_2^64:
    /// the output has 18 fraction bits.
    Truncate,
    /// Keep all 64 bits: the output has 36 fraction bits (a head whose outputs are summed).
    Keep,
}

impl Rescale {
    /// The response window of a layer with this rescaling.
    pub(crate) fn window(self, params: &HeParams) -> Result<Window> {
        match self {
            Rescale::Truncate => Window::new(params, LINEAR.frac_bits(), Ring::R64.bits()),
            Rescale::Keep => Ok(Window::full(params)),
        }
    }

    /// The output format of a layer with this rescaling.
    pub(crate) fn format(self) -> Result<FixedPoint> {
        match self {
            Rescale::Truncate => Ok(LINEAR),
            Rescale::Keep => FixedPoint::new(Ring::R64, 2 * LINEAR.frac_bits()),
        }
    }
}

/// Bytes of the length prefix of a framed message.
pub(crate) const FRAME_PREFIX: u64 = 8;

/// Exact cost of one linear layer on X of k×m and W of m×n, packed as `layout`.
pub fn linear_cost(
    params: &HeParams,
    layout: &CopLayout,
    k: usize,
    rescale: Rescale,
) -> Result<Cost> {
    let (n, window) = (layout.n, rescale.window(params)?);
    let cop = Cost {
        server_bytes: 0,
        client_bytes: cop::online_bytes(params, layout, k, window) as u64 + FRAME_PREFIX,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    };
    Ok(match rescale {
        Rescale::Truncate => cop.then(upcast_cost(k * n, window)?),
        Rescale::Keep => cop,
    })
}

/// The plaintext mirror: ⌊(X·W + b) / 2^18⌋ ([`Rescale::Truncate`]) or X·W + b ([`Rescale::Keep`])
/// in Z_2^64, X of `rows` rows, W of `m × n` row-major, b at 36 fraction bits.
pub fn linear_mirror(x: &[u64], w: &[u64], b: &[u64], rows: usize, rescale: Rescale) -> Vec<u64> {
    let n = b.len();
    let m = w.len() / n.max(1);
    let mut out = ring_matmul(x, w, rows, m, n);
    for row in out.chunks_exact_mut(n) {
        for (v, &bb) in row.iter_mut().zip(b) {
            let s = v.wrapping_add(bb);
            *v = match rescale {
                Rescale::Truncate => ((s as i64) >> LINEAR.frac_bits()) as u64,
                Rescale::Keep => s,
            };
        }
    }
    out
}

/// `A · B` in Z_2^64 (wrapping), `A` is `n × k`, `B` is `k × m`, both row-major.
///
/// When every signed entry fits 32 bits (the usual case at 18 fraction bits) the products are
/// 32 × 32 → 64-bit signed multiplies, which equal the ring products exactly and vectorise
/// (AVX2 `vpmuldq`, chosen at run time); otherwise full 64-bit wrapping products.
pub fn ring_matmul(a: &[u64], b: &[u64], n: usize, k: usize, m: usize) -> Vec<u64> {
    let fits = |v: &[u64]| v.iter().all(|&x| i32::try_from(x as i64).is_ok());
    let mut out = vec![0u64; n * m];
    if fits(a) && fits(b) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { matmul_small_avx2(a, b, k, m, &mut out) };
            return out;
        }
        matmul_small(a, b, k, m, &mut out);
    } else {
        for (orow, arow) in out.chunks_exact_mut(m).zip(a.chunks_exact(k)) {
            for (&x, brow) in arow.iter().zip(b.chunks_exact(m)) {
                for (o, &y) in orow.iter_mut().zip(brow) {
                    *o = o.wrapping_add(x.wrapping_mul(y));
                }
            }
        }
    }
    out
}

/// [`ring_matmul`] for entries that fit 32 signed bits, accumulating into `out`.
#[inline(always)]
fn matmul_small(a: &[u64], b: &[u64], k: usize, m: usize, out: &mut [u64]) {
    for (orow, arow) in out.chunks_exact_mut(m).zip(a.chunks_exact(k)) {
        for (&x, brow) in arow.iter().zip(b.chunks_exact(m)) {
            let x = x as i32 as i64;
            for (o, &y) in orow.iter_mut().zip(brow) {
                *o = o.wrapping_add(x.wrapping_mul(y as i32 as i64) as u64);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matmul_small_avx2(a: &[u64], b: &[u64], k: usize, m: usize, out: &mut [u64]) {
    matmul_small(a, b, k, m, out)
}

/// The server's half of a linear layer: W (m×n, 18 fraction bits) and b (n, 36 fraction bits).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerLinear {
    w: RingMatrix,
    bias: Vec<u64>,
    packing: Packing,
    /// The layer's cache digest ([`cop::layer_digest`]), known after setup.
    digest: OnceLock<[u8; 32]>,
}

impl std::fmt::Debug for ServerLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The weights stay out of logs.
        f.debug_struct("ServerLinear")
            .field("inputs", &self.w.rows())
            .field("outputs", &self.w.cols())
            .field("packing", &self.packing)
            .finish_non_exhaustive()
    }
}

impl ServerLinear {
    /// A layer from its weights and one bias per output column, its rows packed
    /// [`Packing::Compact`] (the smallest setup; see [`ServerLinear::with_packing`]).
    pub fn new(w: RingMatrix, bias: Vec<u64>) -> Result<ServerLinear> {
        if bias.len() != w.cols() {
            return Err(Error::shape(
                "biases (one per output)",
                bias.len(),
                w.cols(),
            ));
        }
        Ok(ServerLinear {
            w,
            bias,
            packing: Packing::default(),
            digest: OnceLock::new(),
        })
    }

    /// The same layer with its rows packed as `packing` (before setup).
    pub fn with_packing(self, packing: Packing) -> ServerLinear {
        ServerLinear {
            packing,
            digest: OnceLock::new(),
            ..self
        }
    }

    /// The digest naming this layer's encrypted weights (parameters, packing, server key, W):
    /// the same as the client's cache id; an error before setup.
    pub fn digest(&self) -> Result<&[u8; 32]> {
        self.digest
            .get()
            .ok_or_else(|| Error::InvalidArgument("a linear layer used before its setup".into()))
    }

    /// How the encrypted rows are packed under `params`.
    pub fn layout(&self, params: &HeParams) -> Result<CopLayout> {
        self.layout_with(params, self.packing)
    }

    /// How the rows would be packed under `params` with `packing` (to compare costs).
    pub fn layout_with(&self, params: &HeParams, packing: Packing) -> Result<CopLayout> {
        CopLayout::choose(params, self.w.dims(), packing)
    }

    /// The weights.
    pub fn weights(&self) -> &RingMatrix {
        &self.w
    }

    /// The biases (36 fraction bits).
    pub fn bias(&self) -> &[u64] {
        &self.bias
    }

    /// Sends the encrypted weights (or nothing, if the client already caches them) against
    /// [`ClientLinear::setup`]; `seed` (fresh, secret) seeds the encryptions.
    pub fn setup(
        &self,
        ch: &mut Channel,
        params: &HeParams,
        sk: &SecretKey,
        pk: &PublicKey,
        seed: Seed,
    ) -> Result<()> {
        let layout = self.layout(params)?;
        let digest = cop::layer_digest(params, sk, pk, &layout, &self.w);
        if self.digest.get().is_some_and(|d| *d != digest) {
            return Err(Error::InvalidArgument(
                "a linear layer set up twice under different keys".into(),
            ));
        }
        let _ = self.digest.set(digest);
        cop::server_setup(ch, params, sk, pk, &layout, &self.w, seed)
    }

    /// The server's share of the layer's output on its share of X, against
    /// [`ClientLinear::online`].
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
    ) -> Result<SharedTensor> {
        check_input(x, self.w.rows())?;
        let window = rescale.window(he.params)?;
        let xs = RingMatrix::new(x.rows(), x.cols(), x.share().to_vec())?;
        let mut y = cop::server_online(
            &mut sess.ch,
            he.params,
            he.keys.my_sk,
            &self.layout(he.params)?,
            &self.w,
            &xs,
            window,
        )?;
        let cols = y.cols();
        for row in y.data_mut().chunks_exact_mut(cols) {
            for (v, &b) in row.iter_mut().zip(&self.bias) {
                *v = window.reduce(v.wrapping_add(window.local_share(b)));
            }
        }
        finish(sess, y, window, rescale)
    }
}

/// The client's half of a linear layer: the server's encrypted weights in its cache.
#[derive(Debug)]
pub struct ClientLinear {
    cached: CachedLayer,
}

impl ClientLinear {
    /// Receives the encrypted weights against [`ServerLinear::setup`] (or reuses the entry
    /// `name` in `cache_dir`).
    pub fn setup(
        ch: &mut Channel,
        params: &HeParams,
        cache_dir: &Path,
        name: &str,
    ) -> Result<ClientLinear> {
        Ok(ClientLinear {
            cached: cop::client_setup(ch, params, cache_dir, name)?,
        })
    }

    /// The cache file holding the encrypted weights.
    pub fn cache_file(&self) -> &Path {
        &self.cached.path
    }

    /// The digest naming the server's encrypted weights (parameters, packing, server key, W),
    /// as the server announced it at setup.
    pub fn digest(&self) -> &[u8; 32] {
        &self.cached.digest
    }

    pub(crate) fn cached(&self) -> &CachedLayer {
        &self.cached
    }

    /// The client's share of the layer's output on its share of X, against
    /// [`ServerLinear::online`].
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
    ) -> Result<SharedTensor> {
        let enc = self.cached.open(he.params)?;
        check_input(x, enc.layout().m)?;
        let window = rescale.window(he.params)?;
        let xc = RingMatrix::new(x.rows(), x.cols(), x.share().to_vec())?;
        let seed = sess.fresh_seed();
        let y = cop::client_online(
            &mut sess.ch,
            he.params,
            he.keys.peer_pk,
            &enc,
            &xc,
            window,
            seed,
        )?;
        finish(sess, y, window, rescale)
    }
}

pub(crate) fn check_input(x: &SharedTensor, inputs: usize) -> Result<()> {
    if x.cols() != inputs {
        return Err(Error::shape("linear layer input columns", x.cols(), inputs));
    }
    if x.format() != LINEAR {
        return Err(crate::tensor::format_mismatch(
            "linear layer input",
            x.format(),
            LINEAR,
        ));
    }
    Ok(())
}

/// The shares of a layer's output from its window shares (up-cast when truncated).
pub(crate) fn finish(
    sess: &mut Session,
    y: RingMatrix,
    window: Window,
    rescale: Rescale,
) -> Result<SharedTensor> {
    let (rows, cols) = (y.rows(), y.cols());
    let data = match rescale {
        Rescale::Truncate => upcast_window(sess, y.data(), window)?,
        Rescale::Keep => y.data().to_vec(),
    };
    SharedTensor::matrix(rows, cols, rescale.format()?, data)
}
