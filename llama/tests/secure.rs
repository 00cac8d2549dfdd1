//! The secure decoder on a small random LLaMA-architecture model (written as a GGUF file by
//! `llama::synthetic`): secure greedy ids equal the fixed-point mirror's, the reconstructed
//! logit shares stay within a few units of the mirror's logits, and the mirror follows the
//! float model. `LLAMA_TEST_SEED=S` reproduces a run (the seed is printed).
use llama::calibrate::calibrate;
use llama::fixed_model::{FixedDecoder, FixedLlama};
use llama::secure::cost::{offline_cost, plan_cots};
use llama::secure::offline::OfflineStore;
use llama::secure::{Client, Server};
use llama::synthetic::{write_random_model, SyntheticSpec};
use llama::{FloatModel, Model};
use mpc_core::{Channel, FixedPoint, Party, Seed};
use ot_nonlinear::mpc::Session;
use std::time::Duration;

fn seed(default: u64) -> u64 {
    let s = std::env::var("LLAMA_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {s}");
    s
}

fn decode(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&x| FixedPoint::LINEAR.decode(x)).collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Secure generation fed `feed` (teacher forcing: after the prompt, call i runs `feed[i − 1]`,
/// so that a near-tie the secure run resolves the other way does not change the later
/// inputs): (the secure argmax per call, reconstructed logits per call); with `split`, the
/// projections run on the material of an offline phase for exactly these calls, whose
/// measured bytes are checked against [`offline_cost`].
fn secure_generate(
    fixed: &FixedLlama,
    prompt: &[u32],
    feed: &[u32],
    seed: u64,
    split: bool,
) -> (Vec<u32>, Vec<Vec<u64>>) {
    let new_tokens = feed.len();
    let seeds = [1u64, 2, 3].map(|t| Seed([0x6c; 16]).derive(seed ^ t));
    let (cs, cc) = Channel::mem_pair();
    let (mut cs, mut cc) = (cs, cc);
    cs.set_timeout(Duration::from_secs(120));
    cc.set_timeout(Duration::from_secs(120));
    let cache = tempfile::tempdir().unwrap();
    let (sroot, croot) = (cache.path().join("server"), cache.path().join("client"));
    let mut plan = vec![prompt.len()];
    plan.resize(new_tokens, 1);
    std::thread::scope(|scope| {
        let server = scope.spawn(move || -> mpc_core::Result<Vec<Vec<u64>>> {
            let mut server = Server::new(fixed, seeds[0], &|_, _| {})?;
            let mut sess = Session::new(cs, Party::Server, seeds[1])?;
            server.setup(&mut sess)?;
            let mut shares = Vec::new();
            let mut observe = |s: &nn::SharedTensor| shares.push(s.share().to_vec());
            if split {
                let session = server.offline(&mut sess, &sroot)?;
                let store = OfflineStore::open(&sroot, server.model_id()?, session)?;
                let mut id = [0u8; 16];
                sess.ch.recv(&mut id)?;
                assert_eq!(id, session.0);
                server.serve_observed(&mut sess, Some(&store), &mut observe)?;
            } else {
                server.serve_observed(&mut sess, None, &mut observe)?;
            }
            Ok(shares)
        });
        let mut sess = Session::new(cc, Party::Client, seeds[2]).unwrap();
        let client = Client::setup(&mut sess, cache.path()).unwrap();
        let mut generation = if split {
            let session = client.offline(&mut sess, &croot, &plan).unwrap();
            let pp = he_linear::params::HeParams::packed_products().unwrap();
            let want = offline_cost(&client.public().shape, (&params(), &pp), &plan).unwrap();
            let got = sess.ch.stats_of("offline").unwrap();
            // The SwiGLU triples' COT extensions (Ferret) run inside the phase; the cost
            // excludes them, as every cost does.
            let ferret = sess
                .ch
                .stats()
                .iter()
                .filter(|(k, _)| k.starts_with("offline/") && k.ends_with("/ferret/extend"))
                .fold((0, 0), |(s, r), (_, v)| {
                    (s + v.bytes_sent, r + v.bytes_recv)
                });
            assert_eq!(
                (got.bytes_sent - ferret.0, got.bytes_recv - ferret.1),
                (want.client_bytes, want.server_bytes),
                "offline bytes (Ferret's extensions excluded)"
            );
            assert_eq!(client.pending_offline(&croot).unwrap(), vec![session]);
            client
                .generation_offline(&mut sess, &croot, session)
                .unwrap()
        } else {
            client.generation()
        };
        // Ferret traffic so far, and COTs drawn: the online calls on offline material must
        // draw exactly `plan_cots` and extend none (the offline phase reserved them).
        let extended = |sess: &Session| {
            sess.ch
                .stats()
                .iter()
                .filter(|(k, _)| k.ends_with("/ferret/extend"))
                .map(|(_, v)| v.bytes_sent + v.bytes_recv)
                .sum::<u64>()
        };
        let (extended_before, drawn_before) = (extended(&sess), sess.cots_drawn());
        let (mut ids, mut shares) = (Vec::new(), Vec::new());
        let mut input = prompt.to_vec();
        for &fed in feed {
            let (next, share) = generation
                .run_with_share(&mut sess, &input, &|_, _| {})
                .unwrap();
            ids.push(next);
            shares.push(share.share().to_vec());
            input = vec![fed];
        }
        if split {
            let public = client.public();
            let want = plan_cots(
                &public.shape,
                &public.approx,
                &public.norm_shifts,
                &params(),
                &plan,
            )
            .unwrap();
            let drawn = sess.cots_drawn();
            assert_eq!(
                (
                    drawn.server - drawn_before.server,
                    drawn.client - drawn_before.client
                ),
                (want.server, want.client),
                "COTs drawn online"
            );
            assert_eq!(extended(&sess), extended_before, "COT extensions online");
            // The plan is used up: a further call is refused before anything is sent.
            let err = generation
                .run_with_share(&mut sess, &input, &|_, _| {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("beyond the offline plan"), "{err}");
            assert!(client.pending_offline(&croot).unwrap().is_empty());
        }
        generation.finish(&mut sess).unwrap();
        let server_shares = server.join().unwrap().unwrap();
        assert_eq!(server_shares.len(), new_tokens);
        let logits = shares
            .iter()
            .zip(&server_shares)
            .map(|(c, s)| c.iter().zip(s).map(|(a, b)| a.wrapping_add(*b)).collect())
            .collect();
        (ids, logits)
    })
}

fn params() -> he_linear::params::HeParams {
    he_linear::params::HeParams::default_params().unwrap()
}

#[test]
fn secure_generation_matches_the_mirror_and_the_mirror_the_float_model() {
    let seed = seed(18);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_random_model(&path, &SyntheticSpec::tiny(), seed).unwrap();
    let model = Model::load(&path).unwrap();
    let prompt = model.tokenizer.encode("The secret prompt").unwrap();
    let calibration = vec![
        model.tokenizer.encode("calibration text, one").unwrap(),
        model.tokenizer.encode("and a second line of it").unwrap(),
    ];
    let (set, shifts, _) = calibrate(&model, &calibration).unwrap();
    eprintln!("norm shifts {shifts:?}");
    let fixed = FixedLlama::new(&model, set, shifts).unwrap();
    let new_tokens = 4;

    let float_ids = FloatModel::new(&model)
        .generate_greedy(&prompt, new_tokens)
        .unwrap();
    let mut mirror = FixedDecoder::new(&fixed);
    let (mut mirror_ids, mut mirror_logits) = (Vec::new(), Vec::new());
    let mut input = prompt.clone();
    for _ in 0..new_tokens {
        let logits = mirror.forward(&input).unwrap();
        let next = nn::argmax::argmax_mirror(&logits, logits.len())[0] as u32;
        mirror_ids.push(next);
        mirror_logits.push(logits);
        input = vec![next];
    }
    for split in [false, true] {
        let (secure_ids, secure_logits) =
            secure_generate(&fixed, &prompt, &mirror_ids, seed, split);
        eprintln!("split {split}: float {float_ids:?} mirror {mirror_ids:?} secure {secure_ids:?}");
        check_logits(&secure_logits, &mirror_logits, &secure_ids, &mirror_ids);
    }
    mirror_follows_float(&model, &prompt, &mirror_ids, &mirror_logits);
    eprintln!("greedy float ids {float_ids:?}");
}

/// Logits within 0.1 of the mirror's at every step; the secure argmax is the mirror's unless
/// the mirror's top two lie within twice the logit difference.
fn check_logits(
    secure_logits: &[Vec<u64>],
    mirror_logits: &[Vec<u64>],
    secure_ids: &[u32],
    mirror_ids: &[u32],
) {
    for (step, (s, m)) in secure_logits.iter().zip(mirror_logits).enumerate() {
        let (s, m) = (decode(s), decode(m));
        let e = max_diff(&s, &m);
        let scale = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut sorted = m.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        eprintln!(
            "step {step}: secure vs mirror logits max |diff| {e:.2e} (max |logit| {scale:.2}, top-2 gap {:.3})",
            sorted[0] - sorted[1]
        );
        assert!(e < 0.1, "step {step}: logits differ by {e}");
        let gap = sorted[0] - sorted[1];
        assert!(
            secure_ids[step] == mirror_ids[step] || gap < 2.0 * e,
            "step {step}: secure {} vs mirror {} with a top-2 gap of {gap}",
            secure_ids[step],
            mirror_ids[step]
        );
    }
}

fn mirror_follows_float(
    model: &Model,
    prompt: &[u32],
    mirror_ids: &[u32],
    mirror_logits: &[Vec<u64>],
) {
    // The mirror follows the float model: on the mirror's own tokens (teacher forcing), the
    // float model's logits stay close and its argmax is the mirror's unless its top two nearly
    // tie (within twice the logit error).
    let mut float = FloatModel::new(model);
    let mut input = prompt.to_vec();
    for (step, (&id, m)) in mirror_ids.iter().zip(mirror_logits).enumerate() {
        let f: Vec<f64> = float
            .prefill(&input)
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let e = max_diff(&decode(m), &f);
        let mut sorted = f.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let gap = sorted[0] - sorted[1];
        eprintln!(
            "step {step}: mirror vs float logits max |diff| {e:.3}, float top-2 gap {gap:.3}"
        );
        assert!(e < 0.5, "step {step}: mirror vs float logits differ by {e}");
        let float_id = llama::argmax(&f.iter().map(|&v| v as f32).collect::<Vec<_>>());
        assert!(
            float_id == id || gap < 2.0 * e,
            "step {step}: float {float_id} vs mirror {id} with a top-2 gap of {gap}"
        );
        input = vec![id];
    }
}
