//! The pipeline as a library: [`save_tree`] (walk -> tar -> zstd -> blake3 -> parts, uploaded
//! while packing continues), [`lookup`] and [`restore_entry`] (ranged GETs -> blake3 -> zstd ->
//! tar -> files in staging, moved into place only once the digest matches). A command, a test
//! or a benchmark calls them alike: options are a plain struct, progress goes to a
//! [`Reporter`], nothing here prints or parses flags.
//!
//! Blocking work (walking, reading, compressing, hashing, unpacking, staging and the final
//! moves) runs on tokio's blocking pool, fed by bounded channels; async workers only move
//! bytes between the store and those channels.

mod download;
mod lookup;
mod upload;

use crate::archive::footer::SignatureFrame;
use crate::archive::pack::{self, PackStats};
use crate::archive::place::{self, Staged};
use crate::archive::unpack::{self, UnpackStats};
use crate::error::Hint;
use crate::key::{EntryName, PathSet, Scope};
use crate::sign::{PublicKey, Signature, SigningKey, Statement};
use crate::store::{self, EntryInfo, EntryMeta, PutOutcome, Store};
use crate::{archive, timings};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use crate::archive::place::Placement;
pub use lookup::{lookup, Candidates};
pub use upload::DEFAULT_PART_BYTES;

/// What the pipeline reports while it runs (as uv's `Reporter`): the terminal bars are
/// `progress::Progress`; tests and benchmarks pass their own, or `()` for nothing.
pub trait Reporter: Send + Sync {
    /// `bytes` more of the archive moved: uploaded on save, downloaded on restore.
    fn on_bytes(&self, bytes: u64);

    /// The transfer starts over, and why (one line).
    fn on_retry(&self, _why: &str) {}
}

impl Reporter for () {
    fn on_bytes(&self, _: u64) {}
}

/// How a transfer runs. `Default` is what the command line defaults to.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parts (save) or ranged GETs (restore) in flight at once.
    pub concurrency: usize,
    /// Upload part size and largest ranged GET, in bytes; S3 wants at least 5 MiB per part.
    pub part_bytes: usize,
    /// zstd level, 1..=19 (save).
    pub level: i32,
    /// Replace an existing entry (save); keys are otherwise immutable.
    pub overwrite: bool,
    /// Threads creating files (restore).
    pub unpack_workers: usize,
    /// How long a lookup (the listing of a restore, the existence check of a save) may go
    /// unanswered before the store counts as unreachable. Transfers are not bounded by it.
    pub lookup_timeout: Duration,
    /// What a restore demands of an entry's signature.
    pub signatures: SignaturePolicy,
}

/// What a restore demands of entries' signatures (docs/FORMAT.md, "Signatures"). Whatever the
/// policy, a signature present that does not match its entry refuses the entry: it was copied
/// under another name or its bytes were changed.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// The keys whose signatures are trusted (`[trust] public-keys`).
    pub keys: Vec<PublicKey>,
    /// Entries of these scopes must be signed by one of `keys` (`[trust] require-signature`).
    pub required_in: Vec<Scope>,
}

impl SignaturePolicy {
    /// Whether `entry` (of path set `paths`), with the signature found at its end, may be used.
    ///
    /// Errors: [`archive::Error::Untrusted`] saying why not.
    pub fn check(
        &self,
        entry: &EntryName,
        paths: &PathSet,
        found: Option<(Signature, [u8; 32])>,
    ) -> Result<(), archive::Error> {
        let required = self.required_in.contains(&entry.scope);
        let Some((signature, digest)) = found else {
            return if required {
                Err(archive::Error::Untrusted(format!(
                    "it is not signed, and [trust] require-signature wants entries of scope `{}` signed",
                    entry.scope
                )))
            } else {
                Ok(())
            };
        };
        let statement = Statement {
            scope: &entry.scope,
            paths: paths.paths(),
            key: &entry.key,
            digest,
        };
        if !signature.matches(&statement) {
            return Err(archive::Error::Untrusted(
                "its signature does not match its key, scope, path set or bytes: it was copied, renamed or modified".into(),
            ));
        }
        if required && !self.keys.contains(&signature.public_key) {
            return Err(archive::Error::Untrusted(format!(
                "it is signed by {}, which is not one of [trust] public-keys",
                signature.public_key
            )));
        }
        Ok(())
    }
}

/// A store that has not answered a lookup in this long will not answer in time to help the
/// build (the SDK alone would retry for about two minutes).
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 8,
            part_bytes: DEFAULT_PART_BYTES,
            level: 3,
            overwrite: false,
            unpack_workers: unpack_workers(),
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            signatures: SignaturePolicy::default(),
        }
    }
}

/// Threads that create files on restore: file creation is syscall-bound, so more threads than
/// cores still help, most of all on disks where each create waits on the journal.
pub fn unpack_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).clamp(4, 16)
}

/// Why a transfer failed: the store, or the archive (reading the tree, a refused or damaged
/// entry, writing the destination).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// The entry's archive is damaged or refused (fetched twice when its digest did not match):
    /// the store answered, the destination is untouched, and another entry may do.
    #[error("entry `{key}`: {source}")]
    BadEntry {
        key: String,
        #[source]
        source: archive::Error,
    },
    /// The other half of the pipeline stopped first; its error is the one reported.
    #[error("the transfer stopped before the archive was complete")]
    Stopped,
    #[error("{0} task panicked")]
    Panicked(&'static str),
    /// The store did not answer a lookup within [`Options::lookup_timeout`].
    #[error("{what}: no answer within {} s", timeout.as_secs_f64())]
    NoAnswer { what: String, timeout: Duration },
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Archive(e) | Error::BadEntry { source: e, .. } => e.hint(),
            Error::NoAnswer { .. } => Some("check the network path to the store (AWS_ENDPOINT_URL, a VPC route to S3); --lookup-timeout / CACHECTL_LOOKUP_TIMEOUT sets how long a lookup may wait".into()),
            Error::Stopped | Error::Panicked(_) => None,
        }
    }
}

/// The error of a two-sided pipeline. When one side fails on its own, the other only sees it
/// stop (a closed channel, a truncated stream): the store side's own failure is the cause if it
/// has one, else the local side's.
fn first_cause<T, U>(
    transport: Result<T, Error>,
    local: Result<U, Error>,
) -> Result<(T, U), Error> {
    match (transport, local) {
        (Ok(t), Ok(u)) => Ok((t, u)),
        (Err(e), _) if !matches!(e, Error::Stopped) => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
    }
}

/// One entry to save: where it goes and the paths it holds.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    pub name: EntryName,
    pub meta: EntryMeta,
    /// Where each path of the path set is on this machine, in path-set order.
    pub roots: Vec<PathBuf>,
    /// Directories and files never archived (besides the store's own directory and
    /// cachectl's staging and state files, always left out).
    pub exclude: Vec<PathBuf>,
    /// Signs the entry (docs/FORMAT.md, "Signatures") when given.
    pub signer: Option<Arc<SigningKey>>,
}

/// What [`save_tree`] did.
#[derive(Debug)]
pub struct Saved {
    pub result: SaveResult,
    /// Indices into the path set of the paths that did not exist and were left out.
    pub missing: Vec<usize>,
}

#[derive(Debug)]
pub enum SaveResult {
    /// Uploaded and visible under its name.
    Created(Packed),
    /// Another save created the entry while this one uploaded; these bytes were discarded.
    LostRace(Packed),
    /// The entry exists; nothing was uploaded (`Options::overwrite` replaces it).
    Exists,
    /// None of the paths exists; nothing was uploaded.
    NothingToSave,
}

/// What [`restore_entry`] did.
#[derive(Debug)]
pub struct Restored {
    pub stats: UnpackStats,
    /// Directories holding replaced trees and staging that killed restores left: the caller
    /// removes them, off the build's critical path (cachectl hands them to a background
    /// process; `archive::place::remove_tree` does it in place).
    pub trash: Vec<PathBuf>,
}

/// An archive packed and uploaded.
#[derive(Debug)]
pub struct Packed {
    /// Archive (object) bytes.
    pub bytes: u64,
    pub stats: PackStats,
}

/// Saves the tree at `req.roots` as the entry `req.name`: checks which paths exist, skips an
/// existing entry unless `opts.overwrite`, then packs, compresses, hashes and uploads at once.
/// Never leaves a partial entry: a failed upload is aborted.
///
/// Errors: reading the tree ([`Error::Archive`]) or the store ([`Error::Store`]).
pub async fn save_tree(
    store: Arc<dyn Store>,
    req: SaveRequest,
    opts: &Options,
    reporter: Arc<dyn Reporter>,
) -> Result<Saved, Error> {
    let roots = req.roots;
    let (present, missing) = blocking("stat paths", move || {
        let (mut present, mut missing) = (Vec::new(), Vec::new());
        for (i, path) in roots.into_iter().enumerate() {
            if path.symlink_metadata().is_ok() {
                present.push((i, path));
            } else {
                missing.push(i);
            }
        }
        Ok((present, missing))
    })
    .await?;
    let result = if present.is_empty() {
        SaveResult::NothingToSave
    } else if !opts.overwrite
        && bounded(
            opts.lookup_timeout,
            || format!("look up `{}` in {}", req.name.key, store.describe()),
            store.head(&req.name),
        )
        .await?
        .is_some()
    {
        SaveResult::Exists
    } else {
        // Never the store's own directory, wherever it is in the tree.
        let mut exclude = req.exclude;
        exclude.extend(store.local_root());
        let signer = req.signer.map(|key| Signer {
            key,
            name: req.name.clone(),
            paths: req.meta.paths.clone(),
        });
        let (outcome, packed) = pack_and_upload(
            store, &req.name, &req.meta, present, exclude, signer, opts, reporter,
        )
        .await?;
        match outcome {
            PutOutcome::Created => SaveResult::Created(packed),
            PutOutcome::AlreadyExists => SaveResult::LostRace(packed),
        }
    };
    Ok(Saved { result, missing })
}

/// A signing key and the entry it signs.
struct Signer {
    key: Arc<SigningKey>,
    name: EntryName,
    paths: Vec<String>,
}

impl Signer {
    fn frame(&self, digest: [u8; 32]) -> SignatureFrame {
        let signature = self.key.sign(&Statement {
            scope: &self.name.scope,
            paths: &self.paths,
            key: &self.name.key,
            digest,
        });
        SignatureFrame {
            public_key: signature.public_key.to_bytes(),
            signature: signature.bytes,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pack_and_upload(
    store: Arc<dyn Store>,
    name: &EntryName,
    meta: &EntryMeta,
    roots: Vec<(usize, PathBuf)>,
    exclude: Vec<PathBuf>,
    signer: Option<Signer>,
    opts: &Options,
    reporter: Arc<dyn Reporter>,
) -> Result<(PutOutcome, Packed), Error> {
    // Two parts queued keep the packer ahead of the uploader without unbounded memory.
    let (tx, rx) = mpsc::channel::<upload::Chunk>(2);
    let (level, part_bytes) = (opts.level, opts.part_bytes);
    let exclude = pack::Exclude::new(&exclude);
    let packer = tokio::task::spawn_blocking(move || -> Result<Packed, Error> {
        let stream_err = |e| Error::Archive(archive::Error::Stream(e));
        let sink = upload::PartWriter::new(tx, part_bytes);
        let mut enc = zstd::stream::write::Encoder::new(sink, level).map_err(stream_err)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        enc.multithread(threads).map_err(stream_err)?;
        // zstd's own checksum of each frame's content, checked when restore decodes it: the
        // blake3 digest covers the bytes stored, this covers what they decompress to.
        enc.include_checksum(true).map_err(stream_err)?;
        let t = Instant::now();
        let (enc, stats) = pack::pack(&roots, &exclude, enc)?;
        if timings::enabled() {
            // The packing thread's time not spent reading files, hashing or waiting on the
            // upload is spent feeding (and, single-threaded, running) the compressor.
            let other =
                timings::WALK_READ.secs() + timings::HASH.secs() + timings::UPLOAD_WAIT.secs();
            let busy = (t.elapsed().as_secs_f64() - other).max(0.0);
            timings::COMPRESS.add(std::time::Duration::from_secs_f64(busy));
        }
        let sink = enc.finish().map_err(stream_err)?;
        let sign = signer.map(|s| move |digest| s.frame(digest));
        let bytes = sink
            .finish(
                stats.tar_bytes,
                stats.entries,
                sign.as_ref()
                    .map(|f| f as &dyn Fn([u8; 32]) -> SignatureFrame),
            )
            .map_err(stream_err)?;
        Ok(Packed { bytes, stats })
    });
    let uploaded = upload::upload(
        store,
        name,
        meta,
        opts.overwrite,
        rx,
        opts.concurrency,
        reporter,
    )
    .await;
    let packed = packer.await.map_err(|_| Error::Panicked("packing"))?;
    first_cause(uploaded, packed)
}

/// `call`, given at most `timeout` to answer.
async fn bounded<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    call: impl std::future::Future<Output = Result<T, store::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::NoAnswer {
            what: what(),
            timeout,
        }),
    }
}

/// Restores `entry` into `dests` (one per path of its path set, in order): each destination
/// is unpacked into a staging directory beside it while the archive downloads, and moved into
/// place only once the whole archive's digest matched. On any error nothing is moved and the
/// staging directories are removed. A digest mismatch is fetched again once before the entry
/// is called corrupt.
///
/// Errors: the store's; [`Error::BadEntry`] for a damaged or refused entry (another candidate
/// may do); the archive's for a destination that cannot be written.
pub async fn restore_entry(
    store: Arc<dyn Store>,
    entry: &EntryInfo,
    paths: &PathSet,
    dests: Vec<(PathBuf, Placement)>,
    opts: &Options,
    reporter: Arc<dyn Reporter>,
) -> Result<Restored, Error> {
    let first = restore_once(
        Arc::clone(&store),
        entry,
        paths,
        dests.clone(),
        opts,
        Arc::clone(&reporter),
    )
    .await;
    let result = match first {
        // A digest that does not match may be bytes damaged on the way (TLS and TCP do not
        // catch everything between a proxy and us): fetch once more before blaming the entry.
        Err(Error::Archive(archive::Error::Digest)) => {
            reporter.on_retry(
                "the archive arrived damaged (its blake3 digest did not match); fetching it again",
            );
            match restore_once(store, entry, paths, dests, opts, reporter).await {
                Err(Error::Archive(archive::Error::Digest)) => {
                    Err(Error::Archive(archive::Error::Corrupt(
                        "its blake3 digest does not match the footer in two downloads: \
                         the stored object is damaged"
                            .into(),
                    )))
                }
                other => other,
            }
        }
        other => other,
    };
    result.map_err(|e| match e {
        // The entry itself is bad: name it, so the caller can say which and try another.
        Error::Archive(
            source @ (archive::Error::Refused { .. }
            | archive::Error::Corrupt(_)
            | archive::Error::Digest
            | archive::Error::Untrusted(_)),
        ) => Error::BadEntry {
            key: entry.name.key.clone(),
            source,
        },
        other => other,
    })
}

async fn restore_once(
    store: Arc<dyn Store>,
    entry: &EntryInfo,
    paths: &PathSet,
    dests: Vec<(PathBuf, Placement)>,
    opts: &Options,
    reporter: Arc<dyn Reporter>,
) -> Result<Restored, Error> {
    let local_root = store.local_root();
    let (staged, mut trash) = blocking("create staging directories", move || {
        let mut staged = Vec::new();
        let mut trash = Vec::new();
        for (dest, placement) in &dests {
            let dest = through_root_link(dest);
            let keep = kept_inside(&dest, local_root.as_deref());
            let (s, stale) = Staged::create(&dest, *placement, keep)?;
            staged.push(s);
            trash.extend(stale);
        }
        Ok((staged, trash))
    })
    .await?;
    let roots: Vec<PathBuf> = staged.iter().map(Staged::root).collect();
    let unpacked = fetch_and_unpack(store, entry, paths, roots, opts, reporter).await;
    let placed = blocking("move into place", move || {
        let stats = unpacked?;
        let t = Instant::now();
        let replaced = place::commit_all(staged)?;
        timings::COMMIT.add(t.elapsed());
        Ok((stats, replaced))
    })
    // On an error `staged` is dropped here, on the blocking pool: that removes the staging
    // directories.
    .await;
    match placed {
        Ok((stats, replaced)) => {
            trash.extend(replaced);
            Ok(Restored { stats, trash })
        }
        Err(e) => {
            // Stale staging found on the way is the caller's to remove even when this failed.
            if !trash.is_empty() {
                let _ = tokio::task::spawn_blocking(move || {
                    for t in trash {
                        let _ = place::remove_tree(&t);
                    }
                })
                .await;
            }
            Err(e)
        }
    }
}

async fn fetch_and_unpack(
    store: Arc<dyn Store>,
    entry: &EntryInfo,
    paths: &PathSet,
    roots: Vec<PathBuf>,
    opts: &Options,
    reporter: Arc<dyn Reporter>,
) -> Result<UnpackStats, Error> {
    // Two chunks queued for the unpacker keep it busy; the rest wait in flight.
    let (tx, rx) = mpsc::channel(2);
    let size = entry.size;
    let workers = opts.unpack_workers;
    let (policy, name, paths) = (opts.signatures.clone(), entry.name.clone(), paths.clone());
    let unpacker = tokio::task::spawn_blocking(move || -> Result<UnpackStats, Error> {
        let reader = download::VerifyingReader::new(rx, size);
        let mut decoder =
            zstd::stream::read::Decoder::new(reader).map_err(archive::Error::Stream)?;
        let mut tar = Counted::new(&mut decoder);
        // The tar reader stops at the end-of-archive block; the rest of the stream is read to
        // its end too, so every frame's checksum is checked and nothing hides after the tar.
        let unpacked = unpack::unpack(&mut tar, &roots, workers)
            .and_then(|stats| only_zeros_left(&mut tar).map(|()| stats));
        let tar_bytes = tar.bytes;
        let reader = decoder.finish().into_inner();
        let stats = match unpacked {
            Ok(stats) => {
                let download::Verified { footer, signature } = reader.verify()?;
                if footer.entries != stats.entries {
                    return Err(archive::Error::Corrupt(format!(
                        "footer promises {} entries, the archive holds {}",
                        footer.entries, stats.entries
                    ))
                    .into());
                }
                if footer.tar_bytes != tar_bytes {
                    return Err(archive::Error::Corrupt(format!(
                        "footer promises a tar stream of {} bytes, the archive holds {tar_bytes}",
                        footer.tar_bytes
                    ))
                    .into());
                }
                let signature = match signature {
                    Some((frame, digest)) => Some((
                        Signature {
                            public_key: PublicKey::from_bytes(&frame.public_key).ok_or_else(
                                || {
                                    archive::Error::Untrusted(
                                        "its signature frame holds no valid ed25519 public key"
                                            .into(),
                                    )
                                },
                            )?,
                            bytes: frame.signature,
                        },
                        digest,
                    )),
                    None => None,
                };
                policy.check(&name, &paths, signature)?;
                stats
            }
            // What failed to decode or was refused may be bytes damaged on the way: the digest
            // (over everything, read to the end) tells damaged bytes from a bad archive.
            Err(
                e @ (archive::Error::Stream(_)
                | archive::Error::Refused { .. }
                | archive::Error::Corrupt(_)),
            ) => {
                return Err(match reader.verify() {
                    Err(archive::Error::Digest) => archive::Error::Digest,
                    _ => e,
                }
                .into())
            }
            // The destination failed: dropping the reader stops the download.
            Err(e) => return Err(e.into()),
        };
        Ok(stats)
    });
    let part_bytes = opts.part_bytes as u64;
    let downloaded = download::download(
        store,
        entry.name.clone(),
        size,
        download::chunk_size(size, opts.concurrency, part_bytes),
        opts.concurrency,
        tx,
        reporter,
    )
    .await;
    let unpacked = unpacker.await.map_err(|_| Error::Panicked("unpack"))?;
    match first_cause(downloaded, unpacked) {
        Ok(((), stats)) => Ok(stats),
        // The whole object arrived, so a stream that does not decode is a damaged entry.
        Err(Error::Archive(archive::Error::Stream(e))) => Err(archive::Error::Corrupt(format!(
            "the archive does not decode ({e}); it is truncated or not a cachectl archive"
        ))
        .into()),
        Err(e) => Err(e),
    }
}

/// A configured path that is a symlink stands for what it points to (docs/FORMAT.md): the
/// tree is restored where the link points (the link stays); a dangling link's target is
/// created. Followed as the kernel follows links, at most 40 deep.
/// What a replace of `dest` must carry over from the old tree: the local store, when it lies
/// inside `dest` (a save never archives it, so the cached tree never has it).
fn kept_inside(dest: &std::path::Path, local_root: Option<&std::path::Path>) -> Vec<PathBuf> {
    let (Some(root), Ok(dest)) = (local_root, std::fs::canonicalize(dest)) else {
        return Vec::new();
    };
    match std::fs::canonicalize(root) {
        Ok(root) => root
            .strip_prefix(&dest)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
            .map(|rel| vec![rel.to_path_buf()])
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn through_root_link(dest: &std::path::Path) -> PathBuf {
    let mut path = dest.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => {
                let parent = path.parent().unwrap_or(std::path::Path::new("/"));
                path = parent.join(target);
            }
            Err(_) => break,
        }
    }
    path
}

/// A reader that counts what passes through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Counted { inner, bytes: 0 }
    }
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reads the decompressed stream past the tar end to its end: zero padding only (tar writers
/// pad to their record size); anything else is data no tar reader would restore.
fn only_zeros_left(rest: &mut impl std::io::Read) -> Result<(), archive::Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut buf).map_err(archive::Error::Stream)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(archive::Error::Corrupt(
                "it holds data after the end of the tar stream".into(),
            ));
        }
    }
}

/// Runs blocking filesystem work (`what`, for the panic report) on the blocking pool.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Panicked(what))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_side_failure_is_the_cause() {
        let store_err = || Error::Store(store::Error::NotFound { what: "get".into() });
        let local_err = || Error::Archive(archive::Error::Corrupt("bad".into()));
        type Case = (
            &'static str,
            Result<(), Error>,
            Result<(), Error>,
            &'static str,
        );
        let cases: [Case; 4] = [
            (
                "store failed, local saw it stop",
                Err(store_err()),
                Err(local_err()),
                "get: not found",
            ),
            (
                "local failed, store stopped",
                Err(Error::Stopped),
                Err(local_err()),
                "archive is corrupt: bad",
            ),
            (
                "local failed, store finished",
                Ok(()),
                Err(local_err()),
                "archive is corrupt: bad",
            ),
            (
                "store failed alone",
                Err(store_err()),
                Ok(()),
                "get: not found",
            ),
        ];
        for (name, transport, local, want) in cases {
            let got = first_cause(transport, local).unwrap_err();
            assert_eq!(got.to_string(), want, "case {name}");
        }
    }
}
