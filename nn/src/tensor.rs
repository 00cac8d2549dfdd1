//! Shared tensors: one party's additive share of a fixed-point tensor, with its shape and
//! format, so that an operator can check what it is given instead of trusting a flat slice.
use mpc_core::{Dims, Error, FixedPoint, Result, Ring};
use std::borrow::Cow;

/// A row-major tensor shape (outermost dimension first).
///
/// ```
/// use nn::Shape;
/// let s = Shape::matrix(128, 768);
/// assert_eq!((s.rows(), s.cols(), s.len()), (128, 768, 128 * 768));
/// assert_eq!(Shape::new(&[2, 3, 4]).rows(), 6);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions (at least one).
    pub fn new(dims: &[usize]) -> Shape {
        assert!(!dims.is_empty(), "a shape has at least one dimension");
        Shape(dims.to_vec())
    }

    /// `rows × cols`.
    pub fn matrix(rows: usize, cols: usize) -> Shape {
        Shape(vec![rows, cols])
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.iter().product()
    }

    /// Whether the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The innermost dimension (a row's length).
    pub fn cols(&self) -> usize {
        *self.0.last().expect("non-empty shape")
    }

    /// The product of all dimensions but the innermost: the number of rows.
    pub fn rows(&self) -> usize {
        self.0[..self.0.len() - 1].iter().product()
    }
}

impl From<&Shape> for Dims {
    fn from(shape: &Shape) -> Dims {
        Dims::Shape(shape.0.clone())
    }
}

/// `Z_2^ℓ with f fraction bits`.
fn describe(format: FixedPoint) -> String {
    format!(
        "Z_2^{} with {} fraction bits",
        format.ring().bits(),
        format.frac_bits()
    )
}

/// An operand in another fixed-point format than expected, as an [`Error::Shape`] (the format
/// is part of what an operator checks of its input, with the dimensions).
pub(crate) fn format_mismatch(
    what: impl Into<Cow<'static, str>>,
    got: FixedPoint,
    want: FixedPoint,
) -> Error {
    Error::shape(what, describe(got), describe(want))
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        f.write_str(&dims.join("×"))
    }
}

/// This party's additive share of a tensor of fixed-point values: shape, ring, fraction bits
/// and the share's elements (each reduced into the ring). The peer holds the other share; the
/// two add up, modulo 2^ℓ, to the encoded values.
///
/// ```
/// use mpc_core::FixedPoint;
/// use nn::{Shape, SharedTensor};
/// let fp = FixedPoint::LINEAR;
/// let a = SharedTensor::new(Shape::matrix(1, 2), fp, vec![fp.encode(1.5)?, 7])?;
/// let b = SharedTensor::new(Shape::matrix(1, 2), fp, vec![fp.encode(0.25)?, 0u64.wrapping_sub(7)])?;
/// assert_eq!(fp.decode_vec(&a.reconstruct(&b)?), vec![1.75, 0.0]);
/// # Ok::<(), mpc_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedTensor {
    shape: Shape,
    format: FixedPoint,
    share: Vec<u64>,
}

impl SharedTensor {
    /// Wraps a share; an error if its length is not the shape's or an element is outside the
    /// ring.
    pub fn new(shape: Shape, format: FixedPoint, share: Vec<u64>) -> Result<SharedTensor> {
        if share.len() != shape.len() {
            return Err(Error::shape(
                "share elements of a tensor",
                share.len(),
                &shape,
            ));
        }
        format.ring().check_all(&share)?;
        Ok(SharedTensor {
            shape,
            format,
            share,
        })
    }

    /// A `rows × cols` share in `format`.
    pub fn matrix(rows: usize, cols: usize, format: FixedPoint, share: Vec<u64>) -> Result<Self> {
        SharedTensor::new(Shape::matrix(rows, cols), format, share)
    }

    /// The share of zero (what a party without an input contributes).
    pub fn zeros(shape: Shape, format: FixedPoint) -> SharedTensor {
        let share = vec![0; shape.len()];
        SharedTensor {
            shape,
            format,
            share,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The fixed-point format (ring and fraction bits).
    pub fn format(&self) -> FixedPoint {
        self.format
    }

    /// The ring of the share.
    pub fn ring(&self) -> Ring {
        self.format.ring()
    }

    /// Fraction bits of the encoded values.
    pub fn frac_bits(&self) -> u32 {
        self.format.frac_bits()
    }

    /// Rows (all dimensions but the innermost).
    pub fn rows(&self) -> usize {
        self.shape.rows()
    }

    /// The innermost dimension.
    pub fn cols(&self) -> usize {
        self.shape.cols()
    }

    /// This party's share, row-major.
    pub fn share(&self) -> &[u64] {
        &self.share
    }

    /// The share, consumed.
    pub fn into_share(self) -> Vec<u64> {
        self.share
    }

    /// Row `r` of the share.
    pub fn row(&self, r: usize) -> &[u64] {
        let c = self.cols();
        &self.share[r * c..(r + 1) * c]
    }

    /// The same share viewed with another shape of as many elements.
    pub fn reshape(self, shape: Shape) -> Result<SharedTensor> {
        SharedTensor::new(shape, self.format, self.share)
    }

    /// Checks that `self` has `shape` and `format`; `what` names the operand in the error.
    pub fn expect(&self, what: &str, shape: &Shape, format: FixedPoint) -> Result<()> {
        if &self.shape != shape {
            return Err(Error::shape(what.to_string(), &self.shape, shape));
        }
        if self.format != format {
            return Err(format_mismatch(what.to_string(), self.format, format));
        }
        Ok(())
    }

    /// Element-wise sum of two shares of the same shape and format (local, no message).
    pub fn add(&self, other: &SharedTensor) -> Result<SharedTensor> {
        other.expect("addend", &self.shape, self.format)?;
        let r = self.ring();
        let share = self
            .share
            .iter()
            .zip(&other.share)
            .map(|(&a, &b)| r.add(a, b))
            .collect();
        Ok(SharedTensor {
            shape: self.shape.clone(),
            format: self.format,
            share,
        })
    }

    /// Splits every row into its first `first` columns and the rest (local).
    pub fn split_columns(&self, first: usize) -> Result<(SharedTensor, SharedTensor)> {
        let (rows, cols) = (self.rows(), self.cols());
        if first > cols {
            return Err(Error::out_of_range(
                "split column",
                first,
                Dims::AtMost(cols),
            ));
        }
        let mut a = Vec::with_capacity(rows * first);
        let mut b = Vec::with_capacity(rows * (cols - first));
        for row in self.share.chunks_exact(cols) {
            a.extend_from_slice(&row[..first]);
            b.extend_from_slice(&row[first..]);
        }
        Ok((
            SharedTensor::matrix(rows, first, self.format, a)?,
            SharedTensor::matrix(rows, cols - first, self.format, b)?,
        ))
    }

    /// Splits the rows into the first `first` rows and the rest (local).
    pub fn split_rows(&self, first: usize) -> Result<(SharedTensor, SharedTensor)> {
        let (rows, cols) = (self.rows(), self.cols());
        if first > rows {
            return Err(Error::out_of_range("split row", first, Dims::AtMost(rows)));
        }
        let (a, b) = self.share.split_at(first * cols);
        Ok((
            SharedTensor::matrix(first, cols, self.format, a.to_vec())?,
            SharedTensor::matrix(rows - first, cols, self.format, b.to_vec())?,
        ))
    }

    /// The values, given the peer's share (tests and the party that learns an output).
    pub fn reconstruct(&self, other: &SharedTensor) -> Result<Vec<u64>> {
        other.expect("peer share", &self.shape, self.format)?;
        self.ring().reconstruct_vec(&self.share, &other.share)
    }
}
