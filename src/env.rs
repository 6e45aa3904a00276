//! Every environment variable cachectl reads, named once.

/// Store URL (`s3://bucket[/prefix]` or a directory); same as `--store`.
pub const STORE: &str = "CACHECTL_STORE";
/// Base of the embedded default local store (`$XDG_CACHE_HOME/cachectl`).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Expansion of `~` in `--path`.
pub const HOME: &str = "HOME";
/// Generic and S3-specific endpoint overrides; when set we switch S3 to path-style addressing.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// Parallel transfers (parts in flight / ranged GETs in flight); same as `--concurrency`.
pub const CONCURRENCY: &str = "CACHECTL_CONCURRENCY";
/// Part / ranged-GET size in MiB; same as `--part-size-mib`.
pub const PART_SIZE_MIB: &str = "CACHECTL_PART_SIZE_MIB";
/// zstd level for save; same as `--level`.
pub const LEVEL: &str = "CACHECTL_LEVEL";
/// Treat store trouble as a failure; same as `--strict`.
pub const STRICT: &str = "CACHECTL_STRICT";
/// `1` prints per-stage timings of a save or restore on stderr.
pub const TIMINGS: &str = "CACHECTL_TIMINGS";
