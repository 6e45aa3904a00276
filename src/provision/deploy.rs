//! Planning and applying the stack through CloudFormation change sets: the change set's
//! description is the plan; executing it is the apply; stack events are the progress.

use super::{Change, Error, StackEvent};
use crate::aws::{self, Service};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, ResourceToImport, StackStatus, Tag,
};
use aws_sdk_cloudformation::Client;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// What CloudFormation says when a change set would change nothing. The only signal for "no
/// changes" is this status reason (CloudFormation User Guide, "Update stacks using change sets").
const NO_CHANGES: &[&str] = &["didn't contain changes", "No updates are to be performed"];

/// A stack as `DescribeStacks` reports it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub status: String,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

/// One CloudFormation stack, by name.
pub struct Deployer {
    client: Client,
    pub stack: String,
    role_arn: Option<String>,
}

/// A change set made and described, not yet executed or deleted.
#[derive(Debug)]
pub struct Planned {
    pub change_set: String,
    pub changes: Vec<Change>,
    /// A CREATE (or IMPORT into a new stack) change set makes the stack, in
    /// `REVIEW_IN_PROGRESS`: discarding the plan deletes it again.
    pub new_stack: bool,
}

/// A failed CloudFormation call as [`Error::Aws`], saying what was being done.
fn call(what: &str) -> impl FnOnce(aws::Error) -> Error + '_ {
    move |source| {
        Error::Aws(aws::CallError {
            what: what.to_owned(),
            source,
        })
    }
}

/// Awaits a CloudFormation call, mapping its error (`what` it was for, the IAM `action`).
macro_rules! sdk {
    ($what:expr, $action:expr, $fut:expr) => {
        $fut.await
            .map_err(|e| call($what)(aws::Error::from_sdk(Service::CloudFormation, $action, &e)))
    };
}

impl Deployer {
    pub fn new(conf: &aws_config::SdkConfig, stack: &str, role_arn: Option<String>) -> Self {
        Deployer {
            client: Client::new(conf),
            stack: stack.to_owned(),
            role_arn,
        }
    }

    /// The stack, or None if there is none by that name (deleted stacks are none).
    pub async fn describe(&self) -> Result<Option<Stack>, Error> {
        let out = self
            .client
            .describe_stacks()
            .stack_name(&self.stack)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let err = aws::Error::from_sdk(Service::CloudFormation, ACTION_DESCRIBE, &e);
                // A missing stack is a ValidationError "Stack with id X does not exist".
                if err.code.as_deref() == Some("ValidationError")
                    && err.to_string().contains("does not exist")
                {
                    return Ok(None);
                }
                return Err(call("describe the stack")(err));
            }
        };
        let Some(s) = out.stacks().first() else {
            return Ok(None);
        };
        let status = s
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        if status == StackStatus::DeleteComplete.as_str() {
            return Ok(None);
        }
        Ok(Some(Stack {
            status,
            reason: s.stack_status_reason().map(str::to_owned),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
        }))
    }

    /// Makes a change set for `template` and waits until CloudFormation has planned it.
    /// `Ok(None)`: the template changes nothing (the change set is deleted again).
    pub async fn plan(
        &self,
        template: &str,
        kind: ChangeSetType,
        import: Vec<ResourceToImport>,
    ) -> Result<Option<Planned>, Error> {
        let name = format!(
            "cachectl-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        let new_stack = kind != ChangeSetType::Update;
        sdk!(
            "create a change set",
            ACTION_CREATE_CHANGE_SET,
            self.client
                .create_change_set()
                .stack_name(&self.stack)
                .change_set_name(&name)
                .change_set_type(kind)
                .template_body(template)
                .capabilities(Capability::CapabilityNamedIam)
                .tags(
                    Tag::builder()
                        .key(super::template::TAG_KEY)
                        .value(super::template::TAG_VALUE)
                        .build()
                )
                .set_resources_to_import((!import.is_empty()).then_some(import))
                .set_role_arn(self.role_arn.clone())
                .description("planned by cachectl provision")
                .send()
        )?;
        let mut delay = Poll::new();
        loop {
            let d = sdk!(
                "describe the change set",
                ACTION_DESCRIBE_CHANGE_SET,
                self.client
                    .describe_change_set()
                    .stack_name(&self.stack)
                    .change_set_name(&name)
                    .send()
            )?;
            let status = d.status().cloned();
            match status {
                Some(ChangeSetStatus::CreateComplete) => {
                    let changes = self.changes(&name).await?;
                    return Ok(Some(Planned {
                        change_set: name,
                        changes,
                        new_stack,
                    }));
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = d.status_reason().unwrap_or_default().to_owned();
                    let planned = Planned {
                        change_set: name,
                        changes: Vec::new(),
                        new_stack,
                    };
                    if NO_CHANGES.iter().any(|n| reason.contains(n)) {
                        self.discard(&planned).await?;
                        return Ok(None);
                    }
                    let _ = self.discard(&planned).await;
                    return Err(Error::ChangeSetFailed {
                        stack: self.stack.clone(),
                        reason,
                    });
                }
                _ => delay.wait().await,
            }
        }
    }

    /// Every resource change of a change set, in the order CloudFormation lists them.
    async fn changes(&self, name: &str) -> Result<Vec<Change>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let d = sdk!(
                "describe the change set",
                ACTION_DESCRIBE_CHANGE_SET,
                self.client
                    .describe_change_set()
                    .stack_name(&self.stack)
                    .change_set_name(name)
                    .set_next_token(token)
                    .send()
            )?;
            for c in d.changes() {
                let Some(rc) = c.resource_change() else {
                    continue;
                };
                out.push(Change {
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                    action: rc
                        .action()
                        .map(|a| a.as_str().to_owned())
                        .unwrap_or_default(),
                    replacement: rc
                        .replacement()
                        .map(|r| r.as_str().to_owned())
                        .filter(|r| r != "False"),
                });
            }
            token = d.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Deletes a change set that will not be executed, and the stack it made if it made one
    /// (a dry run leaves nothing behind).
    pub async fn discard(&self, planned: &Planned) -> Result<(), Error> {
        sdk!(
            "delete the change set",
            ACTION_DELETE_CHANGE_SET,
            self.client
                .delete_change_set()
                .stack_name(&self.stack)
                .change_set_name(&planned.change_set)
                .send()
        )?;
        if planned.new_stack {
            if let Some(s) = self.describe().await? {
                if s.status == StackStatus::ReviewInProgress.as_str() {
                    self.delete_stack().await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the stack if it never got past its creation (review, or a failed or rolled-back
    /// create or import): what an interrupted first provision leaves.
    pub async fn delete_new(&self) -> Result<(), Error> {
        let new = [
            "REVIEW_IN_PROGRESS",
            "CREATE_FAILED",
            "ROLLBACK_COMPLETE",
            "IMPORT_ROLLBACK_COMPLETE",
            "CREATE_IN_PROGRESS",
            "IMPORT_IN_PROGRESS",
        ];
        match self.describe().await? {
            Some(s) if new.contains(&s.status.as_str()) => self.delete_stack().await,
            _ => Ok(()),
        }
    }

    async fn delete_stack(&self) -> Result<(), Error> {
        sdk!(
            "delete the stack",
            ACTION_DELETE_STACK,
            self.client
                .delete_stack()
                .stack_name(&self.stack)
                .set_role_arn(self.role_arn.clone())
                .send()
        )?;
        Ok(())
    }

    /// Executes a planned change set and waits for the stack to settle, handing each new stack
    /// event to `on_event` as it appears. Returns the final stack; a failed apply is
    /// [`Error::Failed`] with the first failure's reason.
    pub async fn apply(
        &self,
        planned: Planned,
        on_event: &mut dyn FnMut(&StackEvent),
    ) -> Result<Stack, Error> {
        let seen = self.event_ids().await?;
        let executed = self
            .client
            .execute_change_set()
            .stack_name(&self.stack)
            .change_set_name(&planned.change_set)
            .send()
            .await;
        if let Err(e) = executed {
            let err = aws::Error::from_sdk(Service::CloudFormation, ACTION_EXECUTE_CHANGE_SET, &e);
            // Refused outright (an engine that creates resources while executing): the
            // service's words are the failure's reason.
            if err.kind == aws::Kind::Other {
                return Err(Error::Failed {
                    stack: self.stack.clone(),
                    status: "not applied".into(),
                    resource: None,
                    reason: err.to_string(),
                });
            }
            return Err(call("execute the change set")(err));
        }
        self.settle(seen, on_event).await
    }

    /// Deletes the stack and waits until it is gone, handing each new event to `on_event`.
    pub async fn delete(&self, on_event: &mut dyn FnMut(&StackEvent)) -> Result<(), Error> {
        let seen = self.event_ids().await?;
        self.delete_stack().await?;
        match self.settle(seen, on_event).await {
            Ok(_) | Err(Error::Gone) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The stack's resources: logical id and type.
    pub async fn resources(&self) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = sdk!(
                "list the stack's resources",
                ACTION_LIST_RESOURCES,
                self.client
                    .list_stack_resources()
                    .stack_name(&self.stack)
                    .set_next_token(token)
                    .send()
            )?;
            for r in page.stack_resource_summaries() {
                out.push((
                    r.logical_resource_id().unwrap_or_default().to_owned(),
                    r.resource_type().unwrap_or_default().to_owned(),
                ));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn event_ids(&self) -> Result<HashSet<String>, Error> {
        Ok(self.events().await?.into_iter().map(|e| e.id).collect())
    }

    /// The stack's events, oldest first (the API lists newest first, by pages).
    async fn events(&self) -> Result<Vec<StackEvent>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .describe_stack_events()
                .stack_name(&self.stack)
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let err =
                        aws::Error::from_sdk(Service::CloudFormation, ACTION_DESCRIBE_EVENTS, &e);
                    if err.to_string().contains("does not exist") {
                        break;
                    }
                    return Err(call("read the stack's events")(err));
                }
            };
            out.extend(page.stack_events().iter().map(|e| {
                StackEvent {
                    id: e.event_id().unwrap_or_default().to_owned(),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: e.resource_type().unwrap_or_default().to_owned(),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: e.resource_status_reason().map(str::to_owned),
                }
            }));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Polls until the stack leaves every `*_IN_PROGRESS` status; new events go to
    /// `on_event`. The stack gone is [`Error::Gone`]; a failed or rolled-back status is
    /// [`Error::Failed`].
    async fn settle(
        &self,
        mut seen: HashSet<String>,
        on_event: &mut dyn FnMut(&StackEvent),
    ) -> Result<Stack, Error> {
        let mut delay = Poll::new();
        let mut first_failure: Option<StackEvent> = None;
        loop {
            for e in self.events().await? {
                if seen.insert(e.id.clone()) {
                    if first_failure.is_none() && e.status.ends_with("_FAILED") {
                        first_failure = Some(e.clone());
                    }
                    on_event(&e);
                }
            }
            let Some(stack) = self.describe().await? else {
                return Err(Error::Gone);
            };
            if stack.status.ends_with("_IN_PROGRESS") {
                delay.wait().await;
                continue;
            }
            let ok = [
                StackStatus::CreateComplete,
                StackStatus::UpdateComplete,
                StackStatus::ImportComplete,
            ]
            .iter()
            .any(|s| s.as_str() == stack.status);
            if ok {
                return Ok(stack);
            }
            return Err(Error::Failed {
                stack: self.stack.clone(),
                status: stack.status.clone(),
                resource: first_failure.as_ref().map(|e| e.logical_id.clone()),
                reason: first_failure
                    .and_then(|e| e.reason)
                    .or(stack.reason)
                    .unwrap_or_else(|| "no reason given".into()),
            });
        }
    }
}

/// Waits between polls: quick at first (a local endpoint settles at once), then every 3 s, as
/// the AWS CLI's waiters poll CloudFormation.
struct Poll(u32);

impl Poll {
    fn new() -> Self {
        Poll(0)
    }

    async fn wait(&mut self) {
        let ms = (100u64 << self.0.min(5)).min(3000);
        self.0 += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

// IAM actions of the calls (for hints when one is denied).
const ACTION_DESCRIBE: &str = "cloudformation:DescribeStacks";
const ACTION_CREATE_CHANGE_SET: &str = "cloudformation:CreateChangeSet";
const ACTION_DESCRIBE_CHANGE_SET: &str = "cloudformation:DescribeChangeSet";
const ACTION_DELETE_CHANGE_SET: &str = "cloudformation:DeleteChangeSet";
const ACTION_EXECUTE_CHANGE_SET: &str = "cloudformation:ExecuteChangeSet";
const ACTION_DESCRIBE_EVENTS: &str = "cloudformation:DescribeStackEvents";
const ACTION_DELETE_STACK: &str = "cloudformation:DeleteStack";
const ACTION_LIST_RESOURCES: &str = "cloudformation:ListStackResources";
