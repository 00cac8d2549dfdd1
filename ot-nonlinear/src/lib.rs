//! Oblivious transfer and the nonlinear two-party protocols.
//!
//! The OT stack, layered as in emp-ot (docs/protocols/ot.md):
//!
//! * [`block`], [`aes_hash`], [`transpose`]: bit packing and large block buffers, fixed-key AES
//!   correlation-robust hashes, bit-matrix transpose. The 128-bit [`Block`], batch AES
//!   (`mpc_core::aes_batch`, VAES-512 detected at run time, portable fallback) and the AES-CTR
//!   generator `mpc_core::AesPrg` live in `mpc_core`.
//! * [`base_ot`]: Chou–Orlandi simplest OT on ristretto255 (128 per connection).
//! * [`iknp`]: IKNP correlated-OT extension (bootstrap and test oracle).
//! * [`ferret`]: Ferret silent random COT (regular-noise primal LPN, half-tree single-point
//!   COT, reserve carried between iterations), a streaming source.
//! * [`cot`]: the random-COT source traits [`RandomCotSender`] and [`RandomCotReceiver`],
//!   implemented by IKNP and Ferret.
//! * [`adapters`]: chosen-choice COT, ℓ-bit additive COT, chosen-message OT, 1-of-2^m OT and
//!   random OT, written once over any source.
//! * [`approx`]: approximation sets (piecewise polynomials and their constants, as data) and the
//!   plaintext fixed-point evaluators that the secure protocols mirror bit for bit.
//!
//! Random COTs from Ferret over an in-memory channel (the sender holds Δ, the receiver reads
//! its choice bit off the low bit of its block):
//!
//! ```
//! use mpc_core::{AesPrg, Channel, Seed};
//! use ot_nonlinear::{FerretReceiver, FerretSender, RandomCotReceiver, RandomCotSender};
//!
//! let (mut a, mut b) = Channel::mem_pair();
//! let receiver = std::thread::spawn(move || -> mpc_core::Result<_> {
//!     let mut ferret = FerretReceiver::setup(&mut b, &mut AesPrg::new(Seed::random()))?;
//!     Ok(ferret.next_n(&mut b, 1000)?.1)
//! });
//! let mut ferret = FerretSender::setup(&mut a, &mut AesPrg::new(Seed::random()))?;
//! let (_, q) = ferret.next_n(&mut a, 1000)?;
//! let t = receiver.join().unwrap()?;
//! let delta = ferret.delta();
//! for (q, t) in q.iter().zip(&t) {
//!     assert_eq!(*t, *q ^ delta.select(t.lsb()));
//! }
//! # Ok::<(), mpc_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod adapters;
pub mod aes_hash;
pub mod approx;
pub mod base_ot;
pub mod block;
pub mod cot;
pub mod ferret;
pub mod functions;
pub mod iknp;
pub mod mpc;
pub mod transpose;

pub use cot::{RandomCotReceiver, RandomCotSender};
pub use ferret::{FerretDuplex, FerretReceiver, FerretSender, LpnParams};
pub use iknp::{IknpReceiver, IknpSender};
pub use mpc_core::Block;
