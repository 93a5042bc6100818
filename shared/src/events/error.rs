//! What can go wrong reading an event, each error naming the field at fault, and why an event
//! of another kind is skipped.

/// `detail-type` of AWS Batch job state changes.
pub const BATCH_JOB_STATE_CHANGE: &str = "Batch Job State Change";
/// `detail-type` of Amazon ECS task state changes.
pub const ECS_TASK_STATE_CHANGE: &str = "ECS Task State Change";
/// `detail-type` of Amazon ECS container instance (EC2) state changes.
pub const ECS_CONTAINER_INSTANCE_STATE_CHANGE: &str = "ECS Container Instance State Change";

/// Why an event was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("not an EventBridge event (no detail-type)")]
    NotEventBridge,
    #[error("detail-type {0:?} is not one batchguard reads")]
    OtherDetailType(String),
    #[error("ECS task in cluster {cluster:?}, which AWS Batch does not manage")]
    NotBatchCluster { cluster: String },
}

/// An event batchguard should read but cannot. Every variant names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("{detail_type}: missing field `{field}`")]
    MissingField {
        detail_type: &'static str,
        field: &'static str,
    },
    #[error("{detail_type}: field `{field}` = {value:?}: {reason}")]
    InvalidField {
        detail_type: &'static str,
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("{detail_type}: {path}: {message}")]
    Malformed {
        detail_type: &'static str,
        path: String,
        message: String,
    },
}

/// A field that is there but cannot be read.
pub(super) fn invalid(
    detail_type: &'static str,
    field: &str,
    value: &str,
    reason: &'static str,
) -> EventError {
    EventError::InvalidField {
        detail_type,
        field: format!("detail.{field}"),
        value: value.to_owned(),
        reason,
    }
}

/// A field the event must have.
pub(super) fn missing(detail_type: &'static str, field: &'static str) -> EventError {
    EventError::MissingField { detail_type, field }
}
