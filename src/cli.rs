//! Command-line surface (clap derive). Doc comments here are the `--help` text. Flags every
//! store-touching command shares (`--store`, `--config`, `--json`, `-q`, `-v`) are declared
//! once, in [`GlobalArgs`], and accepted before or after the subcommand.

use crate::config::When;
use crate::key::{CacheKey, Scope};
use crate::units::{parse_day, parse_duration, parse_positive_duration, parse_size, parse_time};
use crate::{env, metrics};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, Parser)]
#[command(
    name = "cachectl",
    version,
    about = "Save and restore dependency caches (zstd tarballs keyed by lockfile hashes) in S3 or a local directory"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

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
    /// Run the install step a cache replaces (`-- npm ci`), unless this build's restore of it was
    /// an exact hit; time it for `stats`' time saved. Exits as the command did.
    Run(RunArgs),
    /// Read restore outcomes back from CloudWatch: hit / partial / miss rates and time saved.
    Stats(StatsArgs),
    /// Delete entries by age, last use and total size, never one a build may be using
    /// (what the scheduled prune project runs).
    Prune(PruneArgs),
    /// List entries: key, size, created, last used, family and paths.
    Ls(LsArgs),
    /// Delete entries by exact key or by key prefix (drop a bad cache).
    Rm(RmArgs),
    /// Set up an account (and region) once: the cache bucket, IAM policies, the scheduled prune
    /// project and a dashboard, as one CloudFormation stack; planned, idempotent, reversible
    #[cfg(feature = "provision")]
    Provision(ProvisionArgs),
    /// Delete what `provision` made (the bucket and its caches stay unless --delete-bucket)
    #[cfg(feature = "provision")]
    Deprovision(DeprovisionArgs),
    /// Write a new ed25519 signing key to FILE (mode 0600) and print its public key, for
    /// CACHECTL_SIGNING_KEY and [trust] public-keys.
    Keygen(KeygenArgs),
    /// Remove the trees restores replaced (`.cachectl-trash-*`), in the background.
    #[command(hide = true)]
    RemoveTrash(RemoveTrashArgs),
}

/// A flag's environment variable, as clap's boolish values: `1`/`0`, `true`/`false`,
/// `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`, any case; empty (a buildspec passing an unset
/// variable through) is off.
fn env_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" | "f" | "n" => Ok(false),
        "1" | "true" | "yes" | "on" | "t" | "y" => Ok(true),
        _ => Err(format!(
            "`{s}` is not one of 1, 0, true, false, yes, no, on, off"
        )),
    }
}

impl Command {
    /// Whether the command handles SIGINT/SIGTERM itself (`run` passes them on to its child)
    /// instead of `main` stopping it.
    pub fn forwards_signals(&self) -> bool {
        matches!(self, Command::Run(_))
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The cache whose restore decides (`[cache.NAME]`, or the key's family for a plain --key)
    #[arg(long, value_name = "NAME")]
    pub cache: String,

    /// Run the command even after an exact hit (a step the cache only speeds up, such as
    /// `cargo build` with a restored target/); it is still timed
    #[arg(long)]
    pub always: bool,

    /// The command and its arguments, after `--`
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where the private key goes (PKCS#8 PEM); an existing file is never overwritten
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RemoveTrashArgs {
    /// `.cachectl-trash-*` directories; any other path is left alone
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

/// Flags shared by every command, given before or after the subcommand's name.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where caches live: `s3://bucket[/prefix]` or a local directory
    /// [default: $XDG_CACHE_HOME/cachectl, else ~/.cache/cachectl]
    #[arg(long, global = true, env = env::STORE, value_name = "STORE")]
    pub store: Option<String>,

    /// cachectl.toml: the caches save, restore and keys act on without --key, and the
    /// `[prune]` and `[metrics]` settings [default: ./cachectl.toml]
    #[arg(long, global = true, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,

    // A global flag may be given before and after the subcommand (`cachectl -v restore -v`):
    // each overrides itself rather than being an error the second time.
    /// Print exactly one JSON object as the last line of stdout instead of text
    #[arg(long, global = true, overrides_with = "json")]
    pub json: bool,

    /// Only warnings and errors on stderr
    #[arg(
        long,
        short,
        global = true,
        conflicts_with = "verbose",
        overrides_with = "quiet"
    )]
    pub quiet: bool,

    /// More detail on stderr: notes, no progress bars (save, restore), one line per deleted
    /// entry (prune)
    #[arg(long, short, global = true, overrides_with = "verbose")]
    pub verbose: bool,
}

/// How save and restore move archives.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Transfers in flight at once (multipart parts on save, ranged GETs on restore)
    #[arg(long, env = env::CONCURRENCY, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Size of upload parts and of ranged GETs, in MiB (parts grow past 1,000 to stay within
    /// S3's 10,000-part limit)
    #[arg(long, env = env::PART_SIZE_MIB, default_value_t = 8, value_parser = clap::value_parser!(u32).range(5..=512))]
    pub part_size_mib: u32,

    /// How long the store may leave a lookup (restore's listing, save's existence check)
    /// unanswered before it counts as unreachable; transfers that are moving are not cut off
    #[arg(long, env = env::LOOKUP_TIMEOUT, value_name = "DUR", default_value = "20s", value_parser = parse_positive_duration)]
    pub lookup_timeout: Duration,

    /// Exit non-zero when the store fails (default: warn, report outcome `error`, exit 0)
    #[arg(long, env = env::STRICT, value_parser = env_flag)]
    pub strict: bool,

    /// The build's trust scope: `trusted`, or an untrusted scope's name (`pr-42`); by default
    /// a CodeBuild pull-request build is untrusted and every other build trusted ([trust]).
    /// Empty is unset.
    // Parsed by the command, so an empty CACHECTL_SCOPE a buildspec passes through is unset.
    #[arg(long, env = env::SCOPE, value_name = "SCOPE")]
    pub scope: Option<String>,
}

/// Publishing to CloudWatch, for the commands that publish.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Do not publish metrics to CloudWatch (restore outcomes and timings, prune results)
    #[arg(long, env = env::NO_METRICS, value_parser = env_flag)]
    pub no_metrics: bool,

    /// CloudWatch namespace for metrics [default: `namespace` in cachectl.toml, else Cachectl]
    #[arg(long, env = env::METRICS_NAMESPACE)]
    pub metrics_namespace: Option<String>,
}

/// Which configured caches a command acts on.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Only this configured cache; repeat for several [default: all of them]
    #[arg(long = "cache", value_name = "NAME")]
    pub caches: Vec<String>,
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
    #[arg(long, value_parser = PossibleValuesParser::new(When::NAMES)
        .map(|s| When::parse(&s).expect("one of When::NAMES")))]
    pub when: Option<When>,

    /// Replace the entry if KEY already exists (keys are otherwise immutable)
    #[arg(long)]
    pub overwrite: bool,

    /// zstd compression level (1 fastest .. 19 smallest) [default: `level` in cachectl.toml, else 3]
    #[arg(long, env = env::LEVEL, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: Option<i32>,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,
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

    /// Lay the cached trees over what the destinations hold (files not in the cache stay),
    /// instead of making each destination exactly the cached tree [default: `merge` in
    /// cachectl.toml; presets merge tool caches and replace installed trees]
    #[arg(long)]
    pub merge: bool,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Debug, Args)]
pub struct HashFilesArgs {
    /// Glob patterns relative to the working directory (`*`, `**`, `?`; `!pat` excludes)
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// How far back to look, e.g. `24h`, `7d`
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub since: Duration,

    /// Only this cache (the CacheName dimension)
    #[arg(long)]
    pub cache: Option<String>,

    /// Only this CodeBuild project (the ProjectName dimension)
    #[arg(long)]
    pub project: Option<String>,

    /// CloudWatch namespace the metrics were published to
    #[arg(long, env = env::METRICS_NAMESPACE, default_value = metrics::NAMESPACE)]
    pub namespace: String,

    /// Instead of the report: publish each project's time saved on one UTC day as
    /// `TimeSavedSeconds`, which the dashboard graphs (the scheduled prune project does, daily;
    /// publishing a day again changes nothing)
    #[arg(long, conflicts_with_all = ["since", "cache", "project"])]
    pub publish: bool,

    /// The UTC day `--publish` reckons, e.g. 2026-11-29 [default: yesterday]
    #[arg(long, value_name = "YYYY-MM-DD", requires = "publish", value_parser = parse_day)]
    pub day: Option<SystemTime>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete entries created longer ago than this, e.g. `30d`
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_age: Option<Duration>,

    /// Delete entries of untrusted scopes (pull requests) created longer ago than DUR
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_age_untrusted: Option<Duration>,

    /// Delete entries not restored for this long (never restored: since creation), e.g. `14d`
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_unused: Option<Duration>,

    /// Keep at least the N newest entries of each key family (in each scope), whatever the
    /// other rules say
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,

    /// Then delete least recently used entries until the store holds at most this much,
    /// e.g. `50GiB`, `500MB` or bytes
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_total_size: Option<u64>,

    /// Never delete anything created or used more recently than this [default: 1h]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub min_age: Option<Duration>,

    /// Print what would be deleted and why; delete nothing
    #[arg(long, env = env::PRUNE_DRY_RUN, value_parser = env_flag)]
    pub dry_run: bool,

    /// Judge ages as if it were this time (RFC 3339), to preview a policy
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<SystemTime>,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only keys starting with this
    #[arg(value_name = "PREFIX", default_value = "")]
    pub prefix: String,

    /// Only entries of this scope (`trusted`, or an untrusted scope's name such as `pr-42`)
    #[arg(long, value_name = "SCOPE", value_parser = Scope::parse_arg)]
    pub scope: Option<Scope>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Keys to delete (every path set and scope saved under each key)
    #[arg(value_name = "KEY", value_parser = CacheKey::parse_arg, required_unless_present_any = ["prefix", "scope"], conflicts_with = "prefix")]
    pub keys: Vec<CacheKey>,

    /// Only entries of this scope; alone, every entry of it (a closed pull request's `pr-42`)
    #[arg(long, value_name = "SCOPE", value_parser = Scope::parse_arg)]
    pub scope: Option<Scope>,

    /// Delete every entry whose key starts with PREFIX
    #[arg(long, value_name = "PREFIX", value_parser = CacheKey::parse_prefix_arg)]
    pub prefix: Option<CacheKey>,

    /// Print what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[cfg(feature = "provision")]
/// `cachectl provision`: the account set-up as one CloudFormation stack.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The CloudFormation stack [default: `stack` in [provision], else cachectl]
    #[arg(long, value_name = "NAME", value_parser = stack_name)]
    pub stack: Option<String>,

    /// The cache bucket [default: `bucket` in [provision], else <stack>-<account>-<region>]
    #[arg(long, value_name = "NAME", value_parser = bucket_name)]
    pub bucket: Option<String>,

    /// The region to provision in [default: `region` in [provision], else the SDK's]
    #[arg(long, value_name = "REGION", value_parser = region)]
    pub region: Option<String>,

    /// A CloudFormation service role the stack operations run as (then the caller needs only
    /// CloudFormation permissions and iam:PassRole on it)
    #[arg(long, value_name = "ARN", value_parser = role_arn)]
    pub role_arn: Option<String>,

    /// Print the plan (CloudFormation's change set) and change nothing
    #[arg(long, conflicts_with_all = ["check", "print_template"])]
    pub dry_run: bool,

    /// Apply without asking (needed off a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the CloudFormation template and exit (for your own CloudFormation, CDK or
    /// StackSets pipeline); needs no AWS credentials
    #[arg(long, conflicts_with = "check")]
    pub print_template: bool,

    /// Where the other architecture's release binaries are (as bootstrap/build-release.sh
    /// lays them out in target/dist), to upload beside this one
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// Read the deployed set-up back: stack, outputs, a store round trip, the CodeBuild
    /// projects; change nothing
    #[arg(long, conflicts_with_all = ["yes", "binaries", "role_arn"])]
    pub check: bool,

    /// With --check: start the prune project once in dry-run mode and wait for it
    #[arg(long, requires = "check")]
    pub run_prune: bool,
}

#[cfg(feature = "provision")]
/// `cachectl deprovision`: delete the stack; the bucket stays unless asked.
#[derive(Debug, Args)]
pub struct DeprovisionArgs {
    /// The CloudFormation stack [default: `stack` in [provision], else cachectl]
    #[arg(long, value_name = "NAME", value_parser = stack_name)]
    pub stack: Option<String>,

    /// The bucket to delete with --delete-bucket when the stack is already gone [default: the
    /// stack's, else `bucket` in [provision], else <stack>-<account>-<region>]
    #[arg(long, value_name = "NAME", value_parser = bucket_name)]
    pub bucket: Option<String>,

    /// The region [default: `region` in [provision], else the SDK's]
    #[arg(long, value_name = "REGION", value_parser = region)]
    pub region: Option<String>,

    /// Also delete the bucket and every cache in it (every object version, delete marker and
    /// unfinished upload)
    #[arg(long)]
    pub delete_bucket: bool,

    /// Delete without asking (needed off a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[cfg(feature = "provision")]
fn stack_name(s: &str) -> Result<String, String> {
    if crate::config::provision::valid_stack_name(s) {
        Ok(s.to_owned())
    } else {
        Err(
            "a stack name starts with a letter and holds only letters, digits and `-` (at most 50)"
                .into(),
        )
    }
}

#[cfg(feature = "provision")]
fn role_arn(s: &str) -> Result<String, String> {
    if crate::config::provision::valid_role_arn(s) {
        Ok(s.to_owned())
    } else {
        Err("an IAM role ARN looks like arn:aws:iam::ACCOUNT:role/NAME".into())
    }
}

#[cfg(feature = "provision")]
fn region(s: &str) -> Result<String, String> {
    if crate::config::provision::valid_region(s) {
        Ok(s.to_owned())
    } else {
        Err("a region looks like eu-west-1".into())
    }
}

#[cfg(feature = "provision")]
fn bucket_name(s: &str) -> Result<String, String> {
    match crate::config::provision::bucket_name_problem(s) {
        None => Ok(s.to_owned()),
        Some(p) => Err(format!("a bucket name {p}")),
    }
}

#[cfg(test)]
mod env_flag_tests {
    #[test]
    fn empty_flag_variables_are_off() {
        for (text, want) in [
            ("", Some(false)),
            ("  ", Some(false)),
            ("0", Some(false)),
            ("TRUE", Some(true)),
            ("yes", Some(true)),
            ("off", Some(false)),
            ("bogus", None),
        ] {
            assert_eq!(super::env_flag(text).ok(), want, "{text:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn when_takes_the_config_names() {
        for (s, w) in [
            ("success", When::Success),
            ("failure", When::Failure),
            ("always", When::Always),
        ] {
            let cli = Cli::try_parse_from(["cachectl", "save", "--when", s]).expect("parses");
            let Command::Save(args) = cli.command else {
                panic!("not save")
            };
            assert_eq!(args.when, Some(w), "clap {s}");
        }
        assert!(Cli::try_parse_from(["cachectl", "save", "--when", "never"]).is_err());
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        for args in [
            &["cachectl", "--json", "--store", "/s", "ls"][..],
            &["cachectl", "ls", "--json", "--store", "/s"],
            &[
                "cachectl", "--json", "ls", "--json", "-v", "-v", "--store", "/s",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert!(cli.global.json, "{args:?}");
            assert_eq!(cli.global.store.as_deref(), Some("/s"), "{args:?}");
        }
    }
}
