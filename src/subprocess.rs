//! Running a build's own command for `cachectl run`: stdin, stdout and stderr inherited, the
//! signals a build runner sends passed on to it, its wall-clock time measured, and cachectl
//! ending the way the command ended (same exit code, or killed by the same signal).

use std::ffi::OsString;
use std::time::Instant;
use tokio::signal::unix::{signal, SignalKind};

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code (0..=255).
    Exited(i32),
    /// A signal (its number) killed it.
    Signaled(i32),
}

impl Ended {
    /// The exit code a shell reports for it: the code itself, or 128 + the signal.
    pub fn shell_code(self) -> u8 {
        let code = match self {
            Ended::Exited(code) => code,
            Ended::Signaled(sig) => 128 + sig,
        };
        u8::try_from(code.clamp(0, 255)).unwrap_or(u8::MAX)
    }
}

/// The command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: std::io::Error,
}

impl SpawnError {
    /// What a shell exits with for the same failure: 127 not found, 126 found but not runnable.
    pub fn shell_code(&self) -> u8 {
        if self.source.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

impl crate::error::Hint for SpawnError {
    fn hint(&self) -> Option<String> {
        Some(if self.source.kind() == std::io::ErrorKind::NotFound {
            "check that the command after `--` is installed and on PATH".into()
        } else {
            "check that the command after `--` is an executable file".into()
        })
    }
}

/// Signals passed on to the command while it runs: the ones build runners and people send to
/// stop, reload or poke a build step.
const FORWARDED: [(SignalKind, rustix::process::Signal); 6] = [
    (SignalKind::interrupt(), rustix::process::Signal::INT),
    (SignalKind::terminate(), rustix::process::Signal::TERM),
    (SignalKind::hangup(), rustix::process::Signal::HUP),
    (SignalKind::quit(), rustix::process::Signal::QUIT),
    (SignalKind::user_defined1(), rustix::process::Signal::USR1),
    (SignalKind::user_defined2(), rustix::process::Signal::USR2),
];

/// Runs `program` with `args` and waits for it, forwarding [`FORWARDED`] signals; returns how
/// it ended and its wall-clock seconds. Must run inside the tokio runtime.
///
/// Errors: [`SpawnError`] when the program does not exist or cannot be executed.
pub async fn run(program: &OsString, args: &[OsString]) -> Result<(Ended, f64), SpawnError> {
    // Handlers first, so a signal arriving while the command starts is not lost (nor does it
    // kill cachectl and orphan the command).
    let streams: Vec<_> = FORWARDED
        .iter()
        .filter_map(|(kind, sig)| signal(*kind).ok().map(|s| (s, *sig)))
        .collect();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|source| SpawnError {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let forwarders: Vec<_> = streams
        .into_iter()
        .filter_map(|(mut stream, sig)| {
            let pid = pid?;
            Some(tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if !terminal_sent_it_too(sig) {
                        let _ = rustix::process::kill_process(pid, sig);
                    }
                }
            }))
        })
        .collect();
    let status = child.wait().await;
    for task in forwarders {
        task.abort();
    }
    let seconds = started.elapsed().as_secs_f64();
    let ended = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(sig)) => Ended::Signaled(sig),
                (None, None) => Ended::Exited(1),
            }
        }
        // Waiting failed (ECHILD: someone else reaped it): its status is unknown, so a failure.
        Err(_) => Ended::Exited(1),
    };
    Ok((ended, seconds))
}

/// SIGINT and SIGQUIT from a terminal (Ctrl-C, Ctrl-\) go to the whole foreground process
/// group, the command included: forwarding them too would deliver each twice (and many tools
/// take a second Ctrl-C as "stop now, skip the clean-up").
fn terminal_sent_it_too(sig: rustix::process::Signal) -> bool {
    use rustix::process::Signal;
    if sig != Signal::INT && sig != Signal::QUIT {
        return false;
    }
    let ours = rustix::process::getpgrp();
    [
        rustix::termios::tcgetpgrp(std::io::stdin()),
        rustix::termios::tcgetpgrp(std::io::stdout()),
        rustix::termios::tcgetpgrp(std::io::stderr()),
    ]
    .into_iter()
    .any(|foreground| foreground.is_ok_and(|pgrp| pgrp == ours))
}

/// Ends cachectl the way the command ended: killed by the same signal, so the shell running
/// the build sees what it would have seen without cachectl. Returns (and the caller exits
/// with [`Ended::shell_code`]) for an exit code, for signals that dump core (cachectl's own
/// core would only mislead), or when the signal cannot be re-raised.
pub fn end_like(ended: Ended) {
    const CORE_DUMPING: [i32; 10] = [
        libc::SIGQUIT,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGSYS,
        libc::SIGXCPU,
        libc::SIGXFSZ,
    ];
    if let Ended::Signaled(sig) = ended {
        if !CORE_DUMPING.contains(&sig) {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_codes() {
        let cases = [
            ("success", Ended::Exited(0), 0),
            ("failure", Ended::Exited(1), 1),
            ("any code", Ended::Exited(42), 42),
            ("SIGKILL", Ended::Signaled(9), 137),
            ("SIGTERM", Ended::Signaled(15), 143),
        ];
        for (name, ended, want) in cases {
            assert_eq!(ended.shell_code(), want, "case {name}");
        }
    }
}
