//! Small dense linear algebra shared by the head trainer and the fitter.
use mpc_core::{Error, Result};

/// Solves `A s = g` for symmetric positive definite `A` (`m × m`, row-major) given by its lower
/// triangle; `a` is overwritten by the Cholesky factor.
pub(crate) fn cholesky_solve(a: &mut [f64], g: &[f64], m: usize) -> Result<Vec<f64>> {
    for j in 0..m {
        let diag = a[j * m + j] - (0..j).map(|k| a[j * m + k].powi(2)).sum::<f64>();
        if diag <= 0.0 || !diag.is_finite() {
            return Err(Error::InvalidArgument(
                "matrix is not positive definite".into(),
            ));
        }
        let l = diag.sqrt();
        a[j * m + j] = l;
        for i in j + 1..m {
            let s = a[i * m + j] - (0..j).map(|k| a[i * m + k] * a[j * m + k]).sum::<f64>();
            a[i * m + j] = s / l;
        }
    }
    let mut y = vec![0.0; m];
    for i in 0..m {
        y[i] = (g[i] - (0..i).map(|k| a[i * m + k] * y[k]).sum::<f64>()) / a[i * m + i];
    }
    for i in (0..m).rev() {
        y[i] = (y[i] - (i + 1..m).map(|k| a[k * m + i] * y[k]).sum::<f64>()) / a[i * m + i];
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    #[test]
    fn solves_spd_and_refuses_singular() {
        // [[4, 2], [2, 3]] s = [2, 5] → s = [−0.5, 2].
        let mut a = vec![4.0, 0.0, 2.0, 3.0];
        let s = super::cholesky_solve(&mut a, &[2.0, 5.0], 2).unwrap();
        assert!((s[0] + 0.5).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12);
        assert!(super::cholesky_solve(&mut [0.0; 4], &[1.0, 1.0], 2).is_err());
    }
}
