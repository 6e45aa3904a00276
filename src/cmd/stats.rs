//! `cachectl stats`: restore outcomes and timings read back from CloudWatch
//! ([`crate::metrics::query`]), as a table per (cache, project) or one JSON object.
//!
//! Time saved is not measured: the metrics hold how long restores and saves took, not how long
//! the install step takes without a cache. The report gives cachectl's own cost and the formula
//! `saved ≈ (hit + partial) × T − restore seconds − save seconds` for a cold install of T seconds.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, StatsArgs};
use crate::metrics::query::{self, Field, Sums};
use crate::output::{self, Align};
use crate::units::rfc3339;
use serde::Serialize;
use std::fmt::Write as _;

/// One line of the report: a (cache, project) pair, or the total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub restores: u64,
    pub hit: u64,
    pub partial: u64,
    pub miss: u64,
    pub error: u64,
    /// Fractions of `restores` (0..1); null without restores.
    pub hit_rate: Option<f64>,
    pub partial_rate: Option<f64>,
    pub miss_rate: Option<f64>,
    pub error_rate: Option<f64>,
    pub restore_seconds: f64,
    pub mean_restore_seconds: Option<f64>,
    pub bytes_downloaded: u64,
    pub saves: u64,
    pub save_seconds: f64,
    pub mean_save_seconds: Option<f64>,
    pub bytes_uploaded: u64,
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

fn ratio(part: f64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part / whole as f64)
}

impl Row {
    fn new(cache: Option<String>, project: Option<String>, s: &Sums) -> Row {
        let mut row = Row {
            cache,
            project,
            hit: count(s.get(Field::Hit)),
            partial: count(s.get(Field::Partial)),
            miss: count(s.get(Field::Miss)),
            error: count(s.get(Field::Error)),
            restore_seconds: s.get(Field::RestoreSeconds).max(0.0),
            bytes_downloaded: count(s.get(Field::BytesDownloaded)),
            saves: count(s.get(Field::Saves)),
            save_seconds: s.get(Field::SaveSeconds).max(0.0),
            bytes_uploaded: count(s.get(Field::BytesUploaded)),
            ..Row::default()
        };
        row.derive();
        row
    }

    /// Restores, rates and means from the counts and sums.
    fn derive(&mut self) {
        self.restores = self.hit + self.partial + self.miss + self.error;
        self.hit_rate = ratio(self.hit as f64, self.restores);
        self.partial_rate = ratio(self.partial as f64, self.restores);
        self.miss_rate = ratio(self.miss as f64, self.restores);
        self.error_rate = ratio(self.error as f64, self.restores);
        self.mean_restore_seconds = ratio(self.restore_seconds, self.restores);
        self.mean_save_seconds = ratio(self.save_seconds, self.saves);
    }

    fn total(rows: &[Row]) -> Row {
        let mut t = Row::default();
        for r in rows {
            t.hit += r.hit;
            t.partial += r.partial;
            t.miss += r.miss;
            t.error += r.error;
            t.restore_seconds += r.restore_seconds;
            t.bytes_downloaded += r.bytes_downloaded;
            t.saves += r.saves;
            t.save_seconds += r.save_seconds;
            t.bytes_uploaded += r.bytes_uploaded;
        }
        t.derive();
        t
    }
}

/// The `--json` object.
#[derive(Debug, Serialize)]
pub struct Report {
    pub namespace: String,
    /// The window read: `start` .. `end` (RFC 3339), `since_seconds` long plus the end slack.
    pub since_seconds: u64,
    pub start: String,
    pub end: String,
    /// The `--cache` / `--project` filters, null when not given.
    pub cache: Option<String>,
    pub project: Option<String>,
    /// One row per (cache, project), sorted.
    pub caches: Vec<Row>,
    pub total: Row,
    pub time_saved: TimeSaved,
}

#[derive(Debug, Serialize)]
pub struct TimeSaved {
    /// Always null: the metrics cannot tell it (see `note`).
    pub seconds: Option<f64>,
    /// Restores that skipped some or all of the install: hit + partial.
    pub cached_restores: u64,
    /// cachectl's own time: restore seconds + save seconds.
    pub cost_seconds: f64,
    pub formula: &'static str,
    pub note: &'static str,
}

const FORMULA: &str =
    "(hit + partial) * T - restore_seconds - save_seconds, T = seconds of a cold install";
const NOTE: &str = "not measured: these metrics record how long restores and saves took, not how long the install step takes without a cache";

pub async fn run(g: &GlobalArgs, args: StatsArgs) -> Result<ExitStatus, Error> {
    let report = collect(&args).await?;
    if g.json {
        output::json(&report)?;
    } else {
        output::print(&render(&report))?;
    }
    Ok(ExitStatus::Success)
}

async fn collect(args: &StatsArgs) -> Result<Report, Error> {
    let (window, sums) = query::read(
        &args.namespace,
        args.cache.as_deref(),
        args.project.as_deref(),
        args.since,
    )
    .await?;
    let caches: Vec<Row> = sums
        .into_iter()
        .map(|((cache, project), s)| Row::new(Some(cache), Some(project), &s))
        .collect();
    let total = Row::total(&caches);
    Ok(Report {
        namespace: args.namespace.clone(),
        since_seconds: window.since.as_secs(),
        start: rfc3339(window.start),
        end: rfc3339(window.end),
        cache: args.cache.clone(),
        project: args.project.clone(),
        time_saved: TimeSaved {
            seconds: None,
            cached_restores: total.hit + total.partial,
            cost_seconds: total.restore_seconds + total.save_seconds,
            formula: FORMULA,
            note: NOTE,
        },
        caches,
        total,
    })
}

fn percent(rate: Option<f64>) -> String {
    match rate {
        None => "-".into(),
        Some(r) if r > 0.0 && r < 0.01 => "<1%".into(),
        Some(r) => format!("{:.0}%", r * 100.0),
    }
}

fn seconds(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.1}"))
}

fn cells(row: &Row, label: [String; 2]) -> Vec<String> {
    let with_rate = |n: u64, r: Option<f64>| format!("{n} ({})", percent(r));
    let [cache, project] = label;
    vec![
        cache,
        project,
        row.restores.to_string(),
        with_rate(row.hit, row.hit_rate),
        with_rate(row.partial, row.partial_rate),
        with_rate(row.miss, row.miss_rate),
        with_rate(row.error, row.error_rate),
        seconds(row.mean_restore_seconds),
        row.saves.to_string(),
        seconds(row.mean_save_seconds),
    ]
}

/// The table on stdout: one row per (cache, project), then the total and the notes.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CloudWatch namespace `{}`, {} .. {}",
        report.namespace, report.start, report.end
    );
    if report.caches.is_empty() {
        let _ = writeln!(out, "no restores or saves recorded in this window");
        return out;
    }
    let header: Vec<String> = [
        "CACHE",
        "PROJECT",
        "RESTORES",
        "HIT",
        "PARTIAL",
        "MISS",
        "ERROR",
        "RESTORE S",
        "SAVES",
        "SAVE S",
    ]
    .map(String::from)
    .to_vec();
    let mut table = vec![header];
    for row in &report.caches {
        let label = [
            row.cache.clone().unwrap_or_default(),
            row.project.clone().unwrap_or_default(),
        ];
        table.push(cells(row, label));
    }
    if report.caches.len() > 1 {
        table.push(cells(&report.total, ["total".into(), String::new()]));
    }
    // Names read left to right; numbers line up on their last digit.
    let mut align = vec![Align::Right; table[0].len()];
    align[..2].fill(Align::Left);
    out.push_str(&output::table(&table, &align));
    let t = &report.total;
    let _ = writeln!(
        out,
        "\nRESTORE S and SAVE S are mean seconds per restore and per save; restores = hit + partial + miss + error."
    );
    let _ = writeln!(
        out,
        "Time saved: {NOTE}.\nWith a cold install of T seconds, saved ≈ (hit + partial) × T − restore − save seconds = {} × T − {:.1} s.",
        t.hit + t.partial,
        t.restore_seconds + t.save_seconds
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn sums(values: [f64; 9]) -> Sums {
        Sums(values)
    }

    #[test]
    fn rows_rates_and_means() {
        // hit, partial, miss, error, restore s, bytes down, save s, saves, bytes up
        let a = Row::new(
            Some("npm".into()),
            Some("web".into()),
            &sums([3.0, 1.0, 1.0, 0.0, 10.0, 500.0, 6.0, 2.0, 300.0]),
        );
        assert_eq!(a.restores, 5);
        assert_eq!(a.hit_rate, Some(0.6));
        assert_eq!(a.partial_rate, Some(0.2));
        assert_eq!(a.miss_rate, Some(0.2));
        assert_eq!(a.error_rate, Some(0.0));
        assert_eq!(a.mean_restore_seconds, Some(2.0));
        assert_eq!(a.mean_save_seconds, Some(3.0));
        let empty = Row::new(None, None, &Sums::default());
        assert_eq!(empty.restores, 0);
        assert_eq!(empty.hit_rate, None);
        assert_eq!(empty.mean_restore_seconds, None);
        let b = Row::new(
            Some("pip".into()),
            Some("web".into()),
            &sums([0.0, 0.0, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0]),
        );
        let t = Row::total(&[a, b]);
        assert_eq!((t.restores, t.hit, t.error), (10, 3, 5));
        assert_eq!(t.error_rate, Some(0.5));
        assert_eq!(t.mean_restore_seconds, Some(1.5));
        assert_eq!((t.cache, t.project), (None, None));
    }

    #[test]
    fn table_is_aligned() {
        let rows = vec![
            Row::new(
                Some("npm".into()),
                Some("web-app".into()),
                &sums([96.0, 12.0, 10.0, 2.0, 504.0, 0.0, 98.0, 10.0, 0.0]),
            ),
            Row::new(
                Some("cargo-registry".into()),
                Some("api".into()),
                &sums([8.0, 0.0, 2.0, 0.0, 30.0, 0.0, 20.0, 2.0, 0.0]),
            ),
        ];
        let report = Report {
            namespace: "Cachectl".into(),
            since_seconds: 7 * DAY,
            start: "2026-11-19T15:00:00Z".into(),
            end: "2026-11-26T15:01:00Z".into(),
            cache: None,
            project: None,
            total: Row::total(&rows),
            caches: rows,
            time_saved: TimeSaved {
                seconds: None,
                cached_restores: 116,
                cost_seconds: 652.0,
                formula: FORMULA,
                note: NOTE,
            },
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..5],
            [
                "CACHE           PROJECT  RESTORES        HIT   PARTIAL     MISS   ERROR  RESTORE S  SAVES  SAVE S",
                "npm             web-app       120   96 (80%)  12 (10%)  10 (8%)  2 (2%)        4.2     10     9.8",
                "cargo-registry  api            10    8 (80%)    0 (0%)  2 (20%)  0 (0%)        3.0      2    10.0",
                "total                         130  104 (80%)   12 (9%)  12 (9%)  2 (2%)        4.1     12     9.8",
            ],
            "{text}"
        );
    }
}
