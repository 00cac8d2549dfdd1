//! Weighted least-squares polynomial fits, the tables' common tool ([`crate::silu`],
//! [`crate::exp_table`]). The fit is solved in the centred, scaled variable
//! t = (x − c)/s (conditioning) and returned in the monomials of x, which is what the
//! piecewise plans evaluate.
use mpc_core::{Error, Result};

/// Coefficients (constant term first, zero off `powers`) of the polynomial in the monomials
/// x^k, k ∈ `powers` (increasing), minimising Σ w·(p(x) − f(x))² over the weighted `points`
/// (x within `center ± half_width`).
///
/// The system is solved in t = (x − center)/half_width and the result expanded back into
/// powers of x (binomially; a non-zero centre fills the powers below each fitted one).
pub(crate) fn weighted_least_squares(
    f: impl Fn(f64) -> f64,
    (center, half_width): (f64, f64),
    points: &[(f64, f64)],
    powers: &[usize],
) -> Result<Vec<f64>> {
    let k = powers.len();
    let s = half_width;
    if !(s > 0.0 && s.is_finite() && center.is_finite()) || k == 0 {
        return Err(Error::InvalidArgument(format!(
            "least squares on {center} ± {s} in {k} monomials"
        )));
    }
    let mut ata = vec![0.0; k * k];
    let mut aty = vec![0.0; k];
    let mut pows = vec![0.0; k];
    for &(x, w) in points {
        let t = (x - center) / s;
        pows.iter_mut()
            .zip(powers)
            .for_each(|(v, &e)| *v = t.powi(e as i32));
        let y = w * f(x);
        for i in 0..k {
            aty[i] += pows[i] * y;
            for j in 0..k {
                ata[i * k + j] += w * pows[i] * pows[j];
            }
        }
    }
    let a = solve(&mut ata, &mut aty, k)?;
    // a_e·((x − c)/s)^e = a_e/s^e · Σ_j binom(e, j)·x^j·(−c)^{e−j}.
    let mut coeffs = vec![0.0; powers.last().map_or(0, |&e| e + 1)];
    for (&e, a_e) in powers.iter().zip(a) {
        let scaled = a_e / s.powi(e as i32);
        let mut binom = 1.0;
        for (j, c) in coeffs.iter_mut().enumerate().take(e + 1) {
            *c += scaled * binom * (-center).powi((e - j) as i32);
            binom = binom * (e - j) as f64 / (j + 1) as f64;
        }
    }
    Ok(coeffs)
}

/// Gaussian elimination with partial pivoting on a k×k system.
fn solve(a: &mut [f64], b: &mut [f64], k: usize) -> Result<Vec<f64>> {
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&i, &j| a[i * k + col].abs().total_cmp(&a[j * k + col].abs()))
            .unwrap_or(col);
        if a[pivot * k + col].abs() < 1e-12 {
            return Err(Error::InvalidArgument(
                "singular least-squares system".into(),
            ));
        }
        for j in 0..k {
            a.swap(col * k + j, pivot * k + j);
        }
        b.swap(col, pivot);
        for i in col + 1..k {
            let m = a[i * k + col] / a[col * k + col];
            for j in col..k {
                a[i * k + j] -= m * a[col * k + j];
            }
            b[i] -= m * b[col];
        }
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|j| a[i * k + j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i * k + i];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_centre_fit_recovers_a_cubic_in_powers_of_x() {
        let p = |x: f64| 0.25 - 1.5 * x + 0.75 * x * x - 0.125 * x * x * x;
        let points: Vec<(f64, f64)> = (0..=200).map(|i| (-9.0 + i as f64 / 50.0, 1.0)).collect();
        let c = weighted_least_squares(p, (-7.0, 2.0), &points, &[0, 1, 2, 3]).unwrap();
        for (got, want) in c.iter().zip([0.25, -1.5, 0.75, -0.125]) {
            assert!((got - want).abs() < 1e-9, "{c:?}");
        }
    }
}
