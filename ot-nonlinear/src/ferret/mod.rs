//! Ferret silent random COT (Yang et al., CCS 2020), semi-honest, as a streaming source.
//!
//! **Setup** (once per direction): a coin toss fixes the public LPN matrices; the sender picks
//! Δ (low bit set); IKNP under that Δ ([`crate::iknp`], 128 base OTs) produces the
//! [`LpnParams::PRE`] reserve of 47 709 COTs; one bootstrapping iteration with the PRE set turns
//! it into the 541 019 COTs the main iteration reserves. Setup also maps and faults in the
//! main iteration's 160 MB pool buffer and its two 8.7 MB reserves, a one-time cost that
//! would otherwise land on the first batch.
//!
//! **Iteration** (parameters p, reserve of p.k + p.t·p.log_bin COTs): the regular multi-point
//! COT ([`mpcot`]) consumes t·log_bin reserve COTs and fills n positions with `v`, `w = v ⊕ e·Δ`;
//! the LPN encoding ([`lpn`]) XORs the k other reserve COTs in, `y = v ⊕ A·x`,
//! `z = w ⊕ A·(x ⊕ u·Δ) = y ⊕ (e ⊕ A·u)·Δ`. The first p.reserve() outputs are written into the next
//! reserve; the other p.output() are served to the caller: straight into its buffer when it
//! asks for at least a whole iteration's worth (no copy, as emp-ot's in-place calls), through
//! the pool otherwise ([`FerretSender::reserve`] fills the pool ahead of a protocol's rounds).
//!
//! **Cost per main iteration**: 16·t·log_bin = 267 696 bytes sender → receiver and nothing
//! back, for 10 002 085 COTs: **0.214 bits per COT**; one flight, which continues the
//! sender's previous flight when nothing flowed back in between (so no new round then).
//! Setup: 2·16 + 4 128 + 16·47 744 + 16·1 269·9 = 950 800 bytes (coin toss, base OT, IKNP
//! rounded up to whole 128-COT batches, bootstrapping iteration), 5 rounds.
pub mod lpn;
pub mod mpcot;
pub mod spcot;

pub use lpn::LpnParams;

use crate::block::huge_vec_faulted;
use crate::cot::{Pool, RandomCotReceiver, RandomCotSender, SetAside};
use crate::iknp::{IknpReceiver, IknpSender, IKNP_SETUP_BYTES};
use mpc_core::AesPrg;
use mpc_core::Block;
use mpc_core::{prg::coin_toss, Channel, Party, Result};
use rand_core::CryptoRng;

/// Bytes a Ferret setup sends in both directions together (asserted by the tests).
pub const FERRET_SETUP_BYTES: u64 = 2 * 16
    + IKNP_SETUP_BYTES
    + 16 * (LpnParams::PRE.reserve().div_ceil(128) * 128) as u64
    + LpnParams::PRE.bytes_per_iteration();

/// Rounds of a Ferret setup: coin toss, two of base OT, IKNP, the bootstrapping iteration.
pub const FERRET_SETUP_ROUNDS: u64 = 5;

/// The two public LPN matrix seeds (bootstrapping, main) from a coin toss.
fn lpn_seeds(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<[Block; 2]> {
    let seed = coin_toss(ch, rng)?;
    Ok([0, 1].map(|i| Block::from_bytes(seed.derive(i).0)))
}

/// Where the n outputs of one iteration go, by LPN row: the first `next_reserve.len()` into
/// the next iteration's reserve, the others into `served` (a pool buffer, or the caller's own
/// buffer when it asked for a whole iteration: then nothing is copied).
struct Outputs<'a> {
    next_reserve: &'a mut [Block],
    served: &'a mut [Block],
    /// The one bin that straddles both, encoded here first.
    straddle: Vec<Block>,
}

impl<'a> Outputs<'a> {
    fn new(next_reserve: &'a mut [Block], served: &'a mut [Block]) -> Outputs<'a> {
        Outputs {
            next_reserve,
            served,
            straddle: Vec::new(),
        }
    }

    /// Rows of the iteration.
    fn len(&self) -> usize {
        self.next_reserve.len() + self.served.len()
    }

    /// Lets `encode` write rows `first..first + len` where they belong.
    fn write_rows(&mut self, first: usize, len: usize, encode: impl FnOnce(&mut [Block])) {
        let head = self.next_reserve.len();
        if first + len <= head {
            encode(&mut self.next_reserve[first..first + len]);
        } else if first >= head {
            encode(&mut self.served[first - head..first - head + len]);
        } else {
            self.straddle.resize(len, Block::ZERO);
            encode(&mut self.straddle);
            let (to_reserve, to_serve) = self.straddle.split_at(head - first);
            self.next_reserve[first..].copy_from_slice(to_reserve);
            self.served[..to_serve.len()].copy_from_slice(to_serve);
        }
    }
}

/// Splits an iteration's `reserve` (length p.reserve()) into the trees' COTs and the `finish`
/// that [`mpcot`] calls on each bin: the bin's LPN rows against the rest of the reserve,
/// written where `out` places them (its p.n rows).
fn lpn_rows<'a>(
    p: &LpnParams,
    lpn_seed: Block,
    reserve: &'a [Block],
    mut out: Outputs<'a>,
) -> (&'a [Block], impl FnMut(usize, &[Block]) + 'a) {
    assert_eq!(out.len(), p.n, "one output per LPN row");
    let (trees, secret) = reserve.split_at(p.t * p.log_bin);
    let mut matrix = AesPrg::from_block(lpn_seed);
    let finish = move |row: usize, leaves: &[Block]| {
        out.write_rows(row, leaves.len(), |rows| {
            lpn::encode(&mut matrix, row, secret, leaves, rows)
        })
    };
    (trees, finish)
}

/// One sender iteration: the p.n outputs into `out` from `reserve` (length p.reserve()).
fn send_iteration(
    ch: &mut Channel,
    p: &LpnParams,
    delta: Block,
    lpn_seed: Block,
    reserve: &[Block],
    out: Outputs<'_>,
    prg: &mut AesPrg,
) -> Result<()> {
    let (trees, finish) = lpn_rows(p, lpn_seed, reserve, out);
    mpcot::send(ch, delta, trees, p.log_bin, prg, finish)
}

/// One receiver iteration (the mirror of [`send_iteration`]).
fn recv_iteration(
    ch: &mut Channel,
    p: &LpnParams,
    lpn_seed: Block,
    reserve: &[Block],
    out: Outputs<'_>,
) -> Result<()> {
    let (trees, finish) = lpn_rows(p, lpn_seed, reserve, out);
    mpcot::recv(ch, trees, p.log_bin, finish)
}

/// The main iteration's two reserves, both faulted in at setup: the one the next iteration
/// consumes, and the one it writes (they swap after each iteration, so no reserve is copied).
#[derive(Debug)]
struct Reserves {
    current: Vec<Block>,
    next: Vec<Block>,
}

impl Reserves {
    fn new() -> Reserves {
        let reserve = || huge_vec_faulted(LpnParams::MAIN.reserve());
        Reserves {
            current: reserve(),
            next: reserve(),
        }
    }

    /// Fills the current reserve from the bootstrapping iteration, `iteration(reserve, out)`,
    /// whose outputs after the main reserve are not used.
    fn bootstrap(&mut self, iteration: impl FnOnce(Outputs<'_>) -> Result<()>) -> Result<()> {
        let mut surplus = vec![Block::ZERO; LpnParams::PRE.n - LpnParams::MAIN.reserve()];
        iteration(Outputs::new(&mut self.current, &mut surplus))
    }

    /// One main iteration, `iteration(ch, reserve, out)`, under the label `ferret/extend`: its
    /// p.output() new COTs go to `served`, its head becomes the next reserve.
    fn extend(
        &mut self,
        ch: &mut Channel,
        served: &mut [Block],
        iteration: impl FnOnce(&mut Channel, &[Block], Outputs<'_>) -> Result<()>,
    ) -> Result<()> {
        ch.scope("ferret/extend", |ch| {
            iteration(ch, &self.current, Outputs::new(&mut self.next, served))
        })?;
        std::mem::swap(&mut self.current, &mut self.next);
        Ok(())
    }
}

/// The sender's state between main iterations.
#[derive(Debug)]
struct SenderState {
    delta: Block,
    lpn_seed: Block,
    reserves: Reserves,
    prg: AesPrg,
}

impl SenderState {
    /// One main iteration: its new COTs into `served`.
    fn extend(&mut self, ch: &mut Channel, served: &mut [Block]) -> Result<()> {
        let SenderState {
            delta,
            lpn_seed,
            reserves,
            prg,
        } = self;
        reserves.extend(ch, served, |ch, reserve, out| {
            send_iteration(ch, &LpnParams::MAIN, *delta, *lpn_seed, reserve, out, prg)
        })
    }
}

/// The Ferret sender (holds Δ).
#[derive(Debug)]
pub struct FerretSender {
    state: SenderState,
    pool: Pool,
}

impl FerretSender {
    /// Setup against a peer running [`FerretReceiver::setup`]; Δ, the base OTs and the GGM
    /// seeds draw from `rng`.
    pub fn setup(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<FerretSender> {
        ch.scope("ferret/setup", |ch| {
            let [pre_seed, lpn_seed] = lpn_seeds(ch, rng)?;
            let mut prg = AesPrg::from_rng(rng);
            let delta = prg.block().with_lsb(true);
            let mut iknp = IknpSender::setup_with_delta(ch, delta, rng)?;
            let (_, pre_reserve) = iknp.next_n(ch, LpnParams::PRE.reserve())?;
            let mut reserves = Reserves::new();
            reserves.bootstrap(|out| {
                let p = LpnParams::PRE;
                send_iteration(ch, &p, delta, pre_seed, &pre_reserve, out, &mut prg)
            })?;
            Ok(FerretSender {
                state: SenderState {
                    delta,
                    lpn_seed,
                    reserves,
                    prg,
                },
                pool: Pool::with_buffer(LpnParams::MAIN.output()),
            })
        })
    }

    /// COTs served so far (the stream index of the next one); protocols' COT counts are
    /// measured as differences of it.
    pub fn served(&self) -> u64 {
        self.pool.served()
    }
}

impl RandomCotSender for FerretSender {
    fn delta(&self) -> Block {
        self.state.delta
    }

    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let FerretSender { state, pool } = self;
        pool.serve_batches(out, LpnParams::MAIN.output(), |served| {
            state.extend(ch, served)
        })
    }

    fn reserve(&mut self, ch: &mut Channel, n: usize) -> Result<()> {
        let FerretSender { state, pool } = self;
        pool.reserve_batches(n, LpnParams::MAIN.output(), |served| {
            state.extend(ch, served)
        })
    }
}

/// The receiver's state between main iterations (the mirror of [`SenderState`]).
#[derive(Debug)]
struct ReceiverState {
    lpn_seed: Block,
    reserves: Reserves,
}

impl ReceiverState {
    /// The mirror of [`SenderState::extend`].
    fn extend(&mut self, ch: &mut Channel, served: &mut [Block]) -> Result<()> {
        let lpn_seed = self.lpn_seed;
        self.reserves.extend(ch, served, |ch, reserve, out| {
            recv_iteration(ch, &LpnParams::MAIN, lpn_seed, reserve, out)
        })
    }
}

/// The Ferret receiver.
#[derive(Debug)]
pub struct FerretReceiver {
    state: ReceiverState,
    pool: Pool,
}

impl FerretReceiver {
    /// Setup against a peer running [`FerretSender::setup`]; the base OTs and the IKNP choice
    /// bits draw from `rng`.
    pub fn setup(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<FerretReceiver> {
        ch.scope("ferret/setup", |ch| {
            let [pre_seed, lpn_seed] = lpn_seeds(ch, rng)?;
            let mut iknp = IknpReceiver::setup(ch, rng)?;
            let (_, pre_reserve) = iknp.next_n(ch, LpnParams::PRE.reserve())?;
            let mut reserves = Reserves::new();
            reserves.bootstrap(|out| {
                recv_iteration(ch, &LpnParams::PRE, pre_seed, &pre_reserve, out)
            })?;
            Ok(FerretReceiver {
                state: ReceiverState { lpn_seed, reserves },
                pool: Pool::with_buffer(LpnParams::MAIN.output()),
            })
        })
    }

    /// COTs served so far (the mirror of [`FerretSender::served`]).
    pub fn served(&self) -> u64 {
        self.pool.served()
    }
}

impl RandomCotReceiver for FerretReceiver {
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let FerretReceiver { state, pool } = self;
        pool.serve_batches(out, LpnParams::MAIN.output(), |served| {
            state.extend(ch, served)
        })
    }

    fn reserve(&mut self, ch: &mut Channel, n: usize) -> Result<()> {
        let FerretReceiver { state, pool } = self;
        pool.reserve_batches(n, LpnParams::MAIN.output(), |served| {
            state.extend(ch, served)
        })
    }
}

/// Both Ferret instances of one party: it is the sender in one direction and the receiver in
/// the other (the server's sender pairs with the client's receiver, and conversely).
#[derive(Debug)]
pub struct FerretDuplex {
    /// This party's sender instance (it holds the Δ of this direction).
    pub sender: FerretSender,
    /// This party's receiver instance.
    pub receiver: FerretReceiver,
}

impl FerretDuplex {
    /// Sets up both directions (the server's sender first), drawing from `rng`.
    pub fn setup(ch: &mut Channel, party: Party, rng: &mut impl CryptoRng) -> Result<FerretDuplex> {
        Ok(match party {
            Party::Server => {
                let sender = FerretSender::setup(ch, rng)?;
                let receiver = FerretReceiver::setup(ch, rng)?;
                FerretDuplex { sender, receiver }
            }
            Party::Client => {
                let receiver = FerretReceiver::setup(ch, rng)?;
                let sender = FerretSender::setup(ch, rng)?;
                FerretDuplex { sender, receiver }
            }
        })
    }

    /// Pre-extends both instances so that the next `send` COTs of this party's sender and the
    /// next `recv` of its receiver are served without communication. The peer calls it with
    /// the numbers swapped. Both parties extend their sender first: the two one-way extension
    /// flights then cross, one round in all.
    pub fn reserve(&mut self, ch: &mut Channel, send: usize, recv: usize) -> Result<()> {
        self.sender.reserve(ch, send)?;
        self.receiver.reserve(ch, recv)?;
        ch.flush()
    }

    /// Extends as [`FerretDuplex::reserve`] does, then moves the next `send` COTs of this
    /// party's sender and `recv` of its receiver out of the pools: later draws skip them until
    /// [`FerretDuplex::restore`] puts them back in front. The peer calls it with the numbers
    /// swapped at the same point of its stream, and restores at the same point too.
    pub fn set_aside(&mut self, ch: &mut Channel, send: usize, recv: usize) -> Result<CotStash> {
        self.reserve(ch, send, recv)?;
        Ok(CotStash {
            sent: self.sender.pool.set_aside(send),
            received: self.receiver.pool.set_aside(recv),
        })
    }

    /// Puts COTs of [`FerretDuplex::set_aside`] in front of both pools: the next draws take
    /// them, with no communication.
    pub fn restore(&mut self, stash: CotStash) {
        self.sender.pool.restore(stash.sent);
        self.receiver.pool.restore(stash.received);
    }
}

/// One party's COTs of both directions set aside for a later protocol
/// ([`FerretDuplex::set_aside`]): its sender's q's and its receiver's t's. It holds secret
/// correlations: it stays with its party and is used once, by [`FerretDuplex::restore`].
#[derive(Debug)]
pub struct CotStash {
    sent: SetAside,
    received: SetAside,
}

impl CotStash {
    /// COTs held: as sender, as receiver.
    pub fn counts(&self) -> (usize, usize) {
        (self.sent.len(), self.received.len())
    }
}
