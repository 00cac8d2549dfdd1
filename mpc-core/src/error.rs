//! The typed error shared by every protocol of the workspace.
//!
//! A peer that disconnects, a message that is short, oversized or malformed, mismatched
//! parameters or shapes: all of these surface as an [`Error`], never a panic or a hang.
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
    /// A message that does not parse or fails validation (wrong length, coefficient out of range).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The two parties (or a cache file) disagree on the parameters.
    #[error("parameter mismatch: {0}")]
    ParamMismatch(String),
    /// Matrix or vector dimensions that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A value outside the range its encoding can represent.
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// Parameters refused because they do not reach the required security level or correctness.
    /// The cause is the refusing layer's own typed error, with the numbers as fields (e.g.
    /// `he_linear::params::ParamsError::ModulusTooLarge { log_q, max, .. }`; reach it with
    /// `downcast_ref`), or a message.
    #[error("insecure or unusable parameters: {0}")]
    InsecureParams(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A caller passed an argument the function does not accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A feature that is not implemented (yet); returned instead of faking a result.
    #[error("not available: {0}")]
    Unavailable(String),
}

/// Result with the workspace's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
