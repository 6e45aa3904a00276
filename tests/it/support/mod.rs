//! Test harness: sandboxes, the `cachectl` command builder, moto (S3, and CloudWatch through a
//! bridge), trees and hand-made archives.

pub mod buildspec;
pub mod cloudwatch;
pub mod cmd;
pub mod format;
pub mod moto;
pub mod tree;

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub use cmd::{Cachectl, Run};

/// Which backend a store conformance test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Local,
    S3,
}

/// A temp dir on tmpfs: this machine's disk creates files slowly, and the tests make many.
pub fn tempdir(prefix: &str) -> TempDir {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("create temp dir")
}

/// One test's world: a sandbox dir holding homes, working dirs and (for local) the store, plus
/// the store URL. S3 fixtures own a bucket named after the test on the shared moto server.
pub struct Fixture {
    pub kind: StoreKind,
    /// What `--store` gets: a directory path or `s3://bucket`.
    pub store: String,
    /// `AWS_ENDPOINT_URL` for the commands, if any.
    pub endpoint: Option<String>,
    /// The bucket for S3 fixtures.
    pub bucket: Option<String>,
    /// `$HOME` of commands unless a test picks another.
    pub home: PathBuf,
    sandbox: TempDir,
}

impl Fixture {
    /// `test` must be unique per test: it names the bucket.
    pub fn new(kind: StoreKind, test: &str) -> Fixture {
        let sandbox = tempdir("cachectl-it-");
        let home = sandbox.path().join("home");
        fs::create_dir(&home).unwrap();
        let (store, endpoint, bucket) = match kind {
            StoreKind::Local => {
                let store = sandbox.path().join("store");
                (store.to_str().unwrap().to_owned(), None, None)
            }
            StoreKind::S3 => {
                let moto = moto::moto();
                let bucket = moto::bucket_name(test);
                moto.create_bucket(&bucket);
                (
                    format!("s3://{bucket}"),
                    Some(moto.endpoint.clone()),
                    Some(bucket),
                )
            }
        };
        Fixture {
            kind,
            store,
            endpoint,
            bucket,
            home,
            sandbox,
        }
    }

    /// An S3 fixture for `s3://bucket` at `endpoint`, creating nothing there: for dead
    /// endpoints, missing buckets and the moto that denies access.
    pub fn s3_at(endpoint: &str, bucket: &str) -> Fixture {
        let sandbox = tempdir("cachectl-it-");
        let home = sandbox.path().join("home");
        fs::create_dir(&home).unwrap();
        Fixture {
            kind: StoreKind::S3,
            store: format!("s3://{bucket}"),
            endpoint: Some(endpoint.to_owned()),
            bucket: Some(bucket.to_owned()),
            home,
            sandbox,
        }
    }

    /// A fixture with no store of its own, for commands that need none (hash-files).
    pub fn bare() -> Fixture {
        let sandbox = tempdir("cachectl-it-");
        let home = sandbox.path().join("home");
        fs::create_dir(&home).unwrap();
        Fixture {
            kind: StoreKind::Local,
            store: sandbox.path().join("store").to_str().unwrap().to_owned(),
            endpoint: None,
            bucket: None,
            home,
            sandbox,
        }
    }

    pub fn root(&self) -> &Path {
        self.sandbox.path()
    }

    /// A fresh, empty directory `<sandbox>/<name>` (parents created).
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.root().join(name);
        fs::create_dir_all(&dir).unwrap();
        assert!(
            fs::read_dir(&dir).unwrap().next().is_none(),
            "{} is not empty",
            dir.display()
        );
        dir
    }

    /// A `cachectl` invocation with this fixture's HOME and AWS settings, cwd = the sandbox.
    /// It does not add `--store`: use [`Fixture::save`] / [`Fixture::restore`] for that.
    pub fn cachectl(&self) -> Cachectl {
        let mut cmd = Cachectl::new(self.root());
        cmd.home(&self.home);
        if let Some(endpoint) = &self.endpoint {
            cmd.env("AWS_ENDPOINT_URL", endpoint);
        }
        cmd
    }

    /// `cachectl save --json --store STORE --key KEY`, cwd `cwd`; add `--path`s with `.paths()`.
    pub fn save(&self, key: &str, cwd: &Path) -> Cachectl {
        let mut cmd = self.cachectl();
        cmd.cwd(cwd)
            .args(["save", "--json", "--store", &self.store, "--key", key]);
        cmd
    }

    /// `cachectl restore --json --store STORE --key KEY`, cwd `cwd`.
    pub fn restore(&self, key: &str, cwd: &Path) -> Cachectl {
        let mut cmd = self.cachectl();
        cmd.cwd(cwd)
            .args(["restore", "--json", "--store", &self.store, "--key", key]);
        cmd
    }

    /// Whether an upload is open: a multipart upload (S3) or a temp file (local store).
    pub fn upload_open(&self) -> bool {
        match self.kind {
            StoreKind::Local => fs::read_dir(Path::new(&self.store).join("tmp"))
                .is_ok_and(|mut d| d.next().is_some()),
            StoreKind::S3 => !moto::moto()
                .uploads(self.bucket.as_ref().unwrap())
                .is_empty(),
        }
    }

    /// Whether an open upload has received a part: the saving process has surely registered
    /// it for abort-on-signal by then (it does so as soon as the upload exists, before parts).
    pub fn upload_has_a_part(&self) -> bool {
        match self.kind {
            StoreKind::Local => fs::read_dir(Path::new(&self.store).join("tmp"))
                .is_ok_and(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0))),
            StoreKind::S3 => moto::moto()
                .upload_parts(self.bucket.as_ref().unwrap())
                .iter()
                .any(|&n| n > 0),
        }
    }

    /// Incompressible bytes (xorshift64): zstd at level 19 works hard on each one, which makes
    /// a save slow enough to be caught in the middle.
    pub fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// The stored object (archive) of `key`, as bytes; panics unless exactly one exists.
    pub fn read_object(&self, key: &str) -> Vec<u8> {
        match self.kind {
            StoreKind::Local => fs::read(self.local_object_path(key)).unwrap(),
            StoreKind::S3 => {
                let name = self.s3_object_name(key);
                moto::moto().get_object(self.bucket.as_ref().unwrap(), &name)
            }
        }
    }

    /// Replace the stored object of `key` (saved before) with `bytes`, keeping its metadata.
    pub fn replace_object(&self, key: &str, bytes: &[u8]) {
        match self.kind {
            StoreKind::Local => fs::write(self.local_object_path(key), bytes).unwrap(),
            StoreKind::S3 => {
                let name = self.s3_object_name(key);
                moto::moto().replace_object(self.bucket.as_ref().unwrap(), &name, bytes);
            }
        }
    }

    /// `<store>/v1/*/<escaped key>` (not the `%meta` sidecar); exactly one must exist.
    pub fn local_object_path(&self, key: &str) -> PathBuf {
        let escaped = format::escape_local_key(key);
        let v1 = Path::new(&self.store).join("v1");
        let found: Vec<PathBuf> = fs::read_dir(&v1)
            .unwrap_or_else(|e| panic!("read {}: {e}", v1.display()))
            .map(|d| d.unwrap().path().join(&escaped))
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one object for key {key:?} under {}, found {found:?}",
            v1.display()
        );
        found.into_iter().next().unwrap()
    }

    /// The one S3 object name `v1/<pathset>/<key>` in this fixture's bucket.
    pub fn s3_object_name(&self, key: &str) -> String {
        let names: Vec<String> = moto::moto()
            .list(self.bucket.as_ref().unwrap(), "v1/")
            .into_iter()
            .filter(|name| {
                let rest = name.strip_prefix("v1/").and_then(|r| r.split_once('/'));
                rest.map(|(_, k)| k) == Some(key)
            })
            .collect();
        assert_eq!(
            names.len(),
            1,
            "expected one object for key {key:?}, found {names:?}"
        );
        names.into_iter().next().unwrap()
    }
}

/// Names of the entries directly in `dir`, sorted; empty if it does not exist.
/// Names in `dir` that cachectl left there (staging, trash), once background removal is done.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let left: Vec<String> = list_dir(dir)
            .into_iter()
            .filter(|n| n.starts_with(".cachectl-"))
            .collect();
        if left.is_empty() || started.elapsed() > std::time::Duration::from_secs(30) {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every path under `root` (recursively, not following symlinks) whose file name is `name`.
pub fn find_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

/// Writes `contents` to `path`, creating parent directories.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, contents).unwrap();
}

/// Defines, for each listed `fn name(f: Fixture)`, a module `name` with the tests `local` and
/// `s3` that run it against a fresh fixture of that store kind.
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn local() {
                let fixture = $crate::support::Fixture::new(
                    $crate::support::StoreKind::Local,
                    concat!(stringify!($name), "-local"),
                );
                super::$name(fixture);
            }

            #[test]
            fn s3() {
                let fixture = $crate::support::Fixture::new(
                    $crate::support::StoreKind::S3,
                    concat!(stringify!($name), "-s3"),
                );
                super::$name(fixture);
            }
        }
    )*};
}
pub(crate) use for_each_store;
