//! IAM policy documents of the stack: the managed policies users attach (read-write, read-only,
//! pull-request, prune) and the roles' documents. Actions come from the same lists the
//! fail-open hints quote (`aws::iam`).

use super::cfn::{sub, tags};
use crate::aws::iam;
use crate::config::provision::ProvisionSettings;
use serde_json::{json, Value};

/// A policy document of `statements`.
pub(super) fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

pub(super) fn allow(sid: &str, actions: &[&str], resources: Value) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

pub(super) fn assume_role(service: &str) -> Value {
    document(vec![json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole",
    })])
}

pub(super) struct Arns {
    pub(super) bucket: Value,
    /// Every object under the store's prefix.
    pub(super) cache_objects: Value,
    /// Last-use records (docs/FORMAT.md, "Last use").
    pub(super) use_records: Value,
    /// Every untrusted scope's entries and use records (`untrusted/<scope>/…`): all a
    /// pull-request build may write besides the use records of trusted entries.
    pub(super) untrusted_objects: Value,
    /// install.sh and the binaries.
    pub(super) install_objects: Value,
}

impl Arns {
    pub(super) fn new(prefix: &str) -> Arns {
        let bucket = "arn:${AWS::Partition}:s3:::${CacheBucket}";
        Arns {
            bucket: sub(bucket),
            cache_objects: sub(&format!("{bucket}/{prefix}/*")),
            use_records: sub(&format!("{bucket}/{prefix}/v1-used/*")),
            untrusted_objects: sub(&format!(
                "{bucket}/{prefix}/{}/*",
                crate::key::UNTRUSTED_DIR
            )),
            install_objects: sub(&format!(
                "{bucket}/{}/*",
                crate::config::provision::INSTALL_PREFIX
            )),
        }
    }
}

/// What one managed policy may do.
pub(super) struct PolicySpec<'a> {
    pub(super) name_suffix: &'a str,
    pub(super) description: &'a str,
    /// On every object under the prefix.
    pub(super) object_actions: &'a [&'a str],
    pub(super) extra: Vec<Value>,
    /// On the bucket itself, beyond listing the prefix.
    pub(super) bucket_actions: &'a [&'a str],
    /// On the SSE-KMS key, if any.
    pub(super) kms_actions: &'a [&'a str],
    /// Existing roles to attach it to.
    pub(super) roles: &'a [String],
}

/// A managed policy. Statements come from the same action lists the fail-open hints quote
/// (`aws::iam`).
/// `namespace` is the only CloudWatch namespace it may publish to.
pub(super) fn managed_policy(
    spec: PolicySpec<'_>,
    s: &ProvisionSettings,
    namespace: &str,
) -> Value {
    let PolicySpec {
        name_suffix,
        description,
        object_actions,
        extra,
        bucket_actions,
        kms_actions,
        roles,
    } = spec;
    let arns = Arns::new(&s.prefix);
    let mut statements = vec![allow("CacheObjects", object_actions, arns.cache_objects)];
    statements.extend(extra);
    statements.push(json!({
        "Sid": "ListCachePrefix",
        "Effect": "Allow",
        "Action": [iam::S3_LIST_BUCKET],
        "Resource": arns.bucket.clone(),
        "Condition": { "StringLike": { "s3:prefix": [format!("{}/*", s.prefix)] } },
    }));
    if !bucket_actions.is_empty() {
        statements.push(allow("CacheBucket", bucket_actions, arns.bucket));
    }
    statements.push(allow(
        "InstallCachectl",
        &[iam::S3_GET_OBJECT],
        arns.install_objects,
    ));
    statements.push(json!({
        "Sid": "PublishMetrics",
        "Effect": "Allow",
        "Action": iam::PUBLISH_METRICS,
        "Resource": "*",
        "Condition": { "StringEquals": { "cloudwatch:namespace": namespace } },
    }));
    if let Some(key) = &s.kms_key {
        statements.push(allow("CacheEncryptionKey", kms_actions, json!(key)));
    }
    let mut props = json!({
        "ManagedPolicyName": format!("{}-{name_suffix}", s.stack),
        "Description": description,
        "PolicyDocument": document(statements),
    });
    if !roles.is_empty() {
        props["Roles"] = json!(roles);
    }
    json!({ "Type": "AWS::IAM::ManagedPolicy", "Properties": props })
}

/// The build role of a CodeBuild project: the managed policy `policy` (a logical id), its own
/// log group, and reading `secret` (the signing key), if given.
pub(super) fn build_role(project: &str, policy: &str, secret: Option<&str>) -> Value {
    let mut policies = vec![json!({
        "PolicyName": "logs",
        "PolicyDocument": document(vec![allow(
            "BuildLogs",
            &["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            sub(&format!(
                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/codebuild/{project}:*"
            )),
        )]),
    })];
    if let Some(arn) = secret {
        // CodeBuild reads a SECRETS_MANAGER variable with the project's role when the build
        // starts. A secret encrypted with a customer managed KMS key also needs kms:Decrypt
        // on that key, which this statement does not give.
        policies.push(json!({
            "PolicyName": "signing-key",
            "PolicyDocument": document(vec![allow(
                "ReadSigningKey",
                &[iam::SECRETS_MANAGER_GET_SECRET_VALUE],
                json!(arn),
            )]),
        }));
    }
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": assume_role("codebuild.amazonaws.com"),
            "ManagedPolicyArns": [{ "Ref": policy }],
            "Policies": policies,
            "Tags": tags(),
        },
    })
}
