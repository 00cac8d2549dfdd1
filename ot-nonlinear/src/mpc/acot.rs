//! Additive COTs in both directions at once: the step under [`mux`](mod@super::mux),
//! [`b2a`](mod@super::b2a), [`trunc`](super::trunc) and [`product`](super::product).
//!
//! Computes XOR-free arithmetic shares of `Σ_k 2^{ℓ−w_k}·c_{u,k}·x_{u,k,c}` (Z_2^ℓ) for every
//! unit u and correlation index c of an [`AcotLayout`], where this party holds the correlations
//! `x` of the batch it sends and the peer holds the choice bits `c`; each party may send one
//! batch and receive one (the peer's), or only one of the two.
//!
//! Who sends what: flight 1, each receiver sends its choice corrections (1 bit per COT);
//! flight 2, each sender sends its masked correlations (`w_k` bits each). Both directions share
//! the two flights, so the cost is 2 rounds and, per direction, `⌈units·K/8⌉` bytes of
//! corrections from the receiver and `⌈units·fanout·Σ_k w_k/8⌉` bytes of messages from the
//! sender. A side with nothing to send sends nothing (no empty frame).
use super::Session;
use crate::adapters::{
    acot_messages, acot_outputs, apply_corrections, choice_corrections, recv_bitbuf, send_bitbuf,
    AcotLayout,
};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::Result;

/// The batch this party sends: its layout, number of units and correlations `x(u, k, c)`.
pub(crate) struct SendSide<'a, F> {
    pub layout: &'a AcotLayout,
    pub units: usize,
    pub corr: F,
}

/// The batch this party receives: the peer's layout and this party's choice bits (units × K).
pub(crate) struct RecvSide<'a> {
    pub layout: &'a AcotLayout,
    pub choices: &'a [bool],
}

/// Runs both batches; returns this party's shares of the weighted sums of the batch it sends
/// (`−A`) and of the batch it receives (`A' + Σ c·x'`), each units × fanout, unit-major.
pub(crate) fn acot_duplex<F>(
    sess: &mut Session,
    send: Option<SendSide<'_, F>>,
    recv: Option<RecvSide<'_>>,
) -> Result<(Vec<u64>, Vec<u64>)>
where
    F: Fn(usize, usize, usize) -> u64 + Sync,
{
    let ch = &mut sess.ch;
    let delta = sess.ot.sender.delta();
    // Draw in the order every protocol uses (sender first), so that any Ferret extension
    // flights of the two parties cross instead of waiting on each other.
    let sent = match &send {
        Some(s) => Some(
            sess.ot
                .sender
                .next_n(ch, s.units * s.layout.cots_per_unit())?,
        ),
        None => None,
    };
    let got = match &recv {
        Some(r) => Some(sess.ot.receiver.next_n(ch, r.choices.len())?),
        None => None,
    };
    if let (Some(r), Some((_, t))) = (&recv, &got) {
        send_bitbuf(ch, &choice_corrections(t, r.choices))?;
    }
    let mut mine = Vec::new();
    if let (Some(s), Some((start, mut q))) = (send, sent) {
        let d = recv_bitbuf(ch, q.len())?;
        apply_corrections(&mut q, delta, &d);
        let (a, y) = acot_messages(start, &q, delta, s.layout, s.corr)?;
        send_bitbuf(ch, &y)?;
        let ring = s.layout.ring;
        mine = a.into_iter().map(|v| ring.neg(v)).collect();
    }
    let mut theirs = Vec::new();
    if let (Some(r), Some((start, t))) = (recv, got) {
        let units = r.choices.len() / r.layout.cots_per_unit();
        let y = recv_bitbuf(ch, units * r.layout.unit_bits())?;
        theirs = acot_outputs(start, &t, r.choices, r.layout, &y)?;
    }
    Ok((mine, theirs))
}

/// A batch with the server as the only sender: the server's correlations `corr` (the client's
/// closure is unused) and the client's `choices` (the server passes `&[]`); returns this
/// party's shares of the weighted sums (units × fanout).
pub(crate) fn acot_server_sends<F>(
    sess: &mut Session,
    layout: &AcotLayout,
    units: usize,
    corr: F,
    choices: &[bool],
) -> Result<Vec<u64>>
where
    F: Fn(usize, usize, usize) -> u64 + Sync,
{
    if sess.is_server() {
        let side = SendSide {
            layout,
            units,
            corr,
        };
        Ok(acot_duplex(sess, Some(side), None)?.0)
    } else {
        let side = RecvSide { layout, choices };
        Ok(acot_duplex(sess, None::<SendSide<'_, F>>, Some(side))?.1)
    }
}
