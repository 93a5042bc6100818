//! The EventBridge wire format: raw event JSON → [`Fact`], tolerant of what AWS adds.
//!
//! The envelope is `aws_lambda_events::eventbridge::EventBridgeEvent<T>`, with `T` our
//! [`EventDetail`]: the union of the *Batch Job State Change*, *ECS Task State Change* and
//! *ECS Container Instance State Change* detail fields we read. One pass over the bytes reads both envelope and detail (the
//! `detail-type` then says which half to use), about twice as fast as keeping the detail raw
//! and parsing it again. Unknown fields are ignored; a field we need that is missing or
//! malformed is an [`EventError`] naming it; an event of another kind is
//! [`Parsed::Skipped`] with the reason.

mod batch;
mod detail;
mod ecs;
mod error;
mod fields;

use aws_lambda_events::eventbridge::EventBridgeEvent;

use crate::core::facts::{Fact, FactBody, Millis};

pub use detail::EventDetail;
pub use error::{
    BATCH_JOB_STATE_CHANGE, ECS_CONTAINER_INSTANCE_STATE_CHANGE, ECS_TASK_STATE_CHANGE, EventError,
    SkipReason,
};

/// What one event turned into.
#[allow(
    clippy::large_enum_variant,
    reason = "almost every event is a fact: boxing would allocate on the common path to save stack on the rare one"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Fact(Fact),
    /// Well-formed, but not something batchguard reads.
    Skipped(SkipReason),
}

/// Parses one event.
pub fn parse_event(bytes: &[u8]) -> Result<Parsed, EventError> {
    let envelope: EventBridgeEvent<EventDetail> = match serde_json::from_slice(bytes) {
        Ok(envelope) => envelope,
        Err(_) => return explain_failure(bytes),
    };
    let observed_at = envelope.time.map(Millis::from_datetime);
    let event_id = envelope.id.unwrap_or_default();
    let region = envelope.region;
    let (detail_type, body) = match envelope.detail_type.as_str() {
        BATCH_JOB_STATE_CHANGE => (
            BATCH_JOB_STATE_CHANGE,
            FactBody::Job(envelope.detail.into_job(region)?),
        ),
        ECS_TASK_STATE_CHANGE => match envelope.detail.into_task(region)? {
            Ok(task) => (ECS_TASK_STATE_CHANGE, FactBody::Task(task)),
            Err(skip) => return Ok(Parsed::Skipped(skip)),
        },
        ECS_CONTAINER_INSTANCE_STATE_CHANGE => match envelope.detail.into_instance(region)? {
            Ok(instance) => (
                ECS_CONTAINER_INSTANCE_STATE_CHANGE,
                FactBody::Instance(instance),
            ),
            Err(skip) => return Ok(Parsed::Skipped(skip)),
        },
        other => {
            return Ok(Parsed::Skipped(SkipReason::OtherDetailType(
                other.to_owned(),
            )));
        }
    };
    if event_id.is_empty() {
        // The id is what makes a redelivery a no-op in the event log.
        return Err(EventError::MissingField {
            detail_type,
            field: "id",
        });
    }
    let fact = Fact {
        event_id,
        observed_at,
        body,
    };
    if let Err(out) = fact.check_ranges() {
        return Err(EventError::InvalidField {
            detail_type,
            field: if out.field == "time" {
                "time".to_owned()
            } else {
                format!("detail.{}", out.field)
            },
            value: out.value,
            reason: out.allowed,
        });
    }
    Ok(Parsed::Fact(fact))
}

/// The slow path, taken only for events that did not parse: tell a foreign event (skip) from
/// a broken one of ours (an error naming the field, by parsing again with path tracking).
fn explain_failure(bytes: &[u8]) -> Result<Parsed, EventError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(EventError::NotJson)?;
    let object = value.as_object().ok_or(EventError::NotAnObject)?;
    let Some(detail_type) = object.get("detail-type").and_then(|v| v.as_str()) else {
        return Ok(Parsed::Skipped(SkipReason::NotEventBridge));
    };
    let detail_type = match detail_type {
        BATCH_JOB_STATE_CHANGE => BATCH_JOB_STATE_CHANGE,
        ECS_TASK_STATE_CHANGE => ECS_TASK_STATE_CHANGE,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE => ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        // A foreign event whose detail has fields of ours with other types, say.
        other => {
            return Ok(Parsed::Skipped(SkipReason::OtherDetailType(
                other.to_owned(),
            )));
        }
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let (path, message) = match serde_path_to_error::deserialize::<_, EventBridgeEvent<EventDetail>>(
        &mut deserializer,
    ) {
        Err(error) => (error.path().to_string(), error.inner().to_string()),
        Ok(_) => (".".into(), "unreadable".into()),
    };
    Err(EventError::Malformed {
        detail_type,
        path,
        message,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn foreign_json_is_skipped_and_broken_json_is_an_error() {
        assert!(matches!(
            parse_event(br#"{"alarmData": {}}"#).unwrap(),
            Parsed::Skipped(SkipReason::NotEventBridge)
        ));
        assert!(matches!(
            parse_event(br#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#).unwrap(),
            Parsed::Skipped(SkipReason::OtherDetailType(_))
        ));
        assert!(matches!(
            parse_event(b"{not json").unwrap_err(),
            EventError::NotJson(_)
        ));
        assert!(matches!(
            parse_event(b"[1,2]").unwrap_err(),
            EventError::NotAnObject
        ));
    }

    #[test]
    fn a_batch_event_without_job_id_names_the_field() {
        let event = br#"{"id":"1","detail-type":"Batch Job State Change","source":"aws.batch","detail":{"status":"RUNNING"}}"#;
        let error = parse_event(event).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Batch Job State Change: missing field `jobId`"
        );
    }

    #[test]
    fn a_wrongly_typed_field_is_named_with_its_path() {
        let event = br#"{"id":"1","detail-type":"Batch Job State Change","source":"aws.batch","detail":{"jobId":"j","status":"RUNNING","startedAt":"yesterday"}}"#;
        let error = parse_event(event).unwrap_err().to_string();
        assert!(error.contains("detail.startedAt"), "{error}");
    }

    #[test]
    fn an_event_without_id_cannot_be_deduplicated_and_is_rejected() {
        let event = br#"{"detail-type":"Batch Job State Change","source":"aws.batch","detail":{"jobId":"j","jobQueue":"q","status":"RUNNABLE"}}"#;
        let error = parse_event(event).unwrap_err().to_string();
        assert!(error.contains("`id`"), "{error}");
    }
}
