//! `cachectl.toml`: named caches with key templates and presets, `[metrics]`, an opaque
//! `[prune]`; parsed strictly (a typo must fail loudly, not silently disable a cache).
//!
//! ```toml
//! [cache.deps]
//! preset = "npm"                       # paths, key and restore-keys from the preset
//!
//! [cache.tools]
//! key = "tools-{{ os }}-{{ arch }}-{{ hashFiles 'tools/versions.txt' }}"
//! restore-keys = ["tools-{{ os }}-{{ arch }}-"]
//! paths = ["~/.local/tools"]
//! when = "always"                      # save after failed builds too (default "success")
//! level = 19                           # zstd level, 1..=19
//! merge = ["~/.local/tools"]           # restore over what is there (default: replace exactly)
//!
//! [metrics]
//! namespace = "Cachectl"
//! enabled = true
//!
//! [trust]                              # see config/trust.rs
//! trusted-refs = ["branch/main"]
//! public-keys = ["ed25519:…"]
//! require-signature = true
//! ```
//!
//! Preset merge: `key`, `restore-keys` and `paths` given in the file replace the preset's.
//! A cache that overrides `key` but not `restore-keys` falls back to its own key's text
//! before the first `{{ hashFiles }}` (not the preset's prefix, which would keep restoring
//! the entries an edited key was meant to leave behind).

mod file;
pub mod platform;
pub mod presets;
pub mod provision;
mod source;
pub mod template;
pub mod trust;

pub use template::{process_env, TemplateContext};

use crate::key::CacheKey;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A whole `cachectl.toml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// In file order.
    pub caches: Vec<CacheSpec>,
    /// `[prune]`, uninterpreted: the prune command validates it.
    pub prune: Option<toml::Table>,
    pub metrics: MetricsConfig,
    /// `[provision]`, if the file has one.
    pub provision: Option<provision::ProvisionSettings>,
    /// `[trust]`, or its defaults.
    pub trust: trust::TrustSettings,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// CloudWatch namespace (default `Cachectl`).
    pub namespace: String,
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            namespace: crate::metrics::NAMESPACE.to_owned(),
            enabled: true,
        }
    }
}

/// When `save` stores a cache, judged by the build's outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// Only after a successful build (the default: a failed install may leave a broken tree).
    #[default]
    Success,
    /// Only after a failed build.
    Failure,
    /// After every build.
    Always,
}

impl When {
    /// The names `when =` and `--when` take.
    pub const NAMES: [&'static str; 3] = ["success", "failure", "always"];

    pub fn as_str(self) -> &'static str {
        match self {
            When::Success => "success",
            When::Failure => "failure",
            When::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<When> {
        [When::Success, When::Failure, When::Always]
            .into_iter()
            .find(|w| w.as_str() == s)
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[cache.NAME]` after the preset merge, templates not yet expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub name: String,
    pub key: String,
    pub restore_keys: Vec<String>,
    pub paths: Vec<String>,
    /// The paths (normalized) a restore merges into; it replaces the others exactly.
    pub merge: Vec<String>,
    pub when: When,
    pub level: Option<i32>,
    pub preset: Option<String>,
}

/// A cache with its key templates expanded for this machine and checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCache {
    pub name: String,
    pub key: CacheKey,
    pub restore_keys: Vec<CacheKey>,
    pub paths: Vec<String>,
    pub merge: Vec<String>,
    pub when: When,
    pub level: Option<i32>,
}

/// Where in a config file something is: `origin:line:column` (1-based; column in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    /// `(line, column)`, when known.
    pub line_column: Option<(u32, u32)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.origin),
            None => f.write_str(&self.origin),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not exist: callers may treat this differently from a broken file.
    #[error("config file {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{at}: invalid TOML: {message}")]
    Syntax { at: Location, message: String },
    #[error("{at}: unknown key `{key}` in {table}{}", did_you_mean(.suggestion))]
    UnknownKey {
        at: Location,
        table: String,
        key: String,
        suggestion: Option<&'static str>,
        allowed: &'static [&'static str],
    },
    #[error("{at}: {table}: `{key}` {problem}")]
    Invalid {
        at: Location,
        table: String,
        key: String,
        problem: String,
    },
    #[error("{at}: invalid cache name `{name}`: use only letters, digits, `_` and `-`")]
    CacheName { at: Location, name: String },
    #[error("{at}: cache `{cache}`: unknown preset `{preset}`{}", did_you_mean(.suggestion))]
    UnknownPreset {
        at: Location,
        cache: String,
        preset: String,
        suggestion: Option<&'static str>,
    },
    #[error("{at}: cache `{cache}` has no `preset` and no {missing}")]
    Incomplete {
        at: Location,
        cache: String,
        missing: &'static str,
    },
    #[error("{}cache `{cache}`: {field}, character {pos}: {problem}", at_prefix(.at))]
    Template {
        at: Option<Location>,
        cache: String,
        /// `key` or `restore-keys[i]` (0-based, as in the file's array).
        field: String,
        /// 1-based character position in the template text.
        pos: usize,
        /// The preset the template came from, if any.
        preset: Option<&'static str>,
        // Boxed: hash errors are large, and every config Result would carry their size.
        #[source]
        problem: Box<template::Problem>,
    },
    #[error("cache `{cache}`: {field} expands to `{}`, which is not a valid key: {source}", .expanded.escape_debug())]
    InvalidKey {
        cache: String,
        field: String,
        expanded: String,
        source: crate::key::Error,
    },
}

/// `; did you mean `key`?` when there is a suggestion, else nothing.
fn did_you_mean(s: &Option<&str>) -> String {
    s.map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo:
/// optimal string alignment distance (edits plus adjacent swaps), case-insensitive, at most 1
/// for names of up to 4 characters and 2 for longer ones.
fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let word = word.to_lowercase();
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|&c| (strsim::osa_distance(&word, &c.to_lowercase()), c))
        .filter(|&(d, c)| d <= if c.len() <= 4 { 1 } else { 2 })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn at_prefix(at: &Option<Location>) -> String {
    at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default()
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::NotFound { .. } => Some(
                "create cachectl.toml at the source root, or point --config / CACHECTL_CONFIG at the file"
                    .into(),
            ),
            Error::UnknownKey { allowed, .. } => Some(format!(
                "allowed here: {}; unknown keys are errors so a typo cannot silently turn a cache off",
                allowed.join(", ")
            )),
            Error::UnknownPreset { .. } => {
                Some(format!("presets: {}", presets::names().join(", ")))
            }
            Error::Incomplete { .. } => Some(format!(
                "add `preset = \"npm\"` (presets: {}) or give both `key` and `paths`",
                presets::names().join(", ")
            )),
            Error::Template {
                problem,
                preset: Some(preset),
                ..
            } if matches!(
                **problem,
                template::Problem::HashFiles(crate::hash::Error::NoMatch { .. })
            ) =>
            {
                presets::get(preset).map(|p| {
                let patterns: Vec<String> = p.lockfiles.iter().map(|l| format!("`{l}`")).collect();
                format!(
                    "preset `{preset}` hashes {}: run cachectl where the lockfile is and commit it, or set `key` for this cache",
                    patterns.join(" ")
                )
            })
            }
            Error::Template { problem, .. } => crate::error::Hint::hint(problem.as_ref()),
            Error::InvalidKey { .. } => Some(
                "keys are 1-250 bytes without control characters; check literal text and env values in the template"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Reads and parses a config file; [`Error::NotFound`] if it does not exist.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            path: path.to_path_buf(),
        },
        _ => Error::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses config text; `origin` names it in errors (usually the file path).
pub fn parse(text: &str, origin: &str) -> Result<Config, Error> {
    file::parse(text, origin)
}

/// A template error in `field` of `spec`, `at` its place in the file when known.
fn template_error(
    spec: &CacheSpec,
    at: Option<Location>,
    field: String,
    e: template::TemplateError,
) -> Error {
    Error::Template {
        at,
        cache: spec.name.clone(),
        field,
        pos: e.pos,
        preset: spec
            .preset
            .as_deref()
            .and_then(presets::get)
            .map(|p| p.name),
        problem: Box::new(e.problem),
    }
}

/// Expands a cache's key and restore-keys for this checkout and machine.
pub fn resolve(spec: &CacheSpec, ctx: &TemplateContext<'_>) -> Result<ResolvedCache, Error> {
    let expand = |field: String, text: &str| -> Result<CacheKey, Error> {
        let expanded = template::parse(text)
            .and_then(|t| t.expand(ctx))
            .map_err(|e| template_error(spec, None, field.clone(), e))?;
        CacheKey::new(&expanded).map_err(|source| Error::InvalidKey {
            cache: spec.name.clone(),
            field,
            expanded,
            source,
        })
    };
    Ok(ResolvedCache {
        name: spec.name.clone(),
        key: expand("key".into(), &spec.key)?,
        restore_keys: spec
            .restore_keys
            .iter()
            .enumerate()
            .map(|(i, r)| expand(format!("restore-keys[{i}]"), r))
            .collect::<Result<_, _>>()?,
        paths: spec.paths.clone(),
        merge: spec.merge.clone(),
        when: spec.when,
        level: spec.level,
    })
}

/// `<cache name>/<key template text before the first {{ hashFiles }}>` (the whole key
/// template if it has none): the group prune's keep-last counts entries in.
pub fn family_of(spec: &CacheSpec) -> String {
    format!("{}/{}", spec.name, template::prefix_before_hash(&spec.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;
    use std::fs;

    const ORIGIN: &str = "cachectl.toml";

    fn spec(name: &str, key: &str, restore: &[&str], paths: &[&str]) -> CacheSpec {
        CacheSpec {
            name: name.into(),
            key: key.into(),
            restore_keys: restore.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            merge: Vec::new(),
            when: When::Success,
            level: None,
            preset: None,
        }
    }

    fn npm(name: &str) -> CacheSpec {
        let p = presets::get("npm").unwrap();
        CacheSpec {
            preset: Some("npm".into()),
            merge: vec!["~/.npm".into()],
            ..spec(name, &p.key(), &[p.prefix], p.paths)
        }
    }

    fn ctx<'a>(cwd: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> TemplateContext<'a> {
        TemplateContext {
            cwd,
            env,
            os: "linux".into(),
            arch: "x64".into(),
            libc: "gnu".into(),
        }
    }

    #[test]
    fn parse_success_table() {
        let npm_key = presets::get("npm").unwrap().key();
        let cases: Vec<(&str, &str, Vec<CacheSpec>)> = vec![
            ("empty file", "", vec![]),
            ("preset only", "[cache.deps]\npreset = \"npm\"\n", vec![npm("deps")]),
            (
                "explicit cache with everything",
                r#"
                [cache.tools]
                key = "t-{{ os }}-{{ hashFiles 'v.txt' }}"
                restore-keys = ["t-{{ os }}-", "t-"]
                paths = ["~/.tools", "bin/"]
                when = "always"
                level = 19
                "#,
                vec![CacheSpec {
                    when: When::Always,
                    level: Some(19),
                    ..spec(
                        "tools",
                        "t-{{ os }}-{{ hashFiles 'v.txt' }}",
                        &["t-{{ os }}-", "t-"],
                        &["~/.tools", "bin/"],
                    )
                }],
            ),
            (
                "no restore-keys means none without a preset",
                "[cache.a]\nkey = \"k-{{ hashFiles 'x' }}\"\npaths = [\"p\"]\nwhen = \"failure\"\n",
                vec![CacheSpec {
                    when: When::Failure,
                    ..spec("a", "k-{{ hashFiles 'x' }}", &[], &["p"])
                }],
            ),
            (
                "preset paths overridden",
                "[cache.deps]\npreset = \"npm\"\npaths = [\"node_modules\"]\n",
                vec![CacheSpec {
                    paths: vec!["node_modules".into()],
                    merge: vec![],
                    ..npm("deps")
                }],
            ),
            (
                "preset key overridden: restore-keys follow the new key",
                "[cache.deps]\npreset = \"npm\"\nkey = \"npm2-{{ arch }}-{{ hashFiles 'package-lock.json' }}\"\n",
                vec![CacheSpec {
                    key: "npm2-{{ arch }}-{{ hashFiles 'package-lock.json' }}".into(),
                    restore_keys: vec!["npm2-{{ arch }}-".into()],
                    ..npm("deps")
                }],
            ),
            (
                "preset key overridden without hashFiles: no restore-keys",
                "[cache.deps]\npreset = \"npm\"\nkey = \"fixed\"\n",
                vec![CacheSpec {
                    key: "fixed".into(),
                    restore_keys: vec![],
                    ..npm("deps")
                }],
            ),
            (
                "preset restore-keys overridden with none",
                "[cache.deps]\npreset = \"npm\"\nrestore-keys = []\nlevel = 3\n",
                vec![CacheSpec {
                    restore_keys: vec![],
                    level: Some(3),
                    ..npm("deps")
                }],
            ),
            (
                "file order kept, not name order",
                "[cache.zeta]\npreset = \"npm\"\n[cache.alpha]\npreset = \"npm\"\n[cache.mid]\npreset = \"npm\"\n",
                vec![npm("zeta"), npm("alpha"), npm("mid")],
            ),
            (
                "dotted keys and inline tables",
                "cache.b = { preset = \"npm\" }\ncache.a.preset = \"npm\"\n",
                vec![npm("b"), npm("a")],
            ),
        ];
        for (name, text, want) in cases {
            let got = parse(text, ORIGIN).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(got.caches, want, "case {name}");
            assert_eq!(got.metrics, MetricsConfig::default(), "case {name}");
            assert_eq!(got.prune, None, "case {name}");
        }
        assert!(npm_key.contains("hashFiles 'package-lock.json'"));
    }

    #[test]
    fn metrics_and_prune() {
        let text = r#"
            [prune]
            keep-last = 3
            anything = { goes = ["here"] }

            [metrics]
            namespace = "Team/CI"
            enabled = false
        "#;
        let c = parse(text, ORIGIN).unwrap();
        assert_eq!(
            c.metrics,
            MetricsConfig {
                namespace: "Team/CI".into(),
                enabled: false
            }
        );
        let prune = c.prune.unwrap();
        assert_eq!(prune.get("keep-last"), Some(&toml::Value::Integer(3)));
        assert!(prune.contains_key("anything"));
        // An empty [metrics] keeps the defaults.
        let c = parse("[metrics]\n", ORIGIN).unwrap();
        assert_eq!(c.metrics, MetricsConfig::default());
    }

    #[test]
    fn parse_failure_table() {
        // (name, text, fragments the one-line message must contain)
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "typo in a cache key",
                "[cache.node]\npreset = \"npm\"\nkeyy = \"x\"\n",
                &["cachectl.toml:3:1: unknown key `keyy` in cache `node`; did you mean `key`?"],
            ),
            (
                "underscore instead of dash",
                "[cache.node]\npreset = \"npm\"\nrestore_keys = []\n",
                &["3:1: unknown key `restore_keys` in cache `node`; did you mean `restore-keys`?"],
            ),
            (
                "unknown key without a suggestion",
                "[cache.node]\npreset = \"npm\"\n  compression = 3\n",
                &["3:3: unknown key `compression` in cache `node`"],
            ),
            (
                "unknown key in a nested table",
                "[cache.node]\npreset = \"npm\"\n[cache.node.extra]\nx = 1\n",
                &["3:13: unknown key `extra` in cache `node`"],
            ),
            (
                "unknown top-level table",
                "[caches.node]\npreset = \"npm\"\n",
                &["1:2: unknown key `caches` in the top level; did you mean `cache`?"],
            ),
            (
                "unknown metrics key",
                "[metrics]\nenable = false\n",
                &["2:1: unknown key `enable` in [metrics]; did you mean `enabled`?"],
            ),
            (
                "bad cache name",
                "[cache.\"my cache\"]\npreset = \"npm\"\n",
                &["1:8: invalid cache name `my cache`"],
            ),
            (
                "empty cache name",
                "[cache.\"\"]\npreset = \"npm\"\n",
                &["invalid cache name ``"],
            ),
            (
                "cache not a table",
                "cache.node = \"npm\"\n",
                &["1:14: [cache]: `node` must be a table ([cache.NAME]), not a string"],
            ),
            (
                "cache array of tables",
                "[[cache]]\npreset = \"npm\"\n",
                &["the top level: `cache` must be a table ([cache.NAME]), not an array"],
            ),
            (
                "unknown preset",
                "[cache.node]\npreset = \"nmp\"\n",
                &["2:10: cache `node`: unknown preset `nmp`; did you mean `npm`?"],
            ),
            (
                "neither preset nor key",
                "[cache.node]\nwhen = \"always\"\n",
                &["1:8: cache `node` has no `preset` and no `key` and `paths`"],
            ),
            (
                "key without paths",
                "[cache.node]\nkey = \"k\"\n",
                &["cache `node` has no `preset` and no `paths`"],
            ),
            (
                "paths without key",
                "[cache.node]\npaths = [\"p\"]\n",
                &["cache `node` has no `preset` and no `key`"],
            ),
            (
                "bad when",
                "[cache.c]\npreset = \"npm\"\nwhen = \"sometimes\"\n",
                &["3:8: cache `c`: `when` is `sometimes`; expected"],
            ),
            (
                "level too high",
                "[cache.c]\npreset = \"npm\"\nlevel = 22\n",
                &["3:9: cache `c`: `level` must be a zstd level from 1 to 19, not 22"],
            ),
            (
                "level zero",
                "[cache.c]\npreset = \"npm\"\nlevel = 0\n",
                &["from 1 to 19, not 0"],
            ),
            (
                "level as a string",
                "[cache.c]\npreset = \"npm\"\nlevel = \"3\"\n",
                &["from 1 to 19, not a string"],
            ),
            (
                "key not a string",
                "[cache.c]\nkey = 1\npaths = [\"p\"]\n",
                &["2:7: cache `c`: `key` must be a string, not an integer"],
            ),
            (
                "empty key",
                "[cache.c]\nkey = \"\"\npaths = [\"p\"]\n",
                &["cache `c`: `key` must not be empty"],
            ),
            (
                "paths not an array",
                "[cache.c]\npreset = \"npm\"\npaths = \"node_modules\"\n",
                &["`paths` must be an array of paths, not a string"],
            ),
            (
                "empty paths",
                "[cache.c]\npreset = \"npm\"\npaths = []\n",
                &["`paths` must name at least one path"],
            ),
            (
                "empty path",
                "[cache.c]\npreset = \"npm\"\npaths = [\"a\", \"\"]\n",
                &["`paths` has an empty path at index 1"],
            ),
            (
                "non-string restore key",
                "[cache.c]\npreset = \"npm\"\nrestore-keys = [\"a\", 2]\n",
                &["`restore-keys` must hold only key prefixes; index 1 is an integer"],
            ),
            (
                "template error in key",
                "[cache.c]\nkey = \"a-{{ hashfiles 'x' }}\"\npaths = [\"p\"]\n",
                &["cachectl.toml:2:7: cache `c`: key, character 6: unknown function `hashfiles`; did you mean `hashFiles`?"],
            ),
            (
                "template error in second restore key",
                "[cache.c]\npreset = \"npm\"\nrestore-keys = [\"ok-\", \"bad-}}\"]\n",
                &["3:24: cache `c`: restore-keys[1], character 5: `}}` without an opening `{{`"],
            ),
            (
                "unclosed template",
                "[cache.c]\nkey = \"k-{{ os\"\npaths = [\"p\"]\n",
                &["cache `c`: key, character 3: `{{` is never closed by `}}`"],
            ),
            (
                "metrics namespace reserved",
                "[metrics]\nnamespace = \"AWS/CodeBuild\"\n",
                &["2:13: [metrics]: `namespace` must not start with `:` or `AWS/`"],
            ),
            (
                "metrics enabled not a bool",
                "[metrics]\nenabled = \"yes\"\n",
                &["[metrics]: `enabled` must be true or false, not a string"],
            ),
            (
                "prune not a table",
                "prune = 3\n",
                &["the top level: `prune` must be a table ([prune]), not an integer"],
            ),
            (
                "toml syntax",
                "[cache.c]\npreset = npm\n",
                &["cachectl.toml:2:10: invalid TOML:"],
            ),
            (
                "duplicate cache",
                "[cache.c]\npreset = \"npm\"\n[cache.c]\npreset = \"yarn\"\n",
                &["cachectl.toml:3:", "invalid TOML:"],
            ),
        ];
        for (name, text, fragments) in cases {
            let msg = match parse(text, ORIGIN) {
                Ok(c) => panic!("case {name}: parsed as {c:?}"),
                Err(e) => e.to_string(),
            };
            assert!(!msg.contains('\n'), "case {name}: {msg}");
            for f in *fragments {
                assert!(msg.contains(f), "case {name}: {msg:?} lacks {f:?}");
            }
        }
    }

    #[test]
    fn resolve_table() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        let digest = crate::hash::hash_patterns(dir.path(), &["package-lock.json"]).unwrap();
        let env = |k: &str| match k {
            "BRANCH" => Some("main".to_owned()),
            "HUGE" => Some("x".repeat(300)),
            _ => None,
        };
        let c = ctx(dir.path(), &env);
        let ok = |s: CacheSpec| resolve(&s, &c).map_err(|e| e.to_string());
        let got = ok(npm("deps")).unwrap();
        assert_eq!(got.key.as_str(), format!("npm-linux-x64-gnu-{digest}"));
        assert_eq!(got.restore_keys[0].as_str(), "npm-linux-x64-gnu-");
        assert_eq!(got.paths, vec!["~/.npm", "node_modules"]);
        assert_eq!(got.name, "deps");

        let got = ok(spec("b", "b-{{ env.BRANCH }}", &["b-"], &["p"])).unwrap();
        assert_eq!(got.key.as_str(), "b-main");

        // (name, spec, fragments of the error)
        let cases: Vec<(&str, CacheSpec, &[&str])> = vec![
            (
                "env missing",
                spec("e", "k-{{ env.NOPE }}", &[], &["p"]),
                &["cache `e`: key, character 6: environment variable NOPE is not set"],
            ),
            (
                "env missing in a restore key",
                spec("e", "k", &["a", "{{env.NOPE}}-"], &["p"]),
                &["cache `e`: restore-keys[1], character 3: environment variable NOPE"],
            ),
            (
                "lockfile missing",
                spec("l", "l-{{ hashFiles 'yarn.lock' }}", &[], &["p"]),
                &["cache `l`: key, character 6: hashFiles: no file matches `yarn.lock`"],
            ),
            (
                "expanded key too long",
                spec("h", "{{ env.HUGE }}", &[], &["p"]),
                &["cache `h`: key expands to `xxx", "300 bytes"],
            ),
            (
                "expanded key with a control character",
                spec("t", "a\tb", &[], &["p"]),
                &["cache `t`: key expands to `a\\tb`", "control character"],
            ),
            (
                "template broken in a hand-made spec",
                spec("x", "{{ os", &[], &["p"]),
                &["cache `x`: key, character 1: `{{` is never closed"],
            ),
        ];
        for (name, s, fragments) in cases {
            let msg = match ok(s) {
                Ok(r) => panic!("case {name}: resolved to {r:?}"),
                Err(m) => m,
            };
            for f in fragments {
                assert!(msg.contains(f), "case {name}: {msg:?} lacks {f:?}");
            }
        }
    }

    #[test]
    fn from_system_context() {
        let env = |_: &str| None;
        let c = TemplateContext::from_system(Path::new("."), &env);
        assert_eq!(c.os, std::env::consts::OS);
        assert!(!c.arch.is_empty() && !c.libc.is_empty());
        let c = TemplateContext::from_system(Path::new("."), &process_env);
        assert!((c.env)("CACHECTL_SURELY_UNSET_VAR").is_none());
    }

    #[test]
    fn family_table() {
        let cases = [
            (
                "preset",
                npm("deps"),
                "deps/npm-{{ os }}-{{ arch }}-{{ libc }}-",
            ),
            (
                "no hashFiles",
                spec("fixed", "k-{{ os }}", &[], &["p"]),
                "fixed/k-{{ os }}",
            ),
            (
                "hash first",
                spec("h", "{{ hashFiles 'a' }}-x", &[], &["p"]),
                "h/",
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(family_of(&s), want, "case {name}");
        }
    }

    #[test]
    fn load_distinguishes_missing_from_broken() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("cachectl.toml");
        assert!(matches!(load(&missing), Err(Error::NotFound { path }) if path == missing));
        assert!(matches!(load(dir.path()), Err(Error::Read { .. })));
        fs::write(&missing, "[cache.x]\nkey = 1\n").unwrap();
        let msg = load(&missing).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}:2:7:", missing.display())),
            "{msg}"
        );
        fs::write(&missing, "[cache.x]\npreset = \"cargo\"\n").unwrap();
        assert_eq!(
            load(&missing).unwrap().caches[0].preset.as_deref(),
            Some("cargo")
        );
    }

    #[test]
    fn hints_table() {
        let dir = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let c = ctx(dir.path(), &no_env);
        let resolve_err = |s: CacheSpec| resolve(&s, &c).unwrap_err();
        let cases: Vec<(&str, Error, &str)> = vec![
            (
                "not found",
                load(&dir.path().join("nope.toml")).unwrap_err(),
                "CACHECTL_CONFIG",
            ),
            (
                "unknown key lists the allowed ones",
                parse("[cache.a]\nkye = 1\n", ORIGIN).unwrap_err(),
                "key, restore-keys, paths, preset, when, level",
            ),
            (
                "unknown preset lists presets",
                parse("[cache.a]\npreset = \"maven2\"\n", ORIGIN).unwrap_err(),
                "npm, yarn, pnpm",
            ),
            (
                "incomplete",
                parse("[cache.a]\n", ORIGIN).unwrap_err(),
                "preset = \"npm\"",
            ),
            (
                "preset lockfile missing",
                resolve_err(npm("deps")),
                "preset `npm` hashes `package-lock.json` `npm-shrinkwrap.json`: run cachectl where",
            ),
            (
                "hand-written lockfile missing",
                resolve_err(spec("a", "{{ hashFiles 'x.lock' }}", &[], &["p"])),
                "an empty hash would make every build share one key",
            ),
            (
                "env unset",
                resolve_err(spec("a", "{{ env.TOKEN }}", &[], &["p"])),
                "set TOKEN",
            ),
            (
                "commas in hashFiles",
                parse(
                    "[cache.a]\nkey = \"{{ hashFiles 'a', 'b' }}\"\npaths=[\"p\"]\n",
                    ORIGIN,
                )
                .unwrap_err(),
                "no parentheses or commas",
            ),
        ];
        for (name, err, fragment) in cases {
            let hint = err
                .hint()
                .unwrap_or_else(|| panic!("case {name}: no hint for {err}"));
            assert!(hint.contains(fragment), "case {name}: {hint}");
        }
    }

    #[test]
    fn when_names() {
        for (w, s) in [
            (When::Success, "success"),
            (When::Failure, "failure"),
            (When::Always, "always"),
        ] {
            assert_eq!(serde_json::to_string(&w).unwrap(), format!("\"{s}\""));
            assert_eq!(w.to_string(), s);
            assert_eq!(When::parse(s), Some(w));
            assert!(When::NAMES.contains(&s));
        }
    }
}
