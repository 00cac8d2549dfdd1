//! Bit to arithmetic: shares in Z_2^ℓ of `2^s·b` for an XOR-shared bit b.
//!
//! `2^s·b = 2^s·b_0 + 2^s·b_1 − 2^{s+1}·b_0·b_1`; the cross term is only needed mod 2^ℓ, i.e.
//! its factor `b_0·b_1` mod 2^{ℓ−s−1}: one additive COT ([`super::acot`]) with the server as
//! sender of the correlation `b_0` on ℓ − s − 1 bits and the client's choice `b_1`.
//!
//! Cost (label `b2a`, [`b2a_cost`]), per element: client → server 1 bit (choice correction),
//! server → client ℓ − s − 1 bits: **ℓ − s bits** in total (ℓ for s = 0), 2 rounds. For
//! s = ℓ − 1 the cross term vanishes (`2^{ℓ−1}·b = 2^{ℓ−1}(b_0 + b_1)` mod 2^ℓ): local, free.
//! COTs: n from the server ([`b2a_cots`]).
use super::acot::acot_server_sends;
use super::{Cost, CotDemand, Session};
use crate::adapters::AcotLayout;
use mpc_core::{Error, Result, Ring};

/// Arithmetic shares of `2^scale·b` in `ring` (0 ≤ scale < ℓ). Label `b2a`.
pub fn b2a(sess: &mut Session, b: &[bool], ring: Ring, scale: u32) -> Result<Vec<u64>> {
    if scale >= ring.bits() {
        return Err(Error::out_of_range(
            format!("b2a scale exponent on Z_2^{}", ring.bits()),
            scale as usize,
            mpc_core::Dims::Below(ring.bits() as usize),
        ));
    }
    let width = ring.bits() - scale - 1;
    sess.scope("b2a", |sess| {
        let cross = if width == 0 {
            vec![0; b.len()]
        } else {
            cross_term(sess, b, ring, width)?
        };
        Ok(b.iter()
            .zip(cross)
            .map(|(&bi, z)| ring.sub((bi as u64) << scale, z))
            .collect())
    })
}

/// Shares of `2^{ℓ−width}·b_0·b_1` (server sends, client chooses).
fn cross_term(sess: &mut Session, b: &[bool], ring: Ring, width: u32) -> Result<Vec<u64>> {
    let layout = AcotLayout {
        ring,
        widths: vec![width],
        fanout: 1,
    };
    acot_server_sends(sess, &layout, b.len(), |u, _, _| b[u] as u64, b)
}

/// COTs drawn by [`b2a`] on n elements.
pub fn b2a_cots(n: usize, ring: Ring, scale: u32) -> CotDemand {
    CotDemand {
        server: if scale + 1 < ring.bits() { n } else { 0 },
        client: 0,
    }
}

/// Exact cost of [`b2a`] on n elements.
pub fn b2a_cost(n: usize, ring: Ring, scale: u32) -> Cost {
    if scale + 1 >= ring.bits() {
        return Cost::default();
    }
    let w = (ring.bits() - scale - 1) as usize;
    Cost::flight(0, n).then(Cost::flight(n * w, 0))
}
