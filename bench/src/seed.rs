//! The run's randomness: `--seed S` makes a whole run reproducible.
//!
//! Every random choice of a `bench` run (both parties' session seeds, their keys, the test
//! inputs and their masks) derives from one [`RunSeed`], each use under its own name. Without
//! `--seed` the run seed is fresh from the operating system; with it, two runs with the same
//! `S` give bit-identical outputs and transcript sizes. A seed given on the command line is not
//! secret: `--seed` is for reproducing and comparing runs, never for a deployment.
use mpc_core::{Party, Seed};

/// The seed a run derives all of its randomness from.
#[derive(Clone, Copy, Debug)]
pub struct RunSeed(Seed);

impl RunSeed {
    /// The run seed of `--seed` (expanded from the number), or a fresh one without it.
    pub fn from_arg(seed: Option<u64>) -> RunSeed {
        match seed {
            None => RunSeed(Seed::random()),
            Some(s) => {
                let hash = blake3::derive_key("bench --seed v1", &s.to_le_bytes());
                RunSeed(Seed(hash[..16].try_into().expect("16 of 32 bytes")))
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
