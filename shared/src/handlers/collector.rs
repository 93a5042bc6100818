//! The collector function: an EventBridge target for *Batch Job State Change*, *ECS Task State
//! Change* and *ECS Container Instance State Change*. Each event goes through the collector
//! service (`app::collector`: read, append, project); an unreadable one is quarantined and
//! reported, never failing the others. What each newly stored event says is counted as metrics
//! stamped with the event's own time: a job state transition, a Spot interruption, an instance
//! state change, and a job's cost and timings when it settles.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use rust_decimal::Decimal;

use super::HandlerError;
use crate::app::collector::{Collected, Collector};

use crate::core::activity::{SPOT_INTERRUPTION_STOP_CODE, SettledJob};
use crate::core::facts::{Fact, FactBody, JobObserved, Platform};
use crate::core::ledger::UNKNOWN;
use crate::core::names;
use crate::metrics::{self, Metric, MetricDocument, Unit};
use crate::ports::{EventLog, MetricSink, Projector, Quarantine};

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

fn seconds(ms: i64) -> Decimal {
    Decimal::new(ms, 3)
}

/// A settled job: its cost and timings per queue, and the job's figures as properties for the
/// dashboards' Logs Insights tables (costliest, slowest, placement, interruptions).
fn settled_documents(settled: &SettledJob, now_ms: i64) -> Vec<MetricDocument> {
    let (job, activity) = (&settled.cost, &settled.activity);
    let cost = job.cost_usd.unwrap_or_default();
    let mut metrics = vec![Metric {
        name: metrics::JOB_COST_USD,
        unit: Unit::None,
        value: cost,
    }];
    let timings = activity.timings;
    for (name, value) in [
        (metrics::QUEUE_WAIT_SECONDS, timings.queue_wait_ms),
        (metrics::IMAGE_PULL_SECONDS, timings.image_pull_ms),
        (metrics::RUN_SECONDS, timings.run_ms),
        (metrics::TOTAL_SECONDS, timings.total_ms),
    ] {
        if let Some(ms) = value {
            metrics.push(Metric {
                name,
                unit: Unit::Seconds,
                value: seconds(ms),
            });
        }
    }
    if activity.spot {
        metrics.push(Metric {
            name: metrics::SPOT_SAVINGS_USD,
            unit: Unit::None,
            value: activity.spot_savings_usd(),
        });
    }
    if activity.interrupted_attempts > 0 {
        metrics.push(Metric {
            name: metrics::INTERRUPTED_ATTEMPTS_COST_USD,
            unit: Unit::None,
            value: activity.interrupted_cost_usd,
        });
    }
    let optional_ms = |ms: Option<i64>| ms.map(|ms| json!(seconds(ms).to_string()));
    vec![MetricDocument {
        timestamp_ms: now_ms,
        dimensions: vec![(metrics::DIMENSION_QUEUE, job.queue.clone())],
        dimension_sets: Vec::new(),
        metrics,
        properties: BTreeMap::from([
            ("job_id".to_owned(), json!(job.job_id)),
            ("job_name".to_owned(), json!(job.job_name)),
            ("job_definition".to_owned(), json!(job.job_definition)),
            (
                "status".to_owned(),
                json!(job.status.map(|s| s.as_str()).unwrap_or_default()),
            ),
            ("attempts".to_owned(), json!(job.attempts)),
            ("retries".to_owned(), json!(activity.retries)),
            ("exit_code".to_owned(), json!(activity.exit_code)),
            ("billed_seconds".to_owned(), json!(job.billed_seconds)),
            ("estimated".to_owned(), json!(job.estimated)),
            ("cost_usd_exact".to_owned(), json!(cost.to_string())),
            (
                "compute_environment".to_owned(),
                json!(activity.compute_environment),
            ),
            (
                "availability_zone".to_owned(),
                json!(activity.availability_zone),
            ),
            ("instance_type".to_owned(), json!(activity.instance_type)),
            (
                "platform".to_owned(),
                json!(activity.platform.map(Platform::as_str)),
            ),
            ("spot".to_owned(), json!(activity.spot)),
            (
                "interrupted_attempts".to_owned(),
                json!(activity.interrupted_attempts),
            ),
            (
                "queue_wait_seconds".to_owned(),
                optional_ms(timings.queue_wait_ms).unwrap_or(Value::Null),
            ),
            (
                "image_pull_seconds".to_owned(),
                optional_ms(timings.image_pull_ms).unwrap_or(Value::Null),
            ),
            (
                "run_seconds".to_owned(),
                optional_ms(timings.run_ms).unwrap_or(Value::Null),
            ),
            (
                "total_seconds".to_owned(),
                optional_ms(timings.total_ms).unwrap_or(Value::Null),
            ),
        ]),
    }]
}

fn count(name: &'static str) -> Vec<Metric> {
    vec![Metric {
        name,
        unit: Unit::Count,
        value: Decimal::ONE,
    }]
}

/// The compute environment a Batch event names through its attempts' tasks or instances.
fn compute_environment_of(job: &JobObserved) -> Option<&str> {
    job.attempts.iter().rev().find_map(|attempt| {
        attempt
            .task_arn
            .as_deref()
            .and_then(names::cluster_of_task_arn)
            .or_else(|| {
                attempt
                    .container_instance_arn
                    .as_deref()
                    .and_then(names::cluster_of_container_instance_arn)
            })
            .and_then(names::compute_environment_of_cluster)
    })
}

/// What one newly stored fact counts: a job state transition (by queue, job definition and,
/// once known, compute environment), a Spot interruption, an instance state change. Stamped
/// with the event's own time, or with `now_ms` when CloudWatch would refuse that time (a
/// re-driven or backfilled event over two weeks old: `metrics::acceptable_timestamp`).
fn fact_documents(fact: &Fact, now_ms: i64) -> Vec<MetricDocument> {
    let timestamp_ms = fact
        .observed_at
        .or_else(|| fact.latest_instant())
        .map_or(now_ms, |m| metrics::acceptable_timestamp(m.0, now_ms));
    match &fact.body {
        FactBody::Job(job) => {
            let mut dimensions = vec![
                (metrics::DIMENSION_QUEUE, job.queue.clone()),
                (
                    metrics::DIMENSION_JOB_DEFINITION,
                    job.job_definition.clone(),
                ),
                (metrics::DIMENSION_STATUS, job.status.as_str().to_owned()),
            ];
            let mut dimension_sets = vec![
                vec![metrics::DIMENSION_QUEUE, metrics::DIMENSION_STATUS],
                vec![metrics::DIMENSION_JOB_DEFINITION, metrics::DIMENSION_STATUS],
            ];
            if let Some(ce) = compute_environment_of(job) {
                dimensions.push((metrics::DIMENSION_COMPUTE_ENVIRONMENT, ce.to_owned()));
                dimension_sets.push(vec![
                    metrics::DIMENSION_COMPUTE_ENVIRONMENT,
                    metrics::DIMENSION_STATUS,
                ]);
            }
            vec![MetricDocument {
                timestamp_ms,
                dimensions,
                dimension_sets,
                metrics: count(metrics::JOB_STATE_TRANSITIONS),
                properties: BTreeMap::from([
                    ("job_id".to_owned(), json!(job.job_id)),
                    ("status_reason".to_owned(), json!(job.status_reason)),
                ]),
            }]
        }
        FactBody::Task(task) if task.stop_code.as_deref() == Some(SPOT_INTERRUPTION_STOP_CODE) => {
            vec![MetricDocument {
                timestamp_ms,
                dimensions: vec![
                    (
                        metrics::DIMENSION_COMPUTE_ENVIRONMENT,
                        task.compute_environment
                            .clone()
                            .unwrap_or_else(|| UNKNOWN.to_owned()),
                    ),
                    (
                        metrics::DIMENSION_AVAILABILITY_ZONE,
                        task.availability_zone
                            .clone()
                            .unwrap_or_else(|| UNKNOWN.to_owned()),
                    ),
                ],
                dimension_sets: Vec::new(),
                metrics: count(metrics::SPOT_INTERRUPTIONS),
                properties: BTreeMap::from([("task_arn".to_owned(), json!(task.task_arn))]),
            }]
        }
        FactBody::Instance(instance) => vec![MetricDocument {
            timestamp_ms,
            dimensions: vec![
                (
                    metrics::DIMENSION_COMPUTE_ENVIRONMENT,
                    instance
                        .compute_environment
                        .clone()
                        .unwrap_or_else(|| UNKNOWN.to_owned()),
                ),
                (metrics::DIMENSION_STATUS, instance.status.clone()),
            ],
            dimension_sets: Vec::new(),
            metrics: count(metrics::INSTANCE_STATE_CHANGES),
            properties: BTreeMap::from([
                (
                    "container_instance_arn".to_owned(),
                    json!(instance.container_instance_arn),
                ),
                (
                    "ec2_instance_id".to_owned(),
                    json!(instance.ec2_instance_id),
                ),
                ("instance_type".to_owned(), json!(instance.instance_type)),
                (
                    "availability_zone".to_owned(),
                    json!(instance.availability_zone),
                ),
                (
                    "registered_vcpu".to_owned(),
                    json!(instance.registered.map(|r| r.vcpu.to_string())),
                ),
                (
                    "registered_memory_gib".to_owned(),
                    json!(instance.registered.map(|r| r.memory_gib.to_string())),
                ),
            ]),
        }],
        FactBody::Task(_) | FactBody::Enforcement(_) | FactBody::Abandoned(_) => Vec::new(),
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
            Collected::Stored { new, fact, settled } => {
                if new {
                    response.stored += 1;
                    // Counted once per event stored, so a redelivery is not a second one.
                    documents.extend(fact_documents(&fact, now_ms));
                    if let Some(settled) = settled {
                        documents.extend(settled_documents(&settled, now_ms));
                    }
                } else {
                    response.duplicates += 1;
                }
            }
            Collected::Skipped { .. } => response.skipped += 1,
            Collected::Quarantined { reason } => {
                response.quarantined += 1;
                response.quarantine_reasons.push(reason);
                documents.push(MetricDocument {
                    timestamp_ms: now_ms,
                    dimensions: vec![],
                    dimension_sets: Vec::new(),
                    metrics: vec![Metric {
                        name: metrics::QUARANTINED_EVENTS,
                        unit: Unit::Count,
                        value: Decimal::ONE,
                    }],
                    properties: BTreeMap::from([("origin".to_owned(), json!(origin))]),
                });
            }
        }
    }
    let documents: Vec<MetricDocument> = documents
        .into_iter()
        .map(MetricDocument::with_acceptable_dimensions)
        .collect();
    metrics_sink
        .emit(&documents)
        .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
    Ok(response)
}
