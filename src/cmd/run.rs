//! `cachectl run --cache NAME -- COMMAND...`: skip the install step a cache replaces when this
//! build's restore of it was an exact hit, else run it ([`crate::subprocess`]) and time it;
//! record the time in the restore → save state and publish it as `InstallSeconds`, which
//! `stats` turns into time saved. cachectl's own trouble (state, configuration, metrics) never
//! changes what the command does or how the build ends: in doubt, the command runs.

use super::{jobs, Error, ExitStatus};
use crate::cli::{GlobalArgs, RunArgs};
use crate::config::{self, MetricsConfig};
use crate::outcome::RestoreOutcome;
use crate::subprocess::{self, Ended};
use crate::{metrics, output, state};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `--json` object (the last line of stdout, after the command's own output).
#[derive(Debug, Serialize)]
struct RunReport {
    cache: String,
    /// The outcome of this build's restore of the cache; null when none is recorded.
    restore: Option<RestoreOutcome>,
    ran: bool,
    /// Why it ran or was skipped.
    reason: String,
    /// Wall-clock seconds of the command (0 when skipped).
    seconds: f64,
    /// The command's exit code; null when skipped or killed by a signal.
    exit_code: Option<i32>,
    /// The signal that killed it.
    signal: Option<i32>,
}

/// What cachectl.toml says about the cache now.
enum Configured {
    /// No cachectl.toml.
    NoFile,
    /// The cache's key and paths, resolved now.
    Cache { key: String, paths: Vec<String> },
    /// cachectl.toml has no such cache.
    Unknown { path: PathBuf, known: Vec<String> },
    /// cachectl.toml does not load or the cache does not resolve.
    Broken(Error),
}

/// Run or skip, and why (one line).
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Skip(String),
    Run(String),
}

pub async fn run(g: &GlobalArgs, args: RunArgs) -> Result<ExitStatus, Error> {
    let (cwd, _) = super::anchors();
    let (name, config) = (args.cache.clone(), g.config.clone());
    let state_path = state::path(&cwd);
    let (configured, metrics_config, recorded) = super::blocking({
        let state_path = state_path.clone();
        move || {
            let (configured, metrics) = configured(&name, config.as_deref(), &cwd);
            let recorded = state::load(&state_path).caches.remove(&name);
            (configured, metrics, recorded)
        }
    })
    .await;
    let shown = shown(&args.command);
    match &configured {
        Configured::Broken(e) => output::warn_error(
            &format!("run {}: cannot read the cache's configuration", args.cache),
            e,
        ),
        Configured::Unknown { path, known } if recorded.is_none() => output::warn(
            &format!("run {}", args.cache),
            &format!(
                "no cache `{}` in {} and no restore of it recorded in this build",
                args.cache,
                path.display()
            ),
            Some(&format!("configured caches: {}", known.join(", "))),
        ),
        _ => {}
    }
    let current = match &configured {
        Configured::Cache { key, paths } => Some((key.as_str(), paths.as_slice())),
        _ => None,
    };
    let decision = decide(&args.cache, recorded.as_ref(), current, args.always);
    let restore = recorded.as_ref().map(|r| r.outcome);
    let reason = match decision {
        Decision::Skip(reason) => {
            output::say(&format!("run: skipping `{shown}`: {reason}"));
            let run = state::Run {
                restore,
                ran: false,
                seconds: 0.0,
                exit_code: None,
                published: true,
            };
            record(&state_path, &args.cache, run).await;
            if g.json {
                output::json(&RunReport {
                    cache: args.cache.clone(),
                    restore,
                    ran: false,
                    reason,
                    seconds: 0.0,
                    exit_code: None,
                    signal: None,
                })?;
            }
            return Ok(ExitStatus::Success);
        }
        Decision::Run(reason) => reason,
    };
    output::say(&format!("run: {reason}: running `{shown}`"));
    // The CloudWatch lookup overlaps the command, so publishing at the end is one request.
    let metrics = super::start_metrics(&args.metrics, metrics_config.as_ref());
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let (ended, seconds) = match subprocess::run(program, rest).await {
        Ok(done) => done,
        Err(e) => {
            output::error_line(
                &format!("run: {}", crate::error::chain(&e)),
                crate::error::Hint::hint(&e).as_deref(),
            );
            return Ok(ExitStatus::Command(e.shell_code()));
        }
    };
    let (exit_code, signal) = match ended {
        Ended::Exited(code) => (Some(code), None),
        Ended::Signaled(sig) => (None, Some(sig)),
    };
    let how = match ended {
        Ended::Exited(code) => format!("exit {code}"),
        Ended::Signaled(sig) => format!("killed by signal {sig}"),
    };
    output::say(&format!("run: `{shown}` took {seconds:.1} s ({how})"));
    // Only a command that succeeded measured an install; a failed one says nothing about what
    // the cache saves.
    let published = if ended == Ended::Exited(0) {
        let event = metrics::Event::Install {
            cache: args.cache.clone(),
            restore,
            seconds,
        };
        super::finish_metrics(metrics, &[event]).await
    } else {
        true
    };
    let run = state::Run {
        restore,
        ran: true,
        seconds,
        exit_code,
        published,
    };
    record(&state_path, &args.cache, run).await;
    if g.json {
        output::json(&RunReport {
            cache: args.cache.clone(),
            restore,
            ran: true,
            reason,
            seconds,
            exit_code,
            signal,
        })?;
    }
    subprocess::end_like(ended);
    Ok(ExitStatus::Command(ended.shell_code()))
}

/// Whether to run the command, from this build's restore of the cache (`recorded`) and the
/// cache's key and paths as they resolve now (`current`, when cachectl.toml configures it).
fn decide(
    cache: &str,
    recorded: Option<&state::Recorded>,
    current: Option<(&str, &[String])>,
    always: bool,
) -> Decision {
    let Some(rec) = recorded else {
        return Decision::Run(format!(
            "no restore of cache {cache} is recorded in this build"
        ));
    };
    let matched = rec.matched_key.as_deref().unwrap_or("?");
    match rec.outcome {
        RestoreOutcome::Hit => {
            if let Some((key, paths)) = current {
                if key != rec.key {
                    return Decision::Run(format!(
                        "cache {cache}'s key changed since its restore ({} then, {key} now: a file in the key changed)",
                        rec.key
                    ));
                }
                if paths != rec.paths.as_slice() {
                    return Decision::Run(format!(
                        "cache {cache}'s paths changed since its restore"
                    ));
                }
            }
            if always {
                Decision::Run(format!("exact hit on cache {cache} ({matched}), --always"))
            } else {
                Decision::Skip(format!("cache {cache} restored its exact key ({matched})"))
            }
        }
        RestoreOutcome::Partial => Decision::Run(format!(
            "partial hit on cache {cache} (restored {matched}, not {})",
            rec.key
        )),
        RestoreOutcome::Miss => Decision::Run(format!("cache {cache} missed ({})", rec.key)),
        RestoreOutcome::Error => Decision::Run(format!(
            "the restore of cache {cache} failed, nothing was restored"
        )),
    }
}

/// The cache as cachectl.toml has it now, and its `[metrics]` settings.
fn configured(
    name: &str,
    config: Option<&Path>,
    cwd: &Path,
) -> (Configured, Option<MetricsConfig>) {
    let path = jobs::config_path(config, cwd);
    if !path.exists() {
        return (Configured::NoFile, None);
    }
    let cfg = match config::load(&path) {
        Ok(cfg) => cfg,
        Err(e) => return (Configured::Broken(e.into()), None),
    };
    let metrics = Some(cfg.metrics.clone());
    if !cfg.caches.iter().any(|c| c.name == name) {
        let known = cfg.caches.iter().map(|c| c.name.clone()).collect();
        return (Configured::Unknown { path, known }, metrics);
    }
    let configured = match jobs::plan(None, &[], &[], Some(&path), &[name.to_owned()], cwd) {
        Ok(plan) => match plan.jobs.into_iter().next() {
            Some(job) => Configured::Cache {
                key: job.key.to_string(),
                paths: job.paths.paths().to_vec(),
            },
            None => Configured::NoFile,
        },
        Err(e) => Configured::Broken(e),
    };
    (configured, metrics)
}

/// Records the run in the state file; a failure is a warning (the command already ran).
async fn record(path: &Path, cache: &str, run: state::Run) {
    let written = super::blocking({
        let path = path.to_path_buf();
        let runs = BTreeMap::from([(cache.to_owned(), run)]);
        move || state::record_runs(&path, runs)
    })
    .await;
    if let Err(e) = written {
        output::warn(
            "run",
            &format!("cannot record the run in {}: {e}", path.display()),
            None,
        );
    }
}

/// The command as a log line shows it: arguments joined by spaces, cut at 80 characters.
fn shown(command: &[std::ffi::OsString]) -> String {
    let joined = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.chars().count() > 80 {
        let cut: String = joined.chars().take(77).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(outcome: RestoreOutcome, key: &str, matched: Option<&str>) -> state::Recorded {
        state::Recorded {
            key: key.into(),
            matched_key: matched.map(Into::into),
            outcome,
            paths: vec!["node_modules".into()],
            refused_exact: false,
        }
    }

    #[test]
    fn runs_unless_the_restore_was_an_exact_hit_for_the_key_of_now() {
        let paths = vec!["node_modules".to_owned()];
        let other_paths = vec!["node_modules".to_owned(), "~/.npm".to_owned()];
        let hit = rec(RestoreOutcome::Hit, "npm-a", Some("npm-a"));
        type Case<'a> = (
            &'a str,
            Option<state::Recorded>,
            Option<(&'a str, &'a [String])>,
            bool,
            Decision,
        );
        let cases: Vec<Case> = vec![
            (
                "exact hit",
                Some(hit.clone()),
                Some(("npm-a", &paths)),
                false,
                Decision::Skip("cache npm restored its exact key (npm-a)".into()),
            ),
            (
                "exact hit of a plain --key restore",
                Some(hit.clone()),
                None,
                false,
                Decision::Skip("cache npm restored its exact key (npm-a)".into()),
            ),
            (
                "exact hit, --always",
                Some(hit.clone()),
                Some(("npm-a", &paths)),
                true,
                Decision::Run("exact hit on cache npm (npm-a), --always".into()),
            ),
            (
                "lockfile changed after the restore",
                Some(hit.clone()),
                Some(("npm-b", &paths)),
                false,
                Decision::Run("cache npm's key changed since its restore (npm-a then, npm-b now: a file in the key changed)".into()),
            ),
            (
                "paths changed after the restore",
                Some(hit.clone()),
                Some(("npm-a", &other_paths)),
                false,
                Decision::Run("cache npm's paths changed since its restore".into()),
            ),
            (
                "partial",
                Some(rec(RestoreOutcome::Partial, "npm-b", Some("npm-a"))),
                Some(("npm-b", &paths)),
                false,
                Decision::Run("partial hit on cache npm (restored npm-a, not npm-b)".into()),
            ),
            (
                "miss",
                Some(rec(RestoreOutcome::Miss, "npm-b", None)),
                Some(("npm-b", &paths)),
                false,
                Decision::Run("cache npm missed (npm-b)".into()),
            ),
            (
                "store error",
                Some(rec(RestoreOutcome::Error, "npm-b", None)),
                Some(("npm-b", &paths)),
                false,
                Decision::Run("the restore of cache npm failed, nothing was restored".into()),
            ),
            (
                "no restore",
                None,
                Some(("npm-b", &paths)),
                false,
                Decision::Run("no restore of cache npm is recorded in this build".into()),
            ),
        ];
        for (name, recorded, current, always, want) in cases {
            assert_eq!(
                decide("npm", recorded.as_ref(), current, always),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn long_commands_are_cut_for_the_log() {
        let long: Vec<std::ffi::OsString> = vec!["x".repeat(100).into()];
        assert_eq!(shown(&long).chars().count(), 80);
        assert_eq!(shown(&["npm".into(), "ci".into()]), "npm ci");
    }
}
