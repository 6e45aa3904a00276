//! The archive format (docs/FORMAT.md, "Archive"): a tar stream whose entry names start with
//! the index of their root path, zstd-compressed, followed by a footer carrying its blake3.

pub mod footer;
pub mod long;
pub mod pack;
pub mod place;
pub mod unpack;

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("archive stream: {0}")]
    Stream(#[source] io::Error),
    #[error("archive entry `{name}` refused: {why}")]
    Refused { name: String, why: &'static str },
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    /// The bytes read do not hash to the footer's digest: damaged in transit, or in the store.
    #[error("archive is corrupt: its blake3 digest does not match the footer")]
    Digest,
    /// Whole and undamaged, but its signature does not let this restore trust it
    /// (docs/FORMAT.md, "Signatures").
    #[error("not trusted: {0}")]
    Untrusted(String),
    /// A file changed while it was packed: the entry is not committed.
    #[error("{} changed while it was saved ({why}); nothing was cached", path.display())]
    Changed { path: PathBuf, why: String },
    /// A replace restore of a directory that holds the working directory (`..`, `~` when
    /// building under home): it would move the build's own tree away.
    #[error("{} holds the working directory; it is only restored with merge", path.display())]
    HoldsWorkingDir { path: PathBuf },
    #[error("unpack worker panicked")]
    WorkerPanic,
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Refused { .. } | Error::Corrupt(_) | Error::Digest => Some(
                "nothing was restored; delete or overwrite this entry (`cachectl save --overwrite`)"
                    .into(),
            ),
            Error::Untrusted(_) => Some(format!(
                "a trusted build with {} set (its public key in [trust] public-keys) saves a signed entry in its place (a plain --key save needs --overwrite); `cachectl rm KEY` drops this one",
                crate::env::SIGNING_KEY
            )),
            Error::Write { .. } => Some("check free space and permissions where the cache is restored".into()),
            Error::HoldsWorkingDir { .. } => Some(
                "set `merge = true` for this cache (or pass --merge), or cache narrower paths".into(),
            ),
            Error::Changed { .. } => Some(
                "save after the step that writes these files has finished; the next build saves the entry".into(),
            ),
            _ => None,
        }
    }
}

/// The tar entry name of a path inside root `index`: `3`, or `3/lib/a.js`.
pub(crate) fn entry_name(index: usize, rel: &[u8]) -> Vec<u8> {
    let mut name = index.to_string().into_bytes();
    if !rel.is_empty() {
        name.push(b'/');
        name.extend_from_slice(rel);
    }
    name
}
