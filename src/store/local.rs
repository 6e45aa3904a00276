//! The local-directory store: `<root>/v1/<pathset>/<escaped key>` plus a `%meta` sidecar.
//!
//! Uploads go to `<root>/tmp/` and appear under their name with one `link` (no clobber) or
//! `rename` (overwrite), so a reader never sees a half-written archive.

use super::{
    EntryInfo, EntryMeta, Error, Leftover, LeftoverKind, PutOutcome, Removal, Scan, Scanned, Store,
    Upload, UseRecord, USED_DIR,
};
use crate::key::{EntryName, Scope, FORMAT_DIR, UNTRUSTED_DIR};
use async_trait::async_trait;
use bytes::Bytes;
use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Sidecar suffix; cannot occur in an escaped name (every escaped `%` is followed by hex).
pub const META_SUFFIX: &str = "%meta";
/// Longest file name most filesystems take.
const MAX_NAME_BYTES: usize = 255;

pub struct LocalStore {
    root: PathBuf,
}

/// `%` -> `%25`, `/` -> `%2F`, a leading `.` -> `%2E`; prefix-preserving (docs/FORMAT.md).
pub fn escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    out
}

/// Inverse of [`escape`]: plain percent-decoding.
pub fn unescape(name: &str) -> Option<String> {
    super::percent_decode(name)
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Runs the filesystem work of one store call on the blocking pool, never on an async worker.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Other {
            what: what.to_owned(),
            source: Box::new(e),
        })?
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        LocalStore { root }
    }

    /// `<root>/[untrusted/<scope>/]v1/<pathset>`.
    fn dir(&self, scope: &Scope, pathset: &str) -> PathBuf {
        self.root.join(scope.dir()).join(FORMAT_DIR).join(pathset)
    }

    fn data_path(&self, name: &EntryName) -> Result<PathBuf, Error> {
        let escaped = escape(&name.key);
        if escaped.len() + META_SUFFIX.len() > MAX_NAME_BYTES {
            return Err(Error::Other {
                what: format!("key `{}`", name.key),
                source: format!(
                    "escaped key is {} bytes; a local store file name holds {}",
                    escaped.len(),
                    MAX_NAME_BYTES - META_SUFFIX.len()
                )
                .into(),
            });
        }
        Ok(self.dir(&name.scope, &name.pathset).join(escaped))
    }

    fn temp_path(&self) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join("tmp")
            .join(format!("{}-{nanos:08x}-{n}.part", std::process::id()))
    }
}

fn info_from(name: EntryName, md: &fs::Metadata) -> EntryInfo {
    EntryInfo {
        name,
        size: md.len(),
        modified: md.modified().unwrap_or(std::time::UNIX_EPOCH),
    }
}

/// `<root>/[untrusted/<scope>/]v1-used/<pathset>/<stamp>/<escaped key>`.
fn use_path(root: &Path, u: &UseRecord) -> PathBuf {
    root.join(u.name.scope.dir())
        .join(USED_DIR)
        .join(&u.name.pathset)
        .join(u.stamp())
        .join(escape(&u.name.key))
}

/// Names in `dir` with their types (from the directory entry: no stat), a missing directory
/// being empty. Names that are not UTF-8 are not ours and are skipped.
fn read_dir_names(dir: &Path) -> Result<Vec<(String, fs::FileType)>, Error> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("list {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io_err(format!("list {}", dir.display())))?;
        if let (Some(name), Ok(ty)) = (ent.file_name().to_str(), ent.file_type()) {
            out.push((name.to_owned(), ty));
        }
    }
    Ok(out)
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", path.display()))(e)),
    }
}

/// A file an interrupted save or delete left behind, dated by its mtime.
fn file_leftover(path: PathBuf) -> Leftover {
    Leftover {
        what: path.display().to_string(),
        since: fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH),
        kind: LeftoverKind::File(path),
    }
}

fn is_pathset(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The blocking part of [`LocalStore::scan`]: one directory at a time, stat and sidecar read
/// only for matching entries, so memory is the result plus one directory's names.
fn scan_dir(root: &Path, key_prefix: &str) -> Result<Scan, Error> {
    let mut scan = Scan::default();
    scan_scope(root, &Scope::Trusted, key_prefix, &mut scan)?;
    let untrusted = root.join(UNTRUSTED_DIR);
    for (name, ty) in read_dir_names(&untrusted)? {
        // Anything else there is not cachectl's.
        if let (true, Ok(scope)) = (ty.is_dir(), Scope::untrusted(&name)) {
            scan_scope(&untrusted.join(&name), &scope, key_prefix, &mut scan)?;
        }
    }
    if key_prefix.is_empty() {
        let tmp = root.join("tmp");
        for (fname, ty) in read_dir_names(&tmp)? {
            if ty.is_file() {
                scan.leftovers.push(file_leftover(tmp.join(&fname)));
            }
        }
    }
    Ok(scan)
}

/// The entries and use records of one scope, whose `v1/` and `v1-used/` are in `root`.
fn scan_scope(root: &Path, scope: &Scope, key_prefix: &str, scan: &mut Scan) -> Result<(), Error> {
    for (pathset, ty) in read_dir_names(&root.join(FORMAT_DIR))? {
        if ty.is_dir() && is_pathset(&pathset) {
            let name = EntryName {
                scope: scope.clone(),
                pathset: pathset.clone(),
                key: String::new(),
            };
            scan_entries(
                &root.join(FORMAT_DIR).join(&pathset),
                &name,
                key_prefix,
                scan,
            )?;
        }
    }
    for (pathset, ty) in read_dir_names(&root.join(USED_DIR))? {
        if !ty.is_dir() || !is_pathset(&pathset) {
            continue;
        }
        let dir = root.join(USED_DIR).join(&pathset);
        for (stamp, _) in read_dir_names(&dir)? {
            let Some(hour) = UseRecord::parse_stamp(&stamp) else {
                continue;
            };
            for (fname, _) in read_dir_names(&dir.join(&stamp))? {
                if let Some(key) = unescape(&fname).filter(|k| k.starts_with(key_prefix)) {
                    scan.uses.push(UseRecord {
                        name: EntryName {
                            scope: scope.clone(),
                            pathset: pathset.clone(),
                            key,
                        },
                        hour,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Entries of one path-set directory into `scan` (named as `dir_name` with each file's key),
/// and sidecars whose archive is gone.
fn scan_entries(
    dir: &Path,
    dir_name: &EntryName,
    key_prefix: &str,
    scan: &mut Scan,
) -> Result<(), Error> {
    let files = read_dir_names(dir)?;
    let data: std::collections::HashSet<&str> = files
        .iter()
        .filter(|(n, ty)| ty.is_file() && !n.ends_with(META_SUFFIX))
        .map(|(n, _)| n.as_str())
        .collect();
    for (fname, ty) in &files {
        if let Some(stem) = fname.strip_suffix(META_SUFFIX) {
            // An interrupted delete removes the archive first and may leave the sidecar.
            if !data.contains(stem) && key_prefix.is_empty() {
                scan.leftovers.push(file_leftover(dir.join(fname)));
            }
            continue;
        }
        if !ty.is_file() {
            continue;
        }
        let Some(key) = unescape(fname).filter(|k| k.starts_with(key_prefix)) else {
            continue;
        };
        let path = dir.join(fname);
        // Removed since the listing: not an entry any more.
        let Ok(md) = fs::metadata(&path) else {
            continue;
        };
        let meta = fs::read(meta_path(&path))
            .ok()
            .and_then(|b| serde_json::from_slice::<EntryMeta>(&b).ok());
        let name = EntryName {
            key,
            ..dir_name.clone()
        };
        scan.entries.push(Scanned {
            info: info_from(name, &md),
            meta,
        });
    }
    Ok(())
}

fn meta_path(data: &Path) -> PathBuf {
    let mut s = data.as_os_str().to_owned();
    s.push(META_SUFFIX);
    PathBuf::from(s)
}

#[async_trait]
impl Store for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    async fn head(&self, name: &EntryName) -> Result<Option<EntryInfo>, Error> {
        let path = self.data_path(name)?;
        let name = name.clone();
        blocking("head", move || match fs::metadata(&path) {
            Ok(md) => Ok(Some(info_from(name, &md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("stat {}", path.display()))(e)),
        })
        .await
    }

    async fn list(
        &self,
        scope: &Scope,
        pathset: &str,
        key_prefix: &str,
    ) -> Result<Vec<EntryInfo>, Error> {
        let dir = self.dir(scope, pathset);
        let prefix = escape(key_prefix);
        let (scope, pathset) = (scope.clone(), pathset.to_owned());
        blocking("list", move || {
            let mut out = Vec::new();
            for (fname, ty) in read_dir_names(&dir)? {
                if !ty.is_file() || !fname.starts_with(&prefix) || fname.ends_with(META_SUFFIX) {
                    continue;
                }
                let Some(key) = unescape(&fname) else {
                    continue;
                };
                // A file removed between readdir and stat is simply not listed.
                let Ok(md) = fs::metadata(dir.join(&fname)) else {
                    continue;
                };
                let name = EntryName {
                    scope: scope.clone(),
                    pathset: pathset.clone(),
                    key,
                };
                out.push(info_from(name, &md));
            }
            Ok(out)
        })
        .await
    }

    async fn get_range(&self, name: &EntryName, range: Range<u64>) -> Result<Bytes, Error> {
        let path = self.data_path(name)?;
        blocking("read", move || {
            let what = || format!("read {} bytes {range:?}", path.display());
            let file = File::open(&path).map_err(io_err(what()))?;
            let mut buf = vec![0u8; (range.end - range.start) as usize];
            file.read_exact_at(&mut buf, range.start)
                .map_err(io_err(what()))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn put(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        data: Bytes,
        overwrite: bool,
    ) -> Result<PutOutcome, Error> {
        let up = self.create_upload(name, meta, overwrite).await?;
        if let Err(e) = up.put_part(1, 0, data).await {
            let _ = up.abort().await;
            return Err(e);
        }
        up.complete().await
    }

    async fn create_upload(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        overwrite: bool,
    ) -> Result<Box<dyn Upload>, Error> {
        let dest = self.data_path(name)?;
        let tmp = self.temp_path();
        let meta_json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
        let file = blocking("create upload", {
            let tmp = tmp.clone();
            move || {
                let parent = tmp.parent().expect("temp path has a parent");
                fs::create_dir_all(parent)
                    .map_err(io_err(format!("create {}", parent.display())))?;
                File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))
            }
        })
        .await?;
        Ok(Box::new(LocalUpload {
            file: Arc::new(file),
            tmp,
            dest,
            meta_json,
            overwrite,
        }))
    }

    async fn record_use(&self, use_: &UseRecord) -> Result<(), Error> {
        let path = use_path(&self.root, use_);
        blocking("record use", move || {
            let parent = path.parent().expect("use record has a parent");
            fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
            // create_new: the second restore in the hour finds the record and writes nothing.
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(io_err(format!("create {}", path.display()))(e)),
            }
        })
        .await
    }

    async fn scan(&self, key_prefix: &str) -> Result<Scan, Error> {
        let root = self.root.clone();
        let key_prefix = key_prefix.to_owned();
        blocking("scan", move || scan_dir(&root, &key_prefix)).await
    }

    async fn remove(&self, batch: &[Removal]) -> Vec<Result<(), Error>> {
        let store = LocalStore::new(self.root.clone());
        let batch = batch.to_vec();
        let n = batch.len();
        match tokio::task::spawn_blocking(move || {
            batch.iter().map(|r| store.remove_one(r)).collect()
        })
        .await
        {
            Ok(results) => results,
            Err(e) => (0..n)
                .map(|_| {
                    Err(Error::Other {
                        what: "remove".into(),
                        source: e.to_string().into(),
                    })
                })
                .collect(),
        }
    }
}

impl LocalStore {
    fn remove_one(&self, r: &Removal) -> Result<(), Error> {
        match r {
            Removal::Entry(name) => {
                let data = self.data_path(name)?;
                // Archive first: a sidecar left alone is a leftover the next prune removes.
                remove_if_present(&data)?;
                remove_if_present(&meta_path(&data))
            }
            Removal::Use(u) => {
                let path = use_path(&self.root, u);
                remove_if_present(&path)?;
                // The hour's directory goes when its last record does; a non-empty one stays.
                let _ = fs::remove_dir(path.parent().expect("use record has a parent"));
                Ok(())
            }
            Removal::Leftover(l) => match &l.kind {
                LeftoverKind::File(p) => remove_if_present(p),
                LeftoverKind::Upload { key, .. } => Err(Error::Other {
                    what: format!("abort upload {key}"),
                    source: "not a local-store leftover".into(),
                }),
            },
        }
    }
}

struct LocalUpload {
    file: Arc<File>,
    tmp: PathBuf,
    dest: PathBuf,
    meta_json: Vec<u8>,
    overwrite: bool,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn put_part(&self, part_number: u32, offset: u64, data: Bytes) -> Result<(), Error> {
        let file = Arc::clone(&self.file);
        let what = format!("write part {part_number} to {}", self.tmp.display());
        blocking("write part", move || {
            file.write_all_at(&data, offset).map_err(io_err(what))
        })
        .await
    }

    async fn complete(&self) -> Result<PutOutcome, Error> {
        let (tmp, dest, meta_json, overwrite) = (
            self.tmp.clone(),
            self.dest.clone(),
            self.meta_json.clone(),
            self.overwrite,
        );
        blocking("complete upload", move || {
            let parent = dest.parent().expect("entry path has a parent");
            fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
            let publish = if overwrite {
                fs::rename(&tmp, &dest)
            } else {
                // link(2) fails if the name exists: the no-clobber publish S3 does with If-None-Match.
                fs::hard_link(&tmp, &dest).and_then(|()| fs::remove_file(&tmp))
            };
            match publish {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = fs::remove_file(&tmp);
                    return Ok(PutOutcome::AlreadyExists);
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_err(format!("publish {}", dest.display()))(e));
                }
            }
            // The sidecar follows the data: restore never needs it, `ls` and prune tolerate its absence.
            let meta = meta_path(&dest);
            let meta_tmp = meta_path(&tmp);
            fs::write(&meta_tmp, &meta_json)
                .and_then(|()| fs::rename(&meta_tmp, &meta))
                .map_err(io_err(format!("write {}", meta.display())))?;
            Ok(PutOutcome::Created)
        })
        .await
    }

    async fn abort(&self) -> Result<(), Error> {
        let tmp = self.tmp.clone();
        blocking("abort upload", move || remove_if_present(&tmp)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_preserves_prefixes() {
        let cases = [
            ("npm-linux-abc", "npm-linux-abc"),
            ("a/b", "a%2Fb"),
            ("100%", "100%25"),
            (".hidden", "%2Ehidden"),
            ("..", "%2E."),
            ("a.b", "a.b"),
            ("ключ", "ключ"),
        ];
        for (key, want) in cases {
            assert_eq!(escape(key), want, "key {key}");
            assert_eq!(unescape(&escape(key)).as_deref(), Some(key));
            assert!(!escape(key).contains(META_SUFFIX));
        }
        for (key, prefix) in [("a/b/c", "a/"), (".x-1", ".x"), ("100%-x", "100%")] {
            assert!(escape(key).starts_with(&escape(prefix)), "{key} / {prefix}");
        }
    }
}
