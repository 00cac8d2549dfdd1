//! Pieces shared by the subcommands' JSON reports.
use mpc_core::Stats;

/// One phase's traffic and time, as the JSON reports write it.
#[derive(serde::Serialize, Debug, Default, Clone, Copy)]
pub(crate) struct Cost {
    /// Bytes both ways.
    pub(crate) bytes: u64,
    /// Flights (changes of direction).
    pub(crate) rounds: u64,
    /// Wall-clock seconds.
    pub(crate) wall_s: f64,
}

impl From<Stats> for Cost {
    fn from(s: Stats) -> Cost {
        Cost {
            bytes: s.bytes(),
            rounds: s.rounds,
            wall_s: s.wall_s,
        }
    }
}

/// `--phase` of the subcommands that run both phases in one process: `both` (an offline phase,
/// then the online run on its material) → true, `single` → false.
pub fn split_phase(phase: &str) -> mpc_core::Result<bool> {
    match phase {
        "both" => Ok(true),
        "single" => Ok(false),
        other => Err(mpc_core::Error::InvalidArgument(format!(
            "--phase {other}: expected both or single"
        ))),
    }
}
