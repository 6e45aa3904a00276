//! `[trust]`: which builds are trusted, whether untrusted ones save, and which signatures a
//! restore accepts; and the scope a build runs in, from its flags, CodeBuild's webhook
//! variables and these settings (docs/FORMAT.md, "Scopes"). Pure: the environment comes in as
//! a [`BuildEnv`].
//!
//! ```toml
//! [trust]
//! trusted-refs = ["branch/main", "tag/*"]  # webhook builds of other refs are untrusted
//! untrusted-refs = ["branch/dependabot/**"] # untrusted even if trusted-refs match
//! untrusted-save = true                    # false: untrusted builds never save
//! public-keys = ["ed25519:…"]              # signatures restores accept (several: rotation)
//! require-signature = true                 # trusted entries must be signed by one of them;
//!                                          # "all": the build's own untrusted scope's too
//! ```

use super::source::{kind, Source};
use super::Error;
use crate::key::Scope;
use crate::sign::PublicKey;

const KEYS: &[&str] = &[
    "trusted-refs",
    "untrusted-refs",
    "untrusted-save",
    "public-keys",
    "require-signature",
];

/// Which entries must be signed by one of `public-keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requirement {
    #[default]
    Off,
    /// Entries of the trusted scope (`require-signature = true`).
    Trusted,
    /// Those and the build's own untrusted scope's (`require-signature = "all"`).
    All,
}

/// `[trust]`; the default trusts every build that is not a pull request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSettings {
    /// Globs over `CODEBUILD_WEBHOOK_TRIGGER` (`branch/main`, `tag/*`): when any is given, a
    /// webhook build whose trigger matches none of them is untrusted.
    pub trusted_refs: Vec<String>,
    /// Globs over the trigger that make a build untrusted whatever else matches.
    pub untrusted_refs: Vec<String>,
    pub untrusted_save: bool,
    pub public_keys: Vec<PublicKey>,
    pub require_signature: Requirement,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            trusted_refs: Vec::new(),
            untrusted_refs: Vec::new(),
            untrusted_save: true,
            public_keys: Vec::new(),
            require_signature: Requirement::Off,
        }
    }
}

/// A glob over webhook triggers: `*` stays within one `/`-separated part, `**` crosses them.
fn glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

pub(super) fn parse(src: &Source<'_>, t: &toml::Table) -> Result<TrustSettings, Error> {
    let mut s = TrustSettings::default();
    let path = ["trust"];
    for (key, value) in src.ordered(t, &path) {
        let invalid = |problem: &str| src.invalid(&path, key, "[trust]", problem);
        match key.as_str() {
            "trusted-refs" | "untrusted-refs" => {
                let list = strings(value).ok_or_else(|| {
                    invalid(&format!(
                        "must be a list of strings such as [\"branch/main\"], not {}",
                        kind(value)
                    ))
                })?;
                for p in &list {
                    glob(p).map_err(|e| invalid(&format!("`{p}` is not a glob: {}", e.kind())))?;
                }
                if key == "trusted-refs" {
                    s.trusted_refs = list;
                } else {
                    s.untrusted_refs = list;
                }
            }
            "untrusted-save" => {
                s.untrusted_save = value.as_bool().ok_or_else(|| {
                    invalid(&format!("must be true or false, not {}", kind(value)))
                })?;
            }
            "public-keys" => {
                let list = strings(value).ok_or_else(|| {
                    invalid(&format!(
                        "must be a list of strings such as [\"ed25519:…\"], not {}",
                        kind(value)
                    ))
                })?;
                // Which entry, never its text: a private key pasted here must not be printed.
                s.public_keys = list
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        PublicKey::parse(k).map_err(|e| invalid(&format!("entry {}: {e}", i + 1)))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "require-signature" => {
                s.require_signature = match value {
                    toml::Value::Boolean(true) => Requirement::Trusted,
                    toml::Value::Boolean(false) => Requirement::Off,
                    toml::Value::String(v) if v == "all" => Requirement::All,
                    _ => {
                        return Err(invalid(&format!(
                            "must be true, false or \"all\", not {}",
                            kind(value)
                        )))
                    }
                };
            }
            _ => return Err(src.unknown_key(&path, key, "[trust]", KEYS)),
        }
    }
    if s.require_signature != Requirement::Off && s.public_keys.is_empty() {
        return Err(src.invalid(
            &path,
            "require-signature",
            "[trust]",
            "needs public-keys: list the public key `cachectl keygen` printed",
        ));
    }
    Ok(s)
}

fn strings(value: &toml::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// What decides a build's scope, read from the process environment by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    /// `--scope` / `CACHECTL_SCOPE`.
    pub explicit: Option<Scope>,
    /// `CODEBUILD_WEBHOOK_TRIGGER`: `pr/42`, `branch/main`, `tag/v1`.
    pub webhook_trigger: Option<String>,
    /// `CODEBUILD_WEBHOOK_EVENT`: `PUSH`, `PULL_REQUEST_CREATED`, …
    pub webhook_event: Option<String>,
    /// `CODEBUILD_SOURCE_VERSION`: `pr/42` when a pull request's code is built, also when a
    /// build of it was started by hand rather than by the webhook.
    pub source_version: Option<String>,
}

impl TrustSettings {
    /// The build's scope, and what decided it (for the report: `CODEBUILD_WEBHOOK_TRIGGER=pr/42`).
    ///
    /// In order: `--scope`/`CACHECTL_SCOPE`; a pull-request build (webhook trigger or source
    /// version `pr/N`, or an event `PULL_REQUEST_*`) is untrusted as `pr-N`; a trigger matching `untrusted-refs`, or
    /// matching none of `trusted-refs` when those are given, is untrusted in a scope named
    /// after the ref; every other build (a push, a schedule, a build started by hand) is
    /// trusted.
    pub fn scope_of(&self, env: &BuildEnv) -> (Scope, String) {
        if let Some(s) = &env.explicit {
            return (s.clone(), format!("{} / --scope", crate::env::SCOPE));
        }
        let trigger = env.webhook_trigger.as_deref().filter(|t| !t.is_empty());
        let because_trigger = |t: &str| format!("{}={t}", crate::env::CODEBUILD_WEBHOOK_TRIGGER);
        if let Some(t) = trigger.filter(|t| t.starts_with("pr/")) {
            return (ref_scope(t), because_trigger(t));
        }
        if let Some(v) = env
            .source_version
            .as_deref()
            .filter(|v| v.starts_with("pr/"))
        {
            return (
                ref_scope(v),
                format!("{}={v}", crate::env::CODEBUILD_SOURCE_VERSION),
            );
        }
        if let Some(e) = env
            .webhook_event
            .as_deref()
            .filter(|e| e.starts_with("PULL_REQUEST_"))
        {
            let scope = trigger.map_or_else(|| Scope::Untrusted("pull-request".into()), ref_scope);
            return (
                scope,
                format!("{}={e}", crate::env::CODEBUILD_WEBHOOK_EVENT),
            );
        }
        if let Some(t) = trigger {
            let matches =
                |globs: &[String]| globs.iter().any(|g| glob(g).is_ok_and(|m| m.is_match(t)));
            if matches(&self.untrusted_refs) {
                return (
                    ref_scope(t),
                    format!("{}, in [trust] untrusted-refs", because_trigger(t)),
                );
            }
            if !self.trusted_refs.is_empty() && !matches(&self.trusted_refs) {
                return (
                    ref_scope(t),
                    format!("{}, not in [trust] trusted-refs", because_trigger(t)),
                );
            }
            return (Scope::Trusted, because_trigger(t));
        }
        (Scope::Trusted, "not a pull-request build".into())
    }

    /// Which scopes' entries must be signed, for a build in `own` scope.
    pub fn signed_scopes(&self, own: &Scope) -> Vec<Scope> {
        match self.require_signature {
            Requirement::Off => Vec::new(),
            Requirement::Trusted => vec![Scope::Trusted],
            Requirement::All => {
                let mut v = vec![Scope::Trusted];
                if !own.is_trusted() {
                    v.push(own.clone());
                }
                v
            }
        }
    }
}

/// The untrusted scope of a webhook trigger: `pr/42` is `pr-42`; any other ref keeps its
/// letters, digits, `.`, `_` and `-`, the rest become `-`, and 8 hex digits of its blake3 keep
/// refs that read alike apart (`branch-dependabot-npm-1a2b3c4d`).
fn ref_scope(trigger: &str) -> Scope {
    if let Some(n) = trigger
        .strip_prefix("pr/")
        .filter(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Scope::Untrusted(format!("pr-{n}"));
    }
    let clean: String = trigger
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = blake3::hash(trigger.as_bytes()).to_hex();
    let name = format!("{}-{}", clean.trim_start_matches('.'), &digest[..8]);
    Scope::untrusted(&name).unwrap_or_else(|_| Scope::Untrusted(format!("ref-{}", &digest[..16])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(trigger: Option<&str>, event: Option<&str>) -> BuildEnv {
        BuildEnv {
            explicit: None,
            webhook_trigger: trigger.map(str::to_owned),
            webhook_event: event.map(str::to_owned),
            source_version: None,
        }
    }

    fn untrusted(s: &str) -> Scope {
        Scope::Untrusted(s.into())
    }

    #[test]
    fn a_builds_scope_comes_from_its_webhook_and_the_settings() {
        let plain = TrustSettings::default();
        let guarded = TrustSettings {
            trusted_refs: vec!["branch/main".into(), "tag/*".into()],
            untrusted_refs: vec!["branch/dependabot/**".into()],
            ..TrustSettings::default()
        };
        let dependabot = ref_scope("branch/dependabot/npm/x");
        let feature = ref_scope("branch/feature/x");
        let cases: Vec<(&str, &TrustSettings, BuildEnv, Scope)> = vec![
            ("no webhook", &plain, env(None, None), Scope::Trusted),
            (
                "push",
                &plain,
                env(Some("branch/main"), Some("PUSH")),
                Scope::Trusted,
            ),
            (
                "pr trigger",
                &plain,
                env(Some("pr/42"), None),
                untrusted("pr-42"),
            ),
            (
                "pr event",
                &plain,
                env(Some("pr/7"), Some("PULL_REQUEST_UPDATED")),
                untrusted("pr-7"),
            ),
            (
                "pr event without trigger",
                &plain,
                env(None, Some("PULL_REQUEST_CREATED")),
                untrusted("pull-request"),
            ),
            (
                "feature push, no lists",
                &plain,
                env(Some("branch/feature/x"), Some("PUSH")),
                Scope::Trusted,
            ),
            (
                "main, guarded",
                &guarded,
                env(Some("branch/main"), Some("PUSH")),
                Scope::Trusted,
            ),
            (
                "tag, guarded",
                &guarded,
                env(Some("tag/v1.2"), Some("PUSH")),
                Scope::Trusted,
            ),
            (
                "feature, guarded",
                &guarded,
                env(Some("branch/feature/x"), Some("PUSH")),
                feature,
            ),
            (
                "dependabot, guarded",
                &guarded,
                env(Some("branch/dependabot/npm/x"), Some("PUSH")),
                dependabot,
            ),
            (
                "by hand, guarded",
                &guarded,
                env(None, None),
                Scope::Trusted,
            ),
            (
                "a pull request built by hand",
                &plain,
                BuildEnv {
                    source_version: Some("pr/9".into()),
                    ..env(None, None)
                },
                untrusted("pr-9"),
            ),
            (
                "a commit built by hand",
                &guarded,
                BuildEnv {
                    source_version: Some("0123abcd".into()),
                    ..env(None, None)
                },
                Scope::Trusted,
            ),
            (
                "explicit wins",
                &plain,
                BuildEnv {
                    explicit: Some(Scope::Trusted),
                    ..env(Some("pr/1"), Some("PULL_REQUEST_CREATED"))
                },
                Scope::Trusted,
            ),
        ];
        for (name, settings, env, want) in cases {
            assert_eq!(settings.scope_of(&env).0, want, "case {name}");
        }
        assert_eq!(
            plain.scope_of(&env(Some("pr/42"), None)).1,
            "CODEBUILD_WEBHOOK_TRIGGER=pr/42"
        );
    }

    #[test]
    fn ref_scopes_are_valid_and_keep_refs_apart() {
        let a = ref_scope("branch/a/b");
        let b = ref_scope("branch/a-b");
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("branch-a-b-"), "{a}");
        assert_eq!(a.as_str().len(), "branch-a-b-".len() + 8);
        assert_eq!(ref_scope("pr/12"), untrusted("pr-12"));
        assert!(ref_scope("pr/x").as_str().starts_with("pr-x-"));
        let long = ref_scope(&format!("branch/{}", "ü".repeat(200)));
        assert!(Scope::parse(long.as_str()).is_ok(), "{long}");
        assert!(Scope::parse(ref_scope("/.x").as_str()).is_ok());
    }

    #[test]
    fn signed_scopes_follow_require_signature() {
        let pr = untrusted("pr-1");
        let s = |r| TrustSettings {
            require_signature: r,
            ..TrustSettings::default()
        };
        assert_eq!(s(Requirement::Off).signed_scopes(&pr), vec![]);
        assert_eq!(
            s(Requirement::Trusted).signed_scopes(&pr),
            vec![Scope::Trusted]
        );
        assert_eq!(
            s(Requirement::All).signed_scopes(&pr),
            vec![Scope::Trusted, pr.clone()]
        );
        assert_eq!(
            s(Requirement::All).signed_scopes(&Scope::Trusted),
            vec![Scope::Trusted]
        );
    }
}
