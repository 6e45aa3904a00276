//! Moving archive bytes between a blocking pipeline (tar, zstd, blake3) and a store:
//! parts uploaded concurrently while packing continues, ranged GETs in parallel on restore.
//!
//! Memory is bounded by `concurrency` x part (or chunk) size plus one channel slot per
//! concurrent transfer, whatever the archive size.

use crate::archive::footer::{Footer, FOOTER_LEN};
use crate::key::EntryName;
use crate::store::{self, EntryMeta, PutOutcome, Store, Upload};
use crate::timings;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// S3's minimum part is 5 MiB; the default 8 MiB keeps request overhead small on a fast link
/// while a 100 MB cache still gets a dozen parts in flight.
pub const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;
/// S3 allows 10,000 parts. Parts double in size every 1,000, so the limit is never reached
/// below ~80 TB while small archives still get many parts in flight.
const PARTS_PER_SIZE_STEP: u32 = 1000;
/// Our own retries per range, on top of the SDK's per-request retries: these also cover a body
/// that stalls or breaks off half-way, which the SDK does not retry.
const RANGE_ATTEMPTS: u32 = 3;
/// A range that has not fully arrived after this long is abandoned and retried.
const RANGE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn part_size(part_number: u32, base: usize) -> usize {
    let steps = (part_number.saturating_sub(1) / PARTS_PER_SIZE_STEP).min(10);
    base << steps
}

/// What the packing thread sends: parts in order, then `End` once the archive is complete.
/// A channel that closes without `End` means packing failed: the upload is aborted.
#[derive(Debug)]
pub enum Chunk {
    Part(Bytes),
    End,
}

/// The sink at the end of the save pipeline: hashes every byte, cuts parts, appends the footer.
///
/// Each part is its own allocation of exactly its size, so a part in flight pins no more memory
/// than its bytes (a shared growing buffer would pin up to twice that per part).
pub struct PartWriter {
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
    pub fn new(tx: mpsc::Sender<Chunk>, base_part_bytes: usize) -> Self {
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

    /// Appends the footer, sends the last part and the end marker. Returns the object size.
    pub fn finish(mut self, tar_bytes: u64, entries: u64) -> io::Result<u64> {
        let footer = Footer {
            digest: *self.hasher.finalize().as_bytes(),
            tar_bytes,
            entries,
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

/// Ranged-GET size for an archive of `size` bytes: at most `part_bytes`, and small enough that
/// the archive spans ~4 windows of `concurrency` ranges. Ranges in flight share the link, so the
/// first in-order range lands only when the whole window does; smaller windows let unpacking
/// start early and overlap the download instead of following it.
pub fn chunk_size(size: u64, concurrency: usize, part_bytes: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let windows = (concurrency as u64).max(1) * 4;
    size.div_ceil(windows)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .clamp(MIB, part_bytes.max(MIB))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("packing stopped before the archive was complete")]
    PackingFailed,
    #[error("upload task panicked")]
    Panicked,
}

/// Uploads the parts arriving on `rx`: one PUT if the archive fits in one part, else a
/// multipart upload with up to `concurrency` parts in flight. Aborts the upload on any error.
pub async fn upload(
    store: Arc<dyn Store>,
    name: &EntryName,
    meta: &EntryMeta,
    overwrite: bool,
    mut rx: mpsc::Receiver<Chunk>,
    concurrency: usize,
    progress: Arc<crate::progress::Progress>,
) -> Result<PutOutcome, Error> {
    let first = match rx.recv().await {
        Some(Chunk::Part(p)) => p,
        Some(Chunk::End) | None => return Err(Error::PackingFailed),
    };
    let second = match rx.recv().await {
        Some(Chunk::Part(p)) => p,
        Some(Chunk::End) => {
            let len = first.len() as u64;
            let outcome = store.put(name, meta, first, overwrite).await?;
            progress.add(len);
            return Ok(outcome);
        }
        None => return Err(Error::PackingFailed),
    };
    let upload: Arc<dyn Upload> = Arc::from(store.create_upload(name, meta, overwrite).await?);
    let _abort_on_signal = crate::signal::register(&upload);
    match upload_parts(&upload, [first, second], &mut rx, concurrency, &progress).await {
        Ok(()) => Ok(upload.complete().await?),
        Err(e) => {
            // Best effort: a failed abort leaves parts that prune's stale-upload sweep removes.
            let _ = upload.abort().await;
            Err(e)
        }
    }
}

async fn upload_parts(
    upload: &Arc<dyn Upload>,
    first_two: [Bytes; 2],
    rx: &mut mpsc::Receiver<Chunk>,
    concurrency: usize,
    progress: &Arc<crate::progress::Progress>,
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
                None => return Err(Error::PackingFailed),
            },
        };
        while inflight.len() >= concurrency {
            join_one(&mut inflight).await?;
        }
        part_number += 1;
        let len = part.len() as u64;
        let (up, progress) = (Arc::clone(upload), Arc::clone(progress));
        inflight.spawn(async move {
            up.put_part(part_number, offset, part).await?;
            progress.add(len);
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
        Some(Err(_)) => Err(Error::Panicked),
        None => Ok(()),
    }
}

/// Downloads `size` bytes of the entry as parallel ranged GETs, delivered in order on `tx`.
/// Stops quietly when the receiver goes away (the unpacker failed and reports why).
pub async fn download(
    store: Arc<dyn Store>,
    name: EntryName,
    size: u64,
    chunk_bytes: u64,
    concurrency: usize,
    tx: mpsc::Sender<Bytes>,
    progress: Arc<crate::progress::Progress>,
) -> Result<(), Error> {
    let ranges = (0..size)
        .step_by(chunk_bytes as usize)
        .map(move |start| start..(start + chunk_bytes).min(size));
    let mut fetched = stream::iter(ranges)
        .map(|range| {
            let (store, name) = (Arc::clone(&store), name.clone());
            tokio::spawn(async move { fetch_range(store.as_ref(), &name, range).await })
        })
        .buffered(concurrency);
    while let Some(res) = fetched.next().await {
        let bytes = res.map_err(|_| Error::Panicked)??;
        progress.add(bytes.len() as u64);
        if tx.send(bytes).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

async fn fetch_range(
    store: &dyn Store,
    name: &EntryName,
    range: Range<u64>,
) -> Result<Bytes, store::Error> {
    let mut attempt = 1;
    loop {
        let res = tokio::time::timeout(RANGE_TIMEOUT, store.get_range(name, range.clone())).await;
        let err = match res {
            Ok(Ok(b)) => return Ok(b),
            Ok(Err(e)) => e,
            Err(_) => store::Error::Unreachable {
                what: format!("get {} bytes {range:?}", name.object_name()),
                source: format!("no complete answer within {RANGE_TIMEOUT:?}").into(),
            },
        };
        let retryable = matches!(
            err,
            store::Error::Unreachable { .. }
                | store::Error::Throttled { .. }
                | store::Error::Other { .. }
        );
        if !retryable || attempt >= RANGE_ATTEMPTS {
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        attempt += 1;
    }
}

/// The blocking side of a restore: reads chunks in order, hashes every byte before the footer,
/// and keeps the footer aside for `verify`.
pub struct VerifyingReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
    body_left: u64,
    hasher: blake3::Hasher,
    footer: Vec<u8>,
}

impl VerifyingReader {
    pub fn new(rx: mpsc::Receiver<Bytes>, object_size: u64) -> Self {
        VerifyingReader {
            rx,
            cur: Bytes::new(),
            body_left: object_size.saturating_sub(FOOTER_LEN as u64),
            hasher: blake3::Hasher::new(),
            footer: Vec::with_capacity(FOOTER_LEN),
        }
    }

    /// Reads what the decompressor left unread, then checks the digest against the footer.
    pub fn verify(mut self) -> Result<Footer, crate::archive::Error> {
        io::copy(&mut self, &mut io::sink()).map_err(crate::archive::Error::Stream)?;
        while let Some(b) = self.rx.blocking_recv() {
            self.footer.extend_from_slice(&b);
        }
        let footer = Footer::decode(&self.footer)?;
        if self.hasher.finalize().as_bytes() != &footer.digest {
            return Err(crate::archive::Error::Corrupt(
                "blake3 digest does not match the footer (damaged or altered in the store)".into(),
            ));
        }
        Ok(footer)
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.body_left == 0 {
                return Ok(0);
            }
            match timings::FETCH_WAIT.time(|| self.rx.blocking_recv()) {
                Some(b) => self.cur = b,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "archive download ended early",
                    ))
                }
            }
            // Bytes past the body belong to the footer.
            if self.cur.len() as u64 > self.body_left {
                let tail = self.cur.split_off(self.body_left as usize);
                self.footer.extend_from_slice(&tail);
            }
        }
        let n = out.len().min(self.cur.len());
        let chunk = self.cur.split_to(n);
        timings::HASH.time(|| self.hasher.update(&chunk));
        out[..n].copy_from_slice(&chunk);
        self.body_left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn chunk_sizes() {
        const MIB: u64 = 1024 * 1024;
        let cases = [
            ("tiny archive", 100_000, 8, MIB),
            ("npm-sized", 80 * MIB, 8, 3 * MIB),
            ("large", 4096 * MIB, 8, 8 * MIB),
            ("one connection", 80 * MIB, 1, 8 * MIB),
        ];
        for (name, size, conc, want) in cases {
            assert_eq!(chunk_size(size, conc, 8 * MIB), want, "{name}");
        }
    }

    #[test]
    fn parts_are_exactly_sized_allocations() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut w = PartWriter::new(tx, 4096);
        for _ in 0..10 {
            w.write_all(&[1u8; 3000]).unwrap();
        }
        w.finish(0, 0).unwrap();
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

    #[test]
    fn writer_and_reader_round_trip() {
        let (tx, mut rx) = mpsc::channel(1000);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = PartWriter::new(tx, 4096);
        w.write_all(&data).unwrap();
        let size = w.finish(1, 2).unwrap();
        assert_eq!(size, data.len() as u64 + FOOTER_LEN as u64);
        let mut parts = Vec::new();
        while let Ok(c) = rx.try_recv() {
            parts.push(c);
        }
        assert!(matches!(parts.last(), Some(Chunk::End)));
        // Re-chunk differently on the way back, as ranged GETs would.
        let all: Vec<u8> = parts
            .iter()
            .filter_map(|c| match c {
                Chunk::Part(b) => Some(b.to_vec()),
                Chunk::End => None,
            })
            .flatten()
            .collect();
        let (tx2, rx2) = mpsc::channel(1000);
        for c in all.chunks(3000) {
            tx2.try_send(Bytes::copy_from_slice(c)).unwrap();
        }
        drop(tx2);
        let mut r = VerifyingReader::new(rx2, size);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let f = r.verify().unwrap();
        assert_eq!((f.tar_bytes, f.entries), (1, 2));
    }

    #[test]
    fn reader_detects_a_flipped_byte() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut w = PartWriter::new(tx, 1 << 20);
        w.write_all(&[5u8; 10_000]).unwrap();
        let size = w.finish(0, 0).unwrap();
        let Some(Chunk::Part(b)) = rx.try_recv().ok() else {
            panic!("one part")
        };
        let mut bad = b.to_vec();
        bad[1234] ^= 0x40;
        let (tx2, rx2) = mpsc::channel(10);
        tx2.try_send(Bytes::from(bad)).unwrap();
        drop(tx2);
        let r = VerifyingReader::new(rx2, size);
        assert!(matches!(r.verify(), Err(crate::archive::Error::Corrupt(_))));
    }
}
