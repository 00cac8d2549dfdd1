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
//! the same direction, e.g. right after an IKNP extension, adds no round.)
//!
//! **Phases.** The two-party protocols of [`crate::mpc`] run COTs in both directions at once,
//! so that the choice corrections of both directions share one flight and the messages of both
//! share the next. The adapters are therefore written as phases that the functions above (one
//! direction) and [`crate::mpc`] (both directions) compose: [`choice_corrections`] /
//! [`apply_corrections`] (chosen choices), [`acot_messages`] / [`acot_outputs`] (additive COT
//! over an [`AcotLayout`]: several widths per unit, several correlations per COT, weighted
//! sums) and [`otn_messages`] / [`otn_outputs`] (1-of-2^m OT over an [`OtnLayout`]: per-instance
//! N and message width, several messages per instance).
//!
//! **Hashing.** Keys are hashed with the tweakable CCR hash [`tccr`](crate::aes_hash::tccr);
//! the tweak is `(j, i)`, i a COT's stream index, and messages are the hash truncated to their
//! width. Additive COT and 1-of-2 OT: j = the correlation's index among those the COT carries
//! (0 for one). 1-of-2^m OT with COTs s_0..s_{m−1}: the 2m keys `K_b^x = H((0, s_b), q_b ⊕ x·Δ)`
//! are hashed first, then message j (copy c) is masked by `H((1 + j + N·c, s_0), ⊕_b K_b^{j_b})`:
//! 2m + N hashes per instance instead of m·N. A receiver with choice v knows `K_b^{v_b}` only;
//! every other mask is the hash of an input that contains a key it does not know.
use crate::aes_hash::tccr_blocks;
use crate::block::{low_mask, pack_values, BitBuf};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::Block;
use mpc_core::{Channel, Error, Result, Ring};
use rayon::prelude::*;

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
        Some(v) => Err(Error::out_of_range(
            what.to_string(),
            format!("{v:#x}"),
            format!("an element of Z_2^{}", ring.bits()),
        )),
        None => Ok(()),
    }
}

/// Choice corrections `d_i = c_i ⊕ lsb(t_i)` of a chosen-choice COT (receiver, phase 1): sent
/// to the sender, they turn the source's random choices into `choices`.
pub fn choice_corrections(t: &[Block], choices: &[bool]) -> BitBuf {
    debug_assert_eq!(t.len(), choices.len());
    let mut d = BitBuf::zeros(t.len());
    for (i, (t, &c)) in t.iter().zip(choices).enumerate() {
        d.put(i, (t.lsb() ^ c) as u64, 1);
    }
    d
}

/// Applies received choice corrections (sender, phase 2): `q_i ← q_i ⊕ d_i·Δ`.
pub fn apply_corrections(q: &mut [Block], delta: Block, d: &BitBuf) {
    for (i, q) in q.iter_mut().enumerate() {
        *q ^= delta.select(d.bit(i));
    }
}

/// Receives `bits` packed bits (`⌈bits/8⌉` bytes).
pub fn recv_bitbuf(ch: &mut Channel, bits: usize) -> Result<BitBuf> {
    Ok(BitBuf::from_bytes(&ch.recv_vec(bits.div_ceil(8))?, bits))
}

/// Sends a packed bit string (`⌈len/8⌉` bytes) and flushes it as a flight.
pub fn send_bitbuf(ch: &mut Channel, bits: &BitBuf) -> Result<()> {
    ch.send(&bits.to_bytes())?;
    ch.flush()
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
        let d = recv_bitbuf(ch, n)?;
        apply_corrections(&mut q, delta, &d);
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
        send_bitbuf(ch, &choice_corrections(&t, choices))?;
        Ok((start, t))
    })
}

/// The shape of a batch of additive COTs: `units` units of `widths.len()` COTs each (COT k of
/// unit u has stream index `start + u·K + k`), each COT carrying `fanout` correlations
/// `x_{u,k,c}` of `widths[k]` bits (1 ≤ width ≤ ℓ). The receiver's choice `c_{u,k}` is shared by
/// the COT's correlations. Outputs are weighted sums in Z_2^ℓ: the sender gets
/// `A_{u,c} = Σ_k 2^{ℓ−w_k}·a_{u,k,c}` and the receiver `A_{u,c} + Σ_k 2^{ℓ−w_k}·c_{u,k}·x_{u,k,c}`,
/// all mod 2^ℓ; a width-w_k COT thus computes a product that is only needed mod 2^{w_k}, e.g.
/// bit k of a Gilboa product (`x·2^k` mod 2^ℓ needs ℓ − k bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcotLayout {
    /// The output ring Z_2^ℓ.
    pub ring: Ring,
    /// Message width of each COT of a unit.
    pub widths: Vec<u32>,
    /// Correlations per COT.
    pub fanout: usize,
}

impl AcotLayout {
    /// One ℓ-bit correlation per COT, one COT per unit.
    pub fn plain(ring: Ring) -> AcotLayout {
        AcotLayout {
            ring,
            widths: vec![ring.bits()],
            fanout: 1,
        }
    }

    /// COTs per unit.
    pub fn cots_per_unit(&self) -> usize {
        self.widths.len()
    }

    /// Message bits per unit (sender → receiver).
    pub fn unit_bits(&self) -> usize {
        self.fanout * self.widths.iter().map(|&w| w as usize).sum::<usize>()
    }

    fn check(&self) -> Result<()> {
        match self
            .widths
            .iter()
            .find(|&&w| w == 0 || w > self.ring.bits())
        {
            Some(&w) => Err(Error::out_of_range(
                "additive COT width",
                w as usize,
                mpc_core::Dims::within(1, self.ring.bits() as usize),
            )),
            None if self.fanout == 0 => {
                Err(Error::out_of_range("fanout", 0, mpc_core::Dims::AtLeast(1)))
            }
            None => Ok(()),
        }
    }
}

/// Additive COT, sender's messages (phase 2, after [`apply_corrections`]): for every
/// correlation `x = corr(u, k, c)` (reduced mod 2^{w_k} here) it sends
/// `y = H(q) + x − H(q ⊕ Δ)` mod 2^{w_k}, and returns the weighted sums `A` (units × fanout,
/// unit-major) and the messages, laid out unit by unit, COT by COT, correlation by correlation.
pub fn acot_messages(
    start: u64,
    q: &[Block],
    delta: Block,
    layout: &AcotLayout,
    corr: impl Fn(usize, usize, usize) -> u64 + Sync,
) -> Result<(Vec<u64>, BitBuf)> {
    layout.check()?;
    let (k_n, f_n) = (layout.cots_per_unit(), layout.fanout);
    let units = q.len() / k_n;
    let ring = layout.ring;
    let l = ring.bits();
    let mut a = vec![0u64; units * f_n];
    let mut y = BitBuf::zeros(units * layout.unit_bits());
    y.par_fill(layout.unit_bits(), &mut a, f_n, |first, count, w, a| {
        let cots = &q[first * k_n..(first + count) * k_n];
        let (h0, h1) = hash_fanout(start + (first * k_n) as u64, cots, Some(delta), f_n);
        let mut idx = 0;
        for u in 0..count {
            let acc = &mut a[u * f_n..(u + 1) * f_n];
            for (k, &wk) in layout.widths.iter().enumerate() {
                let mask = low_mask(wk);
                for (c, acc) in acc.iter_mut().enumerate() {
                    let p0 = h0[idx].low_u64() & mask;
                    let p1 = h1[idx].low_u64() & mask;
                    let x = corr(first + u, k, c) & mask;
                    w.push(p0.wrapping_add(x).wrapping_sub(p1), wk);
                    *acc = acc.wrapping_add(p0 << (l - wk));
                    idx += 1;
                }
            }
            for acc in acc.iter_mut() {
                *acc = ring.reduce(*acc);
            }
        }
    });
    Ok((a, y))
}

/// Additive COT, receiver's outputs (phase 2): `Σ_k 2^{ℓ−w_k}·(H(t) + c·y mod 2^{w_k})` for
/// every unit and correlation index (units × fanout, unit-major).
pub fn acot_outputs(
    start: u64,
    t: &[Block],
    choices: &[bool],
    layout: &AcotLayout,
    y: &BitBuf,
) -> Result<Vec<u64>> {
    layout.check()?;
    let (k_n, f_n) = (layout.cots_per_unit(), layout.fanout);
    let units = t.len() / k_n;
    let (ring, unit_bits) = (layout.ring, layout.unit_bits());
    let l = ring.bits();
    let chunk = par_chunk_units(unit_bits);
    let mut out = vec![0u64; units * f_n];
    out.par_chunks_mut(chunk * f_n)
        .enumerate()
        .for_each(|(ci, out)| {
            let first = ci * chunk;
            let count = out.len() / f_n;
            let cots = &t[first * k_n..(first + count) * k_n];
            let (h, _) = hash_fanout(start + (first * k_n) as u64, cots, None, f_n);
            let mut idx = 0;
            for u in 0..count {
                let mut pos = (first + u) * unit_bits;
                let acc = &mut out[u * f_n..(u + 1) * f_n];
                for (k, &wk) in layout.widths.iter().enumerate() {
                    let mask = low_mask(wk);
                    let c = choices[(first + u) * k_n + k];
                    for acc in acc.iter_mut() {
                        let yv = y.get(pos, wk);
                        let v = h[idx]
                            .low_u64()
                            .wrapping_add(yv & (c as u64).wrapping_neg());
                        *acc = acc.wrapping_add((v & mask) << (l - wk));
                        pos += wk as usize;
                        idx += 1;
                    }
                }
                for acc in acc.iter_mut() {
                    *acc = ring.reduce(*acc);
                }
            }
        });
    Ok(out)
}

/// Units per parallel chunk of a receiver's loop (the same granularity as
/// [`BitBuf::par_fill`]'s, a few thousand hashes per chunk).
fn par_chunk_units(unit_bits: usize) -> usize {
    64 * 8192usize.div_ceil(64 * unit_bits.max(1)).max(1)
}

/// `H((c, start + i), key_i)` for every COT key and c < fanout (key-major), and with `delta`
/// also `H((c, start + i), key_i ⊕ Δ)`.
fn hash_fanout(
    start: u64,
    keys: &[Block],
    delta: Option<Block>,
    fanout: usize,
) -> (Vec<Block>, Vec<Block>) {
    let n = keys.len() * fanout;
    let mut tw = Vec::with_capacity(n);
    let mut h0 = Vec::with_capacity(n);
    for (i, &key) in keys.iter().enumerate() {
        for c in 0..fanout {
            tw.push(tweak(c as u64, start + i as u64));
            h0.push(key);
        }
    }
    let mut h1 = match delta {
        Some(d) => h0.iter().map(|&x| x ^ d).collect(),
        None => Vec::new(),
    };
    tccr_blocks(&tw, &mut h0);
    if !h1.is_empty() {
        tccr_blocks(&tw, &mut h1);
    }
    (h0, h1)
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
        let (a, y) = acot_messages(start, &q, delta, &AcotLayout::plain(ring), |u, _, _| {
            corr[u]
        })?;
        send_bitbuf(ch, &y)?;
        Ok(a)
    })
}

/// ℓ-bit additive COT, receiver with choice bits `choices`: returns `b_i = a_i + c_i·x_i`.
pub fn additive_cot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    ring: Ring,
    choices: &[bool],
) -> Result<Vec<u64>> {
    let (start, t) = chosen_cot_recv(ch, src, choices)?;
    ch.scope("ot/additive_cot", |ch| {
        let layout = AcotLayout::plain(ring);
        let y = recv_bitbuf(ch, choices.len() * layout.unit_bits())?;
        acot_outputs(start, &t, choices, &layout, &y)
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
        let q1: Vec<Block> = q.iter().map(|&q| q ^ delta).collect();
        let (m0, m1) = (
            hash_to_ring(start, &q, ring),
            hash_to_ring(start, &q1, ring),
        );
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
        let l = ring.bits();
        let e = recv_bitbuf(ch, 2 * n * l as usize)?;
        Ok((0..n)
            .map(|i| e.get((2 * i + choices[i] as usize) * l as usize, l) ^ h[i])
            .collect())
    })
}

fn check_log_n(log_n: u32) -> Result<usize> {
    if (1..=MAX_OT_LOG_N).contains(&log_n) {
        Ok(1 << log_n)
    } else {
        Err(Error::out_of_range(
            "m of a 1-of-2^m OT",
            log_n as usize,
            mpc_core::Dims::within(1, MAX_OT_LOG_N as usize),
        ))
    }
}

/// The shape of a batch of 1-of-2^m OTs: `units` units, each a sequence of instances
/// `(m_k, w_k)` (1-of-2^{m_k} on w_k-bit messages, 1 ≤ w_k ≤ 64) with `fanout` messages per
/// index; instance k of unit u uses the m_k COTs from stream index
/// `start + u·Σm + Σ_{k'<k} m_{k'}`. Messages are laid out unit by unit, instance by instance,
/// copy by copy, index by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtnLayout {
    /// `(m, width)` of each instance of a unit.
    pub pattern: Vec<(u32, u32)>,
    /// Messages per index (several output words per lookup).
    pub fanout: usize,
}

impl OtnLayout {
    /// COTs per unit (Σ m_k).
    pub fn cots_per_unit(&self) -> usize {
        self.pattern.iter().map(|&(m, _)| m as usize).sum()
    }

    /// Message bits per unit (sender → receiver): fanout · Σ 2^{m_k}·w_k.
    pub fn unit_bits(&self) -> usize {
        self.fanout
            * self
                .pattern
                .iter()
                .map(|&(m, w)| (w as usize) << m)
                .sum::<usize>()
    }

    fn check(&self) -> Result<()> {
        for &(m, w) in &self.pattern {
            check_log_n(m)?;
            if !(1..=64).contains(&w) {
                return Err(Error::out_of_range(
                    "message width",
                    w as usize,
                    mpc_core::Dims::within(1, 64),
                ));
            }
        }
        if self.fanout == 0 {
            return Err(Error::out_of_range("fanout", 0, mpc_core::Dims::AtLeast(1)));
        }
        Ok(())
    }

    /// The receiver's COT choice bits for its indices `choices` (units × instances): the m_k
    /// bits of each index, least significant first. Refuses an index ≥ 2^{m_k}.
    pub fn choice_bits(&self, choices: &[u64]) -> Result<Vec<bool>> {
        self.check()?;
        let k_n = self.pattern.len();
        let mut bits = Vec::with_capacity(choices.len() / k_n.max(1) * self.cots_per_unit());
        for (i, &c) in choices.iter().enumerate() {
            let m = self.pattern[i % k_n].0;
            if c >> m != 0 {
                return Err(Error::out_of_range(
                    format!("choice {i}"),
                    format!("{c}"),
                    format!("below 2^{m}"),
                ));
            }
            bits.extend((0..m).map(|b| (c >> b) & 1 == 1));
        }
        Ok(bits)
    }
}

/// 1-of-2^m OT, sender's messages (phase 2, after [`apply_corrections`]): every message
/// `msg(u, k, j, c)` (index j, copy c, reduced to w_k bits) XOR its mask.
pub fn otn_messages(
    start: u64,
    q: &[Block],
    delta: Block,
    layout: &OtnLayout,
    msg: impl Fn(usize, usize, usize, usize) -> u64 + Sync,
) -> Result<BitBuf> {
    layout.check()?;
    let cpu = layout.cots_per_unit();
    let units = q.len() / cpu.max(1);
    let mut e = BitBuf::zeros(units * layout.unit_bits());
    e.par_fill(
        layout.unit_bits(),
        &mut [0u8; 0],
        0,
        |first, count, w, _| {
            let cots = &q[first * cpu..(first + count) * cpu];
            let s0 = start + (first * cpu) as u64;
            // First level: both keys of every COT.
            let (k0, k1) = hash_fanout(s0, cots, Some(delta), 1);
            // Second level: one mask per (instance, copy, index).
            let per_unit = layout.unit_bits(); // ≥ messages per unit; only a capacity hint
            let mut tw = Vec::with_capacity(count * per_unit);
            let mut xs = Vec::with_capacity(count * per_unit);
            let mut x = [Block::ZERO; 1 << MAX_OT_LOG_N];
            let mut off = 0;
            for _ in 0..count {
                for &(m, _) in &layout.pattern {
                    let big_n = 1usize << m;
                    let s = s0 + off as u64;
                    // x_j = ⊕_b K_b^{j_b}, each from the index without its lowest set bit.
                    x[0] = (0..m as usize).fold(Block::ZERO, |a, b| a ^ k0[off + b]);
                    for j in 1..big_n {
                        let b = j.trailing_zeros() as usize;
                        x[j] = x[j & (j - 1)] ^ k0[off + b] ^ k1[off + b];
                    }
                    for c in 0..layout.fanout {
                        for (j, &xj) in x[..big_n].iter().enumerate() {
                            tw.push(tweak((1 + j + big_n * c) as u64, s));
                            xs.push(xj);
                        }
                    }
                    off += m as usize;
                }
            }
            tccr_blocks(&tw, &mut xs);
            let mut idx = 0;
            for u in first..first + count {
                for (k, &(m, wk)) in layout.pattern.iter().enumerate() {
                    let mask = low_mask(wk);
                    for c in 0..layout.fanout {
                        for j in 0..1usize << m {
                            w.push((msg(u, k, j, c) ^ xs[idx].low_u64()) & mask, wk);
                            idx += 1;
                        }
                    }
                }
            }
        },
    );
    Ok(e)
}

/// 1-of-2^m OT, receiver's outputs (phase 2): message `choices[u·K + k]` of every instance and
/// copy (units × instances × fanout).
pub fn otn_outputs(
    start: u64,
    t: &[Block],
    layout: &OtnLayout,
    choices: &[u64],
    e: &BitBuf,
) -> Result<Vec<u64>> {
    layout.check()?;
    let (cpu, k_n, f_n) = (layout.cots_per_unit(), layout.pattern.len(), layout.fanout);
    let units = t.len() / cpu.max(1);
    let unit_bits = layout.unit_bits();
    let chunk = par_chunk_units(unit_bits);
    let per_unit = k_n * f_n;
    let mut out = vec![0u64; units * per_unit];
    out.par_chunks_mut(chunk * per_unit)
        .enumerate()
        .for_each(|(ci, out)| {
            let first = ci * chunk;
            let count = out.len() / per_unit;
            let s0 = start + (first * cpu) as u64;
            let cots = &t[first * cpu..(first + count) * cpu];
            let (keys, _) = hash_fanout(s0, cots, None, 1);
            let mut tw = Vec::with_capacity(count * per_unit);
            let mut xs = Vec::with_capacity(count * per_unit);
            let mut off = 0;
            for u in 0..count {
                for (k, &(m, _)) in layout.pattern.iter().enumerate() {
                    let v = choices[(first + u) * k_n + k] as usize;
                    let x = keys[off..off + m as usize]
                        .iter()
                        .fold(Block::ZERO, |a, &b| a ^ b);
                    for c in 0..f_n {
                        tw.push(tweak((1 + v + (c << m)) as u64, s0 + off as u64));
                        xs.push(x);
                    }
                    off += m as usize;
                }
            }
            tccr_blocks(&tw, &mut xs);
            let mut idx = 0;
            for u in 0..count {
                let mut pos = (first + u) * unit_bits;
                for (k, &(m, wk)) in layout.pattern.iter().enumerate() {
                    let v = choices[(first + u) * k_n + k] as usize;
                    for _ in 0..f_n {
                        let got = e.get(pos + v * wk as usize, wk);
                        out[idx] = got ^ (xs[idx].low_u64() & low_mask(wk));
                        pos += (wk as usize) << m;
                        idx += 1;
                    }
                }
            }
        });
    Ok(out)
}

/// 1-of-2^m OT on ℓ-bit messages, sender: `msgs` holds the N = 2^m messages of instance i at
/// `msgs[i·N..(i+1)·N]` (masks: see the module comment).
pub fn ot_1_of_n_send<S: RandomCotSender>(
    ch: &mut Channel,
    src: &mut S,
    ring: Ring,
    log_n: u32,
    msgs: &[u64],
) -> Result<()> {
    let big_n = check_log_n(log_n)?;
    if !msgs.len().is_multiple_of(big_n) {
        return Err(Error::shape(
            "1-of-N OT messages",
            msgs.len(),
            mpc_core::Dims::MultipleOf(big_n),
        ));
    }
    check_ring(msgs, ring, "OT message")?;
    let count = msgs.len() / big_n;
    let (start, q) = chosen_cot_send(ch, src, count * log_n as usize)?;
    let delta = src.delta();
    let layout = OtnLayout {
        pattern: vec![(log_n, ring.bits())],
        fanout: 1,
    };
    ch.scope("ot/ot_1_of_n", |ch| {
        let e = otn_messages(start, &q, delta, &layout, |u, _, j, _| msgs[u * big_n + j])?;
        send_bitbuf(ch, &e)
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
    check_log_n(log_n)?;
    let layout = OtnLayout {
        pattern: vec![(log_n, ring.bits())],
        fanout: 1,
    };
    let bits = layout.choice_bits(choices)?;
    let (start, t) = chosen_cot_recv(ch, src, &bits)?;
    ch.scope("ot/ot_1_of_n", |ch| {
        let e = recv_bitbuf(ch, choices.len() * layout.unit_bits())?;
        let v = otn_outputs(start, &t, &layout, choices, &e)?;
        Ok(v)
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
    let mut out = vec![[Block::ZERO; 2]; n];
    let chunk = 1 << 12;
    out.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
        let keys = &q[c * chunk..c * chunk + out.len()];
        let (k0, k1) = hash_fanout(start + (c * chunk) as u64, keys, Some(delta), 1);
        for (o, (a, b)) in out.iter_mut().zip(k0.into_iter().zip(k1)) {
            *o = [a, b];
        }
    });
    Ok(out)
}

/// Random OT, receiver: `n` uniform choice bits `b_i` and the keys `H(t_i)` = the sender's
/// `k_{b_i}`.
pub fn rot_recv<R: RandomCotReceiver>(
    ch: &mut Channel,
    src: &mut R,
    n: usize,
) -> Result<(Vec<bool>, Vec<Block>)> {
    let (start, t) = src.next_n(ch, n)?;
    let choices = crate::block::lsbs(&t);
    let mut keys = vec![Block::ZERO; n];
    let chunk = 1 << 12;
    keys.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
        let (h, _) = hash_fanout(
            start + (c * chunk) as u64,
            &t[c * chunk..c * chunk + out.len()],
            None,
            1,
        );
        out.copy_from_slice(&h);
    });
    Ok((choices, keys))
}
