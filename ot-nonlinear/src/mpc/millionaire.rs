//! Millionaires' comparison: XOR shares of `[a > b]` for the server's `a` and the client's `b`,
//! both `n`-bit unsigned (CrypTFlow2 / Cheetah style).
//!
//! **Lanes** ([`millionaire_lanes`]): `[a_c > b]` for `L` server values `a_0..a_{L−1}` against
//! one client value `b` (a piecewise function's breakpoints: the client's input is the same
//! for every breakpoint). The client's choice is its digit either way, so the lanes share the
//! leaf OTs: one 1-of-2^w OT per digit carries L masked pairs (fanout L of
//! [`crate::adapters::OtnLayout`], each lane's pair under its own hash), the trees stay one per
//! lane. Leaf COTs and choice corrections are paid once instead of L times.
//!
//! **Leaves.** The inputs are cut into q = ⌈n/m⌉ digits of m bits from the least significant
//! (the top digit may be shorter, w bits). For every digit the server is the sender of a
//! 1-of-2^w OT ([`crate::adapters::otn_messages`]) whose message v is its masked pair
//! `([a_k > v] ⊕ r, [a_k = v] ⊕ r')`; the client chooses `v = b_k` and keeps the message, the
//! server keeps `(r, r')`. The least significant digit needs `gt` only (its `eq` is never used).
//!
//! **Tree.** Digits combine pairwise from the bottom, `(1,0), (3,2), …`, level by level:
//! `gt = gt_hi ⊕ (eq_hi ∧ gt_lo)`, `eq = eq_hi ∧ eq_lo`. The node holding digit 0 and the root
//! need no `eq`: their gates are single ANDs; every other gate is a correlated pair sharing
//! `eq_hi` (3 opened bits per party instead of 4, [`and`](mod@crate::mpc::and)). One round per level.
//!
//! **Cost** ([`millionaire_cost`], label `millionaire`), per element: client → server
//! `n` bits (choice corrections); server → client `2^{w_0} + Σ_{k≥1} 2·2^{w_k}` bits (leaf
//! messages; `2^{w_0}` alone when q = 1); per tree level both ways `3·(pairs with eq) + 2·(pairs
//! without)` bits. Each flight is packed over all elements (`⌈bits/8⌉` bytes). Rounds:
//! `2 + ⌈log2 q⌉` (the last flight is the client's after an odd number of levels, the
//! server's otherwise, which matters when a protocol follows). COTs: `n` + (q − 1) from the server, q − 1 from the client
//! ([`millionaire_cots`]); with L lanes: client → server `n` bits, server → client L times the
//! leaf messages, L trees; COTs `n + L(q − 1)` from the server, `L(q − 1)` from the client
//! ([`millionaire_lanes_cots`], [`millionaire_lanes_cost`]). Example, n = 36, m = 4 (DReLU on Z_2^37): 36 + 16 + 8·32 = 308 leaf
//! bits and 40 tree bits per element, 6 rounds.
use super::and::{and_gates, bit_triples};
use super::{Cost, CotDemand, Session};
use crate::adapters::{
    apply_corrections, choice_corrections, otn_messages, otn_outputs, recv_bitbuf, send_bitbuf,
    OtnLayout, MAX_OT_LOG_N,
};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::{Error, Result};

/// Default digit size (1-of-16 leaf OTs).
pub const DEFAULT_DIGIT: u32 = 4;

/// The public shape of one comparison: digit widths and the combination tree.
#[derive(Clone, Debug)]
struct Plan {
    /// Width of digit k (k = 0 least significant).
    widths: Vec<u32>,
    levels: Vec<Level>,
}

/// One tree level: pairs `(hi, lo, needs_eq)` of current nodes `2p + 1, 2p` become node p;
/// an odd top node is carried as node `pairs.len()`.
#[derive(Clone, Debug)]
struct Level {
    pairs: Vec<(usize, usize, bool)>,
    carry: Option<usize>,
}

impl Plan {
    fn new(bits: u32, digit: u32) -> Result<Plan> {
        if bits > 64 {
            return Err(Error::out_of_range(
                "millionaire bits",
                bits as usize,
                mpc_core::Dims::AtMost(64),
            ));
        }
        if !(1..=MAX_OT_LOG_N).contains(&digit) {
            return Err(Error::out_of_range(
                "millionaire digit size",
                digit as usize,
                mpc_core::Dims::within(1, MAX_OT_LOG_N as usize),
            ));
        }
        let q = bits.div_ceil(digit);
        let widths: Vec<u32> = (0..q).map(|k| digit.min(bits - k * digit)).collect();
        let mut levels = Vec::new();
        let mut c = q as usize;
        while c > 1 {
            let out = c.div_ceil(2);
            let pairs = (0..c / 2)
                .map(|p| (2 * p + 1, 2 * p, p != 0 && out > 1))
                .collect();
            levels.push(Level {
                pairs,
                carry: (c % 2 == 1).then_some(c - 1),
            });
            c = out;
        }
        Ok(Plan { widths, levels })
    }

    fn digits(&self) -> usize {
        self.widths.len()
    }

    fn leaf_layout(&self, lanes: usize) -> OtnLayout {
        OtnLayout {
            pattern: self
                .widths
                .iter()
                .enumerate()
                .map(|(k, &w)| (w, if k == 0 { 1 } else { 2 }))
                .collect(),
            fanout: lanes,
        }
    }

    fn gates(&self) -> usize {
        self.levels.iter().map(|l| l.pairs.len()).sum()
    }
}

/// COTs drawn by [`millionaire`] on `n` elements.
pub fn millionaire_cots(n: usize, bits: u32, digit: u32) -> Result<CotDemand> {
    millionaire_lanes_cots(n, 1, bits, digit)
}

/// Exact cost of [`millionaire`] on `n` elements (see the module comment).
pub fn millionaire_cost(n: usize, bits: u32, digit: u32) -> Result<Cost> {
    millionaire_lanes_cost(n, 1, bits, digit)
}

/// COTs drawn by [`millionaire_lanes`] on `n` client values of `lanes` comparisons each.
pub fn millionaire_lanes_cots(n: usize, lanes: usize, bits: u32, digit: u32) -> Result<CotDemand> {
    let p = Plan::new(bits, digit)?;
    let trees = n * lanes * p.gates();
    Ok(CotDemand {
        server: n * bits as usize + trees,
        client: trees,
    })
}

/// Exact cost of [`millionaire_lanes`] on `n` client values of `lanes` comparisons each.
pub fn millionaire_lanes_cost(n: usize, lanes: usize, bits: u32, digit: u32) -> Result<Cost> {
    let p = Plan::new(bits, digit)?;
    if p.digits() == 0 {
        return Ok(Cost::default());
    }
    let mut c = Cost::flight(0, n * bits as usize)
        .then(Cost::flight(n * p.leaf_layout(lanes).unit_bits(), 0));
    for l in &p.levels {
        let corr = l.pairs.iter().filter(|x| x.2).count();
        let level = super::and::and_cost(n * lanes * l.pairs.len(), n * lanes * corr);
        c.server_bytes += level.server_bytes;
        c.client_bytes += level.client_bytes;
        c.rounds += level.rounds;
    }
    // The parties' openings interleave: the server's level-1 opening leaves with its leaf
    // messages, after which each flight carries one party's openings of two levels, so the
    // last flight is the client's after an odd number of levels, the server's otherwise.
    c.last = if p.levels.len() % 2 == 1 {
        super::Side::Client
    } else {
        super::Side::Server
    };
    Ok(c)
}

/// XOR shares of `[a > b]` for every element: the server passes `a`, the client `b`, each
/// value `< 2^bits` (0 ≤ bits ≤ 64; 0 bits compares empty strings: all 0, no messages);
/// `digit` is the leaf digit size m (1..=8, [`DEFAULT_DIGIT`] = 4). Label `millionaire`.
pub fn millionaire(sess: &mut Session, x: &[u64], bits: u32, digit: u32) -> Result<Vec<bool>> {
    millionaire_lanes(sess, x, 1, bits, digit)
}

/// XOR shares of `[a_{u,c} > b_u]` for `lanes` server values per client value, sharing the
/// leaf OTs (module comment): the server passes `a` element-major (`a[u·lanes + c]`,
/// n·lanes values), the client `b` (n values); the result is element-major too. Label
/// `millionaire`.
pub fn millionaire_lanes(
    sess: &mut Session,
    x: &[u64],
    lanes: usize,
    bits: u32,
    digit: u32,
) -> Result<Vec<bool>> {
    let plan = Plan::new(bits, digit)?;
    if lanes == 0 {
        return Err(Error::shape(
            "millionaire lanes",
            0,
            mpc_core::Dims::AtLeast(1),
        ));
    }
    if let Some(v) = x.iter().find(|&&v| bits < 64 && v >> bits != 0) {
        return Err(Error::out_of_range(
            "millionaire input",
            format!("{v:#x}"),
            format!("a value of {bits} bits"),
        ));
    }
    if sess.is_server() && !x.len().is_multiple_of(lanes) {
        return Err(Error::shape(
            format!("millionaire values for {lanes} lanes"),
            x.len(),
            mpc_core::Dims::MultipleOf(lanes),
        ));
    }
    let n = if sess.is_server() {
        x.len() / lanes
    } else {
        x.len()
    };
    if plan.digits() == 0 {
        return Ok(vec![false; n * lanes]);
    }
    sess.scope("millionaire", |sess| run(sess, &plan, x, n, lanes))
}

fn run(sess: &mut Session, plan: &Plan, x: &[u64], n: usize, lanes: usize) -> Result<Vec<bool>> {
    let q = plan.digits();
    let layout = plan.leaf_layout(lanes);
    let shifts: Vec<u32> = (0..q).map(|k| plan.widths[..k].iter().sum()).collect();
    let digit_of = |v: u64, k: usize| (v >> shifts[k]) & ((1u64 << plan.widths[k]) - 1);
    // All COTs up front, each party's sender first (the peer's receiver mirrors it).
    let server = sess.is_server();
    let leaf_cots = n * layout.cots_per_unit();
    let leaf = if server {
        sess.ot.sender.next_n(&mut sess.ch, leaf_cots)?
    } else {
        sess.ot.receiver.next_n(&mut sess.ch, leaf_cots)?
    };
    let triples = bit_triples(sess, n * lanes * plan.gates())?;

    // Leaves: node-major per comparison e = u·lanes + c, lt[e·q + k], eq[e·q + k].
    let (mut lt, mut eq);
    if server {
        let (start, mut q_blocks) = leaf;
        lt = sess.random_bits(n * lanes * q);
        eq = sess.random_bits(n * lanes * q);
        let d = recv_bitbuf(&mut sess.ch, leaf_cots)?;
        let delta = sess.ot.sender.delta();
        apply_corrections(&mut q_blocks, delta, &d);
        let e = otn_messages(start, &q_blocks, delta, &layout, |u, k, j, c| {
            let i = u * lanes + c;
            let a = digit_of(x[i], k);
            let (gt, is_eq) = (a > j as u64, a == j as u64);
            (gt ^ lt[i * q + k]) as u64 | (((is_eq ^ eq[i * q + k]) as u64) << 1)
        })?;
        send_bitbuf(&mut sess.ch, &e)?;
    } else {
        let (start, t) = leaf;
        let choices: Vec<u64> = x
            .iter()
            .flat_map(|&v| (0..q).map(move |k| digit_of(v, k)))
            .collect();
        let bits = layout.choice_bits(&choices)?;
        send_bitbuf(&mut sess.ch, &choice_corrections(&t, &bits))?;
        let e = recv_bitbuf(&mut sess.ch, n * layout.unit_bits())?;
        // otn_outputs orders (u, k, c); the tree wants (u, c, k).
        let got = otn_outputs(start, &t, &layout, &choices, &e)?;
        let at = |i: usize| {
            let (u, c, k) = (i / (lanes * q), i / q % lanes, i % q);
            got[(u * q + k) * lanes + c]
        };
        lt = (0..n * lanes * q).map(|i| at(i) & 1 == 1).collect();
        eq = (0..n * lanes * q).map(|i| at(i) & 2 == 2).collect();
    }
    let n = n * lanes;

    // Tree: gates of a level in one flight, correlated pairs (with eq) first.
    let mut c = q;
    let mut off = 0;
    for level in &plan.levels {
        let out = c.div_ceil(2);
        let corr: Vec<_> = level.pairs.iter().filter(|p| p.2).collect();
        let plain: Vec<_> = level.pairs.iter().filter(|p| !p.2).collect();
        let (mut gx, mut gy, mut gy2) = (Vec::new(), Vec::new(), Vec::new());
        for group in [&corr, &plain] {
            for u in 0..n {
                for &&(hi, lo, with_eq) in group.iter() {
                    gx.push(eq[u * c + hi]);
                    gy.push(lt[u * c + lo]);
                    if with_eq {
                        gy2.push(eq[u * c + lo]);
                    }
                }
            }
        }
        let (z, z2) = and_gates(sess, &triples, off, &gx, &gy, &gy2)?;
        off += gx.len();
        let mut nlt = vec![false; n * out];
        let mut neq = vec![false; n * out];
        let (mut i, mut i2) = (0, 0);
        for group in [&corr, &plain] {
            for u in 0..n {
                for &&(hi, _, with_eq) in group.iter() {
                    let p = hi / 2;
                    nlt[u * out + p] = lt[u * c + hi] ^ z[i];
                    i += 1;
                    if with_eq {
                        neq[u * out + p] = z2[i2];
                        i2 += 1;
                    }
                }
            }
        }
        if let Some(top) = level.carry {
            for u in 0..n {
                nlt[u * out + out - 1] = lt[u * c + top];
                neq[u * out + out - 1] = eq[u * c + top];
            }
        }
        lt = nlt;
        eq = neq;
        c = out;
    }
    Ok(lt)
}
