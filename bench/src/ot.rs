//! `bench ot` (not built yet).

/// Arguments of `bench ot`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `bench ot`.
pub fn run(_args: Args) -> mpc_core::Result<()> {
    Err(mpc_core::Error::Unavailable("`bench ot` is not built yet".into()))
}
