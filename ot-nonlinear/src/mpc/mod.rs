//! Two-party protocols over secret shares, on the Ferret COT sources of a [`Session`].
//!
//! Shares: **Boolean** values are XOR-shared bits (`Vec<bool>`, one per element: the value is
//! `b_server ⊕ b_client`); **arithmetic** values are additive shares in a [`Ring`]
//! Z_2^ℓ (`&[u64]`, reduced). Every protocol is called by both parties with the same public
//! arguments and their own shares; roles follow `session.party`. The server is "P0"
//! wherever a protocol is asymmetric (it is the sender of one-way COT batches and the holder
//! of `a` in the millionaires' comparison).
//!
//! Protocols run COTs in both directions at once: a batch's choice corrections travel in one
//! flight (both ways at the same time), its messages in the next, so every COT-based step
//! costs 2 rounds whichever party sends. Beaver bit triples come from random OTs with no
//! communication of their own (two per triple, one per direction).
//!
//! Costs: each protocol runs under its own label (e.g. `drelu`, nested `drelu/millionaire`);
//! the COTs it draws come from the session's Ferret instances, whose extensions run under
//! `ferret/extend` (≈ 0.214 bits per COT, one sender → receiver flight per 10^7 COTs). Each
//! protocol's `*_cots` function gives the COTs it draws ([`CotDemand`]); call
//! [`Session::reserve`] with it beforehand and the protocol's rounds hold no extension
//! flight. Each `*_cost` function gives the exact bytes each party sends under the label and
//! the rounds ([`Cost`]); the tests assert them.
//!
//! | file | computes | bits (both ways) per element | rounds |
//! |---|---|---|---|
//! | [`and`](mod@and) | x ∧ y (XOR shares), Beaver triples from random OTs | 4 | 1 |
//! | [`millionaire`](mod@millionaire) | `[a > b]`, a the server's, b the client's, n bits, m-bit digits | n + Σ leaf messages + tree (see file) | 2 + ⌈log2 ⌈n/m⌉⌉ |
//! | [`drelu`](mod@drelu) | `[x ≥ 0]`, MSB, wrap, `[x ≥ T]` (server-held T), reduced-ring DReLU, lanes `[x ≥ T_c]` sharing leaves, other leaf digits (`drelu_digit`) | millionaire on ℓ − 1 (ℓ) bits | as millionaire |
//! | [`mux`](mod@mux) | b·x; b·x_c for k values on one COT (`mux_many`) | 2(kℓ + 1) | 2 |
//! | [`b2a`](mod@b2a) | bit → Z_2^ℓ, scaled by 2^s | ℓ − s | 2 |
//! | [`trunc`](mod@trunc) | floor(x / 2^s) mod 2^L (down-cast, known-MSB fast path, 1-bit error, faithful) | 0 / L − ℓ + s + 1 / … | 0 / 2 / … |
//! | [`product`](mod@product) | x·y (Gilboa), x², x·(row scalar); narrow x², x·y on the low k bits of bounded operands | 2(ℓ + ℓ(ℓ+1)/2) | 2 |
//! | [`matmul`](mod@matmul) | W·X, W the server's, X shared (CrypTFlow2) | inner·cols·(ℓ + rows·ℓ(ℓ+1)/2) in total | 2 |
//! | [`lut`](mod@lut) | `T[x]` for x ∈ Z_2^n (n ≤ 8), server-held T | n + 2^n·ℓ | 2 |
//! | [`relu`](mod@relu) | x·[x ≥ 0] | DReLU + mux | DReLU + 2 |
pub mod acot;
pub mod and;
pub mod b2a;
pub mod drelu;
pub mod lut;
pub mod matmul;
pub mod millionaire;
pub mod mux;
pub mod product;
pub mod relu;
pub mod trunc;

use crate::ferret::{CotStash, FerretDuplex};
use mpc_core::transport::{Frame, FrameReceiver, FrameSender};
use mpc_core::Block;
use mpc_core::{AesPrg, Channel, Error, Party, Result, Ring, Seed};

pub use and::and;
pub use b2a::b2a;
pub use drelu::{
    drelu, drelu_digit, drelu_lanes, drelu_reduced, drelu_reduced_lanes, greater_equal_threshold,
    lanes_minus, msb, msb_lanes, wrap,
};
pub use lut::lut;
pub use matmul::{server_matmul, MatmulDims};
pub use millionaire::{millionaire, millionaire_lanes};
pub use mux::mux;
pub use product::{mul, mul_narrow, mul_row_scalar, square, square_narrow};
pub use relu::relu;
pub use trunc::{trunc_cast, TruncKind};

/// One party's state for the two-party protocols: its role, the channel to the peer, its two
/// Ferret instances (sender in one direction, receiver in the other) and a local generator.
#[derive(Debug)]
pub struct Session {
    /// This party's role.
    pub party: Party,
    /// The channel to the peer (costs are recorded on it by label).
    pub ch: Channel,
    /// The COT sources of both directions.
    pub ot: FerretDuplex,
    rng: AesPrg,
    /// COTs set aside for later protocols ([`Session::set_aside_cots`]), by key.
    stashes: Vec<(StashKey, CotStash)>,
}

/// The name under which [`Session::set_aside_cots`] keeps COTs for a later protocol: a scope
/// (e.g. an offline session's id) and an index within it (e.g. a call). Both parties use the
/// same keys at the same points of their streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StashKey {
    /// The scope of the index.
    pub scope: [u8; 16],
    /// The protocol within the scope.
    pub index: u64,
}

/// COTs a protocol draws, by direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CotDemand {
    /// COTs with the server as sender (and the client as receiver).
    pub server: usize,
    /// COTs with the client as sender.
    pub client: usize,
}

impl CotDemand {
    /// Both demands together.
    pub fn plus(self, o: CotDemand) -> CotDemand {
        CotDemand {
            server: self.server + o.server,
            client: self.client + o.client,
        }
    }

    /// `n` COTs in each direction.
    pub fn both(n: usize) -> CotDemand {
        CotDemand {
            server: n,
            client: n,
        }
    }
}

/// Who sends a protocol's first or last flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Side {
    /// Nobody (no message).
    #[default]
    None,
    /// The server alone.
    Server,
    /// The client alone.
    Client,
    /// Both, at the same time.
    Both,
}

/// Exact cost of a protocol's own messages (its label, COT extensions excluded).
///
/// Rounds follow the channel's count: a flight that a party sends right after its previous
/// one, with nothing received in between, is part of the same flight. So when a protocol whose
/// last flight is one party's is followed by one whose first flight is that same party's, the
/// two flights merge and the sequence has one round less than the sum ([`Cost::then`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Bytes the server sends.
    pub server_bytes: u64,
    /// Bytes the client sends.
    pub client_bytes: u64,
    /// Rounds (flights of the longest dependency chain), standalone.
    pub rounds: u64,
    /// Who sends the first flight.
    pub first: Side,
    /// Who sends the last flight.
    pub last: Side,
}

impl Cost {
    /// `self` followed by `o`: bytes add; rounds add, less one when `o`'s first flight is sent
    /// by the party that sent `self`'s last one alone.
    pub fn then(self, o: Cost) -> Cost {
        if self.rounds == 0 {
            return Cost {
                server_bytes: self.server_bytes + o.server_bytes,
                client_bytes: self.client_bytes + o.client_bytes,
                ..o
            };
        }
        if o.rounds == 0 {
            return Cost {
                server_bytes: self.server_bytes + o.server_bytes,
                client_bytes: self.client_bytes + o.client_bytes,
                ..self
            };
        }
        let merge = matches!(
            (self.last, o.first),
            (Side::Server, Side::Server) | (Side::Client, Side::Client)
        );
        Cost {
            server_bytes: self.server_bytes + o.server_bytes,
            client_bytes: self.client_bytes + o.client_bytes,
            rounds: self.rounds + o.rounds - merge as u64,
            first: self.first,
            last: o.last,
        }
    }

    /// One flight: each party sends `server_bits` / `client_bits` bits, packed (nothing at all,
    /// no round, when both are 0).
    pub fn flight(server_bits: usize, client_bits: usize) -> Cost {
        let side = match (server_bits > 0, client_bits > 0) {
            (false, false) => return Cost::default(),
            (true, false) => Side::Server,
            (false, true) => Side::Client,
            (true, true) => Side::Both,
        };
        Cost {
            server_bytes: server_bits.div_ceil(8) as u64,
            client_bytes: client_bits.div_ceil(8) as u64,
            rounds: 1,
            first: side,
            last: side,
        }
    }

    /// Bytes of both directions.
    pub fn bytes(&self) -> u64 {
        self.server_bytes + self.client_bytes
    }
}

impl Session {
    /// Sets up the Ferret instances of both directions over `ch` (label `ferret/setup`).
    ///
    /// `seed` is this party's secret session seed: every random choice of the session (the
    /// Ferret setup, the masks of the protocols, [`fresh_seed`](Self::fresh_seed)) derives from
    /// it, so two runs with the same seeds on both sides are identical. It must be fresh and
    /// secret (e.g. `Seed::random()` at the top of a run).
    pub fn new(mut ch: Channel, party: Party, seed: Seed) -> Result<Session> {
        let ot = FerretDuplex::setup(&mut ch, party, &mut AesPrg::new(seed.derive(0)))?;
        Ok(Session {
            party,
            ch,
            ot,
            rng: AesPrg::from_block(Block::from_bytes(seed.derive(1).0)),
            stashes: Vec::new(),
        })
    }

    /// A fresh secret seed from the session's generator, for a protocol of another layer (an
    /// HE product's masks and floods) that takes its randomness as a seed.
    pub fn fresh_seed(&mut self) -> Seed {
        Seed(self.rng.block().to_bytes())
    }

    /// Whether this party is the server (P0).
    pub fn is_server(&self) -> bool {
        self.party == Party::Server
    }

    /// Pre-extends the Ferret pools so that the next `send` COTs of this party's sender and
    /// `recv` of its receiver need no communication (the peer passes the numbers swapped).
    pub fn reserve_cots(&mut self, send: usize, recv: usize) -> Result<()> {
        self.ot.reserve(&mut self.ch, send, recv)
    }

    /// [`reserve_cots`](Self::reserve_cots) for a protocol's demand (both parties pass the
    /// same demand).
    pub fn reserve(&mut self, demand: CotDemand) -> Result<()> {
        let (send, recv) = self.own_and_other(demand);
        self.reserve_cots(send, recv)
    }

    /// `demand` as (this party's sender's COTs, its receiver's).
    fn own_and_other(&self, demand: CotDemand) -> (usize, usize) {
        match self.party {
            Party::Server => (demand.server, demand.client),
            Party::Client => (demand.client, demand.server),
        }
    }

    /// The demand of `own` COTs from this party's sender and `other` from its receiver.
    fn demand_of(&self, own: usize, other: usize) -> CotDemand {
        let (server, client) = match self.party {
            Party::Server => (own, other),
            Party::Client => (other, own),
        };
        CotDemand { server, client }
    }

    /// Extends the COTs of `demand` now (one crossing flight, as [`Session::reserve`]) and
    /// keeps them under `key` for a later protocol: draws until [`Session::restore_cots`]
    /// with that key skip them. Both parties call it with the same key and demand at the same
    /// point. Refuses a key it already holds.
    pub fn set_aside_cots(&mut self, key: StashKey, demand: CotDemand) -> Result<()> {
        if self.stashes.iter().any(|(k, _)| *k == key) {
            return Err(Error::InvalidArgument(format!(
                "COTs are already set aside under {key:?}"
            )));
        }
        let (send, recv) = self.own_and_other(demand);
        let stash = self.ot.set_aside(&mut self.ch, send, recv)?;
        self.stashes.push((key, stash));
        Ok(())
    }

    /// Puts the COTs set aside under `key` in front of the pools, so the next draws take them
    /// with no extension; returns the demand restored (zero if this session holds none under
    /// `key`: it was set aside in another session, or not at all). Both parties call it at the
    /// same point.
    pub fn restore_cots(&mut self, key: StashKey) -> CotDemand {
        let Some(i) = self.stashes.iter().position(|(k, _)| *k == key) else {
            return CotDemand::default();
        };
        let (_, stash) = self.stashes.swap_remove(i);
        let (own, other) = stash.counts();
        self.ot.restore(stash);
        self.demand_of(own, other)
    }

    /// COTs drawn so far in each direction (server as sender, client as sender): a protocol's
    /// COT count is the difference around it, the number its `*_cots` function announces.
    pub fn cots_drawn(&self) -> CotDemand {
        self.demand_of(
            self.ot.sender.served() as usize,
            self.ot.receiver.served() as usize,
        )
    }

    /// Runs `f` on this session under the channel label `label` (nested in the current one),
    /// recording its cost there like [`Channel::scope`].
    pub fn scope<R>(&mut self, label: &str, f: impl FnOnce(&mut Session) -> R) -> R {
        // Channel::scope lends only the channel; the session is rebuilt around it by swapping
        // it in for the duration (the stand-in carries no traffic and is dropped unused).
        let mut outer = std::mem::replace(&mut self.ch, detached_channel());
        let r = outer.scope(label, |ch| {
            std::mem::swap(ch, &mut self.ch);
            let r = f(self);
            std::mem::swap(ch, &mut self.ch);
            r
        });
        self.ch = outer;
        r
    }

    /// `n` uniform bits from the local generator.
    pub(crate) fn random_bits(&mut self, n: usize) -> Vec<bool> {
        self.rng.bits(n)
    }

    /// `n` uniform ring elements from the local generator.
    pub(crate) fn random_ring(&mut self, n: usize, ring: Ring) -> Vec<u64> {
        let mut blocks = vec![Block::ZERO; n.div_ceil(2)];
        self.rng.fill_blocks(&mut blocks);
        blocks
            .iter()
            .flat_map(|b| [b.low_u64(), (b.0 >> 64) as u64])
            .take(n)
            .map(|v| ring.reduce(v))
            .collect()
    }
}

/// A channel connected to nothing (every send and receive fails): the stand-in that
/// [`Session::scope`] holds while the real channel is inside `Channel::scope`.
fn detached_channel() -> Channel {
    struct Nowhere;
    impl FrameSender for Nowhere {
        fn send_frame(&mut self, _: Frame) -> Result<()> {
            Err(Error::Disconnected)
        }
    }
    impl FrameReceiver for Nowhere {
        fn recv_frame(&mut self, _: std::time::Duration) -> Result<Frame> {
            Err(Error::Disconnected)
        }
    }
    Channel::new(Box::new(Nowhere), Box::new(Nowhere))
}

/// Refuses shares that are not reduced elements of `ring`.
pub(crate) fn check_shares(x: &[u64], ring: Ring, what: &str) -> Result<()> {
    match x.iter().position(|&v| !ring.contains(v)) {
        None => Ok(()),
        Some(i) => Err(Error::out_of_range(
            format!("{what}: element {i}"),
            format!("{:#x}", x[i]),
            format!("an element of Z_2^{}", ring.bits()),
        )),
    }
}

/// Refuses two inputs of different lengths.
pub(crate) fn check_len(a: usize, b: usize, what: &str) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::shape(format!("{what}: second length"), b, a))
    }
}
