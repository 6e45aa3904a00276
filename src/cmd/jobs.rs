//! Which caches a save or restore acts on: the one given by `--key`/`--path`, or every cache
//! (or the `--cache` ones) configured in cachectl.toml, with their templates resolved.

use super::Error;
use crate::config::trust::TrustSettings;
use crate::config::{self, MetricsConfig, TemplateContext, When};
use crate::key::{CacheKey, PathSet};
use crate::transfer::Placement;
use std::path::{Path, PathBuf};

/// One cache to save or restore.
#[derive(Debug, Clone)]
pub struct Job {
    /// The cache's name: its `[cache.NAME]`, or the key's family for a plain `--key`.
    pub name: String,
    pub key: CacheKey,
    pub restore_keys: Vec<CacheKey>,
    pub paths: PathSet,
    pub family: String,
    pub when: Option<When>,
    pub level: Option<i32>,
    /// The paths (normalized) a restore merges into; it replaces the others exactly.
    pub merge: Vec<String>,
    /// True when the key came from `--key` rather than cachectl.toml.
    pub explicit: bool,
}

impl Job {
    /// Where each path of the cache is restored, and how (`merge` for all of them with
    /// `--merge`, else as configured).
    pub fn destinations(
        &self,
        cwd: &Path,
        home: Option<&Path>,
        merge_all: bool,
    ) -> Result<Vec<(PathBuf, Placement)>, crate::key::Error> {
        let resolved = self.paths.resolve(cwd, home)?;
        Ok(resolved
            .into_iter()
            .zip(self.paths.paths())
            .map(|(dest, path)| {
                let merge = merge_all || self.merge.contains(path);
                let placement = if merge {
                    Placement::Merge
                } else {
                    Placement::Replace
                };
                (dest, placement)
            })
            .collect())
    }
}

/// Where `path` really is, for comparing destinations: absolute, `.` and `..` resolved, and
/// every symlink on the way followed, even one whose target does not exist yet
/// (`../w/nm/.cache` and `link/.cache` are the same place as `nm/.cache`, before a restore
/// has made `nm`).
pub fn real_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        crate::archive::place::lexical(path)
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                _ => None,
            })
            .collect();
    let mut out = PathBuf::from("/");
    // As the kernel does (ELOOP), give up following after 40 links.
    let mut hops = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        match std::fs::read_link(&next) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push_front(n.to_owned()),
                        Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = next,
        }
    }
    out
}

/// The order to restore caches in, as waves of indices into `dests` (each cache's destination
/// paths, made absolute): a cache with a path inside another cache's path (`node_modules/.cache`
/// inside `node_modules`) comes in a later wave than that cache, so its tree is placed over the
/// outer one rather than swapped away by it; two caches with the same path go in file order.
/// Caches that do not overlap share the first wave. Paths nested both ways between two caches
/// fall back to file order.
pub fn waves(dests: &[Vec<PathBuf>]) -> Vec<Vec<usize>> {
    let n = dests.len();
    let contains = |outer: &Path, inner: &Path| inner.starts_with(outer);
    let before = |i: usize, j: usize| {
        dests[i].iter().any(|a| {
            dests[j]
                .iter()
                .any(|b| (a != b && contains(a, b)) || (a == b && i < j))
        })
    };
    let mut deps: Vec<Vec<usize>> = (0..n)
        .map(|j| (0..n).filter(|&i| i != j && before(i, j)).collect())
        .collect();
    if (0..n).any(|j| deps[j].iter().any(|&i| deps[i].contains(&j))) {
        // Nested both ways: file order among the overlapping ones.
        let overlap = |i: usize, j: usize| before(i, j) || before(j, i);
        deps = (0..n)
            .map(|j| (0..j).filter(|&i| overlap(i, j)).collect())
            .collect();
    }
    let mut level: Vec<Option<usize>> = vec![None; n];
    // Longer cycles than two caches: levels are capped at n, file order decides the rest.
    for _ in 0..=n {
        for j in 0..n {
            if let Some(l) = deps[j]
                .iter()
                .map(|&i| level[i].map(|l| l + 1))
                .try_fold(0, |acc, l| l.map(|l| acc.max(l)))
            {
                level[j] = Some(l.min(n));
            }
        }
    }
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (j, l) in level.into_iter().enumerate() {
        let l = l.unwrap_or(n);
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(j);
    }
    out.retain(|w| !w.is_empty());
    out
}

pub struct Plan {
    pub jobs: Vec<Job>,
    /// `[metrics]` of cachectl.toml; `None` for a plain `--key`.
    pub metrics: Option<MetricsConfig>,
    /// `[trust]` of cachectl.toml, read for a plain `--key` too when the file exists: who may
    /// write what is the repository's policy, not the command line's.
    pub trust: TrustSettings,
}

/// `--config`, else `cachectl.toml` in the working directory.
pub fn config_path(config: Option<&Path>, cwd: &Path) -> PathBuf {
    config.map_or_else(|| cwd.join("cachectl.toml"), Path::to_path_buf)
}

/// [`config_path`] made absolute: how the restore → save state names the file a restore's
/// keys came from.
pub fn config_file(config: Option<&Path>, cwd: &Path) -> PathBuf {
    let path = config_path(config, cwd);
    std::path::absolute(&path).unwrap_or(path)
}

/// The caches to act on: the one given by `--key` and `--path`, else those configured in
/// `config` (all, or the `caches` named by `--cache`) with their templates resolved. Reads
/// the file and hashes lockfiles: call it off the async workers ([`super::blocking`]).
///
/// Errors: [`Error::Usage`] for a `--path` that is empty, no configuration without `--key`, an
/// unknown `--cache`; [`Error::Config`] / [`Error::Key`] for a configuration that does not load
/// or resolve.
pub fn plan(
    key: Option<&CacheKey>,
    paths: &[String],
    restore_keys: &[CacheKey],
    config: Option<&Path>,
    caches: &[String],
    cwd: &Path,
) -> Result<Plan, Error> {
    let path = config_path(config, cwd);
    if let Some(key) = key {
        let paths = PathSet::new(paths).map_err(|e| Error::usage(e.to_string(), None))?;
        let trust = if path.exists() {
            config::load(&path)?.trust
        } else {
            TrustSettings::default()
        };
        return Ok(Plan {
            jobs: vec![Job {
                name: key.family().to_owned(),
                key: key.clone(),
                restore_keys: restore_keys.to_vec(),
                paths,
                family: key.family().to_owned(),
                when: None,
                level: None,
                merge: Vec::new(),
                explicit: true,
            }],
            metrics: None,
            trust,
        });
    }
    if !path.exists() {
        return Err(Error::usage(
            format!(
                "no --key given and no cache configuration at {}",
                path.display()
            ),
            Some("pass --key KEY --path PATH, or write a cachectl.toml (see buildspecs/)".into()),
        ));
    }
    let cfg = config::load(&path)?;
    for wanted in caches {
        if !cfg.caches.iter().any(|c| &c.name == wanted) {
            let known: Vec<_> = cfg.caches.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::usage(
                format!("--cache {wanted}: no such cache in {}", path.display()),
                Some(format!("configured caches: {}", known.join(", "))),
            ));
        }
    }
    let ctx = TemplateContext::from_system(cwd, &config::process_env);
    let mut jobs = Vec::new();
    for spec in &cfg.caches {
        if !caches.is_empty() && !caches.contains(&spec.name) {
            continue;
        }
        let resolved = config::resolve(spec, &ctx)?;
        let paths = PathSet::new(&resolved.paths)?;
        jobs.push(Job {
            name: resolved.name,
            key: resolved.key,
            restore_keys: resolved.restore_keys,
            paths,
            family: config::family_of(spec),
            when: Some(resolved.when),
            level: resolved.level,
            merge: resolved.merge,
            explicit: false,
        });
    }
    Ok(Plan {
        jobs,
        metrics: Some(cfg.metrics),
        trust: cfg.trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&[&str]]) -> Vec<Vec<PathBuf>> {
        list.iter()
            .map(|ps| ps.iter().map(PathBuf::from).collect())
            .collect()
    }

    #[test]
    fn real_paths_follow_dots_and_links_that_do_not_resolve_yet() {
        let t = tempfile::tempdir().unwrap();
        let w = std::fs::canonicalize(t.path()).unwrap();
        std::os::unix::fs::symlink("node_modules", w.join("nm")).unwrap();
        std::os::unix::fs::symlink(w.join("abs-target"), w.join("abs")).unwrap();
        let cases = [
            (
                "plain",
                w.join("node_modules/.cache"),
                w.join("node_modules/.cache"),
            ),
            (
                "dots",
                w.join("x/../node_modules/./.cache"),
                w.join("node_modules/.cache"),
            ),
            (
                "dangling relative link",
                w.join("nm/.cache"),
                w.join("node_modules/.cache"),
            ),
            ("absolute link", w.join("abs/y"), w.join("abs-target/y")),
        ];
        for (name, path, want) in cases {
            assert_eq!(real_path(&path), want, "case {name}");
        }
    }

    #[test]
    fn nested_caches_restore_outer_first() {
        type Case<'a> = (&'a str, &'a [&'a [&'a str]], &'a [&'a [usize]]);
        let cases: &[Case] = &[
            ("apart", &[&["/w/a"], &["/w/b"]], &[&[0, 1]]),
            (
                "inner listed first",
                &[&["/w/nm/.cache"], &["/w/nm"]],
                &[&[1], &[0]],
            ),
            (
                "inner listed last",
                &[&["/w/nm"], &["/w/nm/.cache"]],
                &[&[0], &[1]],
            ),
            (
                "same path, file order",
                &[&["/w/x"], &["/w/x"]],
                &[&[0], &[1]],
            ),
            (
                "prefix of a name is not a parent",
                &[&["/w/nm"], &["/w/nm2"]],
                &[&[0, 1]],
            ),
            (
                "three deep, one apart",
                &[&["/w/a/b/c"], &["/w/z"], &["/w/a"], &["/w/a/b"]],
                &[&[1, 2], &[3], &[0]],
            ),
            (
                "nested both ways: file order",
                &[&["/w/x", "/w/y/z"], &["/w/y", "/w/x/w"]],
                &[&[0], &[1]],
            ),
        ];
        for (name, dests, want) in cases {
            let want: Vec<Vec<usize>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(waves(&paths(dests)), want, "case {name}");
        }
    }
}
