//! Row maximum on shares by a binary tree (the Softmax plan's step 2), label `max`. Mirror:
//! [`crate::approx::fixed::max_tree`].
//!
//! Each party computes `y = (x_i mod 2^{keep+drop}) >> drop` of its share once per element, so
//! the shared y is `⌊x / 2^drop⌋ − c` with a carry c ∈ {0, 1} fixed per element: the order the
//! tree sees is a consistent total preorder (no cycles, unlike a fresh local shift per pair).
//! Each level, for all rows at once: `c = [y_a − y_b ≥ 0]` by one exact [`drelu`] on
//! Z_2^keep (millionaire on keep − 1 bits), then one [`mux`] on Z_2^64 of the pairs
//! `(x_a − x_b, y_a − y_b)`, giving the winner's x and y. The result is an element of the row
//! within 2^{drop+1−18} of its maximum (the mirror's winner has the largest ⌊x/2^drop⌋).
//!
//! Cost per level with p pairs: drelu on p elements of Z_2^keep plus mux of 2p elements of
//! Z_2^64 (2·65 bits each); ⌈log2 cols⌉ levels; [`row_max_cost`] is exact. With keep = 15:
//! 4 + 2 rounds per level.
use crate::approx::SoftmaxPlan;
use crate::mpc::drelu::{drelu, drelu_cost, drelu_cots};
use crate::mpc::mux::{mux, mux_cost, mux_cots};
use crate::mpc::{Cost, CotDemand, Session};
use mpc_core::{Error, Result, Ring};

/// Pairs per level for a row of `cols` (an odd last element passes up).
fn level_pairs(cols: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut m = cols;
    while m > 1 {
        v.push(m / 2);
        m = m.div_ceil(2);
    }
    v
}

fn steps(plan: &SoftmaxPlan, rows: usize, cols: usize) -> Vec<(Cost, CotDemand)> {
    let yr = Ring::new(plan.max_keep).expect("validated plan");
    level_pairs(cols)
        .into_iter()
        .flat_map(|p| {
            let n = p * rows;
            [
                (drelu_cost(n, yr), drelu_cots(n, yr)),
                (mux_cost(2 * n, Ring::R64), mux_cots(2 * n)),
            ]
        })
        .collect()
}

/// Exact cost of [`row_max`] (label `max`).
pub fn row_max_cost(plan: &SoftmaxPlan, rows: usize, cols: usize) -> Cost {
    steps(plan, rows, cols)
        .into_iter()
        .fold(Cost::default(), |a, (c, _)| a.then(c))
}

/// COTs drawn by [`row_max`].
pub fn row_max_cots(plan: &SoftmaxPlan, rows: usize, cols: usize) -> CotDemand {
    steps(plan, rows, cols)
        .into_iter()
        .fold(CotDemand::default(), |a, (_, d)| a.plus(d))
}

/// Shares (Z_2^64) of each row's tree maximum of `x` (rows × cols, row-major, Z_2^64).
/// Label `max`.
pub fn row_max(
    sess: &mut Session,
    plan: &SoftmaxPlan,
    x: &[u64],
    rows: usize,
    cols: usize,
) -> Result<Vec<u64>> {
    if cols == 0 || x.len() != rows * cols {
        return Err(Error::Shape(format!(
            "row max: {} elements are not {rows} rows of {cols}",
            x.len()
        )));
    }
    let yr = Ring::new(plan.max_keep)?;
    let r64 = Ring::R64;
    sess.scope("max", |sess| {
        let mut cur: Vec<Vec<(u64, u64)>> = x
            .chunks(cols)
            .map(|row| {
                row.iter()
                    .map(|&v| (v, yr.reduce(v >> plan.max_drop)))
                    .collect()
            })
            .collect();
        while cur[0].len() > 1 {
            let pairs: Vec<((u64, u64), (u64, u64))> = cur
                .iter()
                .flat_map(|row| row.chunks_exact(2).map(|p| (p[0], p[1])))
                .collect();
            let d: Vec<u64> = pairs.iter().map(|(a, b)| yr.sub(a.1, b.1)).collect();
            let c = drelu(sess, &d, yr)?;
            let bits: Vec<bool> = c.iter().flat_map(|&b| [b, b]).collect();
            let vals: Vec<u64> = pairs
                .iter()
                .flat_map(|(a, b)| [r64.sub(a.0, b.0), yr.sub(a.1, b.1)])
                .collect();
            let m = mux(sess, &bits, &vals, r64)?;
            let mut k = 0;
            cur = cur
                .iter()
                .map(|row| {
                    let mut next: Vec<(u64, u64)> = row
                        .chunks_exact(2)
                        .map(|p| {
                            let w = (
                                r64.add(p[1].0, m[2 * k]),
                                yr.reduce(p[1].1.wrapping_add(m[2 * k + 1])),
                            );
                            k += 1;
                            w
                        })
                        .collect();
                    if row.len() % 2 == 1 {
                        next.push(row[row.len() - 1]);
                    }
                    next
                })
                .collect();
        }
        Ok(cur.iter().map(|row| row[0].0).collect())
    })
}
