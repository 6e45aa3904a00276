//! The retained bucket after the stack is gone: how much it holds, and, when asked, emptying
//! it (every object version, delete marker and unfinished multipart upload) and deleting it.

use super::Error;
use crate::aws::{self, iam, Service};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An S3 call's error as [`Error::S3`], saying what was being done.
fn s3<E>(what: String, action: &'static str) -> impl FnOnce(SdkError<E, Response>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Error::S3 {
        what,
        source: aws::Error::from_sdk(Service::S3, action, &e),
    }
}

/// Objects and bytes in the bucket (current versions), or None if the bucket does not exist.
pub async fn size(client: &Client, bucket: &str) -> Result<Option<(u64, u64)>, Error> {
    let mut objects = 0;
    let mut bytes = 0;
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                let err = aws::Error::from_sdk(Service::S3, iam::S3_LIST_BUCKET, &e);
                if err.kind == aws::Kind::NotFound {
                    return Ok(None);
                }
                return Err(Error::S3 {
                    what: format!("list s3://{bucket}"),
                    source: err,
                });
            }
        };
        for o in page.contents() {
            objects += 1;
            bytes += o.size().unwrap_or(0).max(0) as u64;
        }
    }
    Ok(Some((objects, bytes)))
}

/// What [`delete_bucket`] removed.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Emptied {
    pub versions: u64,
    pub uploads: u64,
}

/// Deletes every object version and delete marker (1,000 per DeleteObjects call, S3's limit),
/// aborts every multipart upload, then deletes the bucket.
pub async fn delete_bucket(client: &Client, bucket: &str) -> Result<Emptied, Error> {
    let mut emptied = Emptied::default();
    loop {
        let mut ids = Vec::new();
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(s3(
                format!("list versions in s3://{bucket}"),
                iam::S3_LIST_BUCKET_VERSIONS,
            ))?;
        for v in page.versions() {
            ids.push((v.key().unwrap_or_default(), v.version_id()));
        }
        for m in page.delete_markers() {
            ids.push((m.key().unwrap_or_default(), m.version_id()));
        }
        if ids.is_empty() {
            break;
        }
        for chunk in ids.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|(k, v)| {
                    ObjectIdentifier::builder()
                        .key(*k)
                        .set_version_id(v.map(str::to_owned))
                        .build()
                        .expect("key is set")
                })
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let out = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(s3(
                    format!("delete objects in s3://{bucket}"),
                    iam::S3_DELETE_OBJECT_VERSION,
                ))?;
            if let Some(e) = out.errors().first() {
                return Err(Error::Other(format!(
                    "deleting s3://{bucket}/{}: {}",
                    e.key().unwrap_or_default(),
                    e.message().unwrap_or_default()
                )));
            }
            emptied.versions += chunk.len() as u64;
        }
    }
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .map_err(s3(
                format!("list uploads in s3://{bucket}"),
                iam::S3_LIST_BUCKET_MULTIPART_UPLOADS,
            ))?;
        if page.uploads().is_empty() {
            break;
        }
        for u in page.uploads() {
            client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(u.key().unwrap_or_default())
                .upload_id(u.upload_id().unwrap_or_default())
                .send()
                .await
                .map_err(s3(
                    format!("abort an upload in s3://{bucket}"),
                    iam::S3_ABORT_MULTIPART_UPLOAD,
                ))?;
            emptied.uploads += 1;
        }
    }
    client
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(s3(format!("delete s3://{bucket}"), iam::S3_DELETE_BUCKET))?;
    Ok(emptied)
}
