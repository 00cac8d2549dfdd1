//! The typed error shared by every protocol of the workspace.
//!
//! A peer that disconnects, a message that is short, oversized or malformed, mismatched
//! parameters or shapes: all of these surface as an [`Error`], never a panic or a hang.
//!
//! Shape, malformed-data and range errors carry fields: what was checked, what was found and
//! what was expected, each a [`Dims`], so a caller or a test matches on the numbers
//! (`Error::Malformed { got: Dims::Bytes(10), want: Dims::Bytes(40), .. }`) instead of parsing
//! a message.
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Everything that can go wrong in a protocol run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer closed the connection (or its thread ended) before the expected data arrived.
    #[error("peer disconnected")]
    Disconnected,
    /// Nothing arrived from the peer within the channel's read timeout.
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(Duration),
    /// An operating-system I/O error (socket, file).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame or message announced more bytes than the receiver accepts.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Largest accepted length.
        max: u64,
    },
    /// A message or file that does not parse or fails validation (wrong length, bad magic,
    /// coefficient out of range).
    #[error("malformed data: {what}: got {got}, expected {want}")]
    Malformed {
        /// The message, file or field that was read.
        what: Cow<'static, str>,
        /// What was found.
        got: Dims,
        /// What was expected.
        want: Dims,
    },
    /// The two parties (or a cache file) disagree on the parameters.
    #[error("parameter mismatch: {0}")]
    ParamMismatch(String),
    /// Matrix, vector or tensor dimensions that do not fit together.
    #[error("shape mismatch: {what}: got {got}, expected {want}")]
    Shape {
        /// The operand, tensor or table whose dimensions were checked.
        what: Cow<'static, str>,
        /// The dimensions found.
        got: Dims,
        /// The dimensions expected.
        want: Dims,
    },
    /// A value outside the range it may take (an encoding's range, a vocabulary, a parameter's
    /// bounds).
    #[error("value out of range: {what}: got {got}, expected {want}")]
    OutOfRange {
        /// The value that was checked.
        what: Cow<'static, str>,
        /// The value found.
        got: Dims,
        /// The accepted range.
        want: Dims,
    },
    /// Parameters refused because they do not reach the required security level or correctness.
    /// The cause is the refusing layer's own typed error, with the numbers as fields (e.g.
    /// `he_linear::params::ParamsError::ModulusTooLarge { log_q, max, .. }`; reach it with
    /// `downcast_ref`), or a message.
    #[error("insecure or unusable parameters: {0}")]
    InsecureParams(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A caller passed an argument the function does not accept, for a reason that is not a
    /// shape or a range (those are [`Error::Shape`] and [`Error::OutOfRange`]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A feature that is not implemented (yet); returned instead of faking a result.
    #[error("not available: {0}")]
    Unavailable(String),
}

/// One side of a [`Error::Shape`], [`Error::Malformed`] or [`Error::OutOfRange`]: a length, a
/// shape, a bound, or (where no number fits) a description.
///
/// Conversions: a `usize` is a [`Dims::Len`], an array, slice or vector of `usize` a
/// [`Dims::Shape`], a string a [`Dims::Text`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dims {
    /// A length, count or index; displayed as the number.
    Len(usize),
    /// A length in bytes; displayed `40 bytes`.
    Bytes(usize),
    /// A shape; displayed `2×3` (a scalar shape `[]` as `()`).
    Shape(Vec<usize>),
    /// Any value in `min..=max`; displayed `1..=64`.
    Within {
        /// Smallest accepted value.
        min: usize,
        /// Largest accepted value.
        max: usize,
    },
    /// Any value up to this one; displayed `at most 8`.
    AtMost(usize),
    /// Any value from this one on; displayed `at least 8`.
    AtLeast(usize),
    /// Any value below this one; displayed `below 8`.
    Below(usize),
    /// A positive multiple of this; displayed `a multiple of 8`.
    MultipleOf(usize),
    /// A description in words, where no number fits.
    Text(Cow<'static, str>),
}

impl Dims {
    /// `min..=max`.
    pub fn within(min: usize, max: usize) -> Dims {
        Dims::Within { min, max }
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dims::Len(n) => write!(f, "{n}"),
            Dims::Bytes(n) => write!(f, "{n} bytes"),
            Dims::Shape(dims) if dims.is_empty() => f.write_str("()"),
            Dims::Shape(dims) => {
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str("×")?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
            Dims::Within { min, max } => write!(f, "{min}..={max}"),
            Dims::AtMost(n) => write!(f, "at most {n}"),
            Dims::AtLeast(n) => write!(f, "at least {n}"),
            Dims::Below(n) => write!(f, "below {n}"),
            Dims::MultipleOf(n) => write!(f, "a multiple of {n}"),
            Dims::Text(s) => f.write_str(s),
        }
    }
}

impl From<usize> for Dims {
    fn from(n: usize) -> Dims {
        Dims::Len(n)
    }
}

impl<const N: usize> From<[usize; N]> for Dims {
    fn from(dims: [usize; N]) -> Dims {
        Dims::Shape(dims.to_vec())
    }
}

impl From<&[usize]> for Dims {
    fn from(dims: &[usize]) -> Dims {
        Dims::Shape(dims.to_vec())
    }
}

impl From<Vec<usize>> for Dims {
    fn from(dims: Vec<usize>) -> Dims {
        Dims::Shape(dims)
    }
}

impl From<&'static str> for Dims {
    fn from(s: &'static str) -> Dims {
        Dims::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Dims {
    fn from(s: String) -> Dims {
        Dims::Text(Cow::Owned(s))
    }
}

impl Error {
    /// [`Error::Shape`]: `what` has dimensions `got` where `want` was expected.
    pub fn shape(
        what: impl Into<Cow<'static, str>>,
        got: impl Into<Dims>,
        want: impl Into<Dims>,
    ) -> Error {
        Error::Shape {
            what: what.into(),
            got: got.into(),
            want: want.into(),
        }
    }

    /// [`Error::Malformed`]: `what` holds `got` where `want` was expected.
    pub fn malformed(
        what: impl Into<Cow<'static, str>>,
        got: impl Into<Dims>,
        want: impl Into<Dims>,
    ) -> Error {
        Error::Malformed {
            what: what.into(),
            got: got.into(),
            want: want.into(),
        }
    }

    /// [`Error::OutOfRange`]: `what` is `got`, outside `want`.
    pub fn out_of_range(
        what: impl Into<Cow<'static, str>>,
        got: impl Into<Dims>,
        want: impl Into<Dims>,
    ) -> Error {
        Error::OutOfRange {
            what: what.into(),
            got: got.into(),
            want: want.into(),
        }
    }
}

impl Error {
    /// Names where a [`Error::Shape`], [`Error::Malformed`] or [`Error::OutOfRange`] arose:
    /// its `what` becomes `"{context}: {what}"`, the numbers stay; other errors are unchanged.
    pub fn context(self, context: impl fmt::Display) -> Error {
        let prefix = |what: Cow<'static, str>| Cow::Owned(format!("{context}: {what}"));
        match self {
            Error::Shape { what, got, want } => Error::Shape {
                what: prefix(what),
                got,
                want,
            },
            Error::Malformed { what, got, want } => Error::Malformed {
                what: prefix(what),
                got,
                want,
            },
            Error::OutOfRange { what, got, want } => Error::OutOfRange {
                what: prefix(what),
                got,
                want,
            },
            e => e,
        }
    }
}

/// Result with the workspace's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Reads a whole file; a failure is an [`Error::Malformed`] that names the file and the cause.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| unreadable(path, e))
}

/// Reads a whole text file; a failure names the file and the cause, as [`read_file`].
pub fn read_file_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::malformed(
        path.display().to_string(),
        format!("cannot read: {e}"),
        "a readable file",
    )
}

/// Writes a whole file; a failure names the file and the cause, as [`read_file`].
pub fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| {
        Error::malformed(
            path.display().to_string(),
            format!("cannot write: {e}"),
            "a writable file",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_messages() {
        let e = Error::shape("share elements of a tensor", 5, [2, 3]);
        assert!(matches!(
            &e,
            Error::Shape { got: Dims::Len(5), want: Dims::Shape(s), .. } if s == &[2, 3]
        ));
        assert_eq!(
            e.to_string(),
            "shape mismatch: share elements of a tensor: got 5, expected 2×3"
        );
        let e = Error::malformed("COP message", Dims::Bytes(10), Dims::Bytes(40));
        assert_eq!(
            e.to_string(),
            "malformed data: COP message: got 10 bytes, expected 40 bytes"
        );
        let e = Error::out_of_range("ring bits", 65, Dims::within(1, 64));
        assert_eq!(
            e.to_string(),
            "value out of range: ring bits: got 65, expected 1..=64"
        );
        let what = format!("token id of {}", "x");
        let e = Error::out_of_range(what, 9, Dims::Below(8));
        assert!(e.to_string().ends_with("got 9, expected below 8"), "{e}");
        assert_eq!(Dims::from("a text").to_string(), "a text");
        assert_eq!(Dims::Shape(vec![]).to_string(), "()");
        assert_eq!(Dims::MultipleOf(4).to_string(), "a multiple of 4");
        assert_eq!(Dims::AtMost(4).to_string(), "at most 4");
        let e = Error::out_of_range("x", 3, Dims::AtMost(2)).context("layer 1");
        assert!(
            matches!(&e, Error::OutOfRange { what, got: Dims::Len(3), .. } if what == "layer 1: x")
        );
        assert!(matches!(
            Error::Disconnected.context("c"),
            Error::Disconnected
        ));
    }
}
