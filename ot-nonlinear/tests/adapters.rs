//! Every adapter against a plaintext reference, over IKNP (mem and TCP) and Ferret, including
//! ring extremes (ℓ = 1 and 64, values 0 and 2^ℓ − 1), with the exact cost of its messages.
mod common;

use common::{assert_balanced, run, Transport, BOTH};
use mpc_core::AesPrg;
use mpc_core::{Channel, Dims, Error, Result, Ring, Stats};
use ot_nonlinear::adapters::*;
use ot_nonlinear::block::packed_len;
use ot_nonlinear::{
    Block, FerretReceiver, FerretSender, IknpReceiver, IknpSender, RandomCotReceiver,
    RandomCotSender,
};

const N: usize = 1000;
const LOG_NS: [u32; 3] = [1, 4, 8];

fn rings() -> Vec<Ring> {
    [1, 13, 32, 64].map(|l| Ring::new(l).unwrap()).to_vec()
}

/// Inputs of both parties, from a fixed seed; the first and last values are ring extremes.
struct Inputs {
    choices: Vec<bool>,
    values: Vec<u64>,
}

fn inputs(ring: Ring, n: usize, seed: u128) -> Inputs {
    let mut prg = AesPrg::from_block(Block(seed));
    let mut values: Vec<u64> = (0..n).map(|_| ring.reduce(prg.block().low_u64())).collect();
    values[0] = 0;
    values[n - 1] = ring.mask();
    Inputs {
        choices: prg.bits(n),
        values,
    }
}

/// The cost of `label` since the last call, then forget it.
fn take(ch: &mut Channel, label: &str) -> Stats {
    let s = ch.stats_of(label).unwrap_or_default();
    ch.clear_stats();
    s
}

/// Receiver-side results of every adapter and the costs it saw.
type RecvOut = (
    Vec<Vec<u64>>,
    Vec<Stats>,
    Vec<Block>,
    (Vec<bool>, Vec<Block>),
);

fn receiver_side<R: RandomCotReceiver>(ch: &mut Channel, src: &mut R) -> Result<RecvOut> {
    let (mut outs, mut costs) = (Vec::new(), Vec::new());
    for (r, ring) in rings().into_iter().enumerate() {
        let inp = inputs(ring, N, r as u128);
        ch.clear_stats();
        let (_, t) = chosen_cot_recv(ch, src, &inp.choices)?;
        costs.push(take(ch, "ot/chosen_cot"));
        outs.push(t.iter().map(|b| b.low_u64()).collect());
        outs.push(additive_cot_recv(ch, src, ring, &inp.choices)?);
        costs.push(take(ch, "ot/additive_cot"));
        outs.push(ot_recv(ch, src, ring, &inp.choices)?);
        costs.push(take(ch, "ot/ot"));
        for log_n in LOG_NS {
            let c: Vec<u64> = inp.values.iter().map(|v| v % (1 << log_n)).collect();
            outs.push(ot_1_of_n_recv(ch, src, ring, log_n, &c)?);
            costs.push(take(ch, "ot/ot_1_of_n"));
        }
    }
    let (_, t) = chosen_cot_recv(ch, src, &[true, false, true])?;
    let rot = rot_recv(ch, src, N)?;
    Ok((outs, costs, t, rot))
}

/// Sender-side outputs: per ring the chosen-COT blocks and the additive-COT `a`; then the
/// 3 chosen COTs, the random-OT pairs and Δ.
type SendOut = (
    Vec<(Vec<Block>, Vec<u64>)>,
    Vec<Block>,
    Vec<[Block; 2]>,
    Block,
);

fn ot_msgs(inp: &Inputs) -> Vec<[u64; 2]> {
    (0..N)
        .map(|i| [inp.values[i], inp.values[N - 1 - i]])
        .collect()
}

fn n_msgs(ring: Ring, big_n: usize) -> Vec<u64> {
    (0..N * big_n)
        .map(|j| ring.reduce((j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect()
}

fn sender_side<S: RandomCotSender>(ch: &mut Channel, src: &mut S) -> Result<SendOut> {
    let mut per_ring = Vec::new();
    for (r, ring) in rings().into_iter().enumerate() {
        let inp = inputs(ring, N, r as u128);
        let (_, q) = chosen_cot_send(ch, src, N)?;
        let a = additive_cot_send(ch, src, ring, &inp.values)?;
        ot_send(ch, src, ring, &ot_msgs(&inp))?;
        for log_n in LOG_NS {
            ot_1_of_n_send(ch, src, ring, log_n, &n_msgs(ring, 1 << log_n))?;
        }
        per_ring.push((q, a));
    }
    let (_, q3) = chosen_cot_send(ch, src, 3)?;
    let pairs = rot_send(ch, src, N)?;
    Ok((per_ring, q3, pairs, src.delta()))
}

fn compare(send: SendOut, recv: RecvOut) {
    let (per_ring, q3, pairs, delta) = send;
    let (outs, costs, t3, (rot_c, rot_k)) = recv;
    let (mut outs, mut costs) = (outs.into_iter(), costs.into_iter());
    let bytes = |bits: usize| bits.div_ceil(8) as u64;
    for (r, (ring, (q, a))) in rings().into_iter().zip(per_ring).enumerate() {
        let l = ring.bits() as usize;
        let inp = inputs(ring, N, r as u128);
        // Chosen-choice COT: t = q' ⊕ c·Δ; n bits receiver → sender in one flight (which
        // merges into the IKNP receiver's own flight, so 0 or 1 new round).
        let t = outs.next().unwrap();
        for i in 0..N {
            assert_eq!(t[i], (q[i] ^ delta.select(inp.choices[i])).low_u64());
        }
        let c = costs.next().unwrap();
        assert_eq!((c.bytes_sent, c.bytes_recv), (bytes(N), 0));
        assert!(c.rounds <= 1);
        // Additive COT: b = a + c·x; then n·ℓ bits sender → receiver.
        let b = outs.next().unwrap();
        for i in 0..N {
            let want = ring.add(a[i], if inp.choices[i] { inp.values[i] } else { 0 });
            assert_eq!(b[i], want, "additive COT ℓ={l} i={i}");
        }
        let c = costs.next().unwrap();
        assert_eq!(
            (c.bytes_sent, c.bytes_recv),
            (0, packed_len(N, ring.bits()) as u64)
        );
        // Chosen-message OT: 2·n·ℓ bits.
        let msgs = ot_msgs(&inp);
        let got = outs.next().unwrap();
        for i in 0..N {
            assert_eq!(got[i], msgs[i][inp.choices[i] as usize], "OT ℓ={l} i={i}");
        }
        assert_eq!(costs.next().unwrap().bytes_recv, bytes(2 * N * l));
        // 1-of-2^m OT: n·2^m·ℓ bits.
        for log_n in LOG_NS {
            let big_n = 1usize << log_n;
            let msgs = n_msgs(ring, big_n);
            let got = outs.next().unwrap();
            for i in 0..N {
                let choice = (inp.values[i] % big_n as u64) as usize;
                assert_eq!(got[i], msgs[i * big_n + choice], "1-of-{big_n} ℓ={l} i={i}");
            }
            assert_eq!(costs.next().unwrap().bytes_recv, bytes(N * big_n * l));
        }
    }
    for (i, c) in [true, false, true].into_iter().enumerate() {
        assert_eq!(t3[i], q3[i] ^ delta.select(c));
    }
    // Random OT: the receiver's key is the sender's key of its (uniform) choice.
    let mut key_ones = 0;
    for i in 0..N {
        assert_eq!(rot_k[i], pairs[i][rot_c[i] as usize]);
        assert_ne!(rot_k[i], pairs[i][!rot_c[i] as usize]);
        key_ones += pairs[i][1].0.count_ones() as u64;
    }
    assert_balanced(
        rot_c.iter().filter(|&&c| c).count() as u64,
        N as u64,
        "ROT choices",
    );
    assert_balanced(key_ones, 128 * N as u64, "ROT key bits");
}

#[test]
fn adapters_over_iknp() {
    for transport in BOTH {
        let (recv, send, _, _) = run(
            transport,
            |ch| {
                let mut src = IknpReceiver::setup(ch, &mut common::rng(0, 1))?;
                receiver_side(ch, &mut src)
            },
            |ch| {
                let mut src = IknpSender::setup(ch, &mut common::rng(0, 0))?;
                sender_side(ch, &mut src)
            },
        );
        compare(send, recv);
    }
}

#[test]
fn adapters_over_ferret() {
    let (recv, send, _, _) = run(
        Transport::Mem,
        |ch| {
            let mut src = FerretReceiver::setup(ch, &mut common::rng(0, 1))?;
            receiver_side(ch, &mut src)
        },
        |ch| {
            let mut src = FerretSender::setup(ch, &mut common::rng(0, 0))?;
            sender_side(ch, &mut src)
        },
    );
    compare(send, recv);
}

#[test]
fn bad_arguments_are_refused_before_any_message() {
    let (mut ch, _peer) = common::pair(Transport::Mem);
    let mut src = NoSource;
    let r8 = Ring::new(8).unwrap();
    assert!(matches!(
        additive_cot_send(&mut ch, &mut src, r8, &[256]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        ot_send(&mut ch, &mut src, r8, &[[1, 300]]),
        Err(Error::OutOfRange { .. })
    ));
    // Three messages are not whole groups of 2^2.
    assert!(matches!(
        ot_1_of_n_send(&mut ch, &mut src, r8, 2, &[1, 2, 3]),
        Err(Error::Shape {
            got: Dims::Len(3),
            want: Dims::MultipleOf(4),
            ..
        })
    ));
    assert!(matches!(
        ot_1_of_n_send(&mut ch, &mut src, r8, 0, &[1]),
        Err(Error::OutOfRange {
            got: Dims::Len(0),
            want: Dims::Within { min: 1, .. },
            ..
        })
    ));
    assert!(matches!(
        ot_1_of_n_recv(&mut ch, &mut NoSource, r8, 2, &[4]),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(ch.totals().bytes(), 0);
}

/// A source that must not be reached.
struct NoSource;

impl RandomCotSender for NoSource {
    fn delta(&self) -> Block {
        Block::ONE
    }
    fn fill(&mut self, _: &mut Channel, _: &mut [Block]) -> Result<u64> {
        panic!("the source must not be used")
    }
}

impl RandomCotReceiver for NoSource {
    fn fill(&mut self, _: &mut Channel, _: &mut [Block]) -> Result<u64> {
        panic!("the source must not be used")
    }
}
