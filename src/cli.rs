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
    #[arg(long, env = env::STRICT)]
    pub strict: bool,

    /// Print exactly one JSON object describing the outcome as the last line of stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Cache key, e.g. `npm-linux-x64-$(cachectl hash-files package-lock.json)`
    #[arg(long, value_parser = CacheKey::parse_arg)]
    pub key: CacheKey,

    /// File or directory to cache; repeat for several. `~` expands to $HOME
    #[arg(long = "path", required = true, value_name = "PATH")]
    pub paths: Vec<String>,

    /// Replace the entry if KEY already exists (keys are otherwise immutable)
    #[arg(long)]
    pub overwrite: bool,

    /// zstd compression level (1 fastest .. 19 smallest)
    #[arg(long, env = env::LEVEL, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Exact cache key to restore
    #[arg(long, value_parser = CacheKey::parse_arg)]
    pub key: CacheKey,

    /// Fallback key prefix, tried in order when KEY has no entry; the newest match wins
    #[arg(long = "restore-key", value_name = "PREFIX", value_parser = CacheKey::parse_prefix_arg)]
    pub restore_keys: Vec<CacheKey>,

    /// File or directory the cache was saved from; repeat for several
    #[arg(long = "path", required = true, value_name = "PATH")]
    pub paths: Vec<String>,

    /// Exit 1 when nothing is restored (a miss, or a store error)
    #[arg(long)]
    pub fail_on_miss: bool,

    /// Report what would be restored, download nothing
    #[arg(long)]
    pub lookup_only: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct HashFilesArgs {
    /// Glob patterns relative to the working directory (`*`, `**`, `?`; `!pat` excludes)
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}
