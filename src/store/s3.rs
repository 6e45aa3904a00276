//! The S3 store: entries are objects `<prefix>v1/<pathset>/<key>` with `cachectl-*` user metadata.

use super::{parse_object_name, BoxError, EntryInfo, EntryMeta, Error, PutOutcome, Store, Upload};
use crate::aws_error::{self, Kind};
use crate::env;
use crate::key::EntryName;
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
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
        let key = self.object_key(name);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(EntryInfo {
                name: name.clone(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                modified: to_system_time(out.last_modified()),
            })),
            Err(e) => match self.classify(format!("head s3://{}/{key}", self.bucket), e) {
                Error::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn list(&self, pathset: &str, key_prefix: &str) -> Result<Vec<EntryInfo>, Error> {
        let prefix = self.object_key(&EntryName {
            pathset: pathset.to_owned(),
            key: key_prefix.to_owned(),
        });
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.classify(format!("list s3://{}/{prefix}", self.bucket), e))?;
            for obj in page.contents() {
                let Some(rel) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let Some(name) = parse_object_name(rel) else {
                    continue;
                };
                out.push(EntryInfo {
                    name,
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    modified: to_system_time(obj.last_modified()),
                });
            }
        }
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
