//! `bench linear` (not built yet).

/// Arguments of `bench linear`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `bench linear`.
pub fn run(_args: Args) -> mpc_core::Result<()> {
    Err(mpc_core::Error::Unavailable("`bench linear` is not built yet".into()))
}
