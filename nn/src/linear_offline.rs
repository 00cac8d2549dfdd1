//! The linear layer Y = X·W + b of [`crate::linear`] split into an input-independent offline
//! phase and an online phase with no HE.
//!
//! **Offline** (before the input exists), per layer and inference, on k tokens: the client
//! draws R, uniform over Z_2^64 (k × m), and runs the COP on R as its share (the server's share
//! is zero): one flight client → server, the responses of [`cop::client_online`]
//! (re-randomized, flooded, masked by the client's uniform output share, revealing only the
//! window the [`Rescale`] keeps). Both parties file their results in their
//! [`OfflineStore`]: the client R and its share C of the window of R·W, the server its share
//! S = window of R·W − C.
//!
//! **Online**, on the shared input X = X_s + X_c:
//! 1. client → server: the entry's tag (16 bytes) and D = X_c − R (8·k·m bytes), one flight;
//!    D is uniform to the server because R is uniform, secret and used once;
//! 2. the server computes (X_s + D)·W = (X − R)·W in plaintext, brings it into the window and
//!    adds S and its bias; the client's share is C: together ⌊(X·W + b)/2^lo⌋ within 3 units
//!    (three roundings instead of the single-phase two, since X·W = (X − R)·W + R·W in Z_2^64);
//! 3. [`Rescale::Truncate`]: the same known-MSB up-cast as the single-phase layer.
//!
//! Offline cost: [`linear_offline_cost`]; online cost: [`linear_online_cost`] (both exact).
//! Each entry is bound to the layer's cache digest (parameters, packing, server key, W), the
//! model and the session, and consumed by its first use ([`OfflineStore::take`]).
use crate::cast::{upcast_cost, upcast_cots};
use crate::keys::HeKeys;
use crate::linear::{
    check_input, finish, ring_matmul, ClientLinear, CopLayout, Rescale, ServerLinear, FRAME_PREFIX,
};
use crate::offline::OfflineStore;
use crate::tensor::SharedTensor;
use he_linear::cop;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use mpc_core::{AesPrg, Error, Result};
use ot_nonlinear::mpc::{Cost, CotDemand, Session, Side};

const TAG: usize = 16;

/// Exact cost of one layer's offline phase on k tokens (the COP on R).
pub fn linear_offline_cost(
    params: &HeParams,
    layout: &CopLayout,
    k: usize,
    rescale: Rescale,
) -> Result<Cost> {
    let window = rescale.window(params)?;
    Ok(Cost {
        server_bytes: 0,
        client_bytes: cop::online_bytes(params, layout, k, window) as u64 + FRAME_PREFIX,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    })
}

/// Exact online cost of a layer prepared offline, on X of k×m and W of m×n.
pub fn linear_online_cost(
    params: &HeParams,
    k: usize,
    m: usize,
    n: usize,
    rescale: Rescale,
) -> Result<Cost> {
    let window = rescale.window(params)?;
    let send = masked_send_cost(k * m);
    Ok(match rescale {
        Rescale::Truncate => send.then(upcast_cost(k * n, window)?),
        Rescale::Keep => send,
    })
}

/// COTs the online step of a prepared layer draws (k tokens, n outputs): its up-cast's.
pub fn linear_online_cots(
    params: &HeParams,
    k: usize,
    n: usize,
    rescale: Rescale,
) -> Result<CotDemand> {
    let window = rescale.window(params)?;
    Ok(match rescale {
        Rescale::Truncate => upcast_cots(k * n, window)?,
        Rescale::Keep => CotDemand::default(),
    })
}

/// Exact cost of the client's masked input D = X_c − R of `len` elements with its entry's tag
/// (one flight client → server).
pub(crate) fn masked_send_cost(len: usize) -> Cost {
    Cost {
        server_bytes: 0,
        client_bytes: (TAG + 8 * len) as u64 + FRAME_PREFIX,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    }
}

/// The server's receipt of the client's D = X_c − R (`len` elements) for entry `name`: refuses
/// a message of another length or tagged for other material.
fn recv_masked(
    sess: &mut Session,
    store: &OfflineStore,
    name: &str,
    len: usize,
) -> Result<Vec<u64>> {
    let expect = TAG + 8 * len;
    let msg = sess.ch.recv_bytes_framed(expect)?;
    if msg.len() != expect {
        return Err(Error::malformed(
            "prepared linear message",
            mpc_core::Dims::Bytes(msg.len()),
            mpc_core::Dims::Bytes(expect),
        ));
    }
    if msg[..TAG] != store.tag(name) {
        return Err(Error::InvalidArgument(format!(
            "the peer used other offline material than this party's `{name}` of session \
             {}: refused",
            store.session()
        )));
    }
    Ok(msg[TAG..]
        .chunks_exact(8)
        .map(|d| u64::from_le_bytes(d.try_into().expect("8 bytes")))
        .collect())
}

/// The server's X_s + D = X − R (uniform) from its share `x_s` and the client's D for entry
/// `name` ([`recv_masked`]).
pub(crate) fn recv_unmasked(
    sess: &mut Session,
    store: &OfflineStore,
    name: &str,
    x_s: &[u64],
) -> Result<Vec<u64>> {
    let d = recv_masked(sess, store, name, x_s.len())?;
    Ok(x_s
        .iter()
        .zip(&d)
        .map(|(&a, &d)| a.wrapping_add(d))
        .collect())
}

/// The client's D = X_c − R for entry `name`, tagged (one flight).
pub(crate) fn send_masked(
    sess: &mut Session,
    store: &OfflineStore,
    name: &str,
    x_c: &[u64],
    r: &[u64],
) -> Result<()> {
    let mut msg = Vec::with_capacity(TAG + 8 * r.len());
    msg.extend_from_slice(&store.tag(name));
    for (&xc, &r) in x_c.iter().zip(r) {
        msg.extend_from_slice(&xc.wrapping_sub(r).to_le_bytes());
    }
    sess.ch.send_bytes_framed(&msg)?;
    sess.ch.flush()
}

/// The metadata both parties check an entry against: k, m, n and the window.
fn meta(k: usize, m: usize, n: usize, window: Window) -> [u64; 5] {
    [
        k as u64,
        m as u64,
        n as u64,
        window.lo() as u64,
        window.bits() as u64,
    ]
}

/// The server's window share of a prepared layer's output: (X − R)·W + b (X − R of k × m,
/// row-major, W of m × n), a full 64-bit plaintext product brought into the window, plus its
/// offline share `s` of the window of R·W (k × n).
pub(crate) fn prepared_share(
    xr: &[u64],
    w: &RingMatrix,
    bias: &[u64],
    s: &[u64],
    window: Window,
) -> Result<RingMatrix> {
    let (m, n) = (w.rows(), w.cols());
    let k = xr.len() / m;
    let local = ring_matmul(xr, w.data(), k, m, n);
    let mut y = RingMatrix::zeros(k, n);
    for (i, ((dst, &v), &s)) in y.data_mut().iter_mut().zip(&local).zip(s).enumerate() {
        let b = window.local_share(bias[i % n]);
        *dst = window.reduce(window.local_share(v).wrapping_add(s).wrapping_add(b));
    }
    Ok(y)
}

impl ServerLinear {
    /// The offline phase for one inference on `k` tokens, against
    /// [`ClientLinear::offline`]: files the server's share of R·W as entry `name` of `store`.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let digest = *self.digest()?;
        let (layout, window) = (self.layout(he.params)?, rescale.window(he.params)?);
        let s = cop::server_open(&mut sess.ch, he.params, he.keys.my_sk, &layout, k, window)?;
        store.put(
            name,
            &digest,
            &meta(k, layout.m, layout.n, window),
            s.data(),
        )
    }

    /// The server's share of the layer's output on its share of X, using (and consuming)
    /// entry `name` of `store`, against [`ClientLinear::online_prepared`]. No HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let m = self.weights().rows();
        check_input(x, m)?;
        let xr = recv_unmasked(sess, store, name, x.share())?;
        self.apply_prepared(sess, he, &xr, x.rows(), rescale, store, name)
    }

    /// The server's share of the layer's output from X − R (k × m, row-major) and the server's
    /// offline share of R·W in entry `name` (consumed): (X − R)·W in plaintext, a full 64-bit
    /// product, brought into the window with that share and the bias.
    pub(crate) fn apply_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        xr: &[u64],
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let (m, n) = (self.weights().rows(), self.weights().cols());
        let window = rescale.window(he.params)?;
        let s = store.take(name, self.digest()?, &meta(k, m, n, window), k * n)?;
        let y = prepared_share(xr, self.weights(), self.bias(), &s, window)?;
        finish(sess, y, window, rescale)
    }
}

impl ClientLinear {
    /// The offline phase for one inference on `k` tokens, against [`ServerLinear::offline`]:
    /// draws R (from the session's randomness), runs the COP on it and files R and the
    /// client's share of R·W as entry `name` of `store`.
    pub fn offline(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        k: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<()> {
        let m = self.cached().open(he.params)?.layout().m;
        let seed = sess.fresh_seed();
        let r = AesPrg::new(seed.derive(0)).u64s(k * m);
        let rm = RingMatrix::new(k, m, r)?;
        self.offline_on(
            sess,
            he,
            &rm,
            rm.data(),
            rescale,
            store,
            name,
            seed.derive(1),
        )
    }

    /// The COP on the rows `r` (k × m) of a uniform, secret R; files `keep` (what the client
    /// masks its online input with: R itself, or the tensor R's rows were computed from) and
    /// the client's share of R·W as entry `name`; `seed` seeds the COP.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn offline_on(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        r: &RingMatrix,
        keep: &[u64],
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
        seed: mpc_core::Seed,
    ) -> Result<()> {
        let enc = self.cached().open(he.params)?;
        let layout = *enc.layout();
        let window = rescale.window(he.params)?;
        let c = cop::client_online(
            &mut sess.ch,
            he.params,
            he.keys.peer_pk,
            &enc,
            r,
            window,
            seed,
        )?;
        let mut data = keep.to_vec();
        data.extend_from_slice(c.data());
        store.put(
            name,
            self.digest(),
            &meta(r.rows(), layout.m, layout.n, window),
            &data,
        )
    }

    /// Entry `name` for k tokens (consumed): the `keep_len` words filed as `keep` by
    /// [`Self::offline_on`] and the client's share of R·W (k × n).
    pub(crate) fn take_prepared(
        &self,
        he: &HeKeys<'_>,
        k: usize,
        keep_len: usize,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<(Vec<u64>, RingMatrix)> {
        let layout = *self.cached().open(he.params)?.layout();
        let window = rescale.window(he.params)?;
        let meta = meta(k, layout.m, layout.n, window);
        let mut data = store.take(name, self.digest(), &meta, keep_len + k * layout.n)?;
        let c = data.split_off(keep_len);
        Ok((data, RingMatrix::new(k, layout.n, c)?))
    }

    /// The client's share of the layer's output on its share of X, using (and consuming)
    /// entry `name` of `store`, against [`ServerLinear::online_prepared`]: one message, no HE.
    pub fn online_prepared(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
        store: &OfflineStore,
        name: &str,
    ) -> Result<SharedTensor> {
        let m = self.cached().open(he.params)?.layout().m;
        check_input(x, m)?;
        let k = x.rows();
        let (r, c) = self.take_prepared(he, k, k * m, rescale, store, name)?;
        send_masked(sess, store, name, x.share(), &r)?;
        finish(sess, c, rescale.window(he.params)?, rescale)
    }
}
