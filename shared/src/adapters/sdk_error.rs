//! An AWS SDK error in one line, for people: the service's own code and message when AWS
//! answered, otherwise the chain of causes (no credentials, no region, a connection refused).
//! The full error stays the `source` of the error that carries this line, for `--verbose`.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// `Code: message` of a service error, or the error and its causes joined by `: `.
pub fn summary<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = error.as_service_error()
        && let Some(code) = service.code()
    {
        return match service.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
