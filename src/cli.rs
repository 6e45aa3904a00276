//! Command-line surface (clap derive). Doc comments here are the `--help` text.

use crate::env;
use crate::key::CacheKey;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cachectl",
    version,
    about = "Save and restore dependency caches (zstd tarballs keyed by lockfile hashes) in S3 or a local directory"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack PATHs into a cache entry under KEY (nothing is uploaded if KEY already exists).
    Save(SaveArgs),
    /// Restore the entry for KEY, else the newest entry matching a --restore-key prefix.
    Restore(RestoreArgs),
    /// Print one blake3 digest over every file matching the glob patterns (for cache keys).
    HashFiles(HashFilesArgs),
    /// Print each configured cache's resolved key, restore keys and paths (why did it miss?).
    Keys(KeysArgs),
    /// Read restore outcomes back from CloudWatch: hit / partial / miss rates and time saved.
    Stats(StatsArgs),
    /// Delete entries by age, last use and total size, never one a build may be using
    /// (what the scheduled prune project runs).
    Prune(PruneArgs),
    /// List entries: key, size, created, last used, family and paths.
    Ls(LsArgs),
    /// Delete entries by exact key or by key prefix (drop a bad cache).
    Rm(RmArgs),
}

/// `--store` alone, for commands that do not transfer archives.
#[derive(Debug, Args)]
pub struct StoreLocation {
    /// Where caches live: `s3://bucket[/prefix]` or a local directory
    /// [default: $XDG_CACHE_HOME/cachectl, else ~/.cache/cachectl]
    #[arg(long, env = env::STORE, value_name = "STORE")]
    pub store: Option<String>,
}

/// An RFC 3339 time such as `2026-11-26T12:00:00Z`.
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    crate::time::parse_rfc3339(s.trim())
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time like 2026-11-26T12:00:00Z"))
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete entries created longer ago than this, e.g. `30d`
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,

    /// Delete entries not restored for this long (never restored: since creation), e.g. `14d`
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_unused: Option<std::time::Duration>,

    /// Keep at least the N newest entries of each key family, whatever the other rules say
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,

    /// Then delete least recently used entries until the store holds at most this much,
    /// e.g. `50GiB`, `500MB` or bytes
    #[arg(long, value_name = "SIZE", value_parser = crate::prune::parse_size)]
    pub max_total_size: Option<u64>,

    /// Never delete anything created or used more recently than this [default: 1h]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub min_age: Option<std::time::Duration>,

    /// Print what would be deleted and why; delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Judge ages as if it were this time (RFC 3339), to preview a policy
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<std::time::SystemTime>,

    /// Print one JSON object with the summary and every deletion
    #[arg(long)]
    pub json: bool,

    /// cachectl.toml whose `[prune]` table sets defaults for these flags
    /// [default: ./cachectl.toml when it exists]
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub store: StoreLocation,

    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only keys starting with this
    #[arg(value_name = "PREFIX", default_value = "")]
    pub prefix: String,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub store: StoreLocation,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Keys to delete (every path set saved under each key)
    #[arg(value_name = "KEY", value_parser = CacheKey::parse_arg, required_unless_present = "prefix", conflicts_with = "prefix")]
    pub keys: Vec<CacheKey>,

    /// Delete every entry whose key starts with PREFIX
    #[arg(long, value_name = "PREFIX", value_parser = CacheKey::parse_prefix_arg)]
    pub prefix: Option<CacheKey>,

    /// Print what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON object instead of lines
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub store: StoreLocation,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// How far back to look, e.g. `24h`, `7d`
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub since: std::time::Duration,

    /// Only this cache (the CacheName dimension)
    #[arg(long)]
    pub cache: Option<String>,

    /// Only this CodeBuild project (the ProjectName dimension)
    #[arg(long)]
    pub project: Option<String>,

    /// CloudWatch namespace the metrics were published to
    #[arg(long, env = env::METRICS_NAMESPACE, default_value = "Cachectl")]
    pub namespace: String,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `30m`, `12h`, `7d`, `2w` (also humantime forms like `1day 2h`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 30m, 12h or 7d ({e})"))
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where caches live: `s3://bucket[/prefix]` or a local directory
    /// [default: $XDG_CACHE_HOME/cachectl, else ~/.cache/cachectl]
    #[arg(long, env = env::STORE, value_name = "STORE")]
    pub store: Option<String>,

    /// Transfers in flight at once (multipart parts on save, ranged GETs on restore)
    #[arg(long, env = env::CONCURRENCY, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Size of upload parts and of ranged GETs, in MiB (parts grow past 1,000 to stay within
    /// S3's 10,000-part limit)
    #[arg(long, env = env::PART_SIZE_MIB, default_value_t = 8, value_parser = clap::value_parser!(u32).range(5..=512))]
    pub part_size_mib: u32,

    /// Exit non-zero when the store fails (default: warn, report outcome `error`, exit 0)
    #[arg(long, env = env::STRICT, value_parser = clap::builder::BoolishValueParser::new())]
    pub strict: bool,

    /// Print exactly one JSON object describing the outcome as the last line of stdout
    #[arg(long)]
    pub json: bool,
}

/// Which caches a command acts on: one given by `--key`/`--path`, else those in cachectl.toml.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// cachectl.toml to read when no --key is given [default: ./cachectl.toml]
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Only this configured cache; repeat for several [default: all of them]
    #[arg(long = "cache", value_name = "NAME")]
    pub caches: Vec<String>,
}

/// Reporting shared by save and restore.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Do not publish metrics to CloudWatch (restore outcomes and timings, prune results)
    #[arg(long, env = env::NO_METRICS, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_metrics: bool,

    /// CloudWatch namespace for metrics [default: `namespace` in cachectl.toml, else Cachectl]
    #[arg(long, env = env::METRICS_NAMESPACE)]
    pub metrics_namespace: Option<String>,

    /// Only warnings and errors on stderr
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr: per-stage timings and no progress bars (save, restore), one line
    /// per deleted entry (prune)
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Cache key, e.g. `npm-linux-x64-$(cachectl hash-files package-lock.json)`
    /// [default: the caches configured in cachectl.toml]
    #[arg(long, value_parser = CacheKey::parse_arg, requires = "paths", conflicts_with = "caches")]
    pub key: Option<CacheKey>,

    /// File or directory to cache; repeat for several. `~` expands to $HOME
    #[arg(long = "path", value_name = "PATH", requires = "key")]
    pub paths: Vec<String>,

    /// When to save: after a successful build (CODEBUILD_BUILD_SUCCEEDING=1 or unset), a failed
    /// one, or always [default: `when` in cachectl.toml, else success]
    #[arg(long, value_enum)]
    pub when: Option<crate::config::When>,

    /// Replace the entry if KEY already exists (keys are otherwise immutable)
    #[arg(long)]
    pub overwrite: bool,

    /// zstd compression level (1 fastest .. 19 smallest) [default: `level` in cachectl.toml, else 3]
    #[arg(long, env = env::LEVEL, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: Option<i32>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Exact cache key to restore [default: the caches configured in cachectl.toml]
    #[arg(long, value_parser = CacheKey::parse_arg, requires = "paths", conflicts_with = "caches")]
    pub key: Option<CacheKey>,

    /// Fallback key prefix, tried in order when KEY has no entry; the newest match wins
    #[arg(long = "restore-key", value_name = "PREFIX", value_parser = CacheKey::parse_prefix_arg, requires = "key")]
    pub restore_keys: Vec<CacheKey>,

    /// File or directory the cache was saved from; repeat for several
    #[arg(long = "path", value_name = "PATH", requires = "key")]
    pub paths: Vec<String>,

    /// Exit 1 when nothing is restored (a miss, or a store error)
    #[arg(long)]
    pub fail_on_miss: bool,

    /// Report what would be restored, download nothing
    #[arg(long)]
    pub lookup_only: bool,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HashFilesArgs {
    /// Glob patterns relative to the working directory (`*`, `**`, `?`; `!pat` excludes)
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}
