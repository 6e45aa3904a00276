//! `cachectl provision --check`: the deployed set-up read back. Each check is one line that
//! passes or says what to fix.

use crate::aws::{self, iam, Service};
use aws_sdk_codebuild::types::StatusType;
use serde::Serialize;
use std::time::Duration;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
    /// How to fix it, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

fn denied_or(e: &aws::Error, fallback: &str) -> String {
    match e.kind {
        aws::Kind::Denied => format!(
            "{} was denied for the caller; attach the stack's read-write policy (output ReadWritePolicyArn) to it",
            e.action
        ),
        _ => fallback.to_owned(),
    }
}

/// A put, get, list and delete of one object under `prefix`, with the caller's credentials.
pub async fn round_trip(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Check {
    let name = "store round trip";
    let key = format!(
        "{prefix}/cachectl-check/{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let body = b"cachectl provision --check".to_vec();
    let step = async {
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .map_err(|e| aws::Error::from_sdk(Service::S3, iam::S3_PUT_OBJECT, &e))?;
        let got = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| aws::Error::from_sdk(Service::S3, iam::S3_GET_OBJECT, &e))?;
        let got = got
            .body
            .collect()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let listed = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(|e| aws::Error::from_sdk(Service::S3, iam::S3_LIST_BUCKET, &e))?
            .contents()
            .iter()
            .any(|o| o.key() == Some(key.as_str()));
        client
            .delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| aws::Error::from_sdk(Service::S3, iam::S3_DELETE_OBJECT, &e))?;
        Ok::<_, aws::Error>((got == body, listed))
    };
    match step.await {
        Ok((true, true)) => Check::pass(
            name,
            format!("put, get, list and delete under s3://{bucket}/{prefix}/"),
        ),
        Ok((same, listed)) => Check::fail(
            name,
            format!(
                "s3://{bucket}/{key}: read back {}, listed {}",
                if same {
                    "the same bytes"
                } else {
                    "other bytes"
                },
                listed
            ),
            "the bucket does not behave as S3 does; check AWS_ENDPOINT_URL_S3",
        ),
        Err(e) => Check::fail(
            name,
            format!("s3://{bucket}/{prefix}/: {e}"),
            denied_or(&e, "check that the bucket exists and the caller may use it"),
        ),
    }
}

/// Each CodeBuild project of the stack: it exists, has a service role, and its
/// `CACHECTL_STORE` is the stack's store.
pub async fn projects(
    client: &aws_sdk_codebuild::Client,
    names: &[String],
    store: &str,
) -> Vec<Check> {
    let out = match client
        .batch_get_projects()
        .set_names(Some(names.to_vec()))
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let e = aws::Error::from_sdk(Service::CodeBuild, "codebuild:BatchGetProjects", &e);
            return vec![Check::fail(
                "CodeBuild projects",
                e.to_string(),
                denied_or(&e, "check the region"),
            )];
        }
    };
    let mut checks = Vec::new();
    for name in names {
        let label = format!("project {name}");
        let Some(p) = out
            .projects()
            .iter()
            .find(|p| p.name() == Some(name.as_str()))
        else {
            checks.push(Check::fail(
                label,
                "does not exist",
                "run `cachectl provision` to create it (the stack should hold it)",
            ));
            continue;
        };
        let env_store = p.environment().and_then(|e| {
            e.environment_variables()
                .iter()
                .find(|v| v.name() == crate::env::STORE)
                .map(|v| v.value().to_owned())
        });
        if p.service_role().is_none_or(str::is_empty) {
            checks.push(Check::fail(
                label,
                "has no service role",
                "run `cachectl provision` again; the stack sets one",
            ));
        } else if env_store.as_deref().map(|e| e.trim_end_matches('/'))
            != Some(store.trim_end_matches('/'))
        {
            checks.push(Check::fail(
                label,
                format!(
                    "{} is {}, not the stack's store {store}",
                    crate::env::STORE,
                    env_store.map_or("unset".into(), |s| format!("`{s}`"))
                ),
                format!("set {}={store} in the project's environment (or run `cachectl provision` to put it back)", crate::env::STORE),
            ));
        } else {
            checks.push(Check::pass(
                label,
                format!(
                    "{}={store}, role {}",
                    crate::env::STORE,
                    p.service_role().unwrap_or_default()
                ),
            ));
        }
    }
    checks
}

/// Starts the prune project once in dry-run mode and waits for its build to end.
pub async fn run_prune(
    client: &aws_sdk_codebuild::Client,
    project: &str,
    timeout: Duration,
) -> Check {
    let name = "prune project run (dry run)";
    let started = client
        .start_build()
        .project_name(project)
        .environment_variables_override(
            aws_sdk_codebuild::types::EnvironmentVariable::builder()
                .name(crate::env::PRUNE_DRY_RUN)
                .value("true")
                .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                .build()
                .expect("name and value are set"),
        )
        .send()
        .await;
    let id = match started {
        Ok(o) => o
            .build_value()
            .and_then(|b| b.id())
            .unwrap_or_default()
            .to_owned(),
        Err(e) => {
            let e = aws::Error::from_sdk(Service::CodeBuild, "codebuild:StartBuild", &e);
            return Check::fail(
                name,
                e.to_string(),
                denied_or(&e, "check that the prune project exists"),
            );
        }
    };
    let t0 = std::time::Instant::now();
    loop {
        let out = match client.batch_get_builds().ids(&id).send().await {
            Ok(o) => o,
            Err(e) => {
                let e = aws::Error::from_sdk(Service::CodeBuild, "codebuild:BatchGetBuilds", &e);
                return Check::fail(name, e.to_string(), denied_or(&e, "retry"));
            }
        };
        let status = out.builds().first().and_then(|b| b.build_status().cloned());
        match status {
            Some(StatusType::Succeeded) => {
                return Check::pass(name, format!("build {id} succeeded"))
            }
            Some(StatusType::InProgress) | None if t0.elapsed() < timeout => {
                tokio::time::sleep(
                    Duration::from_secs(5).min(timeout / 10 + Duration::from_millis(200)),
                )
                .await;
            }
            Some(s) => {
                return Check::fail(
                    name,
                    format!("build {id} is {}", s.as_str()),
                    format!("read its log: aws codebuild batch-get-builds --ids {id}"),
                )
            }
            None => {
                return Check::fail(
                    name,
                    format!("build {id} did not finish in {}s", timeout.as_secs()),
                    "look at the build in the CodeBuild console",
                )
            }
        }
    }
}
