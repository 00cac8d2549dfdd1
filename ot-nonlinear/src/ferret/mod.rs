//! Ferret silent random COT (Yang et al., CCS 2020), semi-honest, as a streaming source.
//!
//! **Setup** (once per direction): a coin toss fixes the public LPN matrices; the sender picks
//! Δ (low bit set); IKNP under that Δ ([`crate::iknp`], 128 base OTs) produces the
//! [`LpnParams::PRE`] reserve of 47 709 COTs; one bootstrapping iteration with the PRE set turns
//! it into the 541 019 COTs the main iteration reserves. Setup also maps and faults in the
//! main iteration's 168 MB output buffer, a one-time cost that would otherwise land on the
//! first batch.
//!
//! **Iteration** (parameters p, reserve of p.k + p.t·p.log_bin COTs): the regular multi-point
//! COT ([`mpcot`]) consumes t·log_bin reserve COTs and fills n positions with `v`, `w = v ⊕ e·Δ`;
//! the LPN encoding ([`lpn`]) XORs the k other reserve COTs in, `y = v ⊕ A·x`,
//! `z = w ⊕ A·(x ⊕ u·Δ) = y ⊕ (e ⊕ A·u)·Δ`. The first p.reserve() outputs become the next
//! reserve; the other p.output() are served to the caller.
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

use crate::block::huge_vec;
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

/// The main iteration's first reserve: the head of the bootstrapping iteration's output.
fn main_reserve(pre_out: &[Block]) -> Vec<Block> {
    let mut reserve = huge_vec(LpnParams::MAIN.reserve());
    reserve.copy_from_slice(&pre_out[..LpnParams::MAIN.reserve()]);
    reserve
}

/// The Ferret sender (holds Δ).
#[derive(Debug)]
pub struct FerretSender {
    delta: Block,
    lpn_seed: Block,
    reserve: Vec<Block>,
    pool: Pool,
    prg: AesPrg,
}

/// One sender iteration: `out` (length p.n) from `reserve` (length p.reserve()).
fn send_iteration(
    ch: &mut Channel,
    p: &LpnParams,
    delta: Block,
    lpn_seed: Block,
    reserve: &[Block],
    out: &mut Vec<Block>,
    prg: &mut AesPrg,
) -> Result<()> {
    let (trees, secret) = reserve.split_at(p.t * p.log_bin);
    if out.len() != p.n {
        *out = huge_vec(p.n);
    }
    let mut matrix = AesPrg::from_block(lpn_seed);
    mpcot::send(ch, delta, trees, out, p.log_bin, prg, |row, leaves, bin| {
        lpn::encode(&mut matrix, row, secret, leaves, bin)
    })?;
    Ok(())
}

/// One receiver iteration (the mirror of [`send_iteration`]).
fn recv_iteration(
    ch: &mut Channel,
    p: &LpnParams,
    lpn_seed: Block,
    reserve: &[Block],
    out: &mut Vec<Block>,
) -> Result<()> {
    let (trees, secret) = reserve.split_at(p.t * p.log_bin);
    if out.len() != p.n {
        *out = huge_vec(p.n);
    }
    let mut matrix = AesPrg::from_block(lpn_seed);
    mpcot::recv(ch, trees, out, p.log_bin, |row, leaves, bin| {
        lpn::encode(&mut matrix, row, secret, leaves, bin)
    })?;
    Ok(())
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
            let mut out = Vec::new();
            let p = LpnParams::PRE;
            send_iteration(ch, &p, delta, pre_seed, &pre_reserve, &mut out, &mut prg)?;
            Ok(FerretSender {
                delta,
                lpn_seed,
                reserve: main_reserve(&out),
                pool: Pool::with_buffer(LpnParams::MAIN.n),
                prg,
            })
        })
    }
}

impl FerretSender {
    /// COTs served so far (the stream index of the next one); protocols' COT counts are
    /// measured as differences of it.
    pub fn served(&self) -> u64 {
        self.pool.served()
    }
}

impl RandomCotSender for FerretSender {
    fn delta(&self) -> Block {
        self.delta
    }

    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let FerretSender {
            delta,
            lpn_seed,
            reserve,
            pool,
            prg,
        } = self;
        pool.serve(out, |buf, _| {
            send_extend(ch, *delta, *lpn_seed, reserve, buf, prg)
        })
    }

    fn reserve(&mut self, ch: &mut Channel, n: usize) -> Result<()> {
        let FerretSender {
            delta,
            lpn_seed,
            reserve,
            pool,
            prg,
        } = self;
        pool.reserve(n, |buf, _| {
            send_extend(ch, *delta, *lpn_seed, reserve, buf, prg)
        })
    }
}

/// One main sender iteration into `buf` under the label `ferret/extend`; the head of the
/// output becomes the next reserve, the rest is served from the returned position.
fn send_extend(
    ch: &mut Channel,
    delta: Block,
    lpn_seed: Block,
    reserve: &mut [Block],
    buf: &mut Vec<Block>,
    prg: &mut AesPrg,
) -> Result<usize> {
    let p = LpnParams::MAIN;
    ch.scope("ferret/extend", |ch| {
        send_iteration(ch, &p, delta, lpn_seed, reserve, buf, prg)
    })?;
    reserve.copy_from_slice(&buf[..p.reserve()]);
    Ok(p.reserve())
}

/// The receiver's mirror of [`send_extend`].
fn recv_extend(
    ch: &mut Channel,
    lpn_seed: Block,
    reserve: &mut [Block],
    buf: &mut Vec<Block>,
) -> Result<usize> {
    let p = LpnParams::MAIN;
    ch.scope("ferret/extend", |ch| {
        recv_iteration(ch, &p, lpn_seed, reserve, buf)
    })?;
    reserve.copy_from_slice(&buf[..p.reserve()]);
    Ok(p.reserve())
}

/// The Ferret receiver.
#[derive(Debug)]
pub struct FerretReceiver {
    lpn_seed: Block,
    reserve: Vec<Block>,
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
            let mut out = Vec::new();
            recv_iteration(ch, &LpnParams::PRE, pre_seed, &pre_reserve, &mut out)?;
            Ok(FerretReceiver {
                lpn_seed,
                reserve: main_reserve(&out),
                pool: Pool::with_buffer(LpnParams::MAIN.n),
            })
        })
    }
}

impl FerretReceiver {
    /// COTs served so far (the mirror of [`FerretSender::served`]).
    pub fn served(&self) -> u64 {
        self.pool.served()
    }
}

impl RandomCotReceiver for FerretReceiver {
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let FerretReceiver {
            lpn_seed,
            reserve,
            pool,
        } = self;
        pool.serve(out, |buf, _| recv_extend(ch, *lpn_seed, reserve, buf))
    }

    fn reserve(&mut self, ch: &mut Channel, n: usize) -> Result<()> {
        let FerretReceiver {
            lpn_seed,
            reserve,
            pool,
        } = self;
        pool.reserve(n, |buf, _| recv_extend(ch, *lpn_seed, reserve, buf))
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
