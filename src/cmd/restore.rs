//! `cachectl restore`: per cache, [`transfer::lookup`] (exact key, then restore-key prefixes)
//! and [`transfer::restore_entry`], the last use recorded beside the download; then the state
//! file a later save reads, and the metrics. Store trouble is a warning and outcome `error`
//! (exit 0 unless `--strict`), never a plain miss.

use super::jobs::{self, Job};
use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::error::{chain, Hint};
use crate::key::Scope;
use crate::outcome::{RestoreOutcome, RestoreReport};
use crate::progress::Progress;
use crate::store::{self, Store, UseRecord};
use crate::transfer;
use crate::units::{human_bytes, rate, thousands};
use crate::{metrics, output, state, timings};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub async fn run(g: &GlobalArgs, args: RestoreArgs) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let (cwd, _) = super::anchors();
    let (key, paths, restore_keys, config, caches, at) = (
        args.key.clone(),
        args.paths.clone(),
        args.restore_keys.clone(),
        g.config.clone(),
        args.select.caches.clone(),
        cwd.clone(),
    );
    let plan = super::blocking(move || {
        jobs::plan(
            key.as_ref(),
            &paths,
            &restore_keys,
            config.as_deref(),
            &caches,
            &at,
        )
    })
    .await?;
    // Credentials and the client resolve while the restore runs, off its critical path.
    let metrics = if args.lookup_only {
        metrics::Metrics::disabled()
    } else {
        super::start_metrics(&args.metrics, plan.metrics.as_ref())
    };
    let (scope, why) = super::build_scope(&plan.trust, &args.transfer)?;
    let trust = Arc::new(Trust {
        // An untrusted build starts from its own scope's entries, then the trusted ones; a
        // trusted build never looks at an untrusted scope.
        scopes: if scope.is_trusted() {
            vec![Scope::Trusted]
        } else {
            vec![scope.clone(), Scope::Trusted]
        },
        signatures: transfer::SignaturePolicy {
            keys: plan.trust.public_keys.clone(),
            required_in: plan.trust.signed_scopes(&scope),
        },
        scope,
    });
    if !trust.scope.is_trusted() {
        output::say(&format!(
            "restore: untrusted build ({why}): entries of scope {} first, then trusted ones",
            trust.scope
        ));
    }
    let reports = match super::open_store(g.store.as_deref()).await {
        Ok(store) => {
            // Caches run concurrently, but a cache whose path lies inside another cache's path
            // waits for that one: its tree must be placed after (and over) the outer tree.
            let (cwd, home) = super::anchors();
            let dests: Vec<Vec<std::path::PathBuf>> = plan
                .jobs
                .iter()
                .map(|job| {
                    job.destinations(&cwd, home.as_deref(), args.merge)
                        .map(|d| d.into_iter().map(|(p, _)| jobs::real_path(&p)).collect())
                        .unwrap_or_default()
                })
                .collect();
            let waves = jobs::waves(&dests);
            let mut reports: Vec<Option<RestoreReport>> = std::iter::repeat_with(|| None)
                .take(plan.jobs.len())
                .collect();
            for wave in waves {
                let runs = wave
                    .iter()
                    .map(|&i| restore_one(Arc::clone(&store), &plan.jobs[i], &trust, &args));
                let done = futures_util::future::join_all(runs).await;
                for (i, r) in wave.into_iter().zip(done) {
                    reports[i] = Some(r);
                }
            }
            reports
                .into_iter()
                .flatten()
                .collect::<Vec<RestoreReport>>()
        }
        Err(e) => plan
            .jobs
            .iter()
            .map(|job| failed_report(job, &Error::from(e.clone()), String::new(), &trust))
            .collect(),
    };
    if let Some(line) = timings::line(
        started.elapsed(),
        &[
            &timings::LOOKUP,
            &timings::FETCH_WAIT,
            &timings::HASH,
            &timings::DECODE_PARSE,
            &timings::QUEUE_WAIT,
            &timings::LARGE_FILES,
            &timings::WORKERS_BUSY,
            &timings::METADATA,
            &timings::COMMIT,
        ],
    ) {
        output::diagnostic(&line);
    }
    if !args.lookup_only {
        let config_file = super::jobs::config_file(g.config.as_deref(), &cwd);
        let records = plan
            .jobs
            .iter()
            .zip(&reports)
            .map(|(job, r)| {
                let rec = state::Recorded {
                    key: job.key.to_string(),
                    matched_key: r.matched_key.clone(),
                    outcome: r.outcome,
                    paths: job.paths.paths().to_vec(),
                    refused_exact: r.refused_exact,
                    config: (!job.explicit).then(|| config_file.clone()),
                    cwd: Some(cwd.clone()),
                    ambiguous: false,
                    placed: None,
                };
                (job.name.clone(), (rec, job.paths.clone()))
            })
            .collect::<Vec<_>>();
        let path = state::path(&cwd);
        let written = super::blocking({
            let (path, cwd) = (path.clone(), cwd.clone());
            move || {
                // What each restore placed: an entry holds only the paths that existed when it
                // was saved, and `run` checks that those are still there.
                let home = super::anchors().1;
                let records = records
                    .into_iter()
                    .map(|(name, (mut rec, paths))| {
                        if matches!(rec.outcome, RestoreOutcome::Hit | RestoreOutcome::Partial) {
                            rec.placed = Some(present(&paths, &cwd, home.as_deref()));
                        }
                        (name, rec)
                    })
                    .collect();
                state::record(&path, records)
            }
        })
        .await;
        if let Err(e) = written {
            output::warn(
                "restore",
                &format!("cannot record state in {}: {e}", path.display()),
                Some("save will check the store instead of trusting this restore"),
            );
        }
        let events: Vec<_> = plan
            .jobs
            .iter()
            .zip(&reports)
            .map(|(job, r)| metrics::Event::Restore {
                cache: job.name.clone(),
                outcome: r.outcome,
                seconds: r.seconds,
                bytes: r.bytes,
            })
            .collect();
        super::finish_metrics(metrics, &events).await;
    }
    if g.json {
        let worst = RestoreOutcome::worst(reports.iter().map(|r| r.outcome));
        output::reports(&reports, worst.as_str())?;
    }
    let errored = reports.iter().any(|r| r.outcome == RestoreOutcome::Error);
    let missed = reports
        .iter()
        .any(|r| matches!(r.outcome, RestoreOutcome::Miss | RestoreOutcome::Error));
    Ok(
        if (errored && args.transfer.strict) || (missed && args.fail_on_miss) {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        },
    )
}

/// The paths of `paths` that exist now, as they are.
fn present(
    paths: &crate::key::PathSet,
    cwd: &std::path::Path,
    home: Option<&std::path::Path>,
) -> Vec<state::Placed> {
    let Ok(dests) = paths.resolve(cwd, home) else {
        return Vec::new();
    };
    dests
        .iter()
        .zip(paths.paths())
        .filter_map(|(dest, path)| state::Placed::of(path, dest))
        .collect()
}

/// Where a restore looks and what it accepts.
struct Trust {
    /// The build's scope.
    scope: Scope,
    /// The scopes looked in, in order.
    scopes: Vec<Scope>,
    signatures: transfer::SignaturePolicy,
}

/// Fail-open: the warning line, and the report saying `error` with the cause and its fix.
fn failed_report(job: &Job, e: &Error, store: String, trust: &Trust) -> RestoreReport {
    output::warn_error(
        &format!("restore {} failed, continuing without the cache", job.name),
        e,
    );
    RestoreReport {
        message: Some(chain(e)),
        hint: e.hint(),
        scope: trust.scope.to_string(),
        ..RestoreReport::new(&job.name, job.key.as_str(), store)
    }
}

/// Restores one cache; store trouble becomes outcome `error` with its cause, never a panic.
async fn restore_one(
    store: Arc<dyn Store>,
    job: &Job,
    trust: &Trust,
    args: &RestoreArgs,
) -> RestoreReport {
    let started = Instant::now();
    let mut report = RestoreReport::new(&job.name, job.key.as_str(), store.describe());
    report.scope = trust.scope.to_string();
    let mut recorder = None;
    let result = restore(store, job, trust, args, &mut report, &mut recorder).await;
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(task) = recorder {
        finish_recording(&job.name, task).await;
    }
    let name = &job.name;
    match result {
        Ok(()) => {
            let mut matched = report.matched_key.clone().unwrap_or_default();
            // An untrusted build says which scope the entry came from.
            if let (false, Some(scope)) = (trust.scope.is_trusted(), &report.matched_scope) {
                matched = format!("{matched} (scope {scope})");
            }
            let verb = if args.lookup_only {
                "found"
            } else {
                "restored"
            };
            let human = match report.outcome {
                RestoreOutcome::Miss => format!("restore {name}: miss {}, nothing restored", job.key),
                outcome => format!(
                    "restore {name}: {} {matched}, {verb} {} ({} unpacked), {} files in {:.1} s ({})",
                    if outcome == RestoreOutcome::Hit {
                        "hit"
                    } else {
                        "partial hit"
                    },
                    human_bytes(report.bytes),
                    human_bytes(report.unpacked_bytes),
                    thousands(report.files),
                    report.seconds,
                    rate(report.bytes, started.elapsed()),
                ),
            };
            output::say(&human);
            report
        }
        Err(e) => {
            let mut failed = failed_report(job, &e, report.store, trust);
            failed.seconds = report.seconds;
            failed.refused_exact = report.refused_exact;
            failed
        }
    }
}

/// How long a restore that is otherwise done waits for its use record to be written.
const RECORD_USE_BUDGET: Duration = Duration::from_secs(2);

/// Waits (briefly) for the use record; a failure is worth a note, never a failed restore.
async fn finish_recording(cache: &str, task: JoinHandle<Result<(), store::Error>>) {
    let why = match tokio::time::timeout(RECORD_USE_BUDGET, task).await {
        Ok(Ok(Ok(()))) => return,
        Ok(Ok(Err(e))) => chain(&e),
        Ok(Err(e)) => format!("recording task failed: {e}"),
        Err(_) => format!("no answer within {} s", RECORD_USE_BUDGET.as_secs()),
    };
    output::note(&format!(
        "restore {cache}: last use not recorded (prune may judge the entry unused): {why}"
    ));
}

/// Tries the candidates best first (exact key, then each restore key's entries newest first)
/// until one restores; a damaged or refused entry is named in a warning and the next one is
/// tried. Only an entry that was restored records a use, so a broken one never looks used.
async fn restore(
    store: Arc<dyn Store>,
    job: &Job,
    trust: &Trust,
    args: &RestoreArgs,
    report: &mut RestoreReport,
    recorder: &mut Option<JoinHandle<Result<(), store::Error>>>,
) -> Result<(), Error> {
    let (cwd, home) = super::anchors();
    let dests = job.destinations(&cwd, home.as_deref(), args.merge)?;
    let mut candidates = transfer::Candidates::new(
        store.as_ref(),
        &trust.scopes,
        &job.paths,
        &job.key,
        &job.restore_keys,
    )
    .within(args.transfer.lookup_timeout);
    let mut refused = None;
    while let Some((entry, outcome)) = candidates.next().await? {
        if let Some(e) = refused.take() {
            output::warn_error(
                &format!(
                    "restore {}: skipped a bad entry, trying the next one",
                    job.name
                ),
                &e,
            );
        }
        report.matched_key = Some(entry.name.key.clone());
        report.matched_scope = Some(entry.name.scope.to_string());
        report.bytes = entry.size;
        if args.lookup_only {
            report.outcome = outcome;
            return Ok(());
        }
        let opts = transfer::Options {
            signatures: trust.signatures.clone(),
            ..super::transfer_options(&args.transfer)
        };
        let progress = Progress::new(format!("restore {}", job.name), entry.size);
        let restored = transfer::restore_entry(
            Arc::clone(&store),
            &entry,
            &job.paths,
            dests.clone(),
            &opts,
            progress.clone(),
        )
        .await;
        progress.finish();
        match restored {
            Ok(transfer::Restored { stats, trash }) => {
                super::remove_in_background(trash);
                // Written while the command finishes (state file, metrics); waited for at the
                // end within a budget (docs/FORMAT.md, "Last use").
                *recorder = Some(tokio::spawn({
                    let store = Arc::clone(&store);
                    let used = UseRecord::at(entry.name.clone(), crate::time::now());
                    async move { store.record_use(&used).await }
                }));
                report.files = stats.entries;
                report.unpacked_bytes = stats.file_bytes;
                report.outcome = outcome;
                return Ok(());
            }
            Err(e @ transfer::Error::BadEntry { .. }) => {
                // The build's own save may replace it (a trusted build with the key heals a
                // planted or damaged entry; see save's `refused_exact`).
                if outcome == RestoreOutcome::Hit && entry.name.scope == trust.scope {
                    report.refused_exact = true;
                }
                refused = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    report.matched_key = None;
    report.matched_scope = None;
    report.bytes = 0;
    match refused {
        // Every candidate was bad: an error naming the last one, never a quiet miss.
        Some(e) => Err(e.into()),
        None => {
            report.outcome = RestoreOutcome::Miss;
            Ok(())
        }
    }
}
