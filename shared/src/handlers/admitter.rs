//! The admitter function: the EventBridge target for *Batch Job State Change* events of jobs
//! entering SUBMITTED or RUNNABLE (issue 17, `core::arrival`). Each job is judged against the
//! gates the enforcer last verified on the ledger, and cancelled when a live one turns it away
//! (`Enforcer::admit_arrival`): a draining budget on a shared queue turns its new jobs away
//! within seconds, and a safe budget a new job that cannot fit.
//!
//! The work per event is flat: one consistent `Query` of the gates' partition (one read unit),
//! and, only while a gate is live, the applied book, read at most once a minute per warm
//! function ([`BOOK_REFRESH_MS`]); a `CancelJob` and an audit `PutItem` for a job turned away.
//! The tick stays the bound: whatever this function misses (a failure, a stale gate, a job
//! it cannot read), the enforcer's next run finds among the waiting jobs.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use super::HandlerError;
use super::enforcer::action_documents;
use crate::app::enforcer::{EnforceError, EnforcementReport, Enforcer};
use crate::core::admission::JobShape;
use crate::core::arrival::{Gate, GateKind};
use crate::core::budgets::BudgetBook;
use crate::core::enforcement::QUEUED;
use crate::core::facts::FactBody;
use crate::events::{Parsed, parse_event};
use crate::ports::{
    AdmissionGates, AuditTrail, BatchControl, BudgetStore, EventLog, JobKind, JobProjections,
    JobSummary, MetricSink, Notifier,
};

/// A warm admitter reads the applied book again once its reading is this old (as the
/// collectors do): an apply reaches every admitter within a minute.
pub const BOOK_REFRESH_MS: i64 = 60_000;

/// An array parent's event older than this is left to the tick: its `statusSummary` may no
/// longer say whether its children have started (cancelling it would cancel the rest of a
/// running array).
pub const ARRAY_EVENT_MAX_AGE_MS: i64 = 30_000;

/// The applied book as last read, with its version, kept across invocations of one warm
/// function.
#[derive(Debug, Default)]
pub struct BookCache {
    read: Mutex<Option<(i64, u64, BudgetBook)>>,
}

impl BookCache {
    /// The book read less than [`BOOK_REFRESH_MS`] ago, unless a gate was verified with a
    /// later version than it (read again then).
    fn fresh(&self, now_ms: i64, newest_gate: u64) -> Option<(u64, BudgetBook)> {
        let read = self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read.as_ref()
            .filter(|(at, version, _)| {
                now_ms.saturating_sub(*at) < BOOK_REFRESH_MS && *version >= newest_gate
            })
            .map(|(_, version, book)| (*version, book.clone()))
    }

    fn keep(&self, now_ms: i64, version: u64, book: &BudgetBook) {
        let mut read = self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *read = Some((now_ms, version, book.clone()));
    }
}

/// What one invocation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AdmitterResponse {
    /// The job judged; absent when the event was not a waiting job's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Why nothing was judged, or what was decided.
    pub outcome: String,
    /// Each gate not acted on, and why (too old, another period, unreadable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale_gates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<EnforcementReport>,
}

/// The waiting job a *Batch Job State Change* event describes, read by the event parser (the
/// same checks as the collector's); `Ok(None)` for an event of another kind or status, an array
/// child or a multi-node node (each judged through its parent). Its tags are `None` when the
/// event carried no `tags` object (protection then fails closed). With it, the event's `time`
/// (Unix ms) when it has one.
pub fn arriving_job(payload: &Value) -> Result<Option<(JobSummary, Option<i64>)>, HandlerError> {
    let bytes = payload.to_string();
    let parsed = parse_event(bytes.as_bytes())
        .map_err(|e| HandlerError::NonRetryable(format!("an event the parser refuses: {e}")))?;
    let Parsed::Fact(fact) = parsed else {
        return Ok(None);
    };
    let observed_at = fact.observed_at;
    let FactBody::Job(job) = fact.body else {
        return Ok(None);
    };
    if !QUEUED.contains(&job.status) || job.node_index.is_some() || job.job_id.contains(':') {
        return Ok(None);
    }
    let detail = payload.get("detail");
    let field = |path: &[&str]| path.iter().try_fold(detail?, |value, key| value.get(*key));
    let tags = field(&["tags"])
        .filter(|tags| tags.is_object())
        .map(|_| job.tags.clone());
    let array_started = field(&["arrayProperties", "statusSummary"])
        .and_then(Value::as_object)
        .is_some_and(|summary| {
            ["STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
                .iter()
                .any(|status| summary.get(*status).and_then(Value::as_u64).unwrap_or(0) > 0)
        });
    let attempts = field(&["retryStrategy", "attempts"])
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=10).contains(n));
    let kind = if job.array_size.is_some() {
        JobKind::ArrayParent
    } else if field(&["nodeProperties", "numNodes"]).is_some() {
        JobKind::MultiNode
    } else {
        JobKind::Single
    };
    let job = JobSummary {
        shape: JobShape {
            platform: job.platform,
            size: job.size,
            architecture: job.architecture,
            operating_system: job.operating_system,
            timeout_seconds: job.timeout_seconds,
            array_size: job.array_size,
            array_started,
            attempts,
            unreadable: false,
        },
        created_at_ms: job.created_at.map(|at| at.0),
        job_definition: Some(job.job_definition),
        kind,
        tags,
        status: job.status,
        queue: job.queue,
        job_id: job.job_id,
        // From the gate's map of single-environment queues, when judged.
        compute_environment: None,
    };
    Ok(Some((job, observed_at.map(|at| at.0))))
}

/// Handles one event at Unix milliseconds `now_ms`: gates older than `max_age_ms`, or
/// written on another UTC day (perhaps another budget's period), are not acted on. Actions taken are counted in `sink`.
pub async fn handle<B, L, N, P>(
    enforcer: &Enforcer<B, L, N, P>,
    books: &BookCache,
    sink: &impl MetricSink,
    payload: Value,
    now_ms: i64,
    max_age_ms: i64,
) -> Result<AdmitterResponse, HandlerError>
where
    B: BatchControl + Sync,
    L: EventLog + AuditTrail + BudgetStore + AdmissionGates + Sync,
    N: Notifier + Sync,
    P: JobProjections + Sync,
{
    let (job, sent_at) = match arriving_job(&payload) {
        Ok(Some(arriving)) => arriving,
        Ok(None) => {
            return Ok(AdmitterResponse {
                outcome: "not a waiting job's event".to_owned(),
                ..AdmitterResponse::default()
            });
        }
        // The collector quarantines the same event with its reason; the tick judges the job
        // from Batch's own description. Not a failure here (a retry would read it the same).
        Err(error) => {
            tracing::warn!(%error, "an arriving job's event the parser refuses");
            return Ok(AdmitterResponse {
                outcome: format!("left to the tick: {error}"),
                ..AdmitterResponse::default()
            });
        }
    };
    let mut response = AdmitterResponse {
        job_id: Some(job.job_id.clone()),
        ..AdmitterResponse::default()
    };
    if job.kind == JobKind::ArrayParent
        && sent_at.is_none_or(|sent| now_ms.saturating_sub(sent) > ARRAY_EVENT_MAX_AGE_MS)
    {
        response.outcome =
            "left to the tick: an array's event too old to say whether its children have started"
                .to_owned();
        return Ok(response);
    }
    let gates = match enforcer.log().gates().await {
        Ok(gates) => gates,
        // A gate that cannot be read is not acted on (never a cancel on a word unread).
        Err(error @ crate::ports::StoreError::Corrupt { .. }) => {
            response.stale_gates.push(error.to_string());
            Default::default()
        }
        Err(error) => return Err(error.into()),
    };
    let mut live = |kind: GateKind| -> Option<Gate> {
        let gate = gates.get(&kind)?;
        match gate.stale(now_ms, max_age_ms) {
            Some(why) => {
                response
                    .stale_gates
                    .push(format!("{}: {why}", kind.as_str()));
                None
            }
            None => Some(gate.clone()),
        }
    };
    let mut drain = live(GateKind::Drain).filter(|gate| !gate.draining.is_empty());
    let mut safe = live(GateKind::Safe).filter(|gate| !gate.left.is_empty());
    if drain.is_none() && safe.is_none() {
        response.outcome = "admitted: no budget drains or admits safely now".to_owned();
        return Ok(response);
    }
    let newest = [&drain, &safe]
        .into_iter()
        .flatten()
        .map(|gate| gate.book_version)
        .max()
        .unwrap_or_default();
    let (version, book) = match books.fresh(now_ms, newest) {
        Some(read) => read,
        None => match enforcer.applied_budgets_versioned().await {
            Ok((version, book)) => {
                books.keep(now_ms, version, &book);
                (version, book)
            }
            Err(EnforceError::Store(error @ crate::ports::StoreError::Corrupt { .. })) => {
                response.outcome = format!("admitted: the applied budgets cannot be read: {error}");
                tracing::warn!(job_id = %job.job_id, %error, "admission by event");
                return Ok(response);
            }
            Err(error) => return Err(error.into()),
        },
    };
    // A gate verified with other budgets than those applied now says nothing of them.
    for (kind, gate) in [(GateKind::Drain, &mut drain), (GateKind::Safe, &mut safe)] {
        if let Some(verified) = gate.as_ref().map(|gate| gate.book_version)
            && verified != version
        {
            response.stale_gates.push(format!(
                "{}: verified with the budgets applied as version {verified}, now version {version}",
                kind.as_str()
            ));
            *gate = None;
        }
    }
    if drain.is_none() && safe.is_none() {
        response.outcome = "admitted: no gate of the budgets applied now".to_owned();
        return Ok(response);
    }
    let report = enforcer
        .admit_arrival(&book, drain.as_ref(), safe.as_ref(), &job, now_ms)
        .await?;
    sink.emit(&action_documents(&report, now_ms))
        .map_err(|e| HandlerError::NonRetryable(e.to_string()))?;
    if let Some(failed) = report.failures.first() {
        // The cancel failed: a retry tries it again (the tick would too).
        return Err(HandlerError::Retryable(format!(
            "{} {}: {}",
            failed.action, failed.target, failed.error
        )));
    }
    response.outcome = if report.actions.is_empty() {
        report.reason.clone()
    } else {
        format!("turned away: {}", report.reason)
    };
    response.report = Some(report);
    Ok(response)
}
