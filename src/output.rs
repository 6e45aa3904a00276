//! What a command reports: one JSON object on stdout (`--json`), one summary line on stderr.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreOutcome {
    Hit,
    Partial,
    Miss,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveOutcome {
    Saved,
    Skipped,
    Error,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The cache's name (`[cache.NAME]`, or the key's family for a plain `--key`).
    pub cache: String,
    pub outcome: RestoreOutcome,
    pub key: String,
    pub matched_key: Option<String>,
    /// Archive bytes transferred (the object's size).
    pub bytes: u64,
    /// Tar entries restored: files, directories and links.
    pub files: u64,
    /// Bytes of file content restored.
    pub unpacked_bytes: u64,
    pub seconds: f64,
    pub store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SaveReport {
    pub cache: String,
    pub outcome: SaveOutcome,
    pub key: String,
    /// Archive bytes uploaded (0 when skipped).
    pub bytes: u64,
    /// Tar entries saved: files, directories and links.
    pub files: u64,
    /// Bytes of file content packed.
    pub unpacked_bytes: u64,
    pub seconds: f64,
    pub store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `21340` -> `21,340`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

impl RestoreReport {
    /// A report that says `error` until the restore says otherwise.
    pub fn new(cache: &str, key: &str, store: String) -> Self {
        RestoreReport {
            cache: cache.to_owned(),
            outcome: RestoreOutcome::Error,
            key: key.to_owned(),
            matched_key: None,
            bytes: 0,
            files: 0,
            unpacked_bytes: 0,
            seconds: 0.0,
            store,
            message: None,
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
            bytes: 0,
            files: 0,
            unpacked_bytes: 0,
            seconds: 0.0,
            store,
            reason: None,
        }
    }
}

/// `1 entry`, `2,500 entries`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `45s`, `12m`, `5h`, `3d`: how long ago, to the unit a person would use.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// One human line on stderr, unless `--quiet`.
pub fn say(line: &str) {
    if crate::progress::verbosity() != crate::progress::Verbosity::Quiet {
        eprintln!("{line}");
    }
}

/// The `--json` line: the report itself for one cache; for several,
/// `{"outcome": <the worst>, "caches": [...]}`.
pub fn emit_json<T: Serialize>(json: bool, reports: &[T], worst: &str) {
    if !json {
        return;
    }
    let line = match reports {
        [one] => serde_json::to_string(one),
        many => serde_json::to_string(&serde_json::json!({ "outcome": worst, "caches": many })),
    };
    println!("{}", line.expect("report serializes"));
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

/// One loud line, the cause and the fix, for store trouble that does not fail the build.
pub fn warn(what: &str, cause: &str, hint: Option<&str>) {
    match hint {
        Some(h) => eprintln!("warning: {what}: {cause} (fix: {h})"),
        None => eprintln!("warning: {what}: {cause}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(21340), "21,340");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(312 * 1024 * 1024), "312.0 MiB");
        assert_eq!(human_age(Duration::from_secs(59)), "59s");
        assert_eq!(human_age(Duration::from_secs(3600)), "60m");
        assert_eq!(human_age(Duration::from_secs(5 * 3600)), "5h");
        assert_eq!(human_age(Duration::from_secs(3 * 86400 + 5)), "3d");
    }
}
