//! One `run` per subcommand; each returns the process exit status.

pub mod hash_files;
pub mod jobs;
pub mod keys;
pub mod ls;
pub mod prune;
pub mod restore;
pub mod rm;
pub mod save;
pub mod stats;

use crate::error::{chain, Hint};
use crate::store::{Store, StoreUrl};
use crate::{env, key};
use std::path::PathBuf;
use std::sync::Arc;

/// A failure flattened for the report: the error chain on one line, and how to fix it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub cause: String,
    pub hint: Option<String>,
}

impl<E: std::error::Error + Hint + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::of(&e)
    }
}

impl Failure {
    pub fn of<E: std::error::Error + Hint + 'static>(e: &E) -> Self {
        Failure {
            cause: chain(e),
            hint: e.hint(),
        }
    }

    pub fn message(&self) -> String {
        match &self.hint {
            Some(h) => format!("{} (fix: {h})", self.cause),
            None => self.cause.clone(),
        }
    }
}

impl Hint for key::Error {
    fn hint(&self) -> Option<String> {
        None
    }
}

impl Hint for crate::transfer::Error {
    fn hint(&self) -> Option<String> {
        match self {
            crate::transfer::Error::Store(e) => e.hint(),
            _ => None,
        }
    }
}

pub fn set_verbosity(r: &crate::cli::ReportArgs) {
    use crate::progress::{set_verbosity, Verbosity};
    set_verbosity(if r.quiet {
        Verbosity::Quiet
    } else if r.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
}

/// Prints a failure that ends a store-maintenance command (`ls`, `rm`, `prune`): exit 1.
pub fn fail(f: &Failure) -> std::process::ExitCode {
    fail_with(f, crate::error::code::FAILED)
}

/// `error: <cause>` and `hint: <fix>` on stderr; returns `status`.
pub fn fail_with(f: &Failure, status: u8) -> std::process::ExitCode {
    eprintln!("error: {}", f.cause);
    if let Some(h) = &f.hint {
        eprintln!("hint: {h}");
    }
    std::process::ExitCode::from(status)
}

/// Reports a planning failure (bad flags or configuration) with its exit status.
pub fn plan_failed(e: jobs::PlanError) -> std::process::ExitCode {
    fail_with(&e.failure, e.status)
}

/// Starts building the CloudWatch client in the background, unless metrics are off.
pub fn start_metrics(
    r: &crate::cli::ReportArgs,
    plan: &jobs::Plan,
) -> Option<tokio::task::JoinHandle<crate::metrics::Metrics>> {
    if r.no_metrics || !plan.metrics_enabled {
        return None;
    }
    let namespace = r
        .metrics_namespace
        .clone()
        .or_else(|| plan.metrics_namespace.clone())
        .unwrap_or_else(|| "Cachectl".to_owned());
    Some(tokio::spawn(crate::metrics::Metrics::new(namespace)))
}

/// Publishes one PutMetricData for the whole command; never fails the command.
pub async fn finish_metrics(
    started: Option<tokio::task::JoinHandle<crate::metrics::Metrics>>,
    events: &[crate::metrics::Event],
) {
    if let Some(handle) = started {
        if let Ok(m) = handle.await {
            m.publish(events).await;
        }
    }
}

/// Working directory and home, the two anchors of every `--path`.
pub fn anchors() -> (PathBuf, Option<PathBuf>) {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os(env::HOME)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    (cwd, home)
}

pub async fn open_store(raw: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    let xdg = std::env::var(env::XDG_CACHE_HOME).ok();
    let home = std::env::var(env::HOME).ok();
    let url = StoreUrl::parse(raw, xdg.as_deref(), home.as_deref())?;
    Ok(url.open().await)
}

/// Threads that create files on restore: file creation is syscall-bound, so more threads than
/// cores still help, most of all on disks where each create waits on the journal.
pub fn unpack_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).clamp(4, 16)
}
