//! Restore side: read a tar stream into staging directories, creating files from several
//! threads, refusing any entry that could land outside its root.
//!
//! Order of work, chosen so no entry can ever be written through a symlink:
//! 1. directories are created and regular files written (small files by a worker pool);
//! 2. hard links, once every file exists;
//! 3. symlinks, last, so nothing is ever written below one;
//! 4. directory modes and mtimes, deepest first, once nothing more is written inside.

use super::long::short;
use super::Error;
use crate::timings;
use crossbeam_channel as channel;
use filetime::FileTime;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Files up to this size are read into memory and handed to a worker; larger ones are
/// streamed to disk by the reading thread (memory stays bounded by queue x this size).
const SMALL_FILE_BYTES: u64 = 512 * 1024;
const QUEUE_JOBS: usize = 64;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub file_bytes: u64,
    /// Devices, FIFOs and other types we never restore.
    pub skipped: u64,
}

struct FileJob {
    path: PathBuf,
    data: Vec<u8>,
    mode: u32,
    mtime: FileTime,
}

/// Unpacks `tar` into `roots[i]` for entries named `i/...`. A root of `None` (a path that is
/// not part of this restore) makes its entries an error.
pub fn unpack<R: Read>(tar: R, roots: &[PathBuf], workers: usize) -> Result<UnpackStats, Error> {
    let (tx, rx) = channel::bounded::<FileJob>(QUEUE_JOBS);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    // Checked once per entry by the reader, so a flag rather than the mutex.
    let failed = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let rx = rx.clone();
                let (first_err, failed) = (&first_err, &failed);
                s.spawn(move || {
                    for job in rx {
                        let res = timings::WORKERS_BUSY
                            .time(|| write_file(&job.path, &job.data, job.mode, job.mtime));
                        if let Err(e) = res {
                            first_err.lock().expect("error slot").get_or_insert(e);
                            failed.store(true, Ordering::Relaxed);
                            // Keep draining so the reader never blocks on a full queue.
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        let started = std::time::Instant::now();
        let read = read_entries(tar, roots, &tx, &failed);
        if timings::enabled() {
            // What the reading thread did besides waiting, hashing and writing large files.
            let elsewhere = [
                &timings::FETCH_WAIT,
                &timings::HASH,
                &timings::QUEUE_WAIT,
                &timings::LARGE_FILES,
            ]
            .iter()
            .map(|s| s.secs())
            .sum::<f64>();
            let wall = started.elapsed().as_secs_f64();
            timings::DECODE_PARSE.add(std::time::Duration::from_secs_f64(
                (wall - elsewhere).max(0.0),
            ));
        }
        drop(tx);
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        if panicked {
            return Err(Error::WorkerPanic);
        }
        read
    });
    let (mut stats, deferred) = result?;
    if let Some(e) = first_err.into_inner().expect("error slot") {
        return Err(e);
    }
    timings::METADATA.time(|| deferred.finish(&mut stats))?;
    Ok(stats)
}

/// Work that must wait until every regular file exists.
#[derive(Default)]
struct Deferred {
    hardlinks: Vec<(PathBuf, PathBuf, String)>,
    symlinks: Vec<(PathBuf, PathBuf, FileTime, String)>,
    symlink_paths: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, u32, FileTime)>,
}

impl Deferred {
    /// Refuses a path with a (to be created) symlink at or above it.
    fn check_not_below_symlink(&self, path: &Path, name: &str) -> Result<(), Error> {
        if self.symlink_paths.is_empty() {
            return Ok(());
        }
        let mut p = path;
        while let Some(parent) = p.parent() {
            if self.symlink_paths.contains(p) {
                return Err(refused(name, "it would be written through a symlink"));
            }
            p = parent;
        }
        Ok(())
    }

    fn finish(self, stats: &mut UnpackStats) -> Result<(), Error> {
        let symlink_targets: std::collections::HashMap<&Path, &Path> = self
            .symlinks
            .iter()
            .map(|(p, t, _, _)| (p.as_path(), t.as_path()))
            .collect();
        for (path, target, name) in &self.hardlinks {
            let res = match symlink_targets.get(target.as_path()) {
                // A hard link to a symlink entry: its target does not exist yet; copy the link.
                Some(t) => short(path).and_then(|p| std::os::unix::fs::symlink(t, p)),
                None => {
                    remove_if_file(path);
                    short(target).and_then(|t| short(path).and_then(|p| fs::hard_link(t, p)))
                }
            };
            res.map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    refused(
                        name,
                        "it is a hard link to an entry the archive does not contain",
                    )
                } else {
                    write_err(path, e)
                }
            })?;
            stats.hardlinks += 1;
        }
        for (path, target, mtime, name) in &self.symlinks {
            short(path)
                .and_then(|p| std::os::unix::fs::symlink(target, p))
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        refused(name, "a symlink collides with another entry of the archive")
                    } else {
                        write_err(path, e)
                    }
                })?;
            if let Ok(p) = short(path) {
                let _ = filetime::set_symlink_file_times(p, *mtime, *mtime);
            }
            stats.symlinks += 1;
        }
        // Deepest first: archive order lists parents before children.
        for (path, mode, mtime) in self.dirs.iter().rev() {
            let p = short(path).map_err(|e| write_err(path, e))?;
            fs::set_permissions(&p, Permissions::from_mode(*mode))
                .map_err(|e| write_err(path, e))?;
            filetime::set_file_mtime(&p, *mtime).map_err(|e| write_err(path, e))?;
        }
        Ok(())
    }
}

fn refused(name: &str, why: &'static str) -> Error {
    Error::Refused {
        name: name.to_owned(),
        why,
    }
}

fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// `i/rel/path` -> `roots[i]/rel/path`, refusing anything that could leave the root.
fn resolve(roots: &[PathBuf], raw: &[u8], name: &str) -> Result<PathBuf, Error> {
    resolve_as(roots, raw, name, Role::Path)
}

/// Which name of an entry is being resolved, for the refusal message.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Path,
    LinkTarget,
}

fn resolve_as(roots: &[PathBuf], raw: &[u8], name: &str, role: Role) -> Result<PathBuf, Error> {
    let (absolute, dotdot, index) = match role {
        Role::Path => (
            "its path is absolute",
            "its path contains `..`",
            "it does not start with the index of a cached path",
        ),
        Role::LinkTarget => (
            "it is a hard link to an absolute path",
            "it is a hard link whose target contains `..`",
            "it is a hard link to a path outside the cached paths",
        ),
    };
    if raw.first() == Some(&b'/') {
        return Err(refused(name, absolute));
    }
    let mut comps = Path::new(OsStr::from_bytes(raw)).components();
    let root = match comps.next() {
        Some(Component::Normal(first)) => first
            .to_str()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|i| roots.get(i))
            .ok_or_else(|| refused(name, index))?,
        _ => return Err(refused(name, index)),
    };
    let mut out = root.clone();
    for c in comps {
        match c {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused(name, dotdot)),
            Component::RootDir | Component::Prefix(_) => return Err(refused(name, absolute)),
        }
    }
    Ok(out)
}

fn read_entries<R: Read>(
    tar: R,
    roots: &[PathBuf],
    tx: &channel::Sender<FileJob>,
    worker_failed: &AtomicBool,
) -> Result<(UnpackStats, Deferred), Error> {
    let mut archive = tar::Archive::new(tar);
    let mut stats = UnpackStats::default();
    let mut deferred = Deferred::default();
    let mut made_dirs: HashSet<PathBuf> = HashSet::new();
    // The staging roots' parents exist; everything below is ours to create.
    for r in roots {
        if let Some(p) = r.parent() {
            made_dirs.insert(p.to_path_buf());
        }
    }
    let entries = archive.entries().map_err(Error::Stream)?;
    for entry in entries {
        if worker_failed.load(Ordering::Relaxed) {
            break; // a worker failed; its error is reported by the caller
        }
        let mut entry = entry.map_err(Error::Stream)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            check_global_header(&mut entry, &name)?;
            continue;
        }
        if kind.is_pax_local_extensions() {
            continue;
        }
        stats.entries += 1;
        let pax_mtime = honoured_pax(&mut entry, &name)?;
        let path = resolve(roots, &raw, &name)?;
        deferred.check_not_below_symlink(&path, &name)?;
        let mode = entry.header().mode().map_err(Error::Stream)? & 0o777;
        let mtime = FileTime::from_unix_time(
            match pax_mtime {
                Some(secs) => secs,
                None => entry.header().mtime().map_err(Error::Stream)? as i64,
            },
            0,
        );
        match kind {
            tar::EntryType::Directory => {
                ensure_dir(&path, &mut made_dirs)?;
                deferred.dirs.push((path, mode, mtime));
                stats.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = path.parent() {
                    ensure_dir(parent, &mut made_dirs)?;
                }
                let size = entry.size();
                stats.files += 1;
                stats.file_bytes += size;
                if size <= SMALL_FILE_BYTES {
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).map_err(Error::Stream)?;
                    let job = FileJob {
                        path,
                        data,
                        mode,
                        mtime,
                    };
                    if timings::QUEUE_WAIT.time(|| tx.send(job)).is_err() {
                        break;
                    }
                } else {
                    stream_file(&mut entry, &path, mode, mtime)?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused(&name, "it is a symlink without a target"))?
                    .into_owned();
                if let Some(parent) = path.parent() {
                    ensure_dir(parent, &mut made_dirs)?;
                }
                deferred.symlink_paths.insert(path.clone());
                deferred.symlinks.push((
                    path,
                    PathBuf::from(OsStr::from_bytes(&target)),
                    mtime,
                    name,
                ));
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused(&name, "it is a hard link without a target"))?
                    .into_owned();
                let target = resolve_as(roots, &raw_target, &name, Role::LinkTarget)?;
                deferred.check_not_below_symlink(&target, &name)?;
                if let Some(parent) = path.parent() {
                    ensure_dir(parent, &mut made_dirs)?;
                }
                deferred.hardlinks.push((path, target, name));
            }
            _ => stats.skipped += 1,
        }
    }
    Ok((stats, deferred))
}

/// The keys of an extended (PAX) header restore acts on; the others (atime, ctime, uid, gid,
/// uname, gname, SCHILY.* and LIBARCHIVE.* xattrs, comment, charset, hdrcharset) are ignored,
/// as owners and extended attributes are.
const HONOURED_PAX_KEYS: [&str; 4] = ["path", "linkpath", "size", "mtime"];

/// Checks the entry's extended header: every record well formed, every honoured value parsed
/// (a `size` or `mtime` that does not parse refuses the entry, where a lenient reader would
/// fall back to the plain header and restore something GNU tar refuses), no sparse file.
/// Returns the PAX `mtime` in whole seconds, when there is one.
fn honoured_pax<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<Option<i64>, Error> {
    let Some(records) = entry.pax_extensions().map_err(Error::Stream)? else {
        return Ok(None);
    };
    let mut mtime = None;
    for record in records {
        let record = record
            .map_err(|_| refused(name, "its extended (PAX) header has a malformed record"))?;
        let key = record.key().map_err(|_| {
            refused(
                name,
                "its extended (PAX) header has a key that is not UTF-8",
            )
        })?;
        let value = || record.value().ok();
        match key {
            "size" => {
                value().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
                    refused(
                        name,
                        "its extended (PAX) `size` is not a number of bytes below 2^64",
                    )
                })?;
            }
            "mtime" => {
                mtime = Some(value().and_then(parse_pax_time).ok_or_else(|| {
                    refused(name, "its extended (PAX) `mtime` is not a time in seconds")
                })?);
            }
            k if k.starts_with("GNU.sparse.") => {
                return Err(refused(
                    name,
                    "it is a GNU sparse file, which cachectl does not restore",
                ))
            }
            // `path` and `linkpath` are applied by the tar reader and checked by `resolve`.
            _ => {}
        }
    }
    Ok(mtime)
}

/// A global extended header applies to every entry after it; cachectl applies none, so one
/// that sets an honoured key would make it restore something other than tar does.
fn check_global_header<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<(), Error> {
    let mut data = Vec::new();
    entry.read_to_end(&mut data).map_err(Error::Stream)?;
    for record in tar::PaxExtensions::new(&data) {
        let record = record
            .map_err(|_| refused(name, "its global extended header has a malformed record"))?;
        if record.key().is_ok_and(|k| HONOURED_PAX_KEYS.contains(&k)) {
            return Err(refused(
                name,
                "a global extended header sets path, linkpath, size or mtime for every entry",
            ));
        }
    }
    Ok(())
}

/// `123`, `-86400`, `1700000000.25`: whole seconds, rounded down (POSIX PAX times).
fn parse_pax_time(v: &str) -> Option<i64> {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let below = secs < 0 || whole.starts_with('-');
    Some(if below && fraction.bytes().any(|b| b != b'0') {
        secs - 1
    } else {
        secs
    })
}

/// Creates `dir` and its missing parents once; a cache of what exists saves a syscall per file.
fn ensure_dir(dir: &Path, made: &mut HashSet<PathBuf>) -> Result<(), Error> {
    if made.contains(dir) {
        return Ok(());
    }
    // Archives list a directory's files together, so a small cache keeps nearly every hit
    // while memory stays bounded on trees of millions of directories.
    if made.len() >= 16 * 1024 {
        made.clear();
    }
    match short(dir).and_then(fs::create_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Only ever a real directory: the staging tree holds no symlinks yet.
            let md = short(dir)
                .and_then(fs::symlink_metadata)
                .map_err(|e| write_err(dir, e))?;
            if !md.is_dir() {
                return Err(Error::Refused {
                    name: dir.display().to_string(),
                    why: "a directory entry collides with a file entry",
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().ok_or_else(|| write_err(dir, e))?;
            ensure_dir(parent, made)?;
            short(dir)
                .and_then(fs::create_dir)
                .map_err(|e| write_err(dir, e))?;
        }
        Err(e) => return Err(write_err(dir, e)),
    }
    made.insert(dir.to_path_buf());
    Ok(())
}

fn open_for_write(path: &Path, mode: u32) -> io::Result<fs::File> {
    // O_NOFOLLOW: even if something put a symlink here, we never write through it.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(short(path)?)
}

/// The process umask, read once from /proc (reading it with umask(2) would change it).
/// Unknown: assume every bit may be masked, so modes are always applied explicitly.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777)
    })
}

/// Applies the archived mode exactly (`open(2)`'s mode went through the umask; a chmod is only
/// needed when the umask removed a bit) and the mtime.
fn finish_file(file: &fs::File, path: &Path, mode: u32, mtime: FileTime) -> Result<(), Error> {
    if mode & umask() != 0 {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| write_err(path, e))?;
    }
    filetime::set_file_handle_times(file, None, Some(mtime)).map_err(|e| write_err(path, e))
}

fn remove_if_file(path: &Path) {
    let Ok(p) = short(path) else {
        return;
    };
    if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
        let _ = fs::remove_file(&p);
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32, mtime: FileTime) -> Result<(), Error> {
    let mut f = open_for_write(path, mode).map_err(|e| write_err(path, e))?;
    f.write_all(data).map_err(|e| write_err(path, e))?;
    finish_file(&f, path, mode, mtime)
}

fn stream_file<R: Read>(src: &mut R, path: &Path, mode: u32, mtime: FileTime) -> Result<(), Error> {
    let mut f = open_for_write(path, mode).map_err(|e| write_err(path, e))?;
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        // Only the writes count as large-file time; reads wait on the download and decoder.
        let n = src.read(&mut buf).map_err(Error::Stream)?;
        if n == 0 {
            break;
        }
        timings::LARGE_FILES
            .time(|| f.write_all(&buf[..n]))
            .map_err(|e| write_err(path, e))?;
    }
    finish_file(&f, path, mode, mtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let cases = [
            ("zero", "0", Some(0)),
            ("whole", "1700000000", Some(1_700_000_000)),
            ("fraction rounds down", "1700000000.75", Some(1_700_000_000)),
            ("before 1970", "-86400", Some(-86_400)),
            ("before 1970 with a fraction", "-1.5", Some(-2)),
            ("just before 1970", "-0.5", Some(-1)),
            ("trailing zeros", "-3.000", Some(-3)),
            ("words", "yesterday", None),
            ("empty", "", None),
            ("beyond 64 bits", "99999999999999999999999", None),
            ("bad fraction", "12.5x", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_pax_time(text), want, "case {name}");
        }
    }

    #[test]
    fn resolve_table() {
        let roots = vec![PathBuf::from("/s/0"), PathBuf::from("/s/1")];
        let ok: &[(&str, &str)] = &[
            ("0", "/s/0"),
            ("0/", "/s/0"),
            ("1/a/b.js", "/s/1/a/b.js"),
            ("0/./a", "/s/0/a"),
        ];
        for (name, want) in ok {
            assert_eq!(
                resolve(&roots, name.as_bytes(), name).unwrap(),
                PathBuf::from(want),
                "{name}"
            );
        }
        let bad = [
            "/etc/passwd",
            "0/../x",
            "0/a/../../x",
            "2/a",
            "x/a",
            "../0/a",
            "",
            "-1/a",
        ];
        for name in bad {
            assert!(
                matches!(
                    resolve(&roots, name.as_bytes(), name),
                    Err(Error::Refused { .. })
                ),
                "{name} should be refused"
            );
        }
    }
}
