//! Truncation and ring conversion, one primitive: [`trunc_cast`] computes shares of
//! `floor(signed(x) / 2^s) mod 2^L` from shares of x ∈ Z_2^ℓ (down-cast, up-cast, truncation
//! and the fused truncation + up-cast of Nimbus Alg. 5 / Cheetah).
//!
//! Let x_i be the shares, `c = [(x_0 mod 2^s) + (x_1 mod 2^s) ≥ 2^s]` the carry of the dropped
//! bits (error of a local shift, c ∈ {0, 1}) and w the wrap of the shares.
//!
//! * **Down-cast** (L ≤ ℓ − s, kinds other than faithful): local, `((x_i mod 2^{L+s}) >> s)`
//!   reduced mod 2^L; result `floor(x/2^s) − c`. No communication.
//! * [`TruncKind::KnownMsb`] (L > ℓ − s), precondition **|x| < 2^{ℓ−2}**, s ≤ ℓ − 2: the server
//!   adds the bias 2^{ℓ−2}, so `x' = x + 2^{ℓ−2}` has MSB 0 and its wrap is
//!   `w = m_0 ∨ m_1 = m_0 + m_1 − m_0·m_1` (m_i = msb(x'_i)). The term `2^{ℓ−s}·m_0·m_1` mod 2^L
//!   is one additive COT (server sends `m_0` on L − ℓ + s bits, client chooses `m_1`). Result
//!   `Σ(x'_i >> s) − 2^{ℓ−s}·w − 2^{ℓ−2−s}` in Z_2^L = `floor(x/2^s) − c`. Cost: client →
//!   server 1 bit, server → client L − ℓ + s bits per element (**L − ℓ + s + 1 bits**), 2 rounds:
//!   s + 1 bits for a plain truncation (L = ℓ), L − ℓ + 1 for a plain up-cast (s = 0).
//! * [`TruncKind::OneBitError`] (L > ℓ − s), any x: the server adds 2^{ℓ−1} (x' = x + 2^{ℓ−1}
//!   is then the unsigned offset of x), the wrap of x' comes from [`super::wrap`] (millionaire
//!   on ℓ bits) and `2^{ℓ−s}·w` mod 2^L from [`b2a`](fn@super::b2a); result `floor(x/2^s) − c`. Cost:
//!   wrap + b2a (L − ℓ + s bits), `2 + ⌈log2 ⌈ℓ/4⌉⌉ + 2` rounds.
//! * [`TruncKind::Faithful`], any x, exact: as the previous, plus the carry c from a
//!   millionaire on the s low bits (`x'_0 mod 2^s` against `2^s − 1 − (x'_1 mod 2^s)`); c and
//!   `2^{ℓ−s}·w` are made arithmetic by one additive-COT batch (server sends, widths L − 1 and
//!   L − ℓ + s − 1, the second only when positive). Result `Σ(x'_i >> s) + c − 2^{ℓ−s}·w −
//!   2^{ℓ−1−s}` = `floor(x/2^s)` exactly. Cost: wrap (when L > ℓ − s) + millionaire on s bits
//!   (when s > 0) + the batch, run one after the other ([`trunc_cost`] gives bytes and rounds).
use super::acot::acot_server_sends;
use super::b2a::{b2a, b2a_cost, b2a_cots};
use super::drelu::{wrap, wrap_cost, wrap_cots};
use super::millionaire::{millionaire, millionaire_cost, millionaire_cots, DEFAULT_DIGIT};
use super::{check_shares, Cost, CotDemand, Session};
use crate::adapters::AcotLayout;
use mpc_core::{Error, Result, Ring};

/// Which truncation [`trunc_cast`] runs when it cannot be local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncKind {
    /// Fast path, requires |x| < 2^{ℓ−2}; result floor(x/2^s) or one less.
    KnownMsb,
    /// Any x; result floor(x/2^s) or one less.
    OneBitError,
    /// Any x; result exactly floor(x/2^s).
    Faithful,
}

fn check(from: Ring, to: Ring, shift: u32, kind: TruncKind) -> Result<()> {
    if shift >= from.bits() {
        return Err(Error::out_of_range(
            format!("truncation shift on Z_2^{}", from.bits()),
            shift as usize,
            mpc_core::Dims::Below(from.bits() as usize),
        ));
    }
    if kind == TruncKind::KnownMsb && !is_local(from, to, shift) && shift + 2 > from.bits() {
        return Err(Error::out_of_range(
            format!("known-MSB truncation shift on Z_2^{}", from.bits()),
            shift as usize,
            mpc_core::Dims::AtMost(from.bits() as usize - 2),
        ));
    }
    Ok(())
}

fn is_local(from: Ring, to: Ring, shift: u32) -> bool {
    to.bits() + shift <= from.bits()
}

/// The faithful batch's widths: 2·c_0·c_1 (if L ≥ 2), then 2^{ℓ−s+1}·w_0·w_1 (if it survives
/// mod 2^L); `(carry width, wrap width)`, 0 for an absent one.
fn faithful_widths(from: Ring, to: Ring, shift: u32) -> (u32, u32) {
    let (l, big_l) = (from.bits(), to.bits());
    let carry = if shift > 0 { big_l - 1 } else { 0 };
    let wrap = (big_l + shift).saturating_sub(l + 1);
    (carry, wrap)
}

/// Shares of `floor(signed(x) / 2^shift) mod 2^L` (L = `to.bits()`), exactly or up to −1 in
/// the last place depending on `kind` (see the module comment). Label `trunc`.
pub fn trunc_cast(
    sess: &mut Session,
    x: &[u64],
    from: Ring,
    to: Ring,
    shift: u32,
    kind: TruncKind,
) -> Result<Vec<u64>> {
    check_shares(x, from, "trunc_cast")?;
    check(from, to, shift, kind)?;
    let (l, big_l, s) = (from.bits(), to.bits(), shift);
    let server = sess.is_server();
    if kind != TruncKind::Faithful && is_local(from, to, shift) {
        return Ok(x.iter().map(|&v| to.reduce(v >> s)).collect());
    }
    sess.scope("trunc", |sess| match kind {
        TruncKind::KnownMsb => {
            let bias = 1u64 << (l - 2);
            let xb: Vec<u64> = x
                .iter()
                .map(|&v| if server { from.add(v, bias) } else { v })
                .collect();
            let m: Vec<bool> = xb.iter().map(|&v| from.msb(v)).collect();
            let layout = AcotLayout {
                ring: to,
                widths: vec![big_l + s - l],
                fanout: 1,
            };
            let z = acot_server_sends(sess, &layout, x.len(), |u, _, _| m[u] as u64, &m)?;
            Ok((0..x.len())
                .map(|i| {
                    let mut y = to.sub(to.reduce(xb[i] >> s), (m[i] as u64) << (l - s));
                    y = to.add(y, z[i]);
                    if server {
                        y = to.sub(y, 1u64 << (l - 2 - s));
                    }
                    y
                })
                .collect())
        }
        TruncKind::OneBitError => {
            let xb = offset(x, from, server);
            let w = wrap(sess, &xb, from)?;
            let ws = b2a(sess, &w, to, l - s)?;
            Ok((0..x.len())
                .map(|i| {
                    let y = to.sub(to.reduce(xb[i] >> s), ws[i]);
                    if server {
                        to.sub(y, to.reduce(1u64 << (l - 1 - s)))
                    } else {
                        y
                    }
                })
                .collect())
        }
        TruncKind::Faithful => faithful(sess, x, from, to, s),
    })
}

/// `x + 2^{ℓ−1}` (the server's share moves): the unsigned offset of a signed x.
fn offset(x: &[u64], ring: Ring, server: bool) -> Vec<u64> {
    let half = 1u64 << (ring.bits() - 1);
    x.iter()
        .map(|&v| if server { ring.add(v, half) } else { v })
        .collect()
}

fn faithful(sess: &mut Session, x: &[u64], from: Ring, to: Ring, s: u32) -> Result<Vec<u64>> {
    let (l, n) = (from.bits(), x.len());
    let server = sess.is_server();
    let xb = offset(x, from, server);
    let (cw, ww) = faithful_widths(from, to, s);
    let w = if is_local(from, to, s) {
        vec![false; n]
    } else {
        wrap(sess, &xb, from)?
    };
    let c = if s > 0 {
        let low = (1u64 << s) - 1;
        let input: Vec<u64> = xb
            .iter()
            .map(|&v| if server { v & low } else { low - (v & low) })
            .collect();
        millionaire(sess, &input, s, DEFAULT_DIGIT)?
    } else {
        vec![false; n]
    };
    // Terms of the batch: (width, is the carry's); the carry's enters with +, the wrap's with −.
    let terms: Vec<(u32, bool)> = [(cw, true), (ww, false)]
        .into_iter()
        .filter(|t| t.0 > 0)
        .collect();
    let pick = |u: usize, k: usize| if terms[k].1 { c[u] } else { w[u] };
    let cross = if terms.is_empty() {
        vec![0; n]
    } else {
        let choices: Vec<bool> = (0..n)
            .flat_map(|u| (0..terms.len()).map(move |k| pick(u, k)))
            .collect();
        let layout = AcotLayout {
            ring: to,
            widths: terms.iter().map(|t| t.0).collect(),
            fanout: 1,
        };
        let corr = |u: usize, k: usize, _: usize| {
            let b = pick(u, k) as u64;
            if terms[k].1 {
                b
            } else {
                b.wrapping_neg()
            }
        };
        acot_server_sends(sess, &layout, n, corr, &choices)?
    };
    Ok((0..n)
        .map(|i| {
            let mut y = to.reduce(xb[i] >> s);
            y = to.add(y, c[i] as u64);
            if l - s < 64 {
                y = to.sub(y, to.reduce((w[i] as u64) << (l - s)));
            }
            y = to.sub(y, cross[i]);
            if server {
                y = to.sub(y, to.reduce(1u64 << (l - 1 - s)));
            }
            y
        })
        .collect())
}

/// COTs drawn by [`trunc_cast`] on n elements.
pub fn trunc_cots(
    n: usize,
    from: Ring,
    to: Ring,
    shift: u32,
    kind: TruncKind,
) -> Result<CotDemand> {
    check(from, to, shift, kind)?;
    let (l, s) = (from.bits(), shift);
    let local = is_local(from, to, shift);
    Ok(match kind {
        _ if kind != TruncKind::Faithful && local => CotDemand::default(),
        TruncKind::KnownMsb => CotDemand {
            server: n,
            client: 0,
        },
        TruncKind::OneBitError => wrap_cots(n, from).plus(b2a_cots(n, to, l - s)),
        TruncKind::Faithful => {
            let (cw, ww) = faithful_widths(from, to, s);
            let k = (cw > 0) as usize + (ww > 0) as usize;
            let w = if local {
                CotDemand::default()
            } else {
                wrap_cots(n, from)
            };
            w.plus(millionaire_cots(n, s, DEFAULT_DIGIT)?)
                .plus(CotDemand {
                    server: n * k,
                    client: 0,
                })
        }
    })
}

/// Exact cost of [`trunc_cast`] on n elements (label `trunc`; zero when local).
pub fn trunc_cost(n: usize, from: Ring, to: Ring, shift: u32, kind: TruncKind) -> Result<Cost> {
    check(from, to, shift, kind)?;
    let (l, big_l, s) = (from.bits(), to.bits(), shift);
    let local = is_local(from, to, shift);
    Ok(match kind {
        _ if kind != TruncKind::Faithful && local => Cost::default(),
        TruncKind::KnownMsb => {
            Cost::flight(0, n).then(Cost::flight(n * (big_l + s - l) as usize, 0))
        }
        TruncKind::OneBitError => wrap_cost(n, from).then(b2a_cost(n, to, l - s)),
        TruncKind::Faithful => {
            let (cw, ww) = faithful_widths(from, to, s);
            let k = (cw > 0) as usize + (ww > 0) as usize;
            let w = if local {
                Cost::default()
            } else {
                wrap_cost(n, from)
            };
            let batch = if k == 0 {
                Cost::default()
            } else {
                Cost::flight(0, n * k).then(Cost::flight(n * (cw + ww) as usize, 0))
            };
            w.then(millionaire_cost(n, s, DEFAULT_DIGIT)?).then(batch)
        }
    })
}
