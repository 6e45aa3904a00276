//! What an AWS SDK error means, for every service we call (S3, CloudWatch): one place that
//! reads status codes, error codes and transport failures, and turns them into one readable line.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NoCredentials,
    Unreachable,
    Denied,
    NotFound,
    Throttled,
    Other,
}

/// An SDK error read once: its meaning, its service error code, and one line of text.
#[derive(Debug)]
pub struct Classified {
    pub kind: Kind,
    pub code: Option<String>,
    pub status: Option<u16>,
    pub text: String,
}

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

pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let is_transport = matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    );
    let text = describe(err);
    let c = code.as_deref();
    let kind = if is_transport {
        // The SDK reports a failed credential chain as a dispatch failure with no typed cause;
        // its text is the only thing that tells it apart from an unreachable endpoint.
        if text.contains("credentials") {
            Kind::NoCredentials
        } else {
            Kind::Unreachable
        }
    } else if matches!(status, Some(401 | 403)) || c.is_some_and(|c| DENIED_CODES.contains(&c)) {
        Kind::Denied
    } else if status == Some(404) || matches!(c, Some("NoSuchKey" | "NotFound")) {
        Kind::NotFound
    } else if matches!(status, Some(429 | 503))
        || matches!(c, Some("SlowDown" | "Throttling" | "ThrottlingException"))
    {
        Kind::Throttled
    } else {
        Kind::Other
    };
    Classified {
        kind,
        code,
        status,
        text,
    }
}

/// One readable line: `AccessDenied: Access Denied`, or the transport chain
/// `dispatch failure: io error: ...: Connection refused (os error 111)`.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
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

/// Joins multi-line messages (some services send them) into one line.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(":; ", ": ")
}
