//! `cachectl stats`: restore outcomes and timings read back from CloudWatch.
//!
//! ListMetrics finds every (CacheName, ProjectName) pair of the namespace; GetMetricData then
//! sums each metric over the window, one period covering all of it. Restores are the sum of
//! the four outcome metrics (each restore sends exactly one 1); saves are the sample count of
//! `SaveSeconds`.
//!
//! Time saved is not measured: the metrics hold how long restores and saves took, not how long
//! the install step takes without a cache. The report gives cachectl's own cost and the formula
//! `saved ≈ (hit + partial) × T − restore seconds − save seconds` for a cold install of T seconds.

use crate::cli::StatsArgs;
use crate::error::{code, Hint};
use crate::metrics::{self, classify, Error};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, StatusCode,
};
use aws_sdk_cloudwatch::Client;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

const DAY: u64 = 86_400;
/// CloudWatch keeps metrics 15 months; a longer window reads nothing more.
const RETENTION: Duration = Duration::from_secs(455 * DAY);
/// GetMetricData takes at most 500 queries per call.
const MAX_QUERIES_PER_CALL: usize = 500;
/// The window ends a minute after now: a datum stamped by a clock slightly ahead of ours (or
/// put in the current second, which CloudWatch emulators cut off) still counts.
const END_SLACK: Duration = Duration::from_secs(60);

/// What each query sums; the index into `Sums`.
#[derive(Debug, Clone, Copy)]
enum Field {
    Hit,
    Partial,
    Miss,
    Error,
    RestoreSeconds,
    BytesDownloaded,
    SaveSeconds,
    Saves,
    BytesUploaded,
}

/// (metric, statistic, field) for each pair of dimensions.
const QUERIES: [(&str, &str, Field); 9] = [
    (metrics::CACHE_HIT, "Sum", Field::Hit),
    (metrics::CACHE_PARTIAL_HIT, "Sum", Field::Partial),
    (metrics::CACHE_MISS, "Sum", Field::Miss),
    (metrics::CACHE_ERROR, "Sum", Field::Error),
    (metrics::RESTORE_SECONDS, "Sum", Field::RestoreSeconds),
    (metrics::BYTES_DOWNLOADED, "Sum", Field::BytesDownloaded),
    (metrics::SAVE_SECONDS, "Sum", Field::SaveSeconds),
    (metrics::SAVE_SECONDS, "SampleCount", Field::Saves),
    (metrics::BYTES_UPLOADED, "Sum", Field::BytesUploaded),
];

/// Sums over the window for one (cache, project), indexed by `Field`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums([f64; QUERIES.len()]);

impl Sums {
    fn get(&self, field: Field) -> f64 {
        self.0[field as usize]
    }
}

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

/// The period and bounds of a query over the last `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: SystemTime,
    end: SystemTime,
    since: Duration,
    period_secs: i32,
}

impl Window {
    /// One period spans the whole window, in the unit CloudWatch demands for data that old
    /// (a minute up to 15 days back, 5 minutes up to 63, an hour beyond).
    fn new(now: SystemTime, since: Duration) -> Window {
        let since = since.clamp(Duration::from_secs(60), RETENTION);
        let start = now.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH);
        let end = now + END_SLACK;
        let unit = if since > Duration::from_secs(63 * DAY) {
            3600
        } else if since > Duration::from_secs(15 * DAY) {
            300
        } else {
            60
        };
        let span = (since + END_SLACK).as_secs();
        let period = span.div_ceil(unit) * unit;
        Window {
            start,
            end,
            since,
            period_secs: i32::try_from(period).unwrap_or(i32::MAX / 3600 * 3600),
        }
    }
}

pub async fn run(args: StatsArgs) -> ExitCode {
    match collect(&args).await {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                print!("{}", render(&report));
            }
            ExitCode::from(code::OK)
        }
        Err(e) => crate::error::report(&e, e.hint(), code::FAILED),
    }
}

async fn collect(args: &StatsArgs) -> Result<Report, Error> {
    let conf = crate::store::s3::sdk_config().await;
    let client = Client::new(&conf);
    let window = Window::new(SystemTime::now(), args.since);
    let pairs = pairs(
        &client,
        &args.namespace,
        args.cache.as_deref(),
        args.project.as_deref(),
    )
    .await?;
    let sums = fetch(&client, &args.namespace, &pairs, &window).await?;
    let caches: Vec<Row> = pairs
        .into_iter()
        .zip(&sums)
        .map(|((cache, project), s)| Row::new(Some(cache), Some(project), s))
        .collect();
    let total = Row::total(&caches);
    Ok(Report {
        namespace: args.namespace.clone(),
        since_seconds: window.since.as_secs(),
        start: crate::time::rfc3339(window.start),
        end: crate::time::rfc3339(window.end),
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

/// The (cache, project) pairs with any cachectl metric in `namespace`, sorted.
///
/// CloudWatch lists metrics with data in the last two weeks only: a pair silent for longer
/// does not show up even in a longer window.
async fn pairs(
    client: &Client,
    namespace: &str,
    cache: Option<&str>,
    project: Option<&str>,
) -> Result<Vec<(String, String)>, Error> {
    let mut req = client.list_metrics().namespace(namespace);
    for (name, value) in [
        (metrics::CACHE_DIMENSION, cache),
        (metrics::PROJECT_DIMENSION, project),
    ] {
        if let Some(value) = value {
            req = req.dimensions(DimensionFilter::builder().name(name).value(value).build());
        }
    }
    let what = || format!("list metrics in CloudWatch namespace `{namespace}`");
    let mut found = BTreeSet::new();
    let mut pages = req.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify(what(), e))?;
        for metric in page.metrics() {
            if !QUERIES.iter().any(|q| Some(q.0) == metric.metric_name()) {
                continue;
            }
            if let Some(pair) = pair_of(metric.dimensions()) {
                found.insert(pair);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// (CacheName, ProjectName) when those are exactly the dimensions.
fn pair_of(dims: &[Dimension]) -> Option<(String, String)> {
    if dims.len() != 2 {
        return None;
    }
    let value = |name: &str| {
        dims.iter()
            .find(|d| d.name() == Some(name))
            .and_then(|d| d.value())
            .map(str::to_owned)
    };
    Some((
        value(metrics::CACHE_DIMENSION)?,
        value(metrics::PROJECT_DIMENSION)?,
    ))
}

/// Query ids are `q<pair>_<query>` (ids must start with a lowercase letter).
fn query_id(pair: usize, query: usize) -> String {
    format!("q{pair}_{query}")
}

fn parse_query_id(id: &str) -> Option<(usize, usize)> {
    let (pair, query) = id.strip_prefix('q')?.split_once('_')?;
    Some((pair.parse().ok()?, query.parse().ok()?))
}

async fn fetch(
    client: &Client,
    namespace: &str,
    pairs: &[(String, String)],
    window: &Window,
) -> Result<Vec<Sums>, Error> {
    let mut sums = vec![Sums::default(); pairs.len()];
    let mut queries = Vec::with_capacity(pairs.len() * QUERIES.len());
    for (p, (cache, project)) in pairs.iter().enumerate() {
        for (q, (metric, stat, _)) in QUERIES.iter().enumerate() {
            let metric = Metric::builder()
                .namespace(namespace)
                .metric_name(*metric)
                .dimensions(
                    Dimension::builder()
                        .name(metrics::CACHE_DIMENSION)
                        .value(cache)
                        .build(),
                )
                .dimensions(
                    Dimension::builder()
                        .name(metrics::PROJECT_DIMENSION)
                        .value(project)
                        .build(),
                )
                .build();
            queries.push(
                MetricDataQuery::builder()
                    .id(query_id(p, q))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(window.period_secs)
                            .stat(*stat)
                            .build(),
                    )
                    .return_data(true)
                    .build(),
            );
        }
    }
    let what = || format!("read metrics from CloudWatch namespace `{namespace}`");
    for chunk in queries.chunks(MAX_QUERIES_PER_CALL) {
        let mut pages = client
            .get_metric_data()
            .set_metric_data_queries(Some(chunk.to_vec()))
            .start_time(DateTime::from(window.start))
            .end_time(DateTime::from(window.end))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(what(), e))?;
            for result in page.metric_data_results() {
                match result.status_code() {
                    Some(StatusCode::Forbidden) => {
                        return Err(Error::Denied {
                            what: what(),
                            source: "GetMetricData answered Forbidden".into(),
                        })
                    }
                    Some(StatusCode::InternalError) => {
                        return Err(Error::Other {
                            what: what(),
                            source: "GetMetricData answered InternalError".into(),
                        })
                    }
                    _ => {}
                }
                let Some((p, q)) = result.id().and_then(parse_query_id) else {
                    continue;
                };
                if let Some(s) = sums.get_mut(p) {
                    if q < QUERIES.len() {
                        s.0[q] += result.values().iter().sum::<f64>();
                    }
                }
            }
        }
    }
    Ok(sums)
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
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            // Names read left to right; numbers line up on their last digit.
            if c < 2 {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:>w$}", w = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
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

    #[test]
    fn window_periods() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let cases: &[(&str, u64, u64, i32)] = &[
            // (name, since secs, clamped since secs, period secs)
            ("under a minute is a minute", 5, 60, 120),
            ("one hour", 3600, 3600, 3660),
            ("seven days", 7 * DAY, 7 * DAY, 7 * DAY as i32 + 60),
            (
                "thirty days: 5-minute unit",
                30 * DAY,
                30 * DAY,
                30 * DAY as i32 + 300,
            ),
            (
                "ninety days: hour unit",
                90 * DAY,
                90 * DAY,
                90 * DAY as i32 + 3600,
            ),
            (
                "past retention",
                1000 * DAY,
                455 * DAY,
                455 * DAY as i32 + 3600,
            ),
        ];
        for (name, since, clamped, period) in cases {
            let w = Window::new(now, Duration::from_secs(*since));
            assert_eq!(w.since, Duration::from_secs(*clamped), "case {name}");
            assert_eq!(w.period_secs, *period, "case {name}");
            assert!(
                w.period_secs as u64 >= (w.end.duration_since(w.start).unwrap()).as_secs(),
                "case {name}: one period covers the window"
            );
            assert_eq!(w.end, now + END_SLACK, "case {name}");
        }
    }

    #[test]
    fn query_ids_round_trip() {
        for (p, q) in [(0, 0), (3, 8), (1234, 5)] {
            let id = query_id(p, q);
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()));
            assert_eq!(parse_query_id(&id), Some((p, q)));
        }
        assert_eq!(parse_query_id("x1_2"), None);
        assert_eq!(parse_query_id("q1"), None);
    }

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
    fn pairs_need_exactly_both_dimensions() {
        let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
        let cases = [
            (
                "both",
                vec![dim("ProjectName", "p"), dim("CacheName", "c")],
                Some(("c".to_owned(), "p".to_owned())),
            ),
            ("cache only", vec![dim("CacheName", "c")], None),
            (
                "a third",
                vec![
                    dim("CacheName", "c"),
                    dim("ProjectName", "p"),
                    dim("X", "x"),
                ],
                None,
            ),
            (
                "other pair",
                vec![dim("CacheName", "c"), dim("Other", "p")],
                None,
            ),
        ];
        for (name, dims, want) in cases {
            assert_eq!(pair_of(&dims), want, "case {name}");
        }
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
