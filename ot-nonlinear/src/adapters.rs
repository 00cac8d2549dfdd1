//! Adapters written once over any random-COT source ([`RandomCotSender`] /
//! [`RandomCotReceiver`]): chosen-choice COT, ℓ-bit additive COT, chosen-message 1-of-2 OT,
//! 1-of-2^m OT and random OT.
//!
//! Every adapter first draws its random COTs from the source (whose own cost is the source's:
//! ≈ 0.22 bits per COT for Ferret, 128 for IKNP), then runs its messages under its own label,
//! whose cost the table below gives and the tests assert (n instances, ℓ-bit ring, bits):
//!
//! | adapter | label | receiver → sender | sender → receiver | rounds |
//! |---|---|---|---|---|
//! | [`chosen_cot_send`] / [`chosen_cot_recv`] | `ot/chosen_cot` | n | 0 | 1 |
//! | [`additive_cot_send`] / [`additive_cot_recv`] | `ot/additive_cot` | n | n·ℓ | 2 |
//! | [`ot_send`] / [`ot_recv`] | `ot/ot` | n | 2·n·ℓ | 2 |
//! | [`ot_1_of_n_send`] / [`ot_1_of_n_recv`] (N = 2^m) | `ot/ot_1_of_n` | n·m | n·N·ℓ | 2 |
//! | [`rot_send`] / [`rot_recv`] | none | 0 | 0 | 0 |
//!
//! (bits are packed, so byte counts are ⌈bits/8⌉ per message; a flight that follows one in
//! the same direction, e.g. right after an IKNP extension, adds no round.) Keys are hashed
//! with the tweakable CCR hash [`tccr`](crate::aes_hash::tccr) under the tweak `(j, i)`, i the
//! COT's stream index and j the message index (0 for 1-of-2), and truncated to ℓ bits.
use crate::aes_hash::tccr_blocks;
use crate::block::{pack_bits, pack_values, packed_len, unpack_bits, unpack_values, Block};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::{Channel, Error, Result, Ring};

/// Largest m for 1-of-2^m OT.
pub const MAX_OT_LOG_N: u32 = 8;

fn tweak(j: u64, index: u64) -> Block {
    Block::from_halves(j, index)
}

/// `H((0, start + i), x_i)` truncated to the ring, for every block.
fn hash_to_ring(start: u64, blocks: &[Block], ring: Ring) -> Vec<u64> {
    let tweaks: Vec<Block> = (0..blocks.len() as u64)
        .map(|i| tweak(0, start + i))
        .collect();
    let mut h = blocks.to_vec();
    tccr_blocks(&tweaks, &mut h);
    h.iter().map(|b| ring.reduce(b.low_u64())).collect()
}

fn check_ring(values: &[u64], ring: Ring, what: &str) -> Result<()> {
    match values.iter().find(|&&v| !ring.contains(v)) {
        Some(v) => Err(Error::InvalidArgument(format!(
            "{what}: {v} is not an element of Z_2^{}",
            ring.bits()
        ))),
        None => Ok(()),
    }
}

fn check_received(values: &[u64], ring: Ring) -> Result<()> {
    if values.iter().all(|&v| ring.contains(v)) {
        Ok(())
    } else {
        Err(Error::Malformed("ring element out of range".into()))
    }
}

/// Chosen-choice COT, sender: `n` COTs `q'_i` such that the receiver holds
/// `t_i = q'_i ⊕ c_i·Δ` for its chosen `c_i` (Δ = `src.delta()`); returns the stream index of
/// the first. The receiver sends `d = c ⊕ b` (n bits) and the sender sets `q' = q ⊕ d·Δ`.
pub fn chosen_cot_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    n: usize,
) -> Result<(u64, Vec<Block>)> {
    let (start, mut q) = src.next_n(ch, n)?;
    let delta = src.delta();
    ch.scope("ot/chosen_cot", |ch| {
        let d = unpack_bits(&ch.recv_vec(n.div_ceil(8))?, n);
        for (q, d) in q.iter_mut().zip(d) {
            *q ^= delta.select(d);
        }
        Ok((start, q))
    })
}

/// Chosen-choice COT, receiver with choice bits `choices`: returns the stream index of the first
/// COT and the `t_i` (their low bits are the source's random bits, not `choices`).
pub fn chosen_cot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    choices: &[bool],
) -> Result<(u64, Vec<Block>)> {
    let (start, t) = src.next_n(ch, choices.len())?;
    ch.scope("ot/chosen_cot", |ch| {
        let d: Vec<bool> = t.iter().zip(choices).map(|(t, &c)| t.lsb() ^ c).collect();
        ch.send(&pack_bits(&d))?;
        ch.flush()?;
        Ok((start, t))
    })
}

/// ℓ-bit additive COT, sender with correlations `x_i ∈ Z_2^ℓ`: returns `a_i` such that the
/// receiver gets `b_i = a_i + c_i·x_i` (so `(−a_i, b_i)` share `c_i·x_i`). The sender sends
/// `y_i = H(q'_i) + x_i − H(q'_i ⊕ Δ)`; the receiver outputs `H(t_i) + c_i·y_i`.
pub fn additive_cot_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    ring: Ring,
    corr: &[u64],
) -> Result<Vec<u64>> {
    check_ring(corr, ring, "additive COT correlation")?;
    let (start, q) = chosen_cot_send(ch, src, corr.len())?;
    let delta = src.delta();
    ch.scope("ot/additive_cot", |ch| {
        let (m0, m1) = sender_pads(start, &q, delta, ring);
        let y: Vec<u64> = (0..corr.len())
            .map(|i| ring.sub(ring.add(m0[i], corr[i]), m1[i]))
            .collect();
        ch.send(&pack_values(&y, ring.bits()))?;
        ch.flush()?;
        Ok(m0)
    })
}

/// ℓ-bit additive COT, receiver with choice bits `choices`: returns `b_i = a_i + c_i·x_i`.
pub fn additive_cot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    ring: Ring,
    choices: &[bool],
) -> Result<Vec<u64>> {
    let n = choices.len();
    let (start, t) = chosen_cot_recv(ch, src, choices)?;
    ch.scope("ot/additive_cot", |ch| {
        let h = hash_to_ring(start, &t, ring);
        let y = recv_ring_values(ch, n, ring)?;
        Ok((0..n)
            .map(|i| {
                if choices[i] {
                    ring.add(h[i], y[i])
                } else {
                    h[i]
                }
            })
            .collect())
    })
}

/// Chosen-message 1-of-2 OT on ℓ-bit messages, sender: the receiver learns `msgs[i][c_i]`.
/// The sender sends `e_{i,b} = m_{i,b} ⊕ H(q'_i ⊕ b·Δ)` for b = 0, 1.
pub fn ot_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    ring: Ring,
    msgs: &[[u64; 2]],
) -> Result<()> {
    let flat: Vec<u64> = msgs.iter().flatten().copied().collect();
    check_ring(&flat, ring, "OT message")?;
    let (start, q) = chosen_cot_send(ch, src, msgs.len())?;
    let delta = src.delta();
    ch.scope("ot/ot", |ch| {
        let (m0, m1) = sender_pads(start, &q, delta, ring);
        let e: Vec<u64> = (0..msgs.len())
            .flat_map(|i| [msgs[i][0] ^ m0[i], msgs[i][1] ^ m1[i]])
            .collect();
        ch.send(&pack_values(&e, ring.bits()))?;
        ch.flush()
    })
}

/// Chosen-message 1-of-2 OT, receiver: returns `msgs[i][c_i]`.
pub fn ot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    ring: Ring,
    choices: &[bool],
) -> Result<Vec<u64>> {
    let n = choices.len();
    let (start, t) = chosen_cot_recv(ch, src, choices)?;
    ch.scope("ot/ot", |ch| {
        let h = hash_to_ring(start, &t, ring);
        let e = recv_ring_values(ch, 2 * n, ring)?;
        Ok((0..n)
            .map(|i| e[2 * i + choices[i] as usize] ^ h[i])
            .collect())
    })
}

/// The sender's two pads of each chosen COT: H(q_i) for choice 0 and H(q_i ⊕ Δ) for choice 1.
fn sender_pads(start: u64, q: &[Block], delta: Block, ring: Ring) -> (Vec<u64>, Vec<u64>) {
    let q1: Vec<Block> = q.iter().map(|&q| q ^ delta).collect();
    (hash_to_ring(start, q, ring), hash_to_ring(start, &q1, ring))
}

/// Receives `count` bit-packed ring elements and checks they are reduced.
fn recv_ring_values(ch: &mut Channel, count: usize, ring: Ring) -> Result<Vec<u64>> {
    let v = unpack_values(
        &ch.recv_vec(packed_len(count, ring.bits()))?,
        count,
        ring.bits(),
    );
    check_received(&v, ring)?;
    Ok(v)
}

fn check_log_n(log_n: u32) -> Result<usize> {
    if (1..=MAX_OT_LOG_N).contains(&log_n) {
        Ok(1 << log_n)
    } else {
        Err(Error::InvalidArgument(format!(
            "1-of-2^m OT needs 1 ≤ m ≤ {MAX_OT_LOG_N}, got {log_n}"
        )))
    }
}

/// 1-of-2^m OT on ℓ-bit messages (Naor–Pinkas from m 1-of-2 OTs), sender: `msgs` holds the
/// N = 2^m messages of instance i at `msgs[i·N..(i+1)·N]`. Message j of instance i is masked by
/// `⊕_{b<m} H((j, s_{i,b}), K_{i,b}^{j_b})`, where `K^0 = q'`, `K^1 = q' ⊕ Δ` are the keys of the
/// instance's b-th COT (stream index `s_{i,b}`) and `j_b` bit b of j.
pub fn ot_1_of_n_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    ring: Ring,
    log_n: u32,
    msgs: &[u64],
) -> Result<()> {
    let big_n = check_log_n(log_n)?;
    let m = log_n as usize;
    if msgs.len() % big_n != 0 {
        return Err(Error::Shape(format!(
            "{} messages are not a whole number of groups of {big_n}",
            msgs.len()
        )));
    }
    check_ring(msgs, ring, "OT message")?;
    let count = msgs.len() / big_n;
    let (start, q) = chosen_cot_send(ch, src, count * m)?;
    let delta = src.delta();
    ch.scope("ot/ot_1_of_n", |ch| {
        let mut e = msgs.to_vec();
        let mut tweaks = vec![Block::ZERO; m * big_n];
        let mut keys = vec![Block::ZERO; m * big_n];
        for (i, group) in e.chunks_mut(big_n).enumerate() {
            for b in 0..m {
                let s = start + (i * m + b) as u64;
                for j in 0..big_n {
                    tweaks[b * big_n + j] = tweak(j as u64, s);
                    keys[b * big_n + j] = q[i * m + b] ^ delta.select((j >> b) & 1 == 1);
                }
            }
            tccr_blocks(&tweaks, &mut keys);
            for (j, v) in group.iter_mut().enumerate() {
                for b in 0..m {
                    *v ^= ring.reduce(keys[b * big_n + j].low_u64());
                }
            }
        }
        ch.send(&pack_values(&e, ring.bits()))?;
        ch.flush()
    })
}

/// 1-of-2^m OT, receiver with choices `c_i < 2^m`: returns message `c_i` of every instance.
pub fn ot_1_of_n_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    ring: Ring,
    log_n: u32,
    choices: &[u64],
) -> Result<Vec<u64>> {
    let big_n = check_log_n(log_n)?;
    let m = log_n as usize;
    if let Some(c) = choices.iter().find(|&&c| c >= big_n as u64) {
        return Err(Error::InvalidArgument(format!("choice {c} ≥ {big_n}")));
    }
    let bits: Vec<bool> = choices
        .iter()
        .flat_map(|&c| (0..m).map(move |b| (c >> b) & 1 == 1))
        .collect();
    let (start, t) = chosen_cot_recv(ch, src, &bits)?;
    ch.scope("ot/ot_1_of_n", |ch| {
        let mut tweaks = Vec::with_capacity(t.len());
        for (i, &c) in choices.iter().enumerate() {
            for b in 0..m {
                tweaks.push(tweak(c, start + (i * m + b) as u64));
            }
        }
        let mut keys = t;
        tccr_blocks(&tweaks, &mut keys);
        let total = choices.len() * big_n;
        let e = recv_ring_values(ch, total, ring)?;
        Ok(choices
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                keys[i * m..(i + 1) * m]
                    .iter()
                    .fold(e[i * big_n + c as usize], |v, k| {
                        v ^ ring.reduce(k.low_u64())
                    })
            })
            .collect())
    })
}

/// Random OT, sender: `n` pairs `(H(q_i), H(q_i ⊕ Δ))` (no communication beyond the source).
pub fn rot_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    n: usize,
) -> Result<Vec<[Block; 2]>> {
    let (start, q) = src.next_n(ch, n)?;
    let delta = src.delta();
    let tweaks: Vec<Block> = (0..n as u64).map(|i| tweak(0, start + i)).collect();
    let mut k0 = q.clone();
    let mut k1: Vec<Block> = q.iter().map(|&q| q ^ delta).collect();
    tccr_blocks(&tweaks, &mut k0);
    tccr_blocks(&tweaks, &mut k1);
    Ok(k0.into_iter().zip(k1).map(|(a, b)| [a, b]).collect())
}

/// Random OT, receiver: `n` uniform choice bits `b_i` and the keys `H(t_i)` = the sender's
/// `k_{b_i}`.
pub fn rot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    n: usize,
) -> Result<(Vec<bool>, Vec<Block>)> {
    let (start, mut t) = src.next_n(ch, n)?;
    let choices = crate::block::lsbs(&t);
    let tweaks: Vec<Block> = (0..n as u64).map(|i| tweak(0, start + i)).collect();
    tccr_blocks(&tweaks, &mut t);
    Ok((choices, t))
}
