//! `cachectl restore`: look up (exact key, then restore-key prefixes), then ranged GETs ->
//! blake3 -> zstd -> tar -> files in staging, moved into place only after the digest matches.

use super::Failure;
use crate::archive::{self, place::Staged, unpack};
use crate::cli::RestoreArgs;
use crate::error::code;
use crate::key::{EntryName, PathSet};
use crate::output::{self, human_bytes, thousands, RestoreOutcome, RestoreReport};
use crate::store::{EntryInfo, Store};
use crate::timings;
use crate::transfer::{self, VerifyingReader};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

pub async fn run(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    let set = match PathSet::new(&args.paths) {
        Ok(s) => s,
        Err(e) => return crate::error::report(&e, None, code::USAGE),
    };
    let mut report = RestoreReport {
        outcome: RestoreOutcome::Error,
        key: args.key.to_string(),
        matched_key: None,
        bytes: 0,
        files: 0,
        unpacked_bytes: 0,
        seconds: 0.0,
        store: String::new(),
        message: None,
    };
    let result = restore(&args, &set, &mut report).await;
    report.seconds = started.elapsed().as_secs_f64();
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
    let key = &args.key;
    let status = match result {
        Ok(()) => {
            let matched = report.matched_key.as_deref().unwrap_or("");
            let verb = if args.lookup_only {
                "found"
            } else {
                "restored"
            };
            let human = match report.outcome {
                RestoreOutcome::Miss => format!("restore {key}: miss, nothing restored"),
                outcome => format!(
                    "restore {key}: {} {matched}, {verb} {} ({} unpacked), {} files in {:.1} s ({})",
                    if outcome == RestoreOutcome::Hit { "hit" } else { "partial hit" },
                    human_bytes(report.bytes),
                    human_bytes(report.unpacked_bytes),
                    thousands(report.files),
                    report.seconds,
                    output::rate(report.bytes, started.elapsed()),
                ),
            };
            output::emit(args.store.json, &report, &human);
            if report.outcome == RestoreOutcome::Miss && args.fail_on_miss {
                code::FAILED
            } else {
                code::OK
            }
        }
        Err(f) => {
            output::warn(
                &format!("restore {key} failed, continuing without the cache"),
                &f.cause,
                f.hint.as_deref(),
            );
            report.outcome = RestoreOutcome::Error;
            report.matched_key = None;
            report.message = Some(f.message());
            output::emit(args.store.json, &report, &format!("restore {key}: error"));
            if args.store.strict || args.fail_on_miss {
                code::FAILED
            } else {
                code::OK
            }
        }
    };
    ExitCode::from(status)
}

/// Exact key first; else each prefix in order, the newest entry of the first prefix that matches.
async fn lookup(
    store: &dyn Store,
    set: &PathSet,
    args: &RestoreArgs,
) -> Result<Option<(EntryInfo, RestoreOutcome)>, Failure> {
    let exact = EntryName::new(set, &args.key);
    // A listing rather than a HEAD: a missing bucket answers HEAD with a bare 404, which would
    // pass for a miss; ListObjectsV2 says NoSuchBucket.
    let found = store.list(&exact.pathset, &exact.key).await?;
    if let Some(hit) = found.into_iter().find(|e| e.name.key == exact.key) {
        return Ok(Some((hit, RestoreOutcome::Hit)));
    }
    for prefix in &args.restore_keys {
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

async fn restore(
    args: &RestoreArgs,
    set: &PathSet,
    report: &mut RestoreReport,
) -> Result<(), Failure> {
    let (cwd, home) = super::anchors();
    let dests = set.resolve(&cwd, home.as_deref())?;
    let store = super::open_store(args.store.store.as_deref()).await?;
    report.store = store.describe();
    let t = Instant::now();
    let found = lookup(store.as_ref(), set, args).await;
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
    let staged = dests
        .iter()
        .map(|d| Staged::create(d))
        .collect::<Result<Vec<_>, _>>()?;
    let chunk_bytes = u64::from(args.store.part_size_mib) * 1024 * 1024;
    match fetch_and_unpack(
        store,
        &entry,
        &staged,
        chunk_bytes,
        args.store.concurrency as usize,
    )
    .await
    {
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
) -> Result<unpack::UnpackStats, Failure> {
    let (tx, rx) = mpsc::channel(concurrency);
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
