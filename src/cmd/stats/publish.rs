//! `cachectl stats --publish`: one UTC day's time saved per project, published as
//! `TimeSavedSeconds` for the dashboard, which cannot reckon it itself (CloudWatch metric math
//! cannot pair one search's series with another's by dimension).
//!
//! The day's restores, partial hits and cachectl seconds are that day's; the cold and warm
//! medians come from the [`BASELINE_DAYS`] ending with it, since one day seldom has the three
//! timed misses a median needs. Each datum is stamped at the day's noon and the dashboard reads
//! each day's maximum, so a day published twice (a retried schedule, a backfill) counts once.

use super::{ExitStatus, Row};
use crate::cli::{GlobalArgs, StatsArgs};
use crate::cmd::Error;
use crate::metrics::query::{self, PairMetrics};
use crate::metrics::{Event, Metrics, Published};
use crate::output::{self, Align};
use crate::units::rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: Duration = Duration::from_secs(86_400);

/// Days of install times the medians are taken over, ending with the day published.
pub const BASELINE_DAYS: u32 = 30;

/// One project's time saved on the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ProjectSaved {
    project: String,
    /// Null when no cache of the project has a known cold install.
    seconds: Option<f64>,
    minutes: Option<f64>,
    /// Caches restored or saved that day, and how many of them are counted.
    caches: u64,
    caches_counted: u64,
}

/// The `--json` object.
#[derive(Debug, Serialize)]
struct Report {
    namespace: String,
    /// The UTC day, `YYYY-MM-DD`.
    day: String,
    projects: Vec<ProjectSaved>,
    /// Datums sent (one per project with a known time saved).
    published: usize,
}

pub(super) async fn run(g: &GlobalArgs, args: &StatsArgs) -> Result<ExitStatus, Error> {
    let now = SystemTime::now();
    let start = args.day.unwrap_or_else(|| yesterday(now));
    check_day(start, now)?;
    let end = start + DAY;
    let baseline = end - DAY * BASELINE_DAYS;
    let ns = &args.namespace;
    // Credentials for the publish resolve while the reads run.
    let metrics = Metrics::start(ns.clone());
    let (day, medians) = futures_util::future::try_join(
        query::read_between(ns, start, end),
        query::read_between(ns, baseline, end),
    )
    .await?;
    let projects = per_project(&day, &medians);
    let noon = start + DAY / 2;
    let events: Vec<Event> = projects
        .iter()
        .filter_map(|p| {
            p.seconds.map(|seconds| Event::TimeSaved {
                project: p.project.clone(),
                seconds,
                at: noon,
            })
        })
        .collect();
    match metrics.publish(&events).await {
        Published::NotSent { reason, hint, .. } => {
            return Err(Error::NotPublished { reason, hint });
        }
        Published::Sent { .. } | Published::NothingToSend | Published::Disabled => {}
    }
    let report = Report {
        namespace: ns.clone(),
        day: rfc3339(start)[..10].to_owned(),
        published: events.len(),
        projects,
    };
    if g.json {
        output::json(&report)?;
    } else {
        output::print(&render(&report))?;
    }
    Ok(ExitStatus::Success)
}

/// CloudWatch takes datums stamped up to two weeks back (and a day still going would be
/// published before all of it is known).
///
/// Errors: [`Error::Usage`] for a day that has not ended or is more than 13 days back.
fn check_day(start: SystemTime, now: SystemTime) -> Result<(), Error> {
    let day = &rfc3339(start)[..10];
    let hint = Some("leave --day out for yesterday (UTC)".to_owned());
    if start + DAY > now {
        return Err(Error::Usage {
            message: format!("--day {day}: the day has not ended yet (UTC)"),
            hint,
        });
    }
    if start + DAY * 14 < now {
        return Err(Error::Usage {
            message: format!("--day {day}: CloudWatch takes data at most two weeks old"),
            hint,
        });
    }
    Ok(())
}

/// The UTC day before the one `now` is in, as the time it starts.
fn yesterday(now: SystemTime) -> SystemTime {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let today = secs - secs % DAY.as_secs();
    UNIX_EPOCH + Duration::from_secs(today) - DAY
}

/// Each project's time saved: every (cache, project) restored or saved on the day (`day`),
/// with its install medians from `baseline`, added up per project; the caches with no known
/// cold install are left out and counted.
fn per_project(
    day: &[((String, String), PairMetrics)],
    baseline: &[((String, String), PairMetrics)],
) -> Vec<ProjectSaved> {
    let installs: BTreeMap<&(String, String), &query::InstallSamples> = baseline
        .iter()
        .map(|(pair, m)| (pair, &m.installs))
        .collect();
    let mut out: BTreeMap<&str, ProjectSaved> = BTreeMap::new();
    for (pair, m) in day {
        let metrics = PairMetrics {
            sums: m.sums,
            installs: installs.get(pair).map(|i| (*i).clone()).unwrap_or_default(),
        };
        let row = Row::new(Some(pair.0.clone()), Some(pair.1.clone()), &metrics);
        if row.restores == 0 && row.saves == 0 {
            continue;
        }
        let p = out.entry(&pair.1).or_insert_with(|| ProjectSaved {
            project: pair.1.clone(),
            seconds: None,
            minutes: None,
            caches: 0,
            caches_counted: 0,
        });
        p.caches += 1;
        if let Some(s) = row.time_saved.seconds {
            p.caches_counted += 1;
            let total = p.seconds.unwrap_or(0.0) + s;
            p.seconds = Some(total);
            p.minutes = Some(total / 60.0);
        }
    }
    out.into_values().collect()
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Time saved on {} (UTC), CloudWatch namespace `{}` (install medians over the {BASELINE_DAYS} days to its end):",
        report.day, report.namespace
    );
    if report.projects.is_empty() {
        let _ = writeln!(out, "no restores or saves recorded that day");
        return out;
    }
    let mut table = vec![vec![
        "PROJECT".to_owned(),
        "SAVED MIN".to_owned(),
        "CACHES COUNTED".to_owned(),
    ]];
    for p in &report.projects {
        table.push(vec![
            p.project.clone(),
            p.minutes.map_or_else(|| "?".into(), |m| format!("{m:.1}")),
            format!("{} of {}", p.caches_counted, p.caches),
        ]);
    }
    out.push_str(&output::table(
        &table,
        &[Align::Left, Align::Right, Align::Right],
    ));
    let _ = writeln!(
        out,
        "Published {} TimeSavedSeconds datums (one per project with a known time saved); `cachectl stats` says why a cache is not counted.",
        report.published
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::query::{InstallSamples, Sums};

    #[test]
    fn days_that_can_be_published() {
        let at = |s: &str| crate::units::parse_rfc3339(s).unwrap();
        let now = at("2026-11-30T13:45:00Z");
        let cases = [
            ("yesterday", "2026-11-29T00:00:00Z", true),
            ("13 days back", "2026-11-17T00:00:00Z", true),
            ("too old for CloudWatch", "2026-11-15T00:00:00Z", false),
            ("today, not over", "2026-11-30T00:00:00Z", false),
            ("tomorrow", "2026-12-01T00:00:00Z", false),
        ];
        for (name, day, ok) in cases {
            assert_eq!(check_day(at(day), now).is_ok(), ok, "case {name}");
        }
    }

    #[test]
    fn yesterday_is_the_utc_day_before() {
        let at = |s: &str| crate::units::parse_rfc3339(s).unwrap();
        let cases = [
            ("midday", "2026-11-30T13:45:00Z", "2026-11-29T00:00:00Z"),
            (
                "just after midnight",
                "2026-11-30T00:00:01Z",
                "2026-11-29T00:00:00Z",
            ),
            (
                "midnight itself",
                "2026-11-30T00:00:00Z",
                "2026-11-29T00:00:00Z",
            ),
            ("new year", "2027-01-01T08:00:00Z", "2026-12-31T00:00:00Z"),
        ];
        for (name, now, want) in cases {
            assert_eq!(rfc3339(yesterday(at(now))), want, "case {name}");
        }
    }

    fn pair(
        cache: &str,
        project: &str,
        sums: [f64; 9],
        installs: InstallSamples,
    ) -> ((String, String), PairMetrics) {
        (
            (cache.to_owned(), project.to_owned()),
            PairMetrics {
                sums: Sums(sums),
                installs,
            },
        )
    }

    #[test]
    fn per_project_sums_the_known_caches_with_baseline_medians() {
        // Three cold installs of `s` seconds, and three skipped on exact hits.
        let cold = |s: f64| InstallSamples {
            miss: vec![(s, 3)],
            hit: vec![(0.0, 3)],
            ..InstallSamples::default()
        };
        // hit, partial, miss, error, restore s, bytes down, save s, saves, bytes up
        let day = vec![
            // 5 hits × 40 s − 10 s restores − 0 saves = 190 s
            pair(
                "npm",
                "web",
                [5.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0],
                InstallSamples::default(),
            ),
            // 2 hits × 100 s − 4 s − 6 s = 190 s
            pair(
                "cargo",
                "web",
                [2.0, 0.0, 0.0, 0.0, 4.0, 0.0, 6.0, 1.0, 0.0],
                InstallSamples::default(),
            ),
            // No install timed: not counted.
            pair(
                "pip",
                "api",
                [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                InstallSamples::default(),
            ),
            // Nothing that day.
            pair("go", "api", [0.0; 9], InstallSamples::default()),
        ];
        let baseline = vec![
            pair("npm", "web", [0.0; 9], cold(40.0)),
            pair("cargo", "web", [0.0; 9], cold(100.0)),
            pair("go", "api", [0.0; 9], cold(7.0)),
        ];
        assert_eq!(
            per_project(&day, &baseline),
            [
                ProjectSaved {
                    project: "api".into(),
                    seconds: None,
                    minutes: None,
                    caches: 1,
                    caches_counted: 0,
                },
                ProjectSaved {
                    project: "web".into(),
                    seconds: Some(380.0),
                    minutes: Some(380.0 / 60.0),
                    caches: 2,
                    caches_counted: 2,
                },
            ]
        );
    }
}
