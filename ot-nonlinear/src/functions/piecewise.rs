//! Piecewise polynomial on shares with server-held breakpoints and public coefficients,
//! following a [`PiecewisePlan`] (Nimbus Alg. 2–3 restated on the primitives of
//! [`crate::mpc`]); the plaintext mirror is [`crate::approx::fixed::eval_piecewise`].
//!
//! What it computes: for x ∈ Z_2^64 (18 fraction bits) and k breakpoints,
//! 1. `b_j = [x ≥ T_j]` by one reduced-ring DReLU on the k values `x − T_j` of each element
//!    (the server subtracts T_j from its share, so the client's code never sees T_j; the
//!    client's share is x's for every j, so the k comparisons share their leaf OTs:
//!    [`drelu_reduced_lanes`]): millionaire on `cmp_bits − 1` bits with k lanes; selection bits
//!    `b_i ⊕ b_{i+1}` are local XORs;
//! 2. `u` = round(x / 2^{18−poly_frac}) mod 2^poly_bits: the server adds 2^{s−1}, then a free
//!    local down-cast;
//! 3. each power of the plan's schedule by one [`square_narrow`] or [`mul_narrow`] in
//!    Z_2^poly_bits and one known-MSB truncation by `poly_frac` (poly_frac + 1 bits); the
//!    products read the low [`square_bits`] / [`mul_bits`] bits of their operands (exact where
//!    a polynomial piece can apply, garbage elsewhere, where the muxes drop it);
//! 4. the pieces' public-coefficient combinations (local), one [`mux`] in Z_2^poly_bits for all
//!    polynomial pieces, one fused known-MSB truncation + cast into Z_2^out_bits;
//! 5. one [`mux`] in Z_2^out_bits for the identity pieces (`x mod 2^out_bits`);
//! 6. the caller's choice: the sum in Z_2^out_bits, or up-cast to Z_2^64 (known-MSB,
//!    64 − out_bits + 1 bits).
//!
//! Who sends what: only what the primitives send (each under its own label, inside
//! `piecewise`). Cost: [`piecewise_cost`] (exact bytes each way; rounds as the sum of the
//! steps' rounds, 2 per COT step, the comparisons 2 + ⌈log2 ⌈(cmp_bits − 1)/4⌉⌉). For the
//! Nimbus GELU plan (2 comparisons on 17 bits sharing their leaves, square on 22 bits, 9-bit
//! truncation, mux on 22 and 30 bits, 9- and 35-bit casts) that is ≈ 646 bits per element and
//! 16 rounds.
//!
//! Accuracy against the mirror: equal up to the truncation carries (each truncation may return
//! one less than the floor; [`PiecewisePlan::carry_bound`]) and, for `0 ≤ x − T_j < 2^-cmp_frac`,
//! the piece on the left of T_j.
//!
//! What is revealed: nothing beyond the public plan and coefficients (see docs/security.md,
//! "Functions"); breakpoints stay with the server.
use super::{total_cost, total_cots};
use crate::approx::fixed::piece_selection;
use crate::approx::Piece;
use crate::approx::PiecewisePlan;
use crate::mpc::drelu::{drelu_lanes_cost, drelu_lanes_cots, drelu_reduced_lanes, lanes_minus};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::product::{
    mul_narrow, mul_narrow_cost, mul_narrow_cots, square_narrow, square_narrow_cost,
    square_narrow_cots,
};
use crate::mpc::trunc::{trunc_cast, trunc_cost, trunc_cots, TruncKind};
use crate::mpc::{Cost, CotDemand, Session, Side};
use mpc_core::{Error, Result, Ring};

/// The public description of a piecewise function: its pieces and plan. The breakpoints are a
/// separate, server-only input.
#[derive(Clone, Copy, Debug)]
pub struct PiecewiseSpec<'a> {
    /// `k + 1` pieces for k breakpoints (public; coefficients included).
    pub pieces: &'a [Piece],
    /// Rings and fraction bits of every step.
    pub plan: &'a PiecewisePlan,
}

/// Where the result is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Z_2^out_bits with 18 fraction bits (for callers that keep working in a small ring).
    Small,
    /// Z_2^64 with 18 fraction bits.
    Linear,
}

impl PiecewiseSpec<'_> {
    fn breakpoints(&self) -> usize {
        self.pieces.len().saturating_sub(1)
    }

    fn has(&self, f: impl Fn(&Piece) -> bool) -> usize {
        self.pieces.iter().filter(|p| f(p)).count()
    }

    fn polys(&self) -> usize {
        self.has(|p| matches!(p, Piece::Poly(_)))
    }

    fn identities(&self) -> usize {
        self.has(|p| *p == Piece::Identity)
    }

    /// The powers schedule (the plan's, on these pieces).
    fn schedule(&self) -> Vec<crate::approx::plan::PowerStep> {
        let pw = crate::approx::PiecewisePoly {
            breakpoints: vec![0.0; self.breakpoints()],
            pieces: self.pieces.to_vec(),
        };
        self.plan.power_schedule(&pw)
    }

    /// k of the square at schedule position `i` ([`square_bits`], or ℓ, the plain square): the
    /// narrow square's first flight is both parties', which merges with a preceding flight of
    /// the client alone so that its last flight becomes the client's ([`Cost::then`] does not
    /// model that), so a first square that follows the comparisons directly (u is a local
    /// down-cast and the comparison tree ends with the client's flight) stays plain.
    fn square_k(&self, n: usize, i: usize) -> u32 {
        let p = self.plan;
        let (pr, s) = (p.poly_bits, p.input_shift());
        let u_local = trunc_cost(n, Ring::R64, pr, s, TruncKind::KnownMsb)
            .expect("validated plan")
            .rounds
            == 0;
        let cmp = p.cmp_bits;
        let after_client = self.breakpoints() > 0
            && drelu_lanes_cost(n.max(1), self.breakpoints(), cmp).last == Side::Client;
        if i == 0 && u_local && after_client {
            pr.bits()
        } else {
            square_bits(pr)
        }
    }

    /// The steps, in order, as (cost, COTs): shared by [`piecewise_cost`] and
    /// [`piecewise_cots`] so the two cannot disagree; `prepared`: the power products are
    /// openings on correlations made offline ([`PowerProducts`]).
    fn steps(&self, n: usize, output: Output, prepared: bool) -> Vec<(Cost, CotDemand)> {
        let p = self.plan;
        let (pr, or, cmp) = (p.poly_bits, p.out_bits, p.cmp_bits);
        let k = self.breakpoints();
        let mut v = Vec::new();
        if k > 0 {
            v.push((drelu_lanes_cost(n, k, cmp), drelu_lanes_cots(n, k, cmp)));
        }
        if self.polys() > 0 {
            // u: free (a local down-cast) when input_shift + poly_bits ≤ 64.
            let s = p.input_shift();
            v.push((
                trunc_cost(n, Ring::R64, pr, s, TruncKind::KnownMsb).expect("validated plan"),
                trunc_cots(n, Ring::R64, pr, s, TruncKind::KnownMsb).expect("validated plan"),
            ));
            for (i, st) in self.schedule().into_iter().enumerate() {
                let operands = if st.a == st.b { 1 } else { 2 };
                v.push(if prepared {
                    let bits = operands * n * pr.bits() as usize;
                    (Cost::flight(bits, bits), CotDemand::default())
                } else if st.a == st.b {
                    let k = self.square_k(n, i);
                    (square_narrow_cost(n, pr, k), square_narrow_cots(n, pr, k))
                } else {
                    let k = mul_bits(pr, p.poly_frac);
                    (mul_narrow_cost(n, pr, k), mul_narrow_cots(n, pr, k))
                });
                let t = (pr, pr, p.poly_frac, TruncKind::KnownMsb);
                v.push((
                    trunc_cost(n, t.0, t.1, t.2, t.3).expect("validated plan"),
                    trunc_cots(n, t.0, t.1, t.2, t.3).expect("validated plan"),
                ));
            }
            let m = self.polys() * n;
            v.push((mux_cost(m, pr), mux_cots(m)));
            let s = p.output_shift();
            v.push((
                trunc_cost(n, pr, or, s, TruncKind::KnownMsb).expect("validated plan"),
                trunc_cots(n, pr, or, s, TruncKind::KnownMsb).expect("validated plan"),
            ));
        }
        if self.identities() > 0 {
            let m = self.identities() * n;
            v.push((mux_cost(m, or), mux_cots(m)));
        }
        if output == Output::Linear {
            v.push((
                trunc_cost(n, or, Ring::R64, 0, TruncKind::KnownMsb).expect("validated plan"),
                trunc_cots(n, or, Ring::R64, 0, TruncKind::KnownMsb).expect("validated plan"),
            ));
        }
        v
    }
}

/// Bits of the operand the schedule's squares read (k of [`square_narrow`], exact for
/// |x| < 2^{k−2}): ⌈ℓ/2⌉ + 2 on Z_2^ℓ = poly_bits. [`crate::approx::PiecewisePlan::validate`]
/// keeps every power inside |u^{2a}| < 2^{ℓ−2} (at 2·poly_frac bits) on every polynomial
/// piece, so a squared operand is below 2^{(ℓ−2)/2} there: the square is exact with a factor
/// 2 to spare (the comparisons' 2^-cmp_frac fuzz and the rounding of u), the same value as
/// the full square. Where no polynomial piece applies the square's value is dropped by the
/// muxes, as the other steps' (whose known-MSB truncations assume the same range).
pub fn square_bits(poly: Ring) -> u32 {
    poly.bits().div_ceil(2) + 2
}

/// Bits of the operands the schedule's products of distinct powers read (k of
/// [`mul_narrow`], exact for operands below 2^{k−2}): with u^{a+b} < 2^{ℓ−2−2f} on every
/// polynomial piece (validate, f = poly_frac), an operand u^a (a ≥ b ≥ 1) at f bits is below
/// 2^f where |u| ≤ 1 and below 2^{ℓ−2−f} where |u| > 1; one bit more for the fuzz and the
/// carries, and at least ⌈ℓ/2⌉.
pub fn mul_bits(poly: Ring, frac: u32) -> u32 {
    let l = poly.bits();
    (frac.max(l.saturating_sub(2 + frac)) + 3).max(l.div_ceil(2))
}

/// Exact bytes each way and the rounds of [`piecewise`] on n elements (label `piecewise`).
pub fn piecewise_cost(spec: &PiecewiseSpec, n: usize, output: Output) -> Cost {
    total_cost(spec.steps(n, output, false))
}

/// COTs drawn by [`piecewise`] on n elements (pass to [`Session::reserve`] beforehand).
pub fn piecewise_cots(spec: &PiecewiseSpec, n: usize, output: Output) -> CotDemand {
    total_cots(spec.steps(n, output, false))
}

/// Exact bytes each way of [`piecewise_with`] on n elements with its power products on
/// correlations made offline: each product one opening of its operands (both parties send
/// n·poly_bits bits per operand at once). Rounds: an upper bound (a flight sent by both
/// parties at once may join a neighbouring one of the party whose clock is behind).
pub fn piecewise_prepared_cost(spec: &PiecewiseSpec, n: usize, output: Output) -> Cost {
    total_cost(spec.steps(n, output, true))
}

/// COTs drawn by [`piecewise_with`] on n elements with its power products on correlations
/// made offline (the comparisons, truncations and multiplexers).
pub fn piecewise_prepared_cots(spec: &PiecewiseSpec, n: usize, output: Output) -> CotDemand {
    total_cots(spec.steps(n, output, true))
}

/// The power products of a piecewise polynomial (step 3), on Z_2^ℓ = the plan's poly_bits:
/// each returns shares of the exact product modulo 2^ℓ of its operands' values (the narrow
/// products read only their operands' low bits: the same value wherever a polynomial piece
/// applies, [`square_bits`], [`mul_bits`]; elsewhere the muxes drop it).
pub trait PowerProducts {
    /// Shares of x² (step `step` of the schedule); `k`: the bits a narrow square may read.
    fn square(
        &mut self,
        sess: &mut Session,
        step: usize,
        x: &[u64],
        ring: Ring,
        k: u32,
    ) -> Result<Vec<u64>>;
    /// Shares of x·y (step `step`); `k`: the bits a narrow product may read.
    fn mul(
        &mut self,
        sess: &mut Session,
        step: usize,
        x: &[u64],
        y: &[u64],
        ring: Ring,
        k: u32,
    ) -> Result<Vec<u64>>;
}

/// The narrow Gilboa products on the session's COTs ([`square_narrow`], [`mul_narrow`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OtPowers;

impl PowerProducts for OtPowers {
    fn square(
        &mut self,
        sess: &mut Session,
        _: usize,
        x: &[u64],
        ring: Ring,
        k: u32,
    ) -> Result<Vec<u64>> {
        square_narrow(sess, x, ring, k)
    }

    fn mul(
        &mut self,
        sess: &mut Session,
        _: usize,
        x: &[u64],
        y: &[u64],
        ring: Ring,
        k: u32,
    ) -> Result<Vec<u64>> {
        mul_narrow(sess, x, y, ring, k)
    }
}

/// The power schedule of `spec` as (is a square) per step, in order: what correlations for
/// [`PowerProducts`] must serve.
pub fn power_steps(spec: &PiecewiseSpec) -> Vec<bool> {
    if spec.polys() == 0 {
        return Vec::new();
    }
    spec.schedule().iter().map(|st| st.a == st.b).collect()
}

/// Shares of the piecewise function of `x` (shares in Z_2^64, 18 fraction bits). The server
/// passes `Some(breakpoints)` (k values, increasing), the client `None`. Label `piecewise`.
pub fn piecewise(
    sess: &mut Session,
    spec: &PiecewiseSpec,
    breakpoints: Option<&[f64]>,
    x: &[u64],
    output: Output,
) -> Result<Vec<u64>> {
    piecewise_with(sess, spec, breakpoints, x, output, &mut OtPowers)
}

/// [`piecewise`] with the power products run by `powers`.
pub fn piecewise_with(
    sess: &mut Session,
    spec: &PiecewiseSpec,
    breakpoints: Option<&[f64]>,
    x: &[u64],
    output: Output,
    powers: &mut dyn PowerProducts,
) -> Result<Vec<u64>> {
    let p = spec.plan;
    let k = spec.breakpoints();
    if spec.pieces.is_empty() {
        return Err(Error::InvalidArgument("piecewise: no pieces".into()));
    }
    let thresholds: Vec<u64> = match (sess.is_server(), breakpoints) {
        (true, Some(b)) if b.len() == k => b.iter().map(|&t| p.breakpoint(t)).collect(),
        (true, Some(b)) => {
            return Err(Error::shape(
                format!("piecewise: breakpoints for {} pieces", spec.pieces.len()),
                b.len(),
                k,
            ))
        }
        (true, None) => {
            return Err(Error::InvalidArgument(
                "piecewise: the breakpoint holder passed no breakpoints".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(Error::InvalidArgument(
                "piecewise: breakpoints passed by the party that holds none".into(),
            ))
        }
        (false, None) => vec![0; k],
    };
    if x.iter().any(|&v| !Ring::R64.contains(v)) {
        return Err(Error::out_of_range(
            "piecewise input",
            "a value outside Z_2^64",
            "elements of Z_2^64",
        ));
    }
    let n = x.len();
    let (pr, or) = (p.poly_bits, p.out_bits);
    let server = sess.is_server();
    sess.scope("piecewise", |sess| {
        // 1. Comparisons, all breakpoints in one batch: the server's lane i·k + j is x_i − T_j,
        // the client's share is x_i's for every j (lanes sharing the leaf OTs).
        let shifted = lanes_minus(server, x, &thresholds, Ring::R64);
        let b = if k > 0 {
            drelu_reduced_lanes(
                sess,
                &shifted,
                Ring::R64,
                p.cmp_drop(),
                p.cmp_bits.bits(),
                k,
            )?
        } else {
            vec![]
        };
        // Selection shares: the server holds b_0 = 1, nobody holds b_{k+1}; piece_selection
        // applied to shares is the local XOR b_i ⊕ b_{i+1} (constants only in the server's).
        let sel: Vec<Vec<bool>> = (0..n)
            .map(|i| {
                let bi: Vec<bool> = b[i * k..(i + 1) * k].to_vec();
                let mut s = piece_selection(&bi);
                if !server {
                    s[0] ^= true; // the client's share of b_0 is 0, not 1
                }
                s
            })
            .collect();
        let mut out = vec![0u64; n];
        // 2–4. Polynomial pieces.
        if spec.polys() > 0 {
            let s = p.input_shift();
            let half = if server && s > 0 { 1u64 << (s - 1) } else { 0 };
            let xr: Vec<u64> = x.iter().map(|&v| v.wrapping_add(half)).collect();
            let u = trunc_cast(sess, &xr, Ring::R64, pr, s, TruncKind::KnownMsb)?;
            let schedule = spec.schedule();
            let top = schedule.last().map_or(1, |st| st.k);
            let mut pow: Vec<Vec<u64>> = vec![Vec::new(); top + 1];
            pow[1] = u;
            for (i, st) in schedule.into_iter().enumerate() {
                let prod = if st.a == st.b {
                    powers.square(sess, i, &pow[st.a], pr, spec.square_k(n, i))?
                } else {
                    let k = mul_bits(pr, p.poly_frac);
                    powers.mul(sess, i, &pow[st.a], &pow[st.b], pr, k)?
                };
                pow[st.k] = trunc_cast(sess, &prod, pr, pr, p.poly_frac, TruncKind::KnownMsb)?;
            }
            let mut vals = Vec::with_capacity(spec.polys() * n);
            let mut bits = Vec::with_capacity(spec.polys() * n);
            for (i, piece) in spec.pieces.iter().enumerate() {
                let Piece::Poly(c) = piece else { continue };
                let c = p.coefficients(c);
                for e in 0..n {
                    let mut v = if server { c[0] } else { 0 };
                    for (kk, &ck) in c.iter().enumerate().skip(1) {
                        if ck != 0 {
                            v = pr.add(v, pr.mul(ck, pow[kk][e]));
                        }
                    }
                    vals.push(v);
                    bits.push(sel[e][i]);
                }
            }
            let muxed = mux(sess, &bits, &vals, pr)?;
            let sum: Vec<u64> = (0..n)
                .map(|e| (0..spec.polys()).fold(0, |a, j| pr.add(a, muxed[j * n + e])))
                .collect();
            let cast = trunc_cast(sess, &sum, pr, or, p.output_shift(), TruncKind::KnownMsb)?;
            out = cast;
        }
        // 5. Identity pieces.
        if spec.identities() > 0 {
            let mut vals = Vec::new();
            let mut bits = Vec::new();
            for (i, piece) in spec.pieces.iter().enumerate() {
                if *piece != Piece::Identity {
                    continue;
                }
                for e in 0..n {
                    vals.push(or.reduce(x[e]));
                    bits.push(sel[e][i]);
                }
            }
            let muxed = mux(sess, &bits, &vals, or)?;
            for (j, m) in muxed.iter().enumerate() {
                out[j % n] = or.add(out[j % n], *m);
            }
        }
        // 6. Up-cast.
        match output {
            Output::Small => Ok(out),
            Output::Linear => trunc_cast(sess, &out, or, Ring::R64, 0, TruncKind::KnownMsb),
        }
    })
}
