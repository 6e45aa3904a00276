//! One multipart upload: parts sent concurrently, completed with `If-None-Match: *` unless
//! overwriting (so a concurrent save that loses gets `AlreadyExists`), aborted on failure.

use super::S3Store;
use crate::aws::iam;
use crate::store::{Error, PutOutcome, Upload};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use std::sync::Mutex;

pub(super) struct S3Upload {
    pub(super) store: S3Store,
    pub(super) key: String,
    pub(super) upload_id: String,
    pub(super) overwrite: bool,
    pub(super) parts: Mutex<Vec<CompletedPart>>,
}

impl S3Upload {
    fn what(&self, doing: &str) -> String {
        format!("{doing} s3://{}/{}", self.store.bucket, self.key)
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn put_part(&self, part_number: u32, _offset: u64, data: Bytes) -> Result<(), Error> {
        let out = self
            .store
            .client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number as i32)
            .body(ByteStream::from(data))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| {
                let what = self.what(&format!("upload part {part_number} of"));
                self.store.fail(what, iam::S3_PUT_OBJECT, &e)
            })?;
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
            .store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
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
            Err(e) => {
                let e =
                    crate::aws::Error::from_sdk(crate::aws::Service::S3, iam::S3_PUT_OBJECT, &e);
                if e.lost_conditional_write() {
                    let _ = self.abort().await;
                    Ok(PutOutcome::AlreadyExists)
                } else {
                    Err(self.store.error(self.what("complete upload"), e))
                }
            }
        }
    }

    async fn abort(&self) -> Result<(), Error> {
        self.store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                self.store.fail(
                    self.what("abort upload"),
                    iam::S3_ABORT_MULTIPART_UPLOAD,
                    &e,
                )
            })
    }
}
