//! Where cache entries live. One trait, two backends (S3, a local directory); nothing outside
//! this module knows which one it talks to.

pub mod local;
pub mod s3;

use crate::error::Hint;
use crate::key::{EntryName, Scope, FORMAT_DIR};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Store failures by meaning; backend detail rides in `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: access denied")]
    Denied {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: no AWS credentials")]
    NoCredentials {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: bucket `{bucket}` does not exist")]
    NoBucket { what: String, bucket: String },
    #[error("{what}: cannot reach the store")]
    Unreachable {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: throttled by the store")]
    Throttled {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: local store I/O")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Other {
        what: String,
        #[source]
        source: BoxError,
    },
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::NoBucket { bucket, .. } => Some(format!(
                "create the bucket or fix --store / CACHECTL_STORE (looked for `{bucket}`)"
            )),
            Error::Io { .. } => {
                Some("check the local store directory's permissions and free space".into())
            }
            // A backend's own error knows the fix (an AWS error names the IAM action, the
            // endpoint variables, the credential chain).
            Error::Denied { source, .. }
            | Error::NoCredentials { source, .. }
            | Error::Unreachable { source, .. }
            | Error::Throttled { source, .. }
            | Error::Other { source, .. } => source
                .downcast_ref::<crate::aws::Error>()
                .and_then(Hint::hint),
            Error::NotFound { .. } => None,
        }
    }
}

/// Entry metadata written at save time (docs/FORMAT.md, "Metadata").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub format: u32,
    pub key: String,
    pub paths: Vec<String>,
    pub family: String,
    pub created: String,
    pub cachectl: String,
}

/// What a listing or a head request knows about an entry.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub name: EntryName,
    pub size: u64,
    /// When the entry became visible (S3 LastModified, local mtime): "newest" means this.
    pub modified: SystemTime,
}

/// One hour in which an entry was restored: the object `v1-used/<pathset>/<hour stamp>/<key>`
/// (docs/FORMAT.md, "Last use"). Only its name carries information.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UseRecord {
    pub name: EntryName,
    /// Hours since the Unix epoch (UTC) at the start of that hour.
    pub hour: u64,
}

impl UseRecord {
    pub fn at(name: EntryName, t: SystemTime) -> Self {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UseRecord {
            name,
            hour: secs / 3600,
        }
    }

    /// `YYYYMMDDHH` (UTC): sorts like time and reads like a date in a bucket listing.
    pub fn stamp(&self) -> String {
        let t =
            crate::units::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(self.hour * 3600));
        t[..13].chars().filter(char::is_ascii_digit).collect()
    }

    pub fn parse_stamp(stamp: &str) -> Option<u64> {
        if stamp.len() != 10 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let t = crate::units::parse_rfc3339(&format!(
            "{}-{}-{}T{}:00:00Z",
            &stamp[..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[8..10]
        ))?;
        Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() / 3600)
    }

    /// The end of the hour: the latest the use can have been, so `--min-age` errs on keeping.
    pub fn latest(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs((self.hour + 1) * 3600)
    }
}

/// An entry found by [`Store::scan`], with its metadata when it could be read.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub info: EntryInfo,
    pub meta: Option<EntryMeta>,
}

/// Something an interrupted save left behind.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// For messages: `multipart upload s3://b/v1/…/key` or the file's path.
    pub what: String,
    /// When it was started or last written.
    pub since: SystemTime,
    pub kind: LeftoverKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverKind {
    /// An S3 multipart upload never completed or aborted.
    Upload { key: String, upload_id: String },
    /// A local-store temporary file, or a metadata sidecar whose archive is gone.
    File(PathBuf),
}

/// Everything in a store: entries, use records and leftovers, in no particular order.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Scanned>,
    pub uses: Vec<UseRecord>,
    pub leftovers: Vec<Leftover>,
    /// What the scan could not look at, and why (e.g. a server without ListMultipartUploads).
    pub warnings: Vec<String>,
}

/// One thing [`Store::remove`] deletes.
#[derive(Debug, Clone)]
pub enum Removal {
    /// The archive and its metadata (use records are separate removals).
    Entry(EntryName),
    Use(UseRecord),
    Leftover(Leftover),
}

/// Most removals in one [`Store::remove`] call: S3's DeleteObjects limit.
pub const MAX_REMOVALS_PER_CALL: usize = 1000;

/// The result of a put that must not clobber (keys are immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// Someone else created the entry first; our bytes were discarded.
    AlreadyExists,
}

/// A cache store.
///
/// The contract every backend keeps (tests/it/contract.rs checks each clause, on every
/// backend, with the same code):
/// - An entry becomes visible whole or not at all: until `put` or `Upload::complete` returns,
///   `head`, `list` and `scan` do not show it; after, `get_range` returns exactly its bytes.
/// - `put` and `Upload::complete` with `overwrite = false` never replace an existing entry;
///   of N concurrent writers of one name exactly one gets `PutOutcome::Created` and the rest
///   `PutOutcome::AlreadyExists`. With `overwrite = true` the last writer's bytes win.
/// - `Upload::abort` releases everything the upload stored (S3 parts, a local temp file): a
///   later `scan` finds no leftover of it.
/// - `remove` of something already gone is `Ok`.
/// - `record_use` is idempotent within the hour: a second call stores nothing more.
/// - `list(pathset, prefix)` returns exactly the committed entries of that path set whose key
///   starts with `prefix`: not other path sets, not uploads in progress, not use records.
/// - `get_range` returns exactly `range.end - range.start` bytes for any range within the
///   entry, the first and the last byte included.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `s3://bucket/prefix` or the directory, for messages.
    fn describe(&self) -> String;

    /// The directory the store keeps entries in on this machine, if it does: a save never
    /// archives it.
    fn local_root(&self) -> Option<PathBuf> {
        None
    }

    /// The entry if it exists.
    async fn head(&self, name: &EntryName) -> Result<Option<EntryInfo>, Error>;

    /// Entries of one scope and path set whose key starts with `key_prefix`, in no particular
    /// order.
    async fn list(
        &self,
        scope: &Scope,
        pathset: &str,
        key_prefix: &str,
    ) -> Result<Vec<EntryInfo>, Error>;

    /// Bytes `range` of the entry's archive object (`range.end` must not pass its size).
    async fn get_range(&self, name: &EntryName, range: Range<u64>) -> Result<Bytes, Error>;

    /// Stores a whole (small) archive in one request.
    async fn put(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        data: Bytes,
        overwrite: bool,
    ) -> Result<PutOutcome, Error>;

    /// Starts an upload whose parts may be sent concurrently.
    async fn create_upload(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        overwrite: bool,
    ) -> Result<Box<dyn Upload>, Error>;

    /// Records that `use_.name` was restored during `use_.hour`. Idempotent within the hour and
    /// cheap: one conditional write of an empty object, a no-op when the hour is already there.
    async fn record_use(&self, use_: &UseRecord) -> Result<(), Error>;

    /// Every entry whose key starts with `key_prefix` (all scopes and path sets), their use
    /// records, and
    /// leftovers of interrupted saves. Lists with pagination; reads each matching entry's
    /// metadata (S3: one HEAD each, several in flight).
    async fn scan(&self, key_prefix: &str) -> Result<Scan, Error>;

    /// Deletes up to [`MAX_REMOVALS_PER_CALL`] things; one result per removal, in order.
    /// Something already gone counts as removed.
    async fn remove(&self, batch: &[Removal]) -> Vec<Result<(), Error>>;
}

/// An upload in progress. Parts are numbered from 1 and may be sent in any order, concurrently;
/// `offset` is where the part starts in the object.
#[async_trait]
pub trait Upload: Send + Sync {
    async fn put_part(&self, part_number: u32, offset: u64, data: Bytes) -> Result<(), Error>;
    async fn complete(&self) -> Result<PutOutcome, Error>;
    async fn abort(&self) -> Result<(), Error>;
}

/// `--store` / `CACHECTL_STORE` parsed; `None` picks the embedded default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UrlError {
    #[error("store `{0}` has no bucket name; write s3://BUCKET[/PREFIX]")]
    NoBucket(String),
    #[error("no store given and neither XDG_CACHE_HOME nor HOME is set; pass --store")]
    NoDefault,
}

impl Hint for UrlError {
    fn hint(&self) -> Option<String> {
        None
    }
}

impl StoreUrl {
    pub fn parse(
        raw: Option<&str>,
        xdg_cache: Option<&str>,
        home: Option<&str>,
    ) -> Result<Self, UrlError> {
        fn non_empty(s: Option<&str>) -> Option<&str> {
            s.filter(|s| !s.is_empty())
        }
        match non_empty(raw) {
            Some(url) => match url.strip_prefix("s3://") {
                Some(rest) => {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        return Err(UrlError::NoBucket(url.to_owned()));
                    }
                    let prefix = prefix.trim_matches('/');
                    Ok(StoreUrl::S3 {
                        bucket: bucket.to_owned(),
                        prefix: if prefix.is_empty() {
                            String::new()
                        } else {
                            format!("{prefix}/")
                        },
                    })
                }
                None => Ok(StoreUrl::Local(PathBuf::from(url))),
            },
            None => match (non_empty(xdg_cache), non_empty(home)) {
                (Some(x), _) => Ok(StoreUrl::Local(PathBuf::from(x).join("cachectl"))),
                (None, Some(h)) => Ok(StoreUrl::Local(PathBuf::from(h).join(".cache/cachectl"))),
                (None, None) => Err(UrlError::NoDefault),
            },
        }
    }

    /// Opens the store. S3 loads the AWS configuration (no request is sent yet).
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            StoreUrl::S3 { bucket, prefix } => {
                Arc::new(s3::S3Store::new(bucket.clone(), prefix.clone()).await)
            }
            StoreUrl::Local(dir) => Arc::new(local::LocalStore::new(dir.clone())),
        }
    }
}

/// `%XX` sequences back to bytes, as UTF-8; `None` for a malformed escape or invalid UTF-8
/// (a name cachectl did not write). Decodes both the local store's file names and S3 metadata.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let well_formed = b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Top directory of use records, next to `v1/` so entry listings never see them.
pub const USED_DIR: &str = "v1-used";

/// `[untrusted/<scope>/]v1-used/<pathset>/<stamp>/` + key (below the store prefix), the name
/// of a use record; `key` is the key as the backend spells it in names.
pub(crate) fn use_object_name(u: &UseRecord, key: &str) -> String {
    format!(
        "{}{USED_DIR}/{}/{}/{key}",
        u.name.scope.dir(),
        u.name.pathset,
        u.stamp()
    )
}

/// Parses `[untrusted/<scope>/]v1-used/<pathset>/<stamp>/<key>` (the key as the backend spells
/// it; the caller unescapes).
pub(crate) fn parse_use_name(rel: &str) -> Option<UseRecord> {
    let (scope, rel) = Scope::split_dir(rel)?;
    let rest = rel.strip_prefix(USED_DIR)?.strip_prefix('/')?;
    let (pathset, rest) = rest.split_once('/')?;
    let (stamp, key) = rest.split_once('/')?;
    if pathset.len() != 16 || key.is_empty() {
        return None;
    }
    Some(UseRecord {
        name: EntryName {
            scope,
            pathset: pathset.to_owned(),
            key: key.to_owned(),
        },
        hour: UseRecord::parse_stamp(stamp)?,
    })
}

/// Parses `[untrusted/<scope>/]v1/<pathset>/<key>` (below the store prefix) back into a name.
pub(crate) fn parse_object_name(rel: &str) -> Option<EntryName> {
    let (scope, rel) = Scope::split_dir(rel)?;
    let rest = rel.strip_prefix(FORMAT_DIR)?.strip_prefix('/')?;
    let (pathset, key) = rest.split_once('/')?;
    if pathset.len() != 16 || key.is_empty() {
        return None;
    }
    Some(EntryName {
        scope,
        pathset: pathset.to_owned(),
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type UrlCase<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        StoreUrl,
    );

    #[test]
    fn store_urls() {
        let s3 = |b: &str, p: &str| StoreUrl::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        let cases: &[UrlCase] = &[
            ("bucket only", Some("s3://b"), None, None, s3("b", "")),
            ("bucket slash", Some("s3://b/"), None, None, s3("b", "")),
            (
                "prefix",
                Some("s3://b/ci/cache/"),
                None,
                None,
                s3("b", "ci/cache/"),
            ),
            (
                "local",
                Some("/tmp/c"),
                None,
                None,
                StoreUrl::Local("/tmp/c".into()),
            ),
            (
                "xdg",
                None,
                Some("/x"),
                Some("/h"),
                StoreUrl::Local("/x/cachectl".into()),
            ),
            (
                "empty xdg",
                Some(""),
                Some(""),
                Some("/h"),
                StoreUrl::Local("/h/.cache/cachectl".into()),
            ),
        ];
        for (name, raw, xdg, home, want) in cases {
            assert_eq!(
                &StoreUrl::parse(*raw, *xdg, *home).unwrap(),
                want,
                "case {name}"
            );
        }
        assert!(matches!(
            StoreUrl::parse(Some("s3://"), None, None),
            Err(UrlError::NoBucket(_))
        ));
        assert!(matches!(
            StoreUrl::parse(None, None, None),
            Err(UrlError::NoDefault)
        ));
    }

    #[test]
    fn object_names_round_trip() {
        let n = EntryName {
            scope: Scope::Trusted,
            pathset: "0123456789abcdef".into(),
            key: "a/b-c".into(),
        };
        assert_eq!(n.object_name(), "v1/0123456789abcdef/a/b-c");
        assert_eq!(parse_object_name(&n.object_name()), Some(n.clone()));
        let pr = EntryName {
            scope: Scope::Untrusted("pr-7".into()),
            ..n
        };
        assert_eq!(pr.object_name(), "untrusted/pr-7/v1/0123456789abcdef/a/b-c");
        assert_eq!(parse_object_name(&pr.object_name()), Some(pr));
        assert_eq!(parse_object_name("untrusted/v1/0123456789abcdef/k"), None);
        assert_eq!(parse_object_name("v1/short/k"), None);
        assert_eq!(parse_object_name("v2/0123456789abcdef/k"), None);
    }

    #[test]
    fn metadata_values_round_trip_through_percent_encoding() {
        for v in [
            "npm-linux-x64-3f2a",
            "ünïcödé/ key%",
            "[\"node_modules\",\"~/.npm\"]",
            "",
        ] {
            assert_eq!(percent_decode(&s3::encode_metadata(v)).as_deref(), Some(v));
        }
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn use_records_round_trip_through_their_names() {
        let name = EntryName {
            scope: Scope::Trusted,
            pathset: "0123456789abcdef".into(),
            key: "npm/x-1".into(),
        };
        let t = crate::units::parse_rfc3339("2026-11-26T17:42:10Z").unwrap();
        let u = UseRecord::at(name.clone(), t);
        assert_eq!(u.stamp(), "2026112617");
        let obj = use_object_name(&u, &name.key);
        assert_eq!(obj, "v1-used/0123456789abcdef/2026112617/npm/x-1");
        assert_eq!(parse_use_name(&obj), Some(u.clone()));
        let pr = UseRecord {
            name: EntryName {
                scope: Scope::Untrusted("pr-7".into()),
                ..name.clone()
            },
            ..u.clone()
        };
        let obj = use_object_name(&pr, &name.key);
        assert_eq!(
            obj,
            "untrusted/pr-7/v1-used/0123456789abcdef/2026112617/npm/x-1"
        );
        assert_eq!(parse_use_name(&obj), Some(pr));
        assert_eq!(
            crate::units::rfc3339(u.latest()),
            "2026-11-26T18:00:00Z",
            "a use counts as late as its hour allows"
        );
        assert_eq!(parse_use_name("v1-used/0123456789abcdef/20261126/k"), None);
        assert_eq!(parse_use_name("v1-used/0123456789abcdef/2026112617"), None);
        assert_eq!(UseRecord::parse_stamp("2026139917"), None);
    }
}
