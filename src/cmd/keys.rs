//! `cachectl keys`: each configured cache's resolved key, fallbacks and paths, so a user can
//! see why a build missed.

use super::{jobs, Error, ExitStatus};
use crate::cli::{GlobalArgs, KeysArgs};
use crate::output;
use std::fmt::Write as _;

pub fn run(g: &GlobalArgs, args: &KeysArgs) -> Result<ExitStatus, Error> {
    let (cwd, _) = super::anchors();
    let plan = jobs::plan(
        None,
        &[],
        &[],
        g.config.as_deref(),
        &args.select.caches,
        &cwd,
    )?;
    if g.json {
        let caches: Vec<_> = plan
            .jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "cache": j.name,
                    "key": j.key.as_str(),
                    "restore_keys": j.restore_keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "paths": j.paths.paths(),
                    "family": j.family,
                    "when": j.when,
                })
            })
            .collect();
        output::json(&serde_json::json!({ "caches": caches }))?;
    } else {
        let mut text = String::new();
        for j in &plan.jobs {
            let _ = writeln!(text, "[{}]", j.name);
            let _ = writeln!(text, "  key           {}", j.key);
            for (i, k) in j.restore_keys.iter().enumerate() {
                let label = if i == 0 { "restore-keys" } else { "" };
                let _ = writeln!(text, "  {label:<13} {k}");
            }
            let _ = writeln!(text, "  paths         {}", j.paths.paths().join(" "));
        }
        output::print(&text)?;
    }
    Ok(ExitStatus::Success)
}
