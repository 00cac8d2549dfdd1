//! Secret × secret matrix product (QKᵀ and P·V in attention): X (k×m) and Y (m×n) both
//! additively shared; X·Y = X_c·Y_c + X_s·Y_s + X_c·Y_s + X_s·Y_c.
//!
//! The local terms are plaintext products. Each cross term runs the SIP engine once, in
//! opposite directions at the same time: each party encrypts its X share under its own key and
//! evaluates the peer's encryption with its own Y share. The code is identical for both parties.
//! Flights: 2 (both send encryptions; both send sealed responses), also for a batch of
//! independent products ([`secret_products`], one per attention head). Bytes each way:
//! `SipPlan::input_bytes + SipPlan::output_bytes` per product.
use crate::matrix::RingMatrix;
use crate::params::HeParams;
use crate::rlwe::{PublicKey, SecretKey};
use crate::sip::{self, SipPlan};
use mpc_core::{Channel, Result};

/// Runs the product; returns this party's share of X·Y. `my_sk` is this party's key, `peer_pk`
/// the other party's public key.
pub fn secret_product(
    ch: &mut Channel,
    params: &HeParams,
    my_sk: &SecretKey,
    peer_pk: &PublicKey,
    x: &RingMatrix,
    y: &RingMatrix,
) -> Result<RingMatrix> {
    let mut out = secret_products(ch, params, my_sk, peer_pk, &[(x, y)])?;
    Ok(out.remove(0))
}

/// Several independent products (e.g. one per attention head) in the same 2 flights; returns
/// this party's share of each X_i·Y_i.
pub fn secret_products(
    ch: &mut Channel,
    params: &HeParams,
    my_sk: &SecretKey,
    peer_pk: &PublicKey,
    pairs: &[(&RingMatrix, &RingMatrix)],
) -> Result<Vec<RingMatrix>> {
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
            ch, params, peer_pk, plan, inputs, &plain,
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
