//! Secure tensor operators for every model family: each takes and returns [`SharedTensor`]s
//! (one party's additive share with its shape, ring and fraction bits), runs one two-party
//! protocol of `he-linear` or `ot-nonlinear` on a [`Session`](ot_nonlinear::mpc::Session), and
//! comes with its plaintext fixed-point mirror and its exact cost.
//!
//! | file | operator | protocol |
//! |---|---|---|
//! | [`linear`] | X·W + b, W the server's ([`linear::ServerLinear`] / [`linear::ClientLinear`]) | COP (HE), response window, up-cast |
//! | [`linear_offline`] | the same layer split: COP on the client's random R offline, one message online | COP (HE) offline; plaintext online |
//! | [`linear_half`] | one party's half of a COP or SIP layer behind one trait, single-phase or prepared | — |
//! | [`offline`] | offline material on disk, keyed by model and session, used once | — |
//! | [`matmul`] | X·Y, both shared (attention's products) | secret products (HE), packed or not |
//! | [`attention`] | multi-head attention with padding or causal mask, grouped KV heads | `matmul` + Softmax + row products |
//! | [`attention_offline`] | attention's three products on triples made offline | triples (HE offline); openings + truncation online |
//! | [`triple`] | matrix Beaver triples: X·Y and diag(x)·Y on shares | secret products (HE) offline; openings + truncation online |
//! | [`softmax`] | Softmax of rows with a mask | OT (max tree, exp, reciprocal, product) |
//! | [`norm`] | LayerNorm, RMSNorm | OT (rsqrt) + row products on HE or OT |
//! | [`norm_offline`] | the normalisations' two row products on correlations made offline | HE offline; openings online |
//! | [`activation`] | GELU, SiLU (piecewise polynomials), ReLU | OT |
//! | [`activation_offline`] | a piecewise activation's power products on correlations made offline | OT (Gilboa) offline; openings online |
//! | [`silu`] | SiLU's piecewise table (least-squares fit) | — |
//! | [`exp_table`] | exp's piecewise cubic table for Softmax (decoders) | — |
//! | [`embedding`] | private table lookup ([`embedding::ServerEmbedding`] / [`embedding::ClientEmbedding`]) | HE |
//! | [`argmax`] | index of each row's maximum, revealed to one party | OT (DReLU, mux) |
//! | [`sigmoid`] | σ by 3- or 5-piece linear or a clipped cubic, a batch's comparisons in one flight | OT (piecewise) |
//! | [`conv`] | 2-D convolution, the kernel the server's: im2col or Winograd ([`winograd`]) | OT matrix product (CrypTFlow2) + truncation |
//! | [`conv_he`] | 2-D convolution on the HE linear layer (im2col, kernel encrypted once, cached) | COP (HE) + ring casts |
//! | [`pool`] | max pooling (comparison tree), average pooling | OT (ReLU) / truncation |
//! | [`cast`] | truncations, ring casts, window up-casts | OT |
//! | [`sip_linear`] | X·W + b on the server-side inner product (no client weight cache) | SIP (HE), response window, up-cast |
//! | [`sip_offline`] | the SIP layer split: SIP on the client's random R offline, one message online | SIP (HE) offline; plaintext online |
//! | [`rotary`] | rotary positions at public positions | local + truncation (OT) |
//! | [`product`] | element-wise x·y, both shared (SwiGLU) | OT (Gilboa) + truncation |
//! | [`kv_cache`] | a decoder's key/value cache of shares | — |
//!
//! Accounting labels are defined once in [`label`].
//!
//! ```
//! use mpc_core::FixedPoint;
//! use nn::{Shape, SharedTensor};
//! let x = SharedTensor::zeros(Shape::matrix(2, 3), FixedPoint::LINEAR);
//! assert_eq!((x.rows(), x.cols(), x.frac_bits()), (2, 3, 18));
//! ```
#![warn(missing_docs)]

pub mod activation;
pub mod activation_offline;
pub mod argmax;
pub mod attention;
pub mod attention_offline;
pub mod cast;
pub mod conv;
pub mod conv_he;
pub mod conv_he_offline;
pub mod embedding;
pub mod exp_table;
pub mod keys;
pub mod kv_cache;
pub mod label;
pub(crate) mod least_squares;
pub mod linear;
pub mod linear_half;
pub mod linear_offline;
pub mod matmul;
pub mod norm;
pub mod norm_offline;
pub mod offline;
pub mod pool;
pub mod product;
pub mod rotary;
pub mod sigmoid;
pub mod silu;
pub mod sip_linear;
pub mod sip_offline;
pub mod softmax;
pub mod tensor;
pub mod triple;
pub mod winograd;

pub use keys::HeKeys;
pub use label::{CnnOp, Component};
pub use tensor::{Shape, SharedTensor};
