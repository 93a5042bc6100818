//! The ledger the budgets' enforcement tests share (`safe_admission.rs`, `arrivals.rs`): one
//! running genomics job on in-memory projections, the enforcer's check of it, and the worst
//! case of a Fargate job at AWS's published prices.

use std::sync::Arc;

use rust_decimal::Decimal;
use shared::adapters::memory::MemoryProjector;
use shared::app::enforcer::EnforcerSettings;
use shared::app::ticker::{MAX_SCOPES_READ, NoAwsBudget, TickerSettings};
use shared::app::verify::LedgerCheck;
use shared::core::budget::BudgetPeriod;
use shared::core::budgets::BudgetBook;
use shared::core::facts::{FactBody, JobStatus};
use shared::core::policy::BudgetPolicy;
use shared::core::prices::PriceTable;
use shared::ports::Projector;

use crate::{IndependentPrices, at, attempt, fact, job};

pub const HOUR: u32 = 3600;

/// The projections: one running genomics job of 1 vCPU / 2 GiB on Fargate, started at `T0`
/// with a ten-hour timeout, so genomics has committed its whole worst case.
pub async fn projections(book: &BudgetBook) -> MemoryProjector {
    let projector = MemoryProjector::with_budgets(
        PriceTable::builtin(),
        BudgetPeriod::Month,
        Arc::new(book.clone()),
    );
    let mut running = job(
        "g-run",
        JobStatus::Running,
        vec![attempt(0, None, Some(at(0)), None)],
    );
    running.timeout_seconds = Some(10 * HOUR);
    running.tags.insert("team".into(), "genomics".into());
    projector
        .project(&fact("g-run", FactBody::Job(running)))
        .await
        .unwrap_or_else(|e| panic!("projecting the running job: {e}"));
    projector
}

/// The enforcer's check on `projector`, monthly, without a template budget.
pub fn check(projector: &MemoryProjector) -> LedgerCheck<&MemoryProjector> {
    LedgerCheck {
        reader: projector,
        settings: TickerSettings {
            budget: None,
            policy: BudgetPolicy::default(),
            period: BudgetPeriod::Month,
            scope_queues: vec![],
            max_scopes_read: MAX_SCOPES_READ,
            budgets: Default::default(),
        },
        baseline: None::<NoAwsBudget>,
    }
}

/// Every queue, monthly, in a dry run or not.
pub fn settings(dry_run: bool) -> EnforcerSettings {
    EnforcerSettings {
        queues: vec![],
        dry_run,
        period: BudgetPeriod::Month,
    }
}

/// The worst case of a 1 vCPU / 2 GiB Fargate job with `timeout` hours, at AWS's published
/// us-east-1 prices (written out in `IndependentPrices`), with the stop's 30 s.
pub fn worst(timeout_hours: u32) -> Decimal {
    let prices = IndependentPrices::default();
    let rate = prices.x86_vcpu_hour + Decimal::TWO * prices.x86_gb_hour;
    rate * Decimal::from(timeout_hours * HOUR + 30) / Decimal::from(HOUR)
}
