//! What an AWS SDK error means, for every service cachectl calls: status code, service error
//! code and transport failure read once, into one type that knows its service, the IAM action
//! that was attempted, what kind of failure it is, and how to fix it.

use super::iam;
use crate::error::Hint;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An AWS service cachectl calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    CloudWatch,
    CloudFormation,
    CodeBuild,
    Sts,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::CloudWatch => "CloudWatch",
            Service::CloudFormation => "CloudFormation",
            Service::CodeBuild => "CodeBuild",
            Service::Sts => "STS",
        }
    }

    /// The service-specific endpoint variable (the SDK's `AWS_ENDPOINT_URL_<SERVICE>`).
    pub fn endpoint_var(self) -> &'static str {
        match self {
            Service::S3 => crate::env::AWS_ENDPOINT_URL_S3,
            Service::CloudWatch => crate::env::AWS_ENDPOINT_URL_CLOUDWATCH,
            Service::CloudFormation => crate::env::AWS_ENDPOINT_URL_CLOUDFORMATION,
            Service::CodeBuild => crate::env::AWS_ENDPOINT_URL_CODEBUILD,
            Service::Sts => crate::env::AWS_ENDPOINT_URL_STS,
        }
    }

    /// How a build in a VPC without internet access reaches the service.
    fn vpc_route(self) -> &'static str {
        match self {
            Service::S3 => "an S3 gateway endpoint or NAT",
            Service::CloudWatch => "a monitoring interface endpoint or NAT",
            Service::CloudFormation | Service::CodeBuild | Service::Sts => {
                "an interface endpoint for the service or NAT"
            }
        }
    }
}

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The credential chain found nothing (or nothing valid).
    NoCredentials,
    /// No answer: connection refused, DNS, TLS, timeout.
    Unreachable,
    /// 401/403, or an error code that means the credentials may not do this.
    Denied,
    /// 404, `NoSuchKey`, `NotFound`, `NoSuchBucket`.
    NotFound,
    /// 429/503, `SlowDown`, `Throttling`.
    Throttled,
    Other,
}

/// Error codes that mean "these credentials may not do this", across services.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
];

/// One failed AWS call, read once. Its text is the service's own words on one line
/// (`AccessDenied: Access Denied`) or the transport's (`dispatch failure: ...: Connection
/// refused (os error 111)`); callers put what they were doing in front (see [`CallError`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub service: Service,
    /// The IAM action the call needs, e.g. `s3:GetObject` (from [`iam`]).
    pub action: &'static str,
    pub kind: Kind,
    /// The service's error code, e.g. `AccessDenied`, `NoSuchBucket`, `PreconditionFailed`.
    pub code: Option<String>,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    message: String,
}

impl Error {
    /// Reads an SDK error of `service`'s call needing IAM `action`.
    pub fn from_sdk<E>(service: Service, action: &'static str, err: &SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let message = describe(err);
        let kind = if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) {
            // The SDK reports a failed credential chain as a dispatch failure with no typed
            // cause; its text is the only thing that tells it apart from an unreachable endpoint.
            if message.contains("credentials") {
                Kind::NoCredentials
            } else {
                Kind::Unreachable
            }
        } else {
            kind_of(status, err.code())
        };
        Error {
            service,
            action,
            kind,
            code: err.code().map(str::to_owned),
            status,
            message,
        }
    }

    /// A failure the service reported per item inside a successful answer (DeleteObjects'
    /// errors), read by its error code.
    pub fn from_code(
        service: Service,
        action: &'static str,
        code: Option<&str>,
        message: String,
    ) -> Self {
        Error {
            service,
            action,
            kind: kind_of(None, code),
            code: code.map(str::to_owned),
            status: None,
            message,
        }
    }

    /// An answer the SDK accepted that still means failure (e.g. a GetMetricData result with
    /// status `Forbidden`).
    pub fn new(service: Service, action: &'static str, kind: Kind, message: String) -> Self {
        Error {
            service,
            action,
            kind,
            code: None,
            status: None,
            message,
        }
    }

    /// What the failure means, in a few words (`access denied`, `cannot reach CloudWatch`);
    /// `None` when the service's own words are all there is to say.
    pub fn summary(&self) -> Option<String> {
        let service = self.service.name();
        match self.kind {
            Kind::NoCredentials => Some("no AWS credentials".into()),
            Kind::Unreachable => Some(format!("cannot reach {service}")),
            Kind::Denied => Some("access denied".into()),
            Kind::Throttled => Some(format!("throttled by {service}")),
            // A 404 from a service without objects (CloudWatch) means a wrong endpoint, not a
            // missing thing: its own text says more than "not found".
            Kind::NotFound | Kind::Other => None,
        }
    }

    /// Whether a conditional write (`If-None-Match: *`) lost to another writer: `412
    /// Precondition Failed` (the object exists), or `409 ConditionalRequestConflict` (another
    /// conditional write of the key is in flight; S3 keeps the first to finish).
    pub fn lost_conditional_write(&self) -> bool {
        // A 412 may come without a body, so the status counts as much as the code.
        matches!(
            self.code.as_deref(),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        ) || self.status == Some(412)
    }

    /// Whether the server does not implement the operation (some S3-compatible servers).
    pub fn is_not_implemented(&self) -> bool {
        self.code.as_deref() == Some("NotImplemented") || self.status == Some(501)
    }
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        let service = self.service;
        Some(match self.kind {
            Kind::NoCredentials => "in CodeBuild the project's service role provides credentials; elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Kind::Denied => {
                let needs = match service {
                    Service::S3 => format!(
                        "a build's role needs {} on the cache bucket (prune and rm also {})",
                        iam::list(iam::BUILD_S3),
                        iam::list(iam::MAINTAIN_S3)
                    ),
                    Service::CloudWatch => format!(
                        "publishing needs {}, `cachectl stats` needs {}",
                        iam::list(iam::PUBLISH_METRICS),
                        iam::list(iam::READ_METRICS)
                    ),
                    Service::CloudFormation | Service::CodeBuild | Service::Sts => {
                        "`cachectl provision` needs what README's \"Set up an account\" lists, or --role-arn with a CloudFormation service role".into()
                    }
                };
                format!(
                    "{} was denied; {needs}; check the credentials in use (`aws sts get-caller-identity`)",
                    self.action
                )
            }
            Kind::Unreachable => format!(
                "check AWS_REGION, AWS_ENDPOINT_URL / {} and network access to {} (a VPC build needs {})",
                service.endpoint_var(),
                service.name(),
                service.vpc_route()
            ),
            Kind::Throttled => match service {
                Service::S3 => "lower --concurrency or spread builds over more key prefixes".into(),
                other => format!(
                    "retry later; {} limits API calls per account and region",
                    other.name()
                ),
            },
            Kind::NotFound | Kind::Other => return None,
        })
    }
}

/// A failed AWS call and what cachectl was doing: `list metrics in CloudWatch namespace
/// `Cachectl`: access denied`, caused by the [`Error`] (the service's words).
#[derive(Debug, thiserror::Error)]
#[error("{what}{}", source.summary().map(|s| format!(": {s}")).unwrap_or_default())]
pub struct CallError {
    pub what: String,
    #[source]
    pub source: Error,
}

impl Hint for CallError {
    fn hint(&self) -> Option<String> {
        self.source.hint()
    }
}

/// What an answer's status and error code mean.
fn kind_of(status: Option<u16>, code: Option<&str>) -> Kind {
    if matches!(status, Some(401 | 403)) || code.is_some_and(|c| DENIED_CODES.contains(&c)) {
        Kind::Denied
    } else if status == Some(404) || matches!(code, Some("NoSuchKey" | "NotFound" | "NoSuchBucket"))
    {
        Kind::NotFound
    } else if matches!(status, Some(429 | 503))
        || matches!(
            code,
            Some("SlowDown" | "Throttling" | "ThrottlingException")
        )
    {
        Kind::Throttled
    } else {
        Kind::Other
    }
}

/// One readable line: `AccessDenied: Access Denied`, or the transport chain
/// `dispatch failure: io error: ...: Connection refused (os error 111)`.
fn describe<E>(err: &SdkError<E, Response>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        match (e.code(), e.message()) {
            (Some(c), Some(m)) => return one_line(&format!("{c}: {m}")),
            (Some(c), None) => return c.to_owned(),
            // No code: an unparseable answer. Its cause chain below says what was wrong.
            _ => {}
        }
    }
    let head = match err.raw_response() {
        Some(r) => format!("HTTP {}: {err}", r.status().as_u16()),
        None => err.to_string(),
    };
    one_line(&match std::error::Error::source(err) {
        Some(cause) => {
            let rest = crate::error::chain(cause);
            if head.contains(&rest) {
                head
            } else {
                format!("{head}: {rest}")
            }
        }
        None => head,
    })
}

/// Joins multi-line messages (some services and the credential chain send them) into one line.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(":; ", ": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_hints_name_the_action_and_what_the_feature_needs() {
        let s3 = Error::new(
            Service::S3,
            iam::S3_LIST_BUCKET,
            Kind::Denied,
            "AccessDenied: Access Denied".into(),
        );
        let hint = s3.hint().unwrap();
        assert!(hint.starts_with("s3:ListBucket was denied; a build's role needs s3:GetObject, s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload on the cache bucket (prune and rm also s3:DeleteObject and s3:ListBucketMultipartUploads)"), "{hint}");
        let cw = Error::new(
            Service::CloudWatch,
            iam::CLOUDWATCH_LIST_METRICS,
            Kind::Denied,
            "AccessDenied".into(),
        );
        assert!(cw.hint().unwrap().contains(
            "`cachectl stats` needs cloudwatch:ListMetrics and cloudwatch:GetMetricData"
        ));
    }

    #[test]
    fn call_errors_read_as_one_line_with_their_cause() {
        let e = CallError {
            what: "list metrics in CloudWatch namespace `Cachectl`".into(),
            source: Error::new(
                Service::CloudWatch,
                iam::CLOUDWATCH_LIST_METRICS,
                Kind::Unreachable,
                "dispatch failure: connection refused".into(),
            ),
        };
        assert_eq!(
            crate::error::chain(&e),
            "list metrics in CloudWatch namespace `Cachectl`: cannot reach CloudWatch: dispatch failure: connection refused"
        );
        assert!(e.hint().unwrap().contains("AWS_ENDPOINT_URL_CLOUDWATCH"));
    }

    #[test]
    fn a_conditional_write_loses_on_412_and_on_409_conflict() {
        let cases = [
            ("exists", Some("PreconditionFailed"), true),
            ("in flight", Some("ConditionalRequestConflict"), true),
            ("denied", Some("AccessDenied"), false),
            ("no code", None, false),
        ];
        for (name, code, lost) in cases {
            let e = Error::from_code(Service::S3, iam::S3_PUT_OBJECT, code, String::new());
            assert_eq!(e.lost_conditional_write(), lost, "case {name}");
        }
    }

    #[test]
    fn multi_line_messages_become_one() {
        assert_eq!(one_line("a:\n  b\n\n  c"), "a: b; c");
    }
}
