//! Approximation sets (built in the bert issue).
