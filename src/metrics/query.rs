//! Reading metrics back from CloudWatch for `cachectl stats`.
//!
//! ListMetrics finds every (CacheName, ProjectName) pair of the namespace; GetMetricData then
//! sums each metric over the window, one period covering all of it. Restores are the sum of
//! the four outcome metrics (each restore sends exactly one 1); saves are the sample count of
//! `SaveSeconds`.
//!
//! `InstallSeconds` is read per restore outcome as samples, not sums, for `stats`' medians:
//! the average and count of each period with data, at the finest period CloudWatch keeps for
//! data that old (a minute, 5 minutes past 15 days, an hour past 63). Each build's install is
//! its own sample unless two installs of one cache, project and outcome end in the same period;
//! GetMetricData's percentile statistics would be the alternative, but they are estimates and
//! cannot merge periods or outcomes.

use super as metrics;
use crate::aws::{self, iam, CallError, Kind, Service};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, StatusCode,
};
use aws_sdk_cloudwatch::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

const DAY: u64 = 86_400;
/// CloudWatch keeps metrics 15 months; a longer window reads nothing more.
const RETENTION: Duration = Duration::from_secs(455 * DAY);
/// GetMetricData takes at most 500 queries per call.
const MAX_QUERIES_PER_CALL: usize = 500;
/// The window ends a minute after now: a datum stamped by a clock slightly ahead of ours (or
/// put in the current second, which CloudWatch emulators cut off) still counts.
const END_SLACK: Duration = Duration::from_secs(60);

/// What each query sums; the index into [`Sums`].
#[derive(Debug, Clone, Copy)]
pub enum Field {
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

/// The `RestoreOutcome` values `InstallSeconds` is read for, in [`InstallSamples`] order.
const INSTALL_OUTCOMES: [&str; 3] = [
    metrics::INSTALL_HIT,
    metrics::INSTALL_PARTIAL,
    metrics::INSTALL_MISS,
];

/// The two statistics read per period of `InstallSeconds`.
const SAMPLE_STATS: [&str; 2] = ["Average", "SampleCount"];

/// `InstallSeconds` of one (cache, project) by restore outcome: `(seconds, count)` per period
/// with data, `count` installs that averaged `seconds`, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstallSamples {
    pub hit: Vec<(f64, u64)>,
    pub partial: Vec<(f64, u64)>,
    pub miss: Vec<(f64, u64)>,
}

impl InstallSamples {
    fn by_outcome(&mut self, outcome: usize) -> Option<&mut Vec<(f64, u64)>> {
        match outcome {
            0 => Some(&mut self.hit),
            1 => Some(&mut self.partial),
            2 => Some(&mut self.miss),
            _ => None,
        }
    }
}

/// Sums over the window for one (cache, project), indexed by [`Field`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums(pub [f64; QUERIES.len()]);

impl Sums {
    pub fn get(&self, field: Field) -> f64 {
        self.0[field as usize]
    }
}

/// The period and bounds of a query over the last `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    /// A minute after now (see `END_SLACK`).
    pub end: SystemTime,
    /// `since`, clamped to a minute .. CloudWatch's retention.
    pub since: Duration,
    period_secs: i32,
    /// The finest period CloudWatch keeps for the window's oldest data.
    unit_secs: i32,
}

impl Window {
    /// The last `since` (a minute .. CloudWatch's retention), up to a minute after now.
    fn new(now: SystemTime, since: Duration) -> Window {
        let since = since.clamp(Duration::from_secs(60), RETENTION);
        let start = now.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH);
        Window {
            since,
            ..Window::between(now, start, now + END_SLACK)
        }
    }

    /// `start` .. `end`. One period spans the whole window, in the unit CloudWatch demands for
    /// data as old as `start` (a minute up to 15 days back, 5 minutes up to 63, an hour beyond).
    fn between(now: SystemTime, start: SystemTime, end: SystemTime) -> Window {
        let age = now.duration_since(start).unwrap_or_default();
        let unit = if age > Duration::from_secs(63 * DAY) {
            3600
        } else if age > Duration::from_secs(15 * DAY) {
            300
        } else {
            60
        };
        let span = end.duration_since(start).unwrap_or_default();
        let period = span.as_secs().max(1).div_ceil(unit) * unit;
        Window {
            start,
            end,
            since: span,
            period_secs: i32::try_from(period).unwrap_or(i32::MAX / 3600 * 3600),
            unit_secs: unit as i32,
        }
    }
}

/// One (cache, project) pair's metrics over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairMetrics {
    pub sums: Sums,
    pub installs: InstallSamples,
}

/// Every (cache, project) pair with cachectl metrics in `namespace` (narrowed to `cache` and
/// `project` when given), sorted, with its metrics over the last `since`; and the window read.
///
/// Errors: a ListMetrics or GetMetricData call that failed, as [`CallError`] (its hint names
/// the IAM action).
pub async fn read(
    namespace: &str,
    cache: Option<&str>,
    project: Option<&str>,
    since: Duration,
) -> Result<(Window, Vec<((String, String), PairMetrics)>), CallError> {
    let client = Client::new(&aws::sdk_config().await);
    let window = Window::new(SystemTime::now(), since);
    let pairs = pairs(&client, namespace, cache, project).await?;
    let sums = fetch(&client, namespace, &pairs, &window).await?;
    Ok((window, pairs.into_iter().zip(sums).collect()))
}

/// [`read`] over `start` .. `end` instead of the last `since`, for every pair.
///
/// Errors: as [`read`].
pub async fn read_between(
    namespace: &str,
    start: SystemTime,
    end: SystemTime,
) -> Result<Vec<((String, String), PairMetrics)>, CallError> {
    let client = Client::new(&aws::sdk_config().await);
    let window = Window::between(SystemTime::now(), start, end);
    let pairs = pairs(&client, namespace, None, None).await?;
    let sums = fetch(&client, namespace, &pairs, &window).await?;
    Ok(pairs.into_iter().zip(sums).collect())
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
) -> Result<Vec<(String, String)>, CallError> {
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
        let page = page.map_err(|e| CallError {
            what: what(),
            source: aws::Error::from_sdk(Service::CloudWatch, iam::CLOUDWATCH_LIST_METRICS, &e),
        })?;
        for metric in page.metrics() {
            let ours = QUERIES.iter().any(|q| Some(q.0) == metric.metric_name())
                || metric.metric_name() == Some(metrics::INSTALL_SECONDS);
            if !ours {
                continue;
            }
            if let Some(pair) = pair_of(metric.dimensions()) {
                found.insert(pair);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// (CacheName, ProjectName) when those are exactly the dimensions, or those and
/// RestoreOutcome (`InstallSeconds`).
fn pair_of(dims: &[Dimension]) -> Option<(String, String)> {
    let with_outcome = dims
        .iter()
        .any(|d| d.name() == Some(metrics::OUTCOME_DIMENSION));
    if dims.len() != 2 + usize::from(with_outcome) {
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

/// Sample query ids are `s<pair>_<outcome>_<stat>`, indices into [`INSTALL_OUTCOMES`] and
/// [`SAMPLE_STATS`].
fn sample_id(pair: usize, outcome: usize, stat: usize) -> String {
    format!("s{pair}_{outcome}_{stat}")
}

fn parse_sample_id(id: &str) -> Option<(usize, usize, usize)> {
    let mut parts = id.strip_prefix('s')?.split('_');
    let pair = parts.next()?.parse().ok()?;
    let outcome = parts.next()?.parse().ok()?;
    let stat = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((pair, outcome, stat))
}

/// A metric of one (cache, project), with `extra` dimensions after those two.
fn metric(
    namespace: &str,
    name: &str,
    (cache, project): &(String, String),
    extra: Option<(&str, &str)>,
) -> Metric {
    let mut dims = vec![
        Dimension::builder()
            .name(metrics::CACHE_DIMENSION)
            .value(cache)
            .build(),
        Dimension::builder()
            .name(metrics::PROJECT_DIMENSION)
            .value(project)
            .build(),
    ];
    if let Some((name, value)) = extra {
        dims.push(Dimension::builder().name(name).value(value).build());
    }
    Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(dims))
        .build()
}

fn query(id: String, metric: Metric, period: i32, stat: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// One series' periods: start (epoch seconds) → [average, count] as they arrive.
type Periods = BTreeMap<i64, [Option<f64>; 2]>;

/// Pairs each period's average with its count, in time order.
fn samples(points: &Periods) -> Vec<(f64, u64)> {
    points
        .values()
        .filter_map(|[average, count]| {
            let (average, count) = ((*average)?, (*count)?);
            let count = if count.is_finite() && count >= 0.5 {
                count.round() as u64
            } else {
                return None;
            };
            Some((average, count))
        })
        .collect()
}

async fn fetch(
    client: &Client,
    namespace: &str,
    pairs: &[(String, String)],
    window: &Window,
) -> Result<Vec<PairMetrics>, CallError> {
    let mut out = vec![PairMetrics::default(); pairs.len()];
    let mut queries = Vec::with_capacity(pairs.len() * (QUERIES.len() + 6));
    for (p, pair) in pairs.iter().enumerate() {
        for (q, (name, stat, _)) in QUERIES.iter().enumerate() {
            let m = metric(namespace, name, pair, None);
            queries.push(query(query_id(p, q), m, window.period_secs, stat));
        }
        for (o, outcome) in INSTALL_OUTCOMES.iter().enumerate() {
            for (st, stat) in SAMPLE_STATS.iter().enumerate() {
                let extra = Some((metrics::OUTCOME_DIMENSION, *outcome));
                let m = metric(namespace, metrics::INSTALL_SECONDS, pair, extra);
                queries.push(query(sample_id(p, o, st), m, window.unit_secs, stat));
            }
        }
    }
    // Per (pair, outcome): each period's [average, count], keyed by its start (epoch seconds).
    let mut points: BTreeMap<(usize, usize), Periods> = BTreeMap::new();
    const GET: &str = iam::CLOUDWATCH_GET_METRIC_DATA;
    let failed = |source| CallError {
        what: format!("read metrics from CloudWatch namespace `{namespace}`"),
        source,
    };
    for chunk in queries.chunks(MAX_QUERIES_PER_CALL) {
        let mut pages = client
            .get_metric_data()
            .set_metric_data_queries(Some(chunk.to_vec()))
            .start_time(DateTime::from(window.start))
            .end_time(DateTime::from(window.end))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| failed(aws::Error::from_sdk(Service::CloudWatch, GET, &e)))?;
            for result in page.metric_data_results() {
                let refused = match result.status_code() {
                    Some(StatusCode::Forbidden) => Some(Kind::Denied),
                    Some(StatusCode::InternalError) => Some(Kind::Other),
                    _ => None,
                };
                if let Some(kind) = refused {
                    let status = result.status_code().map_or("", |s| s.as_str());
                    let message = format!("GetMetricData answered {status}");
                    return Err(failed(aws::Error::new(
                        Service::CloudWatch,
                        GET,
                        kind,
                        message,
                    )));
                }
                let id = result.id().unwrap_or_default();
                if let Some((p, q)) = parse_query_id(id) {
                    if let Some(m) = out.get_mut(p) {
                        if q < QUERIES.len() {
                            m.sums.0[q] += result.values().iter().sum::<f64>();
                        }
                    }
                } else if let Some((p, o, st)) = parse_sample_id(id) {
                    if p >= pairs.len() || o >= INSTALL_OUTCOMES.len() || st >= SAMPLE_STATS.len() {
                        continue;
                    }
                    let series = points.entry((p, o)).or_default();
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        series.entry(t.secs()).or_default()[st] = Some(*v);
                    }
                }
            }
        }
    }
    for ((p, o), series) in points {
        if let Some(list) = out[p].installs.by_outcome(o) {
            *list = samples(&series);
        }
    }
    Ok(out)
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
    fn windows_between_two_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let day = Duration::from_secs(DAY);
        let cases: &[(&str, Duration, Duration, i32, i32)] = &[
            // (name, start back, length, period secs, unit secs)
            ("yesterday", 2 * day, day, DAY as i32, 60),
            ("a day 20 days back", 20 * day, day, DAY as i32, 300),
            (
                "thirty days to yesterday",
                31 * day,
                30 * day,
                30 * DAY as i32,
                300,
            ),
            ("a day 90 days back", 90 * day, day, DAY as i32, 3600),
        ];
        for (name, back, length, period, unit) in cases {
            let start = now - *back;
            let w = Window::between(now, start, start + *length);
            assert_eq!(
                (w.period_secs, w.unit_secs),
                (*period, *unit),
                "case {name}"
            );
            assert_eq!(w.since, *length, "case {name}");
        }
    }

    #[test]
    fn query_ids_round_trip() {
        for (p, q) in [(0, 0), (3, 8), (1234, 5)] {
            let id = query_id(p, q);
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()));
            assert_eq!(parse_query_id(&id), Some((p, q)));
            assert_eq!(parse_sample_id(&id), None);
        }
        for (p, o, st) in [(0, 0, 0), (12, 2, 1)] {
            let id = sample_id(p, o, st);
            assert_eq!(parse_sample_id(&id), Some((p, o, st)));
            assert_eq!(parse_query_id(&id), None);
        }
        assert_eq!(parse_query_id("x1_2"), None);
        assert_eq!(parse_query_id("q1"), None);
        assert_eq!(parse_sample_id("s1_2_3_4"), None);
    }

    #[test]
    fn samples_pair_averages_with_counts() {
        let points = BTreeMap::from([
            (120, [Some(40.0), Some(1.0)]),
            (60, [Some(30.5), Some(2.0)]),
            // A count without its average (a page cut between them) is not a sample.
            (180, [None, Some(1.0)]),
            (240, [Some(10.0), Some(0.0)]),
        ]);
        assert_eq!(samples(&points), [(30.5, 2), (40.0, 1)]);
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
            (
                "install seconds' restore outcome",
                vec![
                    dim("CacheName", "c"),
                    dim("ProjectName", "p"),
                    dim("RestoreOutcome", "miss"),
                ],
                Some(("c".to_owned(), "p".to_owned())),
            ),
            (
                "restore outcome and a fourth",
                vec![
                    dim("CacheName", "c"),
                    dim("ProjectName", "p"),
                    dim("RestoreOutcome", "miss"),
                    dim("X", "x"),
                ],
                None,
            ),
        ];
        for (name, dims, want) in cases {
            assert_eq!(pair_of(&dims), want, "case {name}");
        }
    }
}
