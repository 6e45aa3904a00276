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
    /// `InstallSeconds` went to CloudWatch, or never will (skipped, failed, metrics off):
    /// when false, the next save publishes it.
    pub published: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub caches: BTreeMap<String, Recorded>,
    /// `cachectl run`s, by cache name.
    #[serde(default)]
    pub runs: BTreeMap<String, Run>,
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
pub fn record(path: &Path, updates: BTreeMap<String, Recorded>) -> std::io::Result<()> {
    update(path, |state| state.caches.extend(updates))
}

/// Merges `runs` into the file, as [`record`] does restores.
pub fn record_runs(path: &Path, runs: BTreeMap<String, Run>) -> std::io::Result<()> {
    update(path, |state| state.runs.extend(runs))
}

fn update(path: &Path, change: impl FnOnce(&mut State)) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut state = load(path);
    change(&mut state);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&state).expect("state serializes"),
    )?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_merges_and_load_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        assert!(load(&p).caches.is_empty());
        let rec = |k: &str| Recorded {
            key: k.into(),
            matched_key: Some(k.into()),
            outcome: RestoreOutcome::Hit,
            paths: vec!["node_modules".into()],
            refused_exact: false,
        };
        record(&p, BTreeMap::from([("npm".to_owned(), rec("a"))])).unwrap();
        record(&p, BTreeMap::from([("pip".to_owned(), rec("b"))])).unwrap();
        let s = load(&p);
        assert_eq!(s.caches.len(), 2);
        assert_eq!(s.caches["npm"], rec("a"));
        let run = Run {
            restore: Some(RestoreOutcome::Miss),
            ran: true,
            seconds: 41.5,
            exit_code: Some(0),
            published: false,
        };
        record_runs(&p, BTreeMap::from([("npm".to_owned(), run.clone())])).unwrap();
        let s = load(&p);
        assert_eq!((s.caches.len(), &s.runs["npm"]), (2, &run));
        std::fs::write(&p, r#"{"caches": {}}"#).unwrap();
        assert!(load(&p).runs.is_empty(), "a file from before runs loads");
        std::fs::write(&p, "not json").unwrap();
        assert!(load(&p).caches.is_empty());
    }
}
