//! AND of XOR-shared bits with Beaver bit triples generated silently from random OTs.
//!
//! **Triples.** One random OT per direction gives a triple: in the OT where party i is the
//! receiver, its random choice is its share `a_i` and its key `k` gives it `v = H(k)_0`; in the
//! OT where it is the sender, with keys `(k_0, k_1)`, its share is `b_i = H(k_0)_0 ⊕ H(k_1)_0`
//! and `u = H(k_0)_0`. Then `u ⊕ v_peer = a_peer·b_i`, so `c_i = a_i·b_i ⊕ u ⊕ v` shares
//! `c = (a_0 ⊕ a_1)(b_0 ⊕ b_1)`. Bit 1 of the same hashes gives a second triple `(a, b', c')`
//! with the same `a` at no extra cost: a **correlated pair**, used for `x∧y` and `x∧y'` with a
//! shared operand x (the millionaire's `eq_hi ∧ lt_lo`, `eq_hi ∧ eq_lo`). No communication
//! beyond the COT source: 1 COT per direction per triple (pair).
//!
//! **Gates.** Each party opens `e = x ⊕ a`, `f = y ⊕ b` (and `f' = y' ⊕ b'` for a correlated
//! pair) in one simultaneous flight and outputs `z_i = c_i ⊕ e·b_i ⊕ f·a_i ⊕ [server]·e·f`.
//!
//! Cost (label `and`, [`and_cost`]): for n gates of which k are correlated pairs, each party
//! sends `⌈(2n + k)/8⌉` bytes, 1 round; COTs: n per direction ([`and_cots`]).
use super::{check_len, Cost, CotDemand, Session};
use crate::adapters::{recv_bitbuf, rot_recv, rot_send, send_bitbuf};
use crate::block::BitBuf;
use mpc_core::Result;

/// A batch of Beaver bit triples, each with a second one sharing its `a` (`c = a·b`,
/// `c2 = a·b2`), this party's shares.
#[derive(Clone, Debug, Default)]
pub(crate) struct Triples {
    a: Vec<bool>,
    b: Vec<bool>,
    b2: Vec<bool>,
    c: Vec<bool>,
    c2: Vec<bool>,
}

/// `n` correlated triple pairs from `n` random OTs in each direction (sender first).
pub(crate) fn bit_triples(sess: &mut Session, n: usize) -> Result<Triples> {
    let pairs = rot_send(&mut sess.ch, &mut sess.ot.sender, n)?;
    let (a, keys) = rot_recv(&mut sess.ch, &mut sess.ot.receiver, n)?;
    let bit = |k: mpc_core::Block, i: u32| (k.0 >> i) & 1 == 1;
    let mut t = Triples {
        a,
        b: Vec::with_capacity(n),
        b2: Vec::with_capacity(n),
        c: Vec::with_capacity(n),
        c2: Vec::with_capacity(n),
    };
    for i in 0..n {
        let [k0, k1] = pairs[i];
        let (b, b2) = (bit(k0, 0) ^ bit(k1, 0), bit(k0, 1) ^ bit(k1, 1));
        let a = t.a[i];
        t.c.push((a & b) ^ bit(k0, 0) ^ bit(keys[i], 0));
        t.c2.push((a & b2) ^ bit(k0, 1) ^ bit(keys[i], 1));
        t.b.push(b);
        t.b2.push(b2);
    }
    Ok(t)
}

/// One flight of AND gates on triples `off..off + x.len()` of `tr`: returns `x∧y` for every gate
/// and `x∧y2` for the first `y2.len()` gates (correlated pairs).
pub(crate) fn and_gates(
    sess: &mut Session,
    tr: &Triples,
    off: usize,
    x: &[bool],
    y: &[bool],
    y2: &[bool],
) -> Result<(Vec<bool>, Vec<bool>)> {
    let (n, k) = (x.len(), y2.len());
    let mut open = BitBuf::zeros(2 * n + k);
    for i in 0..n {
        open.put(i, (x[i] ^ tr.a[off + i]) as u64, 1);
        open.put(n + i, (y[i] ^ tr.b[off + i]) as u64, 1);
    }
    for i in 0..k {
        open.put(2 * n + i, (y2[i] ^ tr.b2[off + i]) as u64, 1);
    }
    send_bitbuf(&mut sess.ch, &open)?;
    let peer = recv_bitbuf(&mut sess.ch, 2 * n + k)?;
    let server = sess.is_server();
    let gate =
        |e: bool, f: bool, a: bool, b: bool, c: bool| c ^ (e & b) ^ (f & a) ^ (server & e & f);
    let mut z = Vec::with_capacity(n);
    let mut z2 = Vec::with_capacity(k);
    for i in 0..n {
        let j = off + i;
        let e = open.bit(i) ^ peer.bit(i);
        let f = open.bit(n + i) ^ peer.bit(n + i);
        z.push(gate(e, f, tr.a[j], tr.b[j], tr.c[j]));
        if i < k {
            let f2 = open.bit(2 * n + i) ^ peer.bit(2 * n + i);
            z2.push(gate(e, f2, tr.a[j], tr.b2[j], tr.c2[j]));
        }
    }
    Ok((z, z2))
}

/// x ∧ y for XOR-shared bits, element-wise (label `and`).
pub fn and(sess: &mut Session, x: &[bool], y: &[bool]) -> Result<Vec<bool>> {
    check_len(x.len(), y.len(), "and")?;
    sess.scope("and", |sess| {
        let tr = bit_triples(sess, x.len())?;
        Ok(and_gates(sess, &tr, 0, x, y, &[])?.0)
    })
}

/// COTs drawn by [`and`] on n gates.
pub fn and_cots(n: usize) -> CotDemand {
    CotDemand::both(n)
}

/// Cost of one flight of `n` gates of which `k` are correlated pairs.
pub fn and_cost(n: usize, k: usize) -> Cost {
    Cost::flight(2 * n + k, 2 * n + k)
}
