//! Row maximum on shares by a tournament tree (the Softmax plan's step 2), label `max`. Mirror:
//! [`crate::approx::fixed::max_tree`] (binary, the same winner: see below).
//!
//! Each party computes `y = (x_i mod 2^{keep+drop}) >> drop` of its share once per element, so
//! the shared y is `⌊x / 2^drop⌋ − c` with a carry c ∈ {0, 1} fixed per element: the order the
//! tree sees is a consistent total preorder (no cycles, unlike a fresh local shift per pair).
//! Each level splits every row into groups of [`GROUP`] and, for all rows at once:
//! 1. `c_ij = [y_i − y_j ≥ 0]` for each pair i < j of a group by one exact [`drelu`] on
//!    Z_2^keep (millionaire on keep − 1 bits); i beats j (i < j) iff c_ij, j beats i iff ¬c_ij
//!    (ties go to the lower index);
//! 2. the winner indicator of i = AND of its k − 1 "beats" bits ([`and`], ⌈log2(k − 1)⌉ rounds:
//!    exactly one per group, as the order is consistent);
//!
//! The last level (at most [`LAST_GROUP`] candidates left) is a single group.
//! 3. one [`mux`] of every candidate's (x, y) by its indicator, on Z_2^max(v, keep) where v is
//!    the caller's value ring (Softmax needs x only modulo 2^v, v the low bits its exp reads:
//!    35 for the Nimbus exp); the group's sums are the winner's x and y (y reduced to
//!    Z_2^keep).
//!
//! The winner is the first element with the largest y — the binary tree's winner too (a pair
//! keeps the left on ties), so the mirror's binary tree computes the same value; it lies within
//! 2^{drop+1−18} of the row's maximum. Groups of 4 instead of pairs: 8 rounds per level instead
//! of 2 × 6 for two binary levels (128 → 32 → 8 → 1: 4 + 1 + 1 + 2 per 4-way level, 4 + 3 + 2
//! for the last 8-way one: 25 rounds instead of 42), at 1.5 comparisons and 2 muxes per element
//! of a level instead of 0.5 and 1.
//!
//! Cost: [`row_max_cost`] is exact (bytes; rounds as the steps' sum).
use super::{total_cost, total_cots};
use crate::approx::SoftmaxPlan;
use crate::mpc::and::{and, and_cost, and_cots};
use crate::mpc::drelu::{drelu, drelu_cost, drelu_cots};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, Result, Ring};

/// Group size of the tournament's levels.
pub const GROUP: usize = 4;
/// A level with at most this many candidates left is one group (the last level): 8 costs
/// 28 comparisons per row instead of 12 + 1, and saves a level (6 rounds).
pub const LAST_GROUP: usize = 8;

/// Group size of a level with `m` candidates per row.
fn group_size(m: usize) -> usize {
    if m <= LAST_GROUP {
        LAST_GROUP
    } else {
        GROUP
    }
}

/// The ring of the muxes: the caller's value ring, widened to hold y.
fn mux_ring(plan: &SoftmaxPlan, value: Ring) -> Ring {
    Ring::new(value.bits().max(plan.max_keep)).expect("at most 64 bits")
}

/// Group sizes per level for a row of `cols` (the last group of a level may be smaller).
fn levels(cols: usize) -> Vec<Vec<usize>> {
    let mut v = Vec::new();
    let mut m = cols;
    while m > 1 {
        let g = group_size(m);
        let sizes: Vec<usize> = (0..m).step_by(g).map(|i| g.min(m - i)).collect();
        m = sizes.len();
        v.push(sizes);
    }
    v
}

/// AND gates per depth that reduce each candidate's k − 1 "beats" bits to one (pairs of
/// adjacent bits per depth, an odd last bit passes down).
fn and_depths(sizes: &[usize]) -> Vec<usize> {
    let mut lens: Vec<usize> = sizes
        .iter()
        .filter(|&&k| k >= 2)
        .flat_map(|&k| std::iter::repeat_n(k - 1, k))
        .collect();
    let mut v = Vec::new();
    while lens.iter().any(|&l| l >= 2) {
        v.push(lens.iter().map(|l| l / 2).sum());
        lens.iter_mut().for_each(|l| *l = l.div_ceil(2));
    }
    v
}

fn steps(plan: &SoftmaxPlan, rows: usize, cols: usize, value: Ring) -> Vec<(Cost, CotDemand)> {
    let yr = Ring::new(plan.max_keep).expect("validated plan");
    let mut v = Vec::new();
    for sizes in levels(cols) {
        let cmp: usize = sizes.iter().map(|k| k * (k - 1) / 2).sum();
        let muxed: usize = sizes.iter().filter(|&&k| k >= 2).sum();
        v.push((drelu_cost(cmp * rows, yr), drelu_cots(cmp * rows, yr)));
        for gates in and_depths(&sizes) {
            v.push((and_cost(gates * rows, 0), and_cots(gates * rows)));
        }
        v.push((
            mux_cost(2 * muxed * rows, mux_ring(plan, value)),
            mux_cots(2 * muxed * rows),
        ));
    }
    v
}

/// Exact cost of [`row_max`] (label `max`).
pub fn row_max_cost(plan: &SoftmaxPlan, rows: usize, cols: usize, value: Ring) -> Cost {
    total_cost(steps(plan, rows, cols, value))
}

/// COTs drawn by [`row_max`].
pub fn row_max_cots(plan: &SoftmaxPlan, rows: usize, cols: usize, value: Ring) -> CotDemand {
    total_cots(steps(plan, rows, cols, value))
}

/// Shares of each row's tree maximum of `x` (rows × cols, row-major, Z_2^64), in the `value`
/// ring (x mod 2^value.bits(); Z_2^64 for the whole value). Label `max`.
pub fn row_max(
    sess: &mut Session,
    plan: &SoftmaxPlan,
    x: &[u64],
    (rows, cols): (usize, usize),
    value: Ring,
) -> Result<Vec<u64>> {
    if cols == 0 || x.len() != rows * cols {
        return Err(Error::Shape(format!(
            "row max: {} elements are not {rows} rows of {cols}",
            x.len()
        )));
    }
    let yr = Ring::new(plan.max_keep)?;
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
        while cur[0].len() > 1 {
            // 1. Comparisons of every pair of every group, all rows in one batch.
            let g = group_size(cur[0].len());
            let groups: Vec<&[(u64, u64)]> = cur.iter().flat_map(|row| row.chunks(g)).collect();
            let mut d = Vec::new();
            for g in &groups {
                for i in 0..g.len() {
                    for j in i + 1..g.len() {
                        d.push(yr.sub(g[i].1, g[j].1));
                    }
                }
            }
            let c = drelu(sess, &d, yr)?;
            // 2. Each candidate's "beats" bits, then their AND in two depths.
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
                    for i in 0..k {
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
            // 3. One mux of every candidate's (x, y) by its indicator.
            let mut bits = Vec::new();
            let mut vals = Vec::new();
            let mut w = 0;
            for g in groups.iter().filter(|g| g.len() >= 2) {
                for cand in g.iter() {
                    bits.extend([beats[w][0], beats[w][0]]);
                    vals.extend([cand.0, cand.1]);
                    w += 1;
                }
            }
            let m = mux(sess, &bits, &vals, mr)?;
            let mut k = 0;
            let next: Vec<(u64, u64)> = groups
                .iter()
                .map(|g| {
                    if g.len() == 1 {
                        return g[0];
                    }
                    let mut win = (0u64, 0u64);
                    for _ in 0..g.len() {
                        win = (mr.add(win.0, m[2 * k]), mr.add(win.1, m[2 * k + 1]));
                        k += 1;
                    }
                    (win.0, yr.reduce(win.1))
                })
                .collect();
            let per_row = groups.len() / cur.len();
            cur = next.chunks(per_row).map(|r| r.to_vec()).collect();
        }
        Ok(cur.iter().map(|row| value.reduce(row[0].0)).collect())
    })
}
