//! Lookup table on a shared index: shares of `T[x]` for x ∈ Z_2^n shared (n ≤ 8) and a table T
//! of 2^n entries of `words` elements of Z_2^ℓ held by the server (or public).
//!
//! The server draws random `r` (its output share) and is the sender of one 1-of-2^n OT per
//! lookup ([`crate::adapters::otn_messages`]) whose message v (word c) is
//! `T[(v + x_0) mod 2^n][c] − r_c`; the client chooses `v = x_1` and gets `T[x][c] − r_c`.
//!
//! Cost (label `lut`, [`lut_cost`]), per lookup: client → server n bits, server → client
//! `2^n·words·ℓ` bits; 2 rounds. COTs: n per lookup from the server ([`lut_cots`]).
use super::{check_shares, Cost, CotDemand, Session};
use crate::adapters::{
    apply_corrections, choice_corrections, otn_messages, otn_outputs, recv_bitbuf, send_bitbuf,
    OtnLayout, MAX_OT_LOG_N,
};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::{Error, Result, Ring};

/// Shares of `T[x]` (x.len() × words, lookup-major): `x` are shares in Z_2^{index_bits}; the
/// server passes `Some(table)` (2^index_bits · words entries of `ring`, entry v at
/// `table[v·words..(v+1)·words]`), the client `None`. Label `lut`.
pub fn lut(
    sess: &mut Session,
    x: &[u64],
    index_bits: u32,
    table: Option<&[u64]>,
    words: usize,
    ring: Ring,
) -> Result<Vec<u64>> {
    if !(1..=MAX_OT_LOG_N).contains(&index_bits) || words == 0 {
        return Err(Error::out_of_range(
            format!("lookup index bits (with {words} words)"),
            index_bits as usize,
            mpc_core::Dims::within(1, MAX_OT_LOG_N as usize),
        ));
    }
    let idx_ring = Ring::new(index_bits)?;
    check_shares(x, idx_ring, "lut index")?;
    let big_n = 1usize << index_bits;
    match (sess.is_server(), table) {
        (true, Some(t)) if t.len() == big_n * words => check_shares(t, ring, "lut table")?,
        (true, t) => {
            return Err(Error::shape(
                "lookup table entries",
                t.map_or(0, <[u64]>::len),
                [big_n, words],
            ))
        }
        (false, None) => {}
        (false, Some(_)) => {
            return Err(Error::InvalidArgument(
                "lookup table passed by the party that holds none (pass None)".into(),
            ))
        }
    }
    let layout = OtnLayout {
        pattern: vec![(index_bits, ring.bits())],
        fanout: words,
    };
    let n = x.len();
    sess.scope("lut", |sess| {
        let cots = n * index_bits as usize;
        if let Some(t) = table {
            let r = sess.random_ring(n * words, ring);
            let (start, mut q) = sess.ot.sender.next_n(&mut sess.ch, cots)?;
            let delta = sess.ot.sender.delta();
            let d = recv_bitbuf(&mut sess.ch, cots)?;
            apply_corrections(&mut q, delta, &d);
            let e = otn_messages(start, &q, delta, &layout, |u, _, j, c| {
                let v = (j + x[u] as usize) % big_n;
                ring.sub(t[v * words + c], r[u * words + c])
            })?;
            send_bitbuf(&mut sess.ch, &e)?;
            Ok(r)
        } else {
            let (start, t) = sess.ot.receiver.next_n(&mut sess.ch, cots)?;
            let bits = layout.choice_bits(x)?;
            send_bitbuf(&mut sess.ch, &choice_corrections(&t, &bits))?;
            let e = recv_bitbuf(&mut sess.ch, n * layout.unit_bits())?;
            otn_outputs(start, &t, &layout, x, &e)
        }
    })
}

/// COTs drawn by [`lut`] on n lookups.
pub fn lut_cots(n: usize, index_bits: u32) -> CotDemand {
    CotDemand {
        server: n * index_bits as usize,
        client: 0,
    }
}

/// Exact cost of [`lut`] on n lookups.
pub fn lut_cost(n: usize, index_bits: u32, words: usize, ring: Ring) -> Cost {
    Cost::flight(0, n * index_bits as usize).then(Cost::flight(
        n * (words << index_bits) * ring.bits() as usize,
        0,
    ))
}
