//! Multiplexer: arithmetic shares of `b·x` for an XOR-shared bit b and arithmetic x ∈ Z_2^ℓ.
//!
//! With `b = b_0 ⊕ b_1 = b_0 + b_1 − 2·b_0·b_1`, `b·x = Σ_i [b_i·x_i + b_{1−i}·(1 − 2b_i)·x_i]`.
//! Each party i keeps `b_i·x_i` and is the additive-COT sender of the correlation
//! `(1 − 2b_i)·x_i` to the peer, whose choice is `b_{1−i}` ([`super::acot`], both directions
//! in the same two flights).
//!
//! [`mux_many`] selects several values by the same bit (`b·x_c` for c < k): the k correlations
//! ride on the same COT (fanout k of [`AcotLayout`], each under its own hash tweak), so they
//! cost k·ℓ message bits but no extra COT or choice correction.
//!
//! Cost (label `mux`, [`mux_cost`], [`mux_many_cost`]), per element and per party: 1 bit of
//! choice correction (flight 1), k·ℓ bits of message (flight 2): `⌈n/8⌉ + ⌈n·k·ℓ/8⌉` bytes
//! each way, 2(k·ℓ + 1) bits per element in total, 2 rounds. COTs: n per direction
//! ([`mux_cots`]), whatever k.
use super::acot::{acot_duplex, RecvSide, SendSide};
use super::{check_len, check_shares, Cost, CotDemand, Session};
use crate::adapters::AcotLayout;
use mpc_core::{Result, Ring};

/// Arithmetic shares of `b·x` in `ring`. Label `mux`.
pub fn mux(sess: &mut Session, b: &[bool], x: &[u64], ring: Ring) -> Result<Vec<u64>> {
    mux_many(sess, b, x, 1, ring)
}

/// Arithmetic shares of `b_u·x_{u,c}` for `per` values per bit (`x[u·per + c]`, element-major,
/// the result likewise), all on one COT per bit and direction. Label `mux`.
pub fn mux_many(
    sess: &mut Session,
    b: &[bool],
    x: &[u64],
    per: usize,
    ring: Ring,
) -> Result<Vec<u64>> {
    check_len(b.len() * per, x.len(), "mux")?;
    check_shares(x, ring, "mux")?;
    let layout = AcotLayout {
        fanout: per,
        ..AcotLayout::plain(ring)
    };
    sess.scope("mux", |sess| {
        let corr = |u: usize, _: usize, c: usize| {
            let v = x[u * per + c];
            if b[u] {
                ring.neg(v)
            } else {
                v
            }
        };
        let (mine, theirs) = acot_duplex(
            sess,
            Some(SendSide {
                layout: &layout,
                units: b.len(),
                corr,
            }),
            Some(RecvSide {
                layout: &layout,
                choices: b,
            }),
        )?;
        Ok((0..x.len())
            .map(|i| {
                let own = if b[i / per] { x[i] } else { 0 };
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
    mux_many_cost(n, 1, ring)
}

/// Exact cost of [`mux_many`] on n bits of `per` values each in `ring` (COTs: [`mux_cots`]
/// of n).
pub fn mux_many_cost(n: usize, per: usize, ring: Ring) -> Cost {
    let l = ring.bits() as usize;
    Cost::flight(n, n).then(Cost::flight(n * per * l, n * per * l))
}
