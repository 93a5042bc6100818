//! Notifications and enforcer triggers, kept in memory: what would have been sent.

use std::sync::{Mutex, PoisonError};

use crate::core::enforcement::EnforcerRequest;
use crate::ports::{ControlError, EnforcerTrigger, Notifier};

/// Notifications, kept (their subjects).
#[derive(Debug, Default)]
pub struct Outbox(pub Mutex<Vec<String>>);

impl Notifier for Outbox {
    async fn notify(&self, subject: &str, _message: &str) -> Result<(), ControlError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(subject.to_owned());
        Ok(())
    }
}

/// An enforcer trigger that keeps the requests.
#[derive(Debug, Default)]
pub struct RecordingTrigger(pub Mutex<Vec<EnforcerRequest>>);

impl EnforcerTrigger for RecordingTrigger {
    async fn trigger(&self, request: &EnforcerRequest) -> Result<(), ControlError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        Ok(())
    }
}
