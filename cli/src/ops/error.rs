//! Errors of the operator commands: each names the resource, the cause and
//! the fix.

use std::fmt;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// An AWS call failed.
    #[error("{operation} on {resource} failed: {cause}. Fix: {fix}")]
    Aws {
        /// The API operation, e.g. `sqs:ReceiveMessage`.
        operation: String,
        /// The queue, table or stream it was called on.
        resource: String,
        /// What went wrong.
        cause: String,
        /// What to do about it.
        fix: String,
    },
    /// The command cannot do what it was asked (a wrong argument, a queue
    /// that is not what the command needs).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        cause: String,
    },
}

/// The result of an operator command.
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

impl OpsError {
    /// A usage error.
    pub fn usage(message: impl fmt::Display) -> Self {
        Self::Usage(message.to_string())
    }

    pub(crate) fn io(path: impl fmt::Display, e: impl fmt::Display) -> Self {
        Self::Io { path: path.to_string(), cause: e.to_string() }
    }
}

/// What kind of failure an AWS error is, to say how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    NotFound,
    AccessDenied,
    BadCredentials,
    Unreachable,
    Unsupported,
    Other,
}

/// Classifies an SDK error by its service error code, HTTP status and
/// dispatch failure.
pub(crate) fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => return Failure::Unreachable,
        _ => {}
    }
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default();
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    if code.contains("NonExistentQueue")
        || code.contains("QueueDoesNotExist")
        || code.contains("ResourceNotFound")
        || code.contains("NotFound")
    {
        Failure::NotFound
    } else if code.contains("AccessDenied") || code.contains("NotAuthorized") || code == "AuthorizationError" {
        Failure::AccessDenied
    } else if code.contains("InvalidClientTokenId")
        || code.contains("SignatureDoesNotMatch")
        || code.contains("ExpiredToken")
        || code.contains("UnrecognizedClient")
        || code.contains("InvalidSecurity")
    {
        Failure::BadCredentials
    } else if code.contains("Unsupported")
        || code.contains("InvalidAction")
        || code.contains("NotImplemented")
        || code.contains("UnknownOperation")
        || status == 500
        || status == 501
    {
        // The local SQS answers operations it does not implement with HTTP
        // 500; AWS itself never does for these calls in normal operation.
        Failure::Unsupported
    } else {
        Failure::Other
    }
}

fn where_hint() -> String {
    match crate::aws::endpoint_url_from_env() {
        Some(url) => format!(" at AWS_ENDPOINT_URL={url}"),
        None => String::new(),
    }
}

/// An [`OpsError::Aws`] for a failed call, with a fix that fits the failure.
pub(crate) fn aws_error<E>(operation: &str, resource: &str, err: &SdkError<E, HttpResponse>) -> OpsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = classify(err);
    let fix = match failure {
        Failure::NotFound => format!(
            "check the URL or name and the region (AWS_REGION){}; name a template queue by its logical id \
             together with --stack-name, or pass the queue URL",
            where_hint()
        ),
        Failure::AccessDenied => format!(
            "grant the caller {operation} on {resource} (docs/operators.md lists the permissions each command needs)"
        ),
        Failure::BadCredentials => {
            "the credentials were rejected: refresh them (aws sso login, AWS_PROFILE, or AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY)"
                .to_owned()
        }
        Failure::Unreachable => format!(
            "the endpoint could not be reached{}: check the network, AWS_REGION and AWS_ENDPOINT_URL (is the local \
             stack running?)",
            where_hint()
        ),
        Failure::Unsupported => format!("the endpoint{} does not implement {operation}", where_hint()),
        Failure::Other => "see the cause; retry if it is transient (throttling, a timeout)".to_owned(),
    };
    OpsError::Aws { operation: operation.to_owned(), resource: resource.to_owned(), cause: describe(err), fix }
}

/// A short cause: `Code: message` for a service error, the HTTP status for
/// an answer that is not one (the local emulator's HTML error pages), else
/// the error with its sources.
pub(crate) fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(code) = err.as_service_error().and_then(|e| e.code()) {
        let message = err.as_service_error().and_then(|e| e.message()).unwrap_or_default();
        return format!("{code}: {}", message.trim_end_matches('.'));
    }
    if let Some(r) = err.raw_response() {
        return format!("HTTP {} without an AWS error in the body", r.status().as_u16());
    }
    DisplayErrorContext(err).to_string().trim_end_matches('.').to_owned()
}
