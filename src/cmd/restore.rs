//! `cachectl restore`: look up (exact key, then restore-key prefixes), then ranged GETs ->
//! blake3 -> zstd -> tar -> files in staging, moved into place only after the digest matches.

use super::jobs::{self, Job};
use super::Failure;
use crate::archive::{self, place::Staged, unpack};
use crate::cli::RestoreArgs;
use crate::error::code;
use crate::key::EntryName;
use crate::metrics;
use crate::output::{self, human_bytes, thousands, RestoreOutcome, RestoreReport};
use crate::progress::Progress;
use crate::state;
use crate::store::{self, EntryInfo, Store, UseRecord};
use crate::timings;
use crate::transfer::{self, VerifyingReader};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub async fn run(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    super::set_verbosity(&args.report);
    let (cwd, _) = super::anchors();
    let plan = match jobs::plan(
        args.key.as_ref(),
        &args.paths,
        &args.restore_keys,
        &args.select,
        &cwd,
    ) {
        Ok(p) => p,
        Err(e) => return super::plan_failed(e),
    };
    // Credentials and the client resolve while the restore runs, off its critical path.
    let metrics = super::start_metrics(&args.report, &plan);
    let reports = match super::open_store(args.store.store.as_deref()).await {
        Ok(store) => {
            let runs = plan
                .jobs
                .iter()
                .map(|job| restore_one(Arc::clone(&store), job, &args));
            futures_util::future::join_all(runs).await
        }
        Err(f) => plan
            .jobs
            .iter()
            .map(|job| failed_report(job, &f, String::new()))
            .collect(),
    };
    timings::report(
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
    );
    if !args.lookup_only {
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
                };
                (job.name.clone(), rec)
            })
            .collect();
        let path = state::path(&cwd);
        if let Err(e) = state::record(&path, records) {
            output::warn(
                "restore",
                &format!("cannot record state in {}: {e}", path.display()),
                Some("save will check the store instead of trusting this restore"),
            );
        }
    }
    let events: Vec<_> = plan
        .jobs
        .iter()
        .zip(&reports)
        .map(|(job, r)| metrics::Event::Restore {
            cache: job.name.clone(),
            outcome: r.outcome,
            seconds: r.seconds,
            bytes: if args.lookup_only { 0 } else { r.bytes },
        })
        .collect();
    if !args.lookup_only {
        super::finish_metrics(metrics, &events).await;
    }
    let worst = RestoreOutcome::worst(reports.iter().map(|r| r.outcome));
    output::emit_json(args.store.json, &reports, worst.as_str());
    let errored = reports.iter().any(|r| r.outcome == RestoreOutcome::Error);
    let missed = reports
        .iter()
        .any(|r| matches!(r.outcome, RestoreOutcome::Miss | RestoreOutcome::Error));
    let status = if (errored && args.store.strict) || (missed && args.fail_on_miss) {
        code::FAILED
    } else {
        code::OK
    };
    ExitCode::from(status)
}

fn failed_report(job: &Job, f: &Failure, store: String) -> RestoreReport {
    output::warn(
        &format!("restore {} failed, continuing without the cache", job.name),
        &f.cause,
        f.hint.as_deref(),
    );
    RestoreReport {
        message: Some(f.message()),
        ..RestoreReport::new(&job.name, job.key.as_str(), store)
    }
}

/// Restores one cache; store trouble becomes outcome `error` with its cause, never a panic.
async fn restore_one(store: Arc<dyn Store>, job: &Job, args: &RestoreArgs) -> RestoreReport {
    let started = Instant::now();
    let mut report = RestoreReport::new(&job.name, job.key.as_str(), store.describe());
    let mut recorder = None;
    let result = restore(store, job, args, &mut report, &mut recorder).await;
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(task) = recorder {
        finish_recording(&job.name, task).await;
    }
    let name = &job.name;
    match result {
        Ok(()) => {
            let matched = report.matched_key.as_deref().unwrap_or("");
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
                    output::rate(report.bytes, started.elapsed()),
                ),
            };
            output::say(&human);
            report
        }
        Err(f) => {
            let mut failed = failed_report(job, &f, report.store);
            failed.seconds = report.seconds;
            failed
        }
    }
}

/// Exact key first; else each prefix in order, the newest entry of the first prefix that matches.
async fn lookup(
    store: &dyn Store,
    job: &Job,
) -> Result<Option<(EntryInfo, RestoreOutcome)>, Failure> {
    let exact = EntryName::new(&job.paths, &job.key);
    // A listing rather than a HEAD: a missing bucket answers HEAD with a bare 404, which would
    // pass for a miss; ListObjectsV2 says NoSuchBucket.
    let found = store.list(&exact.pathset, &exact.key).await?;
    if let Some(hit) = found.into_iter().find(|e| e.name.key == exact.key) {
        return Ok(Some((hit, RestoreOutcome::Hit)));
    }
    for prefix in &job.restore_keys {
        let candidates = store.list(&exact.pathset, prefix.as_str()).await?;
        let newest = candidates.into_iter().max_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.key.cmp(&b.name.key))
        });
        if let Some(e) = newest {
            return Ok(Some((e, RestoreOutcome::Partial)));
        }
    }
    Ok(None)
}

/// How long a restore that is otherwise done waits for its use record to be written.
const RECORD_USE_BUDGET: Duration = Duration::from_secs(2);

/// Waits (briefly) for the use record; a failure is worth a note, never a failed restore.
async fn finish_recording(cache: &str, task: JoinHandle<Result<(), store::Error>>) {
    let note = match tokio::time::timeout(RECORD_USE_BUDGET, task).await {
        Ok(Ok(Ok(()))) => return,
        Ok(Ok(Err(e))) => Failure::of(&e).message(),
        Ok(Err(e)) => format!("recording task failed: {e}"),
        Err(_) => format!("no answer within {} s", RECORD_USE_BUDGET.as_secs()),
    };
    if crate::progress::verbosity() == crate::progress::Verbosity::Verbose {
        eprintln!("note: restore {cache}: last use not recorded (prune may judge the entry unused): {note}");
    }
}

async fn restore(
    store: Arc<dyn Store>,
    job: &Job,
    args: &RestoreArgs,
    report: &mut RestoreReport,
    recorder: &mut Option<JoinHandle<Result<(), store::Error>>>,
) -> Result<(), Failure> {
    let (cwd, home) = super::anchors();
    let dests = job.paths.resolve(&cwd, home.as_deref())?;
    let t = Instant::now();
    let found = lookup(store.as_ref(), job).await;
    timings::LOOKUP.add(t.elapsed());
    let Some((entry, outcome)) = found? else {
        report.outcome = RestoreOutcome::Miss;
        return Ok(());
    };
    report.matched_key = Some(entry.name.key.clone());
    report.bytes = entry.size;
    if args.lookup_only {
        report.outcome = outcome;
        return Ok(());
    }
    // Written alongside the download, so it costs the restore nothing (docs/FORMAT.md, "Last use").
    *recorder = Some(tokio::spawn({
        let store = Arc::clone(&store);
        let used = UseRecord::at(entry.name.clone(), crate::time::now());
        async move { store.record_use(&used).await }
    }));
    let staged = dests
        .iter()
        .map(|d| Staged::create(d))
        .collect::<Result<Vec<_>, _>>()?;
    let part_bytes = u64::from(args.store.part_size_mib) * 1024 * 1024;
    let chunk_bytes = transfer::chunk_size(entry.size, args.store.concurrency as usize, part_bytes);
    let progress = Progress::new(format!("restore {}", job.name), entry.size);
    let fetched = fetch_and_unpack(
        store,
        &entry,
        &staged,
        chunk_bytes,
        args.store.concurrency as usize,
        Arc::clone(&progress),
    )
    .await;
    progress.finish();
    match fetched {
        Ok(stats) => {
            let t = Instant::now();
            for s in staged {
                s.commit()?;
            }
            timings::COMMIT.add(t.elapsed());
            report.files = stats.entries;
            report.unpacked_bytes = stats.file_bytes;
            report.outcome = outcome;
            Ok(())
        }
        // Dropping `staged` removes the staging directories.
        Err(f) => Err(f),
    }
}

async fn fetch_and_unpack(
    store: Arc<dyn Store>,
    entry: &EntryInfo,
    staged: &[Staged],
    chunk_bytes: u64,
    concurrency: usize,
    progress: Arc<Progress>,
) -> Result<unpack::UnpackStats, Failure> {
    // Two chunks queued for the unpacker is enough to keep it busy; the rest wait in flight.
    let (tx, rx) = mpsc::channel(2);
    let roots: Vec<_> = staged.iter().map(Staged::root).collect();
    let size = entry.size;
    let unpacker =
        tokio::task::spawn_blocking(move || -> Result<unpack::UnpackStats, archive::Error> {
            let reader = VerifyingReader::new(rx, size);
            let mut decoder =
                zstd::stream::read::Decoder::new(reader).map_err(archive::Error::Stream)?;
            let stats = unpack::unpack(&mut decoder, &roots, super::unpack_workers())?;
            let footer = decoder.finish().into_inner().verify()?;
            if footer.entries != stats.entries {
                return Err(archive::Error::Corrupt(format!(
                    "footer promises {} entries, the archive holds {}",
                    footer.entries, stats.entries
                )));
            }
            Ok(stats)
        });
    let downloaded = transfer::download(
        store,
        entry.name.clone(),
        size,
        chunk_bytes,
        concurrency,
        tx,
        progress,
    )
    .await;
    let unpacked = unpacker.await.map_err(|e| Failure {
        cause: format!("unpack task failed: {e}"),
        hint: None,
    })?;
    // A failed download surfaces in the unpacker as a truncated stream: report the real cause.
    downloaded?;
    match unpacked {
        // The whole object arrived, so a stream that does not decode is a damaged entry.
        Err(archive::Error::Stream(e)) => Err(archive::Error::Corrupt(format!(
            "the archive does not decode ({e}); it is truncated or not a cachectl archive"
        ))
        .into()),
        other => Ok(other?),
    }
}
