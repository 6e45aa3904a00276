//! The restore -> save handoff: restore records what it did per cache in a local file (never
//! the store) that a later phase's save reads. CodeBuild runs each phase in a new shell of the
//! same container, so a file in the temp directory survives from pre_build to post_build.

use crate::outcome::RestoreOutcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one restore of one cache did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The key resolved at restore time: save uses it, even if lockfiles changed since.
    pub key: String,
    pub matched_key: Option<String>,
    pub outcome: RestoreOutcome,
    /// The normalized path set, so a save with other paths does not trust this record.
    pub paths: Vec<String>,
    /// The restore refused the entry of the exact key in the build's own scope (damaged, or
    /// not trusted): a save of that key replaces it instead of skipping an existing key.
    #[serde(default)]
    pub refused_exact: bool,
    /// The cachectl.toml the key came from (absolute; `None` for a plain `--key` restore), and
    /// the directory the restore ran in (templates and relative paths resolve there), so `run`
    /// can check the key and the trees from anywhere.
    #[serde(default)]
    pub config: Option<PathBuf>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Restores of this build recorded this name from different places (another directory or
    /// cachectl.toml, or a plain `--key` of another key or paths in the same family): the
    /// record cannot say which tree `run --cache NAME` or a save means (see [`record`]).
    #[serde(default)]
    pub ambiguous: bool,
    /// What a hit or partial hit placed: the paths that existed right after it (an entry
    /// holds only those that existed when it was saved), as they were; `None` otherwise.
    #[serde(default)]
    pub placed: Option<Vec<Placed>>,
}

/// One path a restore placed, as it was right after: a tree deleted and made again, emptied
/// at its top, or replaced by a file or a link, no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The normalized path (`node_modules`, `~/.npm`).
    pub path: String,
    dev: u64,
    ino: u64,
    /// File type and permission bits.
    mode: u32,
    mtime: i64,
    mtime_nsec: i64,
}

impl Placed {
    /// `path` (normalized) as `dest` is now; `None` when nothing is there.
    pub fn of(path: &str, dest: &Path) -> Option<Placed> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(dest).ok()?;
        Some(Placed {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }

    /// Whether `dest` is still what was placed.
    pub fn still_at(&self, dest: &Path) -> bool {
        Placed::of(&self.path, dest).as_ref() == Some(self)
    }
}

/// What the last `cachectl run` of one cache in this build did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The restore outcome it went by (`None`: no restore of the cache was recorded).
    pub restore: Option<RestoreOutcome>,
    /// False when an exact hit let it skip the command.
    pub ran: bool,
    /// Wall-clock seconds the command took (0 when skipped).
    pub seconds: f64,
    /// The command's exit code, or `None` when a signal ended it (or it was skipped).
    pub exit_code: Option<i32>,
    /// Its `InstallSeconds` went to CloudWatch (or never will: a failed command, metrics off);
    /// when false it waits in [`State::pending`].
    pub published: bool,
}

/// An `InstallSeconds` datum `run` could not send: the next `run` or `save` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Install {
    pub cache: String,
    pub restore: Option<RestoreOutcome>,
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub caches: BTreeMap<String, Recorded>,
    /// The last `cachectl run` of each cache, by name.
    #[serde(default)]
    pub runs: BTreeMap<String, Run>,
    /// Install times not sent yet, oldest first.
    #[serde(default)]
    pub pending: Vec<Install>,
}

/// `$CACHECTL_STATE_DIR` (or the temp dir) / `cachectl-state-<build>.json`, where `<build>` is
/// the CodeBuild build id, or outside CodeBuild a digest of the working directory.
pub fn path(cwd: &Path) -> PathBuf {
    let dir = std::env::var_os(crate::env::STATE_DIR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let id = match std::env::var(crate::env::CODEBUILD_BUILD_ID) {
        Ok(id) if !id.is_empty() => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        _ => blake3::hash(cwd.as_os_str().as_encoded_bytes()).to_hex()[..16].to_owned(),
    };
    dir.join(format!("{}{id}.json", crate::archive::pack::STATE_PREFIX))
}

/// The recorded state; a missing or unreadable file is an empty state (save then works as if
/// no restore ran: it checks the store before uploading).
pub fn load(path: &Path) -> State {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Merges `updates` into the file (temp file + rename, so a reader never sees half a file),
/// creating its directory (`CACHECTL_STATE_DIR` may name one that does not exist yet).
///
/// A name already recorded by a restore from another cachectl.toml or directory (a monorepo's
/// packages sharing one file), or by a plain `--key` restore of another key or path set (one
/// key family), marks the record ambiguous: which tree the name means is not known.
pub fn record(path: &Path, updates: BTreeMap<String, Recorded>) -> std::io::Result<()> {
    update(path, |state| {
        for (name, mut rec) in updates {
            if let Some(old) = state.caches.get(&name) {
                let elsewhere = old.config != rec.config || old.cwd != rec.cwd;
                let plain = rec.config.is_none();
                rec.ambiguous = old.ambiguous || elsewhere || (plain && !old.same_tree(&rec));
            }
            state.caches.insert(name, rec);
        }
    })
}

impl Recorded {
    fn same_tree(&self, other: &Recorded) -> bool {
        self.key == other.key && self.paths == other.paths
    }

    /// The record a restore made for this cachectl.toml (`None`: a plain `--key`) and working
    /// directory, if it is not ambiguous: what a save or run of that cache there may go by.
    pub fn for_here(&self, config: Option<&Path>, cwd: &Path) -> bool {
        !self.ambiguous && self.config.as_deref() == config && self.cwd.as_deref() == Some(cwd)
    }
}

/// Records `run` as the last run of `cache`, and `install` (if any) as still to send.
pub fn record_run(
    path: &Path,
    cache: &str,
    run: Run,
    install: Option<Install>,
) -> std::io::Result<()> {
    update(path, |state| {
        state.runs.insert(cache.to_owned(), run);
        state.pending.extend(install);
    })
}

/// Drops the `sent` install times from the pending ones (a run or save published them),
/// marking the last runs they came from published.
pub fn sent(path: &Path, sent: &[Install]) -> std::io::Result<()> {
    update(path, |state| {
        state.pending.retain(|p| !sent.contains(p));
        for install in sent {
            if let Some(run) = state.runs.get_mut(&install.cache) {
                if run.seconds == install.seconds {
                    run.published = true;
                }
            }
        }
    })
}

/// Loads the file, applies `change`, and writes it back whole, holding `<file>.lock` so
/// commands running at once (two `run`s in parallel) do not drop each other's changes.
fn update(path: &Path, change: impl FnOnce(&mut State)) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unlocked when the file closes. A lock file that cannot be opened (another user's) only
    // costs the protection, not the write.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .and_then(|f| f.lock().map(|()| f));
    let mut state = load(path);
    change(&mut state);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&state).expect("state serializes"),
    )
    .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A file another user owns cannot be replaced: leave nothing behind either.
        let _ = std::fs::remove_file(&tmp);
    }
    drop(lock);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, config: Option<&str>) -> Recorded {
        Recorded {
            key: key.into(),
            matched_key: Some(key.into()),
            outcome: RestoreOutcome::Hit,
            paths: vec!["node_modules".into()],
            refused_exact: false,
            config: config.map(PathBuf::from),
            cwd: config.map(|_| PathBuf::from("/src")),
            ambiguous: false,
            placed: None,
        }
    }

    #[test]
    fn record_merges_and_load_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        assert!(load(&p).caches.is_empty());
        let toml = Some("/src/cachectl.toml");
        record(&p, BTreeMap::from([("npm".to_owned(), rec("a", toml))])).unwrap();
        record(&p, BTreeMap::from([("pip".to_owned(), rec("b", toml))])).unwrap();
        let s = load(&p);
        assert_eq!(s.caches.len(), 2);
        assert_eq!(s.caches["npm"], rec("a", toml));
        let run = Run {
            restore: Some(RestoreOutcome::Miss),
            ran: true,
            seconds: 41.5,
            exit_code: Some(0),
            published: false,
        };
        let pending = vec![Install {
            cache: "npm".into(),
            restore: Some(RestoreOutcome::Miss),
            seconds: 41.5,
        }];
        record_run(&p, "npm", run.clone(), pending.first().cloned()).unwrap();
        let s = load(&p);
        assert_eq!((s.caches.len(), &s.runs["npm"]), (2, &run));
        assert_eq!(s.pending, pending);
        sent(&p, &pending).unwrap();
        let s = load(&p);
        assert!(s.pending.is_empty());
        assert!(s.runs["npm"].published);
        std::fs::write(&p, r#"{"caches": {}}"#).unwrap();
        assert!(load(&p).runs.is_empty(), "a file from before runs loads");
        std::fs::write(&p, "not json").unwrap();
        assert!(load(&p).caches.is_empty());
    }

    #[test]
    fn plain_restores_of_other_trees_under_one_name_are_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let put = |r: Recorded| {
            record(&p, BTreeMap::from([("npm-linux".to_owned(), r)])).unwrap();
            load(&p).caches["npm-linux"].ambiguous
        };
        assert!(!put(rec("npm-linux-a", None)), "first");
        assert!(!put(rec("npm-linux-a", None)), "the same tree again");
        assert!(put(rec("npm-linux-b", None)), "another key, same family");
        assert!(put(rec("npm-linux-a", None)), "stays ambiguous");
    }
}
