//! What a store holds, as `ls`, `rm` and `prune` see it: one [`Record`] per entry with its
//! creation, last use and family, plus the use records and leftovers around them; and the
//! batched, concurrent deleter they share.

use crate::key::{CacheKey, EntryName};
use crate::store::{Error, Leftover, Removal, Scan, Store, UseRecord, MAX_REMOVALS_PER_CALL};
use crate::units::{parse_rfc3339, rfc3339};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::time::SystemTime;

/// DeleteObjects calls in flight at once: enough to hide a round trip, few enough not to be
/// throttled (S3 allows 3,500 deletes per second per prefix).
pub const REMOVE_CALLS_IN_FLIGHT: usize = 4;

/// One entry with everything the policies look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: EntryName,
    pub size: u64,
    /// From the entry's metadata; the object's modification time when that is unreadable.
    pub created: SystemTime,
    /// The latest recorded use (end of its hour), or `None` if never restored.
    pub used: Option<SystemTime>,
    pub family: String,
    /// The path set as saved; empty when the metadata is unreadable.
    pub paths: Vec<String>,
    /// The metadata could not be read: `created` and `family` are inferred.
    pub inferred: bool,
}

impl Record {
    /// The paths for people: as saved, or the path-set digest when the metadata is unreadable.
    pub fn paths_label(&self) -> String {
        if self.paths.is_empty() {
            format!("path set {}", self.name.pathset)
        } else {
            self.paths.join(" ")
        }
    }

    /// The entry as `ls --json`, `rm --json` and `prune --json` print it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "key": self.name.key,
            "scope": self.name.scope.as_str(),
            "pathset": self.name.pathset,
            "size": self.size,
            "created": rfc3339(self.created),
            "last_used": self.used.map(rfc3339),
            "family": self.family,
            "paths": self.paths,
            "metadata_inferred": self.inferred,
        })
    }

    /// When the entry was last needed: its last use, or its creation if never restored.
    pub fn last_used(&self) -> SystemTime {
        self.used.map_or(self.created, |u| u.max(self.created))
    }
}

/// A scan, digested.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Sorted by key, then scope (trusted first), then path set.
    pub records: Vec<Record>,
    /// Use records no policy needs: all but the newest of an entry, and those whose entry is
    /// gone (with the hour they record, so callers can spare recent ones).
    pub stale_uses: Vec<UseRecord>,
    pub orphan_uses: Vec<UseRecord>,
    /// The newest use record of each entry (deleted along with the entry).
    pub newest_uses: HashMap<EntryName, UseRecord>,
    pub leftovers: Vec<Leftover>,
    /// Parts of the store the scan could not look at.
    pub warnings: Vec<String>,
}

impl Inventory {
    pub async fn load(store: &dyn Store, key_prefix: &str) -> Result<Inventory, Error> {
        let scan = store.scan(key_prefix).await?;
        Ok(Self::from_scan(scan, SystemTime::now()))
    }

    /// Digests a scan made at `now` (the wall clock, not `CACHECTL_NOW`).
    ///
    /// Times a writer chose are not believed past what the store itself saw: a creation time
    /// after the object appeared (S3 LastModified, local mtime) counts as that time, and a use
    /// record of an hour that has not begun yet (an hour of slack for clocks) is ignored and
    /// treated as stale. Otherwise an untrusted build could date its entries in the future
    /// and make them outlive every rule, while trusted entries were evicted in their place.
    pub fn from_scan(scan: Scan, now: SystemTime) -> Inventory {
        let mut newest: HashMap<EntryName, UseRecord> = HashMap::new();
        let mut stale = Vec::new();
        // The end of the hour after this one: a record of any hour begun by then is believed.
        let latest_believed = now + std::time::Duration::from_secs(2 * 3600);
        for u in scan.uses {
            if u.latest() > latest_believed {
                stale.push(u);
                continue;
            }
            match newest.get_mut(&u.name) {
                Some(cur) if cur.hour >= u.hour => stale.push(u),
                Some(cur) => stale.push(std::mem::replace(cur, u)),
                None => {
                    newest.insert(u.name.clone(), u);
                }
            }
        }
        let mut records: Vec<Record> = scan
            .entries
            .into_iter()
            .map(|s| {
                let used = newest.get(&s.info.name).map(UseRecord::latest);
                let created = s.meta.as_ref().and_then(|m| parse_rfc3339(&m.created));
                let family = s.meta.as_ref().map(|m| m.family.clone());
                Record {
                    inferred: created.is_none() || family.is_none(),
                    created: created.map_or(s.info.modified, |c| c.min(s.info.modified)),
                    used,
                    family: family.unwrap_or_else(|| fallback_family(&s.info.name.key)),
                    paths: s.meta.map(|m| m.paths).unwrap_or_default(),
                    size: s.info.size,
                    name: s.info.name,
                }
            })
            .collect();
        records.sort_by(|a, b| {
            (a.name.key.as_str(), &a.name.scope, a.name.pathset.as_str()).cmp(&(
                b.name.key.as_str(),
                &b.name.scope,
                b.name.pathset.as_str(),
            ))
        });
        let live: std::collections::HashSet<&EntryName> = records.iter().map(|r| &r.name).collect();
        let (kept, orphans): (HashMap<_, _>, HashMap<_, _>) =
            newest.into_iter().partition(|(n, _)| live.contains(n));
        let mut orphan_uses: Vec<UseRecord> = orphans.into_values().collect();
        orphan_uses.extend(stale.iter().filter(|u| !live.contains(&u.name)).cloned());
        stale.retain(|u| live.contains(&u.name));
        Inventory {
            records,
            stale_uses: stale,
            orphan_uses,
            newest_uses: kept,
            leftovers: scan.leftovers,
            warnings: scan.warnings,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.records.iter().map(|r| r.size).sum()
    }

    /// Removals that delete `name` and every use record the inventory knows for it.
    pub fn removals_for(&self, name: &EntryName) -> Vec<Removal> {
        let mut out = vec![Removal::Entry(name.clone())];
        if let Some(u) = self.newest_uses.get(name) {
            out.push(Removal::Use(u.clone()));
        }
        out
    }
}

/// The family of an entry whose metadata is unreadable: what a plain `--key` save records.
fn fallback_family(key: &str) -> String {
    CacheKey::new(key).map_or_else(|_| key.to_owned(), |k| k.family().to_owned())
}

/// Runs `removals` in batches of up to 1,000, several batches in flight; one result each, in
/// order. A failed removal does not stop the others.
pub async fn remove_all(store: &dyn Store, removals: &[Removal]) -> Vec<Result<(), Error>> {
    let batches: Vec<&[Removal]> = removals.chunks(MAX_REMOVALS_PER_CALL).collect();
    stream::iter(batches)
        .map(|batch| store.remove(batch))
        .buffered(REMOVE_CALLS_IN_FLIGHT)
        .flat_map(stream::iter)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EntryInfo, EntryMeta, Scanned};
    use std::time::Duration;

    fn t(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    fn name(key: &str) -> EntryName {
        EntryName {
            scope: crate::key::Scope::Trusted,
            pathset: "0123456789abcdef".into(),
            key: key.into(),
        }
    }

    fn scanned(key: &str, created: Option<&str>) -> Scanned {
        Scanned {
            info: EntryInfo {
                name: name(key),
                size: 10,
                modified: t("2026-01-02T00:00:00Z"),
            },
            meta: created.map(|c| EntryMeta {
                format: 1,
                key: key.into(),
                paths: vec!["node_modules".into()],
                family: "npm/npm-".into(),
                created: c.into(),
                cachectl: "test".into(),
            }),
        }
    }

    #[test]
    fn times_in_the_future_are_not_believed() {
        let now = t("2026-01-10T00:00:00Z");
        let use_at = |key: &str, at: &str| UseRecord::at(name(key), t(at));
        let scan = Scan {
            entries: vec![
                scanned("npm-future", Some("2099-01-01T00:00:00Z")),
                scanned("npm-used", Some("2026-01-01T00:00:00Z")),
            ],
            uses: vec![
                use_at("npm-used", "2026-01-09T00:00:00Z"),
                // The hour after this one (clock slack) is believed; a year ahead is not.
                use_at("npm-used", "2026-01-10T01:30:00Z"),
                use_at("npm-future", "2099-01-01T00:00:00Z"),
            ],
            leftovers: Vec::new(),
            warnings: Vec::new(),
        };
        let inv = Inventory::from_scan(scan, now);
        let future = &inv.records[0];
        assert_eq!(
            future.created,
            t("2026-01-02T00:00:00Z"),
            "created no later than the object appeared"
        );
        assert_eq!(future.used, None, "a use record from 2099 is ignored");
        assert_eq!(inv.records[1].used, Some(t("2026-01-10T02:00:00Z")));
        let stale: Vec<_> = inv.stale_uses.iter().map(|u| u.stamp()).collect();
        assert!(stale.contains(&"2099010100".to_owned()), "{stale:?}");
    }

    #[test]
    fn newest_use_wins_and_the_rest_are_stale_or_orphaned() {
        let use_at = |key: &str, at: &str| UseRecord::at(name(key), t(at));
        let scan = Scan {
            entries: vec![
                scanned("npm-b", Some("2026-01-01T00:00:00Z")),
                scanned("npm-a", None),
            ],
            uses: vec![
                use_at("npm-b", "2026-01-05T10:20:00Z"),
                use_at("npm-b", "2026-01-07T08:00:00Z"),
                use_at("npm-b", "2026-01-06T00:00:00Z"),
                use_at("gone", "2026-01-03T00:00:00Z"),
                use_at("gone", "2026-01-04T00:00:00Z"),
            ],
            leftovers: Vec::new(),
            warnings: Vec::new(),
        };
        let inv = Inventory::from_scan(scan, t("2026-01-10T00:00:00Z"));
        let keys: Vec<_> = inv.records.iter().map(|r| r.name.key.as_str()).collect();
        assert_eq!(keys, ["npm-a", "npm-b"], "sorted by key");
        let a = &inv.records[0];
        assert!(a.inferred);
        assert_eq!(a.created, t("2026-01-02T00:00:00Z"), "falls back to mtime");
        assert_eq!(
            a.family, "npm-a",
            "a key without a digest is its own family"
        );
        assert_eq!(
            a.last_used(),
            a.created,
            "never restored: last used at creation"
        );
        let b = &inv.records[1];
        assert!(!b.inferred);
        assert_eq!(b.family, "npm/npm-");
        assert_eq!(b.used, Some(t("2026-01-07T09:00:00Z")));
        assert_eq!(inv.stale_uses.len(), 2);
        assert!(inv.stale_uses.iter().all(|u| u.name.key == "npm-b"));
        assert_eq!(inv.orphan_uses.len(), 2);
        assert_eq!(inv.removals_for(&name("npm-b")).len(), 2);
        assert_eq!(inv.removals_for(&name("npm-a")).len(), 1);
        assert_eq!(inv.total_bytes(), 20);
        assert!(b.last_used() > b.created + Duration::from_secs(86400));
    }
}
