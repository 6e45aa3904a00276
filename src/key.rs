//! Cache keys, path sets and the entry names they make (docs/FORMAT.md, "Object name").

use std::fmt;
use std::path::{Path, PathBuf};

/// Longest key we accept. S3 allows 1024-byte object names; 250 leaves room for the prefix and
/// keeps an escaped local file name (up to 3 bytes per byte for `%`/`/`) mostly under 255.
pub const MAX_KEY_BYTES: usize = 250;

/// The storage format version, first component of every object name.
pub const FORMAT_DIR: &str = "v1";
/// The same version as a number (metadata `format`, signed statements).
pub const FORMAT_VERSION: u32 = 1;

/// Where every untrusted scope's entries and use records live, below the store prefix:
/// `untrusted/<scope>/v1/…` (docs/FORMAT.md, "Scopes"). One prefix, so one IAM statement
/// lets a pull-request build write there and nowhere else.
pub const UNTRUSTED_DIR: &str = "untrusted";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("cache key is empty")]
    Empty,
    #[error("cache key is {len} bytes; the limit is {MAX_KEY_BYTES} (hash long parts with `cachectl hash-files`)")]
    TooLong { len: usize },
    #[error("cache key contains a control character at byte {at}; use printable characters only")]
    Control { at: usize },
    #[error("--path `{0}` is empty")]
    EmptyPath(String),
    #[error("--path `{path}` starts with `~` but HOME is not set")]
    NoHome { path: String },
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::NoHome { .. } => Some("set HOME, or give the path without `~`".into()),
            // The other messages say what a key or path must look like.
            _ => None,
        }
    }
}

/// A validated cache key (or key prefix, for `--restore-key`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        if s.len() > MAX_KEY_BYTES {
            return Err(Error::TooLong { len: s.len() });
        }
        if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
            return Err(Error::Control { at });
        }
        Ok(CacheKey(s.to_owned()))
    }

    pub fn parse_arg(s: &str) -> Result<Self, String> {
        Self::new(s).map_err(|e| e.to_string())
    }

    pub fn parse_prefix_arg(s: &str) -> Result<Self, String> {
        Self::new(s).map_err(|e| e.to_string().replace("cache key", "restore-key prefix"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The family prune's `--keep-last` groups by: the key without its last `-`-separated
    /// segment when that segment looks like a digest (8+ hex characters), else the key.
    pub fn family(&self) -> &str {
        match self.0.rsplit_once('-') {
            Some((head, tail))
                if !head.is_empty()
                    && tail.len() >= 8
                    && tail.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                head
            }
            _ => &self.0,
        }
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The normalized, sorted, de-duplicated `--path` arguments of one cache.
///
/// Part of an entry's identity: saving the same key with other paths makes another entry,
/// so a restore never unpacks a tree into places it was not saved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSet {
    paths: Vec<String>,
}

impl PathSet {
    pub fn new<S: AsRef<str>>(raw: &[S]) -> Result<Self, Error> {
        let mut paths = Vec::with_capacity(raw.len());
        for p in raw {
            let p = p.as_ref();
            if p.is_empty() {
                return Err(Error::EmptyPath(p.to_owned()));
            }
            paths.push(normalize(p));
        }
        paths.sort();
        paths.dedup();
        Ok(PathSet { paths })
    }

    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// 16 hex characters of blake3 over the path list: the directory entries live under.
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"cachectl-paths-v1\n");
        h.update(self.paths.join("\n").as_bytes());
        h.finalize().to_hex()[..16].to_owned()
    }

    /// Where each path lives on this machine: `~` expanded, relative paths joined to `cwd`.
    pub fn resolve(&self, cwd: &Path, home: Option<&Path>) -> Result<Vec<PathBuf>, Error> {
        self.paths
            .iter()
            .map(|p| {
                let rest = if p == "~" {
                    Some("")
                } else {
                    p.strip_prefix("~/")
                };
                match rest {
                    Some(rest) => {
                        let home = home.ok_or_else(|| Error::NoHome { path: p.clone() })?;
                        Ok(if rest.is_empty() {
                            home.to_path_buf()
                        } else {
                            home.join(rest)
                        })
                    }
                    None => Ok(cwd.join(p)),
                }
            })
            .collect()
    }
}

/// Lexical normalization (docs/FORMAT.md, "Path normalization"); never touches the disk.
pub fn normalize(raw: &str) -> String {
    let (root, rest) = if raw == "~" {
        ("~", "")
    } else if let Some(r) = raw.strip_prefix("~/") {
        ("~", r)
    } else if let Some(r) = raw.strip_prefix('/') {
        ("/", r)
    } else {
        ("", raw)
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `/..` is `/`; `~/..` stays meaningful (home's parent), like a relative `..`.
                _ if root == "/" => {}
                _ => parts.push(".."),
            },
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match root {
        "/" => format!("/{joined}"),
        "~" if joined.is_empty() => "~".to_owned(),
        "~" => format!("~/{joined}"),
        _ if joined.is_empty() => ".".to_owned(),
        _ => joined,
    }
}

/// Longest untrusted scope name: with `untrusted/`, the format directory, a path-set digest and
/// a 250-byte key it stays far below S3's 1,024-byte object names.
pub const MAX_SCOPE_BYTES: usize = 100;

/// Who wrote an entry, and so who may use it (docs/FORMAT.md, "Scopes").
///
/// `Trusted` entries are what trusted builds (pushes to protected branches) save; every other
/// build is `Untrusted` in a scope of its own (`pr-42`), whose entries only that scope restores.
/// Entries written before scopes existed are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Scope {
    #[default]
    Trusted,
    Untrusted(String),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("scope `{0}` is not a scope name: use `trusted`, or 1 to {MAX_SCOPE_BYTES} letters, digits, `.`, `_` or `-` (not starting with `.`, not `trusted` in any case) for an untrusted scope, e.g. `pr-42`")]
    Invalid(String),
}

impl Scope {
    /// The word `--scope` and `CACHECTL_SCOPE` take for the trusted scope.
    pub const TRUSTED: &'static str = "trusted";

    /// `trusted`, or the name of an untrusted scope.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        if s == Self::TRUSTED {
            return Ok(Scope::Trusted);
        }
        Self::untrusted(s)
    }

    /// An untrusted scope named `name` (the characters of a file name that needs no escaping).
    pub fn untrusted(name: &str) -> Result<Scope, ScopeError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_SCOPE_BYTES
            && !name.starts_with('.')
            // `Trusted` as an untrusted scope's name would read as the trusted scope in `ls`.
            && !name.eq_ignore_ascii_case(Self::TRUSTED)
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Scope::Untrusted(name.to_owned()))
        } else {
            Err(ScopeError::Invalid(name.to_owned()))
        }
    }

    pub fn parse_arg(s: &str) -> Result<Scope, String> {
        Self::parse(s).map_err(|e| e.to_string())
    }

    pub fn is_trusted(&self) -> bool {
        matches!(self, Scope::Trusted)
    }

    /// `trusted` or the untrusted scope's name.
    pub fn as_str(&self) -> &str {
        match self {
            Scope::Trusted => Self::TRUSTED,
            Scope::Untrusted(name) => name,
        }
    }

    /// What the scope's names start with below the store prefix: nothing for the trusted scope
    /// (where entries have always been), `untrusted/<name>/` for the others.
    pub fn dir(&self) -> String {
        match self {
            Scope::Trusted => String::new(),
            Scope::Untrusted(name) => format!("{UNTRUSTED_DIR}/{name}/"),
        }
    }

    /// Splits `untrusted/<name>/rest` into the scope and `rest`; any other name is the trusted
    /// scope's. `None` for a name under `untrusted/` whose scope is not valid.
    pub fn split_dir(rel: &str) -> Option<(Scope, &str)> {
        match rel
            .strip_prefix(UNTRUSTED_DIR)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(rest) => {
                let (name, rest) = rest.split_once('/')?;
                Some((Scope::untrusted(name).ok()?, rest))
            }
            None => Some((Scope::Trusted, rel)),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry's address inside a store: its scope, its path set's digest and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryName {
    pub scope: Scope,
    pub pathset: String,
    pub key: String,
}

impl EntryName {
    pub fn new(scope: &Scope, pathset: &PathSet, key: &CacheKey) -> Self {
        EntryName {
            scope: scope.clone(),
            pathset: pathset.digest(),
            key: key.as_str().to_owned(),
        }
    }

    /// `[untrusted/<scope>/]v1/<pathset>/<key>`: the S3 object name below the store prefix.
    pub fn object_name(&self) -> String {
        format!(
            "{}{FORMAT_DIR}/{}/{}",
            self.scope.dir(),
            self.pathset,
            self.key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_validation() {
        let cases: &[(&str, &str, Result<(), Error>)] = &[
            ("plain", "npm-linux-x64-3f2a", Ok(())),
            ("unicode", "ключ-✓", Ok(())),
            ("slashes", "a/b/c", Ok(())),
            ("empty", "", Err(Error::Empty)),
            ("newline", "a\nb", Err(Error::Control { at: 1 })),
            ("del", "ab\u{7f}", Err(Error::Control { at: 2 })),
        ];
        for (name, input, want) in cases {
            assert_eq!(&CacheKey::new(input).map(|_| ()), want, "case {name}");
        }
        assert_eq!(
            CacheKey::new(&"k".repeat(251)).unwrap_err(),
            Error::TooLong { len: 251 }
        );
        assert!(CacheKey::new(&"k".repeat(250)).is_ok());
    }

    #[test]
    fn family_strips_digest_segment() {
        let cases = [
            ("npm-linux-x64-3f2a9c01", "npm-linux-x64"),
            ("npm-linux-x64-3f2a9c", "npm-linux-x64-3f2a9c"),
            ("npm-linux-x64-zzzzzzzz", "npm-linux-x64-zzzzzzzz"),
            ("deadbeefcafe", "deadbeefcafe"),
            ("-deadbeefcafe", "-deadbeefcafe"),
            ("plain", "plain"),
        ];
        for (key, fam) in cases {
            assert_eq!(CacheKey::new(key).unwrap().family(), fam, "key {key}");
        }
    }

    #[test]
    fn normalization() {
        let cases = [
            ("node_modules/", "node_modules"),
            ("./node_modules", "node_modules"),
            ("a//b/./c/", "a/b/c"),
            ("a/../b", "b"),
            ("../shared", "../shared"),
            ("a/../../x", "../x"),
            ("/", "/"),
            ("/../etc", "/etc"),
            ("~", "~"),
            ("~/", "~"),
            ("~/.npm", "~/.npm"),
            ("~/../x", "~/../x"),
            (".", "."),
            ("./", "."),
            ("~user", "~user"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "input {input}");
        }
    }

    #[test]
    fn pathset_ignores_order_and_duplicates() {
        let a = PathSet::new(&["node_modules", "~/.npm/"]).unwrap();
        let b = PathSet::new(&["~/.npm", "./node_modules", "node_modules"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 16);
        let c = PathSet::new(&["node_modules"]).unwrap();
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn scope_names() {
        assert_eq!(Scope::parse("trusted"), Ok(Scope::Trusted));
        assert_eq!(Scope::parse("pr-42"), Ok(Scope::Untrusted("pr-42".into())));
        for bad in ["", ".hidden", "a/b", "pr 42", "ключ", &"x".repeat(101)] {
            assert_eq!(
                Scope::parse(bad),
                Err(ScopeError::Invalid(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(Scope::untrusted("trusted").is_err());
        assert!(Scope::parse("TRUSTED").is_err());
        assert!(Scope::parse("Trusted").is_err());
        assert!(Scope::parse(&"x".repeat(100)).is_ok());
        let pr = Scope::Untrusted("pr-42".into());
        assert_eq!(pr.dir(), "untrusted/pr-42/");
        assert_eq!(
            Scope::split_dir("untrusted/pr-42/v1/x/k"),
            Some((pr, "v1/x/k"))
        );
        assert_eq!(Scope::split_dir("v1/x/k"), Some((Scope::Trusted, "v1/x/k")));
        assert_eq!(Scope::split_dir("untrusted/.x/v1/x/k"), None);
        assert_eq!(Scope::split_dir("untrusted/pr-42"), None);
    }

    #[test]
    fn resolve_expands_home_and_cwd() {
        let set = PathSet::new(&["~/.npm", "node_modules", "/opt/x", "~"]).unwrap();
        let got = set
            .resolve(Path::new("/src"), Some(Path::new("/home/u")))
            .unwrap();
        // sorted order: "/opt/x", "node_modules", "~", "~/.npm"
        assert_eq!(
            got,
            vec![
                PathBuf::from("/opt/x"),
                PathBuf::from("/src/node_modules"),
                PathBuf::from("/home/u"),
                PathBuf::from("/home/u/.npm"),
            ]
        );
        assert!(matches!(
            set.resolve(Path::new("/src"), None),
            Err(Error::NoHome { .. })
        ));
    }
}
