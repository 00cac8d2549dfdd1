//! Row maximum on shares by a tournament tree (the Softmax plan's step 2), label `max`. Mirror:
//! [`crate::approx::fixed::max_tree`] (binary, the same winner: see below).
//!
//! Each party computes `y = (x_i mod 2^{keep+drop}) >> drop` of its share once per element, so
//! the shared y is `⌊x / 2^drop⌋ − c` with a carry c ∈ {0, 1} fixed per element: the order the
//! tree sees is a consistent total preorder (no cycles, unlike a fresh local shift per pair).
//! Each level splits every row into groups of k ([`MaxShape`]) and, for all rows at once:
//! 1. `c_ij = [y_i − y_j ≥ 0]` for each pair i < j of a group by one exact [`drelu_digit`]
//!    on Z_2^keep (millionaire on keep − 1 bits); i beats j (i < j) iff c_ij, j beats i iff ¬c_ij
//!    (ties go to the lower index);
//! 2. the winner indicator w_i of i < k − 1 = AND of its k − 1 "beats" bits ([`and`],
//!    ⌈log2(k − 1)⌉ rounds; none for pairs): at most one per group, as the order is
//!    consistent (and none when the last candidate wins);
//! 3. as the indicators are one-hot, the winner is `v_{k−1} + Σ_{i<k−1} w_i·(v_i − v_{k−1})`:
//!    k − 1 [`mux_many`] of the differences of (x, y), both values on the indicator's COT, on
//!    Z_2^max(v, keep) where v is the caller's value ring (Softmax needs x only modulo 2^v, v
//!    the low bits its exp reads: 35 for the Nimbus exp); y is reduced to Z_2^keep.
//!
//! The winner is the first element with the largest y — the binary tree's winner too (a pair
//! keeps the left on ties), so the mirror's binary tree computes the same value whatever the
//! shape; it lies within 2^{drop+1−18} of the row's maximum.
//!
//! Shapes ([`MaxShape`]): a level of groups of k costs k(k − 1)/2 comparisons, k − 1 muxes and
//! (k − 1)(k − 2) ANDs per group (the indicators of its first k − 1 candidates), and
//! r_c + ⌈log2(k − 1)⌉ + 2 rounds by the cost function, r_c the comparison's (4 on 4-bit
//! digits, 3 on 7-bit digits for Z_2^15); on 7-bit digits the comparison's last flight is the
//! client's and merges with the next step's, so fewer are measured. Pairs are cheapest per
//! element, larger groups need fewer levels. Per row of 128 with comparisons on Z_2^15
//! (asserted by `tests/cot_cuts.rs`, rounds measured and by [`row_max_cost`]):
//!
//! | shape | group sizes by level | comparisons | COTs | rounds (cost function) |
//! |---|---|---|---|---|
//! | [`MaxShape::GROUPS`] (the shape before issue 21's cuts, 4-bit digits) | 4, 4, 8 | 268 | 6 178 (6 768 before the one-hot sums) | 25 (25) |
//! | [`MaxShape::SOFTMAX`] (7-bit digits) | 2, 2, 2, 4, 4 | 142 | 2 586 | 25 (29) |
//! | [`MaxShape::PAIRS`] (7-bit digits) | 2 × 7 | 127 | 2 286 | 29 (35) |
//!
//! Softmax runs [`MaxShape::SOFTMAX`] on rows wider than 64: the fewest COTs of the shapes
//! tried within the 25 measured rounds it had before (the Softmax's round target,
//! docs/protocols/nonlinear.md); on rows of up to 64 (a decoder's), where rounds dominate and
//! COTs are few, [`MaxShape::NARROW`] ([`MaxShape::for_softmax`]).
//! 7-bit digits make a comparison on Z_2^15 two 1-of-128 leaf OTs and a one-gate tree
//! (16 COTs, 384 leaf-message bits) instead of four 1-of-16 leaf OTs and three gates
//! (20 COTs, 88 bits).
//!
//! Cost: [`row_max_cost`] is exact in bytes; its rounds are the steps' sum, an upper bound
//! (see the table).
use super::{total_cost, total_cots};
use crate::approx::SoftmaxPlan;
use crate::mpc::and::{and, and_cost, and_cots};
use crate::mpc::drelu::{drelu_digit, drelu_digit_cost, drelu_digit_cots};
use crate::mpc::mux::{mux_cots, mux_many, mux_many_cost};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, Result, Ring};

/// Widest rows [`MaxShape::for_softmax`] runs as [`MaxShape::NARROW`].
pub const NARROW_MAX_COLUMNS: usize = 64;

/// The tournament's shape (module comment): group sizes per level and the comparisons'
/// leaf digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxShape {
    /// Group size of level i = `groups[i]`, the last entry for the levels beyond (each ≥ 2).
    pub groups: &'static [usize],
    /// A level with at most this many candidates left is one group, the last level (≥ 2).
    pub last_group: usize,
    /// Leaf digit of the comparisons' millionaire (1..=8, [`drelu_digit`]).
    pub digit: u32,
}

impl MaxShape {
    /// What [`crate::functions::softmax()`] runs: three levels of pairs, then groups of 4
    /// (128 → 64 → 32 → 16 → 4 → 1), comparisons on 7-bit digits: the fewest COTs among the
    /// shapes measured within the 25 rounds of [`MaxShape::GROUPS`] at 128 columns.
    pub const SOFTMAX: MaxShape = MaxShape {
        groups: &[2, 2, 2, 4],
        last_group: 4,
        digit: 7,
    };
    /// Groups of 8 on 7-bit digits (28 comparisons, 42 ANDs and 7 muxes per group): the
    /// fewest rounds on short rows (by the cost function, 9 rows: 7 instead of 11 at 5
    /// columns, 15 instead of 27 at 40, 16 instead of 27 at 64) for about 4× the COTs of
    /// [`MaxShape::SOFTMAX`], which such rows make small (26 298 against 6 858 at 9 × 40).
    pub const NARROW: MaxShape = MaxShape {
        groups: &[8],
        last_group: 8,
        digit: 7,
    };
    /// The shape Softmax runs on rows of `cols`: [`MaxShape::NARROW`] up to
    /// [`NARROW_MAX_COLUMNS`] (a decoder's attention over its cache, a short prompt), else
    /// [`MaxShape::SOFTMAX`] (an encoder's 128 columns, where the COTs count).
    pub const fn for_softmax(cols: usize) -> MaxShape {
        if cols <= NARROW_MAX_COLUMNS {
            MaxShape::NARROW
        } else {
            MaxShape::SOFTMAX
        }
    }
    /// The binary tree on 7-bit digits: fewest COTs (one comparison and one mux per
    /// element), 29 rounds at 128 columns.
    pub const PAIRS: MaxShape = MaxShape {
        groups: &[2],
        last_group: 2,
        digit: 7,
    };
    /// Groups of 4, the last level one group of up to 8, 4-bit digits: the shape before the
    /// cuts of issue 21 (with the one-hot sums).
    pub const GROUPS: MaxShape = MaxShape {
        groups: &[4],
        last_group: 8,
        digit: 4,
    };

    /// Group size of level `i` with `m` candidates per row.
    fn group_size(self, i: usize, m: usize) -> usize {
        if m <= self.last_group {
            self.last_group
        } else {
            self.groups[i.min(self.groups.len() - 1)]
        }
    }

    fn check(self) -> Result<()> {
        if self.groups.is_empty()
            || self.groups.iter().any(|&g| g < 2)
            || self.last_group < 2
            || !(1..=8).contains(&self.digit)
        {
            return Err(Error::shape(
                "row max plan",
                format!("{self:?}"),
                "groups of at least 2 and a digit of 1..=8",
            ));
        }
        Ok(())
    }
}

/// The ring of the muxes: the caller's value ring, widened to hold y.
fn mux_ring(plan: &SoftmaxPlan, value: Ring) -> Ring {
    value.max(plan.max_keep)
}

/// Group sizes per level for a row of `cols` (the last group of a level may be smaller).
fn levels(shape: MaxShape, cols: usize) -> Vec<Vec<usize>> {
    let mut v: Vec<Vec<usize>> = Vec::new();
    let mut m = cols;
    while m > 1 {
        let g = shape.group_size(v.len(), m);
        let sizes: Vec<usize> = (0..m).step_by(g).map(|i| g.min(m - i)).collect();
        m = sizes.len();
        v.push(sizes);
    }
    v
}

/// AND gates per depth that reduce the k − 1 "beats" bits of each candidate but a group's
/// last (whose indicator the sum does not use) to one (pairs of adjacent bits per depth, an
/// odd last bit passes down).
fn and_depths(sizes: &[usize]) -> Vec<usize> {
    let mut lens: Vec<usize> = sizes
        .iter()
        .filter(|&&k| k >= 2)
        .flat_map(|&k| std::iter::repeat_n(k - 1, k - 1))
        .collect();
    let mut v = Vec::new();
    while lens.iter().any(|&l| l >= 2) {
        v.push(lens.iter().map(|l| l / 2).sum());
        lens.iter_mut().for_each(|l| *l = l.div_ceil(2));
    }
    v
}

fn steps(
    plan: &SoftmaxPlan,
    shape: MaxShape,
    (rows, cols): (usize, usize),
    value: Ring,
) -> Vec<(Cost, CotDemand)> {
    let yr = plan.max_keep;
    let mut v = Vec::new();
    for sizes in levels(shape, cols) {
        let cmp: usize = sizes.iter().map(|k| k * (k - 1) / 2).sum();
        let muxed: usize = sizes.iter().filter(|&&k| k >= 2).map(|k| k - 1).sum();
        v.push((
            drelu_digit_cost(cmp * rows, yr, shape.digit).expect("checked shape"),
            drelu_digit_cots(cmp * rows, yr, shape.digit).expect("checked shape"),
        ));
        for gates in and_depths(&sizes) {
            v.push((and_cost(gates * rows, 0), and_cots(gates * rows)));
        }
        v.push((
            mux_many_cost(muxed * rows, 2, mux_ring(plan, value)),
            mux_cots(muxed * rows),
        ));
    }
    v
}

/// Exact cost of [`row_max`] on `rows` × `cols` (label `max`).
///
/// # Panics
/// On some shapes that [`row_max`] refuses (no groups, a digit outside 1..=8).
pub fn row_max_cost(
    plan: &SoftmaxPlan,
    shape: MaxShape,
    dims: (usize, usize),
    value: Ring,
) -> Cost {
    total_cost(steps(plan, shape, dims, value))
}

/// COTs drawn by [`row_max`] on `rows` × `cols`.
///
/// # Panics
/// On some shapes that [`row_max`] refuses (no groups, a digit outside 1..=8).
pub fn row_max_cots(
    plan: &SoftmaxPlan,
    shape: MaxShape,
    dims: (usize, usize),
    value: Ring,
) -> CotDemand {
    total_cots(steps(plan, shape, dims, value))
}

/// Shares of each row's tree maximum of `x` (rows × cols, row-major, Z_2^64), in the `value`
/// ring (x mod 2^value.bits(); Z_2^64 for the whole value), by a tournament of `shape`.
/// Label `max`.
pub fn row_max(
    sess: &mut Session,
    plan: &SoftmaxPlan,
    shape: MaxShape,
    x: &[u64],
    (rows, cols): (usize, usize),
    value: Ring,
) -> Result<Vec<u64>> {
    if cols == 0 || x.len() != rows * cols {
        return Err(Error::shape("row max elements", x.len(), [rows, cols]));
    }
    shape.check()?;
    let yr = plan.max_keep;
    let mr = mux_ring(plan, value);
    sess.scope("max", |sess| {
        let mut cur: Vec<Vec<(u64, u64)>> = x
            .chunks(cols)
            .map(|row| {
                row.iter()
                    .map(|&v| (mr.reduce(v), yr.reduce(v >> plan.max_drop)))
                    .collect()
            })
            .collect();
        let server = sess.is_server();
        let mut level = 0;
        while cur[0].len() > 1 {
            // 1. Comparisons of every pair of every group, all rows in one batch.
            let g = shape.group_size(level, cur[0].len());
            let groups: Vec<&[(u64, u64)]> = cur.iter().flat_map(|row| row.chunks(g)).collect();
            let mut d = Vec::new();
            for g in &groups {
                for i in 0..g.len() {
                    for j in i + 1..g.len() {
                        d.push(yr.sub(g[i].1, g[j].1));
                    }
                }
            }
            let c = drelu_digit(sess, &d, yr, shape.digit)?;
            // 2. The "beats" bits of each candidate but the group's last, then their ANDs.
            let mut beats: Vec<Vec<bool>> = Vec::new();
            let mut at = 0;
            for g in &groups {
                let k = g.len();
                let base = at;
                let pair = |i: usize, j: usize| {
                    // index of (i, j), i < j, in the group's row-major upper triangle
                    base + i * (2 * k - i - 1) / 2 + (j - i - 1)
                };
                if k >= 2 {
                    for i in 0..k - 1 {
                        beats.push(
                            (0..k)
                                .filter(|&j| j != i)
                                .map(|j| {
                                    if i < j {
                                        c[pair(i, j)]
                                    } else {
                                        c[pair(j, i)] ^ server
                                    }
                                })
                                .collect(),
                        );
                    }
                }
                at += k * (k - 1) / 2;
            }
            while beats.iter().any(|b| b.len() >= 2) {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for b in &beats {
                    for p in b.chunks_exact(2) {
                        x.push(p[0]);
                        y.push(p[1]);
                    }
                }
                let mut z = and(sess, &x, &y)?.into_iter();
                for b in beats.iter_mut() {
                    let mut next: Vec<bool> = (0..b.len() / 2)
                        .map(|_| z.next().unwrap_or(false))
                        .collect();
                    if b.len() % 2 == 1 {
                        next.push(b[b.len() - 1]);
                    }
                    *b = next;
                }
            }
            // 3. The differences to the group's last candidate, selected by the indicators of
            //    the others (x and y on one COT).
            let mut bits = Vec::new();
            let mut vals = Vec::new();
            let mut w = 0;
            for g in groups.iter().filter(|g| g.len() >= 2) {
                let last = g[g.len() - 1];
                for cand in &g[..g.len() - 1] {
                    bits.push(beats[w][0]);
                    vals.extend([mr.sub(cand.0, last.0), mr.sub(cand.1, last.1)]);
                    w += 1;
                }
            }
            let m = mux_many(sess, &bits, &vals, 2, mr)?;
            let mut k = 0;
            let next: Vec<(u64, u64)> = groups
                .iter()
                .map(|g| {
                    let mut win = g[g.len() - 1];
                    for _ in 1..g.len() {
                        win = (mr.add(win.0, m[2 * k]), mr.add(win.1, m[2 * k + 1]));
                        k += 1;
                    }
                    (win.0, yr.reduce(win.1))
                })
                .collect();
            let per_row = groups.len() / cur.len();
            cur = next.chunks(per_row).map(|r| r.to_vec()).collect();
            level += 1;
        }
        Ok(cur.iter().map(|row| value.reduce(row[0].0)).collect())
    })
}
