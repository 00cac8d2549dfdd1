//! RLWE over an RNS modulus and the homomorphic matrix-multiplication protocols.
#![warn(missing_docs)]

pub mod bits;
pub mod cop;
pub mod kernel;
pub mod matrix;
pub mod noise;
pub mod params;
pub mod poly;
pub mod response;
pub mod rlwe;
pub mod rns;
pub mod sampling;
pub mod secret_product;
pub mod sip;
pub mod weight_store;
