//! Oblivious transfer and nonlinear two-party protocols (built in the OT-stack issue).
