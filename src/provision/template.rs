//! Settings -> the CloudFormation template of the account set-up: pure, deterministic JSON
//! (serde_json's maps are sorted), so the same settings always render the same bytes and a
//! change set names exactly what changed.
//!
//! Every ARN is built with `Fn::Sub` from pseudo parameters and `Ref`s: `Fn::GetAtt` is used
//! only on IAM roles, so engines that model a subset of resource types (the tests' local
//! endpoint) can still deploy the rest.

use super::cfn::{sub, tags};
use super::policy::{allow, assume_role, build_role, document, managed_policy, Arns, PolicySpec};
use crate::aws::iam;
use crate::config::provision::{logical_id_part, ProjectSettings, ProvisionSettings};
use serde_json::{json, Value};

/// The stack tag every resource and the stack itself carry (`managed-by=cachectl`).
pub use super::cfn::{TAG_KEY, TAG_VALUE};

/// SSE-KMS: reading an object decrypts its data key; writing one asks for a new data key.
const KMS_DECRYPT: &str = "kms:Decrypt";
const KMS_GENERATE_DATA_KEY: &str = "kms:GenerateDataKey";

/// Logical ids the commands look up.
pub const BUCKET: &str = "CacheBucket";
pub const PRUNE_PROJECT: &str = "PruneProject";

/// Output names (the stack's `Outputs`), read back by provision, `--check` and deprovision.
pub mod outputs {
    pub const STORE: &str = "Store";
    pub const BUCKET: &str = "Bucket";
    pub const READ_WRITE_POLICY: &str = "ReadWritePolicyArn";
    pub const READ_ONLY_POLICY: &str = "ReadOnlyPolicyArn";
    pub const PULL_REQUEST_POLICY: &str = "PullRequestPolicyArn";
    pub const PRUNE_POLICY: &str = "PrunePolicyArn";
    pub const PRUNE_PROJECT: &str = "PruneProject";
    pub const DASHBOARD: &str = "Dashboard";
}

/// What the template is rendered from besides `[provision]`.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub settings: &'a ProvisionSettings,
    /// `[metrics] namespace`: the only namespace the policies let builds publish to.
    pub namespace: &'a str,
    /// `cachectl prune` flags from `[prune]`, e.g. `["--max-unused", "14d"]`.
    pub prune_args: &'a [String],
}

/// The CodeBuild project names the stack creates: the prune project, then the declared ones.
pub fn project_names(s: &ProvisionSettings) -> Vec<String> {
    std::iter::once(prune_project_name(&s.stack))
        .chain(s.projects.iter().map(|p| p.name.clone()))
        .collect()
}

pub fn prune_project_name(stack: &str) -> String {
    format!("{stack}-prune")
}

/// The bucket name as a template value: the given name, or `<stack>-<account>-<region>`.
fn bucket_name(s: &ProvisionSettings) -> Value {
    match &s.bucket {
        Some(b) => json!(b),
        None => sub(&format!(
            "{}-${{AWS::AccountId}}-${{AWS::Region}}",
            s.stack.to_ascii_lowercase()
        )),
    }
}

fn env_var(name: &str, value: Value) -> Value {
    json!({ "Name": name, "Type": "PLAINTEXT", "Value": value })
}

/// The environment every project of the stack gets: where the store and the binaries are.
fn store_env(s: &ProvisionSettings) -> Vec<Value> {
    vec![
        env_var("CACHE_BUCKET", json!({ "Ref": BUCKET })),
        env_var(
            crate::env::STORE,
            sub(&format!("s3://${{{BUCKET}}}/{}", s.prefix)),
        ),
    ]
}

/// The prune project's buildspec: install cachectl from the bucket, run the `[prune]` policy,
/// then publish yesterday's time saved per project for the dashboard.
/// A scheduled job nobody watches is strict: a cache-layer problem fails its build, which the
/// alarm reports.
fn prune_buildspec(prune_args: &[String]) -> String {
    let args: String = prune_args
        .iter()
        .map(|a| format!(" '{}'", a.replace('\'', r"'\''")))
        .collect();
    format!(
        "version: 0.2\n\
         phases:\n\
         \x20 install:\n\
         \x20   commands:\n\
         \x20     - aws s3 cp --only-show-errors \"s3://$CACHE_BUCKET/cachectl/install.sh\" /tmp/cachectl-install.sh\n\
         \x20     - sh /tmp/cachectl-install.sh\n\
         \x20 build:\n\
         \x20   commands:\n\
         \x20     - cachectl prune{args}\n\
         \x20     - cachectl stats --publish\n"
    )
}

/// The signing key's secret for project `p`: none for a project that builds pull requests.
fn signing_key_secret<'a>(p: &ProjectSettings, s: &'a ProvisionSettings) -> Option<&'a str> {
    s.signing_key_secret.as_deref().filter(|_| !p.pull_requests)
}

fn project(p: &ProjectSettings, role: &str, s: &ProvisionSettings) -> Value {
    let mut env = store_env(s);
    if let Some(arn) = signing_key_secret(p, s) {
        // CodeBuild resolves it when the build starts; the plain text is never in the template.
        env.push(
            json!({ "Name": crate::env::SIGNING_KEY, "Type": "SECRETS_MANAGER", "Value": arn }),
        );
    }
    env.extend(p.environment.iter().map(|(k, v)| env_var(k, json!(v))));
    let mut source = json!({ "Type": p.source_type });
    if let Some(l) = &p.source_location {
        source["Location"] = json!(l);
    }
    if let Some(b) = &p.buildspec {
        source["BuildSpec"] = json!(b);
    }
    let mut props = json!({
        "Name": p.name,
        "ServiceRole": { "Fn::GetAtt": [role, "Arn"] },
        "Source": source,
        "Artifacts": { "Type": if p.source_type == "CODEPIPELINE" { "CODEPIPELINE" } else { "NO_ARTIFACTS" } },
        "Environment": {
            "Type": p.arch.environment_type(),
            "ComputeType": p.compute_type,
            "Image": p.image.as_deref().unwrap_or(p.arch.default_image()),
            "EnvironmentVariables": env,
        },
        // cachectl is the cache: CodeBuild's own would upload the same trees a second time.
        "Cache": { "Type": "NO_CACHE" },
        "Tags": tags(),
    });
    if let Some(d) = &p.description {
        props["Description"] = json!(d);
    }
    json!({ "Type": "AWS::CodeBuild::Project", "Properties": props })
}

/// The template for `inputs`, as a JSON value with sorted keys.
pub fn render(inputs: &Inputs<'_>) -> Value {
    let s = inputs.settings;
    let prune = prune_project_name(&s.stack);
    let mut resources = serde_json::Map::new();
    let mut add = |id: &str, v: Value| {
        // Logical ids are unique by construction (fixed names, `Project<Name>`,
        // `BuildRole<Name>`, project names unique once `-` and `_` are dropped).
        let previous = resources.insert(id.to_owned(), v);
        assert!(previous.is_none(), "logical id {id} used twice");
    };

    // The bucket. Retained: deleting the stack never drops caches (deprovision --delete-bucket
    // does, on purpose). Versioning stays off: keys are immutable, and versions would keep
    // deleted caches billable.
    let encryption = match &s.kms_key {
        Some(key) => json!({
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key,
        }),
        None => json!({ "SSEAlgorithm": "AES256" }),
    };
    let mut rules = vec![json!({
        "Id": "abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 1 },
    })];
    if let Some(days) = s.expire_after_days {
        rules.push(json!({
            "Id": "expire-caches-backstop",
            "Status": "Enabled",
            "Prefix": format!("{}/", s.prefix),
            "ExpirationInDays": days,
        }));
    }
    add(
        BUCKET,
        json!({
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": bucket_name(s),
                "BucketEncryption": { "ServerSideEncryptionConfiguration": [{
                    "ServerSideEncryptionByDefault": encryption,
                    "BucketKeyEnabled": s.kms_key.is_some(),
                }]},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true, "BlockPublicPolicy": true,
                    "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
                },
                "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
                "LifecycleConfiguration": { "Rules": rules },
                "Tags": tags(),
            },
        }),
    );

    // Bucket policy: TLS only; other accounts as configured.
    let arns = Arns::new(&s.prefix);
    let mut statements = vec![json!({
        "Sid": "DenyWithoutTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arns.bucket.clone(), sub("arn:${AWS::Partition}:s3:::${CacheBucket}/*")],
        "Condition": { "Bool": { "aws:SecureTransport": "false" } },
    })];
    let principals = |accounts: &[String]| -> Value {
        json!({ "AWS": accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect::<Vec<_>>() })
    };
    let readers: Vec<String> = s
        .read_accounts
        .iter()
        .chain(&s.write_accounts)
        .cloned()
        .collect();
    if !readers.is_empty() {
        statements.push(json!({
            "Sid": "OtherAccountsRead",
            "Effect": "Allow",
            "Principal": principals(&readers),
            "Action": [iam::S3_GET_OBJECT],
            "Resource": [arns.cache_objects.clone(), arns.install_objects.clone()],
        }));
        statements.push(json!({
            "Sid": "OtherAccountsList",
            "Effect": "Allow",
            "Principal": principals(&readers),
            "Action": [iam::S3_LIST_BUCKET],
            "Resource": arns.bucket.clone(),
            "Condition": { "StringLike": { "s3:prefix": [format!("{}/*", s.prefix)] } },
        }));
        // Restores by readers record their use, as the read-only policy allows.
        let (writers, use_only): (Vec<String>, Vec<String>) =
            (s.write_accounts.clone(), s.read_accounts.clone());
        if !use_only.is_empty() {
            statements.push(json!({
                "Sid": "OtherAccountsRecordUse",
                "Effect": "Allow",
                "Principal": principals(&use_only),
                "Action": [iam::S3_PUT_OBJECT],
                "Resource": arns.use_records.clone(),
            }));
        }
        if !writers.is_empty() {
            statements.push(json!({
                "Sid": "OtherAccountsWrite",
                "Effect": "Allow",
                "Principal": principals(&writers),
                "Action": [iam::S3_PUT_OBJECT, iam::S3_ABORT_MULTIPART_UPLOAD],
                "Resource": arns.cache_objects.clone(),
            }));
        }
    }
    add(
        "CacheBucketPolicy",
        json!({
            "Type": "AWS::S3::BucketPolicy",
            "Properties": { "Bucket": { "Ref": BUCKET }, "PolicyDocument": document(statements) },
        }),
    );

    // Managed policies for users' own roles, exported. Listing is its own statement, limited
    // to the prefix.
    let build_objects: Vec<&str> = iam::BUILD_S3
        .iter()
        .copied()
        .filter(|a| *a != iam::S3_LIST_BUCKET)
        .collect();
    add(
        "ReadWritePolicy",
        managed_policy(
            PolicySpec {
                name_suffix: "read-write",
                description: "cachectl restore and save on the cache bucket",
                object_actions: &build_objects,
                extra: Vec::new(),
                bucket_actions: &[],
                kms_actions: &[KMS_DECRYPT, KMS_GENERATE_DATA_KEY],
                roles: &s.attach_roles,
            },
            inputs.settings,
            inputs.namespace,
        ),
    );
    // Restoring records the use of what it restored, so both restore-only policies write
    // use records (and GenerateDataKey on SSE-KMS for them).
    let record_use = allow("RecordUse", &[iam::S3_PUT_OBJECT], arns.use_records.clone());
    add(
        "ReadOnlyPolicy",
        managed_policy(
            PolicySpec {
                name_suffix: "read-only",
                // A managed policy's Description is immutable (replacing a named policy fails
                // the update), so this text stays as deployed; the output's says what it is for.
                description:
                    "cachectl restore only (untrusted builds): reads entries, records their use",
                object_actions: &[iam::S3_GET_OBJECT],
                extra: vec![record_use.clone()],
                bucket_actions: &[],
                kms_actions: &[KMS_DECRYPT, KMS_GENERATE_DATA_KEY],
                roles: &s.attach_read_only_roles,
            },
            inputs.settings,
            inputs.namespace,
        ),
    );
    add(
        "PullRequestPolicy",
        managed_policy(
            PolicySpec {
                name_suffix: "pull-request",
                description:
                    "cachectl for pull-request builds: restore, and save under untrusted/ only",
                object_actions: &[iam::S3_GET_OBJECT],
                extra: vec![
                    record_use,
                    // Every untrusted scope lives under this one prefix (src/key.rs).
                    allow(
                        "SaveUntrusted",
                        &[iam::S3_PUT_OBJECT, iam::S3_ABORT_MULTIPART_UPLOAD],
                        arns.untrusted_objects.clone(),
                    ),
                ],
                bucket_actions: &[],
                kms_actions: &[KMS_DECRYPT, KMS_GENERATE_DATA_KEY],
                roles: &s.attach_pull_request_roles,
            },
            inputs.settings,
            inputs.namespace,
        ),
    );
    add(
        "PrunePolicy",
        managed_policy(
            PolicySpec {
                name_suffix: "prune",
                description: "cachectl prune and rm on the cache bucket",
                object_actions: &[
                    iam::S3_GET_OBJECT,
                    iam::S3_DELETE_OBJECT,
                    iam::S3_ABORT_MULTIPART_UPLOAD,
                ],
                // `stats --publish` reads the builds' metrics back (neither action takes a
                // resource).
                extra: vec![allow("ReadMetrics", iam::READ_METRICS, json!("*"))],
                bucket_actions: &[iam::S3_LIST_BUCKET_MULTIPART_UPLOADS],
                kms_actions: &[KMS_DECRYPT],
                roles: &[],
            },
            inputs.settings,
            inputs.namespace,
        ),
    );

    // The prune project, its role and logs, its schedule, and an alarm when it fails.
    add("PruneRole", build_role(&prune, "PrunePolicy", None));
    add(
        "PruneLogGroup",
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": format!("/aws/codebuild/{prune}"),
                "RetentionInDays": s.log_retention_days,
                "Tags": tags(),
            },
        }),
    );
    let mut prune_env = store_env(s);
    prune_env.push(env_var(crate::env::STRICT, json!("true")));
    prune_env.push(env_var(
        crate::env::METRICS_NAMESPACE,
        json!(inputs.namespace),
    ));
    add(
        PRUNE_PROJECT,
        json!({
            "Type": "AWS::CodeBuild::Project",
            "DependsOn": ["PruneLogGroup"],
            "Properties": {
                "Name": prune,
                "Description": "cachectl prune on a schedule: deletes cache entries by age, last use and total size",
                "ServiceRole": { "Fn::GetAtt": ["PruneRole", "Arn"] },
                "Source": { "Type": "NO_SOURCE", "BuildSpec": prune_buildspec(inputs.prune_args) },
                "Artifacts": { "Type": "NO_ARTIFACTS" },
                "Environment": {
                    "Type": "LINUX_CONTAINER",
                    "ComputeType": "BUILD_GENERAL1_SMALL",
                    "Image": crate::config::provision::Arch::X86_64.default_image(),
                    "EnvironmentVariables": prune_env,
                },
                "LogsConfig": { "CloudWatchLogs": { "Status": "ENABLED", "GroupName": format!("/aws/codebuild/{prune}") } },
                "TimeoutInMinutes": 60,
                "Cache": { "Type": "NO_CACHE" },
                "Tags": tags(),
            },
        }),
    );
    let prune_arn = sub(&format!(
        "arn:${{AWS::Partition}}:codebuild:${{AWS::Region}}:${{AWS::AccountId}}:project/{prune}"
    ));
    add(
        "PruneScheduleRole",
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": assume_role("events.amazonaws.com"),
                "Policies": [{
                    "PolicyName": "start-prune",
                    "PolicyDocument": document(vec![allow("StartPrune", &["codebuild:StartBuild"], prune_arn.clone())]),
                }],
                "Tags": tags(),
            },
        }),
    );
    add(
        "PruneSchedule",
        json!({
            "Type": "AWS::Events::Rule",
            "DependsOn": [PRUNE_PROJECT],
            "Properties": {
                "Name": prune.clone(),
                "Description": "Runs the cachectl prune project",
                "ScheduleExpression": s.schedule,
                "State": "ENABLED",
                "Targets": [{
                    "Id": "prune",
                    "Arn": prune_arn,
                    "RoleArn": { "Fn::GetAtt": ["PruneScheduleRole", "Arn"] },
                }],
            },
        }),
    );
    let mut alarm = json!({
            "Type": "AWS::CloudWatch::Alarm",
            "DependsOn": [PRUNE_PROJECT],
            "Properties": {
                "AlarmName": format!("{prune}-failed"),
                "AlarmDescription": "A scheduled cachectl prune build failed: the cache bucket is no longer kept small",
                "Namespace": "AWS/CodeBuild",
                "MetricName": "FailedBuilds",
                "Dimensions": [{ "Name": "ProjectName", "Value": prune }],
                "Statistic": "Sum",
                "Period": 86400,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
    });
    if let Some(topic) = &s.alarm_topic {
        alarm["Properties"]["AlarmActions"] = json!([topic]);
    }
    add("PruneFailedAlarm", alarm);

    add(
        "Dashboard",
        json!({
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": s.stack,
                "DashboardBody": sub(&super::dashboard::body(inputs.namespace)),
            },
        }),
    );

    // Declared build projects: pull-request ones get the pull-request policy and no signing key.
    for p in &s.projects {
        let id = logical_id_part(&p.name);
        let role = format!("BuildRole{id}");
        let policy = if p.pull_requests {
            "PullRequestPolicy"
        } else {
            "ReadWritePolicy"
        };
        add(&role, build_role(&p.name, policy, signing_key_secret(p, s)));
        add(&format!("Project{id}"), project(p, &role, s));
    }

    let export = |name: &str, value: Value, description: &str| {
        json!({
            "Description": description,
            "Value": value,
            "Export": { "Name": sub(&format!("${{AWS::StackName}}-{name}")) },
        })
    };
    let outputs = json!({
        outputs::STORE: export(outputs::STORE, sub(&format!("s3://${{{BUCKET}}}/{}", s.prefix)), "CACHECTL_STORE for builds"),
        outputs::BUCKET: export(outputs::BUCKET, json!({ "Ref": BUCKET }), "The cache bucket (CACHE_BUCKET for builds)"),
        outputs::READ_WRITE_POLICY: export(outputs::READ_WRITE_POLICY, json!({ "Ref": "ReadWritePolicy" }), "Attach to build roles that restore and save"),
        outputs::READ_ONLY_POLICY: export(outputs::READ_ONLY_POLICY, json!({ "Ref": "ReadOnlyPolicy" }), "Attach to build roles that only restore (never save)"),
        outputs::PULL_REQUEST_POLICY: export(outputs::PULL_REQUEST_POLICY, json!({ "Ref": "PullRequestPolicy" }), "Attach to pull-request build roles: restore, save under untrusted/ only"),
        outputs::PRUNE_POLICY: export(outputs::PRUNE_POLICY, json!({ "Ref": "PrunePolicy" }), "What cachectl prune and rm need"),
        outputs::PRUNE_PROJECT: export(outputs::PRUNE_PROJECT, json!(prune), "The scheduled prune project"),
        outputs::DASHBOARD: export(outputs::DASHBOARD, sub(&format!(
            "https://${{AWS::Region}}.console.aws.amazon.com/cloudwatch/home?region=${{AWS::Region}}#dashboards:name={}", s.stack
        )), "The cache dashboard"),
    });

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "cachectl: build caches in S3 for CodeBuild (bucket, policies, scheduled prune, dashboard)",
        "Resources": resources,
        "Outputs": outputs,
    })
}

/// The outputs the template gives the stack, computed from the names it sets: what
/// `DescribeStacks` reports after a deploy. Used where the stack reports none (an engine that
/// does not evaluate outputs); `partition` is `aws` outside China and GovCloud.
pub fn expected_outputs(
    s: &ProvisionSettings,
    bucket: &str,
    account: &str,
    region: &str,
    partition: &str,
) -> std::collections::BTreeMap<String, String> {
    let policy =
        |suffix: &str| format!("arn:{partition}:iam::{account}:policy/{}-{suffix}", s.stack);
    [
        (outputs::STORE, format!("s3://{bucket}/{}", s.prefix)),
        (outputs::BUCKET, bucket.to_owned()),
        (outputs::READ_WRITE_POLICY, policy("read-write")),
        (outputs::READ_ONLY_POLICY, policy("read-only")),
        (outputs::PULL_REQUEST_POLICY, policy("pull-request")),
        (outputs::PRUNE_POLICY, policy("prune")),
        (outputs::PRUNE_PROJECT, prune_project_name(&s.stack)),
        (
            outputs::DASHBOARD,
            format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={}", s.stack),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The template as the text deployed and printed: pretty JSON, sorted keys, a final newline.
pub fn to_text(template: &Value) -> String {
    let mut text = serde_json::to_string_pretty(template).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// The template reduced to the bucket alone: what a resource import into a new stack may hold
/// (an IMPORT change set adds nothing else; the rest follows as an update).
pub fn import_only(text: &str) -> String {
    let mut v: Value = serde_json::from_str(text).expect("a rendered template parses");
    let bucket = v["Resources"][BUCKET].clone();
    v["Resources"] = json!({ BUCKET: bucket });
    if let Some(o) = v.as_object_mut() {
        o.remove("Outputs");
    }
    to_text(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provision::{Arch, ProjectSettings};
    use std::path::PathBuf;

    const NAMESPACE: &str = "Cachectl";
    const SECRET: &str =
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:cachectl/signing-AbC123";

    fn prune() -> Vec<String> {
        ["--max-unused", "14d"].map(String::from).to_vec()
    }

    /// The settings each golden template is rendered from, by file name.
    fn cases() -> Vec<(&'static str, ProvisionSettings)> {
        let d = ProvisionSettings::default;
        // A trusted project; the pull-request case builds the same repository twice.
        let app = ProjectSettings {
            name: "app".into(),
            source_type: "GITHUB".into(),
            source_location: Some("https://github.com/example/app.git".into()),
            buildspec: None,
            image: None,
            compute_type: "BUILD_GENERAL1_SMALL".into(),
            arch: Arch::X86_64,
            environment: vec![("NODE_ENV".into(), "test".into())],
            description: Some("main branch builds".into()),
            pull_requests: false,
        };
        vec![
            ("defaults", d()),
            (
                "sse-kms",
                ProvisionSettings {
                    kms_key: Some(
                        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                            .into(),
                    ),
                    bucket: Some("team-caches".into()),
                    expire_after_days: None,
                    ..d()
                },
            ),
            (
                "other-accounts",
                ProvisionSettings {
                    read_accounts: vec!["111122223333".into()],
                    write_accounts: vec!["444455556666".into()],
                    alarm_topic: Some("arn:aws:sns:us-east-1:111122223333:build-alerts".into()),
                    prefix: "ci/cache".into(),
                    ..d()
                },
            ),
            (
                "projects",
                ProvisionSettings {
                    stack: "web-caches".into(),
                    schedule: "cron(0 3 * * ? *)".into(),
                    log_retention_days: 14,
                    projects: vec![
                        ProjectSettings {
                            name: "web-app".into(),
                            source_type: "GITHUB".into(),
                            source_location: Some("https://github.com/example/web-app.git".into()),
                            buildspec: None,
                            image: None,
                            compute_type: "BUILD_GENERAL1_MEDIUM".into(),
                            arch: Arch::Arm64,
                            environment: vec![("NODE_ENV".into(), "test".into())],
                            description: Some("the web app".into()),
                            pull_requests: false,
                        },
                        ProjectSettings {
                            name: "nightly".into(),
                            source_type: "NO_SOURCE".into(),
                            source_location: None,
                            buildspec: Some("version: 0.2\nphases:\n  build:\n    commands:\n      - cachectl restore\n".into()),
                            image: Some("aws/codebuild/standard:7.0".into()),
                            compute_type: "BUILD_GENERAL1_SMALL".into(),
                            arch: Arch::X86_64,
                            environment: Vec::new(),
                            description: None,
                            pull_requests: false,
                        },
                    ],
                    ..d()
                },
            ),
            (
                "pull-requests",
                ProvisionSettings {
                    signing_key_secret: Some(SECRET.into()),
                    attach_pull_request_roles: vec!["ci-pull-requests".into()],
                    projects: vec![
                        app.clone(),
                        ProjectSettings {
                            name: "app-pr".into(),
                            description: Some("pull-request builds".into()),
                            pull_requests: true,
                            ..app
                        },
                    ],
                    ..d()
                },
            ),
            (
                "attach-roles",
                ProvisionSettings {
                    attach_roles: vec!["ci-build".into()],
                    attach_read_only_roles: vec!["ci-restore-only".into()],
                    attach_pull_request_roles: vec!["ci-pull-requests".into()],
                    ..d()
                },
            ),
        ]
    }

    fn golden(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/provision")
            .join(format!("{name}.json"))
    }

    fn rendered(s: &ProvisionSettings) -> Value {
        let prune = prune();
        render(&Inputs {
            settings: s,
            namespace: NAMESPACE,
            prune_args: &prune,
        })
    }

    /// Each settings case renders exactly its golden template (`CACHECTL_BLESS=1` rewrites
    /// them after a deliberate change; review the diff).
    #[test]
    fn templates_match_their_golden_files() {
        for (name, s) in cases() {
            let text = to_text(&rendered(&s));
            let path = golden(name);
            if std::env::var_os("CACHECTL_BLESS").is_some() {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (CACHECTL_BLESS=1 writes it)", path.display()));
            assert!(
                want == text,
                "{name}: the template differs from {}",
                path.display()
            );
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        for (name, s) in cases() {
            assert_eq!(to_text(&rendered(&s)), to_text(&rendered(&s)), "{name}");
        }
    }

    /// Every string in `v` with where it sits, `/`-joined.
    fn strings<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) => out.push((at, s)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| strings(x, format!("{at}/{i}"), out)),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| strings(x, format!("{at}/{k}"), out)),
            _ => {}
        }
    }

    fn statements(t: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (id, r) in t["Resources"].as_object().unwrap() {
            let inline = r["Properties"]["Policies"].as_array().cloned();
            let docs = std::iter::once(r["Properties"]["PolicyDocument"].clone()).chain(
                inline
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| p["PolicyDocument"].clone()),
            );
            for d in docs {
                for st in d["Statement"].as_array().cloned().unwrap_or_default() {
                    out.push((id.clone(), st));
                }
            }
        }
        out
    }

    #[test]
    fn templates_hold_the_safety_properties() {
        for (name, s) in cases() {
            let t = rendered(&s);
            let bucket = &t["Resources"][BUCKET];
            assert_eq!(bucket["DeletionPolicy"], "Retain", "{name}");
            let pab = &bucket["Properties"]["PublicAccessBlockConfiguration"];
            for k in [
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            ] {
                assert_eq!(pab[k], true, "{name}: {k}");
            }
            assert_eq!(
                bucket["Properties"]["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
                "BucketOwnerEnforced"
            );
            assert!(
                bucket["Properties"]
                    .get("VersioningConfiguration")
                    .is_none(),
                "{name}: versioning"
            );
            let rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
                .as_array()
                .unwrap();
            assert!(
                rules.iter().any(
                    |r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
                        && r["Status"] == "Enabled"
                ),
                "{name}: multipart abort rule"
            );
            let expiry = rules.iter().find(|r| r.get("ExpirationInDays").is_some());
            match s.expire_after_days {
                Some(d) => {
                    let e = expiry.unwrap_or_else(|| panic!("{name}: no expiry rule"));
                    assert_eq!(e["ExpirationInDays"], d);
                    assert_eq!(
                        e["Prefix"],
                        format!("{}/", s.prefix).as_str(),
                        "{name}: only the cache prefix expires"
                    );
                }
                None => assert!(expiry.is_none(), "{name}"),
            }
            let sse =
                &bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
            match &s.kms_key {
                Some(k) => {
                    assert_eq!(
                        sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"],
                        k.as_str()
                    );
                    assert_eq!(sse["BucketKeyEnabled"], true);
                }
                None => assert_eq!(
                    sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
                    "AES256"
                ),
            }

            let policy =
                &t["Resources"]["CacheBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"];
            assert!(
                policy
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|st| st["Effect"] == "Deny"
                        && st["Condition"]["Bool"]["aws:SecureTransport"] == "false"),
                "{name}: TLS-only deny"
            );

            for (id, st) in statements(&t) {
                if st["Effect"] != "Allow" {
                    continue;
                }
                let actions: Vec<String> = match &st["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
                    other => panic!("{name}/{id}: Action {other}"),
                };
                for a in &actions {
                    assert!(!a.contains('*'), "{name}/{id}: wildcard action {a}");
                }
                if actions.iter().any(|a| a == iam::CLOUDWATCH_PUT_METRIC_DATA) {
                    assert_eq!(
                        st["Condition"]["StringEquals"]["cloudwatch:namespace"], NAMESPACE,
                        "{name}/{id}: PutMetricData limited to the namespace"
                    );
                }
                if actions.iter().any(|a| a == iam::S3_LIST_BUCKET) {
                    assert!(
                        st["Condition"]["StringLike"]["s3:prefix"].is_array(),
                        "{name}/{id}: listing limited to the prefix"
                    );
                }
                if actions.iter().any(|a| a.starts_with("kms:")) {
                    assert_eq!(st["Resource"].as_str(), s.kms_key.as_deref(), "{name}/{id}");
                }
            }
            let kms_statements = statements(&t)
                .into_iter()
                .filter(|(_, st)| st["Sid"] == "CacheEncryptionKey")
                .count();
            assert_eq!(
                kms_statements,
                if s.kms_key.is_some() { 4 } else { 0 },
                "{name}"
            );

            // ARNs of the stack's own resources are built with Fn::Sub from pseudo parameters;
            // the only literal ARNs are the ones settings give (a KMS key, other accounts).
            let mut all = Vec::new();
            strings(&t, String::new(), &mut all);
            for (at, text) in all {
                if text.contains("${") {
                    assert!(
                        at.ends_with("/Fn::Sub") || at.contains("/Fn::Sub/"),
                        "{name}: {at} has ${{ outside Fn::Sub"
                    );
                }
                if text.starts_with("arn:") && !text.contains("${") {
                    let given = s.kms_key.as_deref() == Some(text)
                        || s.alarm_topic.as_deref() == Some(text)
                        || s.signing_key_secret.as_deref() == Some(text)
                        || s.read_accounts
                            .iter()
                            .chain(&s.write_accounts)
                            .any(|a| text == format!("arn:aws:iam::{a}:root"));
                    assert!(given, "{name}: literal ARN {text} at {at}");
                }
            }
            // Fn::GetAtt only on IAM roles (engines that model a subset of types still deploy).
            let mut targets = Vec::new();
            get_atts(&t, &mut targets);
            assert!(!targets.is_empty(), "{name}");
            for id in targets {
                assert_eq!(
                    t["Resources"][&id]["Type"], "AWS::IAM::Role",
                    "{name}: Fn::GetAtt on {id}"
                );
            }
        }
    }

    /// The logical ids every `Fn::GetAtt` in `v` names.
    fn get_atts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(a)) = o.get("Fn::GetAtt") {
                    out.push(a[0].as_str().unwrap().to_owned());
                }
                o.values().for_each(|x| get_atts(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| get_atts(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_alarm_tells_the_topic_when_one_is_given() {
        let (_, s) = cases()
            .into_iter()
            .find(|(n, _)| *n == "other-accounts")
            .unwrap();
        let t = rendered(&s);
        assert_eq!(
            t["Resources"]["PruneFailedAlarm"]["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:111122223333:build-alerts"])
        );
        let t = rendered(&ProvisionSettings::default());
        assert!(t["Resources"]["PruneFailedAlarm"]["Properties"]
            .get("AlarmActions")
            .is_none());
    }

    #[test]
    fn attached_roles_get_the_policies() {
        let (_, s) = cases()
            .into_iter()
            .find(|(n, _)| *n == "attach-roles")
            .unwrap();
        let t = rendered(&s);
        assert_eq!(
            t["Resources"]["ReadWritePolicy"]["Properties"]["Roles"],
            json!(["ci-build"])
        );
        assert_eq!(
            t["Resources"]["ReadOnlyPolicy"]["Properties"]["Roles"],
            json!(["ci-restore-only"])
        );
        assert_eq!(
            t["Resources"]["PullRequestPolicy"]["Properties"]["Roles"],
            json!(["ci-pull-requests"])
        );
        assert!(t["Resources"]["PrunePolicy"]["Properties"]
            .get("Roles")
            .is_none());
    }

    #[test]
    fn declared_projects_use_the_store_and_no_codebuild_cache() {
        let (_, s) = cases().into_iter().find(|(n, _)| *n == "projects").unwrap();
        let t = rendered(&s);
        let p = &t["Resources"]["ProjectWebApp"]["Properties"];
        assert_eq!(p["Name"], "web-app");
        assert_eq!(p["Cache"]["Type"], "NO_CACHE");
        assert_eq!(p["Environment"]["Type"], "ARM_CONTAINER");
        assert_eq!(
            p["ServiceRole"],
            json!({ "Fn::GetAtt": ["BuildRoleWebApp", "Arn"] })
        );
        let env = p["Environment"]["EnvironmentVariables"].as_array().unwrap();
        assert!(env.contains(&json!({ "Name": "CACHECTL_STORE", "Type": "PLAINTEXT", "Value": { "Fn::Sub": "s3://${CacheBucket}/cache" } })));
        assert!(env.contains(&json!({ "Name": "NODE_ENV", "Type": "PLAINTEXT", "Value": "test" })));
        assert_eq!(
            t["Resources"]["BuildRoleWebApp"]["Properties"]["ManagedPolicyArns"],
            json!([{ "Ref": "ReadWritePolicy" }])
        );
    }

    #[test]
    fn the_prune_project_runs_the_prune_settings_then_publishes_time_saved() {
        let t = rendered(&ProvisionSettings::default());
        let spec = t["Resources"][PRUNE_PROJECT]["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap();
        assert!(
            spec.ends_with(
                "      - cachectl prune '--max-unused' '14d'\n      - cachectl stats --publish\n"
            ),
            "{spec}"
        );
        let statements = t["Resources"]["PrunePolicy"]["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let read = statements
            .iter()
            .find(|s| s["Sid"] == "ReadMetrics")
            .unwrap_or_else(|| panic!("{statements:#?}"));
        assert_eq!(
            read["Action"],
            json!(["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"])
        );
        assert!(spec.contains("sh /tmp/cachectl-install.sh"), "{spec}");
    }

    fn case(name: &str) -> ProvisionSettings {
        cases()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no case {name}"))
            .1
    }

    /// The actions of every Allow statement of `doc`, with the statement's resource.
    fn grants(doc: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for st in doc["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow", "{st}");
            for a in st["Action"].as_array().unwrap() {
                out.push((a.as_str().unwrap().to_owned(), st["Resource"].clone()));
            }
        }
        out
    }

    /// The pull-request policy, statement by statement: read the prefix, record uses, write
    /// under untrusted/ and nowhere else, delete nothing.
    #[test]
    fn the_pull_request_policy_writes_only_under_untrusted() {
        let t = rendered(&ProvisionSettings::default());
        let p = &t["Resources"]["PullRequestPolicy"]["Properties"];
        assert_eq!(p["ManagedPolicyName"], "cachectl-pull-request");
        assert!(p.get("Roles").is_none());
        let bucket = "arn:${AWS::Partition}:s3:::${CacheBucket}";
        assert_eq!(
            p["PolicyDocument"],
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    { "Sid": "CacheObjects", "Effect": "Allow", "Action": ["s3:GetObject"],
                      "Resource": { "Fn::Sub": format!("{bucket}/cache/*") } },
                    { "Sid": "RecordUse", "Effect": "Allow", "Action": ["s3:PutObject"],
                      "Resource": { "Fn::Sub": format!("{bucket}/cache/v1-used/*") } },
                    { "Sid": "SaveUntrusted", "Effect": "Allow",
                      "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                      "Resource": { "Fn::Sub": format!("{bucket}/cache/untrusted/*") } },
                    { "Sid": "ListCachePrefix", "Effect": "Allow", "Action": ["s3:ListBucket"],
                      "Resource": { "Fn::Sub": bucket },
                      "Condition": { "StringLike": { "s3:prefix": ["cache/*"] } } },
                    { "Sid": "InstallCachectl", "Effect": "Allow", "Action": ["s3:GetObject"],
                      "Resource": { "Fn::Sub": format!("{bucket}/cachectl/*") } },
                    { "Sid": "PublishMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
                      "Resource": "*",
                      "Condition": { "StringEquals": { "cloudwatch:namespace": "Cachectl" } } },
                ],
            })
        );

        // Whatever the prefix and encryption: writes land under untrusted/ (or are use records
        // of trusted entries), never under v1/, and nothing is deleted.
        for (name, s) in cases() {
            let t = rendered(&s);
            let doc = &t["Resources"]["PullRequestPolicy"]["Properties"]["PolicyDocument"];
            let untrusted = json!({ "Fn::Sub": format!("{bucket}/{}/untrusted/*", s.prefix) });
            let used = json!({ "Fn::Sub": format!("{bucket}/{}/v1-used/*", s.prefix) });
            let writes: Vec<(String, Value)> = grants(doc)
                .into_iter()
                .filter(|(a, _)| !a.starts_with("kms:"))
                .filter(|(a, _)| {
                    ![
                        iam::S3_GET_OBJECT,
                        iam::S3_LIST_BUCKET,
                        iam::CLOUDWATCH_PUT_METRIC_DATA,
                    ]
                    .contains(&a.as_str())
                })
                .collect();
            assert_eq!(
                writes,
                [
                    (iam::S3_PUT_OBJECT.to_owned(), used),
                    (iam::S3_PUT_OBJECT.to_owned(), untrusted.clone()),
                    (iam::S3_ABORT_MULTIPART_UPLOAD.to_owned(), untrusted),
                ],
                "{name}"
            );
            let text = doc.to_string();
            assert!(!text.contains("s3:Delete"), "{name}: {text}");
            assert!(!text.contains("/v1/"), "{name}: {text}");
        }
        // The untrusted prefix is the one the store writes untrusted scopes to.
        assert!(to_text(&t).contains(&format!("/cache/{}/*", crate::key::UNTRUSTED_DIR)));
    }

    /// The read-only policy still writes nothing but use records.
    #[test]
    fn the_read_only_policy_writes_only_use_records() {
        let t = rendered(&ProvisionSettings::default());
        let doc = &t["Resources"]["ReadOnlyPolicy"]["Properties"]["PolicyDocument"];
        let puts: Vec<Value> = grants(doc)
            .into_iter()
            .filter(|(a, _)| a == iam::S3_PUT_OBJECT || a == iam::S3_ABORT_MULTIPART_UPLOAD)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            puts,
            [json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${CacheBucket}/cache/v1-used/*" })]
        );
    }

    /// Every place where the string `text` stands in `v`, as `/`-joined paths.
    fn places_of(v: &Value, text: &str) -> Vec<String> {
        let mut all = Vec::new();
        strings(v, String::new(), &mut all);
        all.into_iter()
            .filter(|(_, s)| *s == text)
            .map(|(at, _)| at)
            .collect()
    }

    #[test]
    fn trusted_projects_get_the_signing_key_and_pull_request_projects_never() {
        let t = rendered(&case("pull-requests"));
        let r = &t["Resources"];

        // The trusted project: the variable from Secrets Manager, read by its own role.
        let env = r["ProjectApp"]["Properties"]["Environment"]["EnvironmentVariables"]
            .as_array()
            .unwrap();
        assert!(env.contains(
            &json!({ "Name": "CACHECTL_SIGNING_KEY", "Type": "SECRETS_MANAGER", "Value": SECRET })
        ));
        let role = &r["BuildRoleApp"]["Properties"];
        assert_eq!(
            role["ManagedPolicyArns"],
            json!([{ "Ref": "ReadWritePolicy" }])
        );
        assert_eq!(
            role["Policies"][1],
            json!({ "PolicyName": "signing-key", "PolicyDocument": { "Version": "2012-10-17", "Statement": [
                { "Sid": "ReadSigningKey", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": SECRET },
            ]}})
        );

        // The pull-request project: the pull-request policy, no key, no way to read it.
        let role = &r["BuildRoleAppPr"]["Properties"];
        assert_eq!(
            role["ManagedPolicyArns"],
            json!([{ "Ref": "PullRequestPolicy" }])
        );
        assert_eq!(role["Policies"].as_array().unwrap().len(), 1, "{role}");
        assert_eq!(role["Policies"][0]["PolicyName"], "logs");
        let env = r["ProjectAppPr"]["Properties"]["Environment"]["EnvironmentVariables"]
            .as_array()
            .unwrap();
        assert!(
            env.iter().all(|v| v["Name"] != "CACHECTL_SIGNING_KEY"),
            "{env:?}"
        );

        // The ARN is exactly in those two places of the trusted project.
        assert_eq!(
            places_of(&t, SECRET),
            [
                "/Resources/BuildRoleApp/Properties/Policies/1/PolicyDocument/Statement/0/Resource",
                "/Resources/ProjectApp/Properties/Environment/EnvironmentVariables/2/Value",
            ]
        );

        // Only pull-request projects: the secret is nowhere, whatever `signing-key-secret` says.
        let mut s = case("pull-requests");
        s.projects.retain(|p| p.pull_requests);
        let t = rendered(&s);
        assert_eq!(places_of(&t, SECRET), Vec::<String>::new());
        assert!(!to_text(&t).contains("secretsmanager:"));

        // No `signing-key-secret`: no variable and no statement for anyone.
        let t = rendered(&case("projects"));
        assert!(!to_text(&t).contains("CACHECTL_SIGNING_KEY"));
        assert!(!to_text(&t).contains("secretsmanager:"));
    }
}
