//! `cachectl run --cache NAME -- COMMAND...`: skip the install step a cache replaces when this
//! build's restore of it was an exact hit that still holds, else run it
//! ([`crate::subprocess`]) and time it; record the time in the restore → save state and publish
//! it as `InstallSeconds`, which `stats` turns into time saved. cachectl's own trouble (state,
//! configuration, metrics) never changes how the build ends: in doubt, the command runs.

use super::{jobs, Error, ExitStatus};
use crate::cli::{GlobalArgs, RunArgs};
use crate::config::{self, MetricsConfig};
use crate::key::PathSet;
use crate::outcome::RestoreOutcome;
use crate::subprocess::{self, Ended};
use crate::{metrics, output, state};
use serde::Serialize;
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
    /// The command's exit code (126, 127: it could not start); null when skipped or killed.
    exit_code: Option<i32>,
    /// The signal that killed it.
    signal: Option<i32>,
}

/// Whether the restored trees still are what an exact hit promised, checked now.
#[derive(Debug, Default, PartialEq, Eq)]
struct Check {
    /// The cache's key and paths resolved again from the restore's cachectl.toml and directory
    /// (`None` for a plain `--key` restore: nothing to resolve), or why that failed.
    current: Option<Result<(String, Vec<String>), String>>,
    /// A cache path the restore placed that is gone.
    missing: Option<String>,
    /// Why the restore was not for this run: made in another directory (not this one or one
    /// above it), or from another cachectl.toml than `--config` names.
    elsewhere: Option<String>,
}

/// Run or skip, why (one line), and the restore outcome the install counts under.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    run: bool,
    reason: String,
    /// `InstallSeconds`' RestoreOutcome: what the command found, which is not the restore's
    /// outcome when the restored tree no longer fits.
    start: Option<RestoreOutcome>,
}

impl Decision {
    fn run(reason: String, start: Option<RestoreOutcome>) -> Decision {
        Decision {
            run: true,
            reason,
            start,
        }
    }
}

pub async fn run(g: &GlobalArgs, args: RunArgs) -> Result<ExitStatus, Error> {
    let (cwd, home) = super::anchors();
    let state_path = state::path(&cwd);
    let (recorded, pending, check, metrics_config) = super::blocking({
        let (name, config, state_path) = (args.cache.clone(), g.config.clone(), state_path.clone());
        move || {
            let mut state = state::load(&state_path);
            let recorded = state.caches.remove(&name);
            let check = recorded
                .as_ref()
                .filter(|r| r.outcome == RestoreOutcome::Hit)
                .map(|r| {
                    let config = config.as_deref().map(|c| jobs::config_file(Some(c), &cwd));
                    Check {
                        elsewhere: elsewhere(r, &cwd, config.as_deref()),
                        ..check(&name, r, &cwd, home.as_deref())
                    }
                })
                .unwrap_or_default();
            let config_file = recorded
                .as_ref()
                .and_then(|r| r.config.clone())
                .unwrap_or_else(|| jobs::config_path(config.as_deref(), &cwd));
            let metrics = metrics_config(&name, &config_file, recorded.is_some());
            (recorded, state.pending, check, metrics)
        }
    })
    .await;
    let shown = shown(&args.command);
    let decision = decide(&args.cache, recorded.as_ref(), &check, args.always);
    let restore = recorded.as_ref().map(|r| r.outcome);
    // The CloudWatch lookup overlaps the command, so publishing at the end is one request.
    let metrics = super::start_metrics(&args.metrics, metrics_config.as_ref());
    let report = |ran, reason: String, seconds, exit_code, signal| RunReport {
        cache: args.cache.clone(),
        restore,
        ran,
        reason,
        seconds,
        exit_code,
        signal,
    };
    if !decision.run {
        output::say(&format!("run: skipping `{shown}`: {}", decision.reason));
        // A skipped install is one of 0 seconds: the hot installs `stats` reads.
        let install = state::Install {
            cache: args.cache.clone(),
            restore: decision.start,
            seconds: 0.0,
        };
        let run = state::Run {
            restore: decision.start,
            ran: false,
            seconds: 0.0,
            exit_code: None,
            published: false,
        };
        finish(
            &state_path,
            &args.cache,
            run,
            pending,
            Some(install),
            metrics,
        )
        .await;
        if g.json {
            output::json(&report(false, decision.reason, 0.0, None, None))?;
        }
        return Ok(ExitStatus::Success);
    }
    output::say(&format!("run: {}: running `{shown}`", decision.reason));
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let (ended, seconds) = match subprocess::run(program, rest).await {
        Ok(done) => done,
        Err(e) => {
            let hint = crate::error::Hint::hint(&e);
            output::error_line(
                &format!("run: {}", crate::error::chain(&e)),
                hint.as_deref(),
            );
            let code = e.shell_code();
            if g.json {
                let why = crate::error::chain(&e);
                output::json(&report(false, why, 0.0, Some(i32::from(code)), None))?;
            }
            return Ok(ExitStatus::Command(code));
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
    let install = (ended == Ended::Exited(0)).then(|| state::Install {
        cache: args.cache.clone(),
        restore: decision.start,
        seconds,
    });
    let run = state::Run {
        restore: decision.start,
        ran: true,
        seconds,
        exit_code,
        published: install.is_none(),
    };
    let stopped = tokio::select! {
        () = finish(&state_path, &args.cache, run, pending, install, metrics) => None,
        // Publishing waits up to 2 s for CloudWatch: a stop meanwhile ends cachectl, as it
        // would any other command.
        code = crate::signal::interrupted() => Some(code),
    };
    if let Some(code) = stopped {
        return Ok(ExitStatus::Command(code));
    }
    if g.json {
        // The command's output may not end with a newline: the report is a line of its own.
        output::print("\n")?;
        output::json(&report(true, decision.reason, seconds, exit_code, signal))?;
    }
    subprocess::end_like(ended);
    Ok(ExitStatus::Command(ended.shell_code()))
}

/// Whether to run the command, from this build's restore of the cache (`recorded`) and what
/// [`check`] found now.
fn decide(
    cache: &str,
    recorded: Option<&state::Recorded>,
    check: &Check,
    always: bool,
) -> Decision {
    let Some(rec) = recorded else {
        return Decision::run(
            format!("no restore of cache {cache} is recorded in this build"),
            None,
        );
    };
    let matched = rec.matched_key.as_deref().unwrap_or("?");
    match rec.outcome {
        RestoreOutcome::Hit => {
            let partial = Some(RestoreOutcome::Partial);
            if let Some(why) = &check.elsewhere {
                return Decision::run(format!("cache {cache} {why}"), None);
            }
            if rec.ambiguous {
                return Decision::run(
                    format!("restores of this build recorded cache {cache} from other places, files or keys, so which tree is meant is not known"),
                    partial,
                );
            }
            match &check.current {
                Some(Err(why)) => {
                    return Decision::run(
                        format!("cache {cache}'s key cannot be checked now ({why})"),
                        Some(RestoreOutcome::Hit),
                    )
                }
                Some(Ok((key, _))) if *key != rec.key => {
                    return Decision::run(
                        format!(
                            "cache {cache}'s key changed since its restore ({} then, {key} now: a file in the key changed)",
                            rec.key
                        ),
                        partial,
                    )
                }
                Some(Ok((_, paths))) if *paths != rec.paths => {
                    return Decision::run(
                        format!("cache {cache}'s paths changed since its restore"),
                        partial,
                    )
                }
                _ => {}
            }
            if let Some(path) = &check.missing {
                return Decision::run(
                    format!("{path} of cache {cache} is gone or changed since its restore"),
                    Some(RestoreOutcome::Miss),
                );
            }
            if always {
                Decision::run(
                    format!("exact hit on cache {cache} ({matched}), --always"),
                    Some(RestoreOutcome::Hit),
                )
            } else {
                Decision {
                    run: false,
                    reason: format!("cache {cache} restored its exact key ({matched})"),
                    start: Some(RestoreOutcome::Hit),
                }
            }
        }
        RestoreOutcome::Partial => Decision::run(
            format!(
                "partial hit on cache {cache} (restored {matched}, not {})",
                rec.key
            ),
            Some(RestoreOutcome::Partial),
        ),
        RestoreOutcome::Miss => Decision::run(
            format!("cache {cache} missed ({})", rec.key),
            Some(RestoreOutcome::Miss),
        ),
        RestoreOutcome::Error => Decision::run(
            format!("the restore of cache {cache} failed, nothing was restored"),
            Some(RestoreOutcome::Error),
        ),
    }
}

/// Resolves the cache's key again from the cachectl.toml and directory of its restore, and
/// looks for the paths it placed.
fn check(name: &str, rec: &state::Recorded, cwd: &Path, home: Option<&Path>) -> Check {
    let at = rec.cwd.as_deref().unwrap_or(cwd);
    let current = rec.config.as_ref().map(|config| {
        let plan = jobs::plan(None, &[], &[], Some(config), &[name.to_owned()], at);
        match plan {
            Ok(plan) => match plan.jobs.into_iter().next() {
                Some(job) => Ok((job.key.to_string(), job.paths.paths().to_vec())),
                None => Err(format!("{} has no cache {name}", config.display())),
            },
            Err(e) => Err(crate::error::chain(&e)),
        }
    });
    // Only what the restore placed (a path the entry never held is not missing), and as it
    // placed it: made again, emptied at its top or replaced, it is not the restored tree.
    let placed = rec.placed.clone().unwrap_or_default();
    let names: Vec<&str> = placed.iter().map(|p| p.path.as_str()).collect();
    let missing = match PathSet::new(&names).and_then(|set| set.resolve(at, home)) {
        Ok(dests) => placed
            .iter()
            .zip(&dests)
            .find(|(p, dest)| !p.still_at(dest))
            .map(|(p, _)| p.path.clone()),
        Err(_) => placed.first().map(|p| p.path.clone()),
    };
    Check {
        current,
        missing,
        elsewhere: None,
    }
}

/// Why the restore recorded in `rec` is not one this run, in `cwd` with `--config` `config`,
/// may go by: a restore in a sibling package's directory restored that package's tree.
fn elsewhere(rec: &state::Recorded, cwd: &Path, config: Option<&Path>) -> Option<String> {
    if let Some(at) = rec.cwd.as_deref() {
        if !cwd.starts_with(at) {
            return Some(format!(
                "was restored in {}, not here or above",
                at.display()
            ));
        }
    }
    match (config, rec.config.as_deref()) {
        (Some(here), Some(there)) if here != there => Some(format!(
            "was restored from {}, not {}",
            there.display(),
            here.display()
        )),
        _ => None,
    }
}

/// The `[metrics]` settings of `config_file`, warning when it does not load or does not
/// configure the cache (unless a restore of it was recorded: a plain `--key` cache).
fn metrics_config(name: &str, config_file: &Path, restored: bool) -> Option<MetricsConfig> {
    if !config_file.exists() {
        return None;
    }
    match config::load(config_file) {
        Ok(cfg) => {
            if !restored && !cfg.caches.iter().any(|c| c.name == name) {
                let known: Vec<&str> = cfg.caches.iter().map(|c| c.name.as_str()).collect();
                output::warn(
                    &format!("run {name}"),
                    &format!(
                        "no cache `{name}` in {} and no restore of it recorded in this build",
                        config_file.display()
                    ),
                    Some(&format!("configured caches: {}", known.join(", "))),
                );
            }
            Some(cfg.metrics)
        }
        Err(e) => {
            output::warn_error(
                &format!("run {name}: cannot read {}", config_file.display()),
                &Error::from(e),
            );
            None
        }
    }
}

/// Records the run, with `install` pending, then publishes it with the install times earlier
/// runs could not send and drops what went from the pending ones. Recorded first, so a stop
/// while publishing leaves the time for the next run or save. Never fails: a state that cannot
/// be written is a warning.
async fn finish(
    path: &Path,
    cache: &str,
    run: state::Run,
    pending: Vec<state::Install>,
    install: Option<state::Install>,
    metrics: metrics::Metrics,
) {
    let path = PathBuf::from(path);
    let written = super::blocking({
        let (path, cache, install) = (path.clone(), cache.to_owned(), install.clone());
        move || state::record_run(&path, &cache, run, install)
    })
    .await;
    if let Err(e) = written {
        output::warn(
            "run",
            &format!("cannot record the run in {}: {e}", path.display()),
            None,
        );
    }
    let mut sending = pending;
    sending.extend(install);
    let events: Vec<metrics::Event> = sending
        .iter()
        .map(|p| metrics::Event::Install {
            cache: p.cache.clone(),
            restore: p.restore,
            seconds: p.seconds,
        })
        .collect();
    if super::finish_metrics(metrics, &events).await && !sending.is_empty() {
        let _ = super::blocking(move || state::sent(&path, &sending)).await;
    }
}

/// The command as a log line shows it, quoted so it can be pasted into a shell; cut at 80
/// characters.
fn shown(command: &[std::ffi::OsString]) -> String {
    let quote = |a: &std::ffi::OsString| {
        let a = a.to_string_lossy();
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
        if plain {
            a.into_owned()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    let joined = command.iter().map(quote).collect::<Vec<_>>().join(" ");
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
            config: Some("/src/cachectl.toml".into()),
            cwd: Some("/src".into()),
            ambiguous: false,
            placed: None,
        }
    }

    fn now(key: &str, paths: &[&str]) -> Check {
        Check {
            current: Some(Ok((
                key.to_owned(),
                paths.iter().map(|p| (*p).to_owned()).collect(),
            ))),
            missing: None,
            elsewhere: None,
        }
    }

    #[test]
    fn runs_unless_the_restore_was_an_exact_hit_that_still_holds() {
        use RestoreOutcome::{Error, Hit, Miss, Partial};
        let hit = rec(Hit, "npm-a", Some("npm-a"));
        let ambiguous = state::Recorded {
            ambiguous: true,
            config: None,
            ..hit.clone()
        };
        let nm = &["node_modules"][..];
        let gone = Check {
            missing: Some("node_modules".into()),
            ..now("npm-a", nm)
        };
        let unresolvable = Check {
            current: Some(Err("deps.lock: no such file".into())),
            missing: None,
            elsewhere: None,
        };
        type Case<'a> = (
            &'a str,
            Option<state::Recorded>,
            Check,
            bool,
            Option<&'a str>,
            &'a str,
            Option<RestoreOutcome>,
        );
        let cases: Vec<Case> = vec![
            ("exact hit", Some(hit.clone()), now("npm-a", nm), false, None, "cache npm restored its exact key (npm-a)", Some(Hit)),
            ("exact hit of a plain --key restore", Some(hit.clone()), Check::default(), false, None, "cache npm restored its exact key (npm-a)", Some(Hit)),
            ("exact hit, --always", Some(hit.clone()), now("npm-a", nm), true, Some("run"), "exact hit on cache npm (npm-a), --always", Some(Hit)),
            ("lockfile changed after the restore", Some(hit.clone()), now("npm-b", nm), false, Some("run"), "cache npm's key changed since its restore (npm-a then, npm-b now: a file in the key changed)", Some(Partial)),
            ("paths changed after the restore", Some(hit.clone()), now("npm-a", &["node_modules", "~/.npm"]), false, Some("run"), "cache npm's paths changed since its restore", Some(Partial)),
            ("key cannot be resolved now", Some(hit.clone()), unresolvable, false, Some("run"), "cache npm's key cannot be checked now (deps.lock: no such file)", Some(Hit)),
            ("restored tree deleted since", Some(hit.clone()), gone, false, Some("run"), "node_modules of cache npm is gone or changed since its restore", Some(Miss)),
            ("two restores under one name", Some(ambiguous), Check::default(), false, Some("run"), "restores of this build recorded cache npm from other places, files or keys, so which tree is meant is not known", Some(Partial)),
            ("partial", Some(rec(Partial, "npm-b", Some("npm-a"))), Check::default(), false, Some("run"), "partial hit on cache npm (restored npm-a, not npm-b)", Some(Partial)),
            ("miss", Some(rec(Miss, "npm-b", None)), Check::default(), false, Some("run"), "cache npm missed (npm-b)", Some(Miss)),
            ("store error", Some(rec(Error, "npm-b", None)), Check::default(), false, Some("run"), "the restore of cache npm failed, nothing was restored", Some(Error)),
            ("no restore", None, Check::default(), false, Some("run"), "no restore of cache npm is recorded in this build", None),
            ("restored in a sibling directory", Some(hit.clone()), Check { elsewhere: Some("was restored in /src/fe, not here or above".into()), ..now("npm-a", nm) }, false, Some("run"), "cache npm was restored in /src/fe, not here or above", None),
        ];
        for (name, recorded, check, always, run, reason, start) in cases {
            let want = Decision {
                run: run.is_some(),
                reason: reason.into(),
                start,
            };
            assert_eq!(
                decide("npm", recorded.as_ref(), &check, always),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn restores_count_here_and_below_and_from_the_same_file() {
        let rec = rec(RestoreOutcome::Hit, "npm-a", Some("npm-a"));
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(elsewhere(&rec, &p("/src"), None), None);
        assert_eq!(elsewhere(&rec, &p("/src/sub/dir"), None), None);
        assert_eq!(
            elsewhere(&rec, &p("/srcx"), None).as_deref(),
            Some("was restored in /src, not here or above")
        );
        assert_eq!(
            elsewhere(&rec, &p("/"), None).as_deref(),
            Some("was restored in /src, not here or above")
        );
        assert_eq!(
            elsewhere(&rec, &p("/src"), Some(&p("/src/cachectl.toml"))),
            None
        );
        assert_eq!(
            elsewhere(&rec, &p("/src"), Some(&p("/src/ci.toml"))).as_deref(),
            Some("was restored from /src/cachectl.toml, not /src/ci.toml")
        );
    }

    #[test]
    fn commands_are_shown_quoted_and_cut() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(shown(&args(&["npm", "ci"])), "npm ci");
        assert_eq!(
            shown(&args(&["sh", "-c", "mkdir -p x && echo 'hi'", ""])),
            r"sh -c 'mkdir -p x && echo '\''hi'\''' ''"
        );
        assert_eq!(shown(&args(&[&"x".repeat(100)])).chars().count(), 80);
    }
}
