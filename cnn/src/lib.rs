//! Secure two-party CNN inference: the server holds the weights, the client one image; the
//! client learns the logits, the server nothing.
//!
//! * [`onnx`]: loads an ONNX CNN (Conv, BatchNormalization folded into it, Relu, Add, MaxPool,
//!   AveragePool, GlobalAveragePool, Flatten, Gemm/MatMul; NCHW, one image);
//! * [`graph`]: the [`Network`] (layers over values, shapes, float weights);
//! * [`reference`](mod@reference): the float reference and the fixed-point mirror ([`Quantized`] weights);
//! * [`cost`]: every layer's exact cost under a plan;
//! * [`secure`]: the two-party pass over `nn` operators, one convolution protocol per layer
//!   ([`ConvPlan`]: forced or chosen by exact cost);
//! * [`resnet`]: ResNet-18 and ResNet-32 with CIFAR-100 shapes and deterministic random weights;
//! * [`data`]: the labelled image CSV (`split,label,values…`).
//!
//! ```
//! use cnn::resnet;
//! let net = resnet::resnet32_cifar100(1)?;
//! assert_eq!((net.input_shape(), net.classes()), (&[3, 32, 32][..], 100));
//! # Ok::<(), cnn::CnnError>(())
//! ```
#![warn(missing_docs)]

pub mod cost;
pub mod data;
pub mod graph;
pub mod offline;
pub mod onnx;
pub mod reference;
pub mod resnet;
pub mod secure;

pub use graph::{Layer, Network, Op};
pub use reference::Quantized;
pub use secure::ConvPlan;

use mpc_core::{FixedPoint, Ring};

/// The activation format of the CNNs: Z_2^37 with 12 fraction bits (CrypTFlow2's choice for
/// its ResNets). Products carry 24 fraction bits, so every pre-truncation value v must satisfy
/// |v| < 2^35 / 2^24 / 4 = 128 after Winograd's factor 4 (512 for the direct protocol).
pub fn cnn_format() -> FixedPoint {
    const CNN: FixedPoint = FixedPoint::new_const(Ring::new_const(37), 12);
    CNN
}

/// Errors of this crate: each names the file, node or line it is about.
#[derive(Debug, thiserror::Error)]
pub enum CnnError {
    /// A file could not be read.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// An ONNX file that does not decode or lacks what a CNN needs.
    #[error("{file}: {reason}")]
    Onnx {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An operator this crate does not implement.
    #[error("node `{node}`: unsupported op `{op}`")]
    UnsupportedOp {
        /// The node.
        node: String,
        /// Its op type.
        op: String,
    },
    /// An attribute value this crate does not implement.
    #[error("node `{node}`: attribute `{attribute}`: {reason}")]
    Attribute {
        /// The node.
        node: String,
        /// The attribute.
        attribute: String,
        /// What is not supported.
        reason: String,
    },
    /// Shapes or connections that do not fit.
    #[error("node `{node}`: {reason}")]
    Graph {
        /// The node (or layer).
        node: String,
        /// What does not fit.
        reason: String,
    },
    /// A malformed data file.
    #[error("{file}, line {line}: {reason}")]
    Data {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A protocol or encoding error.
    #[error(transparent)]
    Mpc(#[from] mpc_core::Error),
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, CnnError>;
