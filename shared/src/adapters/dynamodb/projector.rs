//! The projector on DynamoDB (ADR 0004): per billing group, with per-scope sums in shards.
//!
//! Items of the `<prefix>-state` table this module owns:
//!
//! | `pk` | `sk` | attributes |
//! | --- | --- | --- |
//! | `PROJ#JOB#<id>` / `PROJ#TASK#<arn>` / `PROJ#INSTANCE#<arn>` | `PROJ` | `version`, `units` (JSON [`GroupProjection`]), `own_facts` (facts of the group's own partition folded), `claimed_by` (a task's, once a job names it), `recent_minute` (`<minute>#<shard>`, GSI `recent`); a job's `compute_environment` (where its events placed its latest attempt) and cap attributes; an instance's `instance_summary` and `witnesses` (JSON) |
//! | `LINK#<task arn>` | `LINK` | `job_id`: the job that claimed the task |
//! | `SCOPE#<kind>#<name>#<shard>` | `SUM` | the [`ScopeTotals`] as numbers: `units`, `unpriced`, `estimated`, `closed`, `vcpu`, `gib`, `c_<period>`, `rn_<period>`, `rr_<period>`, `ro_<period>` |
//! | `SCOPES` | `<kind>#<name>` | `scope` (JSON): the registry of scopes, for readers |
//! | `SCOPES#<period start>` | `<kind>#<name>` | `scope` (JSON): the scopes active in that budget period, for the tick |
//! | `BUDGETS` | `BOOK` | the applied budgets (`budget_book`): read, never written, here |
//! | `SCOPES_ACTIVE` | `MARKER` | `since`: the period the active-scope index is complete from |
//! | `PLACED#<instance arn>` / `REPRICED#<instance arn>` | group / `REPRICED` | the groups placed on an instance; the identity they were last re-priced at |
//!
//! Every change is one `TransactWriteItems` conditioned on the group's projection version (a
//! change to the projection alone, one conditional `PutItem`); a cancelled write is recomputed
//! from the log and retried.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use rust_decimal::Decimal;

use super::event_log::DynamoEventLog;
use super::keys::{
    backend, corrupt, from_fixed, minute_of, n, partition_items, partition_key, s, scope_key,
    to_fixed,
};
use super::schema::{CAP_SHARDS, CAPS_INDEX, OPEN_INDEX, OPEN_SHARDS, RECENT_INDEX, RECENT_SHARDS};
use crate::core::activity::SettledJob;
use crate::core::budget::BudgetPeriod;
use crate::core::budgets::BudgetBook;
use crate::core::facts::{Fact, FactBody};
use crate::core::ledger::Ledger;
use crate::core::prices::PriceTable;
use crate::core::projection::GroupProjection;
use crate::core::scope::{Scope, TagScopes};
use crate::core::sums::{RunningBucket, ScopeTotals};
use crate::ports::{BudgetStore, SilentJob, StoreError};

/// Shards per scope: one busy scope spreads its writes over this many partitions
/// (DynamoDB allows 1,000 write units per second per partition).
pub const DEFAULT_SHARDS: u32 = 8;
/// DynamoDB's limit on the keys of one `BatchGetItem`.
pub const BATCH_GET_LIMIT: usize = 100;
/// DynamoDB's limit on the items in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Attempts at a group's transaction before giving up (each after re-reading the log).
pub const MAX_PROJECTION_ATTEMPTS: u32 = 12;

/// What happened when a group was re-projected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projected {
    /// Transactions cancelled by a concurrent writer and retried.
    pub retries: u32,
    /// Whether anything changed (a redelivered fact changes nothing).
    pub changed: bool,
    /// The job's cost when this change left it settled (see `Ledger::settled_job`).
    pub settled: Option<SettledJob>,
    /// An EC2 instance's group: what the shares of the groups placed on it are priced from
    /// (its type, region, compute environment, registered resources, …), after this fact.
    pub instance_identity: Option<serde_json::Value>,
}

/// Maintains projections and scope sums for one deployment.
#[derive(Clone, Debug)]
pub struct DynamoProjector {
    log: DynamoEventLog,
    prices: PriceTable,
    period: BudgetPeriod,
    shards: u32,
    /// Which job tags are scopes.
    tag_scopes: TagScopes,
    /// Scopes this process has put in the registry already.
    registered: Arc<Mutex<HashSet<Scope>>>,
    /// (period start, scope) pairs this process has listed among a period's active scopes.
    active: Arc<Mutex<HashSet<(i64, Scope)>>>,
    /// Whether the active-scope index is known to be complete (see `active_scopes`).
    active_index: Arc<Mutex<bool>>,
    /// Now, in Unix seconds (the wall clock; tests set their own).
    clock: fn() -> i64,
    /// The budgets applied to the stack, when it sums them (`with_applied_budgets`).
    budgets: Option<Arc<Mutex<BookCache>>>,
}

/// The applied budgets as last read, and when (Unix seconds).
#[derive(Debug, Default)]
struct BookCache {
    book: Option<Arc<BudgetBook>>,
    version: u64,
    read_at: Option<i64>,
}

/// How long a process uses the budgets it read before reading them again: an apply reaches
/// every collector within this, and a busy collector reads the item once a minute, not once
/// an event.
pub const BUDGETS_REFRESH_SECONDS: i64 = 60;

struct StoredProjection {
    version: u64,
    projection: GroupProjection,
    claimed_by: Option<String>,
    /// An instance group's `Ledger::instance_summary`, as JSON: what the jobs placed on it
    /// read instead of its whole history.
    instance_summary: Option<String>,
    /// An instance group's witnesses (`Ledger::instance_witnesses`), as a JSON list of facts:
    /// what its next event folds with itself instead of the instance's whole history.
    witnesses: Option<String>,
    /// How many facts of the group's own partition the projection folded: a reader whose
    /// history read found fewer raced a projection of a fact appended since, and starts again.
    own_facts: u64,
    /// A job's cap, as last written.
    cap: CapWritten,
    /// The compute environment a job's latest attempt runs in, when its events named one
    /// (`Ledger::job_compute_environment`): Batch's job listing does not say, and a budget
    /// scoped by compute environment acts on the running jobs of a queue with several.
    compute_environment: Option<String>,
}

/// What a job group's item says of its cap (`core::caps`): the `batchguard:max-usd` tag's
/// amount (`cap_usd`) or why it is not one (`cap_error`), and while the job runs, the second
/// its cost reaches the cap (`cap_at`, with `cap_shard`: the caps index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CapWritten {
    usd: Option<Decimal>,
    error: Option<String>,
    at: Option<i64>,
}

impl CapWritten {
    /// A job group's cap: from the tags its latest event named, and its projection `next`.
    fn of(ledger: &Ledger, job_id: &str, next: &GroupProjection) -> Self {
        match crate::core::caps::job_cap(ledger.job_tags(job_id)) {
            None => Self::default(),
            Some(Err(error)) => {
                tracing::warn!(job_id, %error, "the job's cap is not an amount: it is not capped");
                Self {
                    error: Some(error),
                    ..Self::default()
                }
            }
            Some(Ok(cap)) => {
                if next.units.iter().any(|unit| {
                    unit.unpriced
                        && matches!(unit.billing, crate::core::billing::Billing::Running { .. })
                }) {
                    tracing::warn!(
                        job_id,
                        "the capped job runs work without a price: its cap counts only what is priced"
                    );
                }
                Self {
                    usd: Some(cap),
                    error: None,
                    at: crate::core::caps::cap_reached_at(next, cap),
                }
            }
        }
    }
}

/// What a group's projection item records besides its units.
#[derive(Clone, Copy, Debug, Default)]
struct Written<'a> {
    last_event_ms: Option<i64>,
    /// An instance group's summary and witnesses, as JSON.
    instance: Option<(&'a str, &'a str)>,
    own_facts: u64,
    /// A job group's cap.
    cap: Option<&'a CapWritten>,
    /// A job group's compute environment, when its events named one.
    compute_environment: Option<&'a str>,
}

/// Now, in Unix seconds.
fn wall_clock_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A group's stored projection from its item (`PROJ#<group>`, `PROJ`), empty if none.
fn projection_of(
    pk: &str,
    item: Option<HashMap<String, AttributeValue>>,
) -> Result<StoredProjection, StoreError> {
    let Some(item) = item else {
        return Ok(StoredProjection {
            version: 0,
            projection: GroupProjection::default(),
            claimed_by: None,
            instance_summary: None,
            witnesses: None,
            own_facts: 0,
            cap: CapWritten::default(),
            compute_environment: None,
        });
    };
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(pk, "no version"))?;
    let projection = match item.get("units").and_then(|v| v.as_s().ok()) {
        Some(text) => serde_json::from_str(text).map_err(|e| corrupt(pk, e))?,
        None => GroupProjection::default(),
    };
    let claimed_by = item.get("claimed_by").and_then(|v| v.as_s().ok()).cloned();
    let instance_summary = item
        .get("instance_summary")
        .and_then(|v| v.as_s().ok())
        .cloned();
    let witnesses = item.get("witnesses").and_then(|v| v.as_s().ok()).cloned();
    let own_facts = item
        .get("own_facts")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cap = CapWritten {
        usd: item
            .get("cap_usd")
            .and_then(|v| v.as_n().ok())
            .map(|v| v.parse().map_err(|e| corrupt(pk, e)))
            .transpose()?,
        error: item.get("cap_error").and_then(|v| v.as_s().ok()).cloned(),
        at: item
            .get("cap_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
    };
    let compute_environment = item
        .get("compute_environment")
        .and_then(|v| v.as_s().ok())
        .cloned();
    Ok(StoredProjection {
        version,
        projection,
        claimed_by,
        instance_summary,
        witnesses,
        own_facts,
        cap,
        compute_environment,
    })
}

/// The job a task belongs to, from its link item (`LINK#<arn>`, `LINK`).
fn link_in(item: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    item.and_then(|item| item.get("job_id").and_then(|v| v.as_s().ok()).cloned())
}

/// What of an instance summary the shares of the jobs placed on it depend on.
fn pricing_identity(summary: Option<&str>) -> Option<serde_json::Value> {
    let fact: Fact = serde_json::from_str(summary?).ok()?;
    match fact.body {
        FactBody::Instance(instance) => Some(serde_json::json!([
            instance.ec2_instance_id,
            instance.compute_environment,
            instance.instance_type,
            instance.availability_zone,
            instance.registered,
            instance.region,
        ])),
        _ => None,
    }
}

/// What to re-project: the group of a fact just appended, or a group by name.
#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    Fact(&'a Fact),
    Group(&'a str),
}

impl DynamoProjector {
    pub fn new(log: DynamoEventLog, prices: PriceTable, period: BudgetPeriod) -> Self {
        Self {
            log,
            prices,
            period,
            shards: DEFAULT_SHARDS,
            tag_scopes: TagScopes::All,
            registered: Arc::default(),
            active: Arc::default(),
            active_index: Arc::default(),
            clock: wall_clock_seconds,
            budgets: None,
        }
    }

    /// Sums each job under `Scope::Budget(name)` (`Scope::PeriodBudget` for a budget of
    /// another period than the stack's) for every budget applied to the stack it counts in (`batchguard budgets apply`: the state table's `BUDGETS`/`BOOK` item), read
    /// again once it is [`BUDGETS_REFRESH_SECONDS`] old. A job counts in the budgets of the
    /// book read when it was last projected: after an apply, a job's budgets change at its
    /// next event (ADR 0012).
    pub fn with_applied_budgets(mut self) -> Self {
        self.budgets = Some(Arc::default());
        self
    }

    /// The applied budgets to fold with, read again when the last reading is old. When a read
    /// fails or finds a book that no longer validates, the last reading serves until the next
    /// refresh; with none, a failed read is retried as any store error (the event is
    /// redelivered) and a corrupt book leaves the bill projected without budgets.
    async fn applied_budgets(&self) -> Result<Option<Arc<BudgetBook>>, StoreError> {
        let Some(cache) = &self.budgets else {
            return Ok(None);
        };
        let now = (self.clock)();
        {
            let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache
                .read_at
                .is_some_and(|read_at| now - read_at < BUDGETS_REFRESH_SECONDS)
            {
                return Ok(cache.book.clone());
            }
        }
        let read = self.log.budgets().await;
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        match read {
            Ok((version, book)) => {
                if version != cache.version {
                    tracing::info!(version, "read the applied budgets");
                }
                cache.book = book.map(Arc::new);
                cache.version = version;
                cache.read_at = Some(now);
            }
            // A book stored since that no longer validates: the last good reading is kept
            // (projecting without it would take every job projected from now on out of its
            // budgets); with none, the bill is projected without budgets.
            Err(error @ StoreError::Corrupt { .. }) => {
                tracing::error!(%error, "the applied budgets are corrupt: using the last good reading, if any");
                cache.read_at = Some(now);
            }
            // A failed read: the last reading serves until the next refresh, so a throttled
            // item is not asked again on every event.
            Err(error) if cache.read_at.is_some() => {
                tracing::warn!(%error, "could not read the applied budgets: using the last reading");
                cache.read_at = Some(now);
            }
            Err(error) => return Err(error),
        }
        Ok(cache.book.clone())
    }

    /// Reads "now" from `clock` (Unix seconds) instead of the wall clock: where a unit that
    /// arrives late is listed among the active scopes depends on it.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Sums tag scopes of these keys only, and lists no other tag scope (a registry written
    /// with other keys before keeps them, unread).
    pub fn with_tag_scopes(mut self, tag_scopes: TagScopes) -> Self {
        self.tag_scopes = tag_scopes;
        self
    }

    pub fn with_shards(mut self, shards: u32) -> Self {
        self.shards = shards.max(1);
        self
    }

    pub fn period(&self) -> BudgetPeriod {
        self.period
    }

    fn state_table(&self) -> &str {
        &self.log.tables().state
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.log.client()
    }

    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.state_table())
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(self.state_table(), e))?;
        Ok(output.item)
    }

    async fn stored_projection(&self, group: &str) -> Result<StoredProjection, StoreError> {
        let pk = format!("PROJ#{group}");
        projection_of(&pk, self.get(&pk, "PROJ").await?)
    }

    async fn link_of(&self, task_arn: &str) -> Result<Option<String>, StoreError> {
        Ok(link_in(
            self.get(&format!("LINK#{task_arn}"), "LINK")
                .await?
                .as_ref(),
        ))
    }

    /// Re-projects the billing group the fact belongs to. Call after appending the fact.
    /// An EC2 instance's fact also re-projects the groups placed on it when it changed what
    /// their shares are priced from (the instance's type, region, compute environment or
    /// registered resources: its registration, not the version bumps ECS sends on every
    /// placement), whichever arrived first.
    pub async fn project(&self, fact: &Fact) -> Result<Projected, StoreError> {
        let projected = self.project_target(Target::Fact(fact)).await?;
        if let FactBody::Instance(instance) = &fact.body
            && let Some(identity) = &projected.instance_identity
        {
            // Compared with the identity the placed groups were last re-priced at, written
            // only once all of them are: a run that dies part way is completed by the
            // redelivered event.
            let arn = &instance.container_instance_arn;
            if self.repriced_identity(arn).await?.as_ref() != Some(identity) {
                for group in self.placed_on(arn).await? {
                    self.project_target(Target::Group(&group)).await?;
                }
                self.set_repriced_identity(arn, identity).await?;
            }
        }
        Ok(projected)
    }

    /// The summary an instance's projection keeps (that attribute alone: the item also holds
    /// the instance's units and witnesses, which a job placed on it does not read).
    async fn instance_summary(&self, arn: &str) -> Result<Option<String>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.state_table())
            .key("pk", s(format!("PROJ#INSTANCE#{arn}")))
            .key("sk", s("PROJ"))
            .projection_expression("instance_summary")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(self.state_table(), e))?;
        Ok(output
            .item
            .and_then(|item| item.get("instance_summary")?.as_s().ok().cloned()))
    }

    /// The instance identity its placed groups were last re-priced at.
    async fn repriced_identity(&self, arn: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .get(&format!("REPRICED#{arn}"), "REPRICED")
            .await?
            .and_then(|item| item.get("identity").and_then(|v| v.as_s().ok()).cloned())
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    async fn set_repriced_identity(
        &self,
        arn: &str,
        identity: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.state_table())
            .item("pk", s(format!("REPRICED#{arn}")))
            .item("sk", s("REPRICED"))
            .item("identity", s(identity.to_string()))
            .send()
            .await
            .map_err(|e| backend(self.state_table(), e))?;
        Ok(())
    }

    async fn project_target(&self, target: Target<'_>) -> Result<Projected, StoreError> {
        let mut retries = 0;
        loop {
            match self.try_project(target).await? {
                Some((changed, settled, instance_identity)) => {
                    return Ok(Projected {
                        retries,
                        changed,
                        settled,
                        instance_identity,
                    });
                }
                None if retries + 1 >= MAX_PROJECTION_ATTEMPTS => {
                    let what = match target {
                        Target::Fact(fact) => partition_key(fact),
                        Target::Group(group) => group.to_owned(),
                    };
                    return Err(StoreError::Backend {
                        location: format!("DynamoDB table {}", self.state_table()),
                        message: format!(
                            "projection of {what} lost to concurrent writers {MAX_PROJECTION_ATTEMPTS} times"
                        ),
                        source: None,
                    });
                }
                None => {
                    retries += 1;
                    // Jittered backoff: 10 ms × 2^n, capped at ~1 s.
                    let base = 10_u64 << retries.min(7);
                    let jitter = fastrand::u64(0..=base);
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
            }
        }
    }

    /// Records that `group` holds a share of the instance (idempotent).
    async fn place(&self, instance_arn: &str, group: &str) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.state_table())
            .item("pk", s(format!("PLACED#{instance_arn}")))
            .item("sk", s(group))
            .send()
            .await
            .map_err(|e| backend(self.state_table(), e))?;
        Ok(())
    }

    /// The groups holding a share of the instance.
    async fn placed_on(&self, instance_arn: &str) -> Result<Vec<String>, StoreError> {
        let items = partition_items(
            self.client(),
            self.state_table(),
            &format!("PLACED#{instance_arn}"),
        )
        .await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }

    /// One attempt: `Some((changed, settled job))` when committed (or nothing to do), `None`
    /// when a concurrent writer got there first.
    async fn try_project(
        &self,
        target: Target<'_>,
    ) -> Result<Option<(bool, Option<SettledJob>, Option<serde_json::Value>)>, StoreError> {
        let fact = match target {
            Target::Fact(fact) => fact,
            Target::Group(group) => {
                return self
                    .try_project_group(group.to_owned(), true, None, None)
                    .await;
            }
        };
        let (group, job_id) = match &fact.body {
            FactBody::Job(job) => (format!("JOB#{}", job.job_id), Some(job.job_id.clone())),
            FactBody::Abandoned(abandoned) => (
                format!("JOB#{}", abandoned.job_id),
                Some(abandoned.job_id.clone()),
            ),
            FactBody::Task(task) => match self.link_of(&task.task_arn).await? {
                Some(job_id) => {
                    let group = format!("JOB#{job_id}");
                    let known = (task.task_arn.as_str(), job_id.as_str());
                    return self
                        .try_project_group(group, false, Some(known), None)
                        .await;
                }
                None => (format!("TASK#{}", task.task_arn), None),
            },
            FactBody::Instance(instance) => (
                format!("INSTANCE#{}", instance.container_instance_arn),
                None,
            ),
            // Audit entries cost nothing: no projection to change.
            FactBody::Enforcement(_) => return Ok(Some((false, None, None))),
        };
        debug_assert_eq!(group.strip_prefix("JOB#"), job_id.as_deref());
        self.try_project_group(group, false, None, Some(fact)).await
    }

    /// One attempt at one group. `revisit`: the group is re-projected because an instance it
    /// is placed on changed; a task group since claimed by a job is then left alone (the job's
    /// group holds it).
    /// `known_link`: a task's link to this job, read by the caller (not read again). `fact`:
    /// the fact just appended that the group is projected for.
    async fn try_project_group(
        &self,
        group: String,
        revisit: bool,
        known_link: Option<(&str, &str)>,
        fact: Option<&Fact>,
    ) -> Result<Option<(bool, Option<SettledJob>, Option<serde_json::Value>)>, StoreError> {
        let job_id = group.strip_prefix("JOB#").map(str::to_owned);
        let is_instance_group = group.starts_with("INSTANCE#");
        let projection_pk = format!("PROJ#{group}");

        // An instance's projection keeps the facts that hold what is known of it (its
        // witnesses): its event folds those and itself, not the instance's whole history,
        // which grows with every placement. Without them (its first event, or a projection
        // from before they were kept), the history.
        let mut instance_current = None;
        let mut witnessed = None;
        if is_instance_group && let Some(fact) = fact {
            let current = projection_of(&projection_pk, self.get(&projection_pk, "PROJ").await?)?;
            if let Some(text) = &current.witnesses {
                let mut kept: Vec<Fact> =
                    serde_json::from_str(text).map_err(|e| corrupt(&projection_pk, e))?;
                // ECS moves an instance's version by one per change: a gap means a fact in
                // the log the witnesses never took in (its own projection failed, or it is
                // still on its way), so the history is read, as it was before witnesses.
                let version = |f: &Fact| match &f.body {
                    FactBody::Instance(instance) => instance.version,
                    _ => 0,
                };
                let highest = kept.iter().map(version).max().unwrap_or(0);
                if version(fact) <= highest + 1 {
                    if !kept.iter().any(|k| k.event_id == fact.event_id) {
                        kept.push(fact.clone());
                    }
                    witnessed = Some(kept);
                }
            }
            instance_current = Some(current);
        }
        // Fold the group's facts: the job's own, and those of each task it names that is not
        // another job's.
        let (mut facts, own_read): (Vec<Fact>, Option<u64>) = match witnessed {
            Some(kept) => (kept, None),
            None => {
                let history: Vec<Fact> = self
                    .log
                    .entity_history(&group)
                    .await?
                    .into_iter()
                    .map(|record| record.fact)
                    .collect();
                let read = history.len() as u64;
                (history, Some(read))
            }
        };
        let mut claims = Vec::new();
        let current = if let Some(job_id) = &job_id {
            let task_arns: BTreeSet<String> = facts
                .iter()
                .filter_map(|f| match &f.body {
                    FactBody::Job(job) => {
                        Some(job.attempts.iter().filter_map(|a| a.task_arn.clone()))
                    }
                    FactBody::Task(_)
                    | FactBody::Instance(_)
                    | FactBody::Enforcement(_)
                    | FactBody::Abandoned(_) => None,
                })
                .flatten()
                .collect();
            // A job no fact has yet given an attempt (SUBMITTED, PENDING, RUNNABLE) has no
            // unit now and had none in any projection of fewer of its facts: its projection
            // is not read (nor written) unless the fold below finds a unit after all.
            let attemptless = facts
                .iter()
                .all(|f| matches!(&f.body, FactBody::Job(job) if job.attempts.is_empty()));
            // Else the group's projection and its tasks' links in one consistent batch read.
            let mut keys = Vec::new();
            if !attemptless {
                keys.push((projection_pk.clone(), "PROJ"));
            }
            keys.extend(
                task_arns
                    .iter()
                    .filter(|arn| known_link.is_none_or(|(known, _)| known != arn.as_str()))
                    .map(|arn| (format!("LINK#{arn}"), "LINK")),
            );
            let mut read: HashMap<String, HashMap<String, AttributeValue>> = if keys.is_empty() {
                Vec::new()
            } else {
                self.items(&keys).await?
            }
            .into_iter()
            .filter_map(|item| {
                let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned()?;
                Some((pk, item))
            })
            .collect();
            for arn in task_arns {
                let owner = match known_link {
                    Some((known, owner)) if known == arn => Some(owner.to_owned()),
                    _ => link_in(read.get(&format!("LINK#{arn}"))),
                };
                let claim = match owner {
                    Some(owner) if &owner != job_id => continue,
                    Some(_) => false,
                    None => true,
                };
                let history = self.log.entity_history(&format!("TASK#{arn}")).await?;
                if claim {
                    // A task with no fact yet has no projection to read: none is made before
                    // its first fact is appended, and the claim's conditional put settles a
                    // race with one appended since (see `put_projection`).
                    claims.push((arn.clone(), history.len() as u64));
                }
                facts.extend(history.into_iter().map(|record| record.fact));
            }
            (!attemptless)
                .then(|| projection_of(&projection_pk, read.remove(&projection_pk)))
                .transpose()?
        } else if let Some(current) = instance_current {
            Some(current)
        } else {
            Some(projection_of(
                &projection_pk,
                self.get(&projection_pk, "PROJ").await?,
            )?)
        };
        // A share of an EC2 instance is priced from the instance's facts: read them too. The
        // instance's own bill is its group's (`INSTANCE#…`), not counted again here.
        let instance_arns: BTreeSet<String> = facts
            .iter()
            .flat_map(|f| match &f.body {
                FactBody::Job(job) => job
                    .attempts
                    .iter()
                    .filter_map(|a| a.container_instance_arn.clone())
                    .collect(),
                FactBody::Task(task) => task.container_instance_arn.clone().into_iter().collect(),
                FactBody::Instance(_) | FactBody::Enforcement(_) | FactBody::Abandoned(_) => {
                    Vec::new()
                }
            })
            .collect();
        if !is_instance_group {
            for arn in instance_arns {
                // Placed first, then the instance read: an instance change projected after
                // this read finds the group placed and re-projects it.
                self.place(&arn, &group).await?;
                // The instance's summary (one read of a small item), not its history, which
                // grows with every placement; the history until the instance was projected.
                match self
                    .instance_summary(&arn)
                    .await?
                    .and_then(|text| serde_json::from_str::<Fact>(&text).ok())
                {
                    Some(summary) => facts.push(summary),
                    None => {
                        let history = self.log.entity_history(&format!("INSTANCE#{arn}")).await?;
                        facts.extend(history.into_iter().map(|record| record.fact));
                    }
                }
            }
        }
        let mut ledger =
            Ledger::new(self.prices.clone(), self.period).with_tag_scopes(self.tag_scopes.clone());
        if let Some(book) = self.applied_budgets().await? {
            ledger = ledger.with_budgets(book);
        }
        for fact in &facts {
            ledger.apply(fact);
        }
        let next = if is_instance_group {
            GroupProjection::of(&ledger)
        } else {
            GroupProjection::without_instances(&ledger)
        };
        let last_event_ms = ledger.latest_instant().map(|m| m.0);
        let cap = job_id
            .as_deref()
            .map(|id| CapWritten::of(&ledger, id, &next))
            .unwrap_or_default();
        let compute_environment = job_id
            .as_deref()
            .and_then(|id| ledger.job_compute_environment(id))
            .map(str::to_owned);
        let instance_summary = group
            .strip_prefix("INSTANCE#")
            .and_then(|arn| ledger.instance_summary(arn))
            .map(|summary| serde_json::to_string(&summary).map_err(|e| corrupt(&group, e)))
            .transpose()?;
        let witnesses = group
            .strip_prefix("INSTANCE#")
            .map(|arn| {
                serde_json::to_string(&ledger.instance_witnesses(arn, &facts))
                    .map_err(|e| corrupt(&group, e))
            })
            .transpose()?;

        let current = match current {
            Some(current) => current,
            None if next.units.is_empty() => {
                let settled = job_id
                    .as_deref()
                    .and_then(|id| SettledJob::of(&ledger, &facts, id));
                return Ok(Some((false, settled, None)));
            }
            None => projection_of(&projection_pk, self.get(&projection_pk, "PROJ").await?)?,
        };
        if let Some(read) = own_read
            && current.own_facts > read
        {
            // A projection committed since our history read folded a fact that read missed
            // (appended after it): start again, or this write would drop that fact.
            return Ok(None);
        }
        let identity = pricing_identity(instance_summary.as_deref());
        let instance_changed =
            is_instance_group && identity != pricing_identity(current.instance_summary.as_deref());
        if current.claimed_by.is_some() {
            if revisit {
                return Ok(Some((false, None, None)));
            }
            // An orphan task claimed since we read its link: start again from the link.
            return Ok(None);
        }
        let mut delta = current.projection.delta_to(&next, self.period);
        let mut items = Vec::new();
        for (arn, read) in &claims {
            let orphan_group = format!("TASK#{arn}");
            let orphan = if *read > 0 {
                self.stored_projection(&orphan_group).await?
            } else {
                projection_of(&orphan_group, None)?
            };
            if orphan.own_facts > *read {
                // The orphan took in a fact our read of its history missed: start again.
                return Ok(None);
            }
            for (scope, part) in orphan
                .projection
                .delta_to(&GroupProjection::default(), self.period)
            {
                delta.entry(scope).or_default().merge(&part);
            }
            items.push(self.put_projection(
                &orphan_group,
                orphan.version,
                &GroupProjection::default(),
                job_id.as_deref(),
                Written::default(),
            )?);
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(self.state_table())
                            .item("pk", s(format!("LINK#{arn}")))
                            .item("sk", s("LINK"))
                            .item("job_id", s(job_id.clone().unwrap_or_default()))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .map_err(|e| corrupt(arn, e))?,
                    )
                    .build(),
            );
        }
        delta.retain(|_, totals| *totals != ScopeTotals::default());
        // Whether or not the projection changes: the event that ends a job often changes no
        // cost (the task's stop came first), and it is the one that settles the job.
        let settled = job_id
            .as_deref()
            .and_then(|id| SettledJob::of(&ledger, &facts, id));
        if delta.is_empty()
            && claims.is_empty()
            && current.projection == next
            && !instance_changed
            && witnesses == current.witnesses
            && cap == current.cap
            && compute_environment == current.compute_environment
        {
            return Ok(Some((false, settled, identity)));
        }
        items.push(self.put_projection(
            &group,
            current.version,
            &next,
            None,
            Written {
                last_event_ms,
                instance: instance_summary.as_deref().zip(witnesses.as_deref()),
                own_facts: own_read.unwrap_or(0),
                cap: Some(&cap),
                compute_environment: compute_environment.as_deref(),
            },
        )?);
        let shard = xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(self.shards);
        for (scope, totals) in &delta {
            items.push(self.add_to_scope(scope, shard, totals)?);
        }
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Backend {
                location: format!("DynamoDB table {}", self.state_table()),
                message: format!(
                    "group {group} needs {} writes, more than the {MAX_TRANSACTION_ITEMS} one transaction may hold",
                    items.len()
                ),
                source: None,
            });
        }
        // Registered first: a scope listed before its first sum is harmless, one with sums but
        // not listed would be invisible to readers.
        self.register_scopes(&delta).await?;
        // One write (the projection alone: nothing summed, nothing claimed) needs no
        // transaction, which would bill it twice.
        if let [only] = items.as_slice()
            && let Some(put) = only.put()
        {
            let result = self
                .client()
                .put_item()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_values(put.expression_attribute_values().cloned())
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Some((true, settled, identity))),
                // Lost a race on the version, or the item is in another writer's transaction
                // (which the SDK does not retry): recompute and retry, as for a transaction.
                Err(SdkError::ServiceError(error))
                    if error.err().is_conditional_check_failed_exception()
                        || error.err().is_transaction_conflict_exception() =>
                {
                    Ok(None)
                }
                Err(error) => Err(backend(self.state_table(), error)),
            };
        }
        let result = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some((true, settled, identity))),
            Err(SdkError::ServiceError(error)) => match error.err() {
                // Lost a race (a condition on a version, or a conflicting transaction): retry.
                // Anything else in the reasons is a real failure.
                TransactWriteItemsError::TransactionCanceledException(cancelled)
                    if cancelled.cancellation_reasons().iter().all(|reason| {
                        matches!(
                            reason.code(),
                            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Ok(None)
                }
                _ => Err(backend(self.state_table(), SdkError::ServiceError(error))),
            },
            Err(error) => Err(backend(self.state_table(), error)),
        }
    }

    fn put_projection(
        &self,
        group: &str,
        version: u64,
        projection: &GroupProjection,
        claimed_by: Option<&str>,
        written: Written<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let Written {
            last_event_ms,
            instance,
            own_facts,
            cap,
            compute_environment,
        } = written;
        let units = serde_json::to_string(projection).map_err(|e| corrupt(group, e))?;
        let mut put = Put::builder()
            .table_name(self.state_table())
            .item("pk", s(format!("PROJ#{group}")))
            .item("sk", s("PROJ"))
            .item("version", n(version + 1))
            .item("units", s(units));
        if let Some(job) = claimed_by {
            put = put.item("claimed_by", s(job));
        }
        if own_facts > 0 {
            put = put.item("own_facts", n(own_facts));
        }
        if let Some(environment) = compute_environment {
            put = put.item("compute_environment", s(environment));
        }
        if let Some((summary, witnesses)) = instance {
            put = put
                .item("instance_summary", s(summary))
                .item("witnesses", s(witnesses));
        }
        let latest_running = projection
            .units
            .iter()
            .filter_map(|unit| match unit.billing {
                crate::core::billing::Billing::Running { anchor, .. } => Some(anchor),
                _ => None,
            })
            .max();
        if let Some(anchor) = latest_running {
            // By minute and shard: a burst of starts in one minute spreads over the shards.
            let shard = xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(RECENT_SHARDS);
            put = put.item("recent_minute", s(format!("{}#{shard}", minute_of(anchor))));
            // Open groups, by when they were last heard from: the silent-job check's index.
            if let Some(last) = last_event_ms {
                let shard = xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(OPEN_SHARDS);
                put = put
                    .item("open_shard", s(format!("OPEN#{shard}")))
                    .item("last_event_ms", n(last));
            }
        }
        if let Some(cap) = cap {
            if let Some(usd) = cap.usd {
                put = put.item("cap_usd", n(usd));
            }
            if let Some(error) = &cap.error {
                put = put.item("cap_error", s(error));
            }
            if let Some(at) = cap.at {
                // Running and capped: the caps index, by the second the cap is reached.
                let shard = xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(CAP_SHARDS);
                put = put
                    .item("cap_shard", s(format!("CAP#{shard}")))
                    .item("cap_at", n(at));
            }
        }
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :version")
                .expression_attribute_values(":version", n(version))
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(|e| corrupt(group, e))?)
            .build())
    }

    fn add_to_scope(
        &self,
        scope: &Scope,
        shard: u64,
        totals: &ScopeTotals,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut values: Vec<(String, Decimal)> = vec![
            ("units".into(), Decimal::from(totals.units)),
            ("unpriced".into(), Decimal::from(totals.unpriced_units)),
            ("estimated".into(), Decimal::from(totals.estimated_units)),
            ("closed".into(), totals.closed_total),
            ("vcpu".into(), totals.running_vcpu),
            ("gib".into(), totals.running_memory_gib),
        ];
        for (start, part) in &totals.closed_by_period {
            values.push((format!("c_{start}"), *part));
        }
        for (start, bucket) in &totals.running_by_period {
            values.push((format!("rn_{start}"), Decimal::from(bucket.units)));
            values.push((format!("rr_{start}"), bucket.sum_rate));
            values.push((format!("ro_{start}"), bucket.sum_rate_offset));
            values.push((format!("tn_{start}"), Decimal::from(bucket.timed_units)));
            values.push((format!("tr_{start}"), bucket.timed_rate));
            values.push((format!("to_{start}"), bucket.timed_rate_offset));
        }
        let mut expression = Vec::new();
        let mut update = Update::builder()
            .table_name(self.state_table())
            .key("pk", s(format!("SCOPE#{}#{shard}", scope_key(scope))))
            .key("sk", s("SUM"));
        for (i, (name, value)) in values.iter().enumerate() {
            if value.is_zero() {
                continue;
            }
            expression.push(format!("#a{i} :v{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), n(to_fixed(name, *value)?));
        }
        if expression.is_empty() {
            // Nothing changes in this scope's sums; keep the item count of the transaction honest.
            expression.push("#a0 :v0".to_owned());
            update = update
                .expression_attribute_names("#a0", "units")
                .expression_attribute_values(":v0", n(0));
        }
        let update = update
            .update_expression(format!("ADD {}", expression.join(", ")))
            .build()
            .map_err(|e| corrupt(&scope_key(scope), e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Lists the scopes of a change in the registry (once per process) and among the active
    /// scopes of every period the change touches (see `active_scopes`).
    async fn register_scopes(
        &self,
        delta: &BTreeMap<Scope, ScopeTotals>,
    ) -> Result<(), StoreError> {
        for (scope, totals) in delta {
            // Active in every period the change touches (a unit's closing spreads its spend
            // over the periods it ran in). The index is kept by the stack's period: a budget
            // of another period is listed under the stack's periods its buckets begin in.
            let periods: BTreeSet<i64> = totals
                .closed_by_period
                .keys()
                .chain(totals.running_by_period.keys())
                .map(|&start| self.period.bounds(start).0)
                .collect();
            for period_start in &periods {
                self.mark_active(scope, *period_start).await?;
            }
            // A unit still running whose news arrives more than a period late (a backlog, a
            // redrive) is listed under its start's period, which the tick no longer reads:
            // list it under today's too.
            let (now, _) = self.period.bounds((self.clock)());
            let (previous, _) = self.period.bounds(now - 1);
            if totals
                .running_by_period
                .keys()
                .any(|start| *start < previous)
            {
                self.mark_active(scope, now).await?;
            }
            if self
                .registered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(scope)
            {
                continue;
            }
            self.list_scope("SCOPES", scope).await?;
            self.registered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(scope.clone());
        }
        Ok(())
    }

    /// Puts `scope` in the list `pk` (the registry, or a period's active scopes): idempotent.
    async fn list_scope(&self, pk: &str, scope: &Scope) -> Result<(), StoreError> {
        let text = serde_json::to_string(scope).map_err(|e| corrupt(&scope_key(scope), e))?;
        self.client()
            .put_item()
            .table_name(self.state_table())
            .item("pk", s(pk))
            .item("sk", s(scope_key(scope)))
            .item("scope", s(text))
            .send()
            .await
            .map_err(|e| backend(self.state_table(), e))?;
        Ok(())
    }

    /// Lists `scope` among the active scopes of the period starting at `period_start`
    /// (`SCOPES#<start>`), once per process.
    async fn mark_active(&self, scope: &Scope, period_start: i64) -> Result<(), StoreError> {
        let key = (period_start, scope.clone());
        if self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(());
        }
        self.list_scope(&format!("SCOPES#{period_start}"), scope)
            .await?;
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
        Ok(())
    }

    /// The scopes active in the budget period of `at` or the one before, and the total: a
    /// change lists its scopes under every period it touches (and under the clock's period
    /// when it is to a unit running since before the last), and the tick lists the scopes of
    /// running units under its own period (`keep_active`), as long as it runs once a period. A
    /// table written before this index was kept has no complete index: the first call lists
    /// every registered scope in this period's, then writes a marker (`SCOPES_ACTIVE`) that
    /// says the index is complete from here on.
    pub async fn active_scopes(&self, at: i64) -> Result<Vec<Scope>, StoreError> {
        let (period_start, _) = self.period.bounds(at);
        let (previous, _) = self.period.bounds(period_start - 1);
        let complete = *self
            .active_index
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !complete {
            if self.get("SCOPES_ACTIVE", "MARKER").await?.is_none() {
                for scope in self.scopes().await? {
                    self.mark_active(&scope, period_start).await?;
                }
                self.client()
                    .put_item()
                    .table_name(self.state_table())
                    .item("pk", s("SCOPES_ACTIVE"))
                    .item("sk", s("MARKER"))
                    .item("since", n(period_start))
                    .send()
                    .await
                    .map_err(|e| backend(self.state_table(), e))?;
            }
            *self
                .active_index
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = true;
        }
        let mut scopes = BTreeSet::from([Scope::Total]);
        for start in [previous, period_start] {
            let items = partition_items(
                self.client(),
                self.state_table(),
                &format!("SCOPES#{start}"),
            )
            .await?;
            for item in &items {
                let text = item
                    .get("scope")
                    .and_then(|v| v.as_s().ok())
                    .map_or("", String::as_str);
                let scope: Scope = serde_json::from_str(text).map_err(|e| corrupt("SCOPES#", e))?;
                match &scope {
                    Scope::Tag(key, _) if !self.tag_scopes.allows(key) => {}
                    _ => {
                        scopes.insert(scope);
                    }
                }
            }
        }
        Ok(scopes.into_iter().collect())
    }

    /// Keeps the scopes of units still running in this period's index (see
    /// `SpendReader::keep_active`).
    pub async fn keep_active(&self, running: &[Scope], at: i64) -> Result<(), StoreError> {
        let (period_start, _) = self.period.bounds(at);
        for scope in running {
            self.mark_active(scope, period_start).await?;
        }
        Ok(())
    }

    /// Every scope that has had spend.
    pub async fn scopes(&self) -> Result<Vec<Scope>, StoreError> {
        let items = partition_items(self.client(), self.state_table(), "SCOPES").await?;
        let mut scopes = Vec::with_capacity(items.len());
        for item in &items {
            let text = item
                .get("scope")
                .and_then(|v| v.as_s().ok())
                .map_or("", String::as_str);
            let scope: Scope = serde_json::from_str(text).map_err(|e| corrupt("SCOPES", e))?;
            match &scope {
                Scope::Tag(key, _) if !self.tag_scopes.allows(key) => {}
                _ => scopes.push(scope),
            }
        }
        Ok(scopes)
    }

    /// A scope's sums: its shards read and added.
    pub async fn scope_totals(&self, scope: &Scope) -> Result<ScopeTotals, StoreError> {
        let mut all = self.scopes_totals(std::slice::from_ref(scope)).await?;
        Ok(all.remove(scope).unwrap_or_default())
    }

    /// Removes the attributes of the scopes' sum items that no figure at or after the start of
    /// the period containing `at` reads ([`stale_attributes`]), each scope by its own period
    /// (`Scope::period`): one read of the items and one conditional `UpdateItem` per item that
    /// has any. A running bucket is removed only if it is still all zero when the update
    /// lands; closed spend of a past period is read by nothing.
    pub async fn prune_before(&self, scopes: &[Scope], at: i64) -> Result<usize, StoreError> {
        let starts: HashMap<String, i64> = scopes
            .iter()
            .flat_map(|scope| {
                let (start, _) = scope.period(self.period).bounds(at);
                (0..self.shards)
                    .map(move |shard| (format!("SCOPE#{}#{shard}", scope_key(scope)), start))
            })
            .collect();
        let keys: Vec<String> = starts.keys().cloned().collect();
        let mut pruned = 0;
        for item in self.sum_items(&keys).await? {
            let Some(&period_start) = item
                .get("pk")
                .and_then(|pk| pk.as_s().ok())
                .and_then(|pk| starts.get(pk))
            else {
                continue;
            };
            let stale = stale_attributes(&item, period_start);
            if stale.is_empty() {
                continue;
            }
            let Some(pk) = item.get("pk").cloned() else {
                continue;
            };
            let mut update = self
                .client()
                .update_item()
                .table_name(self.state_table())
                .key("pk", pk)
                .key("sk", s("SUM"));
            let mut removed = Vec::new();
            let mut conditions = Vec::new();
            for (i, (name, still_zero)) in stale.iter().enumerate() {
                update = update.expression_attribute_names(format!("#p{i}"), name);
                removed.push(format!("#p{i}"));
                if *still_zero {
                    // `ADD` writes no zero, so a part may be missing: missing is zero too.
                    conditions.push(format!("(attribute_not_exists(#p{i}) OR #p{i} = :zero)"));
                }
            }
            update = update.update_expression(format!("REMOVE {}", removed.join(", ")));
            if !conditions.is_empty() {
                update = update
                    .condition_expression(conditions.join(" AND "))
                    .expression_attribute_values(":zero", n(0));
            }
            match update.send().await {
                Ok(_) => pruned += 1,
                // A unit started in that bucket meanwhile: next time.
                Err(SdkError::ServiceError(error))
                    if error.err().is_conditional_check_failed_exception() => {}
                Err(error) => return Err(backend(self.state_table(), error)),
            }
        }
        Ok(pruned)
    }

    /// The scope sum items (`<pk>`, `SUM`) of these partition keys that exist.
    async fn sum_items(
        &self,
        keys: &[String],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let keys: Vec<(String, &str)> = keys.iter().map(|pk| (pk.clone(), "SUM")).collect();
        self.items(&keys).await
    }

    /// The items of these (`pk`, `sk`) keys that exist, in no particular order, read
    /// consistently `BATCH_GET_LIMIT` keys a call; keys DynamoDB did not get to are asked again.
    async fn items(
        &self,
        keys: &[(String, &str)],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        // BatchGetItem refuses a request naming one key twice (a job listed under two
        // statuses, say): each key once.
        let keys: Vec<&(String, &str)> = keys.iter().collect::<BTreeSet<_>>().into_iter().collect();
        let mut items = Vec::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut batch = KeysAndAttributes::builder().consistent_read(true);
            for &(pk, sk) in chunk {
                batch = batch.keys(HashMap::from([
                    ("pk".to_owned(), s(pk.as_str())),
                    ("sk".to_owned(), s(*sk)),
                ]));
            }
            let batch = batch.build().map_err(|e| corrupt("batch read", e))?;
            let mut request = Some(HashMap::from([(self.state_table().to_owned(), batch)]));
            while let Some(pending) = request.take().filter(|r| !r.is_empty()) {
                let output = self
                    .client()
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| backend(self.state_table(), e))?;
                if let Some(mut responses) = output.responses {
                    items.extend(responses.remove(self.state_table()).unwrap_or_default());
                }
                request = output.unprocessed_keys;
            }
        }
        Ok(items)
    }

    /// Several scopes' sums, their shards read `BATCH_GET_LIMIT` keys a call.
    pub async fn scopes_totals(
        &self,
        scopes: &[Scope],
    ) -> Result<BTreeMap<Scope, ScopeTotals>, StoreError> {
        let mut owner: HashMap<String, &Scope> = HashMap::new();
        for scope in scopes {
            for shard in 0..self.shards {
                owner.insert(format!("SCOPE#{}#{shard}", scope_key(scope)), scope);
            }
        }
        let mut totals: BTreeMap<Scope, ScopeTotals> = scopes
            .iter()
            .map(|scope| (scope.clone(), ScopeTotals::default()))
            .collect();
        let keys: Vec<String> = owner.keys().cloned().collect();
        for item in self.sum_items(&keys).await? {
            let pk = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .map_or("", String::as_str);
            if let Some(scope) = owner.get(pk)
                && let Some(sums) = totals.get_mut(*scope)
            {
                sums.merge(&totals_of(&item)?);
            }
        }
        Ok(totals)
    }

    /// Running units started in the minute of `at` or the one before, with their scopes:
    /// the one-minute-minimum correction (see `ScopeTotals::spend_at`).
    pub async fn recent_starts(&self, at: i64) -> Result<Vec<(Scope, i64, Decimal)>, StoreError> {
        let mut starts = Vec::new();
        let mut seen = HashSet::new();
        let keys = [minute_of(at - 60), minute_of(at)]
            .into_iter()
            .flat_map(|minute| (0..RECENT_SHARDS).map(move |shard| format!("{minute}#{shard}")));
        for minute in keys {
            let items: Vec<HashMap<String, AttributeValue>> = self
                .client()
                .query()
                .table_name(self.state_table())
                .index_name(RECENT_INDEX)
                .key_condition_expression("recent_minute = :m")
                .expression_attribute_values(":m", s(minute))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| backend(self.state_table(), e))?;
            for item in items {
                // A group moved from one minute's key to the next between the queries is read
                // once. (Two groups' starts can be equal: both count.)
                let group = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
                if !seen.insert(group) {
                    continue;
                }
                let text = item
                    .get("units")
                    .and_then(|v| v.as_s().ok())
                    .map_or("{}", String::as_str);
                let projection: GroupProjection =
                    serde_json::from_str(text).map_err(|e| corrupt("recent", e))?;
                starts.extend(
                    projection
                        .recent_starts(at)
                        .map(|(scope, anchor, rate)| (scope.clone(), anchor, rate)),
                );
            }
        }
        starts.sort();
        Ok(starts)
    }
}

fn totals_of(item: &HashMap<String, AttributeValue>) -> Result<ScopeTotals, StoreError> {
    let number = |name: &str| -> Result<Decimal, StoreError> {
        match item.get(name).and_then(|v| v.as_n().ok()) {
            Some(text) => from_fixed(name, text),
            None => Ok(Decimal::ZERO),
        }
    };
    let count = |name: &str| -> Result<i64, StoreError> {
        number(name)?.try_into().map_err(|e| corrupt(name, e))
    };
    let mut totals = ScopeTotals {
        units: count("units")?,
        unpriced_units: count("unpriced")?,
        estimated_units: count("estimated")?,
        closed_total: number("closed")?,
        closed_by_period: BTreeMap::new(),
        running_by_period: BTreeMap::new(),
        running_vcpu: number("vcpu")?,
        running_memory_gib: number("gib")?,
    };
    for name in item.keys() {
        if let Some(start) = name.strip_prefix("c_").and_then(|t| t.parse::<i64>().ok()) {
            totals.closed_by_period.insert(start, number(name)?);
        }
        if let Some(start) = name.strip_prefix("rn_").and_then(|t| t.parse::<i64>().ok()) {
            let bucket = RunningBucket {
                units: count(name)?,
                sum_rate: number(&format!("rr_{start}"))?,
                sum_rate_offset: number(&format!("ro_{start}"))?,
                timed_units: count(&format!("tn_{start}"))?,
                timed_rate: number(&format!("tr_{start}"))?,
                timed_rate_offset: number(&format!("to_{start}"))?,
            };
            totals.running_by_period.insert(start, bucket);
        }
    }
    Ok(totals)
}

impl crate::ports::SpendReader for DynamoProjector {
    async fn scopes(&self) -> Result<Vec<Scope>, StoreError> {
        DynamoProjector::scopes(self).await
    }

    async fn active_scopes(&self, at: i64) -> Result<Vec<Scope>, StoreError> {
        DynamoProjector::active_scopes(self, at).await
    }

    async fn keep_active(&self, running: &[Scope], at: i64) -> Result<(), StoreError> {
        DynamoProjector::keep_active(self, running, at).await
    }

    async fn scopes_totals(
        &self,
        scopes: &[Scope],
    ) -> Result<BTreeMap<Scope, ScopeTotals>, StoreError> {
        DynamoProjector::scopes_totals(self, scopes).await
    }

    async fn recent_starts(&self, at: i64) -> Result<Vec<(Scope, i64, Decimal)>, StoreError> {
        DynamoProjector::recent_starts(self, at).await
    }

    async fn prune_before(&self, scopes: &[Scope], at: i64) -> Result<usize, StoreError> {
        DynamoProjector::prune_before(self, scopes, at).await
    }
}

/// The attributes of a scope's sum item that no figure at or after `period_start` reads:
/// closed spend of earlier periods, and running buckets of earlier periods whose units have
/// all ended (count, rate and offset all zero).
/// Each with whether its removal must check it is still zero (a running bucket's parts).
fn stale_attributes(
    item: &HashMap<String, AttributeValue>,
    period_start: i64,
) -> Vec<(String, bool)> {
    let zero = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .is_none_or(|text| {
                text.trim_start_matches('-')
                    .chars()
                    .all(|c| c == '0' || c == '.')
            })
    };
    let mut stale = Vec::new();
    for name in item.keys() {
        if let Some(start) = name.strip_prefix("c_").and_then(|t| t.parse::<i64>().ok())
            && start < period_start
        {
            stale.push((name.clone(), false));
        }
        if let Some(start) = name.strip_prefix("rn_").and_then(|t| t.parse::<i64>().ok())
            && start < period_start
        {
            let bucket = [
                format!("rn_{start}"),
                format!("rr_{start}"),
                format!("ro_{start}"),
                format!("tn_{start}"),
                format!("tr_{start}"),
                format!("to_{start}"),
            ];
            if bucket.iter().all(|name| zero(name)) {
                stale.extend(bucket.into_iter().map(|name| (name, true)));
            }
        }
    }
    stale.sort();
    stale
}

impl DynamoProjector {
    /// Jobs with a running unit last heard from before `before_ms` (from the open index, whose
    /// `last_event_ms` is the latest instant the group's facts name, moved on by
    /// [`crate::ports::SilentJobs::heard_from`]; at most `limit`).
    pub async fn silent_jobs(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SilentJob>, StoreError> {
        let mut jobs = Vec::new();
        for shard in 0..OPEN_SHARDS {
            let mut pages = self
                .client()
                .query()
                .table_name(self.state_table())
                .index_name(OPEN_INDEX)
                .key_condition_expression("open_shard = :shard AND last_event_ms < :before")
                .expression_attribute_values(":shard", s(format!("OPEN#{shard}")))
                .expression_attribute_values(":before", n(before_ms))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(|e| backend(self.state_table(), e))?;
                if let Some(job) = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("PROJ#JOB#"))
                {
                    let heard_ms = item
                        .get("last_event_ms")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(before_ms);
                    jobs.push(SilentJob {
                        job_id: job.to_owned(),
                        heard_ms,
                    });
                    if jobs.len() >= limit {
                        return Ok(jobs);
                    }
                }
            }
        }
        Ok(jobs)
    }
}

impl crate::ports::JobProjections for DynamoProjector {
    /// One `Query` of the caps index per shard ([`CAP_SHARDS`]), for `cap_at <= at`: the
    /// items read are the capped jobs past their cap and still running, whatever the history.
    async fn due_caps(
        &self,
        at: i64,
        limit: usize,
    ) -> Result<Vec<crate::ports::DueCap>, StoreError> {
        // An equal share of the limit from each shard, the earliest first: jobs due long ago
        // in one shard do not keep the others' from being read.
        let per_shard = limit.div_ceil(CAP_SHARDS as usize);
        let page = i32::try_from(per_shard).unwrap_or(i32::MAX).max(1);
        let mut due = Vec::new();
        for shard in 0..CAP_SHARDS {
            let mut from_shard = 0;
            let mut pages = self
                .client()
                .query()
                .table_name(self.state_table())
                .index_name(CAPS_INDEX)
                .key_condition_expression("cap_shard = :shard AND cap_at <= :at")
                .expression_attribute_values(":shard", s(format!("CAP#{shard}")))
                .expression_attribute_values(":at", n(at))
                .limit(page)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(|e| backend(self.state_table(), e))?;
                let job = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("PROJ#JOB#"));
                let reached_at = item
                    .get("cap_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok());
                if let (Some(job), Some(reached_at)) = (job, reached_at) {
                    due.push(crate::ports::DueCap {
                        job_id: job.to_owned(),
                        reached_at,
                    });
                    from_shard += 1;
                    if from_shard >= per_shard {
                        break;
                    }
                }
            }
        }
        due.truncate(limit);
        Ok(due)
    }

    /// One conditional `UpdateItem` (1 write unit): `cap_at` moves to `until` if the
    /// projection is still at `version` and capped.
    async fn defer_cap(&self, job_id: &str, version: u64, until: i64) -> Result<bool, StoreError> {
        let updated = self
            .client()
            .update_item()
            .table_name(self.state_table())
            .key("pk", s(format!("PROJ#JOB#{job_id}")))
            .key("sk", s("PROJ"))
            .update_expression("SET cap_at = :until")
            .condition_expression("version = :version AND attribute_exists(cap_at)")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":version", n(version))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(error) => Err(backend(self.state_table(), error)),
        }
    }

    /// One consistent `GetItem` of the job's projection.
    async fn cap_reading(
        &self,
        job_id: &str,
        at: i64,
    ) -> Result<Option<crate::core::caps::CapReading>, StoreError> {
        let pk = format!("PROJ#JOB#{job_id}");
        let Some(item) = self.get(&pk, "PROJ").await? else {
            return Ok(None);
        };
        let stored = projection_of(&pk, Some(item))?;
        let cap_usd = match (stored.cap.usd, stored.cap.error) {
            (Some(usd), _) => Some(Ok(usd)),
            (None, Some(error)) => Some(Err(error)),
            (None, None) => None,
        };
        Ok(Some(crate::core::caps::CapReading {
            job_id: job_id.to_owned(),
            cap_usd,
            cost_usd: crate::core::caps::cost_at(&stored.projection, at),
            running: crate::core::caps::is_running(&stored.projection),
            version: stored.version,
        }))
    }

    /// The jobs' projection items, read `BATCH_GET_LIMIT` a call (consistently).
    async fn job_readings(
        &self,
        job_ids: &[String],
    ) -> Result<BTreeMap<String, crate::ports::JobReading>, StoreError> {
        let keys: Vec<(String, &str)> = job_ids
            .iter()
            .map(|job| (format!("PROJ#JOB#{job}"), "PROJ"))
            .collect();
        let mut burns = BTreeMap::new();
        for item in self.items(&keys).await? {
            let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()).cloned() else {
                continue;
            };
            let Some(job) = pk.strip_prefix("PROJ#JOB#") else {
                continue;
            };
            let stored = projection_of(&pk, Some(item.clone()))?;
            burns.insert(
                job.to_owned(),
                crate::ports::JobReading {
                    burn_usd_per_hour: crate::core::caps::burn_usd_per_hour(&stored.projection),
                    compute_environment: stored.compute_environment,
                },
            );
        }
        Ok(burns)
    }
}

impl crate::ports::Projector for DynamoProjector {
    async fn project(&self, fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        DynamoProjector::project(self, fact)
            .await
            .map(|projected| projected.settled)
    }
}

impl crate::ports::SilentJobs for DynamoProjector {
    async fn silent_jobs(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SilentJob>, StoreError> {
        DynamoProjector::silent_jobs(self, before_ms, limit).await
    }

    /// One conditional `UpdateItem` per job (1 write unit): moves the job's place in the open
    /// index to `now_ms`; a job no longer open (or heard from later) is left alone.
    async fn heard_from(&self, job_ids: &[String], now_ms: i64) -> Result<(), StoreError> {
        for job in job_ids {
            let updated = self
                .client()
                .update_item()
                .table_name(self.state_table())
                .key("pk", s(format!("PROJ#JOB#{job}")))
                .key("sk", s("PROJ"))
                .update_expression("SET last_event_ms = :now")
                .condition_expression("attribute_exists(open_shard) AND last_event_ms < :now")
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await;
            match updated {
                Ok(_) => {}
                Err(SdkError::ServiceError(error))
                    if error.err().is_conditional_check_failed_exception() => {}
                Err(error) => return Err(backend(self.state_table(), error)),
            }
        }
        Ok(())
    }
}
