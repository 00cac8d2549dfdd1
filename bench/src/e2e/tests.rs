//! Unit tests of the end-to-end command's argument handling and key placement.
use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

/// Issue 16, item 7: a client process reads only the public configuration and vocabulary;
/// the model file is needed for `--check` alone. Its server key lives outside its cache.
#[test]
fn a_client_needs_no_model_file_unless_it_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 8,
            "max_position_embeddings": 16, "type_vocab_size": 2, "hidden_act": "gelu"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nfilm\n##s\n",
    )
    .unwrap();
    let model = dir.path().to_str().unwrap();
    let cli = Cli::parse_from(["bench", "--model", model, "--role", "client"]);
    assert!(!cli.args.check);
    let public = load_public(&cli.args).unwrap();
    assert_eq!(public.config.vocab_size, 8);
    assert_eq!(
        token_ids("a film", public.tokenizer.as_ref(), 8),
        vec![2, 5, 6, 3]
    );
    // There is no model.safetensors: only --check needs it.
    assert!(load(&cli.args, &public).is_err());
    assert!(
        Cli::parse_from(["bench", "--model", model, "--check"])
            .args
            .check
    );
    // The default server key is not under the default client cache.
    let key = std::path::Path::new(crate::DEFAULT_KEY_FILE);
    assert!(!key.starts_with("target/bench-cache"));
    assert_eq!(cli.args.key_file, key);
}

/// Issue 17: `--phase` defaults to offline then online; the four phases parse, others are
/// refused; each party's offline material lives apart (the server's next to its key).
#[test]
fn phases_parse_and_material_lives_apart() {
    let cli = Cli::parse_from(["bench", "--model", "bert-tiny"]);
    assert_eq!(cli.args.phase.parse::<Phase>().unwrap(), Phase::Both);
    for (s, p) in [
        ("single", Phase::Single),
        ("offline", Phase::Offline),
        ("online", Phase::Online),
    ] {
        assert_eq!(s.parse::<Phase>().unwrap(), p);
    }
    assert!("twice".parse::<Phase>().is_err());
    let cache = std::path::Path::new("target/bench-cache/secure/bert-tiny");
    let (server, client) = offline_roots(cache, &cli.args.key_file);
    assert!(client.starts_with(cache) && !server.starts_with("target/bench-cache"));
}
