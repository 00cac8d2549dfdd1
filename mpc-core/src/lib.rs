//! Foundation shared by every protocol crate of the workspace.
//!
//! * [`channel`]: a synchronous, buffered, framed byte channel between the two parties, with
//!   accounting by label (bytes each way, rounds = flights, wall time) built in.
//! * [`transport`]: the frame carriers under a channel (in-memory pair, TCP) and the real-time
//!   network shaper ([`NetProfile`]: `none`, `lan`, `wan`, `bolt-lan`, `bolt-wan`).
//! * [`ring`] and [`fixed`]: Z_{2^ℓ} arithmetic, additive shares, fixed-point encoding.
//! * [`block`], [`aes_batch`], [`prg`]: the 128-bit block, AES-128 on batches of blocks (VAES-512
//!   detected at run time, a portable path), the one AES-128-CTR pseudo-random generator of the
//!   workspace and coin-tossed shared seeds.
//! * [`error`]: the typed error every protocol returns.
//!
//! ```
//! use mpc_core::{channel::Channel, Party};
//! let (mut client, mut server) = Channel::mem_pair();
//! let t = std::thread::spawn(move || {
//!     server.scope("echo", |ch| {
//!         let v = ch.recv_u64s(3)?;
//!         ch.send_u64s(&v)
//!     })
//! });
//! client.scope("echo", |ch| ch.send_u64s(&[1, 2, 3]))?;
//! assert_eq!(client.recv_u64s(3)?, vec![1, 2, 3]);
//! t.join().unwrap()?;
//! assert_eq!(client.rounds(), 2);
//! assert_eq!(Party::Client.other(), Party::Server);
//! # Ok::<(), mpc_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod aes_batch;
pub mod block;
pub mod channel;
pub mod error;
pub mod fixed;
pub mod prg;
pub mod ring;
pub mod transport;

pub use block::Block;
pub use channel::{Channel, Stats};
pub use error::{Dims, Error, Result};
pub use fixed::FixedPoint;
pub use prg::{AesPrg, Seed};
pub use ring::Ring;
pub use transport::NetProfile;

/// The two roles of every protocol: the server holds the model, the client holds the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Party {
    /// Holds the model weights.
    Server,
    /// Holds the input and learns the output.
    Client,
}

impl Party {
    /// The peer's role.
    pub fn other(self) -> Party {
        match self {
            Party::Server => Party::Client,
            Party::Client => Party::Server,
        }
    }
}

/// Which side of a symmetric exchange (both parties send the same kind of message) sends
/// first, so that neither blocks on a full transport waiting for the other to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Sends, then receives.
    SendFirst,
    /// Receives, then sends.
    ReceiveFirst,
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Party::Server => "server",
            Party::Client => "client",
        })
    }
}
