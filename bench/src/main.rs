//! `bench`: the command-line front end.
//!
//! * `bench --model bert-base --net wan`: a full secure two-party BERT inference, reported per
//!   component and layer (no subcommand).
//! * `bench linear --net lan`: COP vs SIP at the BERT-base linear shapes.
//! * `bench ot`: IKNP vs Ferret random-COT throughput.
//! * `bench nonlinear --net lan`: the nonlinear functions at BERT-base block shapes (GELU,
//!   Softmax per approximation set; LayerNorm); `--op relu` etc.: one operation.
//! * `bench accuracy --model DIR --data FILE.tsv`: classifier accuracy (float / fixed / secure).
//! * `bench train --data FILE.csv --net lan`: secure logistic-regression training between two
//!   data holders (secure / twin / f64).
//! * `bench cnn --model resnet32-cifar100 --conv auto --net lan`: secure CNN inference per
//!   layer; `--data FILE.csv`: accuracy; `--compare`: the convolution protocols' exact costs.
//! * `bench generate --model FILE.gguf --prompt TEXT --chat --net lan`: secure greedy text
//!   generation with a LLaMA-family decoder, prefill and per-token costs per component.
//!
//! Each subcommand lives in its own module with its own arguments and `run`.
use clap::{Parser, Subcommand};

/// Where the server keeps its key seed by default: a server-only directory, apart from every
/// client cache (`target/bench-cache/...`), so that whoever reads a cache cannot decrypt it.
pub const DEFAULT_KEY_FILE: &str = "target/bench-server/server.key";

mod accuracy;
mod cnn;
mod e2e;
mod generate;
mod linear;
mod nonlinear;
mod ot;
mod progress;
mod report;
mod seed;
mod train;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Secure two-party Transformer inference: benchmarks and runs",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The end-to-end run (when no subcommand is given).
    #[command(flatten)]
    run: Option<e2e::Args>,
    /// Derive all of the run's randomness from this number: two runs with the same seed give
    /// identical results and transcript sizes (for reproducing runs; not secret, never for a
    /// deployment). Without it the run's seed is fresh from the operating system.
    #[arg(long, global = true)]
    seed: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Secure matrix multiplication: COP vs SIP at the BERT-base shapes.
    Linear(linear::Args),
    /// Oblivious-transfer throughput: IKNP vs Ferret.
    Ot(ot::Args),
    /// Nonlinear two-party operations: the BERT-base block suite, or one `--op` on a batch.
    Nonlinear(nonlinear::Args),
    /// Classifier accuracy on a labelled TSV file.
    Accuracy(accuracy::Args),
    /// Secure logistic-regression training between two data holders on a CSV file.
    Train(train::Args),
    /// Secure CNN inference: ResNet-18/32 (CIFAR-100 shapes) or an ONNX file.
    Cnn(cnn::Args),
    /// Secure greedy text generation with a LLaMA-family GGUF model.
    Generate(generate::Args),
}

fn main() {
    let cli = Cli::parse();
    let seed = seed::RunSeed::from_arg(cli.seed);
    let result = match (cli.command, cli.run) {
        (Some(Command::Linear(a)), _) => linear::run(a, seed),
        (Some(Command::Ot(a)), _) => ot::run(a, seed),
        (Some(Command::Nonlinear(a)), _) => nonlinear::run(a, seed),
        (Some(Command::Accuracy(a)), _) => accuracy::run(a, seed),
        (Some(Command::Train(a)), _) => train::run(a, seed),
        (Some(Command::Cnn(a)), _) => cnn::run(a, seed),
        (Some(Command::Generate(a)), _) => generate::run(a, seed),
        (None, Some(a)) => e2e::run(a, seed),
        (None, None) => Err(mpc_core::Error::InvalidArgument(
            "give --model (end-to-end run) or a subcommand; see --help".into(),
        )),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
