//! Multiplexer: arithmetic shares of `b·x` for an XOR-shared bit b and arithmetic x ∈ Z_2^ℓ.
//!
//! With `b = b_0 ⊕ b_1 = b_0 + b_1 − 2·b_0·b_1`, `b·x = Σ_i [b_i·x_i + b_{1−i}·(1 − 2b_i)·x_i]`.
//! Each party i keeps `b_i·x_i` and is the additive-COT sender of the correlation
//! `(1 − 2b_i)·x_i` to the peer, whose choice is `b_{1−i}` ([`super::acot`], both directions
//! in the same two flights).
//!
//! Cost (label `mux`, [`mux_cost`]), per element and per party: 1 bit of choice correction
//! (flight 1), ℓ bits of message (flight 2): `⌈n/8⌉ + ⌈n·ℓ/8⌉` bytes each way, 2(ℓ + 1) bits
//! per element in total, 2 rounds. COTs: n per direction ([`mux_cots`]).
use super::acot::{acot_duplex, RecvSide, SendSide};
use super::{check_len, check_shares, Cost, CotDemand, Session};
use crate::adapters::AcotLayout;
use mpc_core::{Result, Ring};

/// Arithmetic shares of `b·x` in `ring`. Label `mux`.
pub fn mux(sess: &mut Session, b: &[bool], x: &[u64], ring: Ring) -> Result<Vec<u64>> {
    check_len(b.len(), x.len(), "mux")?;
    check_shares(x, ring, "mux")?;
    let layout = AcotLayout::plain(ring);
    sess.scope("mux", |sess| {
        let corr = |u: usize, _: usize, _: usize| if b[u] { ring.neg(x[u]) } else { x[u] };
        let (mine, theirs) = acot_duplex(
            sess,
            Some(SendSide {
                layout: &layout,
                units: x.len(),
                corr,
            }),
            Some(RecvSide {
                layout: &layout,
                choices: b,
            }),
        )?;
        Ok((0..x.len())
            .map(|i| {
                let own = if b[i] { x[i] } else { 0 };
                ring.add(own, ring.add(mine[i], theirs[i]))
            })
            .collect())
    })
}

/// COTs drawn by [`mux`] on n elements.
pub fn mux_cots(n: usize) -> CotDemand {
    CotDemand::both(n)
}

/// Exact cost of [`mux`] on n elements of `ring`.
pub fn mux_cost(n: usize, ring: Ring) -> Cost {
    let l = ring.bits() as usize;
    Cost::flight(n, n).then(Cost::flight(n * l, n * l))
}
