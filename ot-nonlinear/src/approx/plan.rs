//! Evaluation plans: how each approximation is computed on shares, with every ring size and
//! fraction-bit count stored as data.
//!
//! A plan names the primitive operations of `crate::mpc` and their parameters; the plaintext
//! mirror ([`crate::approx::fixed`]) executes the same steps on the reconstructed value, taking the
//! ideal result of each step (exact floors where the protocol truncates, exact comparisons where
//! it compares). The secure result then differs from the mirror only by
//!
//! * the ±1-ulp carries of truncations (a local or known-MSB truncation may return one less than
//!   the floor), bounded per function by [`PiecewisePlan::carry_bound`];
//! * comparisons just above a breakpoint: the reduced-ring DReLU may report `x < T` when
//!   `0 ≤ x − T < 2^-cmp_frac`, selecting the piece on the left.
//!
//! Cost drives the numbers: a Gilboa product costs ≈ ℓ²/2 bits per cross term, so each product
//! happens in the smallest ring that holds its result; down-casts are free, known-MSB up-casts and
//! truncations cost (Δbits + 1) bits; comparisons run on a reduced ring (≈ 9 bits per compared
//! bit); multiplexers cost 2(ℓ + 1) bits, so they run in small rings too.
use super::piecewise_poly::{Piece, PiecewisePoly};
use mpc_core::{Error, Result, Ring};

/// Fraction bits of the activations (Z_2^64), `FixedPoint::LINEAR` (checked by a test).
const LIN_FRAC: u32 = 18;

/// The plan of a piecewise polynomial on an input `x` in Z_2^64 with 18 fraction bits.
///
/// Steps (the secure protocol and the mirror both follow them):
/// 1. comparisons `b_j = [x ≥ T_j]`: the server subtracts `T_j` (rounded to the 2^-`cmp_frac`
///    grid) from its share, then reduced-ring DReLU dropping `18 − cmp_frac` bits and keeping
///    `cmp_bits`; piece `i` is selected by `b_i ⊕ b_{i+1}` (`b_0 = 1`, `b_{k+1} = 0`), a local XOR
///    because the comparisons are monotone;
/// 2. when a polynomial piece exists: `u = ⌊(x + 2^{s−1}) / 2^s⌋ mod 2^poly_bits` with
///    `s = 18 − poly_frac` (round to nearest: the server adds 2^{s−1}, then a free down-cast);
/// 3. powers `u^k = trunc(u^⌈k/2⌉ · u^⌊k/2⌋, poly_frac)` in Z_2^poly_bits (a square when the
///    halves agree), only those a coefficient needs;
/// 4. per polynomial piece, `Σ_k C_k u^k + C_0` locally (public coefficients at `coef_frac`
///    bits, the constant at `poly_frac + coef_frac`), multiplexed by its selection bit in
///    Z_2^poly_bits, summed;
/// 5. the sum moves to Z_2^out_bits with 18 fraction bits by one fused truncation
///    (by `poly_frac + coef_frac − 18`) and up-cast; identity pieces add `x mod 2^out_bits`
///    multiplexed in Z_2^out_bits;
/// 6. one up-cast Z_2^out_bits → Z_2^64.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PiecewisePlan {
    /// The input interval on which the plan is exact (up to the documented carries): every
    /// comparison, ring and precondition below is checked against it.
    pub range: [f64; 2],
    /// Fraction bits the comparisons keep (they drop `18 − cmp_frac`).
    pub cmp_frac: u32,
    /// Ring of the reduced comparison.
    #[serde(with = "mpc_core::ring::as_bits")]
    pub cmp_bits: Ring,
    /// Ring of `u`, its powers and the polynomial combination.
    #[serde(with = "mpc_core::ring::as_bits")]
    pub poly_bits: Ring,
    /// Fraction bits of `u` and its powers.
    pub poly_frac: u32,
    /// Fraction bits of the public coefficients of degree ≥ 1.
    pub coef_frac: u32,
    /// Ring in which the pieces are summed (18 fraction bits) before the final up-cast.
    #[serde(with = "mpc_core::ring::as_bits")]
    pub out_bits: Ring,
}

/// The plans of the functions of one approximation set.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetPlan {
    /// GELU.
    pub gelu: PiecewisePlan,
    /// exp on non-positive inputs, when the set's exp is piecewise.
    pub exp: PiecewisePlan,
    /// Softmax rows (absent from files written before it existed: the standard plan).
    #[serde(default = "SoftmaxPlan::standard")]
    pub softmax: SoftmaxPlan,
}

/// The plan of a Softmax row (x ∈ Z_2^64, 18 fraction bits; every set uses the same one).
///
/// 1. mask: the client subtracts `mask_offset` from its share of each masked entry (its own
///    padding), so they fall below the exp threshold;
/// 2. max by a binary tree: each party computes `y = ⌊x / 2^max_drop⌋ mod 2^max_keep` locally
///    once per element (the secure y may be one less, consistently for that element); a level
///    compares `[y_a − y_b ≥ 0]` exactly on Z_2^max_keep (DReLU) and multiplexes x and y of the
///    winner (one mux on Z_2^k, k the low bits of its input the exp reads,
///    [`PiecewisePlan::input_ring`]: x − max is needed only modulo 2^k); the result is an
///    element within 2^{max_drop+1−18} of the maximum;
/// 3. d = x − max, exp (the set's), row sum s (Z_2^64, 18 bits);
/// 4. reciprocal of s ([`SoftmaxPlan::recip_ranges`]): comparisons `[s ≥ 4]`, `[s ≥ 31]`
///    (reduced DReLU, drop 18, keep 9: at integer resolution, so s up to one above a threshold
///    may take the lower range, whose table still covers it), one lookup per range of
///    r0 = 1/(midpoint of the index's cell) at r_frac bits on Z_2^recip_bits, one mux selecting
///    the range; one Newton step on Z_2^recip_bits with s' = ⌊s / 2^{18−s_frac}⌋:
///    r = ⌊(r0·2^{s_frac+r_frac} + r0·(2^{s_frac+r_frac} − s'·r0)) / 2^{s_frac+r_frac}⌋
///    (two products, one truncation), r at r_frac bits;
/// 5. p = ⌊e / 2^{18−e_frac}⌋ · (r mod 2^prod_bits) in Z_2^prod_bits (free down-casts, one
///    row-scalar product), then a fused truncation by e_frac + r_frac − 18 and up-cast to Z_2^64.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SoftmaxPlan {
    /// What the client subtracts from masked entries (real value).
    pub mask_offset: f64,
    /// Bits the max tree's comparisons drop.
    pub max_drop: u32,
    /// Ring of the max tree's comparisons (they keep its bits).
    #[serde(with = "mpc_core::ring::as_bits")]
    pub max_keep: Ring,
    /// Ring of the reciprocal's lookups and Newton step.
    #[serde(with = "mpc_core::ring::as_bits")]
    pub recip_bits: Ring,
    /// Fraction bits of the row sum in the Newton step.
    pub s_frac: u32,
    /// Fraction bits of the exps in the final product.
    pub e_frac: u32,
    /// Fraction bits of the reciprocal in the final product.
    pub r_frac: u32,
    /// Ring of the final product.
    #[serde(with = "mpc_core::ring::as_bits")]
    pub prod_bits: Ring,
}

impl SoftmaxPlan {
    /// Mask offset 32, comparisons at 1/64 on Z_2^15 (|x| < 256), reciprocal on Z_2^48 (s at
    /// 12 bits, r0 at 16: s'·r0 ≈ 2^28, r0·e ≤ 2^44), e at 10 bits and r at 16 bits in Z_2^29
    /// (p < 1 at 26 bits, below the 2^27 precondition).
    pub const fn standard() -> SoftmaxPlan {
        SoftmaxPlan {
            mask_offset: 32.0,
            max_drop: 12,
            max_keep: Ring::new_const(15),
            recip_bits: Ring::new_const(48),
            s_frac: 12,
            e_frac: 10,
            r_frac: 16,
            prod_bits: Ring::new_const(29),
        }
    }

    /// Checks what the protocol relies on before shifting: every ring of at least 2 bits
    /// (its rings are valid by construction), the max tree's dropped and kept bits within 64,
    /// fraction bits at most the linear format's 18, e_frac + r_frac ≥ 18 (the final
    /// truncation is non-negative), s_frac + r_frac below the reciprocal's ring and
    /// e_frac + r_frac below the product's, a finite mask offset in (0, 2^20). A plan received
    /// from the peer is refused otherwise.
    pub fn validate(&self) -> Result<()> {
        let ring = |r: Ring| r.bits() >= 2;
        let ok = self.mask_offset.is_finite()
            && self.mask_offset > 0.0
            && self.mask_offset < (1u64 << 20) as f64
            && ring(self.max_keep)
            && self.max_drop < 64
            && self.max_drop + self.max_keep.bits() <= 64
            && ring(self.recip_bits)
            && ring(self.prod_bits)
            && self.s_frac <= LIN_FRAC
            && self.e_frac <= LIN_FRAC
            && self.r_frac <= 64
            && self.e_frac + self.r_frac >= LIN_FRAC
            && self.s_frac + self.r_frac < self.recip_bits.bits()
            && self.e_frac + self.r_frac < self.prod_bits.bits();
        if !ok {
            return Err(Error::malformed(
                format!("softmax plan {self:?}"),
                "ring or fraction-bit counts out of range",
                "counts its rings hold",
            ));
        }
        Ok(())
    }

    /// The reciprocal's ranges: (lower bound of s, index shift = 18 − log2(1/step), index
    /// bits). s below 4 (and up to 5, the comparison's slack) on a 1/32 grid of [0, 8); [4, 31)
    /// (up to 32) on a 1/4 grid of [0, 32); [31, 256) on a grid of 2: every cell's midpoint is
    /// within 1.7 % of the cell (3.2 % for the 7-bit ones, whose r is ≤ 1/4), so one Newton step
    /// leaves ≤ 1e-3 relative error (≤ 3e-4 below s = 4, where the probabilities are large).
    pub fn recip_ranges(&self) -> [(f64, u32, u32); 3] {
        [(0.0, 13, 8), (4.0, 16, 7), (31.0, 19, 7)]
    }

    /// Bits the reciprocal's range comparisons drop, and the ring whose bits they keep
    /// (integer resolution, |s − T| < 256).
    pub fn recip_cmp(&self) -> (u32, Ring) {
        (18, const { Ring::new_const(9) })
    }

    /// The lookup table of range `k` on Z_2^recip_bits (r_frac fraction bits): entry v is
    /// 1 / ((v + 1/2)·step).
    pub fn recip_table(&self, k: usize) -> Vec<u64> {
        let (_, shift, bits) = self.recip_ranges()[k];
        let step = ((shift as f64) - 18.0).exp2();
        let ring = self.recip_bits;
        let scale = (self.r_frac as f64).exp2();
        (0..1u64 << bits)
            .map(|v| ring.from_signed((scale / ((v as f64 + 0.5) * step)).round() as i64))
            .collect()
    }
}

/// One step of the powers schedule: `u^k = trunc(u^a · u^b)` (`a == b`: a square).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerStep {
    /// The power computed.
    pub k: usize,
    /// Left factor's exponent.
    pub a: usize,
    /// Right factor's exponent (`a ≥ b`).
    pub b: usize,
}

impl SetPlan {
    /// The Nimbus plan: GELU comparisons at 1/64 on Z_2^17, quadratic in Z_2^22 with u at 8 bits
    /// and coefficients at 10 bits, pieces summed in Z_2^30 (|x| < 512); exp comparisons at 1/64
    /// on Z_2^17, cubic in Z_2^25 with u at 8 bits and coefficients at 14 bits (the cubic term
    /// multiplies |u|³ ≤ 70, so 10 bits would cost 0.03), result in Z_2^21 (the fused cast
    /// 25 → 21 by 4 is then a free down-cast; exp ≤ 1.1 < 2^{21−2−18}).
    pub const fn nimbus() -> SetPlan {
        SetPlan {
            gelu: PiecewisePlan {
                range: [-512.0, 512.0],
                cmp_frac: 6,
                cmp_bits: Ring::new_const(17),
                poly_bits: Ring::new_const(22),
                poly_frac: 8,
                coef_frac: 10,
                out_bits: Ring::new_const(30),
            },
            exp: PiecewisePlan {
                range: [-512.0, 0.25],
                cmp_frac: 6,
                cmp_bits: Ring::new_const(17),
                poly_bits: Ring::new_const(25),
                poly_frac: 8,
                coef_frac: 14,
                out_bits: Ring::new_const(21),
            },
            softmax: SoftmaxPlan::standard(),
        }
    }

    /// The PUMA plan: its GELU (degrees 3 and 6 on [−4, 3)) with u at 12 bits in Z_2^46 and
    /// coefficients at 18 bits (the degree-6 coefficient 0.0018 needs them), comparisons at
    /// 1/256; exp by squaring has no piecewise plan, the entry is the Nimbus one (unused).
    pub const fn puma() -> SetPlan {
        SetPlan {
            gelu: PiecewisePlan {
                range: [-512.0, 512.0],
                cmp_frac: 8,
                cmp_bits: Ring::new_const(19),
                poly_bits: Ring::new_const(46),
                poly_frac: 12,
                coef_frac: 18,
                out_bits: Ring::new_const(30),
            },
            exp: SetPlan::nimbus().exp,
            softmax: SoftmaxPlan::standard(),
        }
    }
}

// The named plans' rings are checked at compile time.
const _: [SetPlan; 2] = [SetPlan::nimbus(), SetPlan::puma()];

/// 2^k as f64.
fn pow2(k: i64) -> f64 {
    (k as f64).exp2()
}

impl PiecewisePlan {
    /// Bits the comparisons drop.
    pub fn cmp_drop(&self) -> u32 {
        LIN_FRAC - self.cmp_frac
    }

    /// The ring of the low bits of the input the evaluation of `pieces` reads: the
    /// comparisons `cmp_drop + cmp_bits`, the polynomial input `input_shift + poly_bits`, the
    /// identity pieces `out_bits` (at most 64). Every step is a local down-cast of these bits of
    /// each share (with the known-MSB carry argument holding modulo 2^input_bits), so shares
    /// that are correct only modulo 2^input_bits give the same result.
    pub fn input_ring(&self, pieces: &[Piece]) -> Ring {
        let mut ring = self.cmp_bits.widened(self.cmp_drop());
        if pieces.iter().any(|p| matches!(p, Piece::Poly(_))) {
            ring = ring.max(self.poly_bits.widened(self.input_shift()));
        }
        if pieces.contains(&Piece::Identity) {
            ring = ring.max(self.out_bits);
        }
        ring
    }

    /// The truncation that produces `u` from the 18-bit input.
    pub fn input_shift(&self) -> u32 {
        LIN_FRAC - self.poly_frac
    }

    /// The fused truncation that brings a polynomial value (at `poly_frac + coef_frac` bits) to
    /// 18 bits.
    pub fn output_shift(&self) -> u32 {
        self.poly_frac + self.coef_frac - LIN_FRAC
    }

    /// Breakpoint `t` rounded to the comparison grid, as a Z_2^64 element with 18 bits.
    pub fn breakpoint(&self, t: f64) -> u64 {
        let grid = (t * pow2(self.cmp_frac as i64)).round() as i64;
        Ring::R64.from_signed(grid << self.cmp_drop())
    }

    /// Coefficients of a polynomial piece as ring elements of Z_2^poly_bits: `C_0` at
    /// `poly_frac + coef_frac` bits, `C_k` (k ≥ 1) at `coef_frac` bits.
    pub fn coefficients(&self, c: &[f64]) -> Vec<u64> {
        let ring = self.poly_bits;
        c.iter()
            .enumerate()
            .map(|(k, &ck)| {
                let bits = if k == 0 {
                    self.poly_frac + self.coef_frac
                } else {
                    self.coef_frac
                };
                ring.from_signed((ck * pow2(bits as i64)).round() as i64)
            })
            .collect()
    }

    /// The powers a set of polynomials needs (every k ≥ 2 with a non-zero coefficient, closed
    /// under the schedule's factors), in the order they can be computed.
    pub fn power_schedule(&self, pw: &PiecewisePoly) -> Vec<PowerStep> {
        let mut need = vec![false; 1];
        for piece in &pw.pieces {
            if let Piece::Poly(c) = piece {
                let coeffs = self.coefficients(c);
                if need.len() < c.len() {
                    need.resize(c.len(), false);
                }
                for (k, &ck) in coeffs.iter().enumerate().skip(2) {
                    need[k] |= ck != 0;
                }
            }
        }
        for k in (2..need.len()).rev() {
            if need[k] {
                need[k.div_ceil(2)] = true;
                need[k / 2] = true;
            }
        }
        (2..need.len())
            .filter(|&k| need[k])
            .map(|k| PowerStep {
                k,
                a: k.div_ceil(2),
                b: k / 2,
            })
            .collect()
    }

    /// The interval of piece `i` intersected with the plan's range (breakpoints on the grid).
    fn piece_interval(&self, pw: &PiecewisePoly, i: usize) -> [f64; 2] {
        let grid = |t: f64| (t * pow2(self.cmp_frac as i64)).round() / pow2(self.cmp_frac as i64);
        let lo = if i == 0 {
            self.range[0]
        } else {
            grid(pw.breakpoints[i - 1]).max(self.range[0])
        };
        let hi = match pw.breakpoints.get(i) {
            Some(&t) => grid(t).min(self.range[1]),
            None => self.range[1],
        };
        [lo, hi]
    }

    /// The checks that need no breakpoints (what a party that does not know them can verify):
    /// ring sizes and fraction-bit counts in range, a non-empty input range.
    pub fn validate_rings(&self) -> Result<()> {
        if self.cmp_bits.bits() < 2
            || self.cmp_frac > LIN_FRAC
            || self.cmp_bits.bits() + self.cmp_drop() > 64
            || self.poly_bits.bits() < 2
            || self.out_bits.bits() < 2
            || self.poly_frac > LIN_FRAC
            || self.poly_frac + self.coef_frac < LIN_FRAC
            || 2 * self.poly_frac >= self.poly_bits.bits()
            || self.range[0].partial_cmp(&self.range[1]) != Some(std::cmp::Ordering::Less)
        {
            return Err(Error::malformed(
                format!("plan {self:?}"),
                "ring or fraction-bit counts out of range",
                "counts its rings hold",
            ));
        }
        Ok(())
    }

    /// Checks the plan against the tables it evaluates: ring sizes in range, breakpoints distinct
    /// on the comparison grid, comparisons and the identity piece valid on the whole range, every
    /// power and polynomial value inside the known-MSB precondition |v| < 2^{ℓ−2}.
    pub fn validate(&self, pw: &PiecewisePoly) -> Result<()> {
        self.validate_rings()?;
        let bad = |got: String| {
            Err(Error::malformed(
                format!("plan {self:?}"),
                got,
                "a plan valid for its tables",
            ))
        };
        let grid: Vec<u64> = pw.breakpoints.iter().map(|&t| self.breakpoint(t)).collect();
        if grid
            .windows(2)
            .any(|w| Ring::R64.to_signed(w[1]) - Ring::R64.to_signed(w[0]) <= 1 << self.cmp_drop())
        {
            return bad("breakpoints closer than two comparison steps".into());
        }
        let reach = self.range[0].abs().max(self.range[1].abs());
        let cmp_limit = pow2(self.cmp_bits.bits() as i64 - 1 - self.cmp_frac as i64);
        for &t in &pw.breakpoints {
            if reach + t.abs() >= cmp_limit {
                return bad(format!("comparison with {t} not valid on the range"));
            }
        }
        if pw.pieces.contains(&Piece::Identity)
            && reach >= pow2(self.out_bits.bits() as i64 - 2 - LIN_FRAC as i64)
        {
            return bad("identity piece does not fit the output ring".into());
        }
        let f = self.poly_frac as i64;
        let p_limit = pow2(self.poly_bits.bits() as i64 - 2);
        let out_limit = pow2(self.out_bits.bits() as i64 - 2 - LIN_FRAC as i64);
        let schedule = self.power_schedule(pw);
        for (i, piece) in pw.pieces.iter().enumerate() {
            let Piece::Poly(c) = piece else { continue };
            let [lo, hi] = self.piece_interval(pw, i);
            for step in &schedule {
                if lo.abs().max(hi.abs()) >= self.poly_reach(step.k) {
                    return bad(format!(
                        "u^{} overflows Z_2^{}",
                        step.k,
                        self.poly_bits.bits()
                    ));
                }
            }
            // The polynomial's largest value on its interval, sampled on the 2^-f grid, with a
            // 1/16 margin for the rounding of u and the carries.
            let steps = ((hi - lo) * pow2(f)).ceil().max(1.0) as usize;
            let peak = (0..=steps)
                .map(|j| lo + (hi - lo) * j as f64 / steps as f64)
                .map(|x| c.iter().rev().fold(0.0, |acc, &ck| acc * x + ck).abs())
                .fold(0.0, f64::max)
                * (1.0 + 1.0 / 16.0)
                + pow2(-f);
            if peak * pow2(f + self.coef_frac as i64) >= p_limit || peak >= out_limit {
                return bad(format!("piece {i} overflows its rings"));
            }
        }
        Ok(())
    }

    /// The bound on |x| below which the power u^k fits Z_2^poly_bits: at 2·poly_frac bits
    /// before its truncation it needs (|x| + 2^-poly_frac)^k · 2^{2·poly_frac} < 2^{poly_bits−2}.
    /// A polynomial piece's interval must lie strictly inside ±this for every power it uses.
    pub fn poly_reach(&self, k: usize) -> f64 {
        let f = self.poly_frac as f64;
        let bits = self.poly_bits.bits() as f64 - 2.0 - 2.0 * f;
        (bits / k.max(1) as f64).exp2() - (-f).exp2()
    }

    /// Largest difference (real value) between a secure evaluation and the mirror away from the
    /// breakpoints: each truncation may return one less than the floor (u, every power, the
    /// fused output cast). With e_1 = 1 ulp and e_k ≤ e_a·M^b + e_b·M^a + e_a·e_b + 1 ulp at
    /// `poly_frac` bits (M = largest |u| on the piece), the value moves by at most
    /// Σ |c_k| e_k 2^{-poly_frac} plus one 18-bit ulp from the output cast and one from the
    /// final up-cast.
    pub fn carry_bound(&self, pw: &PiecewisePoly) -> f64 {
        let ulp = pow2(-(self.poly_frac as i64));
        let mut worst: f64 = 0.0;
        for (i, piece) in pw.pieces.iter().enumerate() {
            let Piece::Poly(c) = piece else { continue };
            let [lo, hi] = self.piece_interval(pw, i);
            let m = (lo.abs().max(hi.abs()) + ulp) / ulp; // in ulps
            let mut e = vec![0.0, 1.0];
            let mut mag = vec![1.0, m];
            e.resize(c.len().max(2), 0.0);
            mag.resize(c.len().max(2), 0.0);
            for k in 2..c.len() {
                let (a, b) = (k.div_ceil(2), k / 2);
                mag[k] = mag[a] * mag[b] * ulp + 1.0;
                e[k] = e[a] * mag[b] * ulp + e[b] * mag[a] * ulp + e[a] * e[b] * ulp + 1.0;
            }
            let v: f64 = c
                .iter()
                .zip(&e)
                .skip(1)
                .map(|(ck, ek)| ck.abs() * ek * ulp)
                .sum();
            worst = worst.max(v);
        }
        worst + 2.0 * pow2(-(LIN_FRAC as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approx::{ApproxSet, ExpMethod};

    #[test]
    fn named_plans_fit_their_tables() {
        for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
            set.plan.gelu.validate(&set.layers[0].gelu).unwrap();
        }
        let set = ApproxSet::nimbus();
        if let crate::approx::ExpMethod::Piecewise(pw) = &set.layers[0].exp {
            set.plan.exp.validate(pw).unwrap();
            // The cubic needs u² and u³ = u²·u.
            assert_eq!(
                set.plan.exp.power_schedule(pw),
                vec![
                    PowerStep { k: 2, a: 1, b: 1 },
                    PowerStep { k: 3, a: 2, b: 1 }
                ]
            );
        }
        // PUMA's degree 6 (no u³, u⁵ terms) still needs u³ for u⁶ = u³·u³.
        let puma = ApproxSet::puma();
        let ks: Vec<usize> = puma
            .plan
            .gelu
            .power_schedule(&puma.layers[0].gelu)
            .iter()
            .map(|s| s.k)
            .collect();
        assert_eq!(ks, vec![2, 3, 4, 6]);
    }

    #[test]
    fn plans_that_cannot_hold_their_values_are_refused() {
        let set = ApproxSet::nimbus();
        let gelu = &set.layers[0].gelu;
        let mut p = set.plan.gelu;
        p.poly_bits = Ring::new_const(19); // u² at 16 bits needs more than 2^17
        assert!(p.validate(gelu).is_err());
        let mut p = set.plan.gelu;
        p.cmp_bits = Ring::new_const(12); // comparisons wrap inside ±512
        assert!(p.validate(gelu).is_err());
        let mut p = set.plan.gelu;
        p.out_bits = Ring::new_const(28); // x up to 512 does not fit 28 bits with 18 fraction bits
        assert!(p.validate(gelu).is_err());
        let mut p = set.plan.gelu;
        p.coef_frac = 9; // the value would be at 17 < 18 bits
        assert!(p.validate(gelu).is_err());
        let mut close = gelu.clone();
        close.breakpoints = vec![-1.0, -1.0 + 1.0 / 64.0];
        assert!(set.plan.gelu.validate(&close).is_err());
    }

    #[test]
    fn input_bits_and_power_reach() {
        let set = ApproxSet::nimbus();
        let ExpMethod::Piecewise(exp) = &set.layers[0].exp else {
            panic!("nimbus exp is piecewise")
        };
        // exp: u = ⌊x / 2^10⌋ on Z_2^25 reads 35 bits, the comparisons 12 + 17.
        assert_eq!(set.plan.exp.input_ring(&exp.pieces).bits(), 35);
        // GELU: u on Z_2^22 after 10 bits (32), the identity piece on Z_2^30.
        assert_eq!(
            set.plan.gelu.input_ring(&set.layers[0].gelu.pieces).bits(),
            32
        );
        assert_eq!(
            set.plan.gelu.input_ring(&[Piece::Zero, Piece::Identity]),
            Ring::new_const(30)
        );
        // u³ at 8 bits in Z_2^25: (|x| + 2^-8)³ · 2^16 < 2^23.
        let reach = set.plan.exp.poly_reach(3);
        assert!((reach + 1.0 / 256.0).powi(3) * 65536.0 <= 8_388_608.0 * (1.0 + 1e-12));
        assert!((reach + 2.0 / 256.0).powi(3) * 65536.0 > 8_388_608.0);
    }

    #[test]
    fn breakpoints_round_to_the_grid() {
        assert_eq!(LIN_FRAC, mpc_core::FixedPoint::LINEAR.frac_bits());
        let p = SetPlan::nimbus().gelu;
        assert_eq!(
            Ring::R64.to_signed(p.breakpoint(-2.1)),
            -134 << 12 // −2.09375
        );
        assert!(p.carry_bound(&ApproxSet::nimbus().layers[0].gelu) < 0.03);
    }
}
