//! `cachectl save`: walk -> tar -> zstd -> blake3 -> parts, uploaded while packing continues.

use super::Failure;
use crate::archive::pack::{self, PackStats};
use crate::cli::SaveArgs;
use crate::error::code;
use crate::key::{EntryName, PathSet};
use crate::output::{self, human_bytes, thousands, SaveOutcome, SaveReport};
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
    let set = match PathSet::new(&args.paths) {
        Ok(s) => s,
        Err(e) => return crate::error::report(&e, None, code::USAGE),
    };
    let mut report = SaveReport {
        outcome: SaveOutcome::Error,
        key: args.key.to_string(),
        bytes: 0,
        files: 0,
        unpacked_bytes: 0,
        seconds: 0.0,
        store: String::new(),
        reason: None,
    };
    let result = save(&args, &set, &mut report).await;
    report.seconds = started.elapsed().as_secs_f64();
    timings::report(
        started.elapsed(),
        &[
            &timings::WALK_READ,
            &timings::COMPRESS,
            &timings::HASH,
            &timings::UPLOAD_WAIT,
        ],
    );
    let key = &args.key;
    let status = match result {
        Ok(()) => {
            let human = match report.outcome {
                SaveOutcome::Saved => format!(
                    "save {key}: saved {}, {} files in {:.1} s ({})",
                    human_bytes(report.bytes),
                    thousands(report.files),
                    report.seconds,
                    output::rate(report.bytes, started.elapsed()),
                ),
                _ => format!(
                    "save {key}: skipped, {}",
                    report.reason.as_deref().unwrap_or("nothing to do")
                ),
            };
            output::emit(args.store.json, &report, &human);
            code::OK
        }
        Err(f) => {
            output::warn(
                &format!("save {key} failed, nothing was cached"),
                &f.cause,
                f.hint.as_deref(),
            );
            report.outcome = SaveOutcome::Error;
            report.reason = Some(f.message());
            output::emit(args.store.json, &report, &format!("save {key}: error"));
            if args.store.strict {
                code::FAILED
            } else {
                code::OK
            }
        }
    };
    ExitCode::from(status)
}

async fn save(args: &SaveArgs, set: &PathSet, report: &mut SaveReport) -> Result<(), Failure> {
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
    let store = super::open_store(args.store.store.as_deref()).await?;
    report.store = store.describe();
    let name = EntryName::new(set, &args.key);
    if !args.overwrite && store.head(&name).await?.is_some() {
        report.outcome = SaveOutcome::Skipped;
        report.reason =
            Some("key already exists; keys are immutable (--overwrite replaces it)".into());
        return Ok(());
    }
    let meta = EntryMeta {
        format: 1,
        key: args.key.to_string(),
        paths: set.paths().to_vec(),
        family: args.key.family().to_owned(),
        created: crate::time::now_rfc3339(),
        cachectl: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let saved = pack_and_upload(store, &name, &meta, roots, args).await?;
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
    args: &SaveArgs,
) -> Result<Saved, Failure> {
    let concurrency = args.store.concurrency as usize;
    // One slot per part in flight keeps the packer ahead of the uploader without unbounded memory.
    let (tx, rx) = mpsc::channel::<Chunk>(concurrency);
    let level = args.level;
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
    let uploaded = transfer::upload(store, name, meta, args.overwrite, rx, concurrency).await;
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
