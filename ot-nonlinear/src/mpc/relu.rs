//! ReLU on arithmetic shares: `relu(x) = x·[x ≥ 0]` = [`mux`](fn@super::mux) of [`drelu`](fn@super::drelu) and x,
//! the operation to compare with Cheetah / SCI.
//!
//! Who sends what: DReLU's millionaire on ℓ − 1 bits (client → server digit corrections,
//! server → client leaf messages, one simultaneous flight per tree level), then the mux (both
//! parties send choice corrections, then both send their ℓ-bit messages).
//!
//! Cost (label `relu`, [`relu_cost`]) = [`super::drelu::drelu_cost`] + [`super::mux::mux_cost`];
//! on Z_2^37 with 4-bit digits: 308 leaf + 40 tree + 76 mux = **424 bits per element**
//! (+ ≈ 54 COTs per element from Ferret, ≈ 0.214 bits each), **8 rounds**
//! (2 leaf + 4 tree levels + 2 mux). COTs: [`relu_cots`].
use super::drelu::{drelu, drelu_cost, drelu_cots};
use super::mux::{mux, mux_cost, mux_cots};
use super::{Cost, CotDemand, Session};
use mpc_core::{Result, Ring};

/// Shares of `max(x, 0)` (signed view of Z_2^ℓ). Label `relu`.
pub fn relu(sess: &mut Session, x: &[u64], ring: Ring) -> Result<Vec<u64>> {
    sess.scope("relu", |sess| {
        let b = drelu(sess, x, ring)?;
        mux(sess, &b, x, ring)
    })
}

/// COTs drawn by [`relu`] on n elements.
pub fn relu_cots(n: usize, ring: Ring) -> CotDemand {
    drelu_cots(n, ring).plus(mux_cots(n))
}

/// Exact cost of [`relu`] on n elements.
pub fn relu_cost(n: usize, ring: Ring) -> Cost {
    drelu_cost(n, ring).then(mux_cost(n, ring))
}
