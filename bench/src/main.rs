//! `bench`: the command-line front end.
//!
//! * `bench linear --net lan`: COP vs SIP at the BERT-base linear shapes.
//! * `bench ot`: IKNP vs Ferret random-COT throughput.
//! * `bench nonlinear --op relu --ring 37 --net lan`: one nonlinear two-party operation.
//! * `bench accuracy --model DIR --data FILE.tsv`: classifier accuracy (float / fixed / secure).
//!
//! Each subcommand lives in its own module with its own arguments and `run`.
use clap::{Parser, Subcommand};

mod accuracy;
mod linear;
mod nonlinear;
mod ot;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Secure two-party Transformer inference: benchmarks and runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Secure matrix multiplication: COP vs SIP at the BERT-base shapes.
    Linear(linear::Args),
    /// Oblivious-transfer throughput: IKNP vs Ferret.
    Ot(ot::Args),
    /// One nonlinear two-party operation (ReLU, DReLU, truncation, product) on a batch.
    Nonlinear(nonlinear::Args),
    /// Classifier accuracy on a labelled TSV file.
    Accuracy(accuracy::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Linear(a) => linear::run(a),
        Command::Ot(a) => ot::run(a),
        Command::Nonlinear(a) => nonlinear::run(a),
        Command::Accuracy(a) => accuracy::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
