//! The breakpoint search of the fits: weighted prefix moments of the sorted calibration
//! samples (each segment's least-squares polynomial and error in O(degree³) from them) and the
//! dynamic programme over the plan's comparison grid.
use super::planned_powers;
use crate::linalg::cholesky_solve;
use ot_nonlinear::approx::PiecewisePlan;

/// Most samples used per layer and function (a deterministic stride beyond this).
const MAX_SAMPLES: usize = 400_000;

/// Weighted prefix sums over samples sorted by x: φ_iφ_j (i ≤ j ≤ d), φ_k·f, f², (x − f)², where
/// φ are the [`planned_powers`].
pub(super) struct Moments {
    pub(super) xs: Vec<f64>,
    pub(super) degree: usize,
    pub(super) plan: PiecewisePlan,
    f: fn(f64) -> f64,
    gram: Vec<Vec<f64>>,
    phi_f: Vec<Vec<f64>>,
    f2: Vec<f64>,
    id_err: Vec<f64>,
}

impl Moments {
    pub(super) fn new(
        samples: &[f32],
        weights: Option<&[f32]>,
        plan: &PiecewisePlan,
        degree: usize,
        f: fn(f64) -> f64,
    ) -> Moments {
        let stride = samples.len().div_ceil(MAX_SAMPLES).max(1);
        let mut xw: Vec<(f64, f64)> = (0..samples.len())
            .step_by(stride)
            .map(|i| (samples[i] as f64, weights.map_or(1.0, |w| w[i] as f64)))
            .collect();
        xw.sort_by(|a, b| a.0.total_cmp(&b.0));
        let m = degree + 1;
        let n = xw.len();
        let zeros = || vec![0.0; n + 1];
        let mut gram = vec![zeros(); m * m];
        let mut phi_f = vec![zeros(); m];
        let (mut f2, mut id_err) = (zeros(), zeros());
        for (t, &(x, w)) in xw.iter().enumerate() {
            let phi = planned_powers(plan, x, degree);
            let fx = f(x);
            for i in 0..m {
                for j in i..m {
                    gram[i * m + j][t + 1] = gram[i * m + j][t] + w * phi[i] * phi[j];
                }
                phi_f[i][t + 1] = phi_f[i][t] + w * phi[i] * fx;
            }
            f2[t + 1] = f2[t] + w * fx * fx;
            id_err[t + 1] = id_err[t] + w * (x - fx).powi(2);
        }
        Moments {
            xs: xw.into_iter().map(|(x, _)| x).collect(),
            degree,
            plan: *plan,
            f,
            gram,
            phi_f,
            f2,
            id_err,
        }
    }

    /// Index of the first sample ≥ t.
    pub(super) fn index(&self, t: f64) -> usize {
        self.xs.partition_point(|&x| x < t)
    }

    /// Least-squares polynomial on samples `lo..hi` with the coefficients of degree > `free`
    /// fixed to `fixed[k]`, and its squared error; None if too few samples.
    pub(super) fn fit(
        &self,
        lo: usize,
        hi: usize,
        fixed: &[f64],
        free: usize,
    ) -> Option<(Vec<f64>, f64)> {
        let m = self.degree + 1;
        if hi < lo + 4 * m {
            return None;
        }
        let s = |p: &Vec<f64>| p[hi] - p[lo];
        let g = |i: usize, j: usize| s(&self.gram[i.min(j) * m + i.max(j)]);
        let k = free + 1;
        let mut a: Vec<f64> = (0..k * k).map(|i| g(i / k, i % k)).collect();
        let b: Vec<f64> = (0..k)
            .map(|i| s(&self.phi_f[i]) - (k..m).map(|j| fixed[j] * g(i, j)).sum::<f64>())
            .collect();
        let ridge = 1e-12 * (0..k).map(|i| a[i * k + i]).sum::<f64>();
        (0..k).for_each(|i| a[i * k + i] += ridge);
        let mut c = cholesky_solve(&mut a, &b, k).ok()?;
        c.extend_from_slice(&fixed[k..m]);
        // Σ w (f − c·φ)² = Σ f² − 2 c·Σφf + cᵀ G c.
        let quad: f64 = (0..m)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| c[i] * g(i, j) * c[j])
            .sum();
        let cb: f64 = (0..m).map(|i| c[i] * s(&self.phi_f[i])).sum();
        Some((c, (s(&self.f2) - 2.0 * cb + quad).max(0.0)))
    }

    /// [`Moments::fit`] with the coefficients rounded to `bits[k]` fraction bits, from the
    /// leading one down, re-solving the lower ones after each rounding.
    pub(super) fn fit_rounded(&self, lo: usize, hi: usize, bits: &[u32]) -> Option<Vec<f64>> {
        let mut c = vec![0.0; self.degree + 1];
        for k in (0..=self.degree).rev() {
            let (sol, _) = self.fit(lo, hi, &c, k)?;
            let s = (bits[k] as f64).exp2();
            c[k] = (sol[k] * s).round() / s;
        }
        Some(c)
    }
}

/// The breakpoint grid of `plan` on [lo, hi].
fn grid(plan: &PiecewisePlan, lo: f64, hi: f64) -> Vec<f64> {
    let step = 1.0 / (plan.cmp_frac as f64).exp2();
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(move |i| lo + i as f64 * step).collect()
}

/// The ends of a piecewise search: where the first breakpoint (zero piece to its left) may lie,
/// and either where the last one (identity to its right) may lie or `None` (the last polynomial
/// runs to the largest sample).
pub(super) struct Ends {
    pub(super) first: [f64; 2],
    pub(super) last: Option<[f64; 2]>,
}

/// Breakpoints (on `plan`'s grid, at least two comparison steps apart) minimising the total
/// squared error of {0; `segments` polynomials; x or nothing} by dynamic programming over the
/// grid: the best cost of j segments ending at each grid point from the best of j − 1, with every
/// segment's least-squares error from the prefix moments. Only pieces whose largest error on
/// their interval (the 1/64 grid from the smallest to the largest sample) is within `bound`
/// take part. None if no admissible split exists.
pub(super) fn search(m: &Moments, ends: &Ends, segments: usize, bound: f64) -> Option<Vec<f64>> {
    let plan = &m.plan;
    let n = m.xs.len();
    let (&xlo, &xhi) = (m.xs.first()?, m.xs.last()?);
    let hi = ends.last.map_or(0.0, |l| l[1]);
    // Polynomial pieces stay where their powers fit the plan's ring.
    let reach = (2..=m.degree)
        .map(|k| plan.poly_reach(k))
        .fold(f64::INFINITY, f64::min);
    let points: Vec<f64> = grid(plan, ends.first[0], hi)
        .into_iter()
        .filter(|t| t.abs() < reach)
        .collect();
    let within = |t: f64, r: [f64; 2]| t >= r[0] - 1e-9 && t <= r[1] + 1e-9;
    let step = 1.0 / (plan.cmp_frac as f64).exp2();
    let largest = |lo: f64, hi: f64, err: &dyn Fn(f64) -> f64| {
        if !bound.is_finite() {
            return 0.0;
        }
        let k = ((hi - lo) / step).ceil().max(0.0) as usize;
        (0..=k)
            .map(|i| err((lo + i as f64 * step).min(hi)))
            .fold(0.0, f64::max)
    };
    let f = m.f;
    // Node i < points.len() is a grid breakpoint; without an identity piece one more node stands
    // for the end of the samples.
    let idx: Vec<usize> = points
        .iter()
        .map(|&t| m.index(t))
        .chain(ends.last.is_none().then_some(n))
        .collect();
    let nodes = idx.len();
    let right = |b: usize| points.get(b).copied().unwrap_or(xhi);
    let is_end = |b: usize| match ends.last {
        Some(r) => b < points.len() && within(points[b], r),
        None => b == points.len(),
    };
    let zero = vec![0.0; m.degree + 1];
    // The segment's error, or None if its fit fails, is no better than `beat`, or leaves the
    // bound (checked last: it is the expensive part).
    let segment = |a: usize, b: usize, beat: f64| {
        let (c, e) = m.fit(idx[a], idx[b], &zero, m.degree)?;
        if e >= beat {
            return None;
        }
        let poly = |x: f64| {
            let phi = planned_powers(plan, x, m.degree);
            (c.iter().zip(&phi).map(|(c, p)| c * p).sum::<f64>() - f(x)).abs()
        };
        (largest(points[a], right(b) - 1e-9, &poly) <= bound).then_some(e)
    };
    let tail = |b: usize| match ends.last {
        Some(_) if largest(points[b], xhi, &|x| (x - f(x)).abs()) <= bound => {
            Some(m.id_err[n] - m.id_err[idx[b]])
        }
        Some(_) => None,
        None => Some(0.0),
    };
    // best[b]: least error with the current number of segments, the last ending at node b;
    // from[j][b] the node where that segment started.
    let mut best: Vec<f64> = (0..nodes)
        .map(|b| {
            let zero_ok = b < points.len()
                && within(points[b], ends.first)
                && largest(xlo, points[b] - 1e-9, &|x| f(x).abs()) <= bound;
            if zero_ok {
                m.f2[idx[b]]
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let mut from = vec![vec![usize::MAX; nodes]; segments];
    for level in from.iter_mut() {
        let mut next = vec![f64::INFINITY; nodes];
        for b in 0..nodes {
            for a in 0..b.saturating_sub(1) {
                if !best[a].is_finite() {
                    continue;
                }
                if let Some(e) = segment(a, b, next[b] - best[a]) {
                    next[b] = best[a] + e;
                    level[b] = a;
                }
            }
        }
        best = next;
    }
    let (mut b, _) = (0..nodes)
        .filter(|&b| is_end(b) && best[b].is_finite())
        .filter_map(|b| tail(b).map(|t| (b, best[b] + t)))
        .min_by(|x, y| x.1.total_cmp(&y.1))?;
    let mut cuts = vec![b];
    for level in from.iter().rev() {
        b = level[b];
        cuts.push(b);
    }
    cuts.reverse();
    Some(
        cuts.into_iter()
            .filter(|&b| b < points.len())
            .map(|b| points[b])
            .collect(),
    )
}
