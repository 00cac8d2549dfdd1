//! The run's randomness: `--seed S` makes a whole run reproducible.
//!
//! Every random choice of a `bench` run (both parties' session seeds, their keys, the test
//! inputs and their masks) derives from one [`RunSeed`], each use under its own name. Without
//! `--seed` the run seed is fresh from the operating system; with it, two runs with the same
//! `S` give bit-identical outputs and transcript sizes. A seed given on the command line is not
//! secret: `--seed` is for reproducing and comparing runs, never for a deployment.
use mpc_core::{Party, Seed};
use std::path::{Path, PathBuf};

/// A run's offline-material root ([`RunSeed::offline_root`]); a scratch root is removed on drop.
#[derive(Debug)]
pub struct OfflineRoot {
    path: PathBuf,
    scratch: bool,
}

impl OfflineRoot {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OfflineRoot {
    fn drop(&mut self) {
        if self.scratch {
            // Best effort: the entries were consumed (tombstones remain) or the run failed.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The seed a run derives all of its randomness from.
#[derive(Clone, Copy, Debug)]
pub struct RunSeed(Seed, bool);

impl RunSeed {
    /// The run seed of `--seed` (expanded from the number), or a fresh one without it.
    pub fn from_arg(seed: Option<u64>) -> RunSeed {
        match seed {
            None => RunSeed(Seed::random(), false),
            Some(s) => {
                let hash = blake3::derive_key("bench --seed v1", &s.to_le_bytes());
                RunSeed(Seed(hash[..16].try_into().expect("16 of 32 bytes")), true)
            }
        }
    }

    /// The child seed of the use called `name` (e.g. `"linear/cop/inputs"`).
    pub fn named(&self, name: &str) -> Seed {
        let hash = blake3::keyed_hash(&self.key(), name.as_bytes());
        Seed(hash.as_bytes()[..16].try_into().expect("16 of 32 bytes"))
    }

    /// The session seed of `party` in the use called `name`.
    pub fn party(&self, name: &str, party: Party) -> Seed {
        let role = match party {
            Party::Server => "server",
            Party::Client => "client",
        };
        self.named(&format!("{name}/{role}"))
    }

    /// Where a run that prepares and then uses its own offline material keeps it: `root`, or,
    /// for a `--seed` run, a directory of its own under `root`, removed when the returned guard
    /// drops. A given seed draws the same session ids on every run, and a store refuses a
    /// session id it has seen, so a reproduced run needs a fresh store (the material is used
    /// once either way).
    /// `own_material`: the run prepares the material it uses (both phases in one run); other
    /// runs keep `root`, where separate offline and online runs find each other's material.
    pub fn offline_root(&self, root: &Path, own_material: bool) -> OfflineRoot {
        if !(self.1 && own_material) {
            return OfflineRoot {
                path: root.to_path_buf(),
                scratch: false,
            };
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        OfflineRoot {
            path: root.join(format!("seeded-{}-{nanos}", std::process::id())),
            scratch: true,
        }
    }

    fn key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.0 .0);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_seed_reproduces_and_names_separate() {
        let (a, b) = (RunSeed::from_arg(Some(7)), RunSeed::from_arg(Some(7)));
        assert_eq!(a.named("x"), b.named("x"));
        assert_ne!(a.named("x"), a.named("y"));
        assert_ne!(a.party("x", Party::Server), a.party("x", Party::Client));
        assert_ne!(RunSeed::from_arg(Some(8)).named("x"), a.named("x"));
        assert_ne!(
            RunSeed::from_arg(None).named("x"),
            RunSeed::from_arg(None).named("x")
        );
    }
}
