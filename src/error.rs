//! The grammar of failure: the [`Hint`] errors offer, the exit codes, and the one format in
//! which errors and warnings reach people: `error: a: b: c`, then a `hint: ...` line.
//!
//! `main` reports a command's fatal error once with [`report`]; warnings and per-item errors
//! that do not end a command go through `output::warn` / `output::error`, in the same format.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

/// Errors that know how the user can fix them.
pub trait Hint {
    /// One line saying what to do, or `None` when the error itself says it all.
    fn hint(&self) -> Option<String>;
}

/// Exit statuses, as the README's "Exit codes" table lists them (a test checks each).
pub mod code {
    /// Done: hit, partial, miss, saved, skipped, or store trouble reported as a warning.
    pub const OK: u8 = 0;
    /// Failed: `--strict` store trouble, `--fail-on-miss` miss, bad configuration, a store that
    /// cannot be read or deleted from, nothing matched.
    pub const FAILED: u8 = 1;
    /// Usage error: clap's own, or a flag value only the command can check.
    pub const USAGE: u8 = 2;
    /// cachectl itself failed: a broken invariant, a panic, no threads to run on.
    pub const BUG: u8 = 3;
    /// Stopped by SIGINT (128 + 2) after aborting open uploads.
    pub const SIGINT: u8 = 130;
    /// Stopped by SIGTERM (128 + 15) after aborting open uploads.
    pub const SIGTERM: u8 = 143;
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

/// `<level>: <message>` and, when there is one, `hint: <hint>`; each line ends in `\n`.
pub fn render(level: &str, message: &str, hint: Option<&str>) -> String {
    let mut out = format!("{level}: {message}\n");
    if let Some(h) = hint {
        let _ = writeln!(out, "hint: {h}");
    }
    out
}

/// Prints a fatal error (its chain on one line, then its hint) and returns `code`. The one
/// place a command's failure becomes text; `main` calls it once.
pub fn report(err: &(dyn StdError + 'static), hint: Option<String>, code: u8) -> ExitCode {
    let text = render("error", &chain(err), hint.as_deref());
    // Nothing is left to do if stderr is gone; the exit code still says what happened.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    ExitCode::from(code)
}

/// Makes a panic anywhere (any thread, any task) one `error:` report and exit code
/// [`code::BUG`], the same in debug builds (which unwind) and release builds (which abort).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = render(
            "error",
            &format!("cachectl stopped: {what}{at}"),
            Some("this is a bug unless the machine ran out of memory or threads; please report it with this line"),
        );
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        std::process::exit(i32::from(code::BUG));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: cannot reach the store")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_causes_on_one_line() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            chain(&e),
            "outer: cannot reach the store: connection refused"
        );
    }

    #[test]
    fn render_puts_the_hint_on_its_own_line() {
        assert_eq!(
            render("warning", "save npm: denied", Some("grant s3:PutObject")),
            "warning: save npm: denied\nhint: grant s3:PutObject\n"
        );
        assert_eq!(render("error", "bad", None), "error: bad\n");
    }
}
