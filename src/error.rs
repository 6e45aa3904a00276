//! The one error edge: exit codes, and the single place errors become text for people.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Errors that know how the user can fix them.
pub trait Hint {
    fn hint(&self) -> Option<String>;
}

/// Exit statuses (docs in README, "Exit codes").
pub mod code {
    /// Done: hit, partial, miss, saved, skipped, or store trouble reported as a warning.
    pub const OK: u8 = 0;
    /// Failed: `--strict` store trouble, `--fail-on-miss` miss, bad configuration, nothing matched.
    pub const FAILED: u8 = 1;
    /// Usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// A bug: a broken invariant or a panicked task.
    pub const BUG: u8 = 3;
}

/// The error and its causes on one line, `a: b: c`, skipping causes already in the text.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            let _ = write!(out, ": {s}");
        }
        cur = e.source();
    }
    out
}

/// Prints `error: ...` and an optional `hint: ...`, returns the exit code.
pub fn report(err: &(dyn StdError + 'static), hint: Option<String>, status: u8) -> ExitCode {
    eprintln!("error: {}", chain(err));
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    ExitCode::from(status)
}
