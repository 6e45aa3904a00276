//! A generator for trees with every kind of entry a cache must keep, and entry-by-entry
//! snapshots to compare a restored tree with the one that was saved.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

/// Size of the one big file: half seeded random bytes, half repetitive text.
pub const BIG_FILE_BYTES: usize = 50 * 1024 * 1024;

/// What `generate` makes besides the fixed set of entries.
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    /// Add `big/blob.bin` of [`BIG_FILE_BYTES`].
    pub big_file: bool,
    /// Add a FIFO, which save must skip (it must not come back on restore).
    pub fifo: bool,
    /// Seeds file contents, so two trees from different seeds differ.
    pub seed: u64,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            big_file: false,
            fifo: true,
            seed: 1,
        }
    }
}

/// xorshift64*: deterministic bytes without a dependency.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(&mut buf);
        buf
    }
}

/// A 200-byte file name, a component of 120 bytes and a path of more than 255 bytes.
pub fn long_names() -> (String, String) {
    let dir = format!("long/{}/{}", "d".repeat(120), "e".repeat(120));
    let file = format!("{}.txt", "f".repeat(196));
    (dir, file)
}

/// Makes `root` (which must not exist) holding regular, empty, executable and private files,
/// empty and nested dirs, relative, absolute, dangling and directory symlinks, two hard-link
/// groups, setuid/setgid/sticky bits, long and non-ASCII names, an optional FIFO and an
/// optional 50 MB file. Every entry gets its own mtime (with nanoseconds).
pub fn generate(root: &Path, options: TreeOptions) {
    assert!(!root.exists(), "{} exists", root.display());
    let mut rng = Prng::new(options.seed);
    let seed = options.seed;
    fs::create_dir_all(root).unwrap();
    let file = |rel: &str, contents: &[u8], mode: u32| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let dir = |rel: &str| fs::create_dir_all(root.join(rel)).unwrap();
    let link = |rel: &str, target: &str| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    };
    let hard = |existing: &str, new: &str| {
        let path = root.join(new);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::hard_link(root.join(existing), path).unwrap();
    };

    file(
        "README.md",
        format!("# tree seed {seed}\n").as_bytes(),
        0o644,
    );
    file("empty.txt", b"", 0o644);
    file(".hidden/config", format!("seed={seed}\n").as_bytes(), 0o644);
    file(
        "pkg/bin.js",
        format!("#!/usr/bin/env node\nconsole.log({seed});\n").as_bytes(),
        0o755,
    );
    file(
        "pkg/package.json",
        br#"{"name":"pkg","bin":"bin.js"}"#,
        0o644,
    );
    file("data/medium.bin", &rng.bytes(300 * 1024), 0o644);

    // node_modules/.bin style: relative links that must stay links.
    link(".bin/x", "../pkg/bin.js");
    link("links/dangling", "does/not/exist");
    link("links/absolute", "/nonexistent/cachectl-it/target");
    link("links/dir-link", "../pkg");
    link("links/self-dir", ".");

    // Two hard-link groups; restore must keep one inode per group.
    file("hard/one.txt", format!("hard {seed}\n").as_bytes(), 0o644);
    hard("hard/one.txt", "hard/two.txt");
    hard("hard/one.txt", "other/three.txt");
    file(
        "hard/exec-a",
        format!("#!/bin/sh\necho {seed}\n").as_bytes(),
        0o755,
    );
    hard("hard/exec-a", "hard/exec-b");

    file("modes/private.txt", b"secret\n", 0o600);
    file("modes/readonly.txt", b"read only\n", 0o444);
    file("modes/exec.sh", b"#!/bin/sh\ntrue\n", 0o700);
    file("modes/group.txt", b"group\n", 0o640);
    file("modes/setuid", b"setuid\n", 0o4755);
    file("modes/setgid", b"setgid\n", 0o2750);
    dir("modes/sticky-dir");
    file("modes/private-dir/inner.txt", b"inner\n", 0o644);
    file("modes/readonly-dir/inner.txt", b"inner\n", 0o644);

    dir("empty-dir");
    dir("nested/a/b/c/empty");

    let (long_dir, long_file) = long_names();
    file(
        &format!("{long_dir}/{long_file}"),
        b"a path longer than 255 bytes\n",
        0o644,
    );
    file(
        &format!("long/{}", "g".repeat(255)),
        b"255-byte name\n",
        0o644,
    );

    file(
        "unicode/ünïcødé/日本語.txt",
        "こんにちは\n".as_bytes(),
        0o644,
    );
    file("unicode/emoji-🦀.rs", b"fn main() {}\n", 0o644);
    dir("unicode/Ωmega");
    file("special/with space & $dollar.txt", b"space\n", 0o644);
    file("special/back\\slash", b"backslash\n", 0o644);
    file("special/%2Fpercent%meta", b"percent\n", 0o644);
    file("special/colon:star*question?", b"punctuation\n", 0o644);

    if options.fifo {
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo failed: {status}");
    }

    if options.big_file {
        write_big_file(&root.join("big/blob.bin"), &mut rng);
    }

    // Dir modes last but before mtimes: chmod changes ctime, not mtime.
    for (rel, mode) in [
        ("modes/sticky-dir", 0o1777),
        ("modes/private-dir", 0o700),
        ("modes/readonly-dir", 0o555),
        ("empty-dir", 0o750),
    ] {
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    set_distinct_mtimes(root, seed);
}

fn write_big_file(path: &Path, rng: &mut Prng) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = BufWriter::new(fs::File::create(path).unwrap());
    let half = BIG_FILE_BYTES / 2;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < half {
        let n = buf.len().min(half - written);
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).unwrap();
        written += n;
    }
    let mut line = 0u64;
    while written < BIG_FILE_BYTES {
        let text = format!(
            "{line:08} the quick brown fox jumps over the lazy dog; cachectl compresses this\n"
        );
        let n = text.len().min(BIG_FILE_BYTES - written);
        out.write_all(&text.as_bytes()[..n]).unwrap();
        written += n;
        line += 1;
    }
    out.flush().unwrap();
}

/// Post-order, so setting a child's time does not disturb its parent's afterwards.
fn set_distinct_mtimes(root: &Path, seed: u64) {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    // Deepest first: a dir after everything in it.
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        let secs = 1_500_000_000 + (seed as i64 % 1000) * 1_000_000 + i as i64 * 3_607;
        let time = FileTime::from_unix_time(secs, 123_456_789);
        filetime::set_symlink_file_times(path, time, time).unwrap();
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFO, device, socket.
    Other,
}

/// What a cache must preserve about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub kind: Kind,
    /// `mode & 0o7777`; 0 for symlinks (Linux ignores their mode).
    pub mode: u32,
    /// Files only; 0 otherwise.
    pub size: u64,
    /// blake3 of a file's content.
    pub blake3: Option<String>,
    pub mtime_secs: i64,
    pub symlink_target: Option<String>,
    /// The smallest path sharing this file's inode within the tree, if any other does.
    pub hardlink_group: Option<String>,
}

impl fmt::Display for EntryInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} mode {:o} mtime {}",
            self.kind, self.mode, self.mtime_secs
        )?;
        if self.kind == Kind::File {
            let hash = self.blake3.as_deref().unwrap_or("-");
            write!(
                f,
                " size {} blake3 {}",
                self.size,
                &hash[..hash.len().min(12)]
            )?;
        }
        if let Some(target) = &self.symlink_target {
            write!(f, " -> {target:?}")?;
        }
        if let Some(group) = &self.hardlink_group {
            write!(f, " hardlink-group {group:?}")?;
        }
        Ok(())
    }
}

/// Relative path (`.` for the root itself) to entry.
pub type Snapshot = BTreeMap<String, EntryInfo>;

/// Every entry under `root` (and `root` itself as `.`), without following symlinks.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut snap = Snapshot::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    visit(root, root, &mut snap, &mut inodes);
    for paths in inodes.values_mut() {
        if paths.len() > 1 {
            paths.sort();
            for path in paths.iter() {
                snap.get_mut(path).unwrap().hardlink_group = Some(paths[0].clone());
            }
        }
    }
    snap
}

fn visit(
    root: &Path,
    path: &Path,
    snap: &mut Snapshot,
    inodes: &mut HashMap<(u64, u64), Vec<String>>,
) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let rel = match path.strip_prefix(root).unwrap() {
        p if p.as_os_str().is_empty() => ".".to_owned(),
        p => p.to_string_lossy().into_owned(),
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        Kind::File
    } else if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    let mut info = EntryInfo {
        kind,
        mode: if kind == Kind::Symlink {
            0
        } else {
            meta.mode() & 0o7777
        },
        size: 0,
        blake3: None,
        mtime_secs: meta.mtime(),
        symlink_target: None,
        hardlink_group: None,
    };
    match kind {
        Kind::File => {
            info.size = meta.len();
            info.blake3 = Some(hash_file(path));
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.clone());
        }
        Kind::Symlink => {
            let target = fs::read_link(path).unwrap();
            info.symlink_target = Some(target.to_string_lossy().into_owned());
        }
        Kind::Dir => {
            for entry in fs::read_dir(path).unwrap() {
                visit(root, &entry.unwrap().path(), snap, inodes);
            }
        }
        Kind::Other => {}
    }
    snap.insert(rel, info);
}

fn hash_file(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path).unwrap()).unwrap();
    hasher.finalize().to_hex().to_string()
}

/// What a restore of a tree with this snapshot must produce: no FIFOs or devices, and only the
/// `0o777` permission bits (setuid, setgid and sticky are dropped).
pub fn expected_after_restore(saved: &Snapshot) -> Snapshot {
    saved
        .iter()
        .filter(|(_, info)| info.kind != Kind::Other)
        .map(|(path, info)| {
            let mut info = info.clone();
            info.mode &= 0o777;
            (path.clone(), info)
        })
        .collect()
}

/// Differences between two snapshots, one readable line each.
pub fn diff(expected: &Snapshot, actual: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => lines.push(format!("- missing  {path:?}: {want}")),
            Some(got) if got != want => lines.push(format!(
                "~ differs  {path:?}\n      want {want}\n      got  {got}"
            )),
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            lines.push(format!("+ extra    {path:?}: {got}"));
        }
    }
    lines
}

/// Panics with every difference between the trees, if any.
pub fn assert_same_tree(expected: &Snapshot, actual_root: &Path) {
    let actual = snapshot(actual_root);
    let lines = diff(expected, &actual);
    assert!(
        lines.is_empty(),
        "{} differs from the saved tree in {} entries:\n{}",
        actual_root.display(),
        lines.len(),
        lines.join("\n")
    );
}
