//! Progress of a long phase (setup, layers): a bar on a terminal, plain lines otherwise (a CI
//! log or a file gets one line per step instead of silence).
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A phase of `len` steps named `what`.
pub enum Progress {
    /// stderr is a terminal: indicatif's bar.
    Bar(ProgressBar),
    /// Otherwise: a line on stderr each time the position moves.
    Lines {
        /// The phase's name.
        what: String,
        /// Its number of steps.
        len: u64,
        /// The last position printed.
        shown: AtomicU64,
        /// When the phase started.
        start: Instant,
    },
}

impl Progress {
    /// Starts a phase of `len` steps.
    pub fn new(len: u64, what: &str) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>9} [{bar:32}] {pos}/{len} {msg} ({elapsed})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                what: what.to_string(),
                len,
                shown: AtomicU64::new(0),
                start: Instant::now(),
            }
        }
    }

    /// What the phase is doing now (shown on the bar; printed with the next line otherwise).
    pub fn set_message(&self, msg: &str) {
        if let Progress::Bar(bar) = self {
            bar.set_message(msg.to_string());
        }
    }

    /// `pos` of the phase's steps are done.
    pub fn set_position(&self, pos: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(pos),
            Progress::Lines {
                what,
                len,
                shown,
                start,
            } => {
                if shown.swap(pos, Ordering::Relaxed) != pos {
                    eprintln!(
                        "{what}: {pos}/{len} ({:.1} s)",
                        start.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }

    /// Ends the phase with a closing message.
    pub fn finish_with_message(&self, msg: &str) {
        match self {
            Progress::Bar(bar) => bar.finish_with_message(msg.to_string()),
            Progress::Lines { what, .. } => eprintln!("{what}: done, {msg}"),
        }
    }
}
