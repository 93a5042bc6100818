//! Each tick, the running jobs whose own cost reached their `batchguard:max-usd` cap
//! (`core::caps`), found in the projections' caps index and sent to the enforcer as one
//! `{"action": "caps", "jobs": [...]}` request. The index holds only running capped jobs, by
//! the second their cost reaches the cap, so the search reads the jobs past it and nothing
//! else, whatever the history.

use serde::Serialize;

use crate::core::caps::CapOrder;
use crate::core::enforcement::EnforcerRequest;
use crate::ports::{ControlError, EnforcerTrigger, JobProjections, StoreError};

/// Capped jobs sent to the enforcer a tick at most; the rest go on the next ticks (the
/// earliest of each shard of the index first).
pub const MAX_CAPS_A_TICK: usize = 100;

/// What one search found and sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CapCheck {
    /// The jobs past their cap, sent to the enforcer.
    pub sent: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CapCheckError {
    #[error("reading the capped jobs: {0}")]
    Store(#[from] StoreError),
    #[error("asking the enforcer to stop the capped jobs: {0}")]
    Trigger(#[from] ControlError),
}

/// Finds the capped jobs past their cap at Unix milliseconds `now_ms` and, if any, sends them
/// to the enforcer, which reads each one's projection again before it acts.
pub async fn check(
    caps: &(impl JobProjections + Sync),
    trigger: &(impl EnforcerTrigger + Sync),
    now_ms: i64,
) -> Result<CapCheck, CapCheckError> {
    let due = caps
        .due_caps(now_ms.div_euclid(1000), MAX_CAPS_A_TICK)
        .await?;
    if due.is_empty() {
        return Ok(CapCheck::default());
    }
    let jobs: Vec<CapOrder> = due
        .into_iter()
        .map(|cap| CapOrder { job_id: cap.job_id })
        .collect();
    let sent = jobs.iter().map(|job| job.job_id.clone()).collect();
    trigger.trigger(&EnforcerRequest::Caps { jobs }).await?;
    Ok(CapCheck { sent })
}
