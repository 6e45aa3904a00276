//! The S3 store: entries are objects `<prefix>v1/<pathset>/<key>` with `cachectl-*` user metadata.

use super::{
    parse_object_name, parse_use_name, use_object_name, BoxError, EntryInfo, EntryMeta, Error,
    Leftover, LeftoverKind, PutOutcome, Removal, Scan, Scanned, Store, Upload, UseRecord,
};
use crate::aws_error::{self, Kind};
use crate::env;
use crate::key::EntryName;
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

/// Connect fast, but let a slow link finish a part: a socket silent for `READ_TIMEOUT` is a
/// stall, and an attempt longer than `ATTEMPT_TIMEOUT` (an 8 MiB part at under ~70 KB/s) is
/// given up; either way the SDK retries it (hanging restores are the top complaint about
/// other caches).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_ATTEMPTS: u32 = 4;

/// An S3 client built the way every cachectl command wants it.
///
/// TLS is rustls with ring (see Cargo.toml). Credentials and region come from the default chain
/// (env, profile, CodeBuild's container credentials, IMDS); without a region we use us-east-1.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let loader = || {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http.clone())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
    };
    let conf = loader().load().await;
    if conf.region().is_some() {
        return conf;
    }
    // S3 needs some region to sign with; outside AWS with none configured, us-east-1 is S3's home.
    loader()
        .region(aws_config::Region::from_static("us-east-1"))
        .load()
        .await
}

fn endpoint_overridden() -> bool {
    [env::AWS_ENDPOINT_URL_S3, env::AWS_ENDPOINT_URL]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}

impl S3Store {
    pub async fn new(bucket: String, prefix: String) -> Self {
        let conf = sdk_config().await;
        // S3-compatible servers (moto, MinIO, s3s) rarely serve virtual-hosted bucket names.
        // The archive's blake3 (checked end to end at restore) makes the SDK's per-request CRC32
        // redundant, so it is computed only where S3 requires one.
        let s3conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(endpoint_overridden())
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

    fn classify<E>(&self, what: String, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.bucket, what, err)
    }
}

/// Maps an SDK error to what it means for a cache: see `store::Error`.
fn classify<E>(bucket: &str, what: String, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let c = aws_error::classify(&err);
    let source: BoxError = c.text.into();
    if c.code.as_deref() == Some("NoSuchBucket") {
        return Error::NoBucket {
            what,
            bucket: bucket.to_owned(),
        };
    }
    match c.kind {
        Kind::NoCredentials => Error::NoCredentials { what, source },
        Kind::Unreachable => Error::Unreachable { what, source },
        Kind::Denied => Error::Denied { what, source },
        Kind::NotFound => Error::NotFound { what },
        Kind::Throttled => Error::Throttled { what, source },
        Kind::Other => Error::Other { what, source },
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (metadata must be ASCII).
pub fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Metadata back from HEAD's user-metadata map; `None` when it is not a cachectl entry's.
fn meta_from_headers(m: &std::collections::HashMap<String, String>) -> Option<EntryMeta> {
    let get = |k: &str| m.get(k).map(String::as_str);
    Some(EntryMeta {
        format: get("cachectl-format")?.parse().ok()?,
        key: super::percent_decode(get("cachectl-key")?)?,
        paths: serde_json::from_str(&super::percent_decode(get("cachectl-paths")?)?).ok()?,
        family: super::percent_decode(get("cachectl-family")?)?,
        created: get("cachectl-created")?.to_owned(),
        cachectl: get("cachectl-version").unwrap_or_default().to_owned(),
    })
}

/// HEADs in flight while scanning: listing is paged 1,000 at a time, HEADs are one each.
const SCAN_HEADS_IN_FLIGHT: usize = 32;

fn meta_headers(meta: &EntryMeta) -> Vec<(&'static str, String)> {
    vec![
        ("cachectl-format", meta.format.to_string()),
        ("cachectl-key", pct_encode(&meta.key)),
        (
            "cachectl-paths",
            pct_encode(&serde_json::to_string(&meta.paths).expect("paths serialize")),
        ),
        ("cachectl-family", pct_encode(&meta.family)),
        ("cachectl-created", meta.created.clone()),
        ("cachectl-version", meta.cachectl.clone()),
    ]
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

    async fn list(&self, pathset: &str, key_prefix: &str) -> Result<Vec<EntryInfo>, Error> {
        let rel = EntryName {
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
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| self.classify(what(), e))?;
        let expect = format!("bytes {}-{}/", range.start, range.end - 1);
        if !out.content_range().is_some_and(|r| r.starts_with(&expect)) {
            return Err(Error::Other {
                what: what(),
                source: format!("server answered Content-Range {:?}", out.content_range()).into(),
            });
        }
        let body = out.body.collect().await.map_err(|e| Error::Unreachable {
            what: what(),
            source: Box::new(e),
        })?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::Unreachable {
                what: what(),
                source: format!("body ended after {} bytes", bytes.len()).into(),
            });
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
            Err(e) if is_precondition_failed(&e) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(self.classify(format!("put s3://{}/{key}", self.bucket), e)),
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
        let out = req
            .send()
            .await
            .map_err(|e| self.classify(format!("start upload s3://{}/{key}", self.bucket), e))?;
        let upload_id = out.upload_id().unwrap_or_default().to_owned();
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
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
            Err(e) if is_precondition_failed(&e) => Ok(()),
            Err(e) => Err(self.classify(format!("record use s3://{}/{key}", self.bucket), e)),
        }
    }

    async fn scan(&self, key_prefix: &str) -> Result<Scan, Error> {
        let mut infos = Vec::new();
        self.list_under(
            &format!("{}/", crate::key::FORMAT_DIR),
            |rel, size, modified| {
                if let Some(name) = parse_object_name(rel).filter(|n| n.key.starts_with(key_prefix))
                {
                    infos.push(EntryInfo {
                        name,
                        size,
                        modified,
                    });
                }
            },
        )
        .await?;
        let mut uses = Vec::new();
        self.list_under(&format!("{}/", super::USED_DIR), |rel, _, _| {
            if let Some((pathset, hour, key)) = parse_use_name(rel) {
                if key.starts_with(key_prefix) {
                    uses.push(UseRecord {
                        name: EntryName { pathset, key },
                        hour,
                    });
                }
            }
        })
        .await?;
        let mut warnings = Vec::new();
        let leftovers = if key_prefix.is_empty() {
            match self.stale_uploads().await? {
                Some(l) => l,
                None => {
                    warnings.push(format!(
                        "s3://{}/{}: the server does not implement ListMultipartUploads, so uploads left by interrupted saves were not looked for",
                        self.bucket, self.prefix
                    ));
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let entries = stream::iter(infos)
            .map(|info| async move {
                let meta = self.head_meta(&info.name).await?;
                Ok::<_, Error>(Scanned { info, meta })
            })
            .buffered(SCAN_HEADS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(Scan {
            entries,
            uses,
            leftovers,
            warnings,
        })
    }

    async fn remove(&self, batch: &[Removal]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Option<Result<(), Error>>> = batch.iter().map(|_| None).collect();
        let mut keys = Vec::new();
        let mut key_slots = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            match r {
                Removal::Entry(name) => {
                    keys.push(self.object_key(name));
                    key_slots.push(i);
                }
                Removal::Use(u) => {
                    keys.push(format!(
                        "{}{}",
                        self.prefix,
                        use_object_name(u, &u.name.key)
                    ));
                    key_slots.push(i);
                }
                Removal::Leftover(l) => {
                    results[i] = Some(match &l.kind {
                        LeftoverKind::Upload { key, upload_id } => {
                            self.abort_upload(key, upload_id).await
                        }
                        LeftoverKind::File(p) => Err(Error::Other {
                            what: format!("remove {}", p.display()),
                            source: "not an S3 leftover".into(),
                        }),
                    });
                }
            }
        }
        for (slot, res) in key_slots.into_iter().zip(self.delete_keys(&keys).await) {
            results[slot] = Some(res);
        }
        results
            .into_iter()
            .map(|r| r.expect("every removal has a result"))
            .collect()
    }
}

impl S3Store {
    /// Every object whose name (below the store prefix) starts with `rel_prefix`, with size and
    /// LastModified, page by page.
    async fn list_under(
        &self,
        rel_prefix: &str,
        mut visit: impl FnMut(&str, u64, SystemTime),
    ) -> Result<(), Error> {
        let prefix = format!("{}{rel_prefix}", self.prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.classify(format!("list s3://{}/{prefix}", self.bucket), e))?;
            for obj in page.contents() {
                if let Some(rel) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    let size = obj.size().unwrap_or(0).max(0) as u64;
                    visit(rel, size, to_system_time(obj.last_modified()));
                }
            }
        }
        Ok(())
    }

    /// HEAD of the entry's object; `Ok(None)` when it does not exist.
    async fn head_object(&self, name: &EntryName) -> Result<Option<HeadObjectOutput>, Error> {
        let key = self.object_key(name);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => match self.classify(format!("head s3://{}/{key}", self.bucket), e) {
                Error::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The entry's metadata; `Ok(None)` when the entry vanished or carries none of ours.
    async fn head_meta(&self, name: &EntryName) -> Result<Option<EntryMeta>, Error> {
        Ok(self
            .head_object(name)
            .await?
            .and_then(|out| out.metadata().and_then(meta_from_headers)))
    }

    /// Multipart uploads under `<prefix>v1/` that were never completed or aborted; `None` when
    /// the server does not implement the listing (some S3-compatible servers): entries can
    /// still be pruned, and such uploads are left to the server's own cleanup.
    async fn stale_uploads(&self) -> Result<Option<Vec<Leftover>>, Error> {
        let prefix = format!("{}{}/", self.prefix, crate::key::FORMAT_DIR);
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = match self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e)
                    if e.code() == Some("NotImplemented")
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 501) =>
                {
                    return Ok(None);
                }
                Err(e) => {
                    return Err(
                        self.classify(format!("list uploads s3://{}/{prefix}", self.bucket), e)
                    )
                }
            };
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                out.push(Leftover {
                    what: format!("multipart upload s3://{}/{key}", self.bucket),
                    since: to_system_time(u.initiated()),
                    kind: LeftoverKind::Upload {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                    },
                });
            }
            if page.is_truncated() != Some(true) {
                return Ok(Some(out));
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(Some(out));
            }
        }
    }

    /// One DeleteObjects for `keys`; per-key results in order.
    async fn delete_keys(&self, keys: &[String]) -> Vec<Result<(), Error>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let objects = keys
            .iter()
            .map(|k| {
                ObjectIdentifier::builder()
                    .key(k)
                    .build()
                    .expect("key is set")
            })
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .expect("objects are set");
        let what = |k: &str| format!("delete s3://{}/{k}", self.bucket);
        match self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
        {
            Ok(out) => {
                // Quiet mode lists only the failures.
                let mut failed: std::collections::HashMap<&str, String> = out
                    .errors()
                    .iter()
                    .filter(|e| e.code() != Some("NoSuchKey"))
                    .filter_map(|e| {
                        let msg = format!(
                            "{}: {}",
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or("")
                        );
                        e.key().map(|k| (k, msg))
                    })
                    .collect();
                keys.iter()
                    .map(|k| match failed.remove(k.as_str()) {
                        None => Ok(()),
                        Some(msg) if msg.starts_with("AccessDenied") => Err(Error::Denied {
                            what: what(k),
                            source: msg.into(),
                        }),
                        Some(msg) => Err(Error::Other {
                            what: what(k),
                            source: msg.into(),
                        }),
                    })
                    .collect()
            }
            Err(e) => {
                let e = self.classify(
                    format!("delete {} objects in s3://{}", keys.len(), self.bucket),
                    e,
                );
                let shared = crate::error::chain(&e);
                keys.iter()
                    .map(|k| {
                        Err(Error::Other {
                            what: what(k),
                            source: shared.clone().into(),
                        })
                    })
                    .collect()
            }
        }
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(format!("abort upload s3://{}/{key}", self.bucket), e) {
                Error::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    // A 412 from HEAD-less servers may come without a body, so also look at the status.
    e.code() == Some("PreconditionFailed")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    overwrite: bool,
    parts: Mutex<Vec<CompletedPart>>,
}

impl S3Upload {
    fn fail<E>(&self, what: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(
            &self.bucket,
            format!("{what} s3://{}/{}", self.bucket, self.key),
            err,
        )
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn put_part(&self, part_number: u32, _offset: u64, data: Bytes) -> Result<(), Error> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number as i32)
            .body(ByteStream::from(data))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.fail(&format!("upload part {part_number} of"), e))?;
        let part = CompletedPart::builder()
            .part_number(part_number as i32)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
            .build();
        self.parts.lock().expect("parts lock").push(part);
        Ok(())
    }

    async fn complete(&self) -> Result<PutOutcome, Error> {
        let mut parts = std::mem::take(&mut *self.parts.lock().expect("parts lock"));
        parts.sort_by_key(|p| p.part_number());
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if !self.overwrite {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) if is_precondition_failed(&e) => {
                let _ = self.abort().await;
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(self.fail("complete upload", e)),
        }
    }

    async fn abort(&self) -> Result<(), Error> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fail("abort upload", e))
    }
}
