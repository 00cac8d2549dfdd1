//! The offline/online split on bert-tiny (2 layers, hidden 128, random weights): the logits of
//! an inference on offline material and of a single-phase inference both match the fixed-point
//! mirror within its bound; material used twice, or belonging to another server key, is
//! refused with a clear error before anything is sent; the COTs set aside after the offline
//! phase are exactly those the online pass draws.
use bert::fixed_model::FixedBert;
use bert::secure::{self, Client, EmbeddingMode, Head, Server};
use bert::{BertConfig, BertWeights};
use mpc_core::{Channel, Party, Result, Seed};
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::mpc::Session;
use std::path::Path;
use std::time::Duration;

const SEQ: usize = 8;
const IDS: [u32; 5] = [101, 2023, 3185, 2001, 102];

fn model() -> (FixedBert, Head, BertWeights) {
    let weights = BertWeights::random(&BertConfig::bert_tiny(), 17).unwrap();
    let fixed = FixedBert::new(&weights, ApproxSet::nimbus()).unwrap();
    let head = Head::random(weights.config.hidden_size, 2, 3);
    (fixed, head, weights)
}

fn seeds() -> [Seed; 2] {
    let s = std::env::var("BERT_TEST_SEED")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(0x61);
    eprintln!("session seeds from {s} (BERT_TEST_SEED={s} reproduces this run)");
    [Seed([s; 16]), Seed([s ^ 0xff; 16])]
}

fn channels() -> (Channel, Channel) {
    let (mut cs, mut cc) = Channel::mem_pair();
    cs.set_timeout(Duration::from_secs(120));
    cc.set_timeout(Duration::from_secs(120));
    (cs, cc)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Runs setup under the server key `key`, then `server` and `client` on the two sessions.
fn pair<A: Send + 'static, B>(
    key: Seed,
    cache: &Path,
    server: impl FnOnce(&mut Server, &mut Session) -> Result<A> + Send + 'static,
    client: impl FnOnce(&Client, &mut Session) -> B,
) -> (A, B) {
    let (fixed, head, _) = model();
    let mut srv = Server::new(&fixed, &head, SEQ, EmbeddingMode::Server, key).unwrap();
    let [ss, sc] = seeds();
    let (cs, cc) = channels();
    let t = std::thread::spawn(move || -> Result<A> {
        let mut sess = Session::new(cs, Party::Server, ss)?;
        srv.setup(&mut sess)?;
        server(&mut srv, &mut sess)
    });
    let mut sess = Session::new(cc, Party::Client, sc).unwrap();
    let c = Client::setup(&mut sess, cache).unwrap();
    let b = client(&c, &mut sess);
    sess.ch.flush().unwrap();
    (t.join().unwrap().unwrap(), b)
}

#[test]
fn bert_tiny_on_offline_material_matches_the_fixed_point_mirror_and_is_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let (sroot, croot) = (dir.path().join("server"), dir.path().join("client"));
    let (session, (split, single, again)) = pair(
        Seed([5; 16]),
        &dir.path().join("cache"),
        move |server, sess| {
            let session = server.offline(sess, &sroot)?;
            server.infer_offline(sess, &sroot)?;
            server.infer(sess)?;
            Ok(session)
        },
        |client, sess| {
            let session = client.offline(sess, &croot).unwrap();
            assert_eq!(client.pending_offline(&croot).unwrap(), vec![session]);
            let split = client
                .infer_offline(sess, &IDS, &croot, session, &|_, _| {})
                .unwrap();
            assert!(client.pending_offline(&croot).unwrap().is_empty());
            let single = client.infer(sess, &IDS).unwrap();
            // The same material again: refused before anything is sent.
            let again = client.infer_offline(sess, &IDS, &croot, session, &|_, _| {});
            (split, single, again.map(|_| session))
        },
    );
    let (fixed, head, weights) = model();
    let (padded, mask) = secure::pad(&IDS, SEQ, weights.config.vocab_size).unwrap();
    let want = secure::fixed_reference(&fixed, &padded, &mask, &head).unwrap();
    let bound = secure::FIXED_LOGIT_BOUND;
    eprintln!(
        "session {session}: offline+online {split:?}, single phase {single:?}, mirror {want:?}"
    );
    assert!(
        max_diff(&split, &want) <= bound,
        "offline+online: {split:?} vs {want:?}"
    );
    assert!(
        max_diff(&single, &want) <= bound,
        "single phase: {single:?} vs {want:?}"
    );
    let err = again.unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
}

/// Bytes of every COT extension recorded under `prefix`.
fn extension_bytes(ch: &Channel, prefix: &str) -> u64 {
    ch.stats()
        .iter()
        .filter(|(label, _)| label.starts_with(prefix) && label.ends_with("ferret/extend"))
        .map(|(_, s)| s.bytes_sent)
        .sum()
}

#[test]
fn cots_set_aside_after_the_offline_phase_serve_the_whole_online_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (sroot, croot) = (dir.path().join("server"), dir.path().join("client"));
    let (server_set, (client_set, drawn, extended)) = pair(
        Seed([6; 16]),
        &dir.path().join("cache"),
        move |server, sess| {
            let session = server.offline(sess, &sroot)?;
            let set = server.set_aside_online_cots(sess, session)?;
            sess.scope("online", |s| server.infer_offline(s, &sroot))?;
            Ok(set)
        },
        |client, sess| {
            let session = client.offline(sess, &croot).unwrap();
            let set = client.set_aside_online_cots(sess, session).unwrap();
            let before = sess.cots_drawn();
            sess.scope("online", |s| {
                client.infer_offline(s, &IDS, &croot, session, &|_, _| {})
            })
            .unwrap();
            let after = sess.cots_drawn();
            let drawn = (after.server - before.server, after.client - before.client);
            (set, drawn, extension_bytes(&sess.ch, "online"))
        },
    );
    eprintln!("set aside {client_set:?}, drawn online {drawn:?}");
    assert_eq!(
        server_set, client_set,
        "both parties set aside the same COTs"
    );
    // The plan's count is exact: the online pass draws all of them and extends nothing.
    assert_eq!((client_set.server, client_set.client), drawn);
    assert_eq!(extended, 0, "the online pass extended COTs");
}

#[test]
fn offline_material_of_another_server_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (sroot, croot) = (dir.path().join("server"), dir.path().join("client"));
    // Material made under key 5, never used.
    let c1 = croot.clone();
    let (_, session) = pair(
        Seed([5; 16]),
        &cache,
        move |server, sess| server.offline(sess, &sroot),
        |client, sess| client.offline(sess, &c1).unwrap(),
    );
    // A server with another key: the client's cache ids, hence the model id, differ.
    let (_, (pending, err)) = pair(
        Seed([6; 16]),
        &cache,
        |_, _| Ok(()),
        |client, sess| {
            let pending = client.pending_offline(&croot).unwrap();
            let err = client
                .infer_offline(sess, &IDS, &croot, session, &|_, _| {})
                .unwrap_err()
                .to_string();
            (pending, err)
        },
    );
    assert!(pending.is_empty());
    assert!(err.contains("another model or key"), "{err}");
}
