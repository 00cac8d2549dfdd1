//! Secret × secret matrix product (QKᵀ and P·V in attention): X (k×m) and Y (m×n) both
//! additively shared; X·Y = X_c·Y_c + X_s·Y_s + X_c·Y_s + X_s·Y_c.
//!
//! The local terms are plaintext products. Each cross term runs the SIP engine once, in
//! opposite directions at the same time: each party encrypts its X share under its own key and
//! evaluates the peer's encryption with its own Y share. The code is identical for both parties.
//! Flights: 2 (both send encryptions; both send sealed responses), also for a batch of
//! independent products ([`secret_products`], one per attention head), as long as the batch
//! reveals at most `max_revealed` coefficients (larger batches run in several such rounds).
//! Bytes each way: `SipPlan::input_bytes + SipPlan::output_bytes` per product.
//!
//! With packing parameters ([`HeParams::packed_products`]) each party also holds the peer's
//! Galois keys (sent once at setup, [`GaloisKeys`]) and the responses are merged ciphertexts:
//! at BERT-base shapes one response per N output coefficients instead of one per
//! k_w·n_w (`sip`, "Packed outputs").
use crate::galois::GaloisKeys;
use crate::matrix::RingMatrix;
use crate::params::HeParams;
use crate::rlwe::{PublicKey, SecretKey};
use crate::sip::{self, SipPlan};
use mpc_core::{Channel, Result};

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

/// Runs the product; returns this party's share of X·Y.
pub fn secret_product(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    x: &RingMatrix,
    y: &RingMatrix,
) -> Result<RingMatrix> {
    let mut out = secret_products(ch, params, keys, &[(x, y)])?;
    Ok(out.remove(0))
}

/// Several independent products (e.g. one per attention head) in the same 2 flights (per
/// `max_revealed` coefficients); returns this party's share of each X_i·Y_i.
pub fn secret_products(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    pairs: &[(&RingMatrix, &RingMatrix)],
) -> Result<Vec<RingMatrix>> {
    let mut out = Vec::with_capacity(pairs.len());
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
        out.extend(product_round(ch, params, keys, &pairs[start..end])?);
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
) -> Result<Vec<RingMatrix>> {
    let ProductKeys {
        my_sk,
        peer_pk,
        peer_galois,
    } = keys;
    let plans = pairs
        .iter()
        .map(|(x, y)| SipPlan::new(params, x.rows(), x.cols(), y.cols()))
        .collect::<Result<Vec<_>>>()?;
    for (plan, (x, _)) in plans.iter().zip(pairs) {
        sip::send_encrypted_input(ch, params, my_sk, plan, x)?;
    }
    let peer_inputs = plans
        .iter()
        .map(|plan| sip::recv_encrypted_input(ch, params, plan))
        .collect::<Result<Vec<_>>>()?;
    let mut mine = Vec::with_capacity(pairs.len());
    for ((plan, (_, y)), inputs) in plans.iter().zip(pairs).zip(&peer_inputs) {
        let plain = sip::encode_plain(params, plan, y)?;
        mine.push(sip::evaluate_and_respond(
            ch,
            params,
            peer_pk,
            peer_galois,
            plan,
            inputs,
            &plain,
        )?);
    }
    plans
        .iter()
        .zip(pairs)
        .zip(mine)
        .map(|((plan, (x, y)), mine)| {
            let opened = sip::recv_and_open(ch, params, my_sk, plan)?;
            x.matmul(y)?.add(&mine)?.add(&opened)
        })
        .collect()
}
