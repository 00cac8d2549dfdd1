//! `bench generate`: secure greedy text generation with a LLaMA-family GGUF model. Both parties
//! run in this process over an in-memory channel shaped by `--net`: the server holds the model
//! (its weights never leave it), the client holds the prompt and alone learns each next token
//! id (`llama::secure`). Prints the text as it is generated, then the prefill's and the average
//! step's cost per component (bytes, rounds, seconds, from the channel's counters), and checks
//! the secure ids against the fixed-point mirror's and the float model's.
mod estimate;

use crate::progress::Progress;
use crate::report::Cost;
use crate::seed::RunSeed;
use llama::calibrate::{calibrate, calibration_prompts};
use llama::fixed_model::{FixedDecoder, FixedLlama};
use llama::secure::{Client, Server};
use llama::{render_chat, FloatModel, Model};
use mpc_core::{Channel, Error, NetProfile, Party, Result, Stats};
use nn::Component;
use ot_nonlinear::mpc::Session;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file, or a directory holding exactly one.
    #[arg(long, required_unless_present = "estimate")]
    model: Option<PathBuf>,
    /// The prompt (the client's private input).
    #[arg(long, required_unless_present = "estimate")]
    prompt: Option<String>,
    /// No run: the exact bytes and rounds from the cost formulas of one generated token at
    /// `--context` positions, for llama-7b or smollm2-135m (or a GGUF file's shape).
    #[arg(long)]
    estimate: Option<String>,
    /// The context of `--estimate` (positions including the new token).
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Render the prompt with the file's chat template (one user turn, generation prompt).
    #[arg(long)]
    chat: bool,
    /// Tokens to generate (greedy; end-of-turn tokens do not stop it).
    #[arg(long, default_value_t = 8)]
    max_new_tokens: usize,
    /// Network profile: none, lan, wan, bolt-lan, bolt-wan.
    #[arg(long, default_value = "lan")]
    net: String,
    /// The client's cache of the encrypted embedding table (default
    /// `target/bench-cache/generate/<file stem>`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `both`: an offline phase prepares every call's projections and head on the client's
    /// random R (the plan: the prompt's length, then one row per further token), then the
    /// online generation runs them without HE; `single`: one phase, the projections on HE
    /// online.
    #[arg(long, default_value = "both")]
    phase: String,
}

/// Setup: the keys and the encrypted embedding table.
#[derive(serde::Serialize, Debug, Default, Clone, Copy)]
struct Setup {
    bytes: u64,
    wall_s: f64,
}

/// One component's cost in a call, summed over the blocks.
#[derive(serde::Serialize, Debug, Clone)]
struct ComponentRow {
    component: String,
    bytes: u64,
    rounds: u64,
    wall_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct Report {
    model: String,
    net: String,
    phase: String,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    text: String,
    mirror_ids: Vec<u32>,
    float_ids: Vec<u32>,
    secure_equals_mirror: usize,
    mirror_equals_float: usize,
    /// The mirror fed the float model's ids (teacher forcing): steps whose argmax is the
    /// float model's, so that one near-tie does not derail the count.
    mirror_follows_float: usize,
    prefill: Cost,
    steps: Vec<Cost>,
    setup: Setup,
    /// The offline phase (`--phase both`): its bytes, rounds and time, and per component.
    offline: Option<Cost>,
    offline_components: Vec<ComponentRow>,
    prefill_components: Vec<ComponentRow>,
    step_components: Vec<ComponentRow>,
    server_encoding_s: f64,
}

fn llama_err(e: llama::LlamaError) -> Error {
    Error::InvalidArgument(e.to_string())
}

/// The GGUF file of `--model`: the file itself, or the only `.gguf` file of a directory.
pub fn model_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(Error::InvalidArgument(format!(
            "{}: {n} .gguf files (give the file)",
            path.display()
        ))),
    }
}

/// Per component (summed over blocks), from the channel's label counters of one call (or of
/// the labels under `prefix`, e.g. `offline/`).
fn component_rows(ch: &Channel, n_layers: usize, prefix: &str) -> Vec<ComponentRow> {
    let mut rows = Vec::new();
    for c in Component::ALL {
        if c == Component::Setup || c == Component::Offline {
            continue;
        }
        let mut total = Stats::default();
        let mut seen = false;
        if let Some(s) = ch.stats_of(&format!("{prefix}{}", c.label())) {
            total.accumulate(&s);
            seen = true;
        }
        for l in 0..n_layers {
            if let Some(s) = ch.stats_of(&format!("{prefix}{}", c.in_layer(l))) {
                total.accumulate(&s);
                seen = true;
            }
        }
        if seen {
            rows.push(ComponentRow {
                component: c.label().to_string(),
                bytes: total.bytes(),
                rounds: total.rounds,
                wall_s: total.wall_s,
            });
        }
    }
    rows
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn print_components(title: &str, rows: &[ComponentRow], total: Cost) {
    println!("{title}");
    println!(
        "{:<20} {:>12} {:>8} {:>10}",
        "component", "MB", "rounds", "s"
    );
    for r in rows {
        println!(
            "{:<20} {:>12.3} {:>8} {:>10.3}",
            r.component,
            mb(r.bytes),
            r.rounds,
            r.wall_s
        );
    }
    println!(
        "{:<20} {:>12.3} {:>8} {:>10.3}",
        "total",
        mb(total.bytes),
        total.rounds,
        total.wall_s
    );
}

/// Sums `steps`' component rows and divides by their number.
fn average_rows(steps: &[Vec<ComponentRow>]) -> Vec<ComponentRow> {
    let Some(first) = steps.first() else {
        return Vec::new();
    };
    let n = steps.len() as f64;
    first
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let same = steps.iter().filter_map(|s| s.get(i));
            let (bytes, rounds, wall) = same.fold((0u64, 0u64, 0f64), |a, s| {
                (a.0 + s.bytes, a.1 + s.rounds, a.2 + s.wall_s)
            });
            ComponentRow {
                component: r.component.clone(),
                bytes: (bytes as f64 / n).round() as u64,
                rounds: (rounds as f64 / n).round() as u64,
                wall_s: wall / n,
            }
        })
        .collect()
}

/// The longest valid UTF-8 prefix of `bytes`.
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let split = crate::report::split_phase(&args.phase)?;
    if let Some(name) = &args.estimate {
        return estimate::estimate(name, args.context, split);
    }
    let (Some(model_arg), Some(prompt_arg)) = (&args.model, &args.prompt) else {
        return Err(Error::InvalidArgument("give --model and --prompt".into()));
    };
    let profile: NetProfile = args.net.parse()?;
    let file = model_file(model_arg)?;
    let t_load = Instant::now();
    let model = Model::load(&file).map_err(llama_err)?;
    let c = model.config.clone();
    let text = if args.chat {
        let template = model.chat_template.as_deref().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: no chat template in the file", file.display()))
        })?;
        render_chat(template, prompt_arg, &model.tokenizer).map_err(llama_err)?
    } else {
        prompt_arg.clone()
    };
    let prompt = model.tokenizer.encode(&text).map_err(llama_err)?;
    let n_new = args.max_new_tokens;
    if prompt.is_empty() || n_new == 0 {
        return Err(Error::InvalidArgument(
            "an empty prompt or no token to generate".into(),
        ));
    }
    if prompt.len() + n_new > c.context {
        return Err(Error::InvalidArgument(format!(
            "a prompt of {} tokens and {n_new} new ones exceed the context of {}",
            prompt.len(),
            c.context
        )));
    }
    println!(
        "generate: {} ({} blocks, width {}, {}/{} heads of {}, FFN {}, vocabulary {}), prompt \
         {} tokens, {n_new} new, net {profile} (loaded in {:.1} s)",
        file.display(),
        c.n_layers,
        c.hidden,
        c.n_heads,
        c.n_kv_heads,
        c.head_dim,
        c.ffn,
        c.vocab,
        prompt.len(),
        t_load.elapsed().as_secs_f64()
    );

    // The server's side: calibration on its own texts (never the client's prompt), encoding.
    let t = Instant::now();
    let calibration = calibration_prompts(&model).map_err(llama_err)?;
    let (set, shifts, _) = calibrate(&model, &calibration)?;
    let fixed = FixedLlama::new(&model, set, shifts)?;
    eprintln!(
        "calibrated on {} texts, norm shifts {:?}",
        calibration.len(),
        fixed.shifts()
    );
    let float_ids = FloatModel::new(&model)
        .generate_greedy(&prompt, n_new)
        .map_err(llama_err)?;
    let mirror_ids = FixedDecoder::new(&fixed).generate_greedy(&prompt, n_new)?;
    let followed = FixedDecoder::new(&fixed).follow(&prompt, &float_ids)?;
    eprintln!(
        "float and mirror references in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let bar = Progress::new(c.n_layers as u64 + 1, "encoding");
    let mut server = Server::new(&fixed, seed.named("generate/server-key"), &|done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_with_message("server weights encoded");
    let server_encoding_s = t.elapsed().as_secs_f64();
    drop(fixed);

    let (cs, cc) = Channel::mem_pair_shaped(profile);
    let server_seed = seed.party("generate/session", Party::Server);
    let client_seed = seed.party("generate/session", Party::Client);
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        PathBuf::from("target/bench-cache/generate").join(
            file.file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().to_string()),
        )
    });
    std::fs::create_dir_all(&cache_dir)?;
    let n_layers = c.n_layers;
    // The offline material of this run (removed afterwards when the run is seeded).
    let (server_root, client_root) = (
        seed.offline_root(&cache_dir.join("offline-server"), true),
        seed.offline_root(&cache_dir.join("offline-client"), true),
    );
    let server_root = server_root.path().to_path_buf();
    let mut plan = vec![prompt.len()];
    plan.resize(n_new, 1);
    let report = std::thread::scope(|scope| -> Result<Report> {
        let server_thread = scope.spawn(move || -> Result<usize> {
            let mut sess = Session::new(cs, Party::Server, server_seed)?;
            server.setup(&mut sess)?;
            let calls = if split {
                server.offline(&mut sess, &server_root)?;
                server.serve_offline(&mut sess, &server_root)?
            } else {
                server.serve(&mut sess)?
            };
            sess.ch.flush()?;
            Ok(calls)
        });
        let t0 = Instant::now();
        let mut sess = Session::new(cc, Party::Client, client_seed)?;
        let client = Client::setup(&mut sess, &cache_dir)?;
        let setup = Setup {
            bytes: sess.ch.totals().bytes(),
            wall_s: t0.elapsed().as_secs_f64(),
        };
        eprintln!(
            "setup: {:.1} MB, {:.1} s (Ferret, keys, encrypted embedding table)",
            mb(setup.bytes),
            setup.wall_s
        );
        let (mut offline, mut offline_rows) = (None, Vec::new());
        let mut generation = if split {
            sess.ch.clear_stats();
            let bar = Progress::new(plan.len() as u64, "offline");
            let session = client.offline(&mut sess, client_root.path(), &plan)?;
            bar.finish_with_message("offline material filed");
            let cost = Cost::from(
                sess.ch
                    .stats_of(Component::Offline.label())
                    .unwrap_or_default(),
            );
            eprintln!(
                "offline: {:.1} MB, {} rounds, {:.1} s ({} calls prepared)",
                mb(cost.bytes),
                cost.rounds,
                cost.wall_s,
                plan.len()
            );
            offline = Some(cost);
            offline_rows = component_rows(&sess.ch, n_layers, "offline/");
            client.generation_offline(&mut sess, client_root.path(), session)?
        } else {
            client.generation()
        };
        let mut generated = Vec::with_capacity(n_new);
        let (mut prefill, mut steps) = (Cost::default(), Vec::new());
        let (mut prefill_rows, mut step_rows) = (Vec::new(), Vec::new());
        let mut printed = 0usize;
        print!("{text}");
        std::io::stdout().flush()?;
        let mut input = prompt.clone();
        for i in 0..n_new {
            sess.ch.clear_stats();
            let before = sess.ch.totals();
            let t = Instant::now();
            let bar = Progress::new(n_layers as u64, if i == 0 { "prefill" } else { "step" });
            let next =
                generation.run(&mut sess, &input, &|done, _| bar.set_position(done as u64))?;
            bar.finish_with_message(&format!("token {next}"));
            let after = sess.ch.totals();
            let cost = Cost {
                bytes: after.bytes() - before.bytes(),
                rounds: after.rounds - before.rounds,
                wall_s: t.elapsed().as_secs_f64(),
            };
            let rows = component_rows(&sess.ch, n_layers, "");
            if i == 0 {
                prefill = cost;
                prefill_rows = rows;
            } else {
                steps.push(cost);
                step_rows.push(rows);
            }
            generated.push(next);
            let bytes = model
                .tokenizer
                .decode_bytes(&generated, true)
                .map_err(llama_err)?;
            let now = utf8_prefix(&bytes);
            if now.len() > printed {
                print!("{}", &now[printed..]);
                std::io::stdout().flush()?;
                printed = now.len();
            }
            input = vec![next];
        }
        println!();
        generation.finish(&mut sess)?;
        let calls = server_thread
            .join()
            .map_err(|_| Error::Unavailable("server thread panicked".into()))??;
        if calls != n_new {
            return Err(Error::malformed(
                "calls the server ran (one per new token)",
                calls,
                n_new,
            ));
        }
        let text = model
            .tokenizer
            .decode_skip_special(&generated)
            .map_err(llama_err)?;
        let agree = |a: &[u32], b: &[u32]| a.iter().zip(b).filter(|(x, y)| x == y).count();
        Ok(Report {
            model: file.display().to_string(),
            net: profile.name().into(),
            phase: args.phase.clone(),
            prompt_ids: prompt.clone(),
            secure_equals_mirror: agree(&generated, &mirror_ids),
            mirror_equals_float: agree(&mirror_ids, &float_ids),
            mirror_follows_float: agree(&followed, &float_ids),
            generated_ids: generated,
            text,
            mirror_ids,
            float_ids,
            prefill,
            steps,
            setup,
            offline,
            offline_components: offline_rows,
            prefill_components: prefill_rows,
            step_components: average_rows(&step_rows),
            server_encoding_s,
        })
    })?;
    if let Some(cost) = report.offline {
        print_components(
            &format!(
                "offline phase ({} calls: the prefill's {} rows, then one per token)",
                n_new,
                report.prompt_ids.len()
            ),
            &report.offline_components,
            cost,
        );
        println!("the tables below are the online phase");
    }
    print_components(
        &format!("prefill ({} tokens)", report.prompt_ids.len()),
        &report.prefill_components,
        report.prefill,
    );
    if !report.steps.is_empty() {
        let n = report.steps.len() as f64;
        let avg = Cost {
            bytes: (report.steps.iter().map(|s| s.bytes).sum::<u64>() as f64 / n) as u64,
            rounds: (report.steps.iter().map(|s| s.rounds).sum::<u64>() as f64 / n) as u64,
            wall_s: report.steps.iter().map(|s| s.wall_s).sum::<f64>() / n,
        };
        print_components(
            &format!("per generated token (mean of {} steps)", report.steps.len()),
            &report.step_components,
            avg,
        );
    }
    println!(
        "setup {:.1} MB, {:.1} s; server encoding {:.1} s",
        mb(report.setup.bytes),
        report.setup.wall_s,
        report.server_encoding_s
    );
    println!(
        "ids: secure {:?}\n     mirror {:?}\n     float  {:?}\nsecure = mirror on {}/{n_new}, \
         mirror = float on {}/{n_new} (teacher-forced on the float ids: {}/{n_new})",
        report.generated_ids,
        report.mirror_ids,
        report.float_ids,
        report.secure_equals_mirror,
        report.mirror_equals_float,
        report.mirror_follows_float
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::malformed("JSON output", e.to_string(), "serializable data"))?;
        std::fs::write(path, json)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &Path, json: &Path) -> Args {
        Args {
            model: Some(model.to_path_buf()),
            prompt: Some("secret".into()),
            estimate: None,
            context: 128,
            chat: true,
            max_new_tokens: 3,
            net: "none".into(),
            cache_dir: Some(model.with_extension("cache")),
            json: Some(json.to_path_buf()),
            phase: "both".into(),
        }
    }

    /// The whole subcommand on a synthetic model: the report's keys, secure ids = mirror ids.
    #[test]
    fn generate_on_a_synthetic_model_writes_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        llama::synthetic::write_random_model(&model, &llama::synthetic::SyntheticSpec::tiny(), 9)
            .unwrap();
        let json = dir.path().join("report.json");
        run(args(&model, &json), RunSeed::from_arg(Some(4))).unwrap();
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        for key in [
            "prompt_ids",
            "generated_ids",
            "text",
            "mirror_ids",
            "float_ids",
            "prefill",
            "steps",
            "setup",
        ] {
            assert!(r.get(key).is_some(), "no {key} in {r}");
        }
        assert_eq!(r["generated_ids"], r["mirror_ids"]);
        assert_eq!(r["steps"].as_array().unwrap().len(), 2);
        assert!(r["offline"]["bytes"].as_u64().unwrap() > 0);
        // One phase: the same tokens, no offline phase.
        let mut single = args(&model, &json);
        single.phase = "single".into();
        run(single, RunSeed::from_arg(Some(4))).unwrap();
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(s["generated_ids"], r["generated_ids"]);
        assert!(s["offline"].is_null());
        assert!(r["prefill"]["bytes"].as_u64().unwrap() > 0);
        assert!(r["setup"]["wall_s"].as_f64().is_some());
    }

    #[test]
    fn a_prompt_past_the_context_and_a_bad_model_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        llama::synthetic::write_random_model(&model, &llama::synthetic::SyntheticSpec::tiny(), 9)
            .unwrap();
        let json = dir.path().join("r.json");
        let mut a = args(&model, &json);
        a.prompt = Some("x".repeat(80));
        let e = run(a, RunSeed::from_arg(Some(1))).unwrap_err();
        assert!(e.to_string().contains("context"), "{e}");
        let bad = dir.path().join("bad.gguf");
        std::fs::write(&bad, b"GGUF\x09\0\0\0").unwrap();
        let e = run(args(&bad, &json), RunSeed::from_arg(Some(1))).unwrap_err();
        assert!(e.to_string().contains("bad.gguf"), "{e}");
    }
}
