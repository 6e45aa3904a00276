//! One module per subcommand. Each `run` reads its settings, calls the library, reports what
//! it did, and returns how it ended: an [`ExitStatus`], or the [`Error`] that stopped it, which
//! `main` prints once.

#[cfg(feature = "provision")]
mod deprovision;
mod hash_files;
mod jobs;
mod keygen;
mod keys;
mod ls;
#[cfg(feature = "provision")]
mod provision;
mod prune;
mod restore;
mod rm;
mod run;
mod save;
mod stats;

use crate::cli::{Cli, Command, GlobalArgs, MetricsArgs, TransferArgs};
use crate::config::trust::{BuildEnv, TrustSettings};
use crate::error::{code, Hint};
use crate::key::Scope;
use crate::metrics::{self, Metrics, Published};
use crate::output::{self, Verbosity};
use crate::store::{Store, StoreUrl};
use crate::{aws, config, env, hash, key, prune as policy, store, transfer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// How a command that ran to its end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit 0: done, including store trouble reported as a warning (fail-open).
    Success,
    /// Exit 1: done, but not all the user asked for happened, and each failure was reported
    /// as it happened (`--strict` store trouble, `--fail-on-miss`, failed deletions).
    Failure,
    /// The exit code of the command `cachectl run` ran (or a shell's code for one it could not
    /// start: 126, 127).
    Command(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(match s {
            ExitStatus::Success => code::OK,
            ExitStatus::Failure => code::FAILED,
            ExitStatus::Command(code) => code,
        })
    }
}

/// Why a command stopped. `main` prints it once (`error: ...`, then `hint: ...`) and exits with
/// [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags or files the command line asked for that make no sense (clap checks the rest).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    // Boxed: configuration errors carry positions and suggestions, and every command's
    // Result would otherwise be their size.
    #[error(transparent)]
    Config(Box<config::Error>),
    #[error(transparent)]
    Rules(#[from] policy::RulesError),
    #[error(transparent)]
    Key(#[from] key::Error),
    #[error(transparent)]
    StoreUrl(#[from] store::UrlError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error(transparent)]
    Hash(#[from] hash::Error),
    #[error(transparent)]
    Sign(#[from] crate::sign::Error),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Aws(#[from] aws::CallError),
    #[error(transparent)]
    Stdout(#[from] output::StdoutError),
    #[cfg(feature = "provision")]
    #[error(transparent)]
    Provision(#[from] crate::provision::Error),
    /// Metrics a command exists to publish did not reach CloudWatch (`stats --publish`).
    #[error("{reason}")]
    NotPublished {
        reason: String,
        hint: Option<String>,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// Stopped by a signal (its exit code, 130 or 143) after aborting `aborted` open uploads.
    #[error("interrupted by {}{}", signal_name(*.code), aborted_uploads(*.aborted))]
    Interrupted { code: u8, aborted: usize },
}

impl From<config::Error> for Error {
    fn from(e: config::Error) -> Self {
        Error::Config(Box::new(e))
    }
}

impl Error {
    /// The exit code, one per meaning (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            // Bad flags, or a flag pointing at nothing usable: the command line is wrong.
            Error::Usage { .. } => code::USAGE,
            // Configuration, keys, the store, AWS, hash-files: the command could not do its job.
            Error::Config(_)
            | Error::Rules(_)
            | Error::Key(_)
            | Error::StoreUrl(_)
            | Error::Store(_)
            | Error::Transfer(_)
            | Error::Hash(_)
            | Error::Sign(_)
            | Error::Write { .. }
            | Error::Aws(_)
            | Error::NotPublished { .. }
            | Error::Stdout(_) => code::FAILED,
            // The stack could not be planned or applied, or is in a state nothing starts from.
            #[cfg(feature = "provision")]
            Error::Provision(_) => code::FAILED,
            // No threads: cachectl itself cannot run.
            Error::Runtime(_) => code::BUG,
            // 128 + the signal, as shells report it.
            Error::Interrupted { code, .. } => *code,
        }
    }

    fn usage(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint,
        }
    }
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::Config(e) => e.hint(),
            Error::Rules(e) => e.hint(),
            Error::Key(e) => e.hint(),
            Error::StoreUrl(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::Transfer(e) => e.hint(),
            Error::Hash(e) => e.hint(),
            Error::Sign(e) => e.hint(),
            Error::Write { .. } => Some("check the directory exists and is writable".into()),
            Error::Aws(e) => e.hint(),
            Error::NotPublished { hint, .. } => hint.clone(),
            #[cfg(feature = "provision")]
            Error::Provision(e) => e.hint(),
            Error::Runtime(_) => Some("the machine may be out of threads or memory".into()),
            Error::Stdout(_) | Error::Interrupted { .. } => None,
        }
    }
}

fn signal_name(code: u8) -> &'static str {
    if code == code::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

fn aborted_uploads(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; aborted the open upload".into(),
        n => format!("; aborted {n} open uploads"),
    }
}

/// Commands that never touch the network, run without the async runtime.
pub fn run_offline(cli: &Cli) -> Option<Result<ExitStatus, Error>> {
    set_verbosity(&cli.global);
    match &cli.command {
        Command::HashFiles(args) => Some(hash_files::run(&cli.global, args)),
        Command::Keys(args) => Some(keys::run(&cli.global, args)),
        Command::RemoveTrash(args) => Some(remove_trash(&args.dirs)),
        Command::Keygen(args) => Some(keygen::run(&cli.global, args)),
        _ => None,
    }
}

/// Every other command, on the runtime `main` built.
pub async fn run(cli: Cli) -> Result<ExitStatus, Error> {
    let g = cli.global;
    set_verbosity(&g);
    match cli.command {
        Command::Save(args) => save::run(&g, args).await,
        Command::Restore(args) => restore::run(&g, args).await,
        Command::Run(args) => run::run(&g, args).await,
        Command::Stats(args) => stats::run(&g, args).await,
        Command::Prune(args) => prune::run(&g, args).await,
        Command::Ls(args) => ls::run(&g, args).await,
        Command::Rm(args) => rm::run(&g, args).await,
        #[cfg(feature = "provision")]
        Command::Provision(args) => provision::run(&g, args).await,
        #[cfg(feature = "provision")]
        Command::Deprovision(args) => deprovision::run(&g, args).await,
        Command::HashFiles(args) => hash_files::run(&g, &args),
        Command::Keys(args) => keys::run(&g, &args),
        Command::RemoveTrash(args) => remove_trash(&args.dirs),
        Command::Keygen(args) => keygen::run(&g, &args),
    }
}

fn set_verbosity(g: &GlobalArgs) {
    output::set_verbosity(if g.quiet {
        Verbosity::Quiet
    } else if g.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
}

/// The build's scope and what decided it: `--scope`/`CACHECTL_SCOPE`, else CodeBuild's webhook
/// variables judged by `[trust]`.
///
/// Errors: [`Error::Usage`] for a scope that is not one.
fn build_scope(trust: &TrustSettings, args: &TransferArgs) -> Result<(Scope, String), Error> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let explicit = match args
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(Scope::parse(s).map_err(|e| {
            Error::usage(
                format!("--scope / {}: {e}", env::SCOPE),
                Some(
                    "leave it unset to let CodeBuild's webhook variables and [trust] decide".into(),
                ),
            )
        })?),
        None => None,
    };
    Ok(trust.scope_of(&BuildEnv {
        explicit,
        webhook_trigger: var(crate::env::CODEBUILD_WEBHOOK_TRIGGER),
        webhook_event: var(crate::env::CODEBUILD_WEBHOOK_EVENT),
        source_version: var(crate::env::CODEBUILD_SOURCE_VERSION),
    }))
}

/// `--concurrency` and `--part-size-mib` as the pipeline takes them.
fn transfer_options(args: &TransferArgs) -> transfer::Options {
    transfer::Options {
        concurrency: usize::from(args.concurrency),
        part_bytes: args.part_size_mib as usize * 1024 * 1024,
        lookup_timeout: args.lookup_timeout,
        ..transfer::Options::default()
    }
}

/// Starts the CloudWatch lookup in the background (unless metrics are off), so credentials
/// resolve while the transfer runs. `namespace` comes from `--metrics-namespace`, else the
/// configuration, else [`metrics::NAMESPACE`].
fn start_metrics(args: &MetricsArgs, configured: Option<&config::MetricsConfig>) -> Metrics {
    if args.no_metrics || configured.is_some_and(|m| !m.enabled) {
        return Metrics::disabled();
    }
    let namespace = args
        .metrics_namespace
        .clone()
        .or_else(|| configured.map(|m| m.namespace.clone()))
        .unwrap_or_else(|| metrics::NAMESPACE.to_owned());
    Metrics::start(namespace)
}

/// Publishes one PutMetricData for the whole command; a failure is a warning inside CodeBuild
/// (where users expect metrics) and silent elsewhere, never a failed command. False when the
/// datums were meant to go and did not (a later command may try again).
async fn finish_metrics(metrics: Metrics, events: &[metrics::Event]) -> bool {
    match metrics.publish(events).await {
        Published::NotSent { reason, hint, warn } => {
            if warn {
                output::warn("CloudWatch metrics not published", &reason, hint.as_deref());
            }
            false
        }
        Published::Sent { .. } | Published::Disabled | Published::NothingToSend => true,
    }
}

/// Runs a command's filesystem work (reading cachectl.toml, hashing lockfiles, the state
/// file) on the blocking pool, never on an async worker.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // A panic inside has already ended the process (error::install_panic_hook).
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task ran to its end")
}

/// Hands the trees a restore replaced to a background process (`cachectl remove-trash`), so
/// removing them never delays the build; removes them in place if no process can start.
fn remove_in_background(trash: Vec<PathBuf>) {
    if trash.is_empty() {
        return;
    }
    let spawned = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("remove-trash")
            .args(&trash)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    });
    if spawned.is_err() {
        for t in &trash {
            let _ = crate::archive::place::remove_tree(t);
        }
    }
}

/// `cachectl remove-trash DIR...`: removes what restores left as trash, and nothing else.
fn remove_trash(dirs: &[PathBuf]) -> Result<ExitStatus, Error> {
    for dir in dirs {
        let is_trash = dir.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(crate::archive::place::TRASH_PREFIX)
        });
        if is_trash {
            let _ = crate::archive::place::remove_tree(dir);
        }
    }
    Ok(ExitStatus::Success)
}

/// Working directory and home, the two anchors of every `--path`.
fn anchors() -> (PathBuf, Option<PathBuf>) {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os(env::HOME)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    (cwd, home)
}

/// The store `--store` (or `CACHECTL_STORE`, or the default directory) names.
async fn open_store(raw: Option<&str>) -> Result<Arc<dyn Store>, store::UrlError> {
    let xdg = std::env::var(env::XDG_CACHE_HOME).ok();
    let home = std::env::var(env::HOME).ok();
    let url = StoreUrl::parse(raw, xdg.as_deref(), home.as_deref())?;
    Ok(url.open().await)
}
