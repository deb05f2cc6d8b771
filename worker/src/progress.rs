//! Progress of the long commands (`seed`, `audit`): one line to stderr as a step starts and one
//! as it ends, with its elapsed time, so an operator watching a terminal or a log sees the
//! command moving and which step a slow run is in. Stderr, because stdout is each command's
//! report; the steps never change what a script reading stdout sees.

use std::{fmt::Display, time::Instant};

/// A step under way: printed by [`Step::start`], finished by [`Step::done`]. A step that fails
/// prints no end line: the command's one `error:` line says why.
#[derive(Debug)]
pub struct Step {
    command: &'static str,
    what: String,
    started: Instant,
}

impl Step {
    /// Prints `<command>: <what> ...` and starts the clock.
    pub fn start(command: &'static str, what: impl Into<String>) -> Self {
        let what = what.into();
        eprintln!("{command}: {what} ...");
        Self {
            command,
            what,
            started: Instant::now(),
        }
    }

    /// Prints `<command>: <what> ... <result> (<seconds> s)`: the start line, completed.
    pub fn done(self, result: impl Display) {
        eprintln!(
            "{}: {} ... {result} ({:.1} s)",
            self.command,
            self.what,
            self.started.elapsed().as_secs_f64()
        );
    }
}
