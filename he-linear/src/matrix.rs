//! A row-major matrix over Z_{2^64} (wrapping `u64` arithmetic; reduce to a smaller ring with
//! `mpc_core::Ring` where needed) and the plaintext product every protocol is checked against.
use mpc_core::{Error, Result};
use rayon::prelude::*;

/// A matrix's shape, rows × cols (named fields: the two cannot be swapped at a call site).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatDims {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl std::fmt::Display for MatDims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.rows, self.cols)
    }
}

/// The shape of a product X·Y with X k×m and Y m×n (the product k×n): the three dimensions
/// of the product and plan APIs, named so that they cannot be swapped at a call site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProductShape {
    /// Rows of X and of the product (the tokens, for a linear layer).
    pub k: usize,
    /// The inner dimension: columns of X, rows of Y.
    pub m: usize,
    /// Columns of Y and of the product.
    pub n: usize,
}

impl ProductShape {
    /// The shape of `x · y`; the inner dimensions must agree.
    pub fn of(x: &RingMatrix, y: &RingMatrix) -> Result<ProductShape> {
        if x.cols != y.rows {
            return Err(Error::shape(
                format!("inner dimension of a {} · {} product", x.dims(), y.dims()),
                y.rows,
                x.cols,
            ));
        }
        Ok(ProductShape {
            k: x.rows,
            m: x.cols,
            n: y.cols,
        })
    }

    /// The shape of (X·Y)ᵀ = Yᵀ·Xᵀ: n×m·m×k.
    pub fn transposed(self) -> ProductShape {
        ProductShape {
            k: self.n,
            m: self.m,
            n: self.k,
        }
    }
}

impl std::fmt::Display for ProductShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ProductShape { k, m, n } = *self;
        write!(f, "{k}×{m}·{m}×{n}")
    }
}

/// Row-major `rows × cols` matrix of ring elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingMatrix {
    rows: usize,
    cols: usize,
    data: Vec<u64>,
}

impl RingMatrix {
    /// Wraps row-major data (length must be rows·cols).
    pub fn new(rows: usize, cols: usize, data: Vec<u64>) -> Result<RingMatrix> {
        if data.len() != rows * cols || rows == 0 || cols == 0 {
            return Err(Error::shape("matrix values", data.len(), [rows, cols]));
        }
        Ok(RingMatrix { rows, cols, data })
    }

    /// The zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> RingMatrix {
        RingMatrix {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The shape, rows × cols.
    pub fn dims(&self) -> MatDims {
        MatDims {
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Row-major values.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// Mutable row-major values.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[u64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Element (r, c).
    pub fn get(&self, r: usize, c: usize) -> u64 {
        self.data[r * self.cols + c]
    }

    /// The transpose.
    pub fn transpose(&self) -> RingMatrix {
        let mut t = RingMatrix::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                t.data[c * self.rows + r] = self.data[r * self.cols + c];
            }
        }
        t
    }

    /// self + other (wrapping).
    pub fn add(&self, other: &RingMatrix) -> Result<RingMatrix> {
        self.zip_with(other, u64::wrapping_add)
    }

    /// self − other (wrapping).
    pub fn sub(&self, other: &RingMatrix) -> Result<RingMatrix> {
        self.zip_with(other, u64::wrapping_sub)
    }

    fn zip_with(&self, other: &RingMatrix, f: impl Fn(u64, u64) -> u64) -> Result<RingMatrix> {
        self.same_shape(other)?;
        Ok(RingMatrix {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        })
    }

    fn same_shape(&self, other: &RingMatrix) -> Result<()> {
        if (self.rows, self.cols) != (other.rows, other.cols) {
            return Err(Error::shape(
                "second matrix",
                [other.rows, other.cols],
                [self.rows, self.cols],
            ));
        }
        Ok(())
    }

    /// self · other over Z_{2^64} (parallel over rows).
    pub fn matmul(&self, other: &RingMatrix) -> Result<RingMatrix> {
        if self.cols != other.rows {
            return Err(Error::shape(
                format!(
                    "rows of the right factor of a {}×{} product",
                    self.rows, self.cols
                ),
                other.rows,
                self.cols,
            ));
        }
        let n = other.cols;
        let mut out = RingMatrix::zeros(self.rows, n);
        out.data
            .par_chunks_mut(n)
            .zip(self.data.par_chunks(self.cols))
            .for_each(|(dst, xrow)| {
                for (mu, &x) in xrow.iter().enumerate() {
                    let wrow = &other.data[mu * n..(mu + 1) * n];
                    for (d, &w) in dst.iter_mut().zip(wrow) {
                        *d = d.wrapping_add(x.wrapping_mul(w));
                    }
                }
            });
        Ok(out)
    }
}
