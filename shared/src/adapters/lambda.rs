//! Invoking the enforcer function asynchronously (`aws-sdk-lambda`, invocation type `Event`):
//! the ticker hands enforcement over and returns; Lambda retries and the enforcer's
//! dead-letter queue take care of failures.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::core::enforcement::EnforcerRequest;
use crate::ports::{ControlError, EnforcerTrigger};

#[derive(Clone, Debug)]
pub struct LambdaTrigger {
    client: Client,
    function: String,
}

impl LambdaTrigger {
    pub fn new(client: Client, function: String) -> Self {
        Self { client, function }
    }
}

impl EnforcerTrigger for LambdaTrigger {
    async fn trigger(&self, request: &EnforcerRequest) -> Result<(), ControlError> {
        let payload = serde_json::to_vec(request).map_err(|e| ControlError::Api {
            operation: "Invoke",
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| ControlError::Api {
                operation: "Invoke",
                message: super::sdk_error::summary(&e),
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }
}
