//! Secure two-party inference of a tiny BERT against the fixed-point mirror and the float model,
//! in both embedding modes, both attention modes and two approximation shapes, plus a peer that
//! disappears mid-protocol.
use bert::fit::{self, Segments};
use bert::fixed_model::FixedBert;
use bert::secure::{self, AttentionMode, Client, EmbeddingMode, Head, Server};
use bert::{BertConfig, BertWeights, FloatBert};
use mpc_core::{Channel, Error, Party, Seed};
use ot_nonlinear::approx::{ApproxSet, ExpMethod, LayerTables};
use ot_nonlinear::mpc::Session;
use std::time::Duration;

fn run(
    config: (EmbeddingMode, AttentionMode, ApproxSet),
    ids: &[u32],
    seq_len: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let seeds = [Seed([0x51; 16]), Seed([0x52; 16])];
    let (got, want, float, _) = run_seeded(config, ids, seq_len, seeds);
    (got, want, float)
}

/// [`run`] with the parties' session seeds given; also returns the client's channel totals.
fn run_seeded(
    (mode, attention, set): (EmbeddingMode, AttentionMode, ApproxSet),
    ids: &[u32],
    seq_len: usize,
    [server_seed, client_seed]: [Seed; 2],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, mpc_core::Stats) {
    let weights = BertWeights::random(&BertConfig::tiny(), 11).unwrap();
    let fixed = FixedBert::new(&weights, set).unwrap();
    let head = Head::random(weights.config.hidden_size, 2, 3);
    let mut server = Server::new(&fixed, &head, seq_len, mode, Seed([5; 16]))
        .unwrap()
        .with_attention(attention)
        .unwrap();
    let (mut cs, mut cc) = Channel::mem_pair();
    cs.set_timeout(Duration::from_secs(120));
    cc.set_timeout(Duration::from_secs(120));
    let t = std::thread::spawn(move || -> mpc_core::Result<()> {
        let mut sess = Session::new(cs, Party::Server, server_seed)?;
        server.setup(&mut sess)?;
        server.infer(&mut sess)
    });
    let cache = tempfile::tempdir().unwrap();
    let mut sess = Session::new(cc, Party::Client, client_seed).unwrap();
    let client = Client::setup(&mut sess, cache.path()).unwrap();
    let got = client.infer(&mut sess, ids).unwrap();
    sess.ch.flush().unwrap();
    let totals = sess.ch.totals();
    t.join().unwrap().unwrap();
    let (padded, mask) = secure::pad(ids, seq_len, weights.config.vocab_size).unwrap();
    let want = secure::fixed_reference(&fixed, &padded, &mask, &head).unwrap();
    let real = mask.iter().filter(|&&m| m).count();
    let float = secure::float_reference(&FloatBert::new(weights), &padded[..real], &head).unwrap();
    (got, want, float, totals)
}

/// The same session seeds give the same run bit for bit (logits and transcript sizes); other
/// seeds give other shares but logits within the mirror's bound.
#[test]
fn same_seeds_reproduce_a_run_bit_for_bit() {
    let config = || {
        (
            EmbeddingMode::Server,
            AttentionMode::Packed,
            ApproxSet::nimbus(),
        )
    };
    let ids = [5, 9, 3];
    let seeds = [Seed([7; 16]), Seed([8; 16])];
    let (a, want, _, sa) = run_seeded(config(), &ids, 4, seeds);
    let (b, _, _, sb) = run_seeded(config(), &ids, 4, seeds);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(
        (sa.bytes_sent, sa.bytes_recv, sa.rounds),
        (sb.bytes_sent, sb.bytes_recv, sb.rounds)
    );
    let (c, _, _, _) = run_seeded(config(), &ids, 4, [Seed([9; 16]), Seed([10; 16])]);
    let bound = secure::FIXED_LOGIT_BOUND;
    assert!(max_diff(&a, &want) <= bound && max_diff(&c, &want) <= bound);
}

/// A set with three GELU and two exp segments (fitted under the bounds on evenly spread
/// inputs): its redacted copy (placeholder breakpoints) must pass the client's checks.
fn segmented_set() -> ApproxSet {
    let mut set = ApproxSet::nimbus();
    let (plan, format) = (set.plan, set.format);
    let xs: Vec<f32> = (0..20_000)
        .map(|i| -6.0 + 10.0 * i as f32 / 20_000.0)
        .collect();
    let neg: Vec<f32> = xs.iter().map(|x| -(x + 6.0) * 0.7).collect();
    let gelu = fit::fit_gelu(&xs, None, &plan.gelu, format, (3, Segments::GELU_BOUND)).unwrap();
    let exp = fit::fit_exp(&neg, &plan.exp, format, (2, Segments::EXP_BOUND)).unwrap();
    set.layers = vec![LayerTables {
        gelu,
        exp: ExpMethod::Piecewise(exp),
    }];
    set
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn secure_tiny_bert_matches_the_fixed_point_mirror() {
    // Padded input (mask exercised) with the private embedding, packed attention and the Nimbus
    // shapes; then the client-side embedding, unpacked attention and more segments with an
    // input cut to the sequence length.
    for (mode, attention, set, ids, len) in [
        (
            EmbeddingMode::Server,
            AttentionMode::Packed,
            ApproxSet::nimbus(),
            vec![1u32, 57, 127, 9, 2],
            8,
        ),
        (
            EmbeddingMode::Client,
            AttentionMode::Unpacked,
            segmented_set(),
            (0..12).map(|i| (i * 37 % 128) as u32).collect(),
            8,
        ),
    ] {
        let (got, fixed, float) = run((mode, attention, set), &ids, len);
        let e = max_diff(&got, &fixed);
        assert!(
            e <= secure::FIXED_LOGIT_BOUND,
            "{mode:?}: {got:?} vs fixed {fixed:?} ({e})"
        );
        assert!(
            max_diff(&got, &float) < 0.5,
            "{mode:?}: {got:?} vs float {float:?}"
        );
    }
}

#[test]
fn a_vanished_server_is_a_clear_error_for_the_client() {
    let (cs, mut cc) = Channel::mem_pair();
    cc.set_timeout(Duration::from_secs(30));
    // The server sets up its OT and then disappears (its channel is dropped).
    let t = std::thread::spawn(move || Session::new(cs, Party::Server, Seed([0x51; 16])).map(drop));
    let mut sess = Session::new(cc, Party::Client, Seed([0x52; 16])).unwrap();
    t.join().unwrap().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = Client::setup(&mut sess, cache.path()).unwrap_err();
    assert!(matches!(err, Error::Disconnected), "{err}");
}
