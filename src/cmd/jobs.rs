//! Which caches a save or restore acts on: the one given by `--key`/`--path`, or every cache
//! (or the `--cache` ones) configured in cachectl.toml, with their templates resolved.

use super::Error;
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

pub struct Plan {
    pub jobs: Vec<Job>,
    /// `[metrics]` of cachectl.toml; `None` for a plain `--key`.
    pub metrics: Option<MetricsConfig>,
}

/// `--config`, else `cachectl.toml` in the working directory.
pub fn config_path(config: Option<&Path>, cwd: &Path) -> PathBuf {
    config.map_or_else(|| cwd.join("cachectl.toml"), Path::to_path_buf)
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
    if let Some(key) = key {
        let paths = PathSet::new(paths).map_err(|e| Error::usage(e.to_string(), None))?;
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
        });
    }
    let path = config_path(config, cwd);
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
    })
}
