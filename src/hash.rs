//! `hash-files`: glob patterns -> sorted relative paths -> one blake3 over (path, length, bytes).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid glob `{pattern}`: {source}")]
    Glob {
        pattern: String,
        source: globset::Error,
    },
    #[error("glob `{0}` is absolute; patterns are relative to the working directory")]
    Absolute(String),
    #[error("glob `{0}` climbs out of the working directory with `..`")]
    Parent(String),
    #[error("no pattern to include (only `!` exclusions were given)")]
    OnlyExcludes,
    #[error("no file matches {patterns} under {}", cwd.display())]
    NoMatch { patterns: String, cwd: PathBuf },
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::NoMatch { .. } => Some(
                "check the lockfile name and the working directory; an empty hash would make every build share one key"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// What a set of patterns selects: include globs minus `!` exclude globs.
pub struct Patterns {
    raw: Vec<String>,
    include: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

fn glob(p: &str) -> Result<Glob, Error> {
    // `*` and `?` stop at `/`; only `**` crosses directories, as in .gitignore and actions/cache.
    GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|source| Error::Glob {
            pattern: p.to_owned(),
            source,
        })
}

impl Patterns {
    pub fn new<S: AsRef<str>>(raw: &[S]) -> Result<Self, Error> {
        let mut include = Vec::new();
        let mut inc = GlobSetBuilder::new();
        let mut exc = GlobSetBuilder::new();
        for p in raw {
            let p = p.as_ref();
            let (negated, body) = match p.strip_prefix('!') {
                Some(b) => (true, b),
                None => (false, p),
            };
            let body = body.strip_prefix("./").unwrap_or(body);
            if body.starts_with('/') {
                return Err(Error::Absolute(p.to_owned()));
            }
            if Path::new(body)
                .components()
                .any(|c| c == Component::ParentDir)
            {
                return Err(Error::Parent(p.to_owned()));
            }
            if negated {
                exc.add(glob(body)?);
            } else {
                inc.add(glob(body)?);
                include.push(body.to_owned());
            }
        }
        if include.is_empty() {
            return Err(Error::OnlyExcludes);
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|source| Error::Glob {
                pattern: raw.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(" "),
                source,
            })
        };
        Ok(Patterns {
            raw: raw.iter().map(|s| s.as_ref().to_owned()).collect(),
            include,
            include_set: build(inc)?,
            exclude_set: build(exc)?,
        })
    }

    fn selects(&self, rel: &str) -> bool {
        self.include_set.is_match(rel) && !self.exclude_set.is_match(rel)
    }

    /// Every selected file below `cwd`, as `/`-separated relative paths in byte order.
    pub fn matches(&self, cwd: &Path) -> Result<BTreeSet<String>, Error> {
        let mut found = BTreeSet::new();
        let mut bases: Vec<String> = self.include.iter().map(|p| literal_base(p)).collect();
        bases.sort();
        bases.dedup();
        // A base inside another base would be walked twice.
        let mut walked: Vec<String> = Vec::new();
        for base in bases {
            if walked
                .iter()
                .any(|w| w.is_empty() || base == *w || base.starts_with(&format!("{w}/")))
            {
                continue;
            }
            walked.push(base.clone());
            let start = if base.is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(&base)
            };
            // Trees a restore is swapping in or a background removal is deleting are
            // cachectl's, not the build's: walking them would race their removal.
            let walk = walkdir::WalkDir::new(&start)
                .follow_links(false)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !in_flight(e.file_name()));
            for entry in walk {
                let entry = match entry {
                    Ok(e) => e,
                    // A literal base that does not exist simply matches nothing.
                    Err(e) if e.depth() == 0 && is_not_found(&e) => break,
                    // Deleted while walked (another process's temp files): it is not there.
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => {
                        let path = e.path().unwrap_or(&start).to_path_buf();
                        return Err(Error::Io {
                            path,
                            source: e.into(),
                        });
                    }
                };
                let is_file = entry.file_type().is_file()
                    || (entry.path_is_symlink()
                        && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()));
                if !is_file {
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(cwd) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                if self.selects(rel) {
                    found.insert(rel.to_owned());
                }
            }
        }
        if found.is_empty() {
            return Err(Error::NoMatch {
                patterns: self
                    .raw
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                cwd: cwd.to_path_buf(),
            });
        }
        Ok(found)
    }
}

/// A restore's staging tree or the trash of a replaced one (`archive::place`).
fn in_flight(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    [
        crate::archive::place::STAGING_PREFIX,
        crate::archive::place::TRASH_PREFIX,
    ]
    .iter()
    .any(|p| name.starts_with(p.as_bytes()))
}

fn is_not_found(e: &walkdir::Error) -> bool {
    e.io_error()
        .is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
}

/// The leading directories of a pattern that hold no glob syntax: where its walk starts.
fn literal_base(pattern: &str) -> String {
    let comps: Vec<&str> = pattern.split('/').collect();
    let mut base = Vec::new();
    // The last component is the file-name part; it never narrows the walk to a directory.
    for c in &comps[..comps.len().saturating_sub(1)] {
        if c.contains(['*', '?', '[', '{', '\\']) {
            break;
        }
        base.push(*c);
    }
    base.join("/")
}

/// The digest of the given files (paths relative to `cwd`, already in the order to hash).
///
/// Each file contributes its path, a NUL, its length as u64 LE, then its bytes, so moving bytes
/// between files or renaming a file always changes the digest.
pub fn digest_files<'a>(
    cwd: &Path,
    files: impl IntoIterator<Item = &'a String>,
) -> Result<blake3::Hash, Error> {
    let mut h = blake3::Hasher::new();
    for rel in files {
        let path = cwd.join(rel);
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        h.update(rel.as_bytes());
        h.update(&[0]);
        h.update(&len.to_le_bytes());
        h.update_reader(io::Read::take(file, len)).map_err(io_err)?;
    }
    Ok(h.finalize())
}

/// `cachectl hash-files`: the hex digest over everything the patterns select.
pub fn hash_patterns<S: AsRef<str>>(cwd: &Path, patterns: &[S]) -> Result<String, Error> {
    let pats = Patterns::new(patterns)?;
    let files = pats.matches(cwd)?;
    Ok(digest_files(cwd, &files)?.to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let path = dir.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn selection_table() {
        let dir = tree(&[
            ("package-lock.json", "a"),
            ("app/package-lock.json", "b"),
            ("app/node_modules/x/package-lock.json", "c"),
            ("Cargo.lock", "d"),
            ("crates/a/Cargo.lock", "e"),
            ("x1.txt", "f"),
            ("x22.txt", "g"),
        ]);
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("literal", &["package-lock.json"], &["package-lock.json"]),
            (
                "double star",
                &["**/package-lock.json"],
                &[
                    "app/node_modules/x/package-lock.json",
                    "app/package-lock.json",
                    "package-lock.json",
                ],
            ),
            (
                "exclusion",
                &["**/package-lock.json", "!**/node_modules/**"],
                &["app/package-lock.json", "package-lock.json"],
            ),
            ("star stays in dir", &["*.lock"], &["Cargo.lock"]),
            ("question mark", &["x?.txt"], &["x1.txt"]),
            (
                "literal base dir",
                &["crates/**/Cargo.lock"],
                &["crates/a/Cargo.lock"],
            ),
            ("dot slash", &["./Cargo.lock"], &["Cargo.lock"]),
        ];
        for (name, pats, want) in cases {
            let got: Vec<String> = Patterns::new(pats)
                .unwrap()
                .matches(dir.path())
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, *want, "case {name}");
        }
    }

    #[test]
    fn trees_cachectl_is_swapping_or_removing_are_not_hashed() {
        let t = tree(&[
            ("package-lock.json", "{}"),
            (
                ".cachectl-trash-12-0/node_modules/x/package-lock.json",
                "old",
            ),
            (".cachectl-staging-12-0/package-lock.json", "new"),
        ]);
        let set = Patterns::new(&["**/package-lock.json"]).unwrap();
        assert_eq!(
            set.matches(t.path())
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["package-lock.json"]
        );
    }

    #[test]
    fn no_match_names_patterns() {
        let dir = tree(&[("a.txt", "x")]);
        let err = hash_patterns(dir.path(), &["missing.lock", "other/**"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`missing.lock`") && msg.contains("`other/**`"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(matches!(
            Patterns::new(&["/etc/passwd"]),
            Err(Error::Absolute(_))
        ));
        assert!(matches!(Patterns::new(&["../x"]), Err(Error::Parent(_))));
        assert!(matches!(Patterns::new(&["!a"]), Err(Error::OnlyExcludes)));
        assert!(matches!(
            Patterns::new(&["a[".to_owned()]),
            Err(Error::Glob { .. })
        ));
    }

    #[test]
    fn digest_sensitivity() {
        let base = tree(&[("a.lock", "one"), ("b.lock", "two")]);
        let d0 = hash_patterns(base.path(), &["*.lock"]).unwrap();
        assert_eq!(d0.len(), 64);
        assert_eq!(d0, hash_patterns(base.path(), &["*.lock"]).unwrap());
        // Bytes moved from one file to the other keep the concatenation but change the digest.
        let moved = tree(&[("a.lock", "on"), ("b.lock", "etwo")]);
        assert_ne!(d0, hash_patterns(moved.path(), &["*.lock"]).unwrap());
        let renamed = tree(&[("a.lock", "one"), ("c.lock", "two")]);
        assert_ne!(d0, hash_patterns(renamed.path(), &["*.lock"]).unwrap());
        let changed = tree(&[("a.lock", "one"), ("b.lock", "twO")]);
        assert_ne!(d0, hash_patterns(changed.path(), &["*.lock"]).unwrap());
    }
}
