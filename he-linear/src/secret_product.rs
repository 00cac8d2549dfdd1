//! Secret × secret matrix product (QKᵀ and P·V in attention): X (k×m) and Y (m×n) both
//! additively shared; X·Y = X_c·Y_c + X_s·Y_s + X_c·Y_s + X_s·Y_c.
//!
//! The local terms are plaintext products. Each cross term runs the SIP engine once, in
//! opposite directions at the same time: each party encrypts its X share under its own key and
//! evaluates the peer's encryption with its own Y share. The code is identical for both parties.
//! Flights: 2 (both send encryptions; both send sealed responses). Bytes each way:
//! `SipPlan::input_bytes + SipPlan::output_bytes`.
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
    let plan = SipPlan::new(params, x.rows(), x.cols(), y.cols())?;
    let local = x.matmul(y)?;
    sip::send_encrypted_input(ch, params, my_sk, &plan, x)?;
    let peer_inputs = sip::recv_encrypted_input(ch, params, &plan)?;
    let plain = sip::encode_plain(params, &plan, y)?;
    let mine = sip::evaluate_and_respond(ch, params, peer_pk, &plan, &peer_inputs, &plain)?;
    let opened = sip::recv_and_open(ch, params, my_sk, &plan)?;
    local.add(&mine)?.add(&opened)
}
