//! What a save or restore of one cache came to: the outcome words and the report each cache
//! gets (the `--json` object, the state file, the metrics all read them).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreOutcome {
    Hit,
    Partial,
    Miss,
    /// Store trouble, reported (fail-open) rather than passed off as a miss.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveOutcome {
    Saved,
    Skipped,
    Error,
}

/// One cache's restore, as `--json` prints it (README, "Commands").
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The cache's name (`[cache.NAME]`, or the key's family for a plain `--key`).
    pub cache: String,
    pub outcome: RestoreOutcome,
    pub key: String,
    pub matched_key: Option<String>,
    /// The scope of the entry restored (`trusted`, or the build's own untrusted scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_scope: Option<String>,
    /// The build's scope (docs/FORMAT.md, "Scopes").
    pub scope: String,
    /// Archive bytes transferred (the object's size).
    pub bytes: u64,
    /// Tar entries restored: files, directories and links.
    pub files: u64,
    /// Bytes of file content restored.
    pub unpacked_bytes: u64,
    pub seconds: f64,
    pub store: String,
    /// Why the outcome is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How to fix what `message` says, when cachectl knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The entry of the exact key in the build's own scope was refused (for the state file).
    #[serde(skip)]
    pub refused_exact: bool,
}

/// One cache's save, as `--json` prints it (README, "Commands").
#[derive(Debug, Serialize)]
pub struct SaveReport {
    pub cache: String,
    pub outcome: SaveOutcome,
    pub key: String,
    /// The scope saved into: the build's (docs/FORMAT.md, "Scopes").
    pub scope: String,
    /// Whether the entry was signed (`CACHECTL_SIGNING_KEY`).
    pub signed: bool,
    /// Archive bytes uploaded (0 when skipped).
    pub bytes: u64,
    /// Tar entries saved: files, directories and links.
    pub files: u64,
    /// Bytes of file content packed.
    pub unpacked_bytes: u64,
    pub seconds: f64,
    pub store: String,
    /// Why the save was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How to fix what `reason` says, when cachectl knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl RestoreReport {
    /// A report that says `error` until the restore says otherwise.
    pub fn new(cache: &str, key: &str, store: String) -> Self {
        RestoreReport {
            cache: cache.to_owned(),
            outcome: RestoreOutcome::Error,
            key: key.to_owned(),
            matched_key: None,
            matched_scope: None,
            scope: crate::key::Scope::TRUSTED.to_owned(),
            bytes: 0,
            files: 0,
            unpacked_bytes: 0,
            seconds: 0.0,
            store,
            message: None,
            hint: None,
            refused_exact: false,
        }
    }
}

impl SaveReport {
    /// A report that says `error` until the save says otherwise.
    pub fn new(cache: &str, key: &str, store: String) -> Self {
        SaveReport {
            cache: cache.to_owned(),
            outcome: SaveOutcome::Error,
            key: key.to_owned(),
            scope: crate::key::Scope::TRUSTED.to_owned(),
            signed: false,
            bytes: 0,
            files: 0,
            unpacked_bytes: 0,
            seconds: 0.0,
            store,
            reason: None,
            hint: None,
        }
    }
}

impl RestoreOutcome {
    /// Order for "the worst outcome" of several caches.
    fn badness(self) -> u8 {
        match self {
            RestoreOutcome::Hit => 0,
            RestoreOutcome::Partial => 1,
            RestoreOutcome::Miss => 2,
            RestoreOutcome::Error => 3,
        }
    }

    /// The worst of several caches' outcomes (`miss` for none).
    pub fn worst(all: impl IntoIterator<Item = Self>) -> Self {
        all.into_iter()
            .max_by_key(|o| o.badness())
            .unwrap_or(RestoreOutcome::Miss)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestoreOutcome::Hit => "hit",
            RestoreOutcome::Partial => "partial",
            RestoreOutcome::Miss => "miss",
            RestoreOutcome::Error => "error",
        }
    }
}

impl SaveOutcome {
    /// The worst of several caches' outcomes (`skipped` for none).
    pub fn worst(all: impl IntoIterator<Item = Self>) -> Self {
        let rank = |o: &SaveOutcome| match o {
            SaveOutcome::Saved => 0,
            SaveOutcome::Skipped => 1,
            SaveOutcome::Error => 2,
        };
        all.into_iter()
            .max_by_key(rank)
            .unwrap_or(SaveOutcome::Skipped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaveOutcome::Saved => "saved",
            SaveOutcome::Skipped => "skipped",
            SaveOutcome::Error => "error",
        }
    }
}
