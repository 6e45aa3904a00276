//! Reading `cachectl.toml`: TOML text -> [`Config`], strictly, with a file position in every error.

use super::source::{kind, Source};
use super::{
    presets, suggest, template, template_error, CacheSpec, Config, Error, Location, MetricsConfig,
    When,
};

const TOP_KEYS: &[&str] = &["cache", "prune", "metrics", "provision", "trust"];
const CACHE_KEYS: &[&str] = &[
    "key",
    "restore-keys",
    "paths",
    "preset",
    "when",
    "level",
    "merge",
];
const METRICS_KEYS: &[&str] = &["namespace", "enabled"];

/// [`super::parse`].
pub(super) fn parse(text: &str, origin: &str) -> Result<Config, Error> {
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
            "provision" => {
                let t = src.table(value, &[], "the top level", "provision", "[provision]")?;
                config.provision = Some(super::provision::parse(&src, t)?);
            }
            "trust" => {
                let t = src.table(value, &[], "the top level", "trust", "[trust]")?;
                config.trust = super::trust::parse(&src, t)?;
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

    let merge_given = table.get("merge").cloned();
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

    // `merge`: true (every path), false (none), or the paths, as written in `paths`.
    let normalized = |list: &[String]| -> Vec<String> {
        list.iter().map(|p| crate::key::normalize(p)).collect()
    };
    let merge = match merge_given {
        None => {
            let preset_merge = preset.map(|p| normalized(&p.merge())).unwrap_or_default();
            normalized(&paths)
                .into_iter()
                .filter(|p| preset_merge.contains(p))
                .collect()
        }
        Some(toml::Value::Boolean(true)) => normalized(&paths),
        Some(toml::Value::Boolean(false)) => Vec::new(),
        Some(toml::Value::Array(_)) => {
            let listed = strings("merge", "path", "paths")?.unwrap_or_default();
            let all = normalized(&paths);
            for (raw, p) in listed.iter().zip(normalized(&listed)) {
                if !all.contains(&p) {
                    return Err(invalid(
                        "merge",
                        &format!("names `{raw}`, which is not one of the cache's paths"),
                    ));
                }
            }
            normalized(&listed)
        }
        Some(v) => {
            return Err(invalid(
                "merge",
                &format!("must be true, false or an array of paths, not {}", kind(&v)),
            ))
        }
    };

    let spec = CacheSpec {
        name: name.to_owned(),
        key,
        restore_keys,
        paths,
        merge,
        when,
        level,
        preset: preset.map(|p| p.name.to_owned()),
    };
    // Check template syntax now, so a broken key fails at load time rather than mid-build.
    // Templates the preset supplied are located at `preset`.
    // Where a template came from: its place in the file, else the `preset` that supplied it
    // (a restore-key derived from a `key` in the file cannot fail once that key parsed).
    let located = |field: &str, index: Option<usize>| {
        let given = table.contains_key(field);
        let full = [&path[..], &[if given { field } else { "preset" }]].concat();
        match index {
            Some(i) if given => src.element_location(&full, i),
            _ => src.value_location(&full),
        }
    };
    let check = |field: String, text: &str, at: Location| {
        template::parse(text)
            .map(|_| ())
            .map_err(|e| template_error(&spec, Some(at), field, e))
    };
    check("key".into(), &spec.key, located("key", None))?;
    for (i, r) in spec.restore_keys.iter().enumerate() {
        let at = located("restore-keys", Some(i));
        check(format!("restore-keys[{i}]"), r, at)?;
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

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn line_column_counts_characters() {
        use super::super::source::line_column;
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
