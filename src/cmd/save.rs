//! `cachectl save`: walk -> tar -> zstd -> blake3 -> parts, uploaded while packing continues.

use super::jobs::{self, Job};
use super::Failure;
use crate::archive::pack::{self, PackStats};
use crate::cli::SaveArgs;
use crate::config::When;
use crate::error::code;
use crate::key::{CacheKey, EntryName};
use crate::metrics;
use crate::output::RestoreOutcome;
use crate::output::{self, human_bytes, thousands, SaveOutcome, SaveReport};
use crate::progress::Progress;
use crate::state;
use crate::store::{EntryMeta, PutOutcome, Store};
use crate::timings;
use crate::transfer::{self, Chunk, PartWriter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

struct Saved {
    outcome: PutOutcome,
    bytes: u64,
    stats: PackStats,
}

pub async fn run(args: SaveArgs) -> ExitCode {
    let started = Instant::now();
    super::set_verbosity(&args.report);
    let (cwd, _) = super::anchors();
    let plan = match jobs::plan(args.key.as_ref(), &args.paths, &[], &args.select, &cwd) {
        Ok(p) => p,
        Err(e) => return super::plan_failed(e),
    };
    let metrics = super::start_metrics(&args.report, &plan);
    let recorded = state::load(&state::path(&cwd));
    let reports = match super::open_store(args.store.store.as_deref()).await {
        Ok(store) => {
            let runs = plan.jobs.iter().map(|job| {
                let restored = recorded.caches.get(&job.name);
                save_one(Arc::clone(&store), job, restored, &args)
            });
            futures_util::future::join_all(runs).await
        }
        Err(f) => plan
            .jobs
            .iter()
            .map(|job| failed_report(job, &f, String::new(), 0.0))
            .collect(),
    };
    timings::report(
        started.elapsed(),
        &[
            &timings::WALK_READ,
            &timings::COMPRESS,
            &timings::HASH,
            &timings::UPLOAD_WAIT,
        ],
    );
    let events: Vec<_> = plan
        .jobs
        .iter()
        .zip(&reports)
        .filter(|(_, r)| r.outcome == SaveOutcome::Saved)
        .map(|(job, r)| metrics::Event::Save {
            cache: job.name.clone(),
            seconds: r.seconds,
            bytes: r.bytes,
        })
        .collect();
    super::finish_metrics(metrics, &events).await;
    let worst = SaveOutcome::worst(reports.iter().map(|r| r.outcome));
    output::emit_json(args.store.json, &reports, worst.as_str());
    let errored = reports.iter().any(|r| r.outcome == SaveOutcome::Error);
    ExitCode::from(if errored && args.store.strict {
        code::FAILED
    } else {
        code::OK
    })
}

fn failed_report(job: &Job, f: &Failure, store: String, seconds: f64) -> SaveReport {
    output::warn(
        &format!("save {} failed, nothing was cached", job.name),
        &f.cause,
        f.hint.as_deref(),
    );
    SaveReport {
        seconds,
        reason: Some(f.message()),
        ..SaveReport::new(&job.name, job.key.as_str(), store)
    }
}

/// Whether the save policy lets this build save: `CODEBUILD_BUILD_SUCCEEDING` is `1` (or unset,
/// outside CodeBuild) while the build is succeeding, `0` once a phase failed.
fn policy_allows(when: When) -> Result<(), String> {
    let succeeding = std::env::var(crate::env::CODEBUILD_BUILD_SUCCEEDING)
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    match (when, succeeding) {
        (When::Always, _) | (When::Success, true) | (When::Failure, false) => Ok(()),
        (When::Success, false) => {
            Err("the build is failing (CODEBUILD_BUILD_SUCCEEDING=0) and when = success".into())
        }
        (When::Failure, true) => Err("the build is succeeding and when = failure".into()),
    }
}

async fn save_one(
    store: Arc<dyn Store>,
    job: &Job,
    restored: Option<&state::Recorded>,
    args: &SaveArgs,
) -> SaveReport {
    let started = Instant::now();
    // The key resolved at restore time wins: a build that rewrote its lockfile must not move the
    // cache to a key the next build (with the committed lockfile) would never look up.
    let restored = restored.filter(|r| !job.explicit && r.paths == job.paths.paths());
    let key = match restored.map(|r| CacheKey::new(&r.key)) {
        Some(Ok(k)) => k,
        _ => job.key.clone(),
    };
    let job = Job { key, ..job.clone() };
    let mut report = SaveReport::new(&job.name, job.key.as_str(), store.describe());
    let when = args.when.or(job.when).unwrap_or(When::Success);
    let result = if let Err(why) = policy_allows(when) {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some(why);
        Ok(())
    } else if restored.is_some_and(|r| {
        r.outcome == RestoreOutcome::Hit && r.matched_key.as_deref() == Some(job.key.as_str())
    }) && !args.overwrite
    {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some("unchanged: this build restored the same key (exact hit)".into());
        Ok(())
    } else {
        save(store, &job, args, &mut report).await
    };
    report.seconds = started.elapsed().as_secs_f64();
    let name = &job.name;
    match result {
        Ok(()) => {
            output::say(&match report.outcome {
                SaveOutcome::Saved => format!(
                    "save {name}: saved {} {}, {} files in {:.1} s ({})",
                    job.key,
                    human_bytes(report.bytes),
                    thousands(report.files),
                    report.seconds,
                    output::rate(report.bytes, started.elapsed()),
                ),
                _ => format!(
                    "save {name}: skipped {}, {}",
                    job.key,
                    report.reason.as_deref().unwrap_or("nothing to do")
                ),
            });
            report
        }
        Err(f) => failed_report(&job, &f, report.store, report.seconds),
    }
}

async fn save(
    store: Arc<dyn Store>,
    job: &Job,
    args: &SaveArgs,
    report: &mut SaveReport,
) -> Result<(), Failure> {
    let set = &job.paths;
    let (cwd, home) = super::anchors();
    let resolved = set.resolve(&cwd, home.as_deref())?;
    let mut roots: Vec<(usize, PathBuf)> = Vec::new();
    let mut missing = Vec::new();
    for (i, path) in resolved.into_iter().enumerate() {
        if path.symlink_metadata().is_ok() {
            roots.push((i, path));
        } else {
            missing.push(set.paths()[i].clone());
        }
    }
    if roots.is_empty() {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some(format!(
            "nothing to save: {} does not exist",
            missing.join(", ")
        ));
        return Ok(());
    }
    for m in &missing {
        output::warn(
            "save",
            &format!("{m} does not exist; saving the other paths"),
            None,
        );
    }
    let name = EntryName::new(set, &job.key);
    if !args.overwrite && store.head(&name).await?.is_some() {
        report.outcome = SaveOutcome::Skipped;
        report.reason =
            Some("key already exists; keys are immutable (--overwrite replaces it)".into());
        return Ok(());
    }
    let meta = EntryMeta {
        format: 1,
        key: job.key.to_string(),
        paths: set.paths().to_vec(),
        family: job.family.clone(),
        created: crate::time::now_rfc3339(),
        cachectl: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let level = args.level.or(job.level).unwrap_or(3);
    let progress = Progress::new(format!("save {}", job.name), 0);
    let saved = pack_and_upload(
        store,
        &name,
        &meta,
        roots,
        level,
        args,
        Arc::clone(&progress),
    )
    .await;
    progress.finish();
    let saved = saved?;
    report.bytes = saved.bytes;
    report.files = saved.stats.entries;
    report.unpacked_bytes = saved.stats.file_bytes;
    match saved.outcome {
        PutOutcome::Created => report.outcome = SaveOutcome::Saved,
        PutOutcome::AlreadyExists => {
            report.outcome = SaveOutcome::Skipped;
            report.reason = Some("another save created this key first; keys are immutable".into());
            report.bytes = 0;
        }
    }
    if saved.stats.skipped_special > 0 {
        output::warn(
            "save",
            &format!(
                "left out {} sockets, FIFOs or devices",
                saved.stats.skipped_special
            ),
            None,
        );
    }
    if saved.stats.changed_while_reading > 0 {
        output::warn(
            "save",
            &format!(
                "{} files changed while being saved",
                saved.stats.changed_while_reading
            ),
            Some("save after the step that writes them has finished"),
        );
    }
    Ok(())
}

async fn pack_and_upload(
    store: Arc<dyn Store>,
    name: &EntryName,
    meta: &EntryMeta,
    roots: Vec<(usize, PathBuf)>,
    level: i32,
    args: &SaveArgs,
    progress: Arc<Progress>,
) -> Result<Saved, Failure> {
    let concurrency = args.store.concurrency as usize;
    // One slot per part in flight keeps the packer ahead of the uploader without unbounded memory.
    let (tx, rx) = mpsc::channel::<Chunk>(2);
    let part_bytes = args.store.part_size_mib as usize * 1024 * 1024;
    let packer = tokio::task::spawn_blocking(move || -> Result<(u64, PackStats), Failure> {
        let sink = PartWriter::new(tx, part_bytes);
        let mut enc = zstd::stream::write::Encoder::new(sink, level).map_err(|e| Failure {
            cause: format!("zstd: {e}"),
            hint: None,
        })?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        enc.multithread(threads).map_err(|e| Failure {
            cause: format!("zstd threads: {e}"),
            hint: None,
        })?;
        let t = std::time::Instant::now();
        let (enc, stats) = pack::pack(&roots, enc)?;
        if timings::enabled() {
            // The packing thread's time not spent reading files, hashing or waiting on the
            // upload is spent feeding (and, single-threaded, running) the compressor.
            let other =
                timings::WALK_READ.secs() + timings::HASH.secs() + timings::UPLOAD_WAIT.secs();
            let busy = (t.elapsed().as_secs_f64() - other).max(0.0);
            timings::COMPRESS.add(std::time::Duration::from_secs_f64(busy));
        }
        let sink = enc.finish().map_err(|e| Failure {
            cause: format!("zstd: {e}"),
            hint: None,
        })?;
        let size = sink
            .finish(stats.tar_bytes, stats.entries)
            .map_err(|e| Failure {
                cause: format!("finishing archive: {e}"),
                hint: None,
            })?;
        Ok((size, stats))
    });
    let uploaded =
        transfer::upload(store, name, meta, args.overwrite, rx, concurrency, progress).await;
    let packed = packer.await.map_err(|e| Failure {
        cause: format!("packing task failed: {e}"),
        hint: None,
    })?;
    match (packed, uploaded) {
        (Ok((bytes, stats)), Ok(outcome)) => Ok(Saved {
            outcome,
            bytes,
            stats,
        }),
        // The packer stops with "upload stopped" when the upload fails: report the upload's cause.
        (_, Err(e)) if !matches!(e, transfer::Error::PackingFailed) => Err(e.into()),
        (Err(f), _) => Err(f),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}
