//! The S3 store: entries are objects `<prefix>v1/<pathset>/<key>` with `cachectl-*` user
//! metadata (docs/FORMAT.md). Reads and writes here; the multipart upload in `upload`, the
//! listing, scanning and deleting of prune and rm in `scan`.

mod scan;
mod upload;

use super::{
    parse_object_name, use_object_name, EntryInfo, EntryMeta, Error, PutOutcome, Removal, Scan,
    Store, Upload, UseRecord,
};
use crate::aws::{self, iam, Kind, Service};
use crate::key::{EntryName, Scope};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::ops::Range;
use std::sync::Mutex;
use std::time::SystemTime;

/// A bucket (and key prefix) holding cache entries. Cheap to clone: the client is shared.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
}

impl S3Store {
    /// `s3://bucket/prefix/` through the default AWS configuration ([`aws::sdk_config`]).
    pub async fn new(bucket: String, prefix: String) -> Self {
        Self::with_config(&aws::sdk_config().await, bucket, prefix)
    }

    /// The store on an explicit SDK configuration (endpoint, credentials): for tests and
    /// embedders. `prefix` is empty or ends in `/`.
    pub fn with_config(conf: &SdkConfig, bucket: String, prefix: String) -> Self {
        // S3-compatible servers (moto, MinIO, s3s) rarely serve virtual-hosted bucket names.
        // The archive's blake3 (checked end to end at restore) makes the SDK's per-request CRC32
        // redundant, so it is computed only where S3 requires one.
        let s3conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(aws::endpoint_overridden(conf, Service::S3))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        S3Store {
            client: Client::from_conf(s3conf),
            bucket,
            prefix,
        }
    }

    fn object_key(&self, name: &EntryName) -> String {
        format!("{}{}", self.prefix, name.object_name())
    }

    /// A failed call needing IAM `action`, while doing `what`, as a store error.
    fn fail<E>(&self, what: String, action: &'static str, err: &SdkError<E, Response>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.error(what, aws::Error::from_sdk(Service::S3, action, err))
    }

    /// What an AWS error means for a cache (see [`Error`]); the AWS error stays the source,
    /// so its hint (the IAM action, the endpoint variables) reaches the user.
    fn error(&self, what: String, e: aws::Error) -> Error {
        if e.code.as_deref() == Some("NoSuchBucket") {
            return Error::NoBucket {
                what,
                bucket: self.bucket.clone(),
            };
        }
        match e.kind {
            Kind::NotFound => Error::NotFound { what },
            Kind::NoCredentials => Error::NoCredentials {
                what,
                source: Box::new(e),
            },
            Kind::Unreachable => Error::Unreachable {
                what,
                source: Box::new(e),
            },
            Kind::Denied => Error::Denied {
                what,
                source: Box::new(e),
            },
            Kind::Throttled => Error::Throttled {
                what,
                source: Box::new(e),
            },
            Kind::Other => Error::Other {
                what,
                source: Box::new(e),
            },
        }
    }
}

/// Everything but RFC 3986's unreserved characters is escaped: user metadata must be ASCII.
const METADATA_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A user-metadata value: percent-encoded UTF-8 (docs/FORMAT.md, "Metadata").
pub(super) fn encode_metadata(s: &str) -> String {
    utf8_percent_encode(s, METADATA_ESCAPED).to_string()
}

fn meta_headers(meta: &EntryMeta) -> Vec<(&'static str, String)> {
    let enc = encode_metadata;
    vec![
        ("cachectl-format", meta.format.to_string()),
        ("cachectl-key", enc(&meta.key)),
        (
            "cachectl-paths",
            enc(&serde_json::to_string(&meta.paths).expect("paths serialize")),
        ),
        ("cachectl-family", enc(&meta.family)),
        ("cachectl-created", meta.created.clone()),
        ("cachectl-version", meta.cachectl.clone()),
    ]
}

/// Metadata back from HEAD's user-metadata map; `None` when it is not a cachectl entry's.
fn meta_from_headers(m: &std::collections::HashMap<String, String>) -> Option<EntryMeta> {
    let get = |k: &str| m.get(k).map(String::as_str);
    let dec = super::percent_decode;
    Some(EntryMeta {
        format: get("cachectl-format")?.parse().ok()?,
        key: dec(get("cachectl-key")?)?,
        paths: serde_json::from_str(&dec(get("cachectl-paths")?)?).ok()?,
        family: dec(get("cachectl-family")?)?,
        created: get("cachectl-created")?.to_owned(),
        cachectl: get("cachectl-version").unwrap_or_default().to_owned(),
    })
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn head(&self, name: &EntryName) -> Result<Option<EntryInfo>, Error> {
        Ok(self.head_object(name).await?.map(|out| EntryInfo {
            name: name.clone(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            modified: to_system_time(out.last_modified()),
        }))
    }

    async fn list(
        &self,
        scope: &Scope,
        pathset: &str,
        key_prefix: &str,
    ) -> Result<Vec<EntryInfo>, Error> {
        let rel = EntryName {
            scope: scope.clone(),
            pathset: pathset.to_owned(),
            key: key_prefix.to_owned(),
        }
        .object_name();
        let mut out = Vec::new();
        self.list_under(&rel, |rel, size, modified| {
            if let Some(name) = parse_object_name(rel) {
                out.push(EntryInfo {
                    name,
                    size,
                    modified,
                });
            }
        })
        .await?;
        Ok(out)
    }

    async fn get_range(&self, name: &EntryName, range: Range<u64>) -> Result<Bytes, Error> {
        let key = self.object_key(name);
        let what = || format!("get s3://{}/{key} bytes {range:?}", self.bucket);
        // An answer that is not the bytes asked for is the transport's failure: retryable.
        let broken = |detail: String| Error::Unreachable {
            what: what(),
            source: Box::new(aws::Error::new(
                Service::S3,
                iam::S3_GET_OBJECT,
                Kind::Unreachable,
                detail,
            )),
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| self.fail(what(), iam::S3_GET_OBJECT, &e))?;
        let expect = format!("bytes {}-{}/", range.start, range.end - 1);
        if !out.content_range().is_some_and(|r| r.starts_with(&expect)) {
            return Err(Error::Other {
                what: what(),
                source: format!("server answered Content-Range {:?}", out.content_range()).into(),
            });
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| broken(format!("reading the body: {e}")))?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 != range.end - range.start {
            return Err(broken(format!("body ended after {} bytes", bytes.len())));
        }
        Ok(bytes)
    }

    async fn put(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        data: Bytes,
        overwrite: bool,
    ) -> Result<PutOutcome, Error> {
        let key = self.object_key(name);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/zstd")
            .body(ByteStream::from(data));
        for (k, v) in meta_headers(meta) {
            req = req.metadata(k, v);
        }
        if !overwrite {
            req = req.if_none_match("*");
        }
        // Signing would SHA-256 every byte; TLS protects the transfer and blake3 the content.
        match req.customize().disable_payload_signing().send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) => {
                let e = aws::Error::from_sdk(Service::S3, iam::S3_PUT_OBJECT, &e);
                if e.lost_conditional_write() {
                    Ok(PutOutcome::AlreadyExists)
                } else {
                    Err(self.error(format!("put s3://{}/{key}", self.bucket), e))
                }
            }
        }
    }

    async fn create_upload(
        &self,
        name: &EntryName,
        meta: &EntryMeta,
        overwrite: bool,
    ) -> Result<Box<dyn Upload>, Error> {
        let key = self.object_key(name);
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/zstd");
        for (k, v) in meta_headers(meta) {
            req = req.metadata(k, v);
        }
        let out = req.send().await.map_err(|e| {
            let what = format!("start upload s3://{}/{key}", self.bucket);
            self.fail(what, iam::S3_PUT_OBJECT, &e)
        })?;
        let upload_id = out.upload_id().unwrap_or_default().to_owned();
        Ok(Box::new(upload::S3Upload {
            store: self.clone(),
            key,
            upload_id,
            overwrite,
            parts: Mutex::new(Vec::new()),
        }))
    }

    async fn record_use(&self, use_: &UseRecord) -> Result<(), Error> {
        let key = format!("{}{}", self.prefix, use_object_name(use_, &use_.name.key));
        // If-None-Match makes the second restore in an hour a no-op instead of a write.
        match self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from_static(b""))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws::Error::from_sdk(Service::S3, iam::S3_PUT_OBJECT, &e);
                if e.lost_conditional_write() {
                    Ok(())
                } else {
                    Err(self.error(format!("record use s3://{}/{key}", self.bucket), e))
                }
            }
        }
    }

    async fn scan(&self, key_prefix: &str) -> Result<Scan, Error> {
        self.scan_all(key_prefix).await
    }

    async fn remove(&self, batch: &[Removal]) -> Vec<Result<(), Error>> {
        self.remove_batch(batch).await
    }
}
