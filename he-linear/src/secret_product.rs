//! Secret × secret matrix product (QKᵀ and P·V in attention): X (k×m) and Y (m×n) both
//! additively shared; X·Y = X_c·Y_c + X_s·Y_s + X_c·Y_s + X_s·Y_c.
//!
//! The local terms are plaintext products. Each cross term runs the SIP engine once, in
//! opposite directions at the same time: each party encrypts its X share under its own key and
//! evaluates the peer's encryption with its own Y share. The code is identical for both parties.
//! Flights: 2 (both send encryptions; both send sealed responses), also for a batch of
//! independent products ([`secret_products`], one per attention head), as long as the batch
//! reveals at most `max_revealed` coefficients (larger batches run in several such rounds).
//! Bytes each way: [`ProductPlan::bytes`] per product.
//!
//! Each cross term runs in the orientation that sends fewer bytes ([`ProductPlan`]): X·Y with
//! X encrypted, or (Yᵀ·Xᵀ)ᵀ with Yᵀ encrypted. Both parties derive it from the shapes. In
//! attention, P·V (128×128·128×64) encrypts Vᵀ (one ciphertext) instead of P (two).
//!
//! With packing parameters ([`HeParams::packed_products`]) each party also holds the peer's
//! Galois keys (sent once at setup, [`GaloisKeys`]) and the responses are merged ciphertexts:
//! at BERT-base shapes one response per N output coefficients instead of one per
//! k_w·n_w (`sip`, "Packed outputs").
use crate::galois::GaloisKeys;
use crate::matrix::{ProductShape, RingMatrix};
use crate::params::HeParams;
use crate::response::Window;
use crate::rlwe::{PublicKey, SecretKey};
use crate::sip::{self, SipPlan};
use mpc_core::{Channel, Result, Seed};
use std::borrow::Cow;

/// The SIP plan of one cross term and its orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductPlan {
    /// The SIP product actually run: the shape k×m·m×n, or n×m·m×k when transposed.
    pub sip: SipPlan,
    /// Whether the cross term runs as (Yᵀ·Xᵀ)ᵀ (the Y share encrypted, X the plaintext).
    pub transposed: bool,
}

impl ProductPlan {
    /// The orientation of X (k×m) · Y (m×n) with fewer bytes each way (X encrypted on ties).
    pub fn new(params: &HeParams, shape: ProductShape) -> Result<ProductPlan> {
        let direct = SipPlan::new(params, shape).map(|sip| ProductPlan {
            sip,
            transposed: false,
        });
        let transposed = SipPlan::new(params, shape.transposed()).map(|sip| ProductPlan {
            sip,
            transposed: true,
        });
        match (direct, transposed) {
            (Ok(d), Ok(t)) if t.bytes(params) < d.bytes(params) => Ok(t),
            (Ok(d), _) => Ok(d),
            (Err(_), Ok(t)) => Ok(t),
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// Bytes each party sends for this product: its encryptions and its responses.
    pub fn bytes(&self, params: &HeParams) -> usize {
        self.sip.input_bytes(params) + self.sip.output_bytes(params)
    }

    /// The encrypted operand and the plaintext operand, oriented.
    fn operands<'a>(
        &self,
        x: &'a RingMatrix,
        y: &'a RingMatrix,
    ) -> (Cow<'a, RingMatrix>, Cow<'a, RingMatrix>) {
        if self.transposed {
            (Cow::Owned(y.transpose()), Cow::Owned(x.transpose()))
        } else {
            (Cow::Borrowed(x), Cow::Borrowed(y))
        }
    }
}

/// This party's key and the peer's evaluation keys.
#[derive(Clone, Copy, Debug)]
pub struct ProductKeys<'a> {
    /// This party's secret key (it opens the responses to its own encryptions).
    pub my_sk: &'a SecretKey,
    /// The peer's public key (re-randomizes the responses sent to it).
    pub peer_pk: &'a PublicKey,
    /// The peer's Galois keys; required when the parameters pack outputs.
    pub peer_galois: Option<&'a GaloisKeys>,
}

/// Runs the product through `window` ([`secret_products`]); returns this party's share.
pub fn secret_product(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    (x, y): (&RingMatrix, &RingMatrix),
    window: Window,
    seed: Seed,
) -> Result<RingMatrix> {
    let mut out = secret_products(ch, params, keys, &[(x, y)], window, seed)?;
    Ok(out.remove(0))
}

/// Several independent products (e.g. one per attention head) in the same 2 flights (per
/// `max_revealed` coefficients), revealing only `window` of the cross terms (`response`,
/// "Windows"): this party's shares of ⌊X_i·Y_i / 2^lo⌋ modulo 2^{hi−lo}, exact for lo = 0
/// ([`Window::full`]: shares of X_i·Y_i), else within 3 units (each party's local product
/// rounded, the two cross terms' carries).
pub fn secret_products(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    pairs: &[(&RingMatrix, &RingMatrix)],
    window: Window,
    seed: Seed,
) -> Result<Vec<RingMatrix>> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut round = 0u64;
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start;
        let mut revealed = 0u64;
        while end < pairs.len() {
            let (x, y) = pairs[end];
            revealed += (x.rows() * y.cols()) as u64;
            if end > start && revealed > params.max_revealed() {
                break;
            }
            end += 1;
        }
        let round_seed = seed.derive(round);
        round += 1;
        out.extend(product_round(
            ch,
            params,
            keys,
            &pairs[start..end],
            window,
            round_seed,
        )?);
        start = end;
    }
    Ok(out)
}

/// One round of products (2 flights).
fn product_round(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    pairs: &[(&RingMatrix, &RingMatrix)],
    window: Window,
    seed: Seed,
) -> Result<Vec<RingMatrix>> {
    let ProductKeys {
        my_sk,
        peer_pk,
        peer_galois,
    } = keys;
    let plans = pairs
        .iter()
        .map(|(x, y)| {
            ProductPlan::new(params, ProductShape::of(x, y)?).map(|p| ProductPlan {
                sip: p.sip.with_window(window),
                ..p
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let operands: Vec<_> = plans
        .iter()
        .zip(pairs)
        .map(|(plan, (x, y))| plan.operands(x, y))
        .collect();
    // Stream 2i seeds product i's encryption, 2i + 1 its response's masks and floods.
    for (i, (plan, (enc, _))) in plans.iter().zip(&operands).enumerate() {
        let input_seed = seed.derive(2 * i as u64);
        sip::send_encrypted_input(ch, params, my_sk, &plan.sip, enc, input_seed)?;
    }
    let peer_inputs = plans
        .iter()
        .map(|plan| sip::recv_encrypted_input(ch, params, &plan.sip))
        .collect::<Result<Vec<_>>>()?;
    let mut mine = Vec::with_capacity(pairs.len());
    let products = plans.iter().zip(&operands).zip(&peer_inputs);
    for (i, ((plan, (_, plain)), inputs)) in products.enumerate() {
        let encoded = sip::encode_plain(params, &plan.sip, plain)?;
        mine.push(sip::evaluate_and_respond(
            ch,
            params,
            peer_pk,
            peer_galois,
            &plan.sip,
            inputs,
            &encoded,
            seed.derive(2 * i as u64 + 1),
        )?);
    }
    plans
        .iter()
        .zip(pairs)
        .zip(mine)
        .map(|((plan, (x, y)), mine)| {
            let opened = sip::recv_and_open(ch, params, my_sk, &plan.sip)?;
            let cross = mine.add(&opened)?;
            let cross = if plan.transposed {
                cross.transpose()
            } else {
                cross
            };
            let mut out = x.matmul(y)?;
            for (o, &c) in out.data_mut().iter_mut().zip(cross.data()) {
                *o = window.reduce(window.local_share(*o).wrapping_add(c));
            }
            Ok(out)
        })
        .collect()
}
