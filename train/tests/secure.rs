//! A short secure training on a small seeded data set: the opened model against the twin's
//! (the documented bound), the reveal option, per-epoch costs; the twin against the f64
//! reference; refused configurations.
use nn::sigmoid::SigmoidApprox;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use train::config::{ClassWeight, Holder, RawModel, Reveal, RowSplit, TrainConfig};
use train::data::Sample;
use train::metrics::evaluate;

const SEED: u64 = 20;

/// `n` rows, 5 features whose scales span 0.003 to 2000 (both rsqrt branches), a third of
/// them positive, the positives shifted.
fn rows(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scales = [0.003, 0.8, 40.0, 300.0, 1500.0];
    let offsets = [0.01, 0.0, 100.0, 600.0, 2000.0];
    (0..n)
        .map(|i| {
            let label = i % 3 == 0;
            let x = scales
                .iter()
                .zip(offsets)
                .enumerate()
                .map(|(j, (&s, o))| {
                    let g: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                    let shift = if label { 1.0 + 0.3 * j as f64 } else { 0.0 };
                    o + s * (g + shift)
                })
                .collect();
            Sample {
                x,
                label,
                line: i + 2,
            }
        })
        .collect()
}

fn config(sigmoid: SigmoidApprox, class_weight: ClassWeight, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 16,
        lr: 1.0,
        class_weight,
        sigmoid,
        shuffle_seed: SEED,
    }
}

/// Largest |a − b| / max(1, |b|) over the coefficients.
fn relative_gap(a: &RawModel, b: &RawModel) -> f64 {
    std::iter::once((a.bias, b.bias))
        .chain(a.weights.iter().copied().zip(b.weights.iter().copied()))
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// The documented secure–twin bound for a short run (docs/protocols/training.md, "Secure vs
/// twin"): every coefficient within 1e-3·max(1, |twin|), every test probability within 1e-3.
const SECURE_TWIN_BOUND: f64 = 1e-3;

#[test]
fn secure_training_equals_the_twin_within_the_bound() {
    println!("seed {SEED}");
    let data = rows(48, SEED);
    let owners = RowSplit::Random(SEED).owners(data.len()).unwrap();
    let cfg = config(SigmoidApprox::Pl5, ClassWeight::Balanced, 2);
    let twin = train::twin::train_twin(&data, &owners, cfg).unwrap();
    let (a, b) = train::secure::train_two_party(
        &data,
        &owners,
        cfg,
        Reveal::A,
        mpc_core::NetProfile::None,
        mpc_core::Seed([0x54; 16]),
    )
    .unwrap();
    assert!(
        b.model.is_none(),
        "B must not learn the model with --reveal a"
    );
    let secure = a.model.unwrap();
    let gap = relative_gap(&secure, &twin[1]);
    println!(
        "secure {secure:?}\ntwin   {:?}\nrelative gap {gap:.3e}",
        twin[1]
    );
    assert!(gap <= SECURE_TWIN_BOUND, "gap {gap}");
    let test_rows = rows(30, SEED + 1);
    let prob_gap = test_rows
        .iter()
        .map(|r| (secure.probability(&r.x) - twin[1].probability(&r.x)).abs())
        .fold(0.0, f64::max);
    assert!(
        prob_gap <= SECURE_TWIN_BOUND,
        "test-probability gap {prob_gap}"
    );
    assert_eq!(a.epochs.len(), 2);
    // Exact bytes each way per epoch (COTs reserved before each epoch).
    let view = train::protocol::TrainView::new(&data, &owners, &Holder::BOTH).unwrap();
    let trainer = train::protocol::Trainer::setup(&mut train::arith::Twin, &view, cfg).unwrap();
    for (e, (sa, sb)) in a.epochs.iter().zip(&b.epochs).enumerate() {
        let (cost, _) = trainer.epoch_cost(e);
        assert_eq!(
            (sa.bytes_sent, sb.bytes_sent),
            (cost.server_bytes, cost.client_bytes)
        );
        assert!(
            sa.rounds <= cost.rounds,
            "{} rounds > {}",
            sa.rounds,
            cost.rounds
        );
    }
    assert_eq!(
        a.epochs[0].bytes(),
        a.epochs[1].bytes(),
        "epochs cost the same"
    );
    assert_eq!(a.epochs[0].rounds, a.epochs[1].rounds);
    assert_eq!(a.epochs[0].bytes(), b.epochs[0].bytes(), "both views agree");
    assert_eq!(
        (a.open.bytes_sent, b.open.bytes_sent),
        (0, 8 * 6),
        "only B sends its share"
    );
}

#[test]
fn the_twin_tracks_the_float_reference() {
    let (train_rows, test_rows) = (rows(300, SEED), rows(150, SEED + 1));
    let owners = RowSplit::Rows(100).owners(train_rows.len()).unwrap();
    for sigmoid in SigmoidApprox::ALL {
        for cw in [ClassWeight::None, ClassWeight::Balanced] {
            let cfg = config(sigmoid, cw, 3);
            let twin = train::twin::train_twin(&train_rows, &owners, cfg).unwrap();
            let float = train::float::train_float(&train_rows, &cfg);
            let (t, f) = (
                evaluate(&twin[2], &test_rows),
                evaluate(&float[2], &test_rows),
            );
            println!("{sigmoid} {cw:?}: twin {t:?} f64 {f:?}");
            assert!((t.accuracy - f.accuracy).abs() <= 0.03, "{sigmoid} {cw:?}");
            assert!((t.auc - f.auc).abs() <= 0.01, "{sigmoid} {cw:?}");
            assert!(f.auc > 0.9);
        }
    }
}

#[test]
fn bad_configurations_are_refused() {
    assert!(RowSplit::Rows(0).owners(10).is_err());
    assert!(RowSplit::Rows(10).owners(10).is_err());
    assert!("rows:x".parse::<RowSplit>().is_err());
    assert!("random:5".parse::<RowSplit>().is_ok());
    assert!("pl7".parse::<SigmoidApprox>().is_err());
    let cfg = config(SigmoidApprox::Pl3, ClassWeight::None, 1);
    assert!(TrainConfig { batch: 0, ..cfg }.check(10).is_err());
    assert!(TrainConfig { batch: 11, ..cfg }.check(10).is_err());
    assert!(TrainConfig { lr: 1e6, ..cfg }.check(10).is_err());
    assert!(TrainConfig {
        lr: f64::NAN,
        ..cfg
    }
    .check(10)
    .is_err());
    assert!(cfg.check(100).is_ok());
    let (ca, _cb) = mpc_core::Channel::mem_pair();
    // A session whose role is not the holder's: refused before anything is sent.
    let t = std::thread::spawn(move || {
        ot_nonlinear::mpc::Session::new(_cb, mpc_core::Party::Client, mpc_core::Seed([2; 16]))
    });
    let sess =
        ot_nonlinear::mpc::Session::new(ca, mpc_core::Party::Server, mpc_core::Seed([1; 16]))
            .unwrap();
    let _peer = t.join().unwrap().unwrap();
    assert!(train::secure::SecureArith::new(sess, Holder::B).is_err());
}
