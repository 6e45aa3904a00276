//! `cachectl stats`: restore outcomes, timings and time saved read back from CloudWatch
//! ([`crate::metrics::query`], [`crate::metrics::saved`]), as tables per (cache, project) or
//! one JSON object.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, StatsArgs};
use crate::metrics::query::{self, Field, PairMetrics};
use crate::metrics::saved::{self, Activity, Distribution, Installs, TimeSaved};
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
    /// Install times `cachectl run` measured, by restore outcome; null on the total (medians
    /// of different caches' installs mean nothing together).
    pub installs: Option<Installs>,
    pub time_saved: TimeSaved,
    /// Restores × median cold install, for the total's share.
    #[serde(skip)]
    without_cache_seconds: f64,
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
    pub(super) fn new(cache: Option<String>, project: Option<String>, m: &PairMetrics) -> Row {
        let s = &m.sums;
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
        let installs = Installs {
            cold: Distribution::of(&m.installs.miss),
            warm: Distribution::of(&m.installs.partial),
            hot: Distribution::of(&m.installs.hit),
        };
        let activity = Activity {
            hits: row.hit,
            partials: row.partial,
            restores: row.restores,
            restore_seconds: row.restore_seconds,
            save_seconds: row.save_seconds,
        };
        let name = row.cache.as_deref().unwrap_or("?");
        row.time_saved = saved::estimate(name, &activity, &installs);
        row.without_cache_seconds = saved::without_cache(&activity, &installs);
        row.installs = Some(installs);
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
        let parts: Vec<(TimeSaved, f64)> = rows
            .iter()
            .map(|r| (r.time_saved.clone(), r.without_cache_seconds))
            .collect();
        t.time_saved = saved::total(&parts);
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
    /// The total's time saved (the same object as `total.time_saved`), and how it is reckoned.
    pub time_saved: TimeSaved,
    pub formula: &'static str,
}

const FORMULA: &str = "hit * (cold - hot) + partial * (cold - warm) - restore_seconds - save_seconds; cold, warm, hot = median InstallSeconds after a miss, a partial hit, an exact hit (0 when skipped)";

mod publish;

pub async fn run(g: &GlobalArgs, args: StatsArgs) -> Result<ExitStatus, Error> {
    if args.publish {
        return publish::run(g, &args).await;
    }
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
        .map(|((cache, project), m)| Row::new(Some(cache), Some(project), &m))
        .collect();
    let total = Row::total(&caches);
    Ok(Report {
        namespace: args.namespace.clone(),
        since_seconds: window.since.as_secs(),
        start: rfc3339(window.start),
        end: rfc3339(window.end),
        cache: args.cache.clone(),
        project: args.project.clone(),
        time_saved: total.time_saved.clone(),
        formula: FORMULA,
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
    let _ = writeln!(
        out,
        "\nRESTORE S and SAVE S are mean seconds per restore and per save; restores = hit + partial + miss + error."
    );
    out.push('\n');
    out.push_str(&render_saved(report));
    out
}

/// `median / p90 (n)` seconds of a kind of install, `-` without any.
fn distribution(d: &Distribution) -> String {
    match (d.median_seconds, d.p90_seconds) {
        (Some(median), Some(p90)) => format!("{median:.1} / {p90:.1} ({})", d.installs),
        _ => "-".into(),
    }
}

fn minutes(t: &TimeSaved) -> String {
    t.minutes.map_or_else(|| "?".into(), |m| format!("{m:.1}"))
}

/// The time-saved table: install times by restore outcome, minutes saved and their share,
/// then why any number is missing.
fn render_saved(report: &Report) -> String {
    let mut out = String::new();
    let header: Vec<String> = [
        "CACHE",
        "PROJECT",
        "COLD S",
        "WARM S",
        "HOT S",
        "SAVED MIN",
        "SHARE",
    ]
    .map(String::from)
    .to_vec();
    let mut table = vec![header];
    let mut notes = Vec::new();
    for row in &report.caches {
        let label = format!(
            "{} {}",
            row.cache.as_deref().unwrap_or_default(),
            row.project.as_deref().unwrap_or_default()
        );
        let installs = row.installs.clone().unwrap_or_default();
        table.push(vec![
            row.cache.clone().unwrap_or_default(),
            row.project.clone().unwrap_or_default(),
            distribution(&installs.cold),
            distribution(&installs.warm),
            distribution(&installs.hot),
            minutes(&row.time_saved),
            percent(row.time_saved.share),
        ]);
        notes.extend(row.time_saved.notes.iter().map(|n| format!("{label}: {n}")));
    }
    let t = &report.total.time_saved;
    if report.caches.len() > 1 {
        table.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            minutes(t),
            percent(t.share),
        ]);
    }
    let mut align = vec![Align::Right; table[0].len()];
    align[..2].fill(Align::Left);
    out.push_str(&output::table(&table, &align));
    let _ = writeln!(
        out,
        "\nCOLD, WARM and HOT S are median / p90 seconds (installs timed) of `cachectl run` after a miss, a partial hit and an exact hit."
    );
    let _ = writeln!(
        out,
        "Time saved = hits × (cold − hot) + partial hits × (cold − warm) − restore − save seconds; SHARE is of restores × cold."
    );
    match t.minutes {
        Some(m) => {
            let _ = writeln!(
                out,
                "Time saved: {m:.1} minutes ({} of the install time these builds would have spent without the cache).",
                percent(t.share)
            );
        }
        None => {
            let _ = writeln!(out, "Time saved: not known yet (see below).");
        }
    }
    for note in notes.iter().chain(&t.notes) {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn sums(values: [f64; 9]) -> PairMetrics {
        PairMetrics {
            sums: query::Sums(values),
            installs: query::InstallSamples::default(),
        }
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
        let empty = Row::new(None, None, &PairMetrics::default());
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
            time_saved: Row::total(&rows).time_saved,
            formula: FORMULA,
            caches: rows,
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

    #[test]
    fn time_saved_table() {
        let mut npm = sums([10.0, 3.0, 3.0, 0.0, 25.0, 0.0, 15.0, 6.0, 0.0]);
        npm.installs = query::InstallSamples {
            miss: vec![(30.0, 1), (40.0, 1), (50.0, 1)],
            partial: vec![(10.0, 1), (12.0, 1), (14.0, 1)],
            hit: vec![(0.0, 10)],
        };
        let mut cargo = sums([4.0, 0.0, 2.0, 0.0, 8.0, 0.0, 4.0, 2.0, 0.0]);
        cargo.installs.miss = vec![(300.0, 2)];
        let rows = vec![
            Row::new(Some("npm".into()), Some("web".into()), &npm),
            Row::new(Some("cargo".into()), Some("api".into()), &cargo),
        ];
        let total = Row::total(&rows);
        let report = Report {
            namespace: "Cachectl".into(),
            since_seconds: 7 * DAY,
            start: "2026-11-19T15:00:00Z".into(),
            end: "2026-11-26T15:01:00Z".into(),
            cache: None,
            project: None,
            time_saved: total.time_saved.clone(),
            total,
            formula: FORMULA,
            caches: rows,
        };
        // npm: 10 × 40 + 3 × (40 − 12) − (25 + 15) = 444 s = 7.4 min of 16 × 40 = 640 s.
        assert_eq!(report.caches[0].time_saved.seconds, Some(444.0));
        assert_eq!(report.time_saved.seconds, Some(444.0));
        let text = render_saved(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "CACHE  PROJECT             COLD S           WARM S           HOT S  SAVED MIN  SHARE",
                "npm    web        40.0 / 50.0 (3)  12.0 / 14.0 (3)  0.0 / 0.0 (10)        7.4    69%",
                "cargo  api      300.0 / 300.0 (2)                -               -          ?      -",
                "total                                                                     7.4    69%",
                "",
                "COLD, WARM and HOT S are median / p90 seconds (installs timed) of `cachectl run` after a miss, a partial hit and an exact hit.",
                "Time saved = hits × (cold − hot) + partial hits × (cold − warm) − restore − save seconds; SHARE is of restores × cold.",
                "Time saved: 7.4 minutes (69% of the install time these builds would have spent without the cache).",
                "note: cargo api: too few misses to know the cold install: 2 timed, 3 needed",
                "note: 1 of 2 caches left out: their cold install is not known",
            ],
            "{text}"
        );
    }
}
