//! `cachectl provision` / `deprovision`: the account set-up as one CloudFormation stack.
//! [`template`] renders it (pure); [`deploy`] plans and applies it through change sets;
//! [`install`] uploads install.sh and the binaries; [`check`] reads the result back;
//! [`teardown`] empties and deletes the retained bucket when asked.
//!
//! Direct SDK calls are made only where a template cannot do the job: who is calling (STS),
//! the uploads, emptying the bucket, and the checks.

mod cfn;
pub mod check;
mod dashboard;
pub mod deploy;
pub mod install;
mod policy;
pub mod teardown;
pub mod template;

use crate::aws;
use crate::error::Hint;
use serde::Serialize;

/// One resource change of a plan, as CloudFormation's change set describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// `Add`, `Modify`, `Remove`, `Import`.
    pub action: String,
    /// `True` or `Conditional` when a Modify replaces the resource; None otherwise.
    pub replacement: Option<String>,
}

/// One stack event, as CloudFormation reports it.
#[derive(Debug, Clone)]
pub struct StackEvent {
    pub id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Who is running provision (`sts:GetCallerIdentity`).
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    pub account: String,
    pub arn: String,
    pub region: String,
}

impl Caller {
    /// The AWS partition of the caller's ARN (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &str {
        self.arn
            .split(':')
            .nth(1)
            .filter(|p| !p.is_empty())
            .unwrap_or("aws")
    }
}

/// The caller's account, identity and region: the preflight of every stack operation (the
/// credentials work, and the default bucket name needs the account).
pub async fn caller(conf: &aws_config::SdkConfig) -> Result<Caller, Error> {
    let region = conf
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default();
    let out = aws_sdk_sts::Client::new(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            Error::Aws(aws::CallError {
                what: "find out who is calling (sts:GetCallerIdentity)".into(),
                source: aws::Error::from_sdk(aws::Service::Sts, "sts:GetCallerIdentity", &e),
            })
        })?;
    Ok(Caller {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
        region,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Aws(#[from] aws::CallError),
    /// CloudFormation could not plan the template.
    #[error("stack `{stack}`: CloudFormation cannot plan the change: {reason}")]
    ChangeSetFailed { stack: String, reason: String },
    /// An apply that ended failed or rolled back.
    #[error("stack `{stack}` is {status}{}: {reason}", resource.as_ref().map(|r| format!(" ({r} failed)")).unwrap_or_default())]
    Failed {
        stack: String,
        status: String,
        resource: Option<String>,
        reason: String,
    },
    /// The stack disappeared while it was waited for (a delete that finished).
    #[error("the stack is gone")]
    Gone,
    /// The stack is in a state no change can start from.
    #[error("stack `{stack}` is {status}: {why}")]
    Blocked {
        stack: String,
        status: String,
        why: String,
        hint: String,
    },
    #[error("S3 {what}: {source}")]
    S3 {
        what: String,
        #[source]
        source: aws::Error,
    },
    /// Settings that would deploy something that cannot work.
    #[error("{message}")]
    Settings { message: String, hint: String },
    #[error("{0}")]
    Other(String),
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Aws(e) => e.hint(),
            Error::S3 { source, .. } => source.hint(),
            Error::ChangeSetFailed { .. } => Some(
                "check the settings in [provision]; `cachectl provision --print-template` shows what was sent".into(),
            ),
            Error::Failed { reason, .. } => Some(failure_hint(reason)),
            Error::Blocked { hint, .. } | Error::Settings { hint, .. } => Some(hint.clone()),
            Error::Gone | Error::Other(_) => None,
        }
    }
}

/// What to do about a resource failure, from the words CloudFormation uses for the common
/// causes.
fn failure_hint(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    if r.contains("already exists") || r.contains("alreadyexists") {
        "a resource with that name exists outside the stack: give another name (--bucket, --stack) or remove the other one".into()
    } else if r.contains("not authorized")
        || r.contains("accessdenied")
        || r.contains("access denied")
    {
        "the caller (or --role-arn) lacks a permission named above; see README, \"Set up an account\"".into()
    } else {
        "the stack was rolled back; fix the cause above and run `cachectl provision` again".into()
    }
}
