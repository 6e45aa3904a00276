//! The save half of the pipeline: [`PartWriter`] (the sink of the blocking packer: blake3 over
//! every byte, parts cut to size, the footer appended) and [`upload`], which sends the parts
//! while packing continues, one PUT for a small archive, else a multipart upload with a bounded
//! number of parts in flight.
//!
//! Memory is bounded by `concurrency` parts in flight plus the channel's slots, whatever the
//! archive size.

use super::{Error, Reporter};
use crate::archive::footer::{Footer, SignatureFrame, FOOTER_LEN};
use crate::key::EntryName;
use crate::store::{self, EntryMeta, PutOutcome, Store, Upload};
use crate::timings;
use bytes::Bytes;
use std::io::{self, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

/// S3's minimum part is 5 MiB; the default 8 MiB keeps request overhead small on a fast link
/// while a 100 MB cache still gets a dozen parts in flight.
pub const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;
/// S3 allows 10,000 parts. Parts double in size every 1,000, so the limit is never reached
/// below ~80 TB while small archives still get many parts in flight.
const PARTS_PER_SIZE_STEP: u32 = 1000;
/// Our own retries per range, on top of the SDK's per-request retries: these also cover a body
fn part_size(part_number: u32, base: usize) -> usize {
    let steps = (part_number.saturating_sub(1) / PARTS_PER_SIZE_STEP).min(10);
    base << steps
}

/// What the packing thread sends: parts in order, then `End` once the archive is complete.
/// A channel that closes without `End` means packing failed: the upload is aborted.
#[derive(Debug)]
pub(super) enum Chunk {
    Part(Bytes),
    End,
}

/// The sink at the end of the save pipeline: hashes every byte, cuts parts, appends the footer.
///
/// Each part is its own allocation of exactly its size, so a part in flight pins no more memory
/// than its bytes (a shared growing buffer would pin up to twice that per part).
pub(super) struct PartWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    base_part_bytes: usize,
    next_part: u32,
    hasher: blake3::Hasher,
    written: u64,
}

fn upload_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped")
}

impl PartWriter {
    pub(super) fn new(tx: mpsc::Sender<Chunk>, base_part_bytes: usize) -> Self {
        PartWriter {
            tx,
            buf: Vec::with_capacity(base_part_bytes),
            base_part_bytes,
            next_part: 1,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }

    fn current_part_size(&self) -> usize {
        part_size(self.next_part, self.base_part_bytes)
    }

    fn send(&mut self, part: Vec<u8>) -> io::Result<()> {
        timings::UPLOAD_WAIT
            .time(|| self.tx.blocking_send(Chunk::Part(Bytes::from(part))))
            .map_err(|_| upload_gone())
    }

    /// Copies `data` into parts, sending each part as soon as it is full.
    fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = self.current_part_size() - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.current_part_size() {
                self.next_part += 1;
                let next = Vec::with_capacity(self.current_part_size());
                let full = std::mem::replace(&mut self.buf, next);
                self.send(full)?;
            }
        }
        Ok(())
    }

    /// Appends the signature frame `sign` makes of the archive's digest (when signing), then
    /// the footer; sends the last part and the end marker. Returns the object size.
    pub(super) fn finish(
        mut self,
        tar_bytes: u64,
        entries: u64,
        sign: Option<&dyn Fn([u8; 32]) -> SignatureFrame>,
    ) -> io::Result<u64> {
        if let Some(sign) = sign {
            let frame = sign(*self.hasher.finalize().as_bytes()).encode();
            // The footer's digest covers every byte before it, the signature frame included.
            self.write_all(&frame)?;
        }
        let footer = Footer {
            digest: *self.hasher.finalize().as_bytes(),
            tar_bytes,
            entries,
            signed: sign.is_some(),
        };
        self.push(&footer.encode())?;
        self.written += FOOTER_LEN as u64;
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send(last)?;
        }
        self.tx
            .blocking_send(Chunk::End)
            .map_err(|_| upload_gone())?;
        Ok(self.written)
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        timings::HASH.time(|| self.hasher.update(data));
        self.push(data)?;
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Uploads the parts arriving on `rx`: one PUT if the archive fits in one part, else a
/// multipart upload with up to `concurrency` parts in flight. Aborts the upload on any error.
///
/// Errors: the store's; [`Error::Stopped`] when the channel closes without [`Chunk::End`]
/// (packing failed, and reports why).
pub(super) async fn upload(
    store: Arc<dyn Store>,
    name: &EntryName,
    meta: &EntryMeta,
    overwrite: bool,
    mut rx: mpsc::Receiver<Chunk>,
    concurrency: usize,
    reporter: Arc<dyn Reporter>,
) -> Result<PutOutcome, Error> {
    let first = match rx.recv().await {
        Some(Chunk::Part(p)) => p,
        Some(Chunk::End) | None => return Err(Error::Stopped),
    };
    let second = match rx.recv().await {
        Some(Chunk::Part(p)) => p,
        Some(Chunk::End) => {
            let len = first.len() as u64;
            let outcome = store.put(name, meta, first, overwrite).await?;
            reporter.on_bytes(len);
            return Ok(outcome);
        }
        None => return Err(Error::Stopped),
    };
    let upload: Arc<dyn Upload> = Arc::from(store.create_upload(name, meta, overwrite).await?);
    let _abort_on_signal = crate::signal::register(&upload);
    let result = match upload_parts(&upload, [first, second], &mut rx, concurrency, &reporter).await
    {
        Ok(()) => upload.complete().await.map_err(Error::from),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Every failure, a failed complete included, releases the parts. Best effort: a failed
        // abort leaves parts that prune's stale-upload sweep removes.
        let _ = upload.abort().await;
    }
    result
}

async fn upload_parts(
    upload: &Arc<dyn Upload>,
    first_two: [Bytes; 2],
    rx: &mut mpsc::Receiver<Chunk>,
    concurrency: usize,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), Error> {
    let mut inflight = tokio::task::JoinSet::new();
    let mut offset = 0u64;
    let mut part_number = 0u32;
    let mut pending: Vec<Bytes> = first_two.into_iter().collect();
    pending.reverse();
    loop {
        let part = match pending.pop() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(Chunk::Part(p)) => p,
                Some(Chunk::End) => break,
                None => return Err(Error::Stopped),
            },
        };
        while inflight.len() >= concurrency {
            join_one(&mut inflight).await?;
        }
        part_number += 1;
        let len = part.len() as u64;
        let (up, reporter) = (Arc::clone(upload), Arc::clone(reporter));
        inflight.spawn(async move {
            up.put_part(part_number, offset, part).await?;
            reporter.on_bytes(len);
            Ok(())
        });
        offset += len;
    }
    while !inflight.is_empty() {
        join_one(&mut inflight).await?;
    }
    Ok(())
}

async fn join_one(set: &mut tokio::task::JoinSet<Result<(), store::Error>>) -> Result<(), Error> {
    match set.join_next().await {
        Some(Ok(r)) => Ok(r?),
        Some(Err(_)) => Err(Error::Panicked("upload")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, Removal, Scan, UseRecord};
    use async_trait::async_trait;
    use std::ops::Range;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An upload whose parts land but whose complete fails, recording whether it was aborted.
    #[derive(Default)]
    struct CompleteFails {
        aborted: AtomicBool,
    }

    #[async_trait]
    impl Upload for Arc<CompleteFails> {
        async fn put_part(&self, _: u32, _: u64, _: Bytes) -> Result<(), store::Error> {
            Ok(())
        }
        async fn complete(&self) -> Result<PutOutcome, store::Error> {
            Err(store::Error::Unreachable {
                what: "complete upload".into(),
                source: "connection reset".into(),
            })
        }
        async fn abort(&self) -> Result<(), store::Error> {
            self.aborted.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A store that only starts uploads: what `upload` calls for a multipart archive.
    struct OnlyUploads(Arc<CompleteFails>);

    #[async_trait]
    impl Store for OnlyUploads {
        fn describe(&self) -> String {
            "test".into()
        }
        async fn create_upload(
            &self,
            _: &EntryName,
            _: &EntryMeta,
            _: bool,
        ) -> Result<Box<dyn Upload>, store::Error> {
            Ok(Box::new(Arc::clone(&self.0)))
        }
        async fn head(&self, _: &EntryName) -> Result<Option<store::EntryInfo>, store::Error> {
            unreachable!("upload never looks up")
        }
        async fn list(
            &self,
            _: &crate::key::Scope,
            _: &str,
            _: &str,
        ) -> Result<Vec<store::EntryInfo>, store::Error> {
            unreachable!("upload never lists")
        }
        async fn get_range(&self, _: &EntryName, _: Range<u64>) -> Result<Bytes, store::Error> {
            unreachable!("upload never reads")
        }
        async fn put(
            &self,
            _: &EntryName,
            _: &EntryMeta,
            _: Bytes,
            _: bool,
        ) -> Result<PutOutcome, store::Error> {
            unreachable!("two parts make a multipart upload")
        }
        async fn record_use(&self, _: &UseRecord) -> Result<(), store::Error> {
            unreachable!("upload records no use")
        }
        async fn scan(&self, _: &str) -> Result<Scan, store::Error> {
            unreachable!("upload never scans")
        }
        async fn remove(&self, _: &[Removal]) -> Vec<Result<(), store::Error>> {
            unreachable!("upload never removes")
        }
    }

    #[tokio::test]
    async fn a_failed_complete_aborts_the_upload() {
        let state = Arc::new(CompleteFails::default());
        let (tx, rx) = mpsc::channel(4);
        for chunk in [
            Chunk::Part(Bytes::from_static(b"one")),
            Chunk::Part(Bytes::from_static(b"two")),
            Chunk::End,
        ] {
            tx.send(chunk).await.unwrap();
        }
        let name = EntryName {
            scope: crate::key::Scope::Trusted,
            pathset: "0123456789abcdef".into(),
            key: "k".into(),
        };
        let meta = EntryMeta {
            format: 1,
            key: "k".into(),
            paths: vec![],
            family: "k".into(),
            created: String::new(),
            cachectl: String::new(),
        };
        let store: Arc<dyn Store> = Arc::new(OnlyUploads(Arc::clone(&state)));
        let result = upload(store, &name, &meta, false, rx, 2, Arc::new(())).await;
        assert!(
            matches!(result, Err(Error::Store(store::Error::Unreachable { .. }))),
            "{result:?}"
        );
        assert!(
            state.aborted.load(Ordering::SeqCst),
            "the upload was left open"
        );
    }

    #[test]
    fn part_sizes_grow_within_the_part_limit() {
        let base = DEFAULT_PART_BYTES;
        assert_eq!(part_size(1, base), base);
        assert_eq!(part_size(1000, base), base);
        assert_eq!(part_size(1001, base), 2 * base);
        let total: u128 = (1..=10_000u32).map(|n| part_size(n, base) as u128).sum();
        assert!(
            total > 5 * (1u128 << 40),
            "10,000 parts hold more than S3's 5 TiB object limit"
        );
    }

    #[test]
    fn parts_are_exactly_sized_allocations() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut w = PartWriter::new(tx, 4096);
        for _ in 0..10 {
            w.write_all(&[1u8; 3000]).unwrap();
        }
        w.finish(0, 0, None).unwrap();
        let mut sizes = Vec::new();
        while let Ok(Chunk::Part(p)) = rx.try_recv() {
            sizes.push(p.len());
        }
        assert_eq!(
            sizes,
            vec![4096; 7]
                .into_iter()
                .chain([30_000 + 72 - 7 * 4096])
                .collect::<Vec<_>>()
        );
    }
}
