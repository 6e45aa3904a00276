//! The restore half of the pipeline: [`download`] fetches the archive as parallel ranged GETs
//! delivered in order, and [`VerifyingReader`] (read by the blocking unpacker) hashes every
//! byte before the footer and checks the digest once the stream ends.
//!
//! Memory is bounded by `concurrency` ranges in flight plus the channel's slots, whatever the
//! archive size.

use super::{Error, Reporter};
use crate::archive::footer::{Footer, SignatureFrame, FOOTER_LEN, SIGNATURE_FRAME_LEN};
use crate::key::EntryName;
use crate::store::{self, Store};
use crate::timings;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Our own retries per range, on top of the SDK's per-request retries: these also cover a body
/// that stalls or breaks off half-way, which the SDK does not retry.
const RANGE_ATTEMPTS: u32 = 3;
/// A range that has not fully arrived after this long is abandoned and retried.
const RANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Ranged-GET size for an archive of `size` bytes: at most `part_bytes`, and small enough that
/// the archive spans ~4 windows of `concurrency` ranges. Ranges in flight share the link, so the
/// first in-order range lands only when the whole window does; smaller windows let unpacking
/// start early and overlap the download instead of following it.
pub(super) fn chunk_size(size: u64, concurrency: usize, part_bytes: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let windows = (concurrency as u64).max(1) * 4;
    size.div_ceil(windows)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .clamp(MIB, part_bytes.max(MIB))
}

/// Downloads `size` bytes of the entry as parallel ranged GETs, delivered in order on `tx`.
/// Stops quietly when the receiver goes away (the unpacker failed and reports why).
pub(super) async fn download(
    store: Arc<dyn Store>,
    name: EntryName,
    size: u64,
    chunk_bytes: u64,
    concurrency: usize,
    tx: mpsc::Sender<Bytes>,
    reporter: Arc<dyn Reporter>,
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
        let bytes = res.map_err(|_| Error::Panicked("download"))??;
        reporter.on_bytes(bytes.len() as u64);
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
/// and keeps the footer aside for `verify`. The last [`SIGNATURE_FRAME_LEN`] bytes before the
/// footer are kept too, with the digest of what precedes them: if the footer says the entry is
/// signed, they are its signature frame and that digest is what the signature binds.
pub(super) struct VerifyingReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
    /// Object bytes before the footer, and how many of them were read so far.
    body_len: u64,
    pos: u64,
    hasher: blake3::Hasher,
    /// Where a signature frame would start, and the hasher as it was there.
    frame_start: Option<u64>,
    before_frame: Option<blake3::Hasher>,
    frame: Vec<u8>,
    footer: Vec<u8>,
}

/// What [`VerifyingReader::verify`] found at the end of the object.
pub(super) struct Verified {
    pub(super) footer: Footer,
    /// The signature frame, and the digest of the bytes before it (the archive it signs).
    pub(super) signature: Option<(SignatureFrame, [u8; 32])>,
}

impl VerifyingReader {
    pub(super) fn new(rx: mpsc::Receiver<Bytes>, object_size: u64) -> Self {
        let body_len = object_size.saturating_sub(FOOTER_LEN as u64);
        let frame_start = body_len.checked_sub(SIGNATURE_FRAME_LEN as u64);
        VerifyingReader {
            rx,
            cur: Bytes::new(),
            body_len,
            pos: 0,
            hasher: blake3::Hasher::new(),
            frame_start,
            before_frame: (frame_start == Some(0)).then(blake3::Hasher::new),
            frame: Vec::with_capacity(SIGNATURE_FRAME_LEN),
            footer: Vec::with_capacity(FOOTER_LEN),
        }
    }

    /// Reads what the decompressor left unread, then checks the digest against the footer.
    pub(super) fn verify(mut self) -> Result<Verified, crate::archive::Error> {
        io::copy(&mut self, &mut io::sink()).map_err(crate::archive::Error::Stream)?;
        while let Some(b) = self.rx.blocking_recv() {
            self.footer.extend_from_slice(&b);
        }
        let footer = Footer::decode(&self.footer)?;
        if self.hasher.finalize().as_bytes() != &footer.digest {
            return Err(crate::archive::Error::Digest);
        }
        let signature = match (footer.signed, self.before_frame) {
            (false, _) => None,
            (true, Some(before)) => Some((
                SignatureFrame::decode(&self.frame)?,
                *before.finalize().as_bytes(),
            )),
            (true, None) => {
                return Err(crate::archive::Error::Corrupt(
                    "its footer says it is signed but it is too short to hold a signature".into(),
                ))
            }
        };
        Ok(Verified { footer, signature })
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.pos == self.body_len {
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
            let body_left = self.body_len - self.pos;
            if self.cur.len() as u64 > body_left {
                let tail = self.cur.split_off(body_left as usize);
                self.footer.extend_from_slice(&tail);
            }
        }
        let mut n = out.len().min(self.cur.len());
        // Stop at the start of a possible signature frame, to keep the hasher as it is there.
        if let Some(start) = self.frame_start.filter(|&s| self.pos < s) {
            n = n.min((start - self.pos) as usize);
        }
        let chunk = self.cur.split_to(n);
        timings::HASH.time(|| self.hasher.update(&chunk));
        if self.frame_start.is_some_and(|s| self.pos >= s) {
            self.frame.extend_from_slice(&chunk);
        }
        out[..n].copy_from_slice(&chunk);
        self.pos += n as u64;
        if self.frame_start == Some(self.pos) {
            self.before_frame = Some(self.hasher.clone());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::upload::{Chunk, PartWriter};
    use super::*;
    use std::io::Write;

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
    fn writer_and_reader_round_trip() {
        let (tx, mut rx) = mpsc::channel(1000);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = PartWriter::new(tx, 4096);
        w.write_all(&data).unwrap();
        let size = w.finish(1, 2, None).unwrap();
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
        let v = r.verify().unwrap();
        assert_eq!((v.footer.tar_bytes, v.footer.entries), (1, 2));
        assert!(v.signature.is_none());
    }

    #[test]
    fn reader_detects_a_flipped_byte() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut w = PartWriter::new(tx, 1 << 20);
        w.write_all(&[5u8; 10_000]).unwrap();
        let size = w.finish(0, 0, None).unwrap();
        let Some(Chunk::Part(b)) = rx.try_recv().ok() else {
            panic!("one part")
        };
        let mut bad = b.to_vec();
        bad[1234] ^= 0x40;
        let (tx2, rx2) = mpsc::channel(10);
        tx2.try_send(Bytes::from(bad)).unwrap();
        drop(tx2);
        let r = VerifyingReader::new(rx2, size);
        assert!(matches!(r.verify(), Err(crate::archive::Error::Digest)));
    }
}
