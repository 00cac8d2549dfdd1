//! RLWE over an RNS modulus and the homomorphic matrix-multiplication protocols.
#![warn(missing_docs)]

pub mod noise;
pub mod params;
pub mod rns;
pub mod sampling;
pub mod poly;
pub mod rlwe;
pub mod bits;
pub mod response;
pub mod kernel;
pub mod cop;
pub mod matrix;
pub mod weight_store;
