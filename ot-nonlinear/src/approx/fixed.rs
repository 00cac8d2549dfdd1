//! Plaintext fixed-point evaluators of the nonlinear functions, on ring elements.
//!
//! Every function takes and returns `u64` ring elements; activations are in
//! [`FixedPoint::LINEAR`] (Z_2^64, f = 18). Every product is followed by an explicit truncation
//! ([`trunc`]: floor of the signed value / 2^s), so a secure protocol built from faithful
//! truncations reproduces these results bit for bit.
//!
//! Shared by every set (PUMA-style, on Z_2^64 with 18 bits):
//! * reciprocal of 2^-18 ≤ x < 2^18: normalise c = x / 2^{k+1} ∈ [0.5, 1) by the highest set
//!   bit k, w = 2.9142 − 2c, [`RECIPROCAL_ITERATIONS`] Goldschmidt steps, scale back by
//!   2^{f−1−k} (both scalings one product with 2^{35−k} and a truncation by 18);
//! * rsqrt (LayerNorm, RMSNorm): its mirror is [`super::layernorm::rsqrt`];
//! * tanh (pooler): sign(x) (1 − e)/(1 + e) with e = exp(−|x|)², exp by 8 squarings;
//! * public scalars such as 1/n are encoded with [`PUBLIC_FRAC_BITS`] fraction bits.
use super::piecewise_poly::{Piece, PiecewisePoly};
use super::plan::{PiecewisePlan, SoftmaxPlan};
use super::score_mask::ScoreMask;
use super::tables::{ApproxSet, ExpMethod};
use mpc_core::{FixedPoint, Ring};
use std::ops::Range;

/// Fraction bits of public scalar multipliers (1/n in means, 1/T in pooling).
pub const PUBLIC_FRAC_BITS: u32 = 30;
/// Goldschmidt iterations of the reciprocal (relative error ≈ 0.0858^{2^2} ≈ 5e-5).
pub const RECIPROCAL_ITERATIONS: usize = 2;
/// The reciprocal's initial guess of 1/c on [0.5, 1): w = 2.9142 − 2c (|1 − c·w| ≤ 0.0858).
pub const RECIPROCAL_INIT: f64 = 2.9142;
/// Candidate positions of the reciprocal's highest bit: 2^-18 ≤ x < 2^18 (x ∈ [1, 2^36) at
/// 18 fraction bits).
pub const RECIPROCAL_BITS: u32 = 36;
/// tanh's exp by squarings: t and the lower bound (exp(−|x|) is 0 for |x| > 7).
pub const TANH_EXP: (u32, f64) = (8, -7.0);
/// Candidate highest bits of tanh's denominator 1 + e ∈ [1, 2] (raw [2^18, 2^19]).
pub const TANH_DENOMINATOR_BITS: Range<u32> = 18..20;
const LIN: FixedPoint = FixedPoint::LINEAR;

/// Truncation by `s` in `ring`: floor(signed(x) / 2^s), reduced into the ring.
#[inline]
pub fn trunc(ring: Ring, x: u64, s: u32) -> u64 {
    ring.from_signed(ring.to_signed(x) >> s)
}

/// Truncation by `s` combined with a change of ring: the signed value of `x` in `from`, shifted
/// right by `s`, reduced into `to`. A down-cast keeps the low bits (free); an up-cast
/// sign-extends (the fused truncation + up-cast of Nimbus Alg. 5).
#[inline]
pub fn trunc_cast(x: u64, from: Ring, to: Ring, s: u32) -> u64 {
    to.from_signed(from.to_signed(x) >> s)
}

/// a · b truncated by f in `fp`.
#[inline]
pub fn mul_trunc(fp: FixedPoint, a: u64, b: u64) -> u64 {
    trunc(fp.ring(), fp.ring().mul(a, b), fp.frac_bits())
}

/// Multiplication of `x` (f bits) by a public real `c`, encoded with [`PUBLIC_FRAC_BITS`] bits,
/// then truncated back to f bits.
pub fn mul_public(fp: FixedPoint, x: u64, c: f64) -> u64 {
    let enc = (c * (PUBLIC_FRAC_BITS as f64).exp2()).round() as i64;
    trunc(
        fp.ring(),
        fp.ring().mul(x, fp.ring().from_signed(enc)),
        PUBLIC_FRAC_BITS,
    )
}

/// Encodes a constant known to fit (validated tables, small literals).
fn enc(fp: FixedPoint, x: f64) -> u64 {
    fp.encode(x).expect("constant fits the fixed-point format")
}

/// Horner's rule in `fp`, returning the last `acc·x + c_0` at 2f fraction bits (untruncated):
/// `acc ← c_d`; for k = d−1 … 0: `p ← acc·x + c_k` (c_k at 2f bits), `acc ← p / 2^f`.
pub fn horner_wide(fp: FixedPoint, coeffs: &[f64], x: u64) -> u64 {
    let ring = fp.ring();
    let wide = FixedPoint::new(ring, 2 * fp.frac_bits()).expect("validated format");
    let d = coeffs.len() - 1;
    let mut acc = enc(fp, coeffs[d]);
    let mut p = 0;
    for k in (0..d).rev() {
        p = ring.add(ring.mul(acc, x), enc(wide, coeffs[k]));
        acc = trunc(ring, p, fp.frac_bits());
    }
    p
}

/// The ideal value of the reduced-ring DReLU: `[⌊x / 2^drop⌋ ≥ 0]` read on Z_2^keep, i.e. the
/// most significant bit of `⌊x / 2^drop⌋ mod 2^keep` is 0. Equal to `[x ≥ 0]` for
/// |x| < 2^{drop + keep − 1}; the secure version may answer 0 when 0 ≤ x < 2^drop.
#[inline]
pub fn drelu_reduced(x: u64, drop: u32, keep: u32) -> bool {
    (x >> drop) >> (keep - 1) & 1 == 0
}

/// The selection bits of the pieces from monotone comparison bits `b_j = [x ≥ T_j]`:
/// piece i is selected by `b_i ⊕ b_{i+1}` with `b_0 = 1` and `b_{k+1} = 0`.
pub fn piece_selection(b: &[bool]) -> Vec<bool> {
    (0..=b.len())
        .map(|i| {
            let lo = if i == 0 { true } else { b[i - 1] };
            let hi = b.get(i).copied().unwrap_or(false);
            lo ^ hi
        })
        .collect()
}

/// The powers `u^0 … u^d` (`u^0` unused) of the plan's schedule, each product truncated by
/// `poly_frac` in Z_2^poly_bits; powers the schedule skips are 0.
pub fn plan_powers(plan: &PiecewisePlan, pw: &PiecewisePoly, u: u64) -> Vec<u64> {
    let ring = plan.poly_bits;
    let steps = plan.power_schedule(pw);
    let top = steps.last().map_or(1, |s| s.k);
    let mut pow = vec![0u64; top + 1];
    pow[1] = u;
    for st in steps {
        pow[st.k] = trunc(ring, ring.mul(pow[st.a], pow[st.b]), plan.poly_frac);
    }
    pow
}

/// A polynomial piece on the powers: `Σ_k C_k u^k + C_0` in Z_2^poly_bits, at
/// `poly_frac + coef_frac` fraction bits (local on shares: public coefficients).
pub fn plan_combine(plan: &PiecewisePlan, coeffs: &[f64], pow: &[u64]) -> u64 {
    let ring = plan.poly_bits;
    let c = plan.coefficients(coeffs);
    c.iter()
        .enumerate()
        .skip(1)
        .fold(c[0], |acc, (k, &ck)| ring.add(acc, ring.mul(ck, pow[k])))
}

/// A piecewise function of `x` (Z_2^64, 18 bits) evaluated step by step as `plan` says
/// ([`PiecewisePlan`]), returning the sum of the pieces in Z_2^out_bits with 18 fraction bits
/// (before the final up-cast).
pub fn eval_piecewise_out(pw: &PiecewisePoly, plan: &PiecewisePlan, x: u64) -> u64 {
    let r64 = Ring::R64;
    let (pr, or) = (plan.poly_bits, plan.out_bits);
    let b: Vec<bool> = pw
        .breakpoints
        .iter()
        .map(|&t| {
            drelu_reduced(
                r64.sub(x, plan.breakpoint(t)),
                plan.cmp_drop(),
                plan.cmp_bits.bits(),
            )
        })
        .collect();
    let sel = piece_selection(&b);
    let s = plan.input_shift();
    let half = if s == 0 { 0 } else { 1u64 << (s - 1) };
    let u = trunc_cast(r64.add(x, half), r64, pr, s);
    let pow = plan_powers(plan, pw, u);
    let mut poly = 0u64;
    let mut out = 0u64;
    for (piece, &on) in pw.pieces.iter().zip(&sel) {
        match piece {
            Piece::Poly(c) if on => poly = pr.add(poly, plan_combine(plan, c, &pow)),
            Piece::Identity if on => out = or.add(out, or.reduce(x)),
            _ => {}
        }
    }
    or.add(out, trunc_cast(poly, pr, or, plan.output_shift()))
}

/// [`eval_piecewise_out`] up-cast to Z_2^64.
pub fn eval_piecewise(pw: &PiecewisePoly, plan: &PiecewisePlan, x: u64) -> u64 {
    let or = plan.out_bits;
    trunc_cast(eval_piecewise_out(pw, plan, x), or, Ring::R64, 0)
}

/// GELU of layer `layer` under `set`.
pub fn gelu(set: &ApproxSet, layer: usize, x: u64) -> u64 {
    eval_piecewise(&set.layer(layer).gelu, &set.plan.gelu, x)
}

/// exp(x) for x ≤ 0 (Z_2^64, 18 bits) of layer `layer` under `set`.
pub fn exp_nonpositive(set: &ApproxSet, layer: usize, x: u64) -> u64 {
    match &set.layer(layer).exp {
        ExpMethod::Piecewise(pw) => eval_piecewise(pw, &set.plan.exp, x),
        ExpMethod::Squaring { t, lower } => exp_squaring(*t, *lower, x),
    }
}

/// 0 below `lower`, else (1 + x/2^t)^(2^t) by t squarings, on Z_2^64 with 18 bits.
pub fn exp_squaring(t: u32, lower: f64, x: u64) -> u64 {
    let ring = LIN.ring();
    if ring.to_signed(x) < ring.to_signed(enc(LIN, lower)) {
        return 0;
    }
    let mut y = ring.add(enc(LIN, 1.0), trunc(ring, x, t));
    for _ in 0..t {
        y = mul_trunc(LIN, y, y);
    }
    y
}

/// Index of the highest set bit of a positive signed value (values ≤ 0 count as 1).
fn highest_bit(v: i64) -> i32 {
    63 - v.max(1).leading_zeros() as i32
}

/// 1/x for 2^-18 ≤ x < 2^18 (Z_2^64, 18 bits), relative error ≤ 1e-4 plus one unit: the
/// reciprocal on the full candidate range, [`reciprocal_within`]`(0..`[`RECIPROCAL_BITS`]`, x)`.
/// Beyond the range: x ≥ 2^18 gives 0 (1/x ≤ one unit); x = 0 gives 4·2.9142·2^17 (the
/// steps on c = 0); x < 0 is outside the domain.
pub fn reciprocal(x: u64) -> u64 {
    reciprocal_within(0..RECIPROCAL_BITS, x)
}

/// 1/x with the highest set bit k of x (Z_2^64, 18 bits) taken among the candidates
/// `bits = lo..hi` (hi ≤ [`RECIPROCAL_BITS`]), step by step as the secure protocol
/// ([`crate::functions::reciprocal_any()`]) computes it:
/// 1. k = highest set bit of x clamped to [lo, hi] (x ≤ 0 counts as lo; the protocol
///    compares x − 2^j for j = lo+1..=hi); `S = `[`reciprocal_scale`]`(bits, k)` = 2^{35−k},
///    0 for k = hi;
/// 2. `c = trunc(x·S, 18)` = x·2^{17−k} ∈ [0.5, 1) (exact for k ≤ 17);
/// 3. `w = 2.9142 − 2c`, `e = 1 − trunc(c·w, 18)`; [`RECIPROCAL_ITERATIONS`] Goldschmidt steps
///    `w ← trunc(w·(1 + e), 18)`, `e ← trunc(e², 18)` (the last step's e² unused, skipped);
/// 4. `trunc(w·S, 18)` = w·2^{17−k}.
///
/// So x ≥ 2^hi gives 0, and x < 2^lo is not normalised into [0.5, 1) (inaccurate): callers
/// choose `bits` to cover their inputs.
pub fn reciprocal_within(bits: Range<u32>, x: u64) -> u64 {
    assert!(
        bits.start < bits.end && bits.end <= RECIPROCAL_BITS,
        "reciprocal candidates {bits:?} outside 0..{RECIPROCAL_BITS}"
    );
    let (ring, f) = (LIN.ring(), LIN.frac_bits());
    let v = ring.to_signed(x);
    let k = (highest_bit(v) as u32).clamp(bits.start, bits.end);
    let k = if v <= 0 { bits.start } else { k };
    let s = reciprocal_scale(&bits, k);
    let c = trunc(ring, ring.mul(x, s), f);
    let one = enc(LIN, 1.0);
    let mut w = ring.sub(enc(LIN, RECIPROCAL_INIT), ring.add(c, c));
    let mut e = ring.sub(one, mul_trunc(LIN, c, w));
    for i in 0..RECIPROCAL_ITERATIONS {
        w = mul_trunc(LIN, w, ring.add(one, e));
        if i + 1 < RECIPROCAL_ITERATIONS {
            e = mul_trunc(LIN, e, e);
        }
    }
    trunc(ring, ring.mul(w, s), f)
}

/// The reciprocal's normaliser (and denormaliser) for highest bit j among the candidates
/// `bits`: 2^{35−j} for j in `bits`, 0 otherwise (x ≥ 2^hi). Both multiply an 18-bit value
/// and are followed by a truncation by 18: x·2^{35−j}/2^18 = x·2^{17−j}.
pub fn reciprocal_scale(bits: &Range<u32>, j: u32) -> u64 {
    if bits.contains(&j) {
        1 << (RECIPROCAL_BITS - 1 - j)
    } else {
        0
    }
}

/// tanh(x) (Z_2^64, 18 bits, |x| < 2^13 for the secure version): sign(x) · (1 − e) / (1 + e)
/// with e = exp(−|x|)², exp(−|x|) by [`exp_squaring`] with [`TANH_EXP`] (8 squarings, 0 for
/// |x| > 7); steps, each one of [`crate::functions::tanh()`]: neg = msb(x), |x| = x − 2·neg·x,
/// h = exp_squaring(−|x|), e = trunc(h², 18), r = [`reciprocal_within`]`(`[`TANH_DENOMINATOR_BITS`]`,
/// 1 + e)` (= [`reciprocal`]`(1 + e)`), t = trunc((1 − e)·r, 18), result t − 2·neg·t.
pub fn tanh(x: u64) -> u64 {
    let ring = LIN.ring();
    let neg = ring.msb(x);
    let abs = if neg { ring.neg(x) } else { x };
    // exp(−2|x|) = exp(−|x|)²: no doubling, so no overflow near the ring's extremes.
    let half = exp_squaring(TANH_EXP.0, TANH_EXP.1, ring.neg(abs));
    let e = mul_trunc(LIN, half, half);
    let one = enc(LIN, 1.0);
    let r = reciprocal_within(TANH_DENOMINATOR_BITS, ring.add(one, e));
    let t = mul_trunc(LIN, ring.sub(one, e), r);
    if neg {
        ring.neg(t)
    } else {
        t
    }
}

/// The max tree's winner of a row (plan step 2): pairs (0,1), (2,3), … level by level, an odd
/// last element passes up; a pair keeps a when `y_a − y_b ≥ 0` on Z_2^max_keep, with
/// `y = ⌊x / 2^max_drop⌋ mod 2^max_keep`. Returns the winner's x.
pub fn max_tree(plan: &SoftmaxPlan, row: &[u64]) -> u64 {
    let yr = plan.max_keep;
    let mut cur: Vec<(u64, u64)> = row
        .iter()
        .map(|&x| (x, yr.reduce(x >> plan.max_drop)))
        .collect();
    while cur.len() > 1 {
        cur = cur
            .chunks(2)
            .map(|p| match p {
                [a, b] if !yr.msb(yr.sub(a.1, b.1)) => *a,
                [_, b] => *b,
                [a] => *a,
                _ => unreachable!("chunks of at most 2"),
            })
            .collect();
    }
    cur.first().map_or(0, |c| c.0)
}

/// The Softmax plan's reciprocal of a row sum s > 0 (Z_2^64, 18 bits; plan step 4), returned
/// with r_frac bits (computed in Z_2^recip_bits; the value is below 2^46, the same in
/// Z_2^64): the range by `[s ≥ 4]`, `[s ≥ 31]` at integer
/// resolution, r0 from the range's table at index ⌊s / step⌋, one Newton step.
pub fn softmax_reciprocal(plan: &SoftmaxPlan, s: u64) -> u64 {
    let r64 = Ring::R64;
    let rr = plan.recip_bits;
    let ranges = plan.recip_ranges();
    let (drop, keep) = plan.recip_cmp();
    let b: Vec<bool> = ranges[1..]
        .iter()
        .map(|&(t, _, _)| drelu_reduced(r64.sub(s, enc(LIN, t)), drop, keep.bits()))
        .collect();
    let sel = piece_selection(&b);
    let k = sel.iter().position(|&on| on).unwrap_or(0);
    let (_, shift, bits) = ranges[k];
    let r0 = plan.recip_table(k)[((s >> shift) & ((1 << bits) - 1)) as usize];
    let w = plan.s_frac + plan.r_frac;
    let sp = trunc_cast(s, r64, rr, LIN.frac_bits() - plan.s_frac);
    let e = rr.sub(rr.reduce(1 << w), rr.mul(sp, r0));
    trunc(rr, rr.add(rr.reduce(r0 << w), rr.mul(r0, e)), w)
}

/// Softmax of one row in place (Z_2^64, 18 bits) by the set's [`SoftmaxPlan`]:
/// [`softmax_row_unnormalized`], then the product ⌊e / 2^{18−e_frac}⌋ · ⌊r / 2^{18−r_frac}⌋
/// in Z_2^prod_bits, truncated back to 18 bits.
pub fn softmax_row(set: &ApproxSet, layer: usize, row: &mut [u64], mask: ScoreMask<'_>) {
    let plan = &set.plan.softmax;
    let r64 = Ring::R64;
    let pr = plan.prod_bits;
    let f = LIN.frac_bits();
    let rs = pr.reduce(softmax_row_unnormalized(set, layer, row, mask));
    for v in row.iter_mut() {
        let es = trunc_cast(*v, r64, pr, f - plan.e_frac);
        *v = trunc_cast(pr.mul(es, rs), pr, r64, plan.e_frac + plan.r_frac - f);
    }
}

/// Softmax of one row up to the normalisation, in place (Z_2^64, 18 bits): the mask's step
/// before the max ([`ScoreMask::before_max`]: a private mask lowers its entries by
/// `mask_offset`, a public one copies the first kept score into them); max by [`max_tree`];
/// exp (layer `layer` of `set`) of x − max replaces each entry, a public mask's excluded ones
/// then zeroed ([`ScoreMask::after_exp`]); returns the row sum's
/// [`softmax_reciprocal`] (r_frac fraction bits), so that entry·r is the probability.
pub fn softmax_row_unnormalized(
    set: &ApproxSet,
    layer: usize,
    row: &mut [u64],
    mask: ScoreMask<'_>,
) -> u64 {
    let plan = &set.plan.softmax;
    let r64 = Ring::R64;
    mask.before_max(row, row.len(), enc(LIN, plan.mask_offset));
    let max = max_tree(plan, row);
    for v in row.iter_mut() {
        *v = exp_nonpositive(set, layer, r64.sub(*v, max));
    }
    mask.after_exp(row);
    let sum = row.iter().fold(0u64, |a, &v| r64.add(a, v));
    softmax_reciprocal(plan, sum)
}

/// GELU in f64 (x·Φ(x), erf by its Taylor series, saturated beyond |x| > 4.5·√2): the
/// reference the approximations' errors are measured against.
pub fn gelu_exact(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    if z.abs() > 4.5 {
        return if x > 0.0 { x } else { 0.0 };
    }
    let (mut term, mut sum) = (z, z);
    for n in 1..300 {
        term *= -z * z / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    0.5 * x * (1.0 + sum * 2.0 / std::f64::consts::PI.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULP: f64 = 1.0 / (1u64 << 18) as f64;

    fn e(x: f64) -> u64 {
        LIN.encode(x).unwrap()
    }

    fn d(x: u64) -> f64 {
        LIN.decode(x)
    }

    /// Edge values: 0, ±1, the largest/smallest values the 32-bit evaluation ring holds, grid.
    fn edge_inputs(extra: &[f64]) -> Vec<f64> {
        let big = (1u64 << 19) as f64 - 1.0 / 4096.0;
        let mut xs = vec![0.0, -1.0, 1.0, ULP, -ULP, big, -big];
        xs.extend((-512..=512).map(|i| i as f64 / 64.0));
        xs.extend_from_slice(extra);
        xs
    }

    #[test]
    fn truncation_is_floor_and_casts_extend_or_wrap() {
        let r = Ring::R64;
        assert_eq!(r.to_signed(trunc(r, r.from_signed(-3), 1)), -2);
        assert_eq!(r.to_signed(trunc(r, r.from_signed(3), 1)), 1);
        assert_eq!(trunc(r, u64::MAX, 18), u64::MAX);
        assert_eq!(trunc(r, 1 << 63, 63), u64::MAX);
        // Down-cast 64/18 → 32/12 keeps the low 32 bits of x / 2^6.
        let x = e(-2.5);
        let x32 = trunc_cast(x, Ring::R64, Ring::R32, 6);
        assert_eq!(Ring::R32.to_signed(x32), -(5 << 11));
        // Up-cast sign-extends.
        assert_eq!(
            trunc_cast(x32, Ring::R32, Ring::R64, 0),
            r.from_signed(-(5 << 11))
        );
        assert_eq!(
            trunc_cast(u32::MAX as u64, Ring::R32, Ring::R64, 0),
            u64::MAX
        );
        assert_eq!(d(mul_trunc(LIN, e(-1.5), e(2.0))), -3.0);
        assert!((d(mul_public(LIN, e(10.0), 1.0 / 384.0)) - 10.0 / 384.0).abs() < 2.0 * ULP);
    }

    /// The f64 value of what a plan computes: the piece chosen by x against the breakpoints on
    /// the comparison grid, a polynomial on u = x rounded to `poly_frac` bits, the identity on x.
    fn planned_f64(pw: &PiecewisePoly, plan: &PiecewisePlan, x: f64) -> f64 {
        let mut grid = pw.clone();
        let g = (plan.cmp_frac as f64).exp2();
        grid.breakpoints
            .iter_mut()
            .for_each(|b| *b = (*b * g).round() / g);
        let f = (plan.poly_frac as f64).exp2();
        match &grid.pieces[grid.piece_index(x)] {
            Piece::Identity => x,
            _ => grid.eval_f64((x * f).round() / f),
        }
    }

    /// Mirror vs the plan's f64 value: within the carry bound (truncations floor) plus the
    /// coefficients' rounding to `coef_frac` bits (scaled by |u|^k ≤ M^k).
    fn check_against_plan(pw: &PiecewisePoly, plan: &PiecewisePlan, xs: &[f64], name: &str) {
        let m = pw
            .breakpoints
            .iter()
            .fold(0.0f64, |a, b| a.max(b.abs()))
            .max(1.0)
            + 1.0;
        let degree = pw
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Poly(c) => c.len() - 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let coef = (0..=degree).map(|k| m.powi(k as i32)).sum::<f64>()
            / (plan.coef_frac as f64 + 1.0).exp2();
        let tol = plan.carry_bound(pw) + coef + 2.0 * ULP;
        for &x in xs {
            let got = d(eval_piecewise(pw, plan, e(x)));
            let want = planned_f64(pw, plan, x);
            assert!(
                (got - want).abs() <= tol,
                "{name}({x}) = {got}, plan {want}, tol {tol}"
            );
        }
    }

    #[test]
    fn gelu_follows_its_plan_and_the_function() {
        for (set, err) in [(ApproxSet::nimbus(), 0.17), (ApproxSet::puma(), 0.021)] {
            let pw = &set.layers[0].gelu;
            let mut xs = edge_inputs(&pw.breakpoints);
            xs.extend(pw.breakpoints.iter().map(|b| b - 1.0 / 4096.0));
            xs.extend([511.0, -511.0, 511.999, -511.999]);
            xs.retain(|x| x.abs() < 512.0);
            check_against_plan(pw, &set.plan.gelu, &xs, &set.name);
            for &x in xs.iter().filter(|x| x.abs() < 64.0) {
                let got = d(gelu(&set, 0, e(x)));
                assert!(
                    (got - gelu_exact(x)).abs() < err,
                    "{} gelu({x}) = {got}",
                    set.name
                );
            }
            // Ring extremes give a defined value without panicking.
            let _ = gelu(&set, 0, (1 << 63) - 1);
            let _ = gelu(&set, 0, 1 << 63);
        }
    }

    #[test]
    fn plan_steps_on_edge_values() {
        // DReLU on the reduced ring: exact on its range, wraps beyond (as the protocol does).
        let r = Ring::R64;
        assert!(drelu_reduced(0, 12, 17));
        assert!(!drelu_reduced(r.from_signed(-1), 12, 17));
        assert!(drelu_reduced(r.from_signed((1 << 28) - 1), 12, 17));
        assert!(!drelu_reduced(r.from_signed(1 << 28), 12, 17));
        assert!(!drelu_reduced(1 << 63, 12, 17) || drelu_reduced(1 << 63, 12, 17));
        assert_eq!(piece_selection(&[false, false]), vec![true, false, false]);
        assert_eq!(piece_selection(&[true, false]), vec![false, true, false]);
        assert_eq!(piece_selection(&[true, true]), vec![false, false, true]);
        // At a breakpoint exactly, the right-hand piece applies.
        let set = ApproxSet::nimbus();
        let pw = &set.layers[0].gelu;
        let t2 = set.plan.gelu.breakpoint(pw.breakpoints[1]);
        assert_eq!(gelu(&set, 0, t2), t2);
    }

    #[test]
    fn exp_follows_its_plan_and_the_function() {
        for (set, err) in [(ApproxSet::nimbus(), 0.032), (ApproxSet::puma(), 0.0012)] {
            let xs: Vec<f64> = edge_inputs(&[-4.0, -14.0, -4.0 - ULP, -511.9])
                .into_iter()
                .filter(|&x| x <= 0.0 && x > -512.0)
                .collect();
            if let ExpMethod::Piecewise(pw) = &set.layers[0].exp {
                check_against_plan(pw, &set.plan.exp, &xs, "exp");
            }
            for &x in &xs {
                let got = d(exp_nonpositive(&set, 0, e(x)));
                assert!((got - x.exp()).abs() < err, "{} exp({x}) = {got}", set.name);
            }
            // The most negative ring element: defined, no panic (outside the plan's range).
            let _ = exp_nonpositive(&set, 0, 1 << 63);
        }
        assert!((d(exp_squaring(8, -14.0, 0)) - 1.0).abs() < 4.0 * ULP);
    }

    #[test]
    fn reciprocal_is_accurate_over_the_range() {
        let max = LIN.max_value() - 1.0;
        for x in [
            ULP,
            1e-3,
            0.1,
            0.5,
            0.75,
            1.0 - ULP,
            1.0,
            1.5,
            2.0,
            3.0,
            7.0,
            128.0,
            1e5,
            262_144.0 - ULP,
            1e9,
            max,
        ] {
            let x = d(e(x)); // the input as encoded
            let r = d(reciprocal(e(x)));
            assert!((r - 1.0 / x).abs() <= 1e-4 / x + 2.0 * ULP, "1/{x}: {r}");
        }
        // Beyond the candidate range: 0 from 2^18 on; 0 gives the steps on c = 0.
        assert_eq!(reciprocal(e(262_144.0)), 0);
        assert_eq!(reciprocal(1 << 62), 0);
        assert_eq!(d(reciprocal(0)), 4.0 * d(e(2.9142)) * 131_072.0);
        // A restricted candidate range gives the same value on its range.
        for x in [1.0, 1.0 + ULP, 1.5, 2.0 - ULP, 2.0] {
            assert_eq!(
                reciprocal_within(TANH_DENOMINATOR_BITS, e(x)),
                reciprocal(e(x))
            );
        }
    }

    #[test]
    fn tanh_is_odd_and_accurate() {
        for x in edge_inputs(&[LIN.max_value() - 1.0, LIN.min_value()]) {
            let got = d(tanh(e(x)));
            assert!((got - x.tanh()).abs() < 2e-3, "tanh({x}) = {got}");
        }
        assert_eq!(tanh(0), 0);
        assert_eq!(Ring::R64.neg(tanh(e(0.7))), tanh(e(-0.7)));
    }

    #[test]
    fn softmax_rows() {
        let xs = [0.3, -1.2, 2.5, 0.0, 1.1, -7.0];
        let exact: Vec<f64> = {
            let m = xs.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = xs.iter().map(|x| (x - m).exp()).sum();
            xs.iter().map(|x| (x - m).exp() / s).collect()
        };
        for (set, err) in [(ApproxSet::nimbus(), 0.03), (ApproxSet::puma(), 0.002)] {
            let mut row: Vec<u64> = xs.iter().map(|&x| e(x)).collect();
            softmax_row(&set, 0, &mut row, ScoreMask::None);
            for (g, w) in row.iter().zip(&exact) {
                assert!((d(*g) - w).abs() < err, "{}: {} vs {w}", set.name, d(*g));
            }
            let mut row: Vec<u64> = xs.iter().map(|&x| e(x)).collect();
            let mask = [true, true, false, true, true, false];
            let mut public = row.clone();
            softmax_row(&set, 0, &mut row, ScoreMask::Private(Some(&mask)));
            assert_eq!((row[2], row[5]), (0, 0));
            let total: f64 = row.iter().map(|&v| d(v)).sum();
            assert!((total - 1.0).abs() < 2.0 * err, "{total}");
            // The same mask made public: exactly zero where excluded, the same elsewhere up to
            // the exps of the lowered entries (which the private mask leaves above zero only
            // when the scores span more than the offset: not here).
            softmax_row(&set, 0, &mut public, ScoreMask::Public(&mask));
            assert_eq!(public, row);
            // Scores spanning far more than the offset: the private mask lets an excluded large
            // score win the max; the public one excludes it exactly.
            let wide = [e(-20.0), e(40.0), e(-21.0)];
            let keep = [true, false, true];
            let mut private = wide.to_vec();
            softmax_row(&set, 0, &mut private, ScoreMask::Private(Some(&keep)));
            let mut public = wide.to_vec();
            softmax_row(&set, 0, &mut public, ScoreMask::Public(&keep));
            let want = 1.0 / (1.0 + (-1.0f64).exp());
            assert!((d(public[0]) - want).abs() < 2.0 * err, "{}", d(public[0]));
            assert_eq!(public[1], 0);
            assert!((d(private[0]) - want).abs() > 0.5, "{}", d(private[0]));
            // A fully masked row: every entry is lowered alike, so the softmax is taken over the
            // lowered values (uniform here) — the client's padding never has a full row.
            let mut none = vec![e(1.0); 3];
            softmax_row(&set, 0, &mut none, ScoreMask::Private(Some(&[false; 3])));
            assert!(none.iter().all(|&v| (d(v) - 1.0 / 3.0).abs() < 2.0 * err));
            // Near-equal scores: the tree's winner is within 2^-5 of the maximum.
            let plan = &set.plan.softmax;
            let close = [e(0.5), e(0.5 + 1.0 / 128.0), e(-3.0), e(0.5 - 1.0 / 128.0)];
            let w = d(max_tree(plan, &close));
            assert!(w >= 0.5 + 1.0 / 128.0 - 1.0 / 32.0, "{w}");
            // Reciprocal over the row sums' range, each LUT range and its edges.
            for s in [
                0.97, 1.0, 3.99, 4.0, 4.01, 4.99, 30.99, 31.0, 31.99, 32.0, 100.0, 128.0, 255.0,
            ] {
                let rr = plan.recip_bits;
                let r = rr.to_signed(softmax_reciprocal(plan, e(s))) as f64
                    / (plan.r_frac as f64).exp2();
                let tol = if s < 4.0 { 3e-4 } else { 1.1e-3 };
                assert!((r * s - 1.0).abs() < tol + s * 3.0 / 65536.0, "1/{s}: {r}");
            }
        }
    }
}
