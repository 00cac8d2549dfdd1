//! A secure linear layer Y = X·W + b on the server-side inner product ([`he_linear::sip`]):
//! the client encrypts its share X_c under its own key, the server multiplies the ciphertexts
//! by its plaintext W (encoded once, kept in the NTT domain in its memory), seals each output
//! with its fresh mask (re-randomized, flooded, window-revealing: [`he_linear::response`]) and
//! returns it; the client opens X_c·W − R, the server keeps R + X_s·W + b. No encrypted weight
//! ever leaves the server: the client caches nothing.
//!
//! Why next to COP ([`crate::linear`]): a decoder's step multiplies one row. COP's online work
//! is the client's pass over one cached ciphertext per weight row (the whole model's encrypted
//! weights, ≈ 40 GB for SmolLM2-135M, read per token), SIP's is the server's pass over
//! ⌈m/m_w⌉·⌈n/n_w⌉ plaintext blocks, with a few input ciphertexts and ⌈n/n_w⌉ responses on the
//! wire. The block shape is chosen once for one row ([`SipPlan::new`] with k = 1, hence
//! k_w = 1); k rows (a prompt) run the same blocks row by row in the same two flights, so one
//! encoding of W serves every call.
//!
//! Online, per call on X of k×m and W of m×n:
//! 1. client → server: k·⌈m/m_w⌉ seeded ciphertexts of X_c (one flight);
//! 2. server → client: k·⌈n/n_w⌉ responses revealing bits [18, 64) ([`Rescale::Truncate`]) or
//!    all 64 ([`Rescale::Keep`]) of each output;
//! 3. [`Rescale::Truncate`]: the known-MSB up-cast of the window shares (2 flights).
//!
//! Cost: [`sip_linear_cost`] (exact). Mirror: [`crate::linear::linear_mirror`]; the secure
//! result is within 2 units of it (the server's rounded X_s·W + b, the response's rounding).
use crate::keys::HeKeys;
use crate::linear::{finish, ring_matmul, Rescale};
use crate::tensor::SharedTensor;
use he_linear::matrix::{ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::poly::RnsPoly;
use he_linear::response::Window;
use he_linear::sip::{self, SipPlan};
use mpc_core::{Error, Result, Ring};
use ot_nonlinear::mpc::trunc::{trunc_cots, TruncKind};
use ot_nonlinear::mpc::{Cost, CotDemand, Session, Side};

/// The block shape of a call on `k` rows: the one-row plan's blocks, repeated per row.
fn plan_for(one_row: &SipPlan, params: &HeParams, k: usize, window: Window) -> Result<SipPlan> {
    if k == 0 || (k * one_row.shape.n) as u64 > params.max_revealed() {
        return Err(Error::out_of_range(
            format!(
                "revealed coefficients of a SIP linear layer on {k} rows of {} outputs",
                one_row.shape.n
            ),
            k * one_row.shape.n,
            mpc_core::Dims::within(1, params.max_revealed() as usize),
        ));
    }
    let shape = ProductShape { k, ..one_row.shape };
    Ok(SipPlan { shape, ..*one_row }.with_window(window))
}

/// The one-row plan of an m×n layer (unpacked parameters: no Galois keys needed).
fn one_row_plan(params: &HeParams, m: usize, n: usize) -> Result<SipPlan> {
    if params.pack_levels() > 0 {
        return Err(Error::InvalidArgument(
            "a SIP linear layer runs on unpacked parameters".into(),
        ));
    }
    let plan = SipPlan::new(params, ProductShape { k: 1, m, n })?;
    debug_assert_eq!(plan.kw, 1);
    Ok(plan)
}

/// Exact cost of one SIP linear layer on X of k×m and W of m×n.
pub fn sip_linear_cost(
    params: &HeParams,
    k: usize,
    m: usize,
    n: usize,
    rescale: Rescale,
) -> Result<Cost> {
    let window = rescale.window(params)?;
    let flights = sip_flights(params, k, m, n, window)?;
    Ok(match rescale {
        Rescale::Truncate => flights.then(crate::cast::upcast_cost(k * n, window)?),
        Rescale::Keep => flights,
    })
}

/// The two HE flights of the SIP on k rows (the client's ciphertexts, the server's responses).
pub(crate) fn sip_flights(
    params: &HeParams,
    k: usize,
    m: usize,
    n: usize,
    window: Window,
) -> Result<Cost> {
    let plan = plan_for(&one_row_plan(params, m, n)?, params, k, window)?;
    Ok(Cost {
        server_bytes: 0,
        client_bytes: plan.input_bytes(params) as u64,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    }
    .then(Cost {
        server_bytes: plan.output_bytes(params) as u64,
        client_bytes: 0,
        rounds: 1,
        first: Side::Server,
        last: Side::Server,
    }))
}

/// COTs the up-cast of [`Rescale::Truncate`] draws on k rows of n (reserve them beforehand for
/// a cost without COT extension traffic).
pub fn sip_linear_cots(
    params: &HeParams,
    k: usize,
    n: usize,
    rescale: Rescale,
) -> Result<CotDemand> {
    match rescale {
        Rescale::Truncate => {
            let window = rescale.window(params)?;
            trunc_cots(
                k * n,
                Ring::new(window.bits())?,
                Ring::R64,
                0,
                TruncKind::KnownMsb,
            )
        }
        Rescale::Keep => Ok(CotDemand::default()),
    }
}

/// Ring products (plaintext block × ciphertext part) the server computes per row: its work.
pub fn sip_linear_products(params: &HeParams, m: usize, n: usize) -> Result<usize> {
    let p = one_row_plan(params, m, n)?;
    Ok(m.div_ceil(p.mw) * n.div_ceil(p.nw))
}

/// The server's half: W (m×n, 18 fraction bits), b (n, 36 fraction bits) and W's blocks
/// encoded in the NTT domain.
pub struct ServerSipLinear {
    w: RingMatrix,
    bias: Vec<u64>,
    plan: SipPlan,
    plain: Vec<RnsPoly>,
    digest: [u8; 32],
}

impl std::fmt::Debug for ServerSipLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The weights stay out of logs.
        f.debug_struct("ServerSipLinear")
            .field("inputs", &self.w.rows())
            .field("outputs", &self.w.cols())
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl ServerSipLinear {
    /// Encodes W's blocks (input independent: done once, before any query).
    pub fn new(params: &HeParams, w: RingMatrix, bias: Vec<u64>) -> Result<ServerSipLinear> {
        if bias.len() != w.cols() {
            return Err(Error::shape(
                "biases (one per output)",
                bias.len(),
                w.cols(),
            ));
        }
        let plan = one_row_plan(params, w.rows(), w.cols())?;
        let plain = sip::encode_plain(params, &plan, &w)?;
        let mut h = blake3::Hasher::new();
        h.update(b"nn sip linear v1");
        h.update(&(w.rows() as u64).to_le_bytes());
        h.update(&(w.cols() as u64).to_le_bytes());
        h.update(bytemuck::cast_slice(w.data()));
        h.update(bytemuck::cast_slice(&bias));
        let digest = *h.finalize().as_bytes();
        Ok(ServerSipLinear {
            w,
            bias,
            plan,
            plain,
            digest,
        })
    }

    /// The weights.
    pub fn weights(&self) -> &RingMatrix {
        &self.w
    }

    /// The bias (36 fraction bits).
    pub fn bias(&self) -> &[u64] {
        &self.bias
    }

    /// A digest of W and b (names the layer's offline material in the server's store).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// W's blocks, encoded in the NTT domain.
    pub(crate) fn plain(&self) -> &[RnsPoly] {
        &self.plain
    }

    /// The plan of a call on `k` rows revealing `window`.
    pub(crate) fn plan_rows(&self, params: &HeParams, k: usize, window: Window) -> Result<SipPlan> {
        plan_for(&self.plan, params, k, window)
    }

    /// The server's share of the layer's output on its share of X, against
    /// [`ClientSipLinear::online`].
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
    ) -> Result<SharedTensor> {
        check_input(x, self.w.rows())?;
        let window = rescale.window(he.params)?;
        let plan = plan_for(&self.plan, he.params, x.rows(), window)?;
        let inputs = sip::recv_encrypted_input(&mut sess.ch, he.params, &plan)?;
        let seed = sess.fresh_seed();
        let mut y = sip::evaluate_and_respond(
            &mut sess.ch,
            he.params,
            he.keys.peer_pk,
            None,
            &plan,
            &inputs,
            &self.plain,
            seed,
        )?;
        let n = self.w.cols();
        let local = ring_matmul(x.share(), self.w.data(), x.rows(), self.w.rows(), n);
        for (row, lrow) in y.data_mut().chunks_exact_mut(n).zip(local.chunks_exact(n)) {
            for ((v, &l), &b) in row.iter_mut().zip(lrow).zip(&self.bias) {
                *v = window.reduce(v.wrapping_add(window.local_share(l.wrapping_add(b))));
            }
        }
        finish(sess, y, window, rescale)
    }
}

/// The client's half: nothing cached, only the output width.
#[derive(Clone, Copy, Debug)]
pub struct ClientSipLinear {
    plan: SipPlan,
}

impl ClientSipLinear {
    /// The client's half of an m×n layer (public shapes).
    pub fn new(params: &HeParams, m: usize, n: usize) -> Result<ClientSipLinear> {
        Ok(ClientSipLinear {
            plan: one_row_plan(params, m, n)?,
        })
    }

    /// (inputs m, outputs n).
    pub fn shape(&self) -> (usize, usize) {
        (self.plan.shape.m, self.plan.shape.n)
    }

    /// A digest of the layer's public shape (names its offline material in the client's
    /// store; the client does not know W).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"nn sip linear client v1");
        h.update(&(self.plan.shape.m as u64).to_le_bytes());
        h.update(&(self.plan.shape.n as u64).to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// The plan of a call on `k` rows revealing `window`.
    pub(crate) fn plan_rows(&self, params: &HeParams, k: usize, window: Window) -> Result<SipPlan> {
        plan_for(&self.plan, params, k, window)
    }

    /// The client's share of the layer's output on its share of X, against
    /// [`ServerSipLinear::online`].
    pub fn online(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        x: &SharedTensor,
        rescale: Rescale,
    ) -> Result<SharedTensor> {
        check_input(x, self.plan.shape.m)?;
        let window = rescale.window(he.params)?;
        let plan = plan_for(&self.plan, he.params, x.rows(), window)?;
        let xc = RingMatrix::new(x.rows(), x.cols(), x.share().to_vec())?;
        let seed = sess.fresh_seed();
        sip::send_encrypted_input(&mut sess.ch, he.params, he.keys.my_sk, &plan, &xc, seed)?;
        sess.ch.flush()?;
        let y = sip::recv_and_open(&mut sess.ch, he.params, he.keys.my_sk, &plan)?;
        finish(sess, y, window, rescale)
    }
}

pub(crate) fn check_input(x: &SharedTensor, inputs: usize) -> Result<()> {
    if x.cols() != inputs {
        return Err(Error::shape(
            "SIP linear layer input columns",
            x.cols(),
            inputs,
        ));
    }
    if x.format() != crate::cast::LINEAR {
        return Err(crate::tensor::format_mismatch(
            "SIP linear layer input",
            x.format(),
            crate::cast::LINEAR,
        ));
    }
    Ok(())
}
