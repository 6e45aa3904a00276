//! Every environment variable cachectl reads, named once.

/// Store URL (`s3://bucket[/prefix]` or a directory); same as `--store`.
pub const STORE: &str = "CACHECTL_STORE";
/// Base of the embedded default local store (`$XDG_CACHE_HOME/cachectl`).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Expansion of `~` in `--path`.
pub const HOME: &str = "HOME";
/// Generic and per-service endpoint overrides (read by the SDK itself); when one is set for S3
/// we switch to path-style addressing, and hints name them.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
pub const AWS_ENDPOINT_URL_CLOUDWATCH: &str = "AWS_ENDPOINT_URL_CLOUDWATCH";
pub const AWS_ENDPOINT_URL_CLOUDFORMATION: &str = "AWS_ENDPOINT_URL_CLOUDFORMATION";
pub const AWS_ENDPOINT_URL_CODEBUILD: &str = "AWS_ENDPOINT_URL_CODEBUILD";
pub const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// Parallel transfers (parts in flight / ranged GETs in flight); same as `--concurrency`.
pub const CONCURRENCY: &str = "CACHECTL_CONCURRENCY";
/// Part / ranged-GET size in MiB; same as `--part-size-mib`.
pub const PART_SIZE_MIB: &str = "CACHECTL_PART_SIZE_MIB";
/// zstd level for save; same as `--level`.
pub const LEVEL: &str = "CACHECTL_LEVEL";
/// How long a lookup may go unanswered; same as `--lookup-timeout`.
pub const LOOKUP_TIMEOUT: &str = "CACHECTL_LOOKUP_TIMEOUT";
/// Treat store trouble as a failure; same as `--strict`.
pub const STRICT: &str = "CACHECTL_STRICT";
/// CloudWatch namespace for published metrics.
pub const METRICS_NAMESPACE: &str = "CACHECTL_METRICS_NAMESPACE";
/// `cachectl prune --dry-run` when true (`provision --check --run-prune` starts the prune
/// project with it).
pub const PRUNE_DRY_RUN: &str = "CACHECTL_PRUNE_DRY_RUN";
/// Set to turn metric publishing off; same as `--no-metrics`.
pub const NO_METRICS: &str = "CACHECTL_NO_METRICS";
/// CodeBuild's build id, `project-name:uuid`; the ProjectName dimension comes from it.
pub const CODEBUILD_BUILD_ID: &str = "CODEBUILD_BUILD_ID";
/// `1` while the build is succeeding, `0` once a phase failed (CodeBuild sets it).
pub const CODEBUILD_BUILD_SUCCEEDING: &str = "CODEBUILD_BUILD_SUCCEEDING";
/// Where restore leaves the state file save reads (default: the temp dir).
pub const STATE_DIR: &str = "CACHECTL_STATE_DIR";
/// Path of cachectl.toml; same as `--config`.
pub const CONFIG: &str = "CACHECTL_CONFIG";
/// `1` prints per-stage timings of a save or restore on stderr.
pub const TIMINGS: &str = "CACHECTL_TIMINGS";
/// RFC 3339 time that replaces the clock for recorded creation and last-use times (tests and
/// policy previews; leave unset in builds).
pub const NOW: &str = "CACHECTL_NOW";
/// The build's trust scope, `trusted` or an untrusted scope's name; same as `--scope`. Unset,
/// CodeBuild's webhook variables and `[trust]` decide (docs/FORMAT.md, "Scopes").
pub const SCOPE: &str = "CACHECTL_SCOPE";
/// The ed25519 private key (PKCS#8 PEM text) trusted builds sign entries with; never printed.
/// `provision` gives it to trusted projects from Secrets Manager, never to pull-request projects.
pub const SIGNING_KEY: &str = "CACHECTL_SIGNING_KEY";
/// CodeBuild's webhook trigger: `pr/42`, `branch/main`, `tag/v1.2`; unset for builds not started
/// by a webhook.
pub const CODEBUILD_WEBHOOK_TRIGGER: &str = "CODEBUILD_WEBHOOK_TRIGGER";
/// What CodeBuild builds: a commit, a branch, or `pr/42` for a pull request's code.
pub const CODEBUILD_SOURCE_VERSION: &str = "CODEBUILD_SOURCE_VERSION";
/// CodeBuild's webhook event: `PUSH`, `PULL_REQUEST_CREATED`, `PULL_REQUEST_UPDATED`, …
pub const CODEBUILD_WEBHOOK_EVENT: &str = "CODEBUILD_WEBHOOK_EVENT";
