//! In-memory projections: one [`Ledger`] over every fact shown, standing in for the DynamoDB
//! projector wherever a service needs projections — the collector (a job's cost when it
//! settles), the ticker (scopes, their sums and recent starts) and the silent-job check (jobs
//! still running that have been quiet). And [`NoProjection`], for stores that keep none.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rust_decimal::Decimal;

use crate::core::activity::SettledJob;
use crate::core::budget::BudgetPeriod;
use crate::core::caps::{
    CapReading, burn_usd_per_hour, cap_reached_at, cost_at, is_running, job_cap,
};
use crate::core::facts::{Fact, FactBody};
use crate::core::ledger::Ledger;
use crate::core::prices::PriceTable;
use crate::core::projection::GroupProjection;
use crate::core::scope::Scope;
use crate::core::sums::ScopeTotals;
use crate::ports::{
    DueCap, JobProjections, JobReading, Projector, SilentJob, SilentJobs, SpendReader, StoreError,
};

/// For stores that keep no projections (SQLite: `status` folds the log).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProjection;

impl Projector for NoProjection {
    async fn project(&self, _fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        Ok(None)
    }
}

#[derive(Debug)]
struct Inner {
    ledger: Ledger,
    facts: Vec<Fact>,
    /// Per job: when it was last heard from — the latest instant any of its facts (or its
    /// tasks') names, or a later answer from AWS Batch — Unix milliseconds.
    last_event_ms: HashMap<String, i64>,
    /// Capped jobs taken out of the search: until when, at which version (the number of
    /// facts shown: any fact puts them back).
    deferred: HashMap<String, (u64, i64)>,
}

impl Inner {
    fn version(&self) -> u64 {
        u64::try_from(self.facts.len()).unwrap_or(u64::MAX)
    }
}

/// Folds every fact it is shown into one ledger.
#[derive(Debug)]
pub struct MemoryProjector {
    inner: Mutex<Inner>,
}

impl MemoryProjector {
    pub fn new(prices: PriceTable, period: BudgetPeriod) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ledger: Ledger::new(prices, period),
                facts: Vec::new(),
                last_event_ms: HashMap::new(),
                deferred: HashMap::new(),
            }),
        }
    }

    /// As [`MemoryProjector::new`], summing each job under every budget of `book` it counts
    /// in (`Ledger::with_budgets`), as the DynamoDB projector does with the applied budgets.
    pub fn with_budgets(
        prices: PriceTable,
        period: BudgetPeriod,
        book: std::sync::Arc<crate::core::budgets::BudgetBook>,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ledger: Ledger::new(prices, period).with_budgets(book),
                facts: Vec::new(),
                last_event_ms: HashMap::new(),
                deferred: HashMap::new(),
            }),
        }
    }

    /// Projections over a ledger folded already (the command line's, from a store): its
    /// jobs' caps and burn rates.
    pub fn from_ledger(ledger: Ledger) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ledger,
                facts: Vec::new(),
                last_event_ms: HashMap::new(),
                deferred: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on the ledger as it stands.
    pub fn with_ledger<T>(&self, read: impl FnOnce(&Ledger) -> T) -> T {
        read(&self.lock().ledger)
    }
}

impl Projector for MemoryProjector {
    async fn project(&self, fact: &Fact) -> Result<Option<SettledJob>, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.ledger.apply(fact);
        inner.facts.push(fact.clone());
        // The job a fact belongs to: its own, or the one whose attempt claims the task.
        let job_id = match &fact.body {
            FactBody::Job(job) => Some(job.job_id.clone()),
            FactBody::Abandoned(abandoned) => Some(abandoned.job_id.clone()),
            FactBody::Task(task) => inner.ledger.job_of_task(&task.task_arn).map(str::to_owned),
            FactBody::Instance(_) | FactBody::Enforcement(_) => None,
        };
        let Some(job_id) = job_id else {
            return Ok(None);
        };
        if let Some(latest) = fact.latest_instant() {
            let held = inner
                .last_event_ms
                .entry(job_id.clone())
                .or_insert(latest.0);
            *held = (*held).max(latest.0);
        }
        Ok(SettledJob::of(&inner.ledger, inner.facts.iter(), &job_id))
    }
}

impl SpendReader for MemoryProjector {
    async fn scopes(&self) -> Result<Vec<Scope>, StoreError> {
        Ok(self.lock().ledger.scopes().cloned().collect())
    }

    async fn scopes_totals(
        &self,
        scopes: &[Scope],
    ) -> Result<BTreeMap<Scope, ScopeTotals>, StoreError> {
        let inner = self.lock();
        Ok(scopes
            .iter()
            .map(|scope| {
                let totals = inner.ledger.scope_totals(scope).cloned();
                (scope.clone(), totals.unwrap_or_default())
            })
            .collect())
    }

    async fn recent_starts(&self, at: i64) -> Result<Vec<(Scope, i64, Decimal)>, StoreError> {
        let inner = self.lock();
        let projection = GroupProjection::of(&inner.ledger);
        let mut starts: Vec<(Scope, i64, Decimal)> = projection
            .recent_starts(at)
            .map(|(scope, anchor, rate)| (scope.clone(), anchor, rate))
            .collect();
        starts.sort();
        Ok(starts)
    }
}

impl SilentJobs for MemoryProjector {
    async fn silent_jobs(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SilentJob>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .ledger
            .running_jobs()
            .into_iter()
            .filter_map(|job| {
                let &heard_ms = inner.last_event_ms.get(job)?;
                (heard_ms < before_ms).then(|| SilentJob {
                    job_id: job.to_owned(),
                    heard_ms,
                })
            })
            .take(limit)
            .collect())
    }

    async fn heard_from(&self, job_ids: &[String], now_ms: i64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for job in job_ids {
            if let Some(last) = inner.last_event_ms.get_mut(job) {
                *last = (*last).max(now_ms);
            }
        }
        Ok(())
    }
}

impl JobProjections for MemoryProjector {
    async fn due_caps(&self, at: i64, limit: usize) -> Result<Vec<DueCap>, StoreError> {
        let inner = self.lock();
        let mut due: Vec<DueCap> = inner
            .ledger
            .running_jobs()
            .into_iter()
            .filter_map(|job| {
                let Some(Ok(cap)) = job_cap(inner.ledger.job_tags(job)) else {
                    return None;
                };
                let reached_at = cap_reached_at(&GroupProjection::of_job(&inner.ledger, job), cap)?;
                let reached_at = match inner.deferred.get(job) {
                    Some(&(version, until)) if version == inner.version() => reached_at.max(until),
                    _ => reached_at,
                };
                (reached_at <= at).then(|| DueCap {
                    job_id: job.to_owned(),
                    reached_at,
                })
            })
            .collect();
        due.sort_by_key(|cap| cap.reached_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn cap_reading(&self, job_id: &str, at: i64) -> Result<Option<CapReading>, StoreError> {
        let inner = self.lock();
        let projection = GroupProjection::of_job(&inner.ledger, job_id);
        let cap_usd = job_cap(inner.ledger.job_tags(job_id));
        if projection.units.is_empty() && cap_usd.is_none() {
            return Ok(None);
        }
        Ok(Some(CapReading {
            job_id: job_id.to_owned(),
            cap_usd,
            cost_usd: cost_at(&projection, at),
            running: is_running(&projection),
            version: inner.version(),
        }))
    }

    async fn defer_cap(&self, job_id: &str, version: u64, until: i64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if version != inner.version() {
            return Ok(false);
        }
        inner.deferred.insert(job_id.to_owned(), (version, until));
        Ok(true)
    }

    async fn job_readings(
        &self,
        job_ids: &[String],
    ) -> Result<BTreeMap<String, JobReading>, StoreError> {
        let inner = self.lock();
        Ok(job_ids
            .iter()
            .map(|job| (job, GroupProjection::of_job(&inner.ledger, job)))
            .filter(|(_, projection)| !projection.units.is_empty())
            .map(|(job, projection)| {
                let reading = JobReading {
                    burn_usd_per_hour: burn_usd_per_hour(&projection),
                    compute_environment: inner
                        .ledger
                        .job_compute_environment(job)
                        .map(str::to_owned),
                };
                (job.clone(), reading)
            })
            .collect())
    }
}
