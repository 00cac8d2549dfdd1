//! IKNP correlated-OT extension (semi-honest), a random-COT source; it bootstraps Ferret and is
//! the test oracle.
//!
//! **Setup**: the sender picks Δ (low bit set) and runs 128 base OTs ([`crate::base_ot`]) as
//! receiver with choice bits Δ_j; the receiver gets both seeds `(k0_j, k1_j)`, the sender
//! `k_{Δ_j}`. Cost: `32 + 32·128 = 4128` bytes, 2 rounds.
//!
//! **Extension** of m COTs (m rounded up to a multiple of 128): the receiver draws choice bits
//! `r` (m bits), sets `T^j = G(k0_j)` and sends `U^j = T^j ⊕ G(k1_j) ⊕ r` for the 128 columns
//! (G = AES-CTR). The sender computes `Q^j = G(k_{Δ_j}) ⊕ Δ_j·U^j = T^j ⊕ Δ_j·r`; transposing,
//! row i gives `q_i = t_i ⊕ r_i·Δ`. Both clear bit 0 (the sender's `q_i`) or set it to `r_i`
//! (the receiver's `t_i`), which keeps the relation because bit 0 of Δ is 1.
//! Cost: **128 bits per COT**, receiver → sender, one flight (batches of at most
//! [`IKNP_BATCH`] COTs, all in one direction, so one round however many batches).
use crate::base_ot::{self, BASE_OTS};
use crate::cot::{Pool, RandomCotReceiver, RandomCotSender};
use crate::transpose::transpose;
use mpc_core::AesPrg;
use mpc_core::Block;
use mpc_core::{Channel, Error, Result};
use rand_core::CryptoRng;

/// Most COTs produced per extension batch (bounds the memory of one batch to 32 MB).
pub const IKNP_BATCH: usize = 1 << 20;

/// Setup bytes: the 128 base OTs.
pub const IKNP_SETUP_BYTES: u64 = 32 + 32 * BASE_OTS as u64;

/// COTs of one batch when `missing` are still requested: a multiple of 128, at most the cap.
fn batch_size(missing: usize) -> usize {
    missing.div_ceil(128).clamp(1, IKNP_BATCH / 128) * 128
}

/// The IKNP sender: holds Δ.
#[derive(Debug)]
pub struct IknpSender {
    delta: Block,
    prgs: Vec<AesPrg>,
    pool: Pool,
}

impl IknpSender {
    /// Setup with a fresh Δ drawn from `rng`.
    pub fn setup(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<IknpSender> {
        let delta = AesPrg::from_rng(rng).block().with_lsb(true);
        IknpSender::setup_with_delta(ch, delta, rng)
    }

    /// Setup with a given Δ (its low bit must be set); the base OTs draw from `rng`.
    pub fn setup_with_delta(
        ch: &mut Channel,
        delta: Block,
        rng: &mut impl CryptoRng,
    ) -> Result<IknpSender> {
        if !delta.lsb() {
            return Err(Error::InvalidArgument(
                "the COT correlation Δ must have its low bit set".into(),
            ));
        }
        ch.scope("iknp/setup", |ch| {
            let choices: Vec<bool> = (0..BASE_OTS).map(|j| (delta.0 >> j) & 1 == 1).collect();
            let keys = base_ot::recv_random(ch, &choices, rng)?;
            Ok(IknpSender {
                delta,
                prgs: keys.into_iter().map(AesPrg::from_block).collect(),
                pool: Pool::default(),
            })
        })
    }

    /// One batch of `m` COTs (`m` a multiple of 128) into `out`.
    fn extend(&mut self, ch: &mut Channel, out: &mut Vec<Block>, m: usize) -> Result<()> {
        ch.scope("iknp/extend", |ch| {
            let w = m / 128; // blocks per column
            let u: Vec<Block> = ch.recv_pod_vec(BASE_OTS * w)?;
            let mut cols = vec![Block::ZERO; BASE_OTS * w];
            for (j, (col, uj)) in cols.chunks_mut(w).zip(u.chunks(w)).enumerate() {
                self.prgs[j].fill_blocks(col);
                let bit = (self.delta.0 >> j) & 1 == 1;
                for (c, &x) in col.iter_mut().zip(uj) {
                    *c ^= x.select(bit);
                }
            }
            out.resize(m, Block::ZERO);
            transpose(
                bytemuck::cast_slice_mut(out.as_mut_slice()),
                bytemuck::cast_slice(&cols),
                BASE_OTS,
                m,
            );
            for q in out.iter_mut() {
                *q = q.with_lsb(false);
            }
            Ok(())
        })
    }
}

impl RandomCotSender for IknpSender {
    fn delta(&self) -> Block {
        self.delta
    }

    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let mut pool = std::mem::take(&mut self.pool);
        let r = pool.serve(out, |buf, missing| {
            self.extend(ch, buf, batch_size(missing))?;
            Ok(0)
        });
        self.pool = pool;
        r
    }
}

/// The IKNP receiver.
#[derive(Debug)]
pub struct IknpReceiver {
    prgs: Vec<[AesPrg; 2]>,
    choice_prg: AesPrg,
    pool: Pool,
}

impl IknpReceiver {
    /// Setup (the peer runs [`IknpSender::setup`]); the base OTs and the choice bits draw from
    /// `rng`.
    pub fn setup(ch: &mut Channel, rng: &mut impl CryptoRng) -> Result<IknpReceiver> {
        ch.scope("iknp/setup", |ch| {
            let keys = base_ot::send_random(ch, BASE_OTS, rng)?;
            Ok(IknpReceiver {
                prgs: keys
                    .into_iter()
                    .map(|[k0, k1]| [AesPrg::from_block(k0), AesPrg::from_block(k1)])
                    .collect(),
                choice_prg: AesPrg::from_rng(rng),
                pool: Pool::default(),
            })
        })
    }

    fn extend(&mut self, ch: &mut Channel, out: &mut Vec<Block>, m: usize) -> Result<()> {
        ch.scope("iknp/extend", |ch| {
            let w = m / 128;
            let mut r = vec![Block::ZERO; w];
            self.choice_prg.fill_blocks(&mut r);
            let mut t = vec![Block::ZERO; BASE_OTS * w];
            let mut u = vec![Block::ZERO; BASE_OTS * w];
            for (j, (tj, uj)) in t.chunks_mut(w).zip(u.chunks_mut(w)).enumerate() {
                self.prgs[j][0].fill_blocks(tj);
                self.prgs[j][1].fill_blocks(uj);
                for ((x, &a), &c) in uj.iter_mut().zip(tj.iter()).zip(&r) {
                    *x ^= a ^ c;
                }
            }
            ch.send_pod(&u)?;
            ch.flush()?;
            out.resize(m, Block::ZERO);
            transpose(
                bytemuck::cast_slice_mut(out.as_mut_slice()),
                bytemuck::cast_slice(&t),
                BASE_OTS,
                m,
            );
            for (i, x) in out.iter_mut().enumerate() {
                *x = x.with_lsb((r[i / 128].0 >> (i % 128)) & 1 == 1);
            }
            Ok(())
        })
    }
}

impl RandomCotReceiver for IknpReceiver {
    fn fill(&mut self, ch: &mut Channel, out: &mut [Block]) -> Result<u64> {
        let mut pool = std::mem::take(&mut self.pool);
        let r = pool.serve(out, |buf, missing| {
            self.extend(ch, buf, batch_size(missing))?;
            Ok(0)
        });
        self.pool = pool;
        r
    }
}
