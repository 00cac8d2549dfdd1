//! Attention on random shares against its mirror: a causal mask over a key cache (past > 0)
//! with grouped KV heads (the decoder's case) and a padding mask with one KV head per query
//! head (the encoder's), and decoder steps (one query row: all heads in one block-diagonal
//! product where that costs least in bytes and ciphertext operations), with exact bytes per
//! step.
mod common;
use common::*;
use mpc_core::{FixedPoint, Ring};
use nn::activation_offline::PowerTriples;
use nn::attention::{attention, attention_cost, attention_mirror, AttentionShape, Mask};
use nn::attention_offline::{attention_prepared_cost, AttentionTriples};
use nn::label::Component;
use nn::matmul::matmul_cost;
use nn::SharedTensor;
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::functions::exp_power_spec;

const LIN: FixedPoint = FixedPoint::LINEAR;
/// COTs each party pre-extends in each direction outside the operator's labels, so that the
/// labels count the protocol's messages only (the costs exclude Ferret's extensions).
const RESERVE: usize = 15_000_000;

fn shared(rows: usize, cols: usize, x: &[u64], seed: u64) -> (SharedTensor, SharedTensor) {
    let (s, c) = share(x, Ring::R64, &mut prg(seed));
    (
        SharedTensor::matrix(rows, cols, LIN, s).unwrap(),
        SharedTensor::matrix(rows, cols, LIN, c).unwrap(),
    )
}

/// Runs attention on shares of (q, k, v) with the client's mask `mask_c` (the server passes
/// `mask_s`) and checks the output against the mirror and every step's bytes against the cost.
fn check(seed: u64, shape: AttentionShape, mask_s: Mask<'static>, padding: Option<Vec<bool>>) {
    check_in(seed, shape, mask_s, padding, Phase::Single);
}

/// Where attention's products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// HE products online.
    Single,
    /// Triples generated first (offline).
    Triples,
    /// Triples, and the exp's power correlations attached.
    TriplesAndExp,
}

/// [`check`] in `phase`.
fn check_in(
    seed: u64,
    shape: AttentionShape,
    mask_s: Mask<'static>,
    padding: Option<Vec<bool>>,
    phase: Phase,
) {
    let prepared = phase != Phase::Single;
    let with_exp = phase == Phase::TriplesAndExp;
    let set = ApproxSet::nimbus();
    let (nq, nk) = (shape.queries, shape.keys);
    let (dq, dkv) = (
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
    );
    let mut rng = prg(seed);
    let q = values(&mut rng, nq * dq, -1.5, 1.5, &[0.0, 1.5, -1.5]);
    let k = values(&mut rng, nk * dkv, -1.5, 1.5, &[]);
    let v = values(&mut rng, nk * dkv, -4.0, 4.0, &[4.0, -4.0]);
    let (qs, qc) = shared(nq, dq, &q, seed ^ 1);
    let (ks, kc) = shared(nk, dkv, &k, seed ^ 2);
    let (vs, vc) = shared(nk, dkv, &v, seed ^ 3);
    let fx = Fixture::new(seed);
    let bps = ot_nonlinear::functions::exp_breakpoints(&set, 0);
    let (ss, sc) = (set.clone(), set.clone());
    let tag = |c: Component| format!("op/{}", c.label());
    let pad_c = padding.clone();
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, he| {
            s.reserve_cots(RESERVE, RESERVE).unwrap();
            let triples = prepared.then(|| triples(s, he, shape, with_exp));
            attention(
                s,
                he,
                &ss,
                0,
                Some(&bps),
                shape,
                (&qs, &ks, &vs),
                mask_s,
                triples,
                &|c| format!("op/{}", c.label()),
            )
            .unwrap()
        },
        move |s, he| {
            s.reserve_cots(RESERVE, RESERVE).unwrap();
            let triples = prepared.then(|| triples(s, he, shape, with_exp));
            let mask = match &pad_c {
                Some(p) => Mask::Padding(Some(p.as_slice())),
                None => mask_s,
            };
            attention(
                s,
                he,
                &sc,
                0,
                None,
                shape,
                (&qc, &kc, &vc),
                mask,
                triples,
                &tag,
            )
            .unwrap()
        },
    );
    let got = ys.reconstruct(&yc).unwrap();
    let mask_c = match &padding {
        Some(p) => Mask::Padding(Some(p.as_slice())),
        None => mask_s,
    };
    let want = attention_mirror(&set, 0, shape, (&q, &k, &v), mask_c);
    let gap = max_gap(&got, &want);
    // The Softmax's probabilities are within 2^12 units of the mirror's (the max tree's
    // resolution and the exp's carries, as in the Softmax test); each output sums `keys` of them
    // times |v| ≤ 4, plus the products' rounding. A wrong head, mask or KV group is off by
    // O(|v|) = O(2^20) units.
    let bound = (nk as u64) * 4 * (1 << 12) + 64;
    assert!(
        gap <= bound,
        "{shape:?} {mask_c:?}: gap {gap} > {bound} (seed {seed})"
    );
    eprintln!("{shape:?} {mask_c:?}: gap {gap} units of 2^-18 (bound {bound})");
    let costs = if prepared {
        attention_prepared_cost(&set, 0, shape, with_exp).unwrap()
    } else {
        attention_cost(&fx.packed, &set, 0, shape).unwrap()
    };
    let steps = [
        Component::AttentionQk,
        Component::AttentionSoftmax,
        Component::AttentionPv,
        Component::AttentionNormalize,
    ];
    for (step, cost) in steps.iter().zip(costs) {
        assert_bytes(&format!("op/{}", step.label()), &cs, &cc, cost);
    }
    if with_exp {
        // The exp's power products were openings: the softmax drew fewer COTs than its
        // single-phase self.
        let single = attention_prepared_cost(&set, 0, shape, false).unwrap()[1];
        assert!(costs_bytes(&cs, &cc, "op/attention/softmax") < single.bytes());
    }
    if prepared {
        let generated = AttentionTriples::generate_cost(&fx.packed, shape).unwrap();
        for (step, cost) in [steps[0], steps[2], steps[3]].iter().zip(generated) {
            assert_bytes(&format!("offline/{}", step.label()), &cs, &cc, cost);
        }
    }
}

/// This party's triples for an attention call of `shape`, under `offline/<step>`, with the
/// exp's power correlations attached if `with_exp`.
fn triples(
    s: &mut ot_nonlinear::mpc::Session,
    he: &nn::HeKeys<'_>,
    shape: AttentionShape,
    with_exp: bool,
) -> AttentionTriples {
    let t = AttentionTriples::generate(s, he, shape, &|c| format!("offline/{}", c.label()));
    let t = t.unwrap();
    if !with_exp {
        return t;
    }
    let set = ApproxSet::nimbus();
    let spec = exp_power_spec(&set, 0).expect("the nimbus exp is piecewise");
    t.with_exp(PowerTriples::generate(s, &spec, shape.scores()).unwrap())
}

/// Bytes both parties sent under `label`.
fn costs_bytes(cs: &mpc_core::Channel, cc: &mpc_core::Channel, label: &str) -> u64 {
    [cs, cc]
        .iter()
        .map(|c| c.stats_of(label).unwrap_or_default().bytes_sent)
        .sum()
}

/// `AttentionShape` in the order queries, keys, heads, key/value heads, head width.
fn attention_shape(dims: [usize; 5]) -> AttentionShape {
    let [queries, keys, heads, kv_heads, head_dim] = dims;
    AttentionShape {
        queries,
        keys,
        heads,
        kv_heads,
        head_dim,
    }
}

#[test]
fn causal_attention_over_a_cache_with_grouped_kv_heads_matches_its_mirror() {
    let seed = seed(11);
    check(
        seed,
        attention_shape([3, 7, 4, 2, 8]),
        Mask::Causal { past: 4 },
        None,
    );
}

#[test]
fn attention_on_offline_triples_matches_its_mirror_and_opens_only_masked_operands() {
    let seed = seed(17);
    // A decoder's prompt over a cache and a decoder step (grouped heads), an encoder's
    // padded attention (one key/value head per query head).
    check_in(
        seed,
        attention_shape([3, 7, 4, 2, 8]),
        Mask::Causal { past: 4 },
        None,
        Phase::Triples,
    );
    check_in(
        seed ^ 1,
        attention_shape([1, 45, 9, 3, 64]),
        Mask::Causal { past: 44 },
        None,
        Phase::Triples,
    );
    let padding: Vec<bool> = (0..6).map(|j| j < 4).collect();
    check_in(
        seed ^ 2,
        attention_shape([6, 6, 2, 2, 8]),
        Mask::Padding(None),
        Some(padding.clone()),
        Phase::Triples,
    );
    // The encoder's case with the exp's products on correlations too (BERT's online pass).
    check_in(
        seed ^ 3,
        attention_shape([6, 6, 2, 2, 8]),
        Mask::Padding(None),
        Some(padding),
        Phase::TriplesAndExp,
    );
}

#[test]
fn padded_attention_with_a_kv_head_per_query_head_matches_its_mirror() {
    let seed = seed(12);
    let padding = (0..6).map(|j| j < 4).collect();
    check(
        seed,
        attention_shape([6, 6, 2, 2, 8]),
        Mask::Padding(None),
        Some(padding),
    );
}

/// The exact bytes of attention's three HE steps (Q·Kᵀ, E·V, normalisation) at a shape, and
/// what other product shapes would move in their place.
struct StepBytes {
    fx: std::sync::Arc<Fixture>,
    r_frac: u32,
    chosen: [u64; 3],
}

impl StepBytes {
    fn new(seed: u64, shape: AttentionShape) -> StepBytes {
        let fx = Fixture::new(seed);
        let set = ApproxSet::nimbus();
        let [qk, _, pv, normalize] = attention_cost(&fx.packed, &set, 0, shape).unwrap();
        StepBytes {
            r_frac: set.plan.softmax.r_frac,
            chosen: [qk.bytes(), pv.bytes(), normalize.bytes()],
            fx,
        }
    }

    /// Bytes of `shapes` run as step `step` (the normalisation reveals its own window).
    fn of(&self, step: usize, shapes: &[(usize, usize, usize)]) -> u64 {
        let shift = if step == 2 { self.r_frac } else { 18 };
        matmul_cost(&self.fx.packed, shapes, shift).unwrap().bytes()
    }
}

#[test]
fn a_small_decoder_step_puts_all_heads_in_one_block_diagonal_product() {
    let seed = seed(13);
    let shape = attention_shape([1, 3, 6, 2, 4]);
    check(seed, shape, Mask::Causal { past: 2 }, None);
    // One product for all six heads: diag(Q_0, Q_1) (6 × 8) by [K_0ᵀ; K_1ᵀ] (8 × 3),
    // diag(E_0, E_1) (6 × 6) by [V_0; V_1] (6 × 4), one normalisation block of six rows:
    // fewer bytes and ciphertext operations than one product per group (two) or per head
    // (six).
    let b = StepBytes::new(seed, shape);
    assert_eq!(
        b.chosen,
        [
            b.of(0, &[(6, 8, 3)]),
            b.of(1, &[(6, 6, 4)]),
            b.of(2, &[(6, 6, 4)])
        ]
    );
    assert!(b.chosen[0] < b.of(0, &[(3, 4, 3); 2]), "{:?}", b.chosen);
    assert!(b.chosen[1] < b.of(1, &[(3, 3, 4); 2]), "{:?}", b.chosen);
    assert!(b.chosen[2] < b.of(2, &[(3, 3, 4); 2]), "{:?}", b.chosen);
}

#[test]
fn a_smollm2_step_stacks_its_groups_and_normalises_all_heads_in_one_block() {
    // Nine query heads on three key/value heads of 64, one query row over 45 keys: Q·Kᵀ and
    // E·V one product per group (the block-diagonal layout would halve their bytes for 80 and
    // 98 ciphertext operations against 45 and 78), the normalisation one block (0.54 MB and 8
    // operations each way against 1.61 MB and 15).
    let seed = seed(16);
    let shape = attention_shape([1, 45, 9, 3, 64]);
    check(seed, shape, Mask::Causal { past: 44 }, None);
    let b = StepBytes::new(seed, shape);
    let grouped = [b.of(0, &[(3, 64, 45); 3]), b.of(1, &[(3, 45, 64); 3])];
    assert_eq!(b.chosen, [grouped[0], grouped[1], b.of(2, &[(9, 9, 64)])]);
    assert!(b.of(0, &[(9, 192, 45)]) < b.chosen[0]);
    assert!(b.chosen[2] < b.of(2, &[(3, 3, 64); 3]));
}

#[test]
fn a_prompt_of_many_query_rows_keeps_one_product_per_head() {
    // A 32-token prompt: stacking a group's heads would cut bytes but not work (the
    // normalisation: 582 ciphertext operations per layer stacked, 153 per head).
    let b = StepBytes::new(seed(14), attention_shape([32, 32, 9, 3, 64]));
    let per_head = [(32, 64, 32), (32, 32, 64), (32, 32, 64)];
    assert_eq!(b.chosen, [0, 1, 2].map(|i| b.of(i, &[per_head[i]; 9])));
    assert!(b.of(2, &[(96, 96, 64); 3]) < b.chosen[2]);
}

#[test]
fn an_encoder_keeps_one_product_per_head() {
    // BERT-base at 128 tokens: no grouping, and a block-diagonal layout would multiply zeros.
    let b = StepBytes::new(seed(15), attention_shape([128, 128, 12, 12, 64]));
    let per_head = [(128, 64, 128), (128, 128, 64), (128, 128, 64)];
    assert_eq!(b.chosen, [0, 1, 2].map(|i| b.of(i, &[per_head[i]; 12])));
}
