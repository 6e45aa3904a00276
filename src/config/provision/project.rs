//! `[provision.project.NAME]`: a CodeBuild project the stack creates, read strictly like the
//! rest of `[provision]`.

use crate::config::source::{kind, Source};
use crate::config::Error;

const PROJECT_KEYS: &[&str] = &[
    "source-type",
    "source-location",
    "buildspec",
    "image",
    "compute-type",
    "arch",
    "environment",
    "description",
    "pull-requests",
];

/// CodeBuild's source types (AWS CodeBuild API Reference, `ProjectSource.type`).
pub const SOURCE_TYPES: &[&str] = &[
    "BITBUCKET",
    "CODECOMMIT",
    "CODEPIPELINE",
    "GITHUB",
    "GITHUB_ENTERPRISE",
    "GITLAB",
    "GITLAB_SELF_MANAGED",
    "NO_SOURCE",
    "S3",
];

/// A CodeBuild project the stack creates (`[provision.project.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    pub name: String,
    /// One of [`SOURCE_TYPES`].
    pub source_type: String,
    pub source_location: Option<String>,
    /// A path in the source, or an inline buildspec; None: the source's `buildspec.yml`.
    pub buildspec: Option<String>,
    /// None: CodeBuild's current Amazon Linux standard image for `arch`.
    pub image: Option<String>,
    pub compute_type: String,
    pub arch: Arch,
    /// In file order.
    pub environment: Vec<(String, String)>,
    pub description: Option<String>,
    /// Builds untrusted code (pull requests): its role gets the pull-request policy instead of
    /// the read-write one, and it never gets the signing key.
    pub pull_requests: bool,
}

/// A build machine's architecture, as CodeBuild names its environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

// The template and commands that use these are behind the `provision` feature; the settings
// are read either way, so a cachectl.toml works with every build.
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
impl Arch {
    /// CodeBuild's environment type.
    pub fn environment_type(self) -> &'static str {
        match self {
            Arch::X86_64 => "LINUX_CONTAINER",
            Arch::Arm64 => "ARM_CONTAINER",
        }
    }

    /// CodeBuild's curated Amazon Linux image for the architecture.
    pub fn default_image(self) -> &'static str {
        match self {
            Arch::X86_64 => "aws/codebuild/amazonlinux-x86_64-standard:5.0",
            Arch::Arm64 => "aws/codebuild/amazonlinux-aarch64-standard:3.0",
        }
    }
}

fn valid_project_name(s: &str) -> bool {
    (2..=255).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`super::parse`] for one `[provision.project.NAME]` table.
pub(super) fn parse(
    src: &Source<'_>,
    name: &str,
    value: &toml::Value,
) -> Result<ProjectSettings, Error> {
    let path = ["provision", "project", name];
    let label = format!("project `{name}`");
    let table = src.table(
        value,
        &["provision", "project"],
        "[provision.project]",
        name,
        "[provision.project.NAME]",
    )?;
    if !valid_project_name(name) {
        return Err(src.invalid(
            &["provision", "project"],
            name,
            "[provision.project]",
            "is not a CodeBuild project name: 2 to 255 letters, digits, `-` and `_`, starting with a letter or digit",
        ));
    }
    let mut p = ProjectSettings {
        name: name.to_owned(),
        source_type: String::new(),
        source_location: None,
        buildspec: None,
        image: None,
        compute_type: "BUILD_GENERAL1_SMALL".to_owned(),
        arch: Arch::X86_64,
        environment: Vec::new(),
        description: None,
        pull_requests: false,
    };
    for (key, value) in src.ordered(table, &path) {
        let invalid = |problem: &str| src.invalid(&path, key, &label, problem);
        let string = || -> Result<String, Error> {
            match value.as_str() {
                Some("") => Err(invalid("must not be empty")),
                Some(v) => Ok(v.to_owned()),
                None => Err(invalid(&format!("must be a string, not {}", kind(value)))),
            }
        };
        match key.as_str() {
            "source-type" => {
                let t = string()?;
                if !SOURCE_TYPES.contains(&t.as_str()) {
                    return Err(invalid(&format!(
                        "is `{t}`; expected one of {}",
                        SOURCE_TYPES.join(", ")
                    )));
                }
                p.source_type = t;
            }
            "source-location" => p.source_location = Some(string()?),
            "buildspec" => p.buildspec = Some(string()?),
            "image" => p.image = Some(string()?),
            "description" => p.description = Some(string()?),
            "pull-requests" => {
                p.pull_requests = value.as_bool().ok_or_else(|| {
                    invalid(&format!("must be true or false, not {}", kind(value)))
                })?
            }
            "compute-type" => {
                p.compute_type = string()?;
                if !p.compute_type.starts_with("BUILD_") {
                    return Err(invalid(
                        "must be a CodeBuild compute type like \"BUILD_GENERAL1_SMALL\"",
                    ));
                }
            }
            "arch" => {
                p.arch = match string()?.as_str() {
                    "x86_64" | "amd64" => Arch::X86_64,
                    "arm64" | "aarch64" | "arm" => Arch::Arm64,
                    other => {
                        return Err(invalid(&format!(
                            "is `{other}`; expected \"x86_64\" or \"arm64\""
                        )))
                    }
                }
            }
            "environment" => {
                let env = src.table(value, &path, &label, "environment", "a table of strings")?;
                for (k, v) in src.ordered(env, &[&path[..], &["environment"]].concat()) {
                    let Some(v) = v.as_str() else {
                        return Err(invalid(&format!("`{k}` must be a string, not {}", kind(v))));
                    };
                    if k == crate::env::STORE || k == "CACHE_BUCKET" {
                        return Err(invalid(&format!(
                            "`{k}`: the stack sets it to its own bucket and store"
                        )));
                    }
                    if k == crate::env::SIGNING_KEY {
                        return Err(invalid(&format!(
                            "`{k}`: the stack sets it from `signing-key-secret` in [provision], never as plain text"
                        )));
                    }
                    if k.starts_with("CODEBUILD_") {
                        return Err(invalid(&format!(
                            "`{k}`: names starting with CODEBUILD_ are reserved by CodeBuild"
                        )));
                    }
                    p.environment.push((k.clone(), v.to_owned()));
                }
            }
            _ => return Err(src.unknown_key(&path, key, &label, PROJECT_KEYS)),
        }
    }
    let missing = |what: &str| {
        src.invalid(
            &["provision", "project"],
            name,
            "[provision.project]",
            &format!("needs {what}"),
        )
    };
    if p.source_type.is_empty() {
        return Err(missing("`source-type`"));
    }
    let needs_location = !matches!(p.source_type.as_str(), "NO_SOURCE" | "CODEPIPELINE");
    if needs_location && p.source_location.is_none() {
        return Err(missing("`source-location` for its source type"));
    }
    if p.source_type == "NO_SOURCE" && p.buildspec.is_none() {
        return Err(missing(
            "an inline `buildspec` (it has no source to read one from)",
        ));
    }
    Ok(p)
}
