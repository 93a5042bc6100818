//! The collector: an EventBridge target for *Batch Job State Change* and *ECS Task State
//! Change*. Each event is parsed, appended to the event log and projected; an unreadable one
//! is quarantined and reported, never failing the others; each Batch state change is counted
//! as an EMF metric stamped with the event's own time.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::HandlerError;
use crate::adapters::emf::{Metric, MetricDocument, MetricSink, Unit};
use crate::collector::{Collected, Collector, Projector};
use crate::core::ledger::JobCost;
use crate::metrics;
use crate::ports::{EventLog, Quarantine};

/// What one invocation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CollectorResponse {
    pub stored: u64,
    pub duplicates: u64,
    pub skipped: u64,
    pub quarantined: u64,
    /// Why each quarantined event was refused.
    pub quarantine_reasons: Vec<String>,
}

/// A settled job's cost: a metric per queue, and the job's figures as properties for the
/// dashboard's Logs Insights table of the costliest jobs.
fn job_cost_document(job: &JobCost, now_ms: i64) -> MetricDocument {
    let cost = job.cost_usd.unwrap_or_default();
    MetricDocument {
        timestamp_ms: now_ms,
        dimensions: vec![(metrics::DIMENSION_QUEUE, job.queue.clone())],
        metrics: vec![Metric {
            name: metrics::JOB_COST_USD,
            unit: Unit::None,
            value: cost,
        }],
        properties: BTreeMap::from([
            ("job_id".to_owned(), json!(job.job_id)),
            ("job_name".to_owned(), json!(job.job_name)),
            ("job_definition".to_owned(), json!(job.job_definition)),
            (
                "status".to_owned(),
                json!(job.status.map(|s| s.as_str()).unwrap_or_default()),
            ),
            ("attempts".to_owned(), json!(job.attempts)),
            ("billed_seconds".to_owned(), json!(job.billed_seconds)),
            ("estimated".to_owned(), json!(job.estimated)),
            ("cost_usd_exact".to_owned(), json!(cost.to_string())),
        ]),
    }
}

/// Handles one invocation: an EventBridge event, or a JSON array of them (a backfill).
/// `now_ms` stamps metrics of events that carry no time of their own.
pub async fn handle<L, P>(
    collector: &Collector<L, P>,
    metrics_sink: &impl MetricSink,
    payload: Value,
    request_id: &str,
    now_ms: i64,
) -> Result<CollectorResponse, HandlerError>
where
    L: EventLog + Quarantine + Sync,
    P: Projector + Sync,
{
    let events = match payload {
        Value::Array(events) => events,
        event => vec![event],
    };
    let mut response = CollectorResponse::default();
    let mut documents = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let origin = if events.len() == 1 {
            format!("lambda:{request_id}")
        } else {
            format!("lambda:{request_id}#{index}")
        };
        let bytes =
            serde_json::to_vec(event).map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
        match collector.collect(&bytes, &origin).await? {
            Collected::Stored {
                new,
                transition,
                settled,
            } => {
                if let Some(job) = settled {
                    documents.push(job_cost_document(&job, now_ms));
                }
                if new {
                    response.stored += 1;
                } else {
                    response.duplicates += 1;
                }
                // Counted once per event stored, so a redelivery is not a second transition.
                if let (true, Some(transition)) = (new, transition) {
                    documents.push(MetricDocument {
                        timestamp_ms: transition.at_ms.unwrap_or(now_ms),
                        dimensions: vec![
                            (metrics::DIMENSION_QUEUE, transition.queue),
                            (
                                metrics::DIMENSION_STATUS,
                                transition.status.as_str().to_owned(),
                            ),
                        ],
                        metrics: vec![Metric {
                            name: metrics::JOB_STATE_TRANSITIONS,
                            unit: Unit::Count,
                            value: rust_decimal::Decimal::ONE,
                        }],
                        properties: BTreeMap::from([
                            ("job_id".to_owned(), json!(transition.job_id)),
                            (
                                "job_definition".to_owned(),
                                json!(transition.job_definition),
                            ),
                        ]),
                    });
                }
            }
            Collected::Skipped { .. } => response.skipped += 1,
            Collected::Quarantined { reason } => {
                response.quarantined += 1;
                response.quarantine_reasons.push(reason);
                documents.push(MetricDocument {
                    timestamp_ms: now_ms,
                    dimensions: vec![],
                    metrics: vec![Metric {
                        name: metrics::QUARANTINED_EVENTS,
                        unit: Unit::Count,
                        value: rust_decimal::Decimal::ONE,
                    }],
                    properties: BTreeMap::from([("origin".to_owned(), json!(origin))]),
                });
            }
        }
    }
    metrics_sink
        .emit(&documents)
        .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
    Ok(response)
}
