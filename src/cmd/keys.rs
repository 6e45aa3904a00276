//! `cachectl keys`: each configured cache's resolved key, fallbacks and paths, so a user can
//! see why a build missed.

use crate::cli::KeysArgs;
use std::process::ExitCode;

pub fn run(args: &KeysArgs) -> ExitCode {
    let (cwd, _) = super::anchors();
    let plan = match super::jobs::plan(None, &[], &[], &args.select, &cwd) {
        Ok(p) => p,
        Err(e) => return super::plan_failed(e),
    };
    if args.json {
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
        println!("{}", serde_json::json!({ "caches": caches }));
    } else {
        for j in &plan.jobs {
            println!("[{}]", j.name);
            println!("  key           {}", j.key);
            for (i, k) in j.restore_keys.iter().enumerate() {
                let label = if i == 0 { "restore-keys" } else { "" };
                println!("  {label:<13} {k}");
            }
            println!("  paths         {}", j.paths.paths().join(" "));
        }
    }
    ExitCode::SUCCESS
}
