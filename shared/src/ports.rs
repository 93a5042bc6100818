//! Ports: every capability the application needs from the outside world — storage, AWS Batch,
//! notifications, metrics, the enforcer's trigger, AWS Budgets — as small traits free of any
//! technology's details. Adapters implement them; services and handlers are generic over them.
//!
//! The event log is append-only and keyed by the EventBridge event id, so a redelivered event
//! is a no-op. Reading is paged so a log of millions of facts never has to sit in memory at
//! once. Methods are `async` because the production adapter (DynamoDB) is; the embedded and
//! in-memory adapters complete without awaiting.

use std::future::Future;

use crate::core::activity::SettledJob;
use crate::core::facts::Fact;
use crate::metrics::{MetricDocument, MetricError};

/// A fact with the key that makes appending it idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// See [`record_key`].
    pub key: String,
    pub fact: Fact,
}

impl Record {
    pub fn new(fact: Fact) -> Self {
        Self {
            key: record_key(&fact),
            fact,
        }
    }
}

/// The idempotency key of a fact: its EventBridge event id and a digest of what it says.
///
/// A redelivery repeats both, so it is a no-op. Two *different* events that share an id
/// (copy-pasted test fixtures do this) keep both: dropping one would lose a fact. The digest is
/// XXH3-64 of the fact's canonical JSON, stable across builds and platforms, so keys written
/// by one version of batchguard are recognised by the next.
pub fn record_key(fact: &Fact) -> String {
    // Serialising a plain struct of strings and numbers cannot fail; an empty body (which
    // would only weaken the digest, never lose a fact) is the fallback.
    let canonical = serde_json::to_vec(fact).unwrap_or_default();
    format!(
        "{}#{:016x}",
        fact.event_id,
        xxhash_rust::xxh3::xxh3_64(&canonical)
    )
}

/// What an append did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub new: u64,
    /// Keys the log already held: redeliveries, changed nothing.
    pub duplicates: u64,
}

/// A page of the log and where the next one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<Record>,
    /// `None` on the last page.
    pub next: Option<Cursor>,
}

/// An opaque position in the log, from a previous [`Page`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub String);

/// An event that could not be read, kept with the reason so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Where it came from: `file:line`, or a Lambda request id.
    pub origin: String,
    pub reason: String,
    /// The event as received (lossily decoded if it was not UTF-8).
    pub body: String,
}

/// Running totals of everything ever offered to the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub read: u64,
    pub duplicates: u64,
    pub skipped: u64,
    pub rejected: u64,
}

/// A storage failure, with the adapter's own error kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event log {location}: {message}")]
    Backend {
        location: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("stored fact {key:?} cannot be read: {message}")]
    Corrupt { key: String, message: String },
}

/// The append-only log of facts.
pub trait EventLog {
    /// Appends records; keys already present are left as they are and counted as duplicates.
    fn append(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Up to `limit` records from `after` (the start when `None`), in the log's own order.
    fn read(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// Where unreadable events go, with their reason.
pub trait Quarantine {
    fn quarantine(
        &self,
        events: &[Quarantined],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Everything in the quarantine.
    fn list_quarantined(&self)
    -> impl Future<Output = Result<Vec<Quarantined>, StoreError>> + Send;
    /// Takes one entry (the first equal to `event`) out of the quarantine.
    fn release(&self, event: &Quarantined) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Cumulative ingest counters kept beside the log, so `status` can report them later.
pub trait IngestLedger {
    fn add_counts(
        &self,
        counts: IngestCounts,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn counts(&self) -> impl Future<Output = Result<IngestCounts, StoreError>> + Send;
}

/// A Batch job queue and whether it accepts jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueState {
    pub name: String,
    pub enabled: bool,
    /// The compute environments it places jobs on, by name, in its order
    /// (`computeEnvironmentOrder`): a job on a queue with one runs there.
    pub compute_environments: Vec<String>,
}

/// A job as `ListJobs` gives it, with its tags (from `DescribeJobs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    pub job_id: String,
    pub queue: String,
    pub status: crate::core::facts::JobStatus,
    /// `None` when the tags could not be read (`DescribeJobs` failed or left the job out): the
    /// enforcer then cannot tell whether the job is protected, and leaves it alone.
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// What kind of job it is: its children or nodes are listed apart (`ListJobs` with
    /// `arrayJobId` / `multiNodeJobId`).
    pub kind: JobKind,
    /// Its job definition's name, without the revision (`DescribeJobs`; `None` when it could
    /// not be read).
    pub job_definition: Option<String>,
    /// When it was submitted (`ListJobs`' `createdAt`), Unix milliseconds.
    pub created_at_ms: Option<i64>,
    /// Its platform, size and timeout (`DescribeJobs`), for safe admission.
    pub shape: crate::core::admission::JobShape,
    /// The compute environment it runs or will run on, when known: Batch's listing and
    /// description do not name it, so the enforcer fills it in for a job on a queue with a
    /// single compute environment (`QueueState::compute_environments`) and, for a started job
    /// of a queue with several, from its projection (`JobReading::compute_environment`).
    pub compute_environment: Option<String>,
}

/// Array parents and multi-node parallel jobs have work of their own to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobKind {
    #[default]
    Single,
    /// An array parent (`arrayProperties.size`): never RUNNING itself, PENDING while its
    /// children (`<id>:<index>`) run.
    ArrayParent,
    /// A multi-node parallel job (`nodeProperties.numNodes`, no node index): its nodes are
    /// `<id>#<index>`.
    MultiNode,
}

/// A failure of the Batch or notification API, translated so the core never sees `SdkError`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{operation}: {message}")]
    Api {
        operation: &'static str,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// What the enforcer needs from AWS Batch.
pub trait BatchControl {
    /// The named queues (all queues when `names` is empty).
    fn queues(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<QueueState>, ControlError>> + Send;
    fn set_queue_enabled(
        &self,
        queue: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// Every job of a queue in one of these states, tags included.
    fn jobs(
        &self,
        queue: &str,
        statuses: &[crate::core::facts::JobStatus],
    ) -> impl Future<Output = Result<Vec<JobSummary>, ControlError>> + Send;
    /// An array parent's children or a multi-node job's nodes in one of these states
    /// (`ListJobs` with `arrayJobId` or `multiNodeJobId`); their protection is their parent's.
    fn children(
        &self,
        parent: &JobSummary,
        statuses: &[crate::core::facts::JobStatus],
    ) -> impl Future<Output = Result<Vec<String>, ControlError>> + Send;
    /// CancelJob: for jobs that have not started (SUBMITTED, PENDING, RUNNABLE).
    fn cancel_job(
        &self,
        job_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// TerminateJob: STARTING and RUNNING jobs move to FAILED.
    fn terminate_job(
        &self,
        job_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// The jobs' current state as `DescribeJobs` reports it, written as the *Batch Job State
    /// Change* events AWS would have sent (so the one parser reads them); ids Batch no longer
    /// knows are left out.
    fn current_state_events(
        &self,
        job_ids: &[String],
    ) -> impl Future<Output = Result<Vec<serde_json::Value>, ControlError>> + Send;
    /// What each of the compute environments `names` may launch (`DescribeComputeEnvironments`,
    /// 100 a call): a managed EC2 or Spot one's `computeResources.instanceTypes`; `None` for
    /// one that does not say (unmanaged, Fargate). A name Batch does not know is left out.
    fn instance_types(
        &self,
        names: &[String],
    ) -> impl Future<
        Output = Result<std::collections::BTreeMap<String, Option<Vec<String>>>, ControlError>,
    > + Send;
}

/// Where notifications go (SNS in a deployment).
pub trait Notifier {
    fn notify(
        &self,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
}

/// The enforcer's audit trail, read back: what was done in a budget period.
pub trait AuditTrail {
    fn audit_entries(
        &self,
        period_start: i64,
    ) -> impl Future<Output = Result<Vec<crate::core::facts::EnforcementRecorded>, StoreError>> + Send;
}

// References to ports are ports: a handler can borrow the adapters its `main` owns.

impl<T: EventLog + Sync> EventLog for &T {
    fn append(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send {
        (**self).append(records)
    }

    fn read(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        (**self).read(after, limit)
    }
}

impl<T: Quarantine + Sync> Quarantine for &T {
    fn quarantine(
        &self,
        events: &[Quarantined],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).quarantine(events)
    }
    fn list_quarantined(
        &self,
    ) -> impl Future<Output = Result<Vec<Quarantined>, StoreError>> + Send {
        (**self).list_quarantined()
    }
    fn release(&self, event: &Quarantined) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(event)
    }
}

impl<T: AuditTrail + Sync> AuditTrail for &T {
    fn audit_entries(
        &self,
        period_start: i64,
    ) -> impl Future<Output = Result<Vec<crate::core::facts::EnforcementRecorded>, StoreError>> + Send
    {
        (**self).audit_entries(period_start)
    }
}

impl<T: Notifier + Sync> Notifier for &T {
    fn notify(
        &self,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send {
        (**self).notify(subject, message)
    }
}

impl<T: BatchControl + Sync> BatchControl for &T {
    fn queues(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<QueueState>, ControlError>> + Send {
        (**self).queues(names)
    }

    fn set_queue_enabled(
        &self,
        queue: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), ControlError>> + Send {
        (**self).set_queue_enabled(queue, enabled)
    }

    fn jobs(
        &self,
        queue: &str,
        statuses: &[crate::core::facts::JobStatus],
    ) -> impl Future<Output = Result<Vec<JobSummary>, ControlError>> + Send {
        (**self).jobs(queue, statuses)
    }

    fn children(
        &self,
        parent: &JobSummary,
        statuses: &[crate::core::facts::JobStatus],
    ) -> impl Future<Output = Result<Vec<String>, ControlError>> + Send {
        (**self).children(parent, statuses)
    }

    fn cancel_job(
        &self,
        job_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send {
        (**self).cancel_job(job_id, reason)
    }

    fn terminate_job(
        &self,
        job_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), ControlError>> + Send {
        (**self).terminate_job(job_id, reason)
    }

    fn current_state_events(
        &self,
        job_ids: &[String],
    ) -> impl Future<Output = Result<Vec<serde_json::Value>, ControlError>> + Send {
        (**self).current_state_events(job_ids)
    }

    fn instance_types(
        &self,
        names: &[String],
    ) -> impl Future<
        Output = Result<std::collections::BTreeMap<String, Option<Vec<String>>>, ControlError>,
    > + Send {
        (**self).instance_types(names)
    }
}

/// Hands an enforcement request to the enforcer (an asynchronous Lambda invocation in a
/// deployment).
pub trait EnforcerTrigger {
    fn trigger(
        &self,
        request: &crate::core::enforcement::EnforcerRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
}

impl<T: EnforcerTrigger + Sync> EnforcerTrigger for &T {
    fn trigger(
        &self,
        request: &crate::core::enforcement::EnforcerRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send {
        (**self).trigger(request)
    }
}

/// Spend as the projections hold it: the ticker's view.
pub trait SpendReader {
    fn scopes(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::core::scope::Scope>, StoreError>> + Send;
    /// The scopes that can have something to say at `at`: those with spend or running units
    /// in its budget period or the one before (a store that keeps no such index: every
    /// scope). The total is always among them.
    fn active_scopes(
        &self,
        at: i64,
    ) -> impl Future<Output = Result<Vec<crate::core::scope::Scope>, StoreError>> + Send {
        let _ = at;
        self.scopes()
    }
    /// Keeps `running` (scopes with units running at `at`) among the active scopes of `at`'s
    /// period: a unit running since an earlier period changes no sum, so no event would list
    /// its scope again. A store that keeps no such index has nothing to do.
    fn keep_active(
        &self,
        running: &[crate::core::scope::Scope],
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (running, at);
        async { Ok(()) }
    }
    /// The sums of each scope asked for (an empty sum for one never written).
    fn scopes_totals(
        &self,
        scopes: &[crate::core::scope::Scope],
    ) -> impl Future<
        Output = Result<
            std::collections::BTreeMap<crate::core::scope::Scope, crate::core::sums::ScopeTotals>,
            StoreError,
        >,
    > + Send;
    /// Running units started in the last minute before `at`: (scope, anchor, hourly rate).
    fn recent_starts(
        &self,
        at: i64,
    ) -> impl Future<
        Output = Result<Vec<(crate::core::scope::Scope, i64, rust_decimal::Decimal)>, StoreError>,
    > + Send;
    /// Drops what the scopes' sums keep of periods before the one containing whole second `at`
    /// (each scope's own period, `Scope::period`) that no figure reads any more (closed spend
    /// of past periods; running buckets of past periods whose units all ended), so a sum does
    /// not grow with every period. Returns the items changed. A store whose sums do not grow
    /// (in memory) has nothing to do.
    fn prune_before(
        &self,
        scopes: &[crate::core::scope::Scope],
        at: i64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = (scopes, at);
        async { Ok(0) }
    }
}

/// A budget kept in AWS Budgets (`DescribeBudget` in a deployment).
pub trait BudgetSource {
    fn describe(
        &self,
    ) -> impl Future<Output = Result<crate::core::budget::AwsBudget, ControlError>> + Send;
}

impl<T: BudgetSource + Sync> BudgetSource for &T {
    fn describe(
        &self,
    ) -> impl Future<Output = Result<crate::core::budget::AwsBudget, ControlError>> + Send {
        (**self).describe()
    }
}

/// The AWS budget as last read, with when it was read (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedBudget {
    pub budget: crate::core::budget::AwsBudget,
    pub fetched_at: i64,
}

/// Where a store keeps its budgets file (issue 17, ADR 0012): the whole book as one record,
/// replaced whole, so an apply takes all of a file or none of it.
pub trait BudgetStore {
    /// The stored book and its version (`(0, None)`: none was ever applied). A stored book that
    /// no longer validates is `StoreError::Corrupt`, naming each error.
    fn budgets(
        &self,
    ) -> impl Future<Output = Result<(u64, Option<crate::core::budgets::BudgetBook>), StoreError>> + Send;
    /// The stored book's version alone (0: none), read even when the book no longer
    /// validates, so an apply can replace a corrupt one.
    fn budgets_version(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Replaces the book, as version `expected + 1`, if the stored version is still
    /// `expected`; `Ok(false)` when another apply came first (nothing is written).
    fn replace_budgets(
        &self,
        book: &crate::core::budgets::BudgetBook,
        expected: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: BudgetStore + Sync> BudgetStore for &T {
    fn budgets(
        &self,
    ) -> impl Future<Output = Result<(u64, Option<crate::core::budgets::BudgetBook>), StoreError>> + Send
    {
        (**self).budgets()
    }

    fn budgets_version(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).budgets_version()
    }

    fn replace_budgets(
        &self,
        book: &crate::core::budgets::BudgetBook,
        expected: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).replace_budgets(book, expected)
    }
}

/// Where the enforcer keeps the gates it verified for the admitter (`core::arrival`): one
/// record per [`GateKind`](crate::core::arrival::GateKind), replaced at each run that writes it.
pub trait AdmissionGates {
    fn put_gate(
        &self,
        kind: crate::core::arrival::GateKind,
        gate: &crate::core::arrival::Gate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored gate, in one consistent read. A record that does not read as a gate is
    /// `StoreError::Corrupt`.
    fn gates(
        &self,
    ) -> impl Future<
        Output = Result<
            std::collections::BTreeMap<crate::core::arrival::GateKind, crate::core::arrival::Gate>,
            StoreError,
        >,
    > + Send;
}

impl<T: AdmissionGates + Sync> AdmissionGates for &T {
    fn put_gate(
        &self,
        kind: crate::core::arrival::GateKind,
        gate: &crate::core::arrival::Gate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_gate(kind, gate)
    }

    fn gates(
        &self,
    ) -> impl Future<
        Output = Result<
            std::collections::BTreeMap<crate::core::arrival::GateKind, crate::core::arrival::Gate>,
            StoreError,
        >,
    > + Send {
        (**self).gates()
    }
}

/// The book as stored: its budgets as JSON (re-validated when read).
pub fn budgets_to_json(book: &crate::core::budgets::BudgetBook) -> Result<String, StoreError> {
    let budgets: Vec<&crate::core::budgets::BudgetSpec> = book.budgets().collect();
    let text = serde_json::to_string(&budgets).map_err(|error| StoreError::Corrupt {
        key: "budgets".into(),
        message: error.to_string(),
    })?;
    if text.len() > MAX_BOOK_BYTES {
        return Err(StoreError::Corrupt {
            key: "budgets".into(),
            message: format!(
                "the budgets take {} bytes stored, more than the {MAX_BOOK_BYTES} a store keeps (DynamoDB's items hold 400 KB): list fewer queues, tags or budgets",
                text.len()
            ),
        });
    }
    Ok(text)
}

/// The most a stored budgets file may take, as JSON: under DynamoDB's 400 KB item limit with
/// room for the item's key and version.
pub const MAX_BOOK_BYTES: usize = 350_000;

/// A stored book read back: `key` names where it was kept.
pub fn budgets_from_json(
    key: &str,
    text: &str,
) -> Result<crate::core::budgets::BudgetBook, StoreError> {
    let budgets: Vec<crate::core::budgets::BudgetSpec> =
        serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
            key: key.to_owned(),
            message: error.to_string(),
        })?;
    crate::core::budgets::BudgetBook::new(budgets).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })
}

/// What the ticker keeps to fuse an AWS baseline with the ledger: one spend mark per tick and
/// the AWS budget as last read.
pub trait BaselineStore {
    /// Keeps the mark of a tick in the period starting at `period_start`, until `expires_at`.
    fn put_mark(
        &self,
        period_start: i64,
        mark: &crate::core::budget::SpendMark,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The latest mark of that period at or before Unix second `at`.
    fn mark_at_or_before(
        &self,
        period_start: i64,
        at: i64,
    ) -> impl Future<Output = Result<Option<crate::core::budget::SpendMark>, StoreError>> + Send;
    fn cached_budget(
        &self,
    ) -> impl Future<Output = Result<Option<CachedBudget>, StoreError>> + Send;
    fn put_cached_budget(
        &self,
        cached: &CachedBudget,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: BaselineStore + Sync> BaselineStore for &T {
    fn put_mark(
        &self,
        period_start: i64,
        mark: &crate::core::budget::SpendMark,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_mark(period_start, mark, expires_at)
    }
    fn mark_at_or_before(
        &self,
        period_start: i64,
        at: i64,
    ) -> impl Future<Output = Result<Option<crate::core::budget::SpendMark>, StoreError>> + Send
    {
        (**self).mark_at_or_before(period_start, at)
    }
    fn cached_budget(
        &self,
    ) -> impl Future<Output = Result<Option<CachedBudget>, StoreError>> + Send {
        (**self).cached_budget()
    }
    fn put_cached_budget(
        &self,
        cached: &CachedBudget,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_cached_budget(cached)
    }
}

/// Keeps projections in step with the event log.
pub trait Projector {
    /// Re-projects the billing group of a fact already in the log; the job's cost and
    /// activity when the change left it settled.
    fn project(
        &self,
        fact: &Fact,
    ) -> impl Future<Output = Result<Option<SettledJob>, StoreError>> + Send;
}

impl<T: Projector + Sync> Projector for &T {
    fn project(
        &self,
        fact: &Fact,
    ) -> impl Future<Output = Result<Option<SettledJob>, StoreError>> + Send {
        (**self).project(fact)
    }
}

/// A job still running in the projections that has been silent for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilentJob {
    pub job_id: String,
    /// When it was last heard from (Unix milliseconds): the latest instant its facts name, or
    /// the last time AWS Batch said it was still running.
    pub heard_ms: i64,
}

/// Jobs the projections still count as running but have heard nothing of for a while: the
/// candidates for a check with AWS Batch.
pub trait SilentJobs {
    /// Jobs with a running unit last heard from before Unix milliseconds `before_ms`; at
    /// most `limit`.
    fn silent_jobs(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SilentJob>, StoreError>> + Send;

    /// AWS Batch has just told us about these jobs: they count as heard from at `now_ms`
    /// (a job no longer running is left as it is).
    fn heard_from(
        &self,
        job_ids: &[String],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: SilentJobs + Sync> SilentJobs for &T {
    fn silent_jobs(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SilentJob>, StoreError>> + Send {
        (**self).silent_jobs(before_ms, limit)
    }

    fn heard_from(
        &self,
        job_ids: &[String],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).heard_from(job_ids, now_ms)
    }
}

/// A running job whose cost reaches its cap (`batchguard:max-usd`) by the projections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueCap {
    pub job_id: String,
    /// The whole second (Unix) its cost reaches its cap, as of its last projection.
    pub reached_at: i64,
}

/// What the projections know of single jobs: the ones past their `batchguard:max-usd` cap
/// (`core::caps`; the ticker's search), one job's cap and cost (the enforcer's check), and
/// running jobs' burn rates and placements (`job_readings`: the enforcer's shed, and budgets
/// scoped by compute environment).
pub trait JobProjections {
    /// Running capped jobs whose cost reaches their cap by Unix second `at`; at most `limit`,
    /// earliest first within each shard of the index.
    fn due_caps(
        &self,
        at: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueCap>, StoreError>> + Send;

    /// Job `job_id`'s cap and own cost at Unix second `at`, from its projection read now
    /// (`None`: the job is not projected).
    fn cap_reading(
        &self,
        job_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<Option<crate::core::caps::CapReading>, StoreError>> + Send;

    /// Takes a capped job out of the search until Unix second `until` (the enforcer judged it
    /// and is not to be asked again before), if its projection is still at `version`: a
    /// change of the job puts it back at the second its new figures give. `false` when the
    /// projection moved on (or the job is not capped).
    fn defer_cap(
        &self,
        job_id: &str,
        version: u64,
        until: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// What each of `job_ids`' projection says of it now (its burn rate, where it runs); a
    /// job not projected is left out.
    fn job_readings(
        &self,
        job_ids: &[String],
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, JobReading>, StoreError>> + Send;
}

/// What a job's projection says of it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobReading {
    /// What it costs an hour now: the rates of its running units, USD.
    pub burn_usd_per_hour: rust_decimal::Decimal,
    /// The compute environment its latest attempt runs in, when its events named one (its
    /// task's cluster, its container instance's): Batch's own job listing does not say.
    pub compute_environment: Option<String>,
}

/// No projections to read (an enforcer built without them): no job is due, none is known.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unprojected;

impl JobProjections for Unprojected {
    async fn due_caps(&self, _at: i64, _limit: usize) -> Result<Vec<DueCap>, StoreError> {
        Ok(Vec::new())
    }

    async fn cap_reading(
        &self,
        _job_id: &str,
        _at: i64,
    ) -> Result<Option<crate::core::caps::CapReading>, StoreError> {
        Ok(None)
    }

    async fn defer_cap(
        &self,
        _job_id: &str,
        _version: u64,
        _until: i64,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn job_readings(
        &self,
        _job_ids: &[String],
    ) -> Result<std::collections::BTreeMap<String, JobReading>, StoreError> {
        Ok(std::collections::BTreeMap::new())
    }
}

impl<T: JobProjections + Sync> JobProjections for &T {
    fn due_caps(
        &self,
        at: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueCap>, StoreError>> + Send {
        (**self).due_caps(at, limit)
    }

    fn cap_reading(
        &self,
        job_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<Option<crate::core::caps::CapReading>, StoreError>> + Send
    {
        (**self).cap_reading(job_id, at)
    }

    fn defer_cap(
        &self,
        job_id: &str,
        version: u64,
        until: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).defer_cap(job_id, version, until)
    }

    fn job_readings(
        &self,
        job_ids: &[String],
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, JobReading>, StoreError>> + Send
    {
        (**self).job_readings(job_ids)
    }
}

/// Where metric documents go (CloudWatch, through EMF log lines, in a deployment).
pub trait MetricSink {
    fn emit(&self, documents: &[MetricDocument]) -> Result<(), MetricError>;
}

impl<T: MetricSink> MetricSink for &T {
    fn emit(&self, documents: &[MetricDocument]) -> Result<(), MetricError> {
        (**self).emit(documents)
    }
}

impl<T: SpendReader + Sync> SpendReader for &T {
    fn scopes(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::core::scope::Scope>, StoreError>> + Send {
        (**self).scopes()
    }
    fn active_scopes(
        &self,
        at: i64,
    ) -> impl Future<Output = Result<Vec<crate::core::scope::Scope>, StoreError>> + Send {
        (**self).active_scopes(at)
    }
    fn keep_active(
        &self,
        running: &[crate::core::scope::Scope],
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).keep_active(running, at)
    }
    fn scopes_totals(
        &self,
        scopes: &[crate::core::scope::Scope],
    ) -> impl Future<
        Output = Result<
            std::collections::BTreeMap<crate::core::scope::Scope, crate::core::sums::ScopeTotals>,
            StoreError,
        >,
    > + Send {
        (**self).scopes_totals(scopes)
    }
    fn recent_starts(
        &self,
        at: i64,
    ) -> impl Future<
        Output = Result<Vec<(crate::core::scope::Scope, i64, rust_decimal::Decimal)>, StoreError>,
    > + Send {
        (**self).recent_starts(at)
    }
    fn prune_before(
        &self,
        scopes: &[crate::core::scope::Scope],
        at: i64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).prune_before(scopes, at)
    }
}
