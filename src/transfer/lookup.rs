//! Which entries a restore may use, best first: [`Candidates`] lists the exact key, then each
//! restore-key prefix, in each scope the build reads, lazily.

use super::{bounded, Error, DEFAULT_LOOKUP_TIMEOUT};
use crate::key::{CacheKey, EntryName, PathSet, Scope};
use crate::outcome::RestoreOutcome;
use crate::store::{self, EntryInfo, Store};
use crate::timings;
use std::time::{Duration, Instant};

/// The entries a restore may use, best first: the exact key (`Hit`), then for each of
/// `restore_keys` in order, the entries whose key starts with it, newest first (`Partial`).
/// Each of these steps looks in `scopes` in order (an untrusted build: its own scope, then the
/// trusted one), so an exact hit anywhere beats a partial one. Only entries saved with the same
/// path set are candidates. Lists lazily: a restore that hits lists once; later steps are
/// listed only when every earlier candidate was refused.
///
/// Errors: the store's. A missing bucket is an error, never a miss (a listing says
/// NoSuchBucket where a HEAD would answer a bare 404).
pub struct Candidates<'a> {
    store: &'a dyn Store,
    timeout: Duration,
    scopes: &'a [Scope],
    pathset: String,
    key: CacheKey,
    restore_keys: &'a [CacheKey],
    /// (step, scope) listings done so far; step 0 is the exact key, step i the restore key i-1.
    listed: usize,
    queue: std::collections::VecDeque<(EntryInfo, RestoreOutcome)>,
    seen: std::collections::HashSet<EntryName>,
}

impl<'a> Candidates<'a> {
    pub fn new(
        store: &'a dyn Store,
        scopes: &'a [Scope],
        paths: &PathSet,
        key: &CacheKey,
        restore_keys: &'a [CacheKey],
    ) -> Self {
        Candidates {
            store,
            timeout: DEFAULT_LOOKUP_TIMEOUT,
            scopes,
            pathset: paths.digest(),
            key: key.clone(),
            restore_keys,
            listed: 0,
            queue: Default::default(),
            seen: Default::default(),
        }
    }

    /// Each listing may go unanswered this long (default [`DEFAULT_LOOKUP_TIMEOUT`]).
    pub fn within(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The next candidate, or `None` when there is none left.
    ///
    /// Errors: the store's, or [`Error::NoAnswer`] when a listing gets no answer in time.
    pub async fn next(&mut self) -> Result<Option<(EntryInfo, RestoreOutcome)>, Error> {
        let t = Instant::now();
        let timeout = self.timeout;
        let what = format!("look up `{}` in {}", self.key, self.store.describe());
        let next = bounded(timeout, || what, self.fill()).await;
        timings::LOOKUP.add(t.elapsed());
        next
    }

    async fn fill(&mut self) -> Result<Option<(EntryInfo, RestoreOutcome)>, store::Error> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Ok(Some(c));
            }
            let scopes = self.scopes.len().max(1);
            let (step, scope) = (self.listed / scopes, self.listed % scopes);
            let Some(scope) = self.scopes.get(scope) else {
                return Ok(None);
            };
            let (prefix, outcome) = match step {
                0 => (self.key.as_str(), RestoreOutcome::Hit),
                i if i <= self.restore_keys.len() => {
                    (self.restore_keys[i - 1].as_str(), RestoreOutcome::Partial)
                }
                _ => return Ok(None),
            };
            self.listed += 1;
            let mut found = self.store.list(scope, &self.pathset, prefix).await?;
            if outcome == RestoreOutcome::Hit {
                found.retain(|e| e.name.key == self.key.as_str());
            }
            // Newest first; ties (same second) by key, so the choice is deterministic.
            found.sort_by(|a, b| {
                b.modified
                    .cmp(&a.modified)
                    .then_with(|| b.name.key.cmp(&a.name.key))
            });
            for e in found {
                if self.seen.insert(e.name.clone()) {
                    self.queue.push_back((e, outcome));
                }
            }
        }
    }
}

/// The best candidate (see [`Candidates`]): `Hit`, `Partial`, or `None` for a miss.
pub async fn lookup(
    store: &dyn Store,
    scopes: &[Scope],
    paths: &PathSet,
    key: &CacheKey,
    restore_keys: &[CacheKey],
) -> Result<Option<(EntryInfo, RestoreOutcome)>, Error> {
    Candidates::new(store, scopes, paths, key, restore_keys)
        .next()
        .await
}
