//! The sigmoid approximations: their documented errors, the secure evaluation against the
//! mirror on random shares (edge values included), and the exact cost.
use mpc_core::AesPrg;
use mpc_core::{Channel, FixedPoint, Party, Result, Ring, Seed, Stats};
use nn::sigmoid::{
    sigmoid, sigmoid_cost, sigmoid_cots, sigmoid_fixed, SigmoidApprox, SIGMOID_PLAN,
};
use ot_nonlinear::mpc::Session;
use ot_nonlinear::Block;
use std::time::Duration;

const SEED: u128 = 0x5167_2019;

/// Runs `f` as both parties on fresh sessions; COTs are reserved and one simultaneous exchange
/// closes the setup's flights before the stats are cleared. Returns each party's result and
/// its stats under `label`.
fn both<T: Send + 'static>(
    label: &'static str,
    demand: ot_nonlinear::mpc::CotDemand,
    f: impl Fn(&mut Session) -> Result<T> + Send + Sync + 'static,
) -> ((T, Stats), (T, Stats)) {
    let (mut a, mut b) = Channel::mem_pair();
    a.set_timeout(Duration::from_secs(60));
    b.set_timeout(Duration::from_secs(60));
    let f = std::sync::Arc::new(f);
    let g = f.clone();
    let run = move |mut s: Session, f: &dyn Fn(&mut Session) -> Result<T>| -> Result<(T, Stats)> {
        s.reserve(demand)?;
        s.ch.send(&[0])?;
        s.ch.recv_vec(1)?;
        s.ch.clear_stats();
        let r = f(&mut s)?;
        s.ch.flush()?;
        Ok((r, s.ch.stats_of(label).unwrap_or_default()))
    };
    let [ss, cs] = [1, 2].map(|t| Seed([0x51; 16]).derive(t));
    let t = std::thread::spawn(move || run(Session::new(b, Party::Client, cs)?, &*g));
    let server = run(Session::new(a, Party::Server, ss).unwrap(), &*f).unwrap();
    (server, t.join().unwrap().unwrap())
}

#[test]
fn documented_max_errors_on_minus_8_to_8() {
    for (approx, documented) in [
        (SigmoidApprox::Pl3, 0.0561),
        (SigmoidApprox::Pl5, 0.0180),
        (SigmoidApprox::Poly, 0.0207),
    ] {
        let e = approx.max_error();
        println!("{approx}: max |σ̃ − σ| on [−8, 8] = {e:.5}");
        assert!(
            (e - documented).abs() < 5e-4,
            "{approx}: {e} vs documented {documented}"
        );
        SIGMOID_PLAN.validate(&approx.table()).unwrap();
    }
}

#[test]
fn mirror_stays_within_the_table_error_plus_carries() {
    let fp = FixedPoint::LINEAR;
    for approx in SigmoidApprox::ALL {
        let worst = (-8 * 256..=8 * 256)
            .map(|i| i as f64 / 256.0)
            .map(|x| {
                let y = fp.decode(sigmoid_fixed(approx, fp.encode(x).unwrap()));
                (y - nn::sigmoid::sigmoid_exact(x)).abs()
            })
            .fold(0.0, f64::max);
        // u is rounded to 2^-12 and the slopes are ≤ 1/4; the coefficients are at 2^-18.
        assert!(
            worst <= approx.max_error() + 1e-3,
            "{approx}: mirror error {worst}"
        );
    }
}

#[test]
fn secure_matches_mirror_and_cost_is_exact() {
    println!("seed {SEED:#x}");
    let fp = FixedPoint::LINEAR;
    let mut prg = AesPrg::from_block(Block(SEED));
    let mut x: Vec<u64> = (0..200)
        .map(|_| {
            let v = (prg.block().low_u64() % (40 << 18)) as i64 - (20 << 18);
            Ring::R64.from_signed(v)
        })
        .collect();
    // Edges: 0, the breakpoints of every table and one unit either side, the range's ends.
    for approx in SigmoidApprox::ALL {
        for &t in &approx.table().breakpoints {
            let b = SIGMOID_PLAN.breakpoint(t);
            x.extend([b.wrapping_sub(1), b, b.wrapping_add(1)]);
        }
    }
    x.extend([0, fp.encode(1023.0).unwrap(), fp.encode(-1023.0).unwrap()]);
    let n = x.len();
    let server_share: Vec<u64> = (0..n).map(|_| prg.block().low_u64()).collect();
    let client_share: Vec<u64> = x
        .iter()
        .zip(&server_share)
        .map(|(v, s)| v.wrapping_sub(*s))
        .collect();
    for (approx, rounds) in [
        (SigmoidApprox::Pl3, 7),
        (SigmoidApprox::Pl5, 7),
        (SigmoidApprox::Poly, 15),
    ] {
        let (ss, cs) = (server_share.clone(), client_share.clone());
        let ((ys, st_s), (yc, st_c)) = both("sigmoid", sigmoid_cots(approx, n), move |sess| {
            let mine = if sess.is_server() { &ss } else { &cs };
            sigmoid(sess, approx, mine)
        });
        let bound = approx.carry_bound() + 1e-9;
        let table = approx.table();
        for i in 0..n {
            let got = fp.decode(ys[i].wrapping_add(yc[i]));
            let want = fp.decode(sigmoid_fixed(approx, x[i]));
            let xv = fp.decode(x[i]);
            // Within 2^-8 of a breakpoint the comparison may take the left piece.
            let near = table
                .breakpoints
                .iter()
                .any(|&t| (xv - t).abs() <= 1.0 / 256.0);
            let slack = if near { 0.06 } else { bound };
            assert!(
                (got - want).abs() <= slack,
                "{approx} x = {xv}: secure {got} vs mirror {want} (bound {slack})"
            );
        }
        let cost = sigmoid_cost(approx, n);
        assert_eq!(st_s.bytes_sent, cost.server_bytes, "{approx}: server bytes");
        assert_eq!(st_c.bytes_sent, cost.client_bytes, "{approx}: client bytes");
        // The cost's rounds are the steps' sum, an upper bound: flights of consecutive steps
        // overlap on the channel. The measured count is pinned.
        assert!(
            st_s.rounds <= cost.rounds,
            "{approx}: {} rounds",
            st_s.rounds
        );
        assert_eq!(
            (st_s.rounds, st_c.rounds),
            (rounds, rounds),
            "{approx}: rounds"
        );
        println!(
            "{approx}: {} elements, {} + {} bytes, {} rounds (measured {})",
            n, cost.server_bytes, cost.client_bytes, cost.rounds, st_s.rounds
        );
    }
}
