//! `cachectl provision` / `deprovision` end to end, with the real binary against moto.
//!
//! What moto's CloudFormation does and does not do (measured, moto 5.2.5), and so what these
//! tests can prove: it really creates the S3 bucket (with encryption and tags), IAM managed
//! policies and roles, the EventBridge rule with its target and role, the dashboard and the log
//! group, and it plans change sets with the right Add / Modify / Remove and the no-change
//! answer. It does not model `AWS::CodeBuild::Project`, `AWS::S3::BucketPolicy`, alarms, the
//! bucket's public-access, ownership and lifecycle properties, rollback or drift: those are
//! asserted on the template (src/provision/template.rs tests, cfn-lint below), and CodeBuild
//! projects for `--check` are created directly, as the stack would create them on AWS. So a
//! declared project's environment (its CACHECTL_STORE, CACHECTL_SIGNING_KEY from Secrets
//! Manager) is asserted on the template only. Its build role is created with its inline
//! policies, but without the role's `ManagedPolicyArns` (moto ignores them): which managed
//! policy a project's role gets is asserted on the template; a managed policy's own `Roles`
//! (`attach-*-roles`) moto does attach, and that is read back here.
//! Read-backs use each service's own list or get call (never the tagging API, which moto does
//! not fill for every type: a test through it could not fail).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::moto::moto;
use crate::support::{write, Cachectl, Fixture};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// One boto3 call against moto (tests/it/support/aws_call.py): the response as JSON.
fn aws(service: &str, operation: &str, params: Value) -> Value {
    let script = crate::support::buildspec::repo().join("tests/it/support/aws_call.py");
    let out = Command::new(crate::support::buildspec::python())
        .arg(&script)
        .args([&moto().endpoint, service, operation, &params.to_string()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{service} {operation}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from aws_call.py")
}

/// [`aws`] for a call that must succeed (setting up what a test needs).
fn aws_ok(service: &str, operation: &str, params: Value) -> Value {
    let out = aws(service, operation, params);
    assert!(out.get("Error").is_none(), "{service} {operation}: {out}");
    out
}

/// The first bytes of a 64-bit little-endian ELF file for `machine` (62 x86_64, 183 aarch64).
fn elf_header(machine: u16) -> Vec<u8> {
    let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    h.resize(18, 0);
    h.extend_from_slice(&machine.to_le_bytes());
    h.resize(64, 0);
    h
}

/// A fixture whose cachectl talks to moto, with a `cachectl.toml` holding `toml`.
fn setup(test: &str, toml: &str) -> (Fixture, PathBuf) {
    let f = Fixture::s3_at(&moto().endpoint, &crate::support::moto::bucket_name(test));
    let work = f.dir("work");
    write(&work.join("cachectl.toml"), toml);
    (f, work)
}

fn cachectl(f: &Fixture, work: &Path, args: &[&str]) -> crate::support::cmd::Run {
    let mut c: Cachectl = f.cachectl();
    c.cwd(work).args(args);
    c.run()
}

/// The stack's status, or None when there is none.
fn stack_status(stack: &str) -> Option<String> {
    let out = aws(
        "cloudformation",
        "describe_stacks",
        json!({ "StackName": stack }),
    );
    out["Stacks"][0]["StackStatus"].as_str().map(str::to_owned)
}

fn event_count(stack: &str) -> usize {
    aws(
        "cloudformation",
        "describe_stack_events",
        json!({ "StackName": stack }),
    )["StackEvents"]
        .as_array()
        .map_or(0, Vec::len)
}

fn bucket_exists(bucket: &str) -> bool {
    aws("s3", "list_buckets", json!({}))["Buckets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["Name"] == bucket)
}

fn objects(bucket: &str, prefix: &str) -> Vec<String> {
    aws(
        "s3",
        "list_objects_v2",
        json!({ "Bucket": bucket, "Prefix": prefix }),
    )["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["Key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn changes(json: &Value) -> Vec<(String, String)> {
    json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["logical_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The signing key's secret in the life test (never read: moto's CloudFormation does not
/// create the projects that would read it).
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:it-life/signing-AbC123";

/// The life test's cachectl.toml, with `extra` in [provision]: a trusted and a pull-request
/// project, a signing key for the trusted one, and an existing role for pull requests.
fn life_toml(stack: &str, extra: &str) -> String {
    format!(
        "[provision]\nstack = \"{stack}\"\nsigning-key-secret = \"{SECRET}\"\n\
         attach-pull-request-roles = [\"{stack}-ci-pr\"]\n{extra}\n\
         [provision.project.{stack}-app]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"version: 0.2\"\n\n\
         [provision.project.{stack}-pr]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"version: 0.2\"\npull-requests = true\n\n\
         [prune]\nmax-unused = \"7d\"\n"
    )
}

/// The statements of the default version of managed policy `arn`, as IAM holds it.
fn managed_policy_statements(arn: &str) -> Vec<Value> {
    let version = aws_ok("iam", "get_policy", json!({ "PolicyArn": arn }))["Policy"]
        ["DefaultVersionId"]
        .clone();
    let doc = aws_ok(
        "iam",
        "get_policy_version",
        json!({ "PolicyArn": arn, "VersionId": version }),
    )["PolicyVersion"]["Document"]
        .clone();
    doc["Statement"]
        .as_array()
        .unwrap_or_else(|| panic!("policy {arn}: {doc}"))
        .clone()
}

/// The actions of a statement, whether IAM holds one or a list.
fn actions(st: &Value) -> Vec<String> {
    match &st["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        other => panic!("Action {other}"),
    }
}

/// The build role the stack made for the declared project whose logical id part is `logical`
/// (`ItLifeApp`): CloudFormation generates its name, so it is found by the logical id in it.
fn build_role(stack: &str, logical: &str) -> String {
    let roles = aws_ok("iam", "list_roles", json!({}))["Roles"].clone();
    let found: Vec<String> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RoleName"].as_str().unwrap().to_owned())
        .filter(|n| n.contains(&format!("BuildRole{logical}")) && n.starts_with(stack))
        .collect();
    assert_eq!(found.len(), 1, "build role {logical}: {roles}");
    found[0].clone()
}

/// What the pull-request set-up deployed: the PullRequestPolicy writes only under untrusted/
/// and is attached to the existing pull-request role; the pull-request project's role cannot
/// read the signing key, the trusted project's role reads exactly that secret.
fn assert_pull_request_setup(stack: &str, bucket: &str, policy_arn: &str) {
    let statements = managed_policy_statements(policy_arn);
    let resources = |action: &str| -> Vec<Value> {
        statements
            .iter()
            .filter(|st| actions(st).iter().any(|a| a == action))
            .map(|st| st["Resource"].clone())
            .collect()
    };
    let untrusted = format!("arn:aws:s3:::{bucket}/cache/untrusted/*");
    assert_eq!(
        resources("s3:AbortMultipartUpload"),
        [json!(untrusted)],
        "{statements:?}"
    );
    assert_eq!(
        resources("s3:PutObject"),
        [
            json!(format!("arn:aws:s3:::{bucket}/cache/v1-used/*")),
            json!(untrusted)
        ],
        "{statements:?}"
    );
    assert!(
        statements
            .iter()
            .flat_map(actions)
            .all(|a| !a.starts_with("s3:Delete")),
        "{statements:?}"
    );

    let attached = aws_ok(
        "iam",
        "list_attached_role_policies",
        json!({ "RoleName": format!("{stack}-ci-pr") }),
    );
    assert_eq!(
        attached["AttachedPolicies"],
        json!([{ "PolicyName": format!("{stack}-pull-request"), "PolicyArn": policy_arn }])
    );
    let inline = |role: &str| -> Vec<String> {
        aws_ok("iam", "list_role_policies", json!({ "RoleName": role }))["PolicyNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(inline(&build_role(stack, "ItLifePr")), ["logs"]);
    let app = build_role(stack, "ItLifeApp");
    let mut names = inline(&app);
    names.sort();
    assert_eq!(names, ["logs", "signing-key"]);
    let key = aws_ok(
        "iam",
        "get_role_policy",
        json!({ "RoleName": app, "PolicyName": "signing-key" }),
    );
    // moto keeps an inline policy made by CloudFormation as the template's object and answers
    // its Python repr (single quotes); IAM answers the JSON document. Neither holds a quote.
    let doc: Value = match &key["PolicyDocument"] {
        Value::String(text) => serde_json::from_str(&text.replace('\'', "\""))
            .unwrap_or_else(|e| panic!("{e}: {text}")),
        other => other.clone(),
    };
    assert_eq!(
        doc["Statement"],
        json!([{ "Sid": "ReadSigningKey", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": SECRET }]),
        "{key}"
    );
}

/// The whole life of a stack: plan, create, read back, install from it, cache through it,
/// re-run unchanged, change a setting, delete keeping the bucket, delete the bucket.
#[test]
fn provision_creates_reads_back_updates_and_deprovisions() {
    let stack = "it-life";
    let bucket = format!("{stack}-{ACCOUNT}-{REGION}");
    let (f, work) = setup("provision_life", &life_toml(stack, ""));
    aws_ok(
        "iam",
        "create_role",
        json!({
            "RoleName": format!("{stack}-ci-pr"),
            "AssumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string(),
        }),
    );

    // --dry-run: the plan, and nothing left behind.
    let run = cachectl(&f, &work, &["provision", "--dry-run", "--json"]);
    run.assert_code(0);
    let plan = run.json();
    assert_eq!(plan["outcome"], "planned", "{}", run.context());
    let planned = changes(&plan);
    for id in [
        "CacheBucket",
        "ReadWritePolicy",
        "ReadOnlyPolicy",
        "PullRequestPolicy",
        "PrunePolicy",
        "PruneRole",
        "BuildRoleItLifeApp",
        "BuildRoleItLifePr",
        "PruneSchedule",
        "Dashboard",
    ] {
        assert!(
            planned.contains(&("Add".into(), id.into())),
            "{id} not planned: {planned:?}"
        );
    }
    assert_eq!(stack_status(stack), None, "a dry run left a stack");
    assert!(!bucket_exists(&bucket));

    // Apply, with the other architecture's binary from --binaries (laid out as
    // bootstrap/build-release.sh writes target/dist).
    let version = env!("CARGO_PKG_VERSION");
    let dist = f.dir("dist");
    write(
        &dist
            .join(version)
            .join("cachectl-aarch64-unknown-linux-musl"),
        elf_header(183),
    );
    let run = cachectl(
        &f,
        &work,
        &[
            "provision",
            "--yes",
            "--json",
            "--binaries",
            dist.to_str().unwrap(),
        ],
    );
    run.assert_code(0);
    let created = run.json();
    assert_eq!(created["outcome"], "created", "{}", run.context());
    assert_eq!(stack_status(stack).as_deref(), Some("CREATE_COMPLETE"));
    let store = format!("s3://{bucket}/cache");
    assert_eq!(created["outputs"]["store"], store.as_str());
    assert_eq!(created["outputs"]["bucket"], bucket.as_str());

    // Read back what moto models.
    let enc = aws("s3", "get_bucket_encryption", json!({ "Bucket": bucket }));
    assert_eq!(
        enc["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    let tags = aws("s3", "get_bucket_tagging", json!({ "Bucket": bucket }));
    assert!(tags["TagSet"]
        .as_array()
        .unwrap()
        .contains(&json!({"Key": "managed-by", "Value": "cachectl"})));
    let policies: Vec<String> = aws("iam", "list_policies", json!({ "Scope": "Local" }))
        ["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PolicyName"].as_str().unwrap().to_owned())
        .filter(|n| n.starts_with(&format!("{stack}-")))
        .collect();
    let mut want = vec![
        format!("{stack}-prune"),
        format!("{stack}-pull-request"),
        format!("{stack}-read-only"),
        format!("{stack}-read-write"),
    ];
    let mut got = policies.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let pr_policy = format!("arn:aws:iam::{ACCOUNT}:policy/{stack}-pull-request");
    assert_eq!(
        created["outputs"]["pull_request_policy_arn"],
        pr_policy.as_str()
    );
    assert_pull_request_setup(stack, &bucket, &pr_policy);
    let rule = aws(
        "events",
        "describe_rule",
        json!({ "Name": format!("{stack}-prune") }),
    );
    assert_eq!(rule["ScheduleExpression"], "rate(1 day)");
    let targets = aws(
        "events",
        "list_targets_by_rule",
        json!({ "Rule": format!("{stack}-prune") }),
    );
    assert_eq!(
        targets["Targets"][0]["Arn"],
        format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{stack}-prune").as_str()
    );
    assert!(targets["Targets"][0]["RoleArn"]
        .as_str()
        .unwrap()
        .contains(":role/"));
    let dash = aws(
        "cloudwatch",
        "get_dashboard",
        json!({ "DashboardName": stack }),
    );
    let body = dash["DashboardBody"].as_str().unwrap();
    assert!(
        body.contains(
            r#"SEARCH('{\"Cachectl\",CacheName,ProjectName} MetricName=\"CacheHit\"', 'Sum', 3600)"#
        ),
        "{body}"
    );
    assert!(body.contains(&format!("\"region\":\"{REGION}\"")), "{body}");
    let logs = aws(
        "logs",
        "describe_log_groups",
        json!({ "logGroupNamePrefix": format!("/aws/codebuild/{stack}-prune") }),
    );
    assert_eq!(logs["logGroups"][0]["retentionInDays"], 30);

    // The uploads install.sh installs from.
    let uploaded = objects(&bucket, "cachectl/");
    for key in [
        "cachectl/install.sh".to_owned(),
        "cachectl/bin/latest".to_owned(),
        format!(
            "cachectl/bin/{}/cachectl-x86_64-unknown-linux-musl",
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            "cachectl/bin/{}/cachectl-x86_64-unknown-linux-musl.sha256",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(uploaded.contains(&key), "{key} not uploaded: {uploaded:?}");
    }
    let arm = format!("cachectl/bin/{version}/cachectl-aarch64-unknown-linux-musl");
    assert!(uploaded.contains(&arm), "{arm} not uploaded: {uploaded:?}");
    let sha = Command::new("sha256sum")
        .arg(
            dist.join(version)
                .join("cachectl-aarch64-unknown-linux-musl"),
        )
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        String::from_utf8(moto().get_object(&bucket, &format!("{arm}.sha256"))).unwrap(),
        format!("{hex}  cachectl-aarch64-unknown-linux-musl\n")
    );
    let install_dir = f.dir("bin");
    let sh = Command::new("sh")
        .arg(crate::support::buildspec::repo().join("bootstrap/install.sh"))
        .env("CACHECTL_STORE", &store)
        .env("CACHECTL_INSTALL_DIR", &install_dir)
        .env("CACHECTL_STRICT", "1")
        .env("AWS_ENDPOINT_URL", &moto().endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&sh.stderr)
    );
    let version = Command::new(install_dir.join("cachectl"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("cachectl {}", env!("CARGO_PKG_VERSION"))
    );

    // A cache through the printed store.
    write(&work.join("deps/a.txt"), "cached");
    cachectl(
        &f,
        &work,
        &[
            "save", "--json", "--store", &store, "--key", "k1", "--path", "deps",
        ],
    )
    .expect(0, "saved");
    std::fs::remove_dir_all(work.join("deps")).unwrap();
    cachectl(
        &f,
        &work,
        &[
            "restore", "--json", "--store", &store, "--key", "k1", "--path", "deps",
        ],
    )
    .expect(0, "hit");
    assert_eq!(
        std::fs::read_to_string(work.join("deps/a.txt")).unwrap(),
        "cached"
    );

    // Again: unchanged, and no stack event.
    let events = event_count(stack);
    let run = cachectl(&f, &work, &["provision", "--yes", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "unchanged", "{}", run.context());
    assert!(run.json()["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["result"] == "present"));
    assert_eq!(
        event_count(stack),
        events,
        "an unchanged run made stack events"
    );
    // Without --json the outputs and the buildspec lines are the result, on stdout.
    let run = cachectl(&f, &work, &["provision", "--yes"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!(
            "    variables:\n      CACHE_BUCKET: {bucket}\n      CACHECTL_STORE: {store}\n"
        )),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains(&format!("stack {stack}: no changes")),
        "{}",
        run.context()
    );

    // A changed setting: the plan names exactly what changes.
    write(
        &work.join("cachectl.toml"),
        life_toml(stack, "schedule = \"rate(2 days)\"\n"),
    );
    let run = cachectl(&f, &work, &["provision", "--dry-run", "--json"]);
    run.assert_code(0);
    assert_eq!(
        changes(&run.json()),
        [("Modify".to_owned(), "PruneSchedule".to_owned())],
        "{}",
        run.context()
    );
    let run = cachectl(&f, &work, &["provision", "--yes", "--json"]);
    assert_eq!(run.json()["outcome"], "updated", "{}", run.context());
    let rule = aws(
        "events",
        "describe_rule",
        json!({ "Name": format!("{stack}-prune") }),
    );
    assert_eq!(rule["ScheduleExpression"], "rate(2 days)");

    // Deprovision: the stack goes, the bucket and its caches stay.
    let run = cachectl(&f, &work, &["deprovision", "--yes", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "deleted", "{}", run.context());
    assert_eq!(run.json()["bucket_deleted"], false);
    assert_eq!(stack_status(stack), None);
    assert!(bucket_exists(&bucket));
    assert!(
        !objects(&bucket, "cache/v1/").is_empty(),
        "the caches were dropped"
    );

    // Provision again: the kept bucket is taken back by a resource import where the engine
    // can; moto cannot (it executes an IMPORT change set as a create), so this stops with one
    // line saying what to do, and leaves no stack.
    let run = cachectl(&f, &work, &["provision", "--yes"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("error: stack `{stack}` is not created: bucket {bucket} exists (kept by an earlier deprovision?) and CloudFormation could not import it into the stack")),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("--delete-bucket"), "{}", run.context());
    assert_eq!(stack_status(stack), None);

    // --delete-bucket with the stack gone: the kept bucket goes.
    let run = cachectl(
        &f,
        &work,
        &["deprovision", "--delete-bucket", "--yes", "--json"],
    );
    run.assert_code(0);
    assert_eq!(run.json()["bucket_deleted"], true, "{}", run.context());
    assert!(!bucket_exists(&bucket));
}

/// Off a terminal and without --yes, provision prints the plan and exits 2 saying to add
/// --yes; nothing is left behind.
#[test]
fn provision_off_a_terminal_without_yes_plans_and_exits_2() {
    let stack = "it-noyes";
    let (f, work) = setup(
        "provision_noyes",
        &format!("[provision]\nstack = \"{stack}\"\n"),
    );
    let run = cachectl(&f, &work, &["provision"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("Add     CacheBucket (AWS::S3::Bucket)"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains("hint: review the plan above, then run the same command with --yes"),
        "{}",
        run.context()
    );
    assert_eq!(stack_status(stack), None);
}

/// A create that fails (a managed policy name already taken outside the stack): exit 1 with
/// CloudFormation's reason for the resource that failed.
#[test]
fn a_failed_create_exits_1_with_the_reason() {
    let stack = "it-taken";
    let (f, work) = setup(
        "provision_taken",
        &format!("[provision]\nstack = \"{stack}\"\n"),
    );
    aws_ok(
        "iam",
        "create_policy",
        json!({ "PolicyName": format!("{stack}-read-write"), "PolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}).to_string() }),
    );
    let run = cachectl(&f, &work, &["provision", "--yes"]);
    run.assert_code(1);
    // moto refuses the execute itself; CloudFormation on AWS accepts it and reports
    // CREATE_FAILED on the resource, which provision reads from the stack's events.
    assert!(
        run.stderr
            .contains("A policy called it-taken-read-write already exists"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains("hint: a resource with that name exists outside the stack"),
        "{}",
        run.context()
    );
}

/// `--check` reads the set-up back: projects created directly (moto's CloudFormation does not
/// model CodeBuild), one of them with another CACHECTL_STORE, which is reported.
#[test]
fn check_reports_a_project_with_the_wrong_store() {
    let stack = "it-check";
    let (f, work) = setup(
        "provision_check",
        &format!("[provision]\nstack = \"{stack}\"\n\n[provision.project.it-check-web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"version: 0.2\"\n"),
    );
    let run = cachectl(&f, &work, &["provision", "--yes", "--json"]);
    run.assert_code(0);
    let store = run.json()["outputs"]["store"].as_str().unwrap().to_owned();
    let project = |name: &str, store: &str| {
        // moto wants a source location even where CodeBuild would not.
        aws_ok(
            "codebuild",
            "create_project",
            json!({
                "name": name,
                "source": { "type": "S3", "location": "it-check-source/source.zip", "buildspec": "version: 0.2" },
                "artifacts": { "type": "NO_ARTIFACTS" },
                "environment": {
                    "type": "LINUX_CONTAINER", "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                    "computeType": "BUILD_GENERAL1_SMALL",
                    "environmentVariables": [{ "name": "CACHECTL_STORE", "value": store, "type": "PLAINTEXT" }],
                },
                "serviceRole": format!("arn:aws:iam::{ACCOUNT}:role/it-check-build"),
            }),
        )
    };
    project(&format!("{stack}-prune"), &store);
    project("it-check-web", "s3://another-bucket/cache");
    let run = cachectl(&f, &work, &["provision", "--check", "--json"]);
    run.assert_code(1);
    let checks = run.json()["checks"].clone();
    let by_name = |n: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no check {n}: {checks}"))
    };
    assert_eq!(by_name("stack")["ok"], true);
    assert_eq!(by_name("store round trip")["ok"], true, "{checks}");
    assert_eq!(
        by_name(&format!("project {stack}-prune"))["ok"],
        true,
        "{checks}"
    );
    let web = by_name("project it-check-web");
    assert_eq!(web["ok"], false);
    assert_eq!(
        web["detail"],
        format!("CACHECTL_STORE is `s3://another-bucket/cache`, not the stack's store {store}")
            .as_str()
    );
    assert!(
        run.stderr.contains("FAIL  project it-check-web"),
        "{}",
        run.context()
    );

    // --run-prune starts the prune project in dry-run mode and waits for its build (moto
    // runs nothing: its builds report SUCCEEDED when read back).
    let run = cachectl(
        &f,
        &work,
        &["provision", "--check", "--run-prune", "--json"],
    );
    let checks = run.json()["checks"].clone();
    let prune = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "prune project run (dry run)")
        .cloned()
        .unwrap_or_else(|| panic!("no prune run check: {checks}"));
    assert_eq!(prune["ok"], true, "{checks}");
    let builds = aws_ok(
        "codebuild",
        "list_builds_for_project",
        json!({ "projectName": format!("{stack}-prune") }),
    );
    assert_eq!(builds["ids"].as_array().unwrap().len(), 1, "{builds}");
    cachectl(&f, &work, &["deprovision", "--yes", "--delete-bucket"]).assert_code(0);
}

/// Every golden template passes cfn-lint (AWS's own resource schemas).
#[test]
fn golden_templates_pass_cfn_lint() {
    let dir = crate::support::buildspec::repo().join("tests/fixtures/provision");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(files.len() >= 5, "golden templates in {}", dir.display());
    let lint = crate::support::buildspec::python().with_file_name("cfn-lint");
    let out = Command::new(&lint)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (./tests/run.sh installs it)", lint.display()));
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Settings that could not deploy, or would deploy something broken, are refused before any
/// AWS call (no credentials or endpoint needed): one line saying what to do, exit 2.
#[test]
fn settings_that_cannot_work_are_refused_before_any_aws_call() {
    let arm_elf_header = elf_header(62); // x86_64, not aarch64
                                         // Exit 1 for settings in cachectl.toml, 2 for flags (the usage error).
    let cases: &[(&str, &str, &[&str], i32, &str)] = &[
        (
            "prune keeps everything",
            "[prune]\nkeep-last = 2\n",
            &["provision", "--print-template"],
            1,
            "[prune] has no rule that deletes anything, so the scheduled prune project would fail every run",
        ),
        (
            "project named like the prune project",
            "[provision.project.cachectl-prune]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"version: 0.2\"\n",
            &["provision", "--print-template"],
            1,
            "error: [provision.project.cachectl-prune]: the stack's prune project has that name",
        ),
        (
            "project overrides the store",
            "[provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"version: 0.2\"\nenvironment = { CACHECTL_STORE = \"s3://other/x\" }\n",
            &["provision", "--print-template"],
            1,
            "`CACHECTL_STORE`: the stack sets it to its own bucket and store",
        ),
        (
            "signing key secret that is not a full ARN",
            "[provision]\nsigning-key-secret = \"cachectl-signing\"\n",
            &["provision", "--dry-run"],
            1,
            "[provision]: `signing-key-secret` must be a Secrets Manager secret's full ARN, as `aws secretsmanager describe-secret --secret-id NAME --query ARN` prints it (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)",
        ),
        (
            "binaries dir missing",
            "",
            &["provision", "--dry-run", "--binaries", "no-such-dir"],
            2,
            "error: --binaries no-such-dir: not a directory",
        ),
        (
            "binary for another machine",
            "",
            &["provision", "--dry-run", "--binaries", "dist"],
            2,
            "cachectl-aarch64-unknown-linux-musl is built for another machine (ELF machine 62), not aarch64-unknown-linux-musl",
        ),
        (
            "stack name too long",
            "",
            &["provision", "--print-template", "--stack", "a23456789012345678901234567890123456789012345678901"],
            2,
            "a stack name starts with a letter and holds only letters, digits and `-` (at most 50)",
        ),
        (
            "run-prune without check",
            "",
            &["provision", "--run-prune", "--print-template"],
            2,
            "error: --run-prune works with --check only",
        ),
        (
            "role ARN that is not one",
            "",
            &["provision", "--print-template", "--role-arn", "foo"],
            2,
            "an IAM role ARN looks like arn:aws:iam::ACCOUNT:role/NAME",
        ),
    ];
    for (name, toml, args, code, want) in cases {
        let (f, work) = setup("provision_refused", toml);
        write(
            &work
                .join("dist")
                .join(env!("CARGO_PKG_VERSION"))
                .join("cachectl-aarch64-unknown-linux-musl"),
            &arm_elf_header,
        );
        let mut c = f.cachectl();
        // No endpoint: the refusal must come before any call could be tried.
        c.cwd(&work)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .args(*args);
        let run = c.run();
        run.assert_code(*code);
        assert!(run.stderr.contains(want), "case {name}\n{}", run.context());
    }
}

/// Deprovision when there is nothing (any more): says so, outcome `absent`, exit 0, so a
/// teardown script can run twice.
#[test]
fn deprovision_with_nothing_there_says_so_and_succeeds() {
    let (f, work) = setup("deprovision_absent", "[provision]\nstack = \"it-absent\"\n");
    let run = cachectl(
        &f,
        &work,
        &["deprovision", "--yes", "--delete-bucket", "--json"],
    );
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "absent", "{}", run.context());
    assert!(
        run.stderr.contains(&format!(
            "no stack it-absent in region {REGION} and no bucket it-absent-{ACCOUNT}-{REGION}: nothing to delete"
        )),
        "{}",
        run.context()
    );
}

/// `deprovision --bucket` naming another bucket than the stack's own is refused, not quietly
/// replaced by the stack's (the stack is made with CreateStack, whose outputs moto reports).
#[test]
fn deprovision_refuses_a_bucket_that_is_not_the_stacks() {
    let stack = "it-other";
    let (f, work) = setup("deprovision_other_bucket", "");
    let template = json!({
        "Resources": { "CacheBucket": { "Type": "AWS::S3::Bucket", "Properties": { "BucketName": "it-other-stack-bucket" } } },
        "Outputs": { "Bucket": { "Value": { "Ref": "CacheBucket" } } },
    });
    aws_ok(
        "cloudformation",
        "create_stack",
        json!({ "StackName": stack, "TemplateBody": template.to_string() }),
    );
    let run = cachectl(
        &f,
        &work,
        &[
            "deprovision",
            "--stack",
            stack,
            "--bucket",
            "custom-two",
            "--delete-bucket",
            "--yes",
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "error: --bucket custom-two is not the bucket of stack it-other (it-other-stack-bucket)"
        ),
        "{}",
        run.context()
    );
    assert_eq!(stack_status(stack).as_deref(), Some("CREATE_COMPLETE"));
    assert!(bucket_exists("it-other-stack-bucket"));
}
