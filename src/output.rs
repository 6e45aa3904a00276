//! The edge where results meet people. stdout holds results (`--json` objects, tables,
//! digests); stderr holds what people read (summary lines, warnings, per-item errors, notes),
//! at the chosen verbosity. Apart from `error::report` (a command's fatal error) and the
//! terminal progress bars, nothing else in cachectl prints.
//!
//! Writes to stderr never fail a command. On stdout, a reader that stopped reading (`cachectl
//! ls | head -1`) is not a failure: the rest of the output is dropped and the command ends as
//! it would have. Any other failed write (a full disk behind `>`) is a [`StdoutError`].

use crate::error::{chain, render, Hint};
use serde::Serialize;
use std::error::Error as StdError;
use std::io::{self, Write};
use std::sync::OnceLock;

/// How much a command says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Warnings and errors only (`-q`).
    Quiet,
    Normal,
    /// Also notes and one line per item (`-v`).
    Verbose,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

/// Set once, from `-q` / `-v`, before anything is printed.
pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

pub fn verbosity() -> Verbosity {
    *VERBOSITY.get().unwrap_or(&Verbosity::Normal)
}

fn stderr(text: &str) {
    // A closed stderr leaves nobody to tell; the command goes on.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// One line for people on stderr, unless `--quiet`.
pub fn say(line: &str) {
    if verbosity() != Verbosity::Quiet {
        stderr(&format!("{line}\n"));
    }
}

/// One line on stderr whatever the verbosity (per-stage timings asked for by the user).
pub fn diagnostic(line: &str) {
    stderr(&format!("{line}\n"));
}

/// `note: ...` on stderr with `--verbose` only: worth knowing, never a problem.
pub fn note(line: &str) {
    if verbosity() == Verbosity::Verbose {
        stderr(&format!("note: {line}\n"));
    }
}

/// `warning: <context>: <message>` and `hint: ...`: trouble that does not fail the command
/// (fail-open store errors, metrics not published, paths left out).
pub fn warn(context: &str, message: &str, hint: Option<&str>) {
    stderr(&render("warning", &format!("{context}: {message}"), hint));
}

/// [`warn`] with an error's chain as the message and its own hint.
pub fn warn_error<E: StdError + Hint + 'static>(context: &str, err: &E) {
    warn(context, &chain(err), err.hint().as_deref());
}

/// `error: <context>: <message>` and `hint: ...` for one failed item of a command that goes
/// on with the rest (a delete among thousands); the command's exit status says it failed.
pub fn error<E: StdError + Hint + 'static>(context: &str, err: &E) {
    stderr(&render(
        "error",
        &format!("{context}: {}", chain(err)),
        err.hint().as_deref(),
    ));
}

/// [`error`] for a failure that is not an error value (a key that names no entry).
pub fn error_line(message: &str, hint: Option<&str>) {
    stderr(&render("error", message, hint));
}

/// stdout could not be written, for another reason than its reader going away.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout")]
pub struct StdoutError(#[source] pub io::Error);

/// A closed pipe ends the output, not the command.
fn stdout_result(r: io::Result<()>) -> Result<(), StdoutError> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(StdoutError(e)),
        _ => Ok(()),
    }
}

/// Writes `text` to stdout as it is, flushed.
pub fn print(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    stdout_result(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// One result line on stdout.
pub fn println(line: &str) -> Result<(), StdoutError> {
    print(&format!("{line}\n"))
}

/// One JSON object as one line on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), StdoutError> {
    println(&serde_json::to_string(value).expect("reports serialize"))
}

/// Streams a result too large to build in memory (prune's JSON with every deleted entry) to
/// stdout through `write`, buffered and flushed.
pub fn stream(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), StdoutError> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    stdout_result(write(&mut out).and_then(|()| out.flush()))
}

/// The `--json` line of save and restore: the report itself for one cache; for several,
/// `{"outcome": <the worst>, "caches": [...]}`.
pub fn reports<T: Serialize>(reports: &[T], worst: &str) -> Result<(), StdoutError> {
    match reports {
        [one] => json(one),
        many => json(&serde_json::json!({ "outcome": worst, "caches": many })),
    }
}

/// A column's alignment in [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Names: read left to right.
    Left,
    /// Numbers: line up on their last digit.
    Right,
}

/// Rows (the header first) as aligned text, two spaces between columns, one `\n`-ended line
/// per row, trailing spaces trimmed. `align[i]` is column `i`'s alignment (default left).
pub fn table(rows: &[Vec<String>], align: &[Align]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let w = widths[c];
            match align.get(c).copied().unwrap_or(Align::Left) {
                Align::Left => line.push_str(&format!("{cell:<w$}")),
                Align::Right => line.push_str(&format!("{cell:>w$}")),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_names_left_and_numbers_right() {
        let rows = vec![
            vec!["KEY".into(), "SIZE".into(), "PATHS".into()],
            vec!["npm-1".into(), "1.5 KiB".into(), "node_modules".into()],
            vec!["cargo-registry".into(), "12 B".into(), "~/.cargo".into()],
        ];
        assert_eq!(
            table(&rows, &[Align::Left, Align::Right]),
            "KEY                SIZE  PATHS\n\
             npm-1           1.5 KiB  node_modules\n\
             cargo-registry     12 B  ~/.cargo\n"
        );
    }
}
