//! `cachectl provision` and `cachectl deprovision`: settings from `[provision]` and flags, the
//! caller preflight, the plan, a confirmation, the apply with its events, the uploads, and
//! what to put in a buildspec.

mod check;

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, ProvisionArgs};
use crate::config::provision::{default_bucket, ProvisionSettings};
use crate::output;
use crate::provision::template::{self, outputs, Inputs};
use crate::provision::{self as prov, deploy, install, teardown, Change, StackEvent};
use aws_sdk_cloudformation::types::{ChangeSetType, ResourceToImport};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;

/// `[prune]` as the prune project's `cachectl prune` flags; without `[prune]`, the policy of
/// buildspecs/prune.yml.
fn prune_args(table: Option<&toml::Table>, origin: &str) -> Result<Vec<String>, Error> {
    let Some(t) = table else {
        return Ok(["--max-unused", "14d", "--max-total-size", "50GiB"]
            .map(String::from)
            .to_vec());
    };
    let rules = crate::prune::rules_from_table(t, origin)?;
    if !rules.deletes_anything() {
        // The scheduled project would fail every run (`prune` refuses a policy that keeps all).
        return Err(Error::Provision(prov::Error::Settings {
            message: format!(
                "{origin}: [prune] has no rule that deletes anything, so the scheduled prune project would fail every run"
            ),
            hint: "add max-unused, max-age or max-total-size to [prune] (e.g. max-unused = \"14d\")".into(),
        }));
    }
    Ok(t.iter()
        .flat_map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            [format!("--{k}"), value]
        })
        .collect())
}

/// Settings: `[provision]` of the config file (if there is one), then the flags.
pub(super) struct Loaded {
    pub(super) settings: ProvisionSettings,
    pub(super) namespace: String,
    pub(super) prune_args: Vec<String>,
}

pub(super) fn load(
    g: &GlobalArgs,
    stack: Option<&str>,
    bucket: Option<&str>,
    region: Option<&str>,
    role_arn: Option<&str>,
) -> Result<Loaded, Error> {
    let (cwd, _) = super::anchors();
    let path = super::jobs::config_path(g.config.as_deref(), &cwd);
    let cfg = if path.exists() || g.config.is_some() {
        crate::config::load(&path)?
    } else {
        crate::config::Config::default()
    };
    let mut settings = cfg.provision.clone().unwrap_or_default();
    if let Some(s) = stack {
        settings.stack = s.to_owned();
    }
    if let Some(b) = bucket {
        settings.bucket = Some(b.to_owned());
    }
    if let Some(r) = region {
        settings.region = Some(r.to_owned());
    }
    if let Some(r) = role_arn {
        settings.role_arn = Some(r.to_owned());
    }
    let prune_args = prune_args(cfg.prune.as_ref(), &path.display().to_string())?;
    Ok(Loaded {
        settings,
        namespace: cfg.metrics.namespace.clone(),
        prune_args,
    })
}

/// The SDK configuration for `region` and who the credentials are (said on stderr): the
/// preflight of every stack operation.
pub(super) async fn connect(
    region: Option<&str>,
) -> Result<(aws_config::SdkConfig, prov::Caller), Error> {
    let conf = sdk_config(region).await;
    let caller = prov::caller(&conf).await.map_err(Error::Provision)?;
    output::say(&format!(
        "account {}, region {}, as {}",
        caller.account, caller.region, caller.arn
    ));
    Ok((conf, caller))
}

/// An S3 client on `conf`, path-style when the endpoint is overridden (as the store's is).
pub(super) fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(crate::aws::endpoint_overridden(
                conf,
                crate::aws::Service::S3,
            ))
            .build(),
    )
}

async fn sdk_config(region: Option<&str>) -> aws_config::SdkConfig {
    let conf = crate::aws::sdk_config().await;
    match region {
        Some(r) => conf
            .into_builder()
            .region(aws_config::Region::new(r.to_owned()))
            .build(),
        None => conf,
    }
}

pub(super) fn print_event(e: &StackEvent) {
    let reason = e
        .reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    output::say(&format!(
        "  {:<20} {} ({}){reason}",
        e.status, e.logical_id, e.resource_type
    ));
}

pub(super) fn print_plan(stack: &str, changes: &[Change]) {
    output::say(&format!("plan for stack {stack}:"));
    for c in changes {
        let replace = match c.replacement.as_deref() {
            Some("True") => "  (REPLACED: a new one is made, the old one deleted)",
            Some(_) => "  (may be replaced)",
            None => "",
        };
        output::say(&format!(
            "  {:<7} {} ({}){replace}",
            c.action, c.logical_id, c.resource_type
        ));
    }
}

/// Asks on the terminal whether to go on. Off a terminal (CI), the answer is no, and the caller
/// says to add `--yes`.
pub(super) fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub(super) fn not_confirmed(what: &str) -> Error {
    Error::Usage {
        message: format!("{what}: not applied (no terminal to confirm on)"),
        hint: Some("review the plan above, then run the same command with --yes".into()),
    }
}

/// Output keys as the JSON report names them: `ReadWritePolicyArn` -> `read_write_policy_arn`.
fn snake(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn outputs_json(outputs: &BTreeMap<String, String>) -> Value {
    Value::Object(outputs.iter().map(|(k, v)| (snake(k), json!(v))).collect())
}

pub(super) fn report(j: bool, value: Value) -> Result<(), Error> {
    if j {
        output::json(&value)?;
    }
    Ok(())
}

/// The stack's outputs; where the stack reports none (the tests' local endpoint does not
/// evaluate outputs of stacks made by change sets), the ones the template gives it.
fn outputs_of(
    stack_outputs: BTreeMap<String, String>,
    s: &ProvisionSettings,
    bucket: &str,
    caller: &prov::Caller,
) -> BTreeMap<String, String> {
    if !stack_outputs.is_empty() {
        return stack_outputs;
    }
    output::note("the stack reports no outputs; using the names its template gives them");
    template::expected_outputs(
        s,
        bucket,
        &caller.account,
        &caller.region,
        caller.partition(),
    )
}

/// How a provision starts from the stack it finds.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    Create,
    Update,
    /// A failed first create (`ROLLBACK_COMPLETE`) can only be deleted; with --yes it is.
    DeleteThenCreate,
    Blocked {
        why: &'static str,
        hint: String,
    },
}

/// The start for a stack in `status` (None: no stack), from CloudFormation's stack status
/// codes (User Guide, "Stack status codes"). `apply` is --yes without --dry-run.
fn start_from(stack: &str, status: Option<&str>, apply: bool) -> Start {
    match status {
        // REVIEW_IN_PROGRESS: a stack made by a change set never executed (an interrupted run).
        None | Some("REVIEW_IN_PROGRESS") => Start::Create,
        Some("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED") if apply => Start::DeleteThenCreate,
        Some("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED") => Start::Blocked {
            why: "an earlier create failed and was rolled back; a stack in this state can only be deleted",
            hint: "run again with --yes to delete it and create it anew".into(),
        },
        Some("UPDATE_ROLLBACK_FAILED") => Start::Blocked {
            why: "an update failed and so did its rollback",
            hint: format!(
                "fix the resource named in the stack's events, then `aws cloudformation continue-update-rollback --stack-name {stack}`, and run provision again"
            ),
        },
        Some(st) if st.ends_with("_IN_PROGRESS") => Start::Blocked {
            why: "another operation on the stack is running",
            hint: "wait for it to finish (`aws cloudformation describe-stacks`), then run provision again".into(),
        },
        Some(st) if st.ends_with("_FAILED") => Start::Blocked {
            why: "the stack is in a failed state",
            hint: "read the stack's events in the CloudFormation console and fix the resource named there".into(),
        },
        // CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, IMPORT_COMPLETE, ...
        Some(_) => Start::Update,
    }
}

/// A kept bucket that the engine cannot import into a new stack.
fn import_impossible(stack: &str, bucket: &str, cause: &str) -> Error {
    Error::Provision(prov::Error::Blocked {
        stack: stack.to_owned(),
        status: "not created".into(),
        why: format!(
            "bucket {bucket} exists (kept by an earlier deprovision?) and CloudFormation could not import it into the stack ({cause})"
        ),
        hint: format!(
            "give a new bucket name with --bucket, or delete the kept bucket and its caches first: `cachectl deprovision --stack {stack} --bucket {bucket} --delete-bucket`"
        ),
    })
}

fn blocked(stack: &str, status: &str, why: &str, hint: String) -> Error {
    Error::Provision(prov::Error::Blocked {
        stack: stack.to_owned(),
        status: status.to_owned(),
        why: why.to_owned(),
        hint,
    })
}

pub async fn run(g: &GlobalArgs, args: ProvisionArgs) -> Result<ExitStatus, Error> {
    let loaded = load(
        g,
        args.stack.as_deref(),
        args.bucket.as_deref(),
        args.region.as_deref(),
        args.role_arn.as_deref(),
    )?;
    // clap counts a flag's default as given, so `requires = "check"` cannot say this.
    if args.run_prune && !args.check {
        return Err(Error::Usage {
            message: "--run-prune works with --check only".into(),
            hint: Some("cachectl provision --check --run-prune".into()),
        });
    }
    let s = &loaded.settings;
    let prune_name = template::prune_project_name(&s.stack);
    if s.projects.iter().any(|p| p.name == prune_name) {
        return Err(Error::Provision(prov::Error::Settings {
            message: format!(
                "[provision.project.{prune_name}]: the stack's prune project has that name"
            ),
            hint: "give the project another name, or the stack another --stack".into(),
        }));
    }
    if let Some(dir) = args.binaries.as_deref() {
        let fix =
            || Some("give the directory bootstrap/build-release.sh fills (target/dist)".into());
        if !dir.is_dir() {
            return Err(Error::Usage {
                message: format!("--binaries {}: not a directory", dir.display()),
                hint: fix(),
            });
        }
        // A version's binary is never overwritten once uploaded: a wrong file must not get there.
        let (found, _) = install::binaries(Some(dir), env!("CARGO_PKG_VERSION"));
        for b in found.iter().filter(|b| b.target != install::own_target()) {
            if let Some(why) = install::not_for(&b.path, b.target) {
                return Err(Error::Usage {
                    message: format!("--binaries: {why}"),
                    hint: fix(),
                });
            }
        }
    }
    let inputs = Inputs {
        settings: s,
        namespace: &loaded.namespace,
        prune_args: &loaded.prune_args,
    };
    let rendered = template::to_text(&template::render(&inputs));
    if args.print_template {
        output::print(&rendered)?;
        return Ok(ExitStatus::Success);
    }
    let (conf, caller) = connect(s.region.as_deref()).await?;
    let deployer = deploy::Deployer::new(&conf, &s.stack, s.role_arn.clone());
    if args.check {
        return check::run(g, &args, &loaded, &conf, &deployer, &caller).await;
    }
    let bucket = match &s.bucket {
        Some(b) => b.clone(),
        None => {
            default_bucket(&s.stack, &caller.account, &caller.region).map_err(|m| Error::Usage {
                message: m,
                hint: Some("name the bucket: --bucket NAME or `bucket` in [provision]".into()),
            })?
        }
    };
    let s3 = s3_client(&conf);

    // Where the stack is decides the kind of change set.
    let existing = deployer.describe().await.map_err(Error::Provision)?;
    let status = existing.as_ref().map(|st| st.status.as_str());
    let kind = match start_from(&s.stack, status, args.yes && !args.dry_run) {
        Start::Create => ChangeSetType::Create,
        Start::Update => ChangeSetType::Update,
        Start::DeleteThenCreate => {
            output::say(&format!(
                "stack {} is {} from an earlier failed create: deleting it first",
                s.stack,
                status.unwrap_or_default()
            ));
            deployer
                .delete(&mut print_event)
                .await
                .map_err(Error::Provision)?;
            ChangeSetType::Create
        }
        Start::Blocked { why, hint } => {
            return Err(blocked(&s.stack, status.unwrap_or_default(), why, hint))
        }
    };

    // A bucket kept by an earlier deprovision: taken back into the new stack by a resource
    // import, where the engine supports it.
    let mut import = Vec::new();
    let kept = if kind == ChangeSetType::Create {
        match teardown::size(&s3, &bucket).await {
            Ok(size) => size.is_some(),
            // Bucket names are global: one we may not list is someone else's.
            Err(prov::Error::S3 { source, .. }) if source.kind == crate::aws::Kind::Denied => {
                return Err(Error::Provision(prov::Error::Settings {
                    message: format!(
                        "bucket {bucket} exists and is not yours to use (S3 bucket names are global; listing it was denied)"
                    ),
                    hint: "give another name: --bucket NAME or `bucket` in [provision]".into(),
                }));
            }
            Err(e) => return Err(Error::Provision(e)),
        }
    } else {
        false
    };
    if kept {
        import.push(
            ResourceToImport::builder()
                .resource_type("AWS::S3::Bucket")
                .logical_resource_id(template::BUCKET)
                .resource_identifier("BucketName", &bucket)
                .build(),
        );
    }
    let (plan_template, plan_kind) = if import.is_empty() {
        (rendered.clone(), kind.clone())
    } else {
        output::say(&format!(
            "bucket {bucket} exists (kept by an earlier deprovision?): importing it into the stack"
        ));
        (template::import_only(&rendered), ChangeSetType::Import)
    };
    let planned = deployer
        .plan(&plan_template, plan_kind, import.clone())
        .await
        .map_err(|e| match e {
            prov::Error::ChangeSetFailed { .. } | prov::Error::Aws(_) if !import.is_empty() => {
                import_impossible(&s.stack, &bucket, &e.to_string())
            }
            e => Error::Provision(e),
        })?;

    let Some(planned) = planned else {
        output::say(&format!("stack {}: no changes", s.stack));
        let outputs = outputs_of(
            existing.map(|e| e.outputs).unwrap_or_default(),
            s,
            &bucket,
            &caller,
        );
        let uploads = if args.dry_run {
            Vec::new()
        } else {
            upload(&s3, &bucket, args.binaries.as_deref()).await?
        };
        finish(g.json, "unchanged", &s.stack, &[], &outputs, &uploads)?;
        return Ok(ExitStatus::Success);
    };
    print_plan(&s.stack, &planned.changes);
    if args.dry_run {
        deployer.discard(&planned).await.map_err(Error::Provision)?;
        output::say("dry run: nothing was changed");
        let outs = template::expected_outputs(
            s,
            &bucket,
            &caller.account,
            &caller.region,
            caller.partition(),
        );
        finish(g.json, "planned", &s.stack, &planned.changes, &outs, &[])?;
        return Ok(ExitStatus::Success);
    }
    if !args.yes {
        match confirm(&format!("apply this plan to stack {}?", s.stack)) {
            Some(true) => {}
            answer => {
                deployer.discard(&planned).await.map_err(Error::Provision)?;
                finish(
                    g.json,
                    "planned",
                    &s.stack,
                    &planned.changes,
                    &BTreeMap::new(),
                    &[],
                )?;
                if answer.is_none() {
                    return Err(not_confirmed(&format!("stack {}", s.stack)));
                }
                output::say("not applied");
                return Ok(ExitStatus::Failure);
            }
        }
    }
    let changes = planned.changes.clone();
    let applied = deployer.apply(planned, &mut print_event).await;
    let mut stack = match applied {
        Ok(stack) => stack,
        Err(e) if !import.is_empty() => {
            // The engine could not take the bucket in: leave no half-made stack, and say
            // what to do in one line rather than pass its failure on.
            let _ = deployer.delete_new().await;
            let cause = match &e {
                prov::Error::Failed { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            return Err(import_impossible(&s.stack, &bucket, &cause));
        }
        Err(e) => return Err(Error::Provision(e)),
    };
    if !import.is_empty() {
        // Step two of taking the bucket back: the rest of the stack.
        if let Some(rest) = deployer
            .plan(&rendered, ChangeSetType::Update, Vec::new())
            .await
            .map_err(Error::Provision)?
        {
            print_plan(&s.stack, &rest.changes);
            stack = deployer
                .apply(rest, &mut print_event)
                .await
                .map_err(Error::Provision)?;
        }
    }
    let outcome = if kind == ChangeSetType::Create {
        "created"
    } else {
        "updated"
    };
    output::say(&format!("stack {}: {}", s.stack, stack.status));
    let outs = outputs_of(stack.outputs, s, &bucket, &caller);
    let bucket = outs.get(outputs::BUCKET).cloned().unwrap_or(bucket);
    let uploads = upload(&s3, &bucket, args.binaries.as_deref()).await?;
    finish(g.json, outcome, &s.stack, &changes, &outs, &uploads)?;
    Ok(ExitStatus::Success)
}

async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    binaries: Option<&std::path::Path>,
) -> Result<Vec<install::Upload>, Error> {
    let version = env!("CARGO_PKG_VERSION");
    let (found, missing) = install::binaries(binaries, version);

    for target in missing {
        output::warn(
            "provision",
            &format!("no {target} binary to upload: builds on that architecture cannot install cachectl {version} from the bucket"),
            Some("build it (bootstrap/build-release.sh) and run provision again with --binaries target/dist"),
        );
    }
    if !cfg!(target_env = "musl") {
        output::warn(
            "provision",
            "this cachectl is not the static musl build: CodeBuild images with another C library may not run the uploaded binary",
            Some("provision with a release binary (bootstrap/build-release.sh)"),
        );
    }
    let done = install::upload(s3, bucket, version, &found)
        .await
        .map_err(Error::Provision)?;
    for u in &done {
        if u.result == install::Uploaded::Uploaded {
            output::say(&format!("uploaded {}", u.object));
        }
    }
    Ok(done)
}

fn finish(
    j: bool,
    outcome: &str,
    stack: &str,
    changes: &[Change],
    outs: &BTreeMap<String, String>,
    uploads: &[install::Upload],
) -> Result<(), Error> {
    // The outputs and the buildspec lines are the result: stdout (unless --json, whose object
    // carries them), so `cachectl provision --yes > setup.txt` keeps them.
    if !outs.is_empty() && !j {
        let mut text = String::from("outputs:\n");
        for (k, v) in outs {
            text += &format!("  {k:<20} {v}\n");
        }
        if let (Some(store), Some(bucket)) = (outs.get(outputs::STORE), outs.get(outputs::BUCKET)) {
            let policy = |key: &str, name: &'static str| outs.get(key).map_or(name, String::as_str);
            text += &format!(
                "in each buildspec (and attach {} to the project's role, {} to a pull-request project's):\n  env:\n    variables:\n      CACHE_BUCKET: {bucket}\n      CACHECTL_STORE: {store}\n",
                policy(outputs::READ_WRITE_POLICY, "the read-write policy"),
                policy(outputs::PULL_REQUEST_POLICY, "the pull-request policy"),
            );
        }
        output::print(&text)?;
    }
    report(
        j,
        json!({
            "outcome": outcome,
            "stack": stack,
            "changes": changes,
            "outputs": outputs_json(outs),
            "uploads": uploads,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stack status provision may meet (moto never rolls back, so the failed ones are
    /// only reachable here).
    #[test]
    fn each_stack_status_starts_the_right_way() {
        let label = |s: Start| match s {
            Start::Create => "create".to_owned(),
            Start::Update => "update".to_owned(),
            Start::DeleteThenCreate => "delete, then create".to_owned(),
            Start::Blocked { why, .. } => why.to_owned(),
        };
        let cases = [
            (None, true, "create"),
            (Some("REVIEW_IN_PROGRESS"), false, "create"),
            (Some("CREATE_COMPLETE"), false, "update"),
            (Some("UPDATE_ROLLBACK_COMPLETE"), true, "update"),
            (Some("IMPORT_COMPLETE"), true, "update"),
            (Some("ROLLBACK_COMPLETE"), true, "delete, then create"),
            (
                Some("ROLLBACK_COMPLETE"),
                false,
                "an earlier create failed and was rolled back; a stack in this state can only be deleted",
            ),
            (Some("UPDATE_ROLLBACK_FAILED"), true, "an update failed and so did its rollback"),
            (Some("UPDATE_IN_PROGRESS"), true, "another operation on the stack is running"),
            (Some("DELETE_FAILED"), true, "the stack is in a failed state"),
        ];
        for (status, apply, want) in cases {
            assert_eq!(
                label(start_from("cachectl", status, apply)),
                want,
                "{status:?} apply={apply}"
            );
        }
        match start_from("team", Some("UPDATE_ROLLBACK_FAILED"), true) {
            Start::Blocked { hint, .. } => assert!(
                hint.contains("aws cloudformation continue-update-rollback --stack-name team"),
                "{hint}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
