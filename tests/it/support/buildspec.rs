//! `buildspecs/*.yml` as CodeBuild reads them: parsed by PyYAML, their embedded cachectl.toml
//! (the `# --- cachectl.toml ---` ... `# --- end ---` comment block) by Python's tomllib, in the
//! tests' venv. Parsed once per test process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::moto;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python with PyYAML: the tests' venv (next to moto_server), else `python3` on PATH.
pub fn python() -> PathBuf {
    std::env::var_os(moto::MOTO_ENV)
        .map(PathBuf::from)
        .and_then(|moto| moto.parent().map(|dir| dir.join("python3")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Each buildspec, by file name: `{"yaml": <the parsed file>, "toml": <its embedded
/// cachectl.toml, parsed, or null>, "toml_text": <that block's text>}`.
pub fn all() -> &'static BTreeMap<String, Value> {
    static SPECS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let script = r##"
import glob, json, os, sys, tomllib
import yaml
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.yml"))):
    text = open(path, encoding="utf-8").read()
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() == "# --- cachectl.toml ---":
            inside = True
        elif line.strip() == "# --- end ---":
            inside = False
        elif inside:
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    toml_text = "\n".join(lines) + "\n" if lines else ""
    out[os.path.basename(path)] = {
        "yaml": yaml.safe_load(text),
        "toml": tomllib.loads(toml_text) if lines else None,
        "toml_text": toml_text,
    }
print(json.dumps(out))
"##;
        let python = python();
        let mut cmd = Command::new(&python);
        cmd.arg("-c").arg(script).arg(repo().join("buildspecs"));
        let out = super::cmd::exec_with_timeout(
            &mut cmd,
            format!("{} -c <parse buildspecs>", python.display()),
            Duration::from_secs(120),
        );
        assert_eq!(
            out.code,
            Some(0),
            "parsing buildspecs failed (PyYAML is in tests/requirements.txt)\n{}",
            out.context()
        );
        let parsed: BTreeMap<String, Value> = serde_json::from_str(&out.stdout).unwrap();
        assert!(!parsed.is_empty(), "no buildspecs/*.yml");
        parsed
    })
}

/// One buildspec by file name, e.g. `node-npm.yml`.
pub fn get(name: &str) -> &'static Value {
    all()
        .get(name)
        .unwrap_or_else(|| panic!("no buildspecs/{name}"))
}

/// The text of a buildspec's embedded cachectl.toml.
pub fn toml_text(name: &str) -> String {
    get(name)["toml_text"].as_str().unwrap().to_owned()
}

/// The commands of `phase` (none if the phase has none), each a string: a YAML slip like
/// `- echo a: b` would be a map, and fails here.
pub fn commands(spec: &Value, phase: &str) -> Vec<String> {
    let Some(list) = spec["yaml"]["phases"][phase]["commands"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("{phase} command is not a string: {c}"))
                .to_owned()
        })
        .collect()
}
