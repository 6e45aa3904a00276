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
//!
//! [metrics]
//! namespace = "Cachectl"
//! enabled = true
//! ```
//!
//! Preset merge: `key`, `restore-keys` and `paths` given in the file replace the preset's.
//! A cache that overrides `key` but not `restore-keys` falls back to its own key's text
//! before the first `{{ hashFiles }}` (not the preset's prefix, which would keep restoring
//! the entries an edited key was meant to leave behind).

pub mod platform;
pub mod presets;
pub mod template;

pub use template::{process_env, TemplateContext};

use crate::key::CacheKey;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// A whole `cachectl.toml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// In file order.
    pub caches: Vec<CacheSpec>,
    /// `[prune]`, uninterpreted: the prune command validates it.
    pub prune: Option<toml::Table>,
    pub metrics: MetricsConfig,
}

impl Config {
    pub fn cache(&self, name: &str) -> Option<&CacheSpec> {
        self.caches.iter().find(|c| c.name == name)
    }
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
            namespace: "Cachectl".to_owned(),
            enabled: true,
        }
    }
}

/// When `save` stores a cache, judged by the build's outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
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
    pub fn as_str(self) -> &'static str {
        match self {
            When::Success => "success",
            When::Failure => "failure",
            When::Always => "always",
        }
    }

    fn parse(s: &str) -> Option<When> {
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
    pub when: When,
    pub level: Option<i32>,
}

/// Where in a config file something is: `origin:line:column` (1-based; column in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    /// `(line, column)`, when known.
    pub line_column: Option<(usize, usize)>,
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
        preset: Option<String>,
        #[source]
        problem: template::Problem,
    },
    #[error("cache `{cache}`: {field} expands to `{}`, which is not a valid key: {source}", .expanded.escape_debug())]
    InvalidKey {
        cache: String,
        field: String,
        expanded: String,
        source: crate::key::Error,
    },
}

fn did_you_mean(s: &Option<&str>) -> String {
    s.map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
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
                problem: template::Problem::HashFiles(crate::hash::Error::NoMatch { .. }),
                preset: Some(preset),
                ..
            } => presets::get(preset).map(|p| {
                format!(
                    "preset `{preset}` keys on {}: run cachectl in the directory holding it, or set `key` to hash your lockfile",
                    p.lockfiles.join(" ")
                )
            }),
            Error::Template { problem, .. } => crate::error::Hint::hint(problem),
            Error::InvalidKey { .. } => Some(
                "keys are 1-250 bytes without control characters; check literal text and env values in the template"
                    .into(),
            ),
            _ => None,
        }
    }
}

const TOP_KEYS: &[&str] = &["cache", "prune", "metrics"];
const CACHE_KEYS: &[&str] = &["key", "restore-keys", "paths", "preset", "when", "level"];
const METRICS_KEYS: &[&str] = &["namespace", "enabled"];

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
    let src = Source::new(text, origin)?;
    let mut config = Config::default();
    for (key, value) in src.ordered(&src.root, &[]) {
        match key.as_str() {
            "cache" => {
                let caches = src.table(value, &[], "the top level", "cache", "[cache.NAME]")?;
                for (name, value) in src.ordered(caches, &["cache"]) {
                    config.caches.push(parse_cache(&src, name, value)?);
                }
            }
            "prune" => {
                config.prune = Some(
                    src.table(value, &[], "the top level", "prune", "[prune]")?
                        .clone(),
                );
            }
            "metrics" => {
                let t = src.table(value, &[], "the top level", "metrics", "[metrics]")?;
                config.metrics = parse_metrics(&src, t)?;
            }
            _ => return Err(src.unknown_key(&[], key, "the top level", TOP_KEYS)),
        }
    }
    Ok(config)
}

fn parse_metrics(src: &Source<'_>, t: &toml::Table) -> Result<MetricsConfig, Error> {
    let mut m = MetricsConfig::default();
    let path = ["metrics"];
    for (key, value) in src.ordered(t, &path) {
        let invalid = |problem: &str| src.invalid(&path, key, "[metrics]", problem);
        match key.as_str() {
            "namespace" => {
                let ns = value
                    .as_str()
                    .ok_or_else(|| invalid(&format!("must be a string, not {}", kind(value))))?;
                // CloudWatch's own rules: 1-255 ASCII characters, no control characters,
                // not starting with `:`, and `AWS/` is reserved for AWS services.
                if ns.is_empty() || ns.len() > 255 {
                    return Err(invalid("must be 1 to 255 characters"));
                }
                if !ns.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()) {
                    return Err(invalid("may hold only printable ASCII characters"));
                }
                if ns.starts_with(':') || ns.starts_with("AWS/") {
                    return Err(invalid(
                        "must not start with `:` or `AWS/` (reserved by CloudWatch)",
                    ));
                }
                m.namespace = ns.to_owned();
            }
            "enabled" => {
                m.enabled = value.as_bool().ok_or_else(|| {
                    invalid(&format!("must be true or false, not {}", kind(value)))
                })?;
            }
            _ => return Err(src.unknown_key(&path, key, "[metrics]", METRICS_KEYS)),
        }
    }
    Ok(m)
}

fn parse_cache(src: &Source<'_>, name: &str, value: &toml::Value) -> Result<CacheSpec, Error> {
    let path = ["cache", name];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::CacheName {
            at: src.key_location(&path),
            name: name.to_owned(),
        });
    }
    let table = src.table(value, &["cache"], "[cache]", name, "[cache.NAME]")?;
    let label = format!("cache `{name}`");
    for key in src.ordered(table, &path).into_iter().map(|(k, _)| k) {
        if !CACHE_KEYS.contains(&key.as_str()) {
            return Err(src.unknown_key(&path, key, &label, CACHE_KEYS));
        }
    }
    let invalid = |key: &str, problem: &str| src.invalid(&path, key, &label, problem);
    let string = |key: &str| -> Result<Option<&str>, Error> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.is_empty() => Err(invalid(key, "must not be empty")),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(invalid(key, &format!("must be a string, not {}", kind(v)))),
        }
    };
    let strings = |key: &str, what: &str, whats: &str| -> Result<Option<Vec<String>>, Error> {
        let Some(v) = table.get(key) else {
            return Ok(None);
        };
        let items = v.as_array().ok_or_else(|| {
            invalid(
                key,
                &format!("must be an array of {whats}, not {}", kind(v)),
            )
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.as_str() {
                Some("") => Err(invalid(key, &format!("has an empty {what} at index {i}"))),
                Some(s) => Ok(s.to_owned()),
                None => Err(invalid(
                    key,
                    &format!("must hold only {whats}; index {i} is {}", kind(item)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };

    let preset = match string("preset")? {
        None => None,
        Some(p) => Some(presets::get(p).ok_or_else(|| Error::UnknownPreset {
            at: src.value_location(&[&path[..], &["preset"]].concat()),
            cache: name.to_owned(),
            preset: p.to_owned(),
            suggestion: suggest(p, &presets::names()),
        })?),
    };
    let key = string("key")?.map(str::to_owned);
    let restore_keys = strings("restore-keys", "key prefix", "key prefixes")?;
    let paths = strings("paths", "path", "paths")?;
    if paths.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid("paths", "must name at least one path"));
    }
    let when = match string("when")? {
        None => When::default(),
        Some(w) => When::parse(w).ok_or_else(|| {
            invalid(
                "when",
                &format!("is `{w}`; expected \"success\", \"failure\" or \"always\""),
            )
        })?,
    };
    let level = match table.get("level") {
        None => None,
        Some(toml::Value::Integer(n)) if (1..=19).contains(n) => Some(*n as i32),
        Some(v) => {
            return Err(invalid(
                "level",
                &format!("must be a zstd level from 1 to 19, not {}", show(v)),
            ))
        }
    };

    let (key, restore_keys, paths) = match (preset, key, paths) {
        (Some(p), key, paths) => {
            let restore_keys = match (&key, restore_keys) {
                (_, Some(r)) => r,
                (Some(k), None) => derived_restore_keys(k),
                (None, None) => p.restore_keys(),
            };
            (
                key.unwrap_or_else(|| p.key()),
                restore_keys,
                paths.unwrap_or_else(|| p.paths()),
            )
        }
        (None, Some(key), Some(paths)) => (key, restore_keys.unwrap_or_default(), paths),
        (None, key, _) => {
            return Err(Error::Incomplete {
                at: src.key_location(&path),
                cache: name.to_owned(),
                missing: if key.is_some() {
                    "`paths`"
                } else if table.contains_key("paths") {
                    "`key`"
                } else {
                    "`key` and `paths`"
                },
            })
        }
    };

    let spec = CacheSpec {
        name: name.to_owned(),
        key,
        restore_keys,
        paths,
        when,
        level,
        preset: preset.map(|p| p.name.to_owned()),
    };
    // Check template syntax now, so a broken key fails at load time rather than mid-build.
    // Templates the preset supplied are located at `preset`.
    let origin_of = |field: &str| {
        let field = if table.contains_key(field) {
            field
        } else if table.contains_key("key") && field == "restore-keys" {
            "key"
        } else {
            "preset"
        };
        src.value_location(&[&path[..], &[field]].concat())
    };
    let check = |field: String, text: &str, located: &str| {
        template::parse(text)
            .map(|_| ())
            .map_err(|e| template_error(&spec, Some(origin_of(located)), field, e))
    };
    check("key".into(), &spec.key, "key")?;
    for (i, r) in spec.restore_keys.iter().enumerate() {
        check(format!("restore-keys[{i}]"), r, "restore-keys")?;
    }
    Ok(spec)
}

/// Restore-keys for a key given in the file: its text before the first `{{ hashFiles }}`;
/// none if it has no hashFiles (the prefix would be the key itself) or starts with one.
fn derived_restore_keys(key: &str) -> Vec<String> {
    let prefix = template::prefix_before_hash(key);
    if prefix.is_empty() || prefix == key {
        Vec::new()
    } else {
        vec![prefix.to_owned()]
    }
}

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
        preset: spec.preset.clone(),
        problem: e.problem,
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
        when: spec.when,
        level: spec.level,
    })
}

/// `<cache name>/<key template text before the first {{ hashFiles }}>` (the whole key
/// template if it has none): the group prune's keep-last counts entries in.
pub fn family_of(spec: &CacheSpec) -> String {
    format!("{}/{}", spec.name, template::prefix_before_hash(&spec.key))
}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo.
pub(crate) fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let word = word.to_lowercase();
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|&c| (edit_distance(&word, &c.to_lowercase()), c))
        .filter(|&(d, c)| d <= if c.len() <= 4 { 1 } else { 2 })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect())
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

/// The parsed file twice over: as plain values to read, and as the span-carrying tree that
/// tells where each key sits (for error locations and for file order, which the plain
/// table, a BTreeMap, does not keep).
struct Source<'a> {
    origin: &'a str,
    text: &'a str,
    root: toml::Table,
    spans: DeTable<'a>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, origin: &'a str) -> Result<Self, Error> {
        let syntax = |e: toml::de::Error, text: &str| Error::Syntax {
            at: Location {
                origin: origin.to_owned(),
                line_column: e.span().map(|s| line_column(text, s.start)),
            },
            message: e.message().trim_end().replace('\n', "; "),
        };
        let root: toml::Table = toml::from_str(text).map_err(|e| syntax(e, text))?;
        let spans = DeTable::parse(text)
            .map_err(|e| syntax(e, text))?
            .into_inner();
        Ok(Source {
            origin,
            text,
            root,
            spans,
        })
    }

    /// The span-tree value at `path` (table keys only).
    fn de_value(&self, path: &[&str]) -> Option<&toml::Spanned<DeValue<'a>>> {
        let (last, parents) = path.split_last()?;
        let mut table = &self.spans;
        for p in parents {
            table = table.get(*p)?.get_ref().as_table()?;
        }
        table.get(*last)
    }

    fn key_span(&self, path: &[&str]) -> Option<std::ops::Range<usize>> {
        let (last, parents) = path.split_last()?;
        let table = match parents {
            [] => &self.spans,
            _ => self.de_value(parents)?.get_ref().as_table()?,
        };
        table
            .iter()
            .find(|(k, _)| k.get_ref() == last)
            .map(|(k, _)| k.span())
    }

    fn location(&self, offset: Option<usize>) -> Location {
        Location {
            origin: self.origin.to_owned(),
            line_column: offset.map(|o| line_column(self.text, o)),
        }
    }

    fn key_location(&self, path: &[&str]) -> Location {
        self.location(self.key_span(path).map(|s| s.start))
    }

    fn value_location(&self, path: &[&str]) -> Location {
        self.location(self.de_value(path).map(|v| v.span().start))
    }

    /// A table's entries in file order (`path` is the table's own path).
    fn ordered<'t>(
        &self,
        table: &'t toml::Table,
        path: &[&str],
    ) -> Vec<(&'t String, &'t toml::Value)> {
        let mut entries: Vec<_> = table
            .iter()
            .map(|(k, v)| {
                let full: Vec<&str> = path.iter().copied().chain([k.as_str()]).collect();
                (self.key_span(&full).map_or(usize::MAX, |s| s.start), k, v)
            })
            .collect();
        entries.sort_by_key(|&(start, k, _)| (start, k));
        entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    fn table<'t>(
        &self,
        value: &'t toml::Value,
        parent: &[&str],
        parent_label: &str,
        key: &str,
        form: &str,
    ) -> Result<&'t toml::Table, Error> {
        value.as_table().ok_or_else(|| {
            self.invalid(
                parent,
                key,
                parent_label,
                &format!("must be a table ({form}), not {}", kind(value)),
            )
        })
    }

    fn invalid(&self, parent: &[&str], key: &str, label: &str, problem: &str) -> Error {
        let full: Vec<&str> = parent.iter().copied().chain([key]).collect();
        Error::Invalid {
            at: self.value_location(&full),
            table: label.to_owned(),
            key: key.to_owned(),
            problem: problem.to_owned(),
        }
    }

    fn unknown_key(
        &self,
        parent: &[&str],
        key: &str,
        label: &str,
        allowed: &'static [&'static str],
    ) -> Error {
        let full: Vec<&str> = parent.iter().copied().chain([key]).collect();
        Error::UnknownKey {
            at: self.key_location(&full),
            table: label.to_owned(),
            key: key.to_owned(),
            suggestion: suggest(key, allowed),
            allowed,
        }
    }
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
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
            when: When::Success,
            level: None,
            preset: None,
        }
    }

    fn npm(name: &str) -> CacheSpec {
        let p = presets::get("npm").unwrap();
        CacheSpec {
            preset: Some("npm".into()),
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
                &["3:16: cache `c`: restore-keys[1], character 5: `}}` without an opening `{{`"],
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
                "preset `npm` keys on package-lock.json npm-shrinkwrap.json",
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
    fn suggestion_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("keyy", Some("key")),
            ("Key", Some("key")),
            ("path", Some("paths")),
            ("restore_keys", Some("restore-keys")),
            ("restoreKeys", Some("restore-keys")),
            ("presett", Some("preset")),
            ("wehn", Some("when")),
            ("compression", None),
            ("x", None),
        ];
        for (word, want) in cases {
            assert_eq!(suggest(word, CACHE_KEYS), *want, "word {word}");
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
            assert_eq!(
                <When as clap::ValueEnum>::from_str(s, false).ok(),
                Some(w),
                "clap {s}"
            );
        }
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "ab\nключ = 1\n";
        let cases = [
            (0, (1, 1)),
            (3, (2, 1)),
            (3 + "ключ ".len(), (2, 6)),
            (99, (3, 1)),
        ];
        for (offset, want) in cases {
            assert_eq!(line_column(text, offset), want, "offset {offset}");
        }
    }
}
