//! Prune policy: the rules, where they come from (flags over `[prune]` in cachectl.toml), and
//! [`plan`], a pure function from an inventory and a time to what to delete and why.
//!
//! Order of judgement, per entry:
//! 1. `min-age` protects anything created or used more recently (a save finishing, a restore
//!    in progress); `keep-last N` protects the N newest entries of each family.
//! 2. `max-age` (by creation), `max-age-untrusted` (by creation, entries of untrusted scopes
//!    only) and `max-unused` (by last use) delete what they match.
//! 3. `max-total-size` then deletes the least recently used of the rest until the store fits.
//!
//! Protection beats every deleting rule, so a store can stay over its size budget when only
//! protected entries remain; the report says by how much.

use crate::error::Hint;
use crate::inventory::Record;
use crate::units::{parse_duration, parse_size};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Default `--min-age`: long enough for any save to finish and any restore to complete.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub max_age: Option<Duration>,
    /// Like `max_age`, for entries of untrusted scopes (pull requests) only: they are worth
    /// less once their pull request has moved on.
    pub max_age_untrusted: Option<Duration>,
    pub max_unused: Option<Duration>,
    pub keep_last: Option<u32>,
    pub max_total_size: Option<u64>,
    /// `None` means [`DEFAULT_MIN_AGE`].
    pub min_age: Option<Duration>,
}

impl Rules {
    pub fn min_age(&self) -> Duration {
        self.min_age.unwrap_or(DEFAULT_MIN_AGE)
    }

    /// Whether any rule deletes entries (keep-last and min-age only protect).
    pub fn deletes_anything(&self) -> bool {
        self.max_age.is_some()
            || self.max_age_untrusted.is_some()
            || self.max_unused.is_some()
            || self.max_total_size.is_some()
    }

    /// Each rule from `over` where set, else from `self`.
    pub fn overridden_by(&self, over: &Rules) -> Rules {
        Rules {
            max_age: over.max_age.or(self.max_age),
            max_age_untrusted: over.max_age_untrusted.or(self.max_age_untrusted),
            max_unused: over.max_unused.or(self.max_unused),
            keep_last: over.keep_last.or(self.keep_last),
            max_total_size: over.max_total_size.or(self.max_total_size),
            min_age: over.min_age.or(self.min_age),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
// Named after the rules that delete (`max-age`, `max-unused`, `max-total-size`).
#[allow(clippy::enum_variant_names)]
pub enum Reason {
    MaxAge,
    MaxAgeUntrusted,
    MaxUnused,
    MaxTotalSize,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxAge => "max-age",
            Reason::MaxAgeUntrusted => "max-age-untrusted",
            Reason::MaxUnused => "max-unused",
            Reason::MaxTotalSize => "max-total-size",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    MinAge,
    KeepLast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// A deleting rule matched, but a protection won.
    Protected(Protection),
    Delete(Reason),
}

/// What to do with each record (same order as the input) and the store after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub verdicts: Vec<Verdict>,
    pub bytes_after: u64,
    pub entries_after: usize,
    /// Bytes over `max-total-size` that only protected entries hold.
    pub over_budget: u64,
}

fn age(as_of: SystemTime, t: SystemTime) -> Duration {
    as_of.duration_since(t).unwrap_or(Duration::ZERO)
}

/// Newest first; ties (same second) broken by key so plans are deterministic.
fn newer_first(a: &Record, b: &Record) -> std::cmp::Ordering {
    b.created
        .cmp(&a.created)
        .then_with(|| b.name.key.cmp(&a.name.key))
        .then_with(|| b.name.pathset.cmp(&a.name.pathset))
}

pub fn plan(records: &[Record], rules: &Rules, as_of: SystemTime) -> Plan {
    let min_age = rules.min_age();
    let mut protection: Vec<Option<Protection>> = records
        .iter()
        .map(|r| {
            let recent = age(as_of, r.created) < min_age || age(as_of, r.last_used()) < min_age;
            recent.then_some(Protection::MinAge)
        })
        .collect();
    if let Some(n) = rules.keep_last.filter(|n| *n > 0) {
        // Per scope: a pull request's entries never count towards (or against) the trusted
        // ones of the same family.
        let mut families: HashMap<(&crate::key::Scope, &str), Vec<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            families
                .entry((&r.name.scope, r.family.as_str()))
                .or_default()
                .push(i);
        }
        for members in families.values_mut() {
            members.sort_by(|&a, &b| newer_first(&records[a], &records[b]));
            for &i in members.iter().take(n as usize) {
                protection[i].get_or_insert(Protection::KeepLast);
            }
        }
    }

    let mut verdicts: Vec<Verdict> = records
        .iter()
        .zip(&protection)
        .map(|(r, p)| {
            let reason = if rules.max_age.is_some_and(|m| age(as_of, r.created) > m) {
                Some(Reason::MaxAge)
            } else if !r.name.scope.is_trusted()
                && rules
                    .max_age_untrusted
                    .is_some_and(|m| age(as_of, r.created) > m)
            {
                Some(Reason::MaxAgeUntrusted)
            } else if rules
                .max_unused
                .is_some_and(|m| age(as_of, r.last_used()) > m)
            {
                Some(Reason::MaxUnused)
            } else {
                None
            };
            match (reason, p) {
                (None, _) => Verdict::Keep,
                (Some(_), Some(p)) => Verdict::Protected(*p),
                (Some(reason), None) => Verdict::Delete(reason),
            }
        })
        .collect();

    let mut bytes_after: u64 = records
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| !matches!(v, Verdict::Delete(_)))
        .map(|(r, _)| r.size)
        .sum();
    let mut over_budget = 0;
    if let Some(budget) = rules.max_total_size {
        if bytes_after > budget {
            // Least recently used first; among equals the oldest, then by key.
            let mut order: Vec<usize> = (0..records.len())
                .filter(|&i| !matches!(verdicts[i], Verdict::Delete(_)))
                .collect();
            order.sort_by(|&a, &b| {
                let (ra, rb) = (&records[a], &records[b]);
                ra.last_used()
                    .cmp(&rb.last_used())
                    .then_with(|| newer_first(rb, ra))
            });
            for i in order {
                if bytes_after <= budget {
                    break;
                }
                match protection[i] {
                    Some(p) => verdicts[i] = Verdict::Protected(p),
                    None => {
                        verdicts[i] = Verdict::Delete(Reason::MaxTotalSize);
                        bytes_after -= records[i].size;
                    }
                }
            }
            over_budget = bytes_after.saturating_sub(budget);
        }
    }
    let entries_after = verdicts
        .iter()
        .filter(|v| !matches!(v, Verdict::Delete(_)))
        .count();
    Plan {
        verdicts,
        bytes_after,
        entries_after,
        over_budget,
    }
}

/// A `[prune]` table that does not read: the key and what was expected, with the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(String);

impl Hint for RulesError {
    fn hint(&self) -> Option<String> {
        Some(
            "durations look like 30m, 12h, 7d; sizes like 500MiB or 10GiB; keep-last is a number"
                .into(),
        )
    }
}

/// `[prune]` keys, as in cachectl.toml.
pub const CONFIG_KEYS: &[&str] = &[
    "max-age",
    "max-age-untrusted",
    "max-unused",
    "keep-last",
    "max-total-size",
    "min-age",
];

/// Reads `[prune]`: durations and sizes as strings (a size may also be an integer of bytes),
/// `keep-last` as an integer. Errors name the key and say what is expected.
pub fn rules_from_table(t: &toml::Table, origin: &str) -> Result<Rules, RulesError> {
    read_rules(t, origin).map_err(RulesError)
}

fn read_rules(t: &toml::Table, origin: &str) -> Result<Rules, String> {
    let mut rules = Rules::default();
    for (k, v) in t {
        let at = format!("{origin}: [prune] {k}");
        let text = || {
            v.as_str()
                .ok_or_else(|| format!("{at} must be a string like \"7d\", not {}", v.type_str()))
        };
        let duration = || -> Result<Duration, String> {
            parse_duration(text()?).map_err(|e| format!("{at}: {e}"))
        };
        match k.as_str() {
            "max-age" => rules.max_age = Some(duration()?),
            "max-age-untrusted" => rules.max_age_untrusted = Some(duration()?),
            "max-unused" => rules.max_unused = Some(duration()?),
            "min-age" => rules.min_age = Some(duration()?),
            "keep-last" => {
                let n = v
                    .as_integer()
                    .filter(|n| (0..=i64::from(u32::MAX)).contains(n))
                    .ok_or_else(|| format!("{at} must be a whole number like 3"))?;
                rules.keep_last = Some(n as u32);
            }
            "max-total-size" => {
                rules.max_total_size = Some(match v {
                    toml::Value::Integer(n) if *n >= 0 => *n as u64,
                    _ => parse_size(text()?).map_err(|e| format!("{at}: {e}"))?,
                })
            }
            other => {
                return Err(format!(
                    "{origin}: unknown key `{other}` in [prune]; expected one of {}",
                    CONFIG_KEYS.join(", ")
                ))
            }
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::EntryName;

    const DAY: Duration = Duration::from_secs(86400);

    fn t0() -> SystemTime {
        crate::units::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    /// An entry created `created_days` after t0, used `used_days` after t0 (if ever).
    fn rec(
        key: &str,
        family: &str,
        size: u64,
        created_days: u64,
        used_days: Option<u64>,
    ) -> Record {
        Record {
            name: EntryName {
                scope: crate::key::Scope::Trusted,
                pathset: "0123456789abcdef".into(),
                key: key.into(),
            },
            size,
            created: t0() + DAY * created_days as u32,
            used: used_days.map(|d| t0() + DAY * d as u32),
            family: family.into(),
            paths: Vec::new(),
            inferred: false,
        }
    }

    fn deleted(records: &[Record], plan: &Plan) -> Vec<(String, Reason)> {
        records
            .iter()
            .zip(&plan.verdicts)
            .filter_map(|(r, v)| match v {
                Verdict::Delete(reason) => Some((r.name.key.clone(), *reason)),
                _ => None,
            })
            .collect()
    }

    fn at(days: u64) -> SystemTime {
        t0() + DAY * days as u32
    }

    fn store() -> Vec<Record> {
        vec![
            rec("npm-1", "npm", 100, 0, None),
            rec("npm-2", "npm", 100, 5, Some(19)),
            rec("npm-3", "npm", 100, 10, None),
            rec("pip-1", "pip", 300, 2, Some(3)),
            rec("pip-2", "pip", 300, 19, None),
        ]
    }

    #[test]
    fn each_rule_alone() {
        let r = store();
        let max_age = Rules {
            max_age: Some(DAY * 14),
            ..Rules::default()
        };
        assert_eq!(
            deleted(&r, &plan(&r, &max_age, at(20))),
            [
                ("npm-1".into(), Reason::MaxAge),
                ("npm-2".into(), Reason::MaxAge),
                ("pip-1".into(), Reason::MaxAge)
            ]
        );
        let max_unused = Rules {
            max_unused: Some(DAY * 9),
            ..Rules::default()
        };
        assert_eq!(
            deleted(&r, &plan(&r, &max_unused, at(20))),
            [
                ("npm-1".into(), Reason::MaxUnused),
                ("npm-3".into(), Reason::MaxUnused),
                ("pip-1".into(), Reason::MaxUnused)
            ],
            "npm-2 was used a day ago"
        );
        let budget = Rules {
            max_total_size: Some(500),
            ..Rules::default()
        };
        let p = plan(&r, &budget, at(20));
        assert_eq!(
            deleted(&r, &p),
            [
                ("npm-1".into(), Reason::MaxTotalSize),
                ("pip-1".into(), Reason::MaxTotalSize)
            ],
            "least recently used first (pip-1 used day 3, npm-1 created day 0), until it fits"
        );
        assert_eq!((p.bytes_after, p.entries_after, p.over_budget), (500, 3, 0));
        let nothing = plan(&r, &Rules::default(), at(20));
        assert!(deleted(&r, &nothing).is_empty());
        assert_eq!(nothing.bytes_after, 900);
    }

    #[test]
    fn max_age_untrusted_deletes_only_untrusted_scopes_and_keep_last_counts_per_scope() {
        let pr = |mut r: Record, scope: &str| {
            r.name.scope = crate::key::Scope::Untrusted(scope.into());
            r
        };
        let r = vec![
            rec("npm-1", "npm", 10, 0, None),
            pr(rec("npm-1", "npm", 10, 1, None), "pr-7"),
            pr(rec("npm-2", "npm", 10, 9, None), "pr-7"),
            pr(rec("npm-3", "npm", 10, 2, None), "pr-8"),
        ];
        let rules = Rules {
            max_age_untrusted: Some(DAY * 5),
            ..Rules::default()
        };
        let p = plan(&r, &rules, at(10));
        assert_eq!(
            p.verdicts,
            [
                Verdict::Keep,
                Verdict::Delete(Reason::MaxAgeUntrusted),
                Verdict::Keep,
                Verdict::Delete(Reason::MaxAgeUntrusted),
            ]
        );
        let kept = Rules {
            keep_last: Some(1),
            ..rules
        };
        assert_eq!(
            plan(&r, &kept, at(10)).verdicts,
            [
                Verdict::Keep,
                Verdict::Delete(Reason::MaxAgeUntrusted),
                Verdict::Keep,
                Verdict::Protected(Protection::KeepLast),
            ],
            "keep-last keeps the newest of each family in each scope"
        );
    }

    #[test]
    fn keep_last_beats_max_age_and_size() {
        let r = store();
        let rules = Rules {
            max_age: Some(DAY),
            keep_last: Some(2),
            ..Rules::default()
        };
        let p = plan(&r, &rules, at(30));
        assert_eq!(deleted(&r, &p), [("npm-1".into(), Reason::MaxAge)]);
        assert_eq!(p.verdicts[1], Verdict::Protected(Protection::KeepLast));
        let rules = Rules {
            max_total_size: Some(0),
            keep_last: Some(1),
            ..Rules::default()
        };
        let p = plan(&r, &rules, at(30));
        assert_eq!(
            deleted(&r, &p),
            [
                ("npm-1".into(), Reason::MaxTotalSize),
                ("npm-2".into(), Reason::MaxTotalSize),
                ("pip-1".into(), Reason::MaxTotalSize)
            ]
        );
        assert_eq!(p.over_budget, 400, "npm-3 and pip-2 stay, protected");
    }

    #[test]
    fn min_age_protects_new_and_recently_used_entries() {
        let r = store();
        let rules = Rules {
            max_age: Some(Duration::ZERO),
            min_age: Some(DAY * 2),
            ..Rules::default()
        };
        let p = plan(&r, &rules, at(20));
        assert_eq!(
            deleted(&r, &p),
            [
                ("npm-1".into(), Reason::MaxAge),
                ("npm-3".into(), Reason::MaxAge),
                ("pip-1".into(), Reason::MaxAge)
            ]
        );
        assert_eq!(
            p.verdicts[1],
            Verdict::Protected(Protection::MinAge),
            "used"
        );
        assert_eq!(p.verdicts[4], Verdict::Protected(Protection::MinAge), "new");
        // The default min-age (1h) spares an entry created minutes before as_of.
        let fresh = [rec("x", "x", 1, 0, None)];
        let p = plan(
            &fresh,
            &Rules {
                max_age: Some(Duration::ZERO),
                ..Rules::default()
            },
            at(0) + Duration::from_secs(600),
        );
        assert_eq!(p.verdicts, [Verdict::Protected(Protection::MinAge)]);
        // Entries "from the future" of --as-of are as young as can be.
        let p = plan(&r, &rules, at(1));
        assert!(deleted(&r, &p).is_empty(), "{p:?}");
    }

    #[test]
    fn config_table_and_overrides() {
        let t: toml::Table = toml::from_str(
            "max-age = \"30d\"\nmax-age-untrusted = \"3d\"\nmax-unused = \"7d\"\nkeep-last = 2\nmax-total-size = \"10GiB\"\nmin-age = \"2h\"",
        )
        .unwrap();
        let from_file = rules_from_table(&t, "cachectl.toml").unwrap();
        assert_eq!(
            from_file,
            Rules {
                max_age: Some(DAY * 30),
                max_age_untrusted: Some(DAY * 3),
                max_unused: Some(DAY * 7),
                keep_last: Some(2),
                max_total_size: Some(10 << 30),
                min_age: Some(Duration::from_secs(7200)),
            }
        );
        let flags = Rules {
            max_unused: Some(DAY),
            ..Rules::default()
        };
        let merged = from_file.overridden_by(&flags);
        assert_eq!(merged.max_unused, Some(DAY));
        assert_eq!(merged.max_age, Some(DAY * 30));
        for (text, want) in [
            (
                "max-agee = \"1d\"",
                "unknown key `max-agee` in [prune]; expected one of",
            ),
            (
                "max-age = 7",
                "[prune] max-age must be a string like \"7d\", not integer",
            ),
            ("max-age = \"soon\"", "`soon` is not a duration"),
            ("keep-last = -1", "[prune] keep-last must be a whole number"),
            (
                "max-total-size = \"10G\"",
                "`10G` is not a size like 500MiB",
            ),
        ] {
            let t: toml::Table = toml::from_str(text).unwrap();
            let err = rules_from_table(&t, "cachectl.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.starts_with("cachectl.toml"), "{err}");
        }
        let t: toml::Table = toml::from_str("max-total-size = 1024").unwrap();
        assert_eq!(
            rules_from_table(&t, "f").unwrap().max_total_size,
            Some(1024)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn records() -> impl Strategy<Value = Vec<Record>> {
            prop::collection::vec(
                (0u64..4, 1u64..1000, 0u64..60, prop::option::of(0u64..60)),
                0..40,
            )
            .prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (fam, size, c, u))| {
                        rec(
                            &format!("k{i}"),
                            &format!("f{fam}"),
                            size,
                            c,
                            u.map(|u| u.max(c)),
                        )
                    })
                    .collect()
            })
        }

        fn rules() -> impl Strategy<Value = Rules> {
            (
                prop::option::of(0u64..60),
                prop::option::of(0u64..60),
                prop::option::of(0u32..4),
                prop::option::of(0u64..20_000),
                prop::option::of(0u64..10),
            )
                .prop_map(|(a, u, k, s, m)| Rules {
                    max_age: a.map(|d| DAY * d as u32),
                    max_age_untrusted: None,
                    max_unused: u.map(|d| DAY * d as u32),
                    keep_last: k,
                    max_total_size: s,
                    min_age: m.map(|d| DAY * d as u32),
                })
        }

        proptest! {
            #[test]
            fn protections_hold_and_the_budget_is_met_when_possible(
                r in records(), rules in rules(), now in 0u64..80
            ) {
                let as_of = at(now);
                let p = plan(&r, &rules, as_of);
                prop_assert_eq!(p.verdicts.len(), r.len());
                let kept: u64 = r.iter().zip(&p.verdicts)
                    .filter(|(_, v)| !matches!(v, Verdict::Delete(_))).map(|(r, _)| r.size).sum();
                prop_assert_eq!(kept, p.bytes_after);
                for (i, (rec, v)) in r.iter().zip(&p.verdicts).enumerate() {
                    let young = age(as_of, rec.created) < rules.min_age()
                        || age(as_of, rec.last_used()) < rules.min_age();
                    if young {
                        prop_assert!(!matches!(v, Verdict::Delete(_)), "min-age broken at {}", i);
                    }
                    if let Some(n) = rules.keep_last {
                        let newer = r.iter().filter(|o| o.family == rec.family
                            && newer_first(o, rec) == std::cmp::Ordering::Less).count();
                        if newer < n as usize {
                            prop_assert!(!matches!(v, Verdict::Delete(_)), "keep-last broken at {}", i);
                        }
                    }
                    if let Verdict::Delete(Reason::MaxAge) = v {
                        prop_assert!(age(as_of, rec.created) > rules.max_age.unwrap());
                    }
                    if let Verdict::Delete(Reason::MaxUnused) = v {
                        prop_assert!(age(as_of, rec.last_used()) > rules.max_unused.unwrap());
                    }
                }
                if let Some(budget) = rules.max_total_size {
                    prop_assert_eq!(p.over_budget, p.bytes_after.saturating_sub(budget));
                    if p.over_budget > 0 {
                        // Only protected entries may remain when over budget.
                        for v in &p.verdicts {
                            prop_assert!(!matches!(v, Verdict::Keep), "unprotected entry kept over budget");
                        }
                    }
                }
                if !rules.deletes_anything() {
                    prop_assert!(p.verdicts.iter().all(|v| !matches!(v, Verdict::Delete(_))));
                }
            }
        }
    }
}
