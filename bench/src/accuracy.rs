//! `bench accuracy` (not built yet).

/// Arguments of `bench accuracy`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `bench accuracy`.
pub fn run(_args: Args) -> mpc_core::Result<()> {
    Err(mpc_core::Error::Unavailable("`bench accuracy` is not built yet".into()))
}
