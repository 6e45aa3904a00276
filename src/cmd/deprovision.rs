//! `cachectl deprovision`: delete the stack (the bucket stays, with its size printed), and with
//! `--delete-bucket` empty and delete the bucket too.

use super::provision::{
    confirm, connect, load, not_confirmed, print_event, print_plan, report, s3_client,
};
use super::{Error, ExitStatus};
use crate::cli::{DeprovisionArgs, GlobalArgs};
use crate::config::provision::default_bucket;
use crate::output;
use crate::provision::template::{self, outputs};
use crate::provision::{deploy, teardown, Change};
use serde_json::json;

pub async fn run(g: &GlobalArgs, args: DeprovisionArgs) -> Result<ExitStatus, Error> {
    let loaded = load(
        g,
        args.stack.as_deref(),
        args.bucket.as_deref(),
        args.region.as_deref(),
        None,
    )?;
    let s = &loaded.settings;
    let (conf, caller) = connect(s.region.as_deref()).await?;
    let deployer = deploy::Deployer::new(&conf, &s.stack, s.role_arn.clone());
    let s3 = s3_client(&conf);
    let stack = deployer.describe().await.map_err(Error::Provision)?;
    let bucket = match stack
        .as_ref()
        .and_then(|st| st.outputs.get(outputs::BUCKET))
    {
        // `--bucket` names the bucket when the stack is gone; it must not quietly stand for
        // another than the stack's own.
        Some(b) if args.bucket.as_ref().is_some_and(|given| given != b) => {
            return Err(Error::Usage {
                message: format!(
                    "--bucket {} is not the bucket of stack {} ({b})",
                    args.bucket.as_deref().unwrap_or_default(),
                    s.stack
                ),
                hint: Some(format!(
                    "leave out --bucket to delete the stack with its bucket {b}, or name the stack that holds the other bucket"
                )),
            });
        }
        Some(b) => b.clone(),
        None => match &s.bucket {
            Some(b) => b.clone(),
            None => default_bucket(&s.stack, &caller.account, &caller.region).unwrap_or_default(),
        },
    };
    let changes: Vec<Change> = match &stack {
        Some(_) => deployer
            .resources()
            .await
            .map_err(Error::Provision)?
            .into_iter()
            // Resources the engine lists without a name (types it does not model) say nothing.
            .filter(|(logical_id, _)| !logical_id.is_empty())
            .map(|(logical_id, resource_type)| Change {
                action: if logical_id == template::BUCKET {
                    "Retain".into()
                } else {
                    "Remove".into()
                },
                logical_id,
                resource_type,
                replacement: None,
            })
            .collect(),
        None => Vec::new(),
    };
    let size = teardown::size(&s3, &bucket)
        .await
        .map_err(Error::Provision)?;
    if stack.is_none() && (size.is_none() || !args.delete_bucket) {
        // Nothing (more) to do: a teardown run twice ends the same way.
        let kept = match size {
            Some(_) => {
                format!("; bucket {bucket} is still there (add --delete-bucket to delete it)")
            }
            None => format!(" and no bucket {bucket}"),
        };
        output::say(&format!(
            "no stack {} in region {}{kept}: nothing to delete",
            s.stack, caller.region
        ));
        report(
            g.json,
            json!({ "outcome": "absent", "stack": s.stack, "changes": [], "bucket": bucket, "bucket_deleted": false }),
        )?;
        return Ok(ExitStatus::Success);
    }
    if !changes.is_empty() {
        print_plan(&s.stack, &changes);
    }
    match (args.delete_bucket, size) {
        (true, Some((n, bytes))) => output::say(&format!(
            "  Delete  bucket {bucket} and everything in it ({n} objects, {})",
            crate::units::human_bytes(bytes)
        )),
        (false, Some(_)) => output::say(&format!(
            "  Keep    bucket {bucket} (add --delete-bucket to delete it and every cache in it)"
        )),
        (_, None) => {}
    }
    if !args.yes {
        match confirm("go on?") {
            Some(true) => {}
            None => return Err(not_confirmed("deprovision")),
            Some(false) => {
                output::say("nothing was deleted");
                return Ok(ExitStatus::Failure);
            }
        }
    }
    if stack.is_some() {
        deployer
            .delete(&mut print_event)
            .await
            .map_err(Error::Provision)?;
        output::say(&format!("stack {}: deleted", s.stack));
    }
    let mut bucket_deleted = false;
    match (args.delete_bucket, size) {
        (true, Some(_)) => {
            let emptied = teardown::delete_bucket(&s3, &bucket).await.map_err(Error::Provision)?;
            output::say(&format!(
                "bucket {bucket}: deleted ({} object versions, {} unfinished uploads)",
                emptied.versions, emptied.uploads
            ));
            bucket_deleted = true;
        }
        (false, Some((n, bytes))) => output::say(&format!(
            "bucket {bucket} kept: {n} objects, {} with cachectl's install files (`cachectl deprovision --stack {} --bucket {bucket} --delete-bucket` removes it)",
            crate::units::human_bytes(bytes),
            s.stack
        )),
        (_, None) => {}
    }
    report(
        g.json,
        json!({
            "outcome": "deleted",
            "stack": s.stack,
            "changes": changes,
            "bucket": bucket,
            "bucket_deleted": bucket_deleted,
        }),
    )?;
    Ok(ExitStatus::Success)
}
