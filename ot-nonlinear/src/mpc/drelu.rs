//! DReLU, MSB, wrap and comparisons with a server-held threshold, on arithmetic shares.
//!
//! * [`msb`]: `msb(x) = msb(x_0) ⊕ msb(x_1) ⊕ carry`, where the carry of the low ℓ − 1 bits is
//!   `[x_0' + x_1' ≥ 2^{ℓ−1}] = [x_0' > 2^{ℓ−1} − 1 − x_1']` (x_i' = x_i mod 2^{ℓ−1}): one
//!   [`millionaire`] on ℓ − 1 bits, the server's input `x_0'`, the client's `2^{ℓ−1} − 1 − x_1'`.
//! * [`drelu`]: `[x ≥ 0] = 1 ⊕ msb(x)` (the server flips its share).
//! * [`drelu_reduced`]: DReLU on a reduced ring Z_2^k after dropping d low bits, each party
//!   locally: `y_i = (x_i mod 2^{k+d}) >> d`, so `y = floor(x / 2^d) − c mod 2^k` with a carry
//!   c ∈ {0, 1} that depends on the shares. It returns `[floor(x/2^d) − c ≥ 0]`, which equals
//!   `[x ≥ 0]` for `2^d ≤ x < 2^{d+k−1}` and for `−2^{d+k−1} + 2^d ≤ x < 0`; for `0 ≤ x < 2^d`
//!   it may return 0; outside `[−2^{d+k−1} + 2^d, 2^{d+k−1})` it is meaningless. It costs a
//!   millionaire on k − 1 bits instead of ℓ − 1.
//! * [`drelu_lanes`] / [`drelu_reduced_lanes`]: `[x − T_c ≥ 0]` for several server-held
//!   T_c at once (a piecewise function's breakpoints, rsqrt's powers of two): the server
//!   subtracts T_c from its share, the client's share is the same for every c, so one
//!   [`millionaire_lanes`] compares the server's L values against the client's one and the
//!   lanes share the leaf OTs.
//! * [`wrap`]: `[x_0 + x_1 ≥ 2^ℓ]` = millionaire on ℓ bits of `x_0` against `2^ℓ − 1 − x_1`.
//! * [`greater_equal_threshold`]: `[x ≥ T]` for a T only the server knows: the server
//!   subtracts T from its share and the parties run [`drelu`], so the client never sees T.
//!   Exact when `x − T` does not overflow the signed range of Z_2^ℓ.
//!
//! Who sends what and the cost: exactly the millionaire's
//! ([`super::millionaire::millionaire_cost`] on ℓ − 1 bits, ℓ bits for [`wrap`], k − 1 for
//! the reduced DReLU; [`super::millionaire::millionaire_lanes_cost`] for the lanes) under the
//! labels `drelu`, `wrap`, `threshold`; no other message.
//! Ring Z_2^1: the carry is empty, DReLU is local (0 bits, 0 rounds).
use super::millionaire::{
    millionaire, millionaire_lanes, millionaire_lanes_cost, millionaire_lanes_cots, DEFAULT_DIGIT,
};
use super::{check_shares, Cost, CotDemand, Session};
use mpc_core::{Error, Result, Ring};

/// XOR shares of msb(x) (the sign bit) for arithmetic shares `x` in `ring`.
pub fn msb(sess: &mut Session, x: &[u64], ring: Ring) -> Result<Vec<bool>> {
    msb_lanes(sess, x, ring, 1)
}

/// [`msb`] of `lanes` values per element whose client shares are equal: the server passes its
/// n·lanes shares element-major (`x[u·lanes + c]`), the client its n shares; the result is
/// element-major.
pub fn msb_lanes(sess: &mut Session, x: &[u64], ring: Ring, lanes: usize) -> Result<Vec<bool>> {
    msb_with(sess, x, ring, lanes, DEFAULT_DIGIT)
}

/// [`msb_lanes`] with leaf digits of `digit` bits (1..=8).
fn msb_with(
    sess: &mut Session,
    x: &[u64],
    ring: Ring,
    lanes: usize,
    digit: u32,
) -> Result<Vec<bool>> {
    check_shares(x, ring, "msb")?;
    let low = ring.bits() - 1;
    let low_mask = Ring::new(low.max(1))?.mask() * (low > 0) as u64;
    let server = sess.is_server();
    let input: Vec<u64> = x
        .iter()
        .map(|&v| {
            if server {
                v & low_mask
            } else {
                low_mask - (v & low_mask)
            }
        })
        .collect();
    let carry = millionaire_lanes(sess, &input, lanes, low, digit)?;
    let per = if server { 1 } else { lanes };
    Ok(carry
        .iter()
        .enumerate()
        .map(|(i, &c)| ring.msb(x[i / per]) ^ c)
        .collect())
}

/// XOR shares of `[x ≥ 0]` (signed view of Z_2^ℓ). Label `drelu`.
pub fn drelu(sess: &mut Session, x: &[u64], ring: Ring) -> Result<Vec<bool>> {
    drelu_lanes(sess, x, ring, 1)
}

/// [`drelu`] of `lanes` values per element whose client shares are equal (e.g. x − T_c for
/// server-held T_c); shares laid out as in [`msb_lanes`]. Label `drelu`.
pub fn drelu_lanes(sess: &mut Session, x: &[u64], ring: Ring, lanes: usize) -> Result<Vec<bool>> {
    drelu_with(sess, x, ring, lanes, DEFAULT_DIGIT)
}

/// [`drelu`] whose millionaire cuts the inputs into leaf digits of `digit` bits (1..=8)
/// instead of [`DEFAULT_DIGIT`]: e.g. 7 on Z_2^15 gives two digits, a one-gate tree, 16 COTs
/// and 3 rounds instead of 20 and 4, for 2^7-message leaf OTs. Label `drelu`.
pub fn drelu_digit(sess: &mut Session, x: &[u64], ring: Ring, digit: u32) -> Result<Vec<bool>> {
    drelu_with(sess, x, ring, 1, digit)
}

fn drelu_with(
    sess: &mut Session,
    x: &[u64],
    ring: Ring,
    lanes: usize,
    digit: u32,
) -> Result<Vec<bool>> {
    sess.scope("drelu", |sess| {
        let server = sess.is_server();
        Ok(msb_with(sess, x, ring, lanes, digit)?
            .into_iter()
            .map(|b| b ^ server)
            .collect())
    })
}

/// COTs drawn by [`drelu_digit`] on n elements of `ring` (an error for a digit outside 1..=8).
pub fn drelu_digit_cots(n: usize, ring: Ring, digit: u32) -> Result<CotDemand> {
    millionaire_lanes_cots(n, 1, ring.bits() - 1, digit)
}

/// Exact cost of [`drelu_digit`] on n elements of `ring` (an error for a digit outside 1..=8).
pub fn drelu_digit_cost(n: usize, ring: Ring, digit: u32) -> Result<Cost> {
    millionaire_lanes_cost(n, 1, ring.bits() - 1, digit)
}

/// COTs drawn by [`drelu`] (and [`msb`]) on n elements of `ring`.
pub fn drelu_cots(n: usize, ring: Ring) -> CotDemand {
    drelu_lanes_cots(n, 1, ring)
}

/// Exact cost of [`drelu`] on n elements of `ring`.
pub fn drelu_cost(n: usize, ring: Ring) -> Cost {
    drelu_lanes_cost(n, 1, ring)
}

/// COTs drawn by [`drelu_lanes`] on n elements of `lanes` values each.
pub fn drelu_lanes_cots(n: usize, lanes: usize, ring: Ring) -> CotDemand {
    millionaire_lanes_cots(n, lanes, ring.bits() - 1, DEFAULT_DIGIT)
        .expect("ℓ − 1 ≤ 63 bits, digit 4")
}

/// Exact cost of [`drelu_lanes`] on n elements of `lanes` values each.
pub fn drelu_lanes_cost(n: usize, lanes: usize, ring: Ring) -> Cost {
    millionaire_lanes_cost(n, lanes, ring.bits() - 1, DEFAULT_DIGIT)
        .expect("ℓ − 1 ≤ 63 bits, digit 4")
}

/// Approximate DReLU on the reduced ring Z_2^keep after dropping `drop` low bits (see the
/// module comment for exactly when it equals `[x ≥ 0]`). Needs `drop + keep ≤ ℓ`, keep ≥ 1.
/// Label `drelu` (on Z_2^keep).
pub fn drelu_reduced(
    sess: &mut Session,
    x: &[u64],
    ring: Ring,
    drop: u32,
    keep: u32,
) -> Result<Vec<bool>> {
    drelu_reduced_lanes(sess, x, ring, drop, keep, 1)
}

/// [`drelu_reduced`] of `lanes` values per element whose client shares are equal; shares laid
/// out as in [`msb_lanes`] (the reduction is local, so the client's reduced shares are equal
/// too). Costs: [`drelu_lanes_cost`] on Z_2^keep.
pub fn drelu_reduced_lanes(
    sess: &mut Session,
    x: &[u64],
    ring: Ring,
    drop: u32,
    keep: u32,
    lanes: usize,
) -> Result<Vec<bool>> {
    check_shares(x, ring, "drelu_reduced")?;
    if keep == 0 || drop + keep > ring.bits() {
        return Err(Error::out_of_range(
            format!("reduced DReLU: drop {drop} + keep {keep} bits with keep ≥ 1"),
            (drop + keep) as usize,
            mpc_core::Dims::AtMost(ring.bits() as usize),
        ));
    }
    let small = Ring::new(keep)?;
    let y: Vec<u64> = x.iter().map(|&v| small.reduce(v >> drop)).collect();
    drelu_lanes(sess, &y, small, lanes)
}

/// The lanes of [`drelu_lanes`] for `x − T_c`, public or server-held T_c (`ts`, ring
/// elements; the client's are ignored): the server's shares `x_u − T_c` element-major, the
/// client's `x_u` unchanged.
pub fn lanes_minus(server: bool, x: &[u64], ts: &[u64], ring: Ring) -> Vec<u64> {
    if server {
        x.iter()
            .flat_map(|&v| ts.iter().map(move |&t| ring.sub(v, t)))
            .collect()
    } else {
        x.to_vec()
    }
}

/// XOR shares of the wrap bit `[x_0 + x_1 ≥ 2^ℓ]` of arithmetic shares `x`. Label `wrap`.
pub fn wrap(sess: &mut Session, x: &[u64], ring: Ring) -> Result<Vec<bool>> {
    check_shares(x, ring, "wrap")?;
    let server = sess.is_server();
    let input: Vec<u64> = x
        .iter()
        .map(|&v| if server { v } else { ring.mask() - v })
        .collect();
    sess.scope("wrap", |sess| {
        millionaire(sess, &input, ring.bits(), DEFAULT_DIGIT)
    })
}

/// COTs drawn by [`wrap`] on n elements.
pub fn wrap_cots(n: usize, ring: Ring) -> CotDemand {
    millionaire_lanes_cots(n, 1, ring.bits(), DEFAULT_DIGIT).expect("ℓ ≤ 64 bits, digit 4")
}

/// Exact cost of [`wrap`] on n elements.
pub fn wrap_cost(n: usize, ring: Ring) -> Cost {
    millionaire_lanes_cost(n, 1, ring.bits(), DEFAULT_DIGIT).expect("ℓ ≤ 64 bits, digit 4")
}

/// XOR shares of `[x ≥ T]` (signed) where only the server knows T: the server passes
/// `Some(T)` (a ring element, read signed), the client `None`. Label `threshold`.
pub fn greater_equal_threshold(
    sess: &mut Session,
    x: &[u64],
    ring: Ring,
    threshold: Option<u64>,
) -> Result<Vec<bool>> {
    check_shares(x, ring, "threshold")?;
    let shifted: Vec<u64> = match (sess.is_server(), threshold) {
        (true, Some(t)) if ring.contains(t) => x.iter().map(|&v| ring.sub(v, t)).collect(),
        (false, None) => x.to_vec(),
        (true, _) => {
            return Err(Error::InvalidArgument(
                "the threshold holder must pass its threshold, a ring element".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(Error::InvalidArgument(
                "threshold passed by the party that holds none (pass None)".into(),
            ))
        }
    };
    sess.scope("threshold", |sess| drelu(sess, &shifted, ring))
}
