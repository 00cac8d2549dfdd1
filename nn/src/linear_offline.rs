//! The linear layer Y = X·W + b of [`crate::linear`] split into an input-independent offline
//! phase and an online phase with no HE.
//!
//! **Offline** (before the input exists), per layer and inference, on k tokens: the client
//! draws R, uniform over Z_2^64 (k × m), and runs the COP on R as its share (the server's share
//! is zero): one flight client → server, the responses of [`cop::client_online_window`]
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
use crate::cast::upcast_cost;
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
use ot_nonlinear::mpc::{Cost, Session, Side};

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
        client_bytes: cop::online_bytes_window(params, layout, k, window) as u64 + FRAME_PREFIX,
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
    let send = Cost {
        server_bytes: 0,
        client_bytes: (TAG + 8 * k * m) as u64 + FRAME_PREFIX,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    };
    Ok(match rescale {
        Rescale::Truncate => send.then(upcast_cost(k * n, window)?),
        Rescale::Keep => send,
    })
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
        let s =
            cop::server_open_window(&mut sess.ch, he.params, he.keys.my_sk, &layout, k, window)?;
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
        let (m, n) = (self.weights().rows(), self.weights().cols());
        check_input(x, m)?;
        let (k, window) = (x.rows(), rescale.window(he.params)?);
        let expect = TAG + 8 * k * m;
        let msg = sess.ch.recv_bytes_framed(expect)?;
        if msg.len() != expect {
            return Err(Error::Malformed(format!(
                "prepared linear message of {} bytes, expected {expect}",
                msg.len()
            )));
        }
        if msg[..TAG] != store.tag(name) {
            return Err(Error::InvalidArgument(format!(
                "the client used other offline material than the server's `{name}` of session \
                 {}: refused",
                store.session()
            )));
        }
        let s = store.take(name, self.digest()?, &meta(k, m, n, window), k * n)?;
        // X_s + D = X − R, uniform: a full 64-bit product.
        let xr: Vec<u64> = x
            .share()
            .iter()
            .zip(msg[TAG..].chunks_exact(8))
            .map(|(&a, d)| a.wrapping_add(u64::from_le_bytes(d.try_into().expect("8 bytes"))))
            .collect();
        let local = ring_matmul(&xr, self.weights().data(), k, m, n);
        let mut y = RingMatrix::zeros(k, n);
        for (i, ((dst, &v), &s)) in y.data_mut().iter_mut().zip(&local).zip(&s).enumerate() {
            let b = window.local_share(self.bias()[i % n]);
            *dst = window.reduce(window.local_share(v).wrapping_add(s).wrapping_add(b));
        }
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
        let enc = self.cached().open(he.params)?;
        let layout = *enc.layout();
        let window = rescale.window(he.params)?;
        let seed = sess.fresh_seed();
        let r = AesPrg::new(seed.derive(0)).u64s(k * layout.m);
        let rm = RingMatrix::new(k, layout.m, r)?;
        let c = cop::client_online_window(
            &mut sess.ch,
            he.params,
            he.keys.peer_pk,
            &enc,
            &rm,
            window,
            seed.derive(1),
        )?;
        let mut data = rm.data().to_vec();
        data.extend_from_slice(c.data());
        store.put(
            name,
            self.digest(),
            &meta(k, layout.m, layout.n, window),
            &data,
        )
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
        let layout = *self.cached().open(he.params)?.layout();
        let (m, n) = (layout.m, layout.n);
        check_input(x, m)?;
        let (k, window) = (x.rows(), rescale.window(he.params)?);
        let data = store.take(name, self.digest(), &meta(k, m, n, window), k * m + k * n)?;
        let (r, c) = data.split_at(k * m);
        let mut msg = Vec::with_capacity(TAG + 8 * k * m);
        msg.extend_from_slice(&store.tag(name));
        for (&xc, &r) in x.share().iter().zip(r) {
            msg.extend_from_slice(&xc.wrapping_sub(r).to_le_bytes());
        }
        sess.ch.send_bytes_framed(&msg)?;
        sess.ch.flush()?;
        finish(sess, RingMatrix::new(k, n, c.to_vec())?, window, rescale)
    }
}
