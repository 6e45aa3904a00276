//! CloudWatch metrics: their names (the one place `CacheHit` is written), the datums each
//! command sends, publishing them ([`publish`]) and reading them back for `cachectl stats`
//! ([`query`]).
//!
//! Save and restore datums have two dimensions, `CacheName` and `ProjectName` (the CodeBuild
//! project, or `local`). A restore sends `CacheHit`, `CachePartialHit`, `CacheMiss` and
//! `CacheError` (exactly one of them 1, the others 0, so their sums count restores and their
//! averages are rates), plus `RestoreSeconds` and `BytesDownloaded`. A save sends
//! `SaveSeconds` and `BytesUploaded`, never an outcome metric. A `cachectl run` whose command
//! succeeded sends `InstallSeconds` with a third dimension, `RestoreOutcome`: `hit`, `partial`
//! or `miss` (a restore error or no restore counts as `miss`: the command started with nothing
//! restored). `cachectl stats --publish` sends `TimeSavedSeconds` with the one dimension
//! `ProjectName`: a project's time saved on one UTC day, stamped at that day's noon, for the
//! dashboard (which reads each day's maximum, so publishing a day again changes nothing). A
//! prune sends `PrunedEntries`, `PrunedBytes`, `StoreEntries` and `StoreBytes`
//! with the one dimension `Store`.

mod publish;
pub mod query;
pub mod saved;

pub use publish::{Metrics, Published, PUBLISH_BUDGET};

use crate::outcome::RestoreOutcome;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

/// The namespace metrics go to unless `--metrics-namespace` or `[metrics] namespace` says
/// otherwise, and the one `cachectl stats` reads by default.
pub const NAMESPACE: &str = "Cachectl";

pub const CACHE_HIT: &str = "CacheHit";
pub const CACHE_PARTIAL_HIT: &str = "CachePartialHit";
pub const CACHE_MISS: &str = "CacheMiss";
pub const CACHE_ERROR: &str = "CacheError";
pub const RESTORE_SECONDS: &str = "RestoreSeconds";
pub const BYTES_DOWNLOADED: &str = "BytesDownloaded";
pub const SAVE_SECONDS: &str = "SaveSeconds";
pub const BYTES_UPLOADED: &str = "BytesUploaded";
/// Seconds a command run by `cachectl run` took (the install a hit skips).
pub const INSTALL_SECONDS: &str = "InstallSeconds";
/// A project's time saved on one UTC day (`cachectl stats --publish`); negative when the cache
/// cost more than it saved.
pub const TIME_SAVED_SECONDS: &str = "TimeSavedSeconds";
pub const PRUNED_ENTRIES: &str = "PrunedEntries";
pub const PRUNED_BYTES: &str = "PrunedBytes";
pub const STORE_ENTRIES: &str = "StoreEntries";
pub const STORE_BYTES: &str = "StoreBytes";

/// The four restore outcomes, in the order `RestoreOutcome` lists them.
pub const OUTCOME_METRICS: [&str; 4] = [CACHE_HIT, CACHE_PARTIAL_HIT, CACHE_MISS, CACHE_ERROR];

pub const CACHE_DIMENSION: &str = "CacheName";
pub const PROJECT_DIMENSION: &str = "ProjectName";
/// `InstallSeconds`' third dimension: what the restore before the command did.
pub const OUTCOME_DIMENSION: &str = "RestoreOutcome";
/// The values of [`OUTCOME_DIMENSION`]: the command found the exact tree, an older one, or
/// nothing.
pub const INSTALL_HIT: &str = "hit";
pub const INSTALL_PARTIAL: &str = "partial";
pub const INSTALL_MISS: &str = "miss";
/// Prune's one dimension: the store (`s3://bucket/prefix/` or the directory).
pub const STORE_DIMENSION: &str = "Store";
/// ProjectName outside CodeBuild.
pub const LOCAL_PROJECT: &str = "local";

/// PutMetricData accepts at most 1,000 datums per call.
pub const MAX_DATUMS_PER_CALL: usize = 1000;

/// CloudWatch rejects dimension values longer than this (and empty ones).
const MAX_DIMENSION_CHARS: usize = 1024;

/// What one cache's save or restore reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Restore {
        cache: String,
        outcome: RestoreOutcome,
        seconds: f64,
        bytes: u64,
    },
    Save {
        cache: String,
        seconds: f64,
        bytes: u64,
    },
    /// A command `cachectl run` ran to success after the restore `restore` (`None`: none).
    Install {
        cache: String,
        restore: Option<RestoreOutcome>,
        seconds: f64,
    },
    /// A project's time saved over one UTC day, stamped `at`.
    TimeSaved {
        project: String,
        seconds: f64,
        at: std::time::SystemTime,
    },
    /// What one prune deleted, and the store after it.
    Prune {
        store: String,
        entries: u64,
        bytes: u64,
        store_entries: u64,
        store_bytes: u64,
    },
}

/// `project-name:uuid` -> `project-name`; unset or empty -> `local`.
pub fn project_from_build_id(build_id: Option<&str>) -> String {
    let id = build_id.map(str::trim).unwrap_or_default();
    let project = id.rsplit_once(':').map_or(id, |(project, _)| project);
    if project.trim().is_empty() {
        LOCAL_PROJECT.to_owned()
    } else {
        dimension_value(project)
    }
}

/// CloudWatch rejects a whole call over one bad dimension value: empty or blank values
/// become `unnamed`, long ones are cut to 1,024 characters.
fn dimension_value(s: &str) -> String {
    if s.trim().is_empty() {
        return "unnamed".to_owned();
    }
    s.chars().take(MAX_DIMENSION_CHARS).collect()
}

/// CloudWatch rejects NaN and infinities (and a whole call with them): those become 0.
fn metric_value(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// The `RestoreOutcome` value an install is published under: nothing restored (a miss, a
/// store error, no restore at all) is a cold start.
pub fn install_outcome(restore: Option<RestoreOutcome>) -> &'static str {
    match restore {
        Some(RestoreOutcome::Hit) => INSTALL_HIT,
        Some(RestoreOutcome::Partial) => INSTALL_PARTIAL,
        Some(RestoreOutcome::Miss | RestoreOutcome::Error) | None => INSTALL_MISS,
    }
}

/// CacheName and ProjectName.
fn cache_dimensions(cache: &str, project: &str) -> Vec<Dimension> {
    vec![
        Dimension::builder()
            .name(CACHE_DIMENSION)
            .value(dimension_value(cache))
            .build(),
        Dimension::builder()
            .name(PROJECT_DIMENSION)
            .value(project)
            .build(),
    ]
}

/// Every datum of `events`, in order: six per restore, two per save, one per install.
pub fn datums(events: &[Event], project: &str) -> Vec<MetricDatum> {
    let project = dimension_value(project);
    let mut out = Vec::with_capacity(events.len() * 6);
    for event in events {
        let dimensions = match event {
            Event::Restore { cache, .. } | Event::Save { cache, .. } => {
                cache_dimensions(cache, &project)
            }
            Event::Install { cache, restore, .. } => {
                let mut dims = cache_dimensions(cache, &project);
                dims.push(
                    Dimension::builder()
                        .name(OUTCOME_DIMENSION)
                        .value(install_outcome(*restore))
                        .build(),
                );
                dims
            }
            Event::TimeSaved { project, .. } => vec![Dimension::builder()
                .name(PROJECT_DIMENSION)
                .value(dimension_value(project))
                .build()],
            Event::Prune { store, .. } => vec![Dimension::builder()
                .name(STORE_DIMENSION)
                .value(dimension_value(store))
                .build()],
        };
        let datum = |name: &str, value: f64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .value(metric_value(value))
                .unit(unit)
                .set_dimensions(Some(dimensions.clone()))
                .build()
        };
        match event {
            Event::Restore {
                outcome,
                seconds,
                bytes,
                ..
            } => {
                let index = outcome_index(*outcome);
                for (i, name) in OUTCOME_METRICS.iter().enumerate() {
                    let value = if i == index { 1.0 } else { 0.0 };
                    out.push(datum(name, value, StandardUnit::Count));
                }
                out.push(datum(RESTORE_SECONDS, *seconds, StandardUnit::Seconds));
                out.push(datum(BYTES_DOWNLOADED, *bytes as f64, StandardUnit::Bytes));
            }
            Event::Save { seconds, bytes, .. } => {
                out.push(datum(SAVE_SECONDS, *seconds, StandardUnit::Seconds));
                out.push(datum(BYTES_UPLOADED, *bytes as f64, StandardUnit::Bytes));
            }
            Event::Install { seconds, .. } => {
                out.push(datum(INSTALL_SECONDS, *seconds, StandardUnit::Seconds));
            }
            Event::TimeSaved { seconds, at, .. } => {
                // A cost is worth seeing: negative seconds stay negative.
                let value = if seconds.is_finite() { *seconds } else { 0.0 };
                out.push(
                    MetricDatum::builder()
                        .metric_name(TIME_SAVED_SECONDS)
                        .value(value)
                        .unit(StandardUnit::Seconds)
                        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(*at))
                        .set_dimensions(Some(dimensions))
                        .build(),
                );
            }
            Event::Prune {
                entries,
                bytes,
                store_entries,
                store_bytes,
                ..
            } => {
                out.push(datum(PRUNED_ENTRIES, *entries as f64, StandardUnit::Count));
                out.push(datum(PRUNED_BYTES, *bytes as f64, StandardUnit::Bytes));
                out.push(datum(
                    STORE_ENTRIES,
                    *store_entries as f64,
                    StandardUnit::Count,
                ));
                out.push(datum(STORE_BYTES, *store_bytes as f64, StandardUnit::Bytes));
            }
        }
    }
    out
}

fn outcome_index(outcome: RestoreOutcome) -> usize {
    match outcome {
        RestoreOutcome::Hit => 0,
        RestoreOutcome::Partial => 1,
        RestoreOutcome::Miss => 2,
        RestoreOutcome::Error => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_name_from_build_id() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("unset", None, "local"),
            ("empty", Some(""), "local"),
            ("blank", Some("  "), "local"),
            (
                "codebuild",
                Some("web-app:7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                "web-app",
            ),
            ("last colon wins", Some("a:b:uuid"), "a:b"),
            ("no colon", Some("web-app"), "web-app"),
            ("empty project", Some(":uuid"), "local"),
        ];
        for (name, id, want) in cases {
            assert_eq!(project_from_build_id(*id), *want, "case {name}");
        }
    }

    fn value_of<'a>(datums: &'a [MetricDatum], name: &str) -> Vec<&'a MetricDatum> {
        datums
            .iter()
            .filter(|d| d.metric_name() == Some(name))
            .collect()
    }

    fn dims(d: &MetricDatum) -> Vec<(&str, &str)> {
        d.dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect()
    }

    #[test]
    fn restore_sends_four_outcomes_exactly_one_set() {
        let cases = [
            ("hit", RestoreOutcome::Hit, CACHE_HIT),
            ("partial", RestoreOutcome::Partial, CACHE_PARTIAL_HIT),
            ("miss", RestoreOutcome::Miss, CACHE_MISS),
            ("error", RestoreOutcome::Error, CACHE_ERROR),
        ];
        for (name, outcome, set) in cases {
            let event = Event::Restore {
                cache: "npm".into(),
                outcome,
                seconds: 4.5,
                bytes: 1234,
            };
            let out = datums(&[event], "web-app");
            assert_eq!(out.len(), 6, "case {name}");
            for metric in OUTCOME_METRICS {
                let found = value_of(&out, metric);
                assert_eq!(found.len(), 1, "case {name}: {metric}");
                let want = if metric == set { 1.0 } else { 0.0 };
                assert_eq!(found[0].value(), Some(want), "case {name}: {metric}");
                assert_eq!(found[0].unit(), Some(&StandardUnit::Count));
            }
            let ones = out
                .iter()
                .filter(|d| OUTCOME_METRICS.contains(&d.metric_name().unwrap()))
                .filter(|d| d.value() == Some(1.0))
                .count();
            assert_eq!(ones, 1, "case {name}");
            assert_eq!(value_of(&out, RESTORE_SECONDS)[0].value(), Some(4.5));
            assert_eq!(value_of(&out, BYTES_DOWNLOADED)[0].value(), Some(1234.0));
            for d in &out {
                assert_eq!(
                    dims(d),
                    [(CACHE_DIMENSION, "npm"), (PROJECT_DIMENSION, "web-app")],
                    "case {name}"
                );
            }
        }
    }

    #[test]
    fn save_never_sends_outcomes() {
        let event = Event::Save {
            cache: "cargo".into(),
            seconds: 12.25,
            bytes: 99,
        };
        let out = datums(&[event], "local");
        let names: Vec<_> = out.iter().map(|d| d.metric_name().unwrap()).collect();
        assert_eq!(names, [SAVE_SECONDS, BYTES_UPLOADED]);
        assert_eq!(out[0].value(), Some(12.25));
        assert_eq!(out[0].unit(), Some(&StandardUnit::Seconds));
        assert_eq!(out[1].value(), Some(99.0));
        assert_eq!(out[1].unit(), Some(&StandardUnit::Bytes));
    }

    #[test]
    fn installs_carry_the_restore_outcome_as_a_third_dimension() {
        let cases = [
            ("hit", Some(RestoreOutcome::Hit), "hit"),
            ("partial", Some(RestoreOutcome::Partial), "partial"),
            ("miss", Some(RestoreOutcome::Miss), "miss"),
            (
                "store error is a cold start",
                Some(RestoreOutcome::Error),
                "miss",
            ),
            ("no restore is a cold start", None, "miss"),
        ];
        for (name, restore, want) in cases {
            let out = datums(
                &[Event::Install {
                    cache: "npm".into(),
                    restore,
                    seconds: 41.25,
                }],
                "web-app",
            );
            assert_eq!(out.len(), 1, "case {name}");
            assert_eq!(out[0].metric_name(), Some(INSTALL_SECONDS), "case {name}");
            assert_eq!(out[0].value(), Some(41.25), "case {name}");
            assert_eq!(out[0].unit(), Some(&StandardUnit::Seconds), "case {name}");
            assert_eq!(
                dims(&out[0]),
                [
                    (CACHE_DIMENSION, "npm"),
                    (PROJECT_DIMENSION, "web-app"),
                    (OUTCOME_DIMENSION, want)
                ],
                "case {name}"
            );
        }
    }

    #[test]
    fn time_saved_is_per_project_at_its_day_and_may_be_negative() {
        let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for (name, seconds, want) in [
            ("saved", 312.5, 312.5),
            ("cost", -40.0, -40.0),
            ("NaN", f64::NAN, 0.0),
        ] {
            let out = datums(
                &[Event::TimeSaved {
                    project: "web-app".into(),
                    seconds,
                    at,
                }],
                "cachectl-prune",
            );
            assert_eq!(out.len(), 1, "case {name}");
            assert_eq!(
                out[0].metric_name(),
                Some(TIME_SAVED_SECONDS),
                "case {name}"
            );
            assert_eq!(out[0].value(), Some(want), "case {name}");
            assert_eq!(
                dims(&out[0]),
                [(PROJECT_DIMENSION, "web-app")],
                "case {name}"
            );
            assert_eq!(
                out[0].timestamp().map(|t| t.secs()),
                Some(1_700_000_000),
                "case {name}"
            );
        }
    }

    #[test]
    fn values_and_dimensions_cloudwatch_accepts() {
        let long = "x".repeat(3000);
        let cases: &[(&str, &str, f64, &str, f64)] = &[
            ("plain", "npm", 1.5, "npm", 1.5),
            ("nan seconds", "npm", f64::NAN, "npm", 0.0),
            ("infinite seconds", "npm", f64::INFINITY, "npm", 0.0),
            ("negative seconds", "npm", -3.0, "npm", 0.0),
            ("empty name", "", 1.0, "unnamed", 1.0),
            ("blank name", " \t", 1.0, "unnamed", 1.0),
        ];
        for (name, cache, seconds, want_cache, want_seconds) in cases {
            let out = datums(
                &[Event::Save {
                    cache: (*cache).into(),
                    seconds: *seconds,
                    bytes: 0,
                }],
                "p",
            );
            assert_eq!(out[0].value(), Some(*want_seconds), "case {name}");
            assert_eq!(dims(&out[0])[0].1, *want_cache, "case {name}");
        }
        let out = datums(
            &[Event::Save {
                cache: long,
                seconds: 1.0,
                bytes: 0,
            }],
            "p",
        );
        assert_eq!(dims(&out[0])[0].1.chars().count(), MAX_DIMENSION_CHARS);
    }

    #[test]
    fn many_caches_fit_the_datum_limit_per_call() {
        let events: Vec<Event> = (0..167)
            .map(|i| Event::Restore {
                cache: format!("c{i}"),
                outcome: RestoreOutcome::Hit,
                seconds: 1.0,
                bytes: 1,
            })
            .collect();
        let out = datums(&events, "p");
        let sizes: Vec<usize> = out.chunks(MAX_DATUMS_PER_CALL).map(<[_]>::len).collect();
        assert_eq!(sizes, [1000, 2]);
    }
}
