//! `cachectl provision --check`: the deployed set-up read back, one line per check.

use super::{outputs_of, report, s3_client, Loaded};
use crate::cli::{GlobalArgs, ProvisionArgs};
use crate::cmd::{Error, ExitStatus};
use crate::config::provision::default_bucket;
use crate::output;
use crate::provision::template::{self, outputs};
use crate::provision::{self as prov, check, deploy};
use serde_json::json;
use std::time::Duration;

pub(super) async fn run(
    g: &GlobalArgs,
    args: &ProvisionArgs,
    loaded: &Loaded,
    conf: &aws_config::SdkConfig,
    deployer: &deploy::Deployer,
    caller: &prov::Caller,
) -> Result<ExitStatus, Error> {
    let s = &loaded.settings;
    let mut checks = Vec::new();
    let stack = deployer.describe().await.map_err(Error::Provision)?;
    let Some(stack) = stack else {
        checks.push(check::Check::fail(
            "stack",
            format!("no stack {} in this region", s.stack),
            format!(
                "run `cachectl provision --stack {}` (or check --region)",
                s.stack
            ),
        ));
        return end_check(g.json, &s.stack, checks);
    };
    let settled =
        ["CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"].contains(&stack.status.as_str());
    checks.push(if settled {
        check::Check::pass("stack", format!("{} is {}", s.stack, stack.status))
    } else {
        check::Check::fail(
            "stack",
            format!("{} is {}", s.stack, stack.status),
            "run `cachectl provision` and read the failure it reports",
        )
    });
    let bucket = match &s.bucket {
        Some(b) => b.clone(),
        None => default_bucket(&s.stack, &caller.account, &caller.region).unwrap_or_default(),
    };
    let outs = outputs_of(stack.outputs, s, &bucket, caller);
    let (Some(store), Some(bucket)) = (outs.get(outputs::STORE), outs.get(outputs::BUCKET)) else {
        checks.push(check::Check::fail(
            "outputs",
            "the stack has no Store and Bucket outputs",
            "run `cachectl provision` to update the stack",
        ));
        return end_check(g.json, &s.stack, checks);
    };
    let s3 = s3_client(conf);
    let prefix = store
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap_or(&s.prefix)
        .to_owned();
    checks.push(check::round_trip(&s3, bucket, &prefix).await);
    let codebuild = aws_sdk_codebuild::Client::new(conf);
    checks.extend(check::projects(&codebuild, &template::project_names(s), store).await);
    if args.run_prune {
        checks.push(
            check::run_prune(
                &codebuild,
                &template::prune_project_name(&s.stack),
                Duration::from_secs(900),
            )
            .await,
        );
    }
    end_check(g.json, &s.stack, checks)
}

fn end_check(j: bool, stack: &str, checks: Vec<check::Check>) -> Result<ExitStatus, Error> {
    for c in &checks {
        if c.ok {
            output::say(&format!("ok    {}: {}", c.name, c.detail));
        } else {
            output::say(&format!(
                "FAIL  {}: {} (fix: {})",
                c.name,
                c.detail,
                c.fix.as_deref().unwrap_or("")
            ));
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    report(
        j,
        json!({ "outcome": if ok { "ok" } else { "failed" }, "stack": stack, "checks": checks }),
    )?;
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
