//! Reading and deleting a bucket's whole contents for `ls`, `rm` and `prune`: entries and use
//! records by paginated listing, metadata by HEAD (several in flight), stale multipart uploads,
//! and batched deletes.

use super::{meta_from_headers, to_system_time, S3Store};
use crate::aws::{self, iam, Service};
use crate::key::EntryName;
use crate::store::{
    parse_object_name, parse_use_name, use_object_name, EntryInfo, EntryMeta, Error, Leftover,
    LeftoverKind, Removal, Scan, Scanned,
};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::SystemTime;

/// HEADs in flight while scanning: listing is paged 1,000 at a time, HEADs are one each.
const SCAN_HEADS_IN_FLIGHT: usize = 32;

impl S3Store {
    /// [`Store::scan`]: paginated listings of entries and use records, stale multipart
    /// uploads, then one HEAD per matching entry for its metadata.
    pub(super) async fn scan_all(&self, key_prefix: &str) -> Result<Scan, Error> {
        let (mut infos, mut uses) = (Vec::new(), Vec::new());
        let mut visit = |rel: &str, size, modified| {
            if let Some(name) = parse_object_name(rel) {
                if name.key.starts_with(key_prefix) {
                    infos.push(EntryInfo {
                        name,
                        size,
                        modified,
                    });
                }
            } else if let Some(used) = parse_use_name(rel) {
                if used.name.key.starts_with(key_prefix) {
                    uses.push(used);
                }
            }
        };
        // The trusted scope's entries and use records, then every untrusted scope's (both
        // kinds of object live under `untrusted/<scope>/`).
        for top in [
            crate::key::FORMAT_DIR,
            crate::store::USED_DIR,
            crate::key::UNTRUSTED_DIR,
        ] {
            self.list_under(&format!("{top}/"), &mut visit).await?;
        }
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

    /// [`Store::remove`]: one DeleteObjects for the objects, an abort per stale upload.
    pub(super) async fn remove_batch(&self, batch: &[Removal]) -> Vec<Result<(), Error>> {
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

    /// Every object whose name (below the store prefix) starts with `rel_prefix`, with size and
    /// LastModified, page by page.
    pub(super) async fn list_under(
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
            let page = page.map_err(|e| {
                self.fail(
                    format!("list s3://{}/{prefix}", self.bucket),
                    iam::S3_LIST_BUCKET,
                    &e,
                )
            })?;
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
    pub(super) async fn head_object(
        &self,
        name: &EntryName,
    ) -> Result<Option<HeadObjectOutput>, Error> {
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
            Err(e) => match self.fail(
                format!("head s3://{}/{key}", self.bucket),
                iam::S3_GET_OBJECT,
                &e,
            ) {
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

    /// Multipart uploads under `<prefix>v1/` and `<prefix>untrusted/` that were never
    /// completed or aborted; `None` when the server does not implement the listing (some
    /// S3-compatible servers): entries can still be pruned, and such uploads are left to the
    /// server's own cleanup.
    async fn stale_uploads(&self) -> Result<Option<Vec<Leftover>>, Error> {
        let mut out = Vec::new();
        for top in [crate::key::FORMAT_DIR, crate::key::UNTRUSTED_DIR] {
            match self.stale_uploads_under(top, &mut out).await? {
                Some(()) => {}
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    async fn stale_uploads_under(
        &self,
        top: &str,
        out: &mut Vec<Leftover>,
    ) -> Result<Option<()>, Error> {
        let prefix = format!("{}{top}/", self.prefix);
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
                Err(e) => {
                    let e = aws::Error::from_sdk(
                        Service::S3,
                        iam::S3_LIST_BUCKET_MULTIPART_UPLOADS,
                        &e,
                    );
                    if e.is_not_implemented() {
                        return Ok(None);
                    }
                    let what = format!("list uploads s3://{}/{prefix}", self.bucket);
                    return Err(self.error(what, e));
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
                return Ok(Some(()));
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(Some(()));
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
                // Quiet mode lists only the failures; a key already gone is not one.
                let mut failed: HashMap<&str, aws::Error> = out
                    .errors()
                    .iter()
                    .filter(|e| e.code() != Some("NoSuchKey"))
                    .filter_map(|e| {
                        let message = format!(
                            "{}: {}",
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or("")
                        );
                        let err = aws::Error::from_code(
                            Service::S3,
                            iam::S3_DELETE_OBJECT,
                            e.code(),
                            message,
                        );
                        e.key().map(|k| (k, err))
                    })
                    .collect();
                keys.iter()
                    .map(|k| match failed.remove(k.as_str()) {
                        None => Ok(()),
                        Some(e) => Err(self.error(what(k), e)),
                    })
                    .collect()
            }
            // The whole call failed: every key fails with its cause.
            Err(e) => {
                let e = aws::Error::from_sdk(Service::S3, iam::S3_DELETE_OBJECT, &e);
                keys.iter()
                    .map(|k| Err(self.error(what(k), e.clone())))
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
            Err(e) => match self.fail(
                format!("abort upload s3://{}/{key}", self.bucket),
                iam::S3_ABORT_MULTIPART_UPLOAD,
                &e,
            ) {
                Error::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}
