//! Which caches a save or restore acts on: the one given by `--key`/`--path`, or every cache
//! (or the `--cache` ones) configured in cachectl.toml, with their templates resolved.

use super::Failure;
use crate::cli::SelectArgs;
use crate::config::{self, TemplateContext, When};
use crate::error::code;
use crate::key::{CacheKey, PathSet};
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
    /// True when the key came from `--key` rather than cachectl.toml.
    pub explicit: bool,
}

pub struct Plan {
    pub jobs: Vec<Job>,
    pub metrics_namespace: Option<String>,
    pub metrics_enabled: bool,
}

/// A failure to plan, with the exit status it deserves (usage vs configuration).
pub struct PlanError {
    pub failure: Failure,
    pub status: u8,
}

fn usage(cause: String, hint: Option<String>) -> PlanError {
    PlanError {
        failure: Failure { cause, hint },
        status: code::USAGE,
    }
}

pub fn config_path(select: &SelectArgs, cwd: &Path) -> PathBuf {
    select
        .config
        .clone()
        .unwrap_or_else(|| cwd.join("cachectl.toml"))
}

pub fn plan(
    key: Option<&CacheKey>,
    paths: &[String],
    restore_keys: &[CacheKey],
    select: &SelectArgs,
    cwd: &Path,
) -> Result<Plan, PlanError> {
    if let Some(key) = key {
        let paths = PathSet::new(paths).map_err(|e| usage(e.to_string(), None))?;
        return Ok(Plan {
            jobs: vec![Job {
                name: key.family().to_owned(),
                key: key.clone(),
                restore_keys: restore_keys.to_vec(),
                paths,
                family: key.family().to_owned(),
                when: None,
                level: None,
                explicit: true,
            }],
            metrics_namespace: None,
            metrics_enabled: true,
        });
    }
    let path = config_path(select, cwd);
    if !path.exists() {
        return Err(usage(
            format!(
                "no --key given and no cache configuration at {}",
                path.display()
            ),
            Some("pass --key KEY --path PATH, or write a cachectl.toml (see buildspecs/)".into()),
        ));
    }
    let cfg = config::load(&path).map_err(|e| PlanError {
        failure: e.into(),
        status: code::FAILED,
    })?;
    for wanted in &select.caches {
        if !cfg.caches.iter().any(|c| &c.name == wanted) {
            let known: Vec<_> = cfg.caches.iter().map(|c| c.name.as_str()).collect();
            return Err(usage(
                format!("--cache {wanted}: no such cache in {}", path.display()),
                Some(format!("configured caches: {}", known.join(", "))),
            ));
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let ctx = TemplateContext::from_system(cwd, &env);
    let mut jobs = Vec::new();
    for spec in &cfg.caches {
        if !select.caches.is_empty() && !select.caches.contains(&spec.name) {
            continue;
        }
        let failed = |f: Failure| PlanError {
            failure: f,
            status: code::FAILED,
        };
        let resolved = config::resolve(spec, &ctx).map_err(|e| failed(e.into()))?;
        let paths = PathSet::new(&resolved.paths).map_err(|e| failed(e.into()))?;
        jobs.push(Job {
            name: resolved.name,
            key: resolved.key,
            restore_keys: resolved.restore_keys,
            paths,
            family: config::family_of(spec),
            when: Some(resolved.when),
            level: resolved.level,
            explicit: false,
        });
    }
    Ok(Plan {
        jobs,
        metrics_namespace: Some(cfg.metrics.namespace.clone()),
        metrics_enabled: cfg.metrics.enabled,
    })
}
