//! Where cache entries live. One trait, two backends (S3, a local directory); nothing outside
//! this module knows which one it talks to.

pub mod local;
pub mod s3;

use crate::key::{EntryName, FORMAT_DIR};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

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

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Denied { .. } => "the build's role needs s3:GetObject, s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload on the cache bucket; check the credentials in use (`aws sts get-caller-identity`)".into(),
            Error::NoCredentials { .. } => "in CodeBuild the project's service role provides credentials; elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Error::NoBucket { bucket, .. } => format!("create the bucket or fix --store / CACHECTL_STORE (looked for `{bucket}`)"),
            Error::Unreachable { .. } => "check AWS_ENDPOINT_URL / AWS_REGION and network access to S3 (a VPC build needs an S3 gateway endpoint or NAT)".into(),
            Error::Throttled { .. } => "lower --concurrency or spread builds over more key prefixes".into(),
            Error::Io { .. } => "check the local store directory's permissions and free space".into(),
            Error::NotFound { .. } | Error::Other { .. } => return None,
        })
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

/// The result of a put that must not clobber (keys are immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// Someone else created the entry first; our bytes were discarded.
    AlreadyExists,
}

/// A cache store.
///
/// Contract shared by both backends:
/// - An entry becomes visible whole or not at all: readers never see a partial upload.
/// - `put` and `Upload::complete` with `overwrite = false` never replace an existing entry;
///   a concurrent writer that loses gets `PutOutcome::AlreadyExists`.
/// - `Upload::abort` releases everything the upload stored (S3 parts, local temp file).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `s3://bucket/prefix` or the directory, for messages.
    fn describe(&self) -> String;

    /// The entry if it exists.
    async fn head(&self, name: &EntryName) -> Result<Option<EntryInfo>, Error>;

    /// Entries of one path set whose key starts with `key_prefix`, in no particular order.
    async fn list(&self, pathset: &str, key_prefix: &str) -> Result<Vec<EntryInfo>, Error>;

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

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("store `{0}` has no bucket name; write s3://BUCKET[/PREFIX]")]
    NoBucket(String),
    #[error("no store given and neither XDG_CACHE_HOME nor HOME is set; pass --store")]
    NoDefault,
}

impl crate::error::Hint for UrlError {
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

/// Parses `v1/<pathset>/<key>` (below the store prefix) back into a name.
pub(crate) fn parse_object_name(rel: &str) -> Option<EntryName> {
    let rest = rel.strip_prefix(FORMAT_DIR)?.strip_prefix('/')?;
    let (pathset, key) = rest.split_once('/')?;
    if pathset.len() != 16 || key.is_empty() {
        return None;
    }
    Some(EntryName {
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
            pathset: "0123456789abcdef".into(),
            key: "a/b-c".into(),
        };
        assert_eq!(parse_object_name(&n.object_name()), Some(n));
        assert_eq!(parse_object_name("v1/short/k"), None);
        assert_eq!(parse_object_name("v2/0123456789abcdef/k"), None);
    }
}
