//! RLWE linear layers.
