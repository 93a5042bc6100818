//! What each Lambda function does with one invocation: read the payload, call the services
//! (`app`), count what they did as metrics, and say whether a failure is worth a retry. They are
//! generic over the ports and name no adapter: the functions' `main`s parse their
//! configuration, build the adapters once per cold start and call these.

pub mod admitter;
pub mod collector;
pub mod enforcer;
pub mod ticker;

/// A failed invocation, with whether trying again can help (Lambda's asynchronous retries and
/// the dead-letter queue act on the error; the functions map this to the runtime's
/// `Diagnostic` error type).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Storage or an AWS API failed: the same event may well succeed later.
    #[error("{0}")]
    Retryable(String),
    /// The invocation itself is unusable (not an event, a bad request).
    #[error("{0}")]
    NonRetryable(String),
}

impl HandlerError {
    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Retryable(_) => "Retryable",
            Self::NonRetryable(_) => "NonRetryable",
        }
    }
}

/// How Lambda reports a failed invocation: `errorType` says whether a retry can help.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        Self {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The wall clock, in Unix milliseconds: read by the functions' `main`s and passed in, so the
/// handlers never read a clock themselves.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl From<crate::ports::StoreError> for HandlerError {
    fn from(error: crate::ports::StoreError) -> Self {
        Self::Retryable(error.to_string())
    }
}
