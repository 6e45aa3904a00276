//! Publishing to CloudWatch: best effort, bounded in time, never fatal.
//!
//! A command calls [`Metrics::start`] first, so region and credential lookup overlap the
//! transfer, and [`Metrics::publish`] once at the end with every cache's [`Event`]: one
//! `PutMetricData` call, at most [`PUBLISH_BUDGET`] of extra time, no error ever returned.
//! What went wrong comes back in [`Published`] for the command to report.

use super::{datums, Event, MAX_DATUMS_PER_CALL};
use crate::aws::{self, iam, CallError, Service};
use crate::env;
use crate::error::{chain, Hint};
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::config::{Credentials, ProvideCredentials};
use aws_sdk_cloudwatch::Client;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The most publishing adds to a command, counted from the `publish` call: waiting for a lookup
/// still running, then the request (a cache must not slow the build it speeds up).
pub const PUBLISH_BUDGET: Duration = Duration::from_secs(2);

/// Region and credential lookup. It overlaps the transfer, so it may take longer than the
/// budget; outside AWS the instance-metadata probe is what takes time before giving up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Looked-up credentials are reused for the request when they stay valid at least this long;
/// otherwise the request resolves them again through the chain.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

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
    /// Not sent, because of `reason` (one line; `hint` says how to fix it). `warn` is set
    /// inside CodeBuild, where users expect metrics: the command then prints a warning.
    NotSent {
        reason: String,
        hint: Option<String>,
        warn: bool,
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
    /// Lookup failed: what [`Published::NotSent`] will say.
    Unavailable(Published),
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
                Some(State::Unavailable(_)) => "unavailable",
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
            let conf = aws::sdk_config().await;
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
                Err(_) => State::Unavailable(Published::NotSent {
                    reason: format!(
                        "AWS region and credential lookup took over {} s",
                        SETUP_TIMEOUT.as_secs()
                    ),
                    hint: None,
                    warn,
                }),
            }
        });
        let setup = async move {
            task.await.unwrap_or_else(|e| {
                State::Unavailable(Published::NotSent {
                    reason: format!("credential lookup task failed: {e}"),
                    hint: None,
                    warn,
                })
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
            return State::Unavailable(Published::NotSent {
                reason: "no AWS credentials provider".into(),
                hint: None,
                warn,
            });
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
            Err(e) => State::Unavailable(not_sent(
                &CallError {
                    what: "look up AWS credentials".into(),
                    source: aws::Error::new(
                        Service::CloudWatch,
                        iam::CLOUDWATCH_PUT_METRIC_DATA,
                        aws::Kind::NoCredentials,
                        aws::one_line(&chain(&e)),
                    ),
                },
                warn,
            )),
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.setup.is_none()
    }

    /// The ProjectName dimension: the project part of `CODEBUILD_BUILD_ID`
    /// (`project-name:uuid`), or `local` outside CodeBuild.
    pub fn project_name() -> String {
        super::project_from_build_id(std::env::var(env::CODEBUILD_BUILD_ID).ok().as_deref())
    }

    /// Sends every event's datums in one `PutMetricData` call (more only past 1,000 datums,
    /// then concurrently). Returns within `PUBLISH_BUDGET`; never fails the command: what went
    /// wrong is in the answer, and whether it deserves a warning (inside CodeBuild only).
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
            Ok(State::Unavailable(why)) => return why,
            Err(_) => {
                return Published::NotSent {
                    reason: format!(
                        "AWS credential lookup did not finish within {} s",
                        PUBLISH_BUDGET.as_secs()
                    ),
                    hint: None,
                    warn: in_codebuild(),
                }
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
            Err(_) => Published::NotSent {
                reason: format!(
                    "{}: no answer within {} s",
                    what(),
                    PUBLISH_BUDGET.as_secs()
                ),
                hint: None,
                warn: ready.warn,
            },
            Ok(results) => match results.into_iter().find_map(Result::err) {
                Some(e) => {
                    let source = aws::Error::from_sdk(
                        Service::CloudWatch,
                        iam::CLOUDWATCH_PUT_METRIC_DATA,
                        &e,
                    );
                    not_sent(
                        &CallError {
                            what: what(),
                            source,
                        },
                        ready.warn,
                    )
                }
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

/// What a failed call says: its chain on one line (the credential chain explains itself over
/// several indented lines) and its fix.
fn not_sent(err: &CallError, warn: bool) -> Published {
    Published::NotSent {
        reason: aws::one_line(&chain(err)),
        hint: err.hint(),
        warn,
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
#[cfg(test)]
mod tests {
    use super::*;

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
