//! Issue 16: what a bad server announces, and what an honest one must not reveal, in the first
//! setup message (the public description of the model).
//!
//! * Item 4: hostile descriptions (absurd sizes, products that overflow, a plan that reveals
//!   more coefficients than the floods cover, a softmax plan whose rings cannot be built) give
//!   the client a typed error before it allocates anything, never a panic or a huge allocation.
//! * Item 5: the description the client receives carries no breakpoint and no exp lower bound.
use bert::fixed_model::FixedBert;
use bert::secure::{AttentionMode, Client, EmbeddingMode, Head, PublicModel, Server};
use bert::{BertConfig, BertWeights};
use mpc_core::{Channel, Error, Party, Seed};
use ot_nonlinear::approx::{ApproxSet, ExpMethod};
use ot_nonlinear::mpc::Session;
use std::time::Duration;

fn description(config: BertConfig, seq_len: usize) -> PublicModel {
    PublicModel {
        config,
        seq_len,
        classes: 2,
        embedding: EmbeddingMode::Client,
        attention: AttentionMode::Packed,
        approx: ApproxSet::nimbus(),
    }
}

#[test]
fn hostile_descriptions_are_typed_errors() {
    let base = BertConfig::bert_base();
    let mut bad_plan = description(BertConfig::bert_tiny(), 16);
    bad_plan.approx.plan.softmax.max_drop = 64;
    let hostile = vec![
        // A 2^40-row vocabulary the client would receive in clear.
        description(
            BertConfig {
                vocab_size: 1 << 40,
                ..base.clone()
            },
            128,
        ),
        // vocab × hidden overflows usize.
        description(
            BertConfig {
                hidden_size: 1 << 60,
                num_attention_heads: 1,
                ..base.clone()
            },
            128,
        ),
        // A 2^40-token sequence (pad would allocate it).
        description(
            BertConfig {
                max_position_embeddings: 1 << 40,
                ..base.clone()
            },
            1 << 40,
        ),
        // 2^30 layers.
        description(
            BertConfig {
                num_hidden_layers: 1 << 30,
                ..base.clone()
            },
            128,
        ),
        // BERT-large at 512 tokens: 2^28.2 coefficients under the server's key, above the
        // floods' 2^27.
        description(BertConfig::bert_large(), 512),
        bad_plan,
    ];
    let count = hostile.len();
    let (cs, cc) = Channel::mem_pair();
    let mut cc = cc;
    cc.set_timeout(Duration::from_secs(60));
    let server = std::thread::spawn(move || -> mpc_core::Result<Session> {
        let mut sess = Session::new(cs, Party::Server, Seed([0x51; 16]))?;
        for public in &hostile {
            sess.ch.send_msg(public)?;
        }
        sess.ch.flush()?;
        Ok(sess)
    });
    let mut sess = Session::new(cc, Party::Client, Seed([0x52; 16])).unwrap();
    let cache = tempfile::tempdir().unwrap();
    for i in 0..count {
        match Client::setup(&mut sess, cache.path()) {
            Err(Error::Shape { .. } | Error::InvalidArgument(_) | Error::InsecureParams(_))
            | Err(Error::Malformed { .. }) => {}
            Err(e) => panic!("description {i}: unexpected error {e}"),
            Ok(_) => panic!("description {i} was accepted"),
        }
    }
    // Nothing was written to the cache.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    server.join().unwrap().unwrap();
}

#[test]
fn the_client_receives_no_breakpoint_and_no_exp_lower_bound() {
    let weights = BertWeights::random(&BertConfig::tiny(), 11).unwrap();
    let mut set = ApproxSet::puma();
    let secret_lower = -13.25;
    for t in &mut set.layers {
        t.exp = ExpMethod::Squaring {
            t: 8,
            lower: secret_lower,
        };
    }
    let real_gelu: Vec<Vec<f64>> = set
        .layers
        .iter()
        .map(|t| t.gelu.breakpoints.clone())
        .collect();
    let fixed = FixedBert::new(&weights, set).unwrap();
    let head = Head::random(weights.config.hidden_size, 2, 3);
    let mut server = Server::new(&fixed, &head, 8, EmbeddingMode::Server, Seed([5; 16])).unwrap();
    let (cs, mut cc) = Channel::mem_pair();
    cc.set_timeout(Duration::from_secs(60));
    let t = std::thread::spawn(move || -> mpc_core::Result<()> {
        let mut sess = Session::new(cs, Party::Server, Seed([0x51; 16]))?;
        server.setup(&mut sess)
    });
    let mut sess = Session::new(cc, Party::Client, Seed([0x52; 16])).unwrap();
    let public: PublicModel = sess.ch.recv_msg(1 << 20).unwrap();
    drop(sess);
    // The server stops at the client's disappearance; its error is not the point here.
    let _ = t.join().unwrap();
    for (l, t) in public.approx.layers.iter().enumerate() {
        match t.exp {
            ExpMethod::Squaring { lower, .. } => assert_ne!(lower, secret_lower, "layer {l}"),
            ExpMethod::Piecewise(_) => panic!("layer {l}: the exp method changed"),
        }
        for (i, &b) in t.gelu.breakpoints.iter().enumerate() {
            assert!(
                !real_gelu[l].contains(&b) || b == i as f64,
                "layer {l}: {b}"
            );
        }
    }
}
