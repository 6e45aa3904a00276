//! Restore outcomes and transfer timings to CloudWatch: best effort, bounded in time, never fatal.
//!
//! Save and restore datums have two dimensions, `CacheName` and `ProjectName` (the CodeBuild
//! project, or `local`). A restore sends `CacheHit`, `CachePartialHit`, `CacheMiss` and `CacheError` (exactly
//! one of them 1, the others 0, so their sums count restores and their averages are rates), plus
//! `RestoreSeconds` and `BytesDownloaded`. A save sends `SaveSeconds` and `BytesUploaded`, never
//! an outcome metric. `cachectl stats` reads them back. A prune sends `PrunedEntries`,
//! `PrunedBytes`, `StoreEntries` and `StoreBytes` with the one dimension `Store`.
//!
//! A command calls [`Metrics::start`] first, so region and credential lookup overlap the
//! transfer, and [`Metrics::publish`] once at the end with every cache's [`Event`]: one
//! `PutMetricData` call, at most [`PUBLISH_BUDGET`] of extra time, no error ever returned.

use crate::aws_error::{one_line, Kind};
use crate::env;
use crate::error::{chain, Hint};
use crate::output::RestoreOutcome;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::config::{Credentials, ProvideCredentials};
use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

pub const DEFAULT_NAMESPACE: &str = "Cachectl";

pub const CACHE_HIT: &str = "CacheHit";
pub const CACHE_PARTIAL_HIT: &str = "CachePartialHit";
pub const CACHE_MISS: &str = "CacheMiss";
pub const CACHE_ERROR: &str = "CacheError";
pub const RESTORE_SECONDS: &str = "RestoreSeconds";
pub const BYTES_DOWNLOADED: &str = "BytesDownloaded";
pub const SAVE_SECONDS: &str = "SaveSeconds";
pub const BYTES_UPLOADED: &str = "BytesUploaded";
pub const PRUNED_ENTRIES: &str = "PrunedEntries";
pub const PRUNED_BYTES: &str = "PrunedBytes";
pub const STORE_ENTRIES: &str = "StoreEntries";
pub const STORE_BYTES: &str = "StoreBytes";

/// The four restore outcomes, in the order `RestoreOutcome` lists them.
pub const OUTCOME_METRICS: [&str; 4] = [CACHE_HIT, CACHE_PARTIAL_HIT, CACHE_MISS, CACHE_ERROR];

pub const CACHE_DIMENSION: &str = "CacheName";
pub const PROJECT_DIMENSION: &str = "ProjectName";
/// Prune's one dimension: the store (`s3://bucket/prefix/` or the directory).
pub const STORE_DIMENSION: &str = "Store";
/// ProjectName outside CodeBuild.
pub const LOCAL_PROJECT: &str = "local";

/// PutMetricData accepts at most 1,000 datums per call.
pub const MAX_DATUMS_PER_CALL: usize = 1000;

/// The most publishing adds to a command, counted from the `publish` call: waiting for a lookup
/// still running, then the request (a cache must not slow the build it speeds up).
pub const PUBLISH_BUDGET: Duration = Duration::from_secs(2);

/// Region and credential lookup. It overlaps the transfer, so it may take longer than the
/// budget; outside AWS the instance-metadata probe is what takes time before giving up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Looked-up credentials are reused for the request when they stay valid at least this long;
/// otherwise the request resolves them again through the chain.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

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
    /// What one prune deleted, and the store after it.
    Prune {
        store: String,
        entries: u64,
        bytes: u64,
        store_entries: u64,
        store_bytes: u64,
    },
}

/// What `publish` did; callers may ignore it (it never means the command failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Sent {
        datums: usize,
        calls: usize,
    },
    /// `--no-metrics`, or configuration turned publishing off.
    Disabled,
    NothingToSend,
    /// Not sent; `warned` says whether a warning line was printed (only inside CodeBuild).
    NotSent {
        reason: String,
        warned: bool,
    },
}

/// A CloudWatch publisher, cheap to clone. Disabled, or a lookup started by `start` whose result
/// `publish` waits for.
#[derive(Clone)]
pub struct Metrics {
    setup: Option<Shared<BoxFuture<'static, State>>>,
}

#[derive(Clone)]
enum State {
    Ready(Arc<Ready>),
    /// Lookup failed; `warn` is set inside CodeBuild, where the user expects metrics.
    Unavailable {
        reason: String,
        warn: bool,
    },
}

struct Ready {
    conf: SdkConfig,
    creds: Credentials,
    client: Client,
    namespace: String,
    project: String,
    warn: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.setup {
            None => "disabled",
            Some(s) => match s.peek() {
                None => "looking up credentials",
                Some(State::Ready(_)) => "ready",
                Some(State::Unavailable { .. }) => "unavailable",
            },
        };
        f.debug_struct("Metrics").field("state", &state).finish()
    }
}

impl Metrics {
    pub fn disabled() -> Self {
        Metrics { setup: None }
    }

    /// Starts region and credential lookup in the background and returns at once; `publish`
    /// waits for it (within its budget). Must be called inside the tokio runtime.
    pub fn start(namespace: String) -> Self {
        Self::spawn(async move {
            let conf = crate::store::s3::sdk_config().await;
            Self::lookup(&conf, namespace, Self::project_name()).await
        })
    }

    /// Same as `start`: returns once the lookup is under way, so awaiting it (even from a task
    /// spawned before the transfer) never holds a command up; `publish` waits for the lookup
    /// within its budget. Never fails: without credentials the result publishes nothing.
    pub async fn new(namespace: String) -> Self {
        Self::start(namespace)
    }

    /// Waits for the lookup to finish (at most a few seconds): for tests and callers that want
    /// to know before publishing. `false` when disabled or no credentials were found.
    pub async fn ready(&self) -> bool {
        match &self.setup {
            Some(setup) => matches!(setup.clone().await, State::Ready(_)),
            None => false,
        }
    }

    /// A publisher on an explicit SDK configuration (endpoint, credentials): for tests and
    /// embedders. Starts at once, like `start`.
    pub fn with_config(conf: SdkConfig, namespace: String, project: String) -> Self {
        Self::spawn(async move { Self::lookup(&conf, namespace, project).await })
    }

    fn spawn(lookup: impl std::future::Future<Output = State> + Send + 'static) -> Self {
        let warn = in_codebuild();
        let task = tokio::spawn(async move {
            match tokio::time::timeout(SETUP_TIMEOUT, lookup).await {
                Ok(state) => state,
                Err(_) => State::Unavailable {
                    reason: format!(
                        "AWS region and credential lookup took over {} s",
                        SETUP_TIMEOUT.as_secs()
                    ),
                    warn,
                },
            }
        });
        let setup = async move {
            task.await.unwrap_or_else(|e| State::Unavailable {
                reason: format!("credential lookup task failed: {e}"),
                warn,
            })
        };
        Metrics {
            setup: Some(setup.boxed().shared()),
        }
    }

    /// Resolves credentials once, so a build without any publishes nothing (quietly outside
    /// CodeBuild), and the request at the end does not pay for the lookup again.
    async fn lookup(conf: &SdkConfig, namespace: String, project: String) -> State {
        let warn = in_codebuild();
        let Some(provider) = conf.credentials_provider() else {
            return State::Unavailable {
                reason: "no AWS credentials provider".into(),
                warn,
            };
        };
        match provider.provide_credentials().await {
            Ok(creds) => State::Ready(Arc::new(Ready {
                client: client(conf, Some(creds.clone())),
                conf: conf.clone(),
                creds,
                namespace,
                project,
                warn,
            })),
            Err(e) => State::Unavailable {
                reason: reason(&Error::NoCredentials {
                    what: "look up AWS credentials".into(),
                    source: Box::new(e),
                }),
                warn,
            },
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.setup.is_none()
    }

    /// The ProjectName dimension: the project part of `CODEBUILD_BUILD_ID`
    /// (`project-name:uuid`), or `local` outside CodeBuild.
    pub fn project_name() -> String {
        project_from_build_id(std::env::var(env::CODEBUILD_BUILD_ID).ok().as_deref())
    }

    /// Sends every event's datums in one `PutMetricData` call (more only past 1,000 datums,
    /// then concurrently). Returns within `PUBLISH_BUDGET`; never fails the command. Inside
    /// CodeBuild a failure prints one warning line; elsewhere it is silent.
    pub async fn publish(&self, events: &[Event]) -> Published {
        let deadline = Instant::now() + PUBLISH_BUDGET;
        let Some(setup) = &self.setup else {
            return Published::Disabled;
        };
        if events.is_empty() {
            return Published::NothingToSend;
        }
        let ready = match tokio::time::timeout_at(deadline, setup.clone()).await {
            Ok(State::Ready(ready)) => ready,
            Ok(State::Unavailable { reason, warn }) => return not_sent(reason, warn),
            Err(_) => {
                let reason = format!(
                    "AWS credential lookup did not finish within {} s",
                    PUBLISH_BUDGET.as_secs()
                );
                return not_sent(reason, in_codebuild());
            }
        };
        let datums = datums(events, &ready.project);
        let client = ready.client_now();
        let calls: Vec<_> = datums
            .chunks(MAX_DATUMS_PER_CALL)
            .map(|chunk| {
                client
                    .put_metric_data()
                    .namespace(&ready.namespace)
                    .set_metric_data(Some(chunk.to_vec()))
                    .send()
            })
            .collect();
        let count = calls.len();
        let what = || {
            format!(
                "publish metrics to CloudWatch namespace `{}`",
                ready.namespace
            )
        };
        match tokio::time::timeout_at(deadline, futures_util::future::join_all(calls)).await {
            Err(_) => not_sent(
                format!(
                    "{}: no answer within {} s",
                    what(),
                    PUBLISH_BUDGET.as_secs()
                ),
                ready.warn,
            ),
            Ok(results) => match results.into_iter().find_map(Result::err) {
                Some(e) => not_sent(reason(&classify(what(), e)), ready.warn),
                None => Published::Sent {
                    datums: datums.len(),
                    calls: count,
                },
            },
        }
    }
}

impl Ready {
    /// The client with the looked-up credentials while they stay valid, else one that
    /// resolves them again (a restore can outlast short-lived credentials).
    fn client_now(&self) -> Client {
        let fresh = self
            .creds
            .expiry()
            .is_none_or(|t| t > SystemTime::now() + CREDENTIALS_MARGIN);
        if fresh {
            self.client.clone()
        } else {
            client(&self.conf, None)
        }
    }
}

/// The error and its fix on one line, for the warning.
fn reason(err: &Error) -> String {
    match err.hint() {
        Some(h) => format!("{} (fix: {h})", one_line(&chain(err))),
        None => one_line(&chain(err)),
    }
}

/// The credential chain explains itself over several indented lines: keep it on one.
fn not_sent(reason: String, warn: bool) -> Published {
    if warn {
        crate::output::warn("CloudWatch metrics not published", &reason, None);
    }
    Published::NotSent {
        reason,
        warned: warn,
    }
}

fn in_codebuild() -> bool {
    std::env::var_os(env::CODEBUILD_BUILD_ID).is_some_and(|v| !v.is_empty())
}

/// A CloudWatch client for publishing: one retry at most, and timeouts inside the budget.
fn client(conf: &SdkConfig, creds: Option<Credentials>) -> Client {
    use aws_sdk_cloudwatch::config::retry::RetryConfig;
    use aws_sdk_cloudwatch::config::timeout::TimeoutConfig;
    let mut builder = aws_sdk_cloudwatch::config::Builder::from(conf)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                // Two attempts fit in the budget: a stalled first one still leaves a retry.
                .operation_attempt_timeout(PUBLISH_BUDGET / 2)
                .operation_timeout(PUBLISH_BUDGET)
                .build(),
        );
    if let Some(creds) = creds {
        builder = builder.credentials_provider(creds);
    }
    Client::from_conf(builder.build())
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

/// Every datum of `events`, in order: six per restore, two per save.
pub fn datums(events: &[Event], project: &str) -> Vec<MetricDatum> {
    let project = dimension_value(project);
    let mut out = Vec::with_capacity(events.len() * 6);
    for event in events {
        let dimensions = match event {
            Event::Restore { cache, .. } | Event::Save { cache, .. } => vec![
                Dimension::builder()
                    .name(CACHE_DIMENSION)
                    .value(dimension_value(cache))
                    .build(),
                Dimension::builder()
                    .name(PROJECT_DIMENSION)
                    .value(&project)
                    .build(),
            ],
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

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// CloudWatch failures by meaning; SDK detail rides in `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: no AWS credentials")]
    NoCredentials {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: access denied")]
    Denied {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: cannot reach CloudWatch")]
    Unreachable {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: throttled by CloudWatch")]
    Throttled {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}")]
    Other {
        what: String,
        #[source]
        source: BoxError,
    },
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoCredentials { .. } => "in CodeBuild the project's service role provides credentials; elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Error::Denied { .. } => "publishing needs cloudwatch:PutMetricData, `cachectl stats` needs cloudwatch:ListMetrics and cloudwatch:GetMetricData; check the credentials in use (`aws sts get-caller-identity`)".into(),
            Error::Unreachable { .. } => "check AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_CLOUDWATCH and network access to CloudWatch (a VPC build needs a monitoring interface endpoint or NAT)".into(),
            Error::Throttled { .. } => "retry later; CloudWatch limits API calls per account and region".into(),
            Error::Other { .. } => return None,
        })
    }
}

/// Maps an SDK error to what it means: see `Error`.
pub fn classify<E>(what: String, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let c = crate::aws_error::classify(&err);
    let source: BoxError = c.text.into();
    match c.kind {
        Kind::NoCredentials => Error::NoCredentials { what, source },
        Kind::Unreachable => Error::Unreachable { what, source },
        Kind::Denied => Error::Denied { what, source },
        Kind::Throttled => Error::Throttled { what, source },
        Kind::NotFound | Kind::Other => Error::Other { what, source },
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

    #[tokio::test]
    async fn disabled_publishes_nothing() {
        let events = [Event::Save {
            cache: "npm".into(),
            seconds: 1.0,
            bytes: 1,
        }];
        assert_eq!(
            Metrics::disabled().publish(&events).await,
            Published::Disabled
        );
    }
}
