//! The enforcer's check of what it is asked: a freeze, stop or restore is carried out only when
//! the ledger agrees (`core::enforcement::agrees`), read from the projections as the ticker
//! reads them (`app::ticker::assess`). An alarm or an invocation by hand is a signal anyone with
//! `cloudwatch:PutMetricData` or `lambda:InvokeFunction` in the account can send; the
//! projections are written only from AWS Batch's and ECS's own events.

use crate::app::ticker::{NoAwsBudget, TickerSettings, assess};
use crate::core::enforcement::{EnforcerRequest, agrees};
use crate::core::policy::Level;
use crate::ports::{BaselineStore, SpendReader, StoreError};

/// Where the enforcer reads the ledger: the projections, the budget and its policy, and (with
/// a budget kept in AWS Budgets) where the ticker keeps AWS's last reading and its marks.
#[derive(Clone, Debug)]
pub struct LedgerCheck<R, M = NoAwsBudget> {
    pub reader: R,
    pub settings: TickerSettings,
    pub baseline: Option<M>,
}

impl<R, M> LedgerCheck<R, M>
where
    R: SpendReader + Sync,
    M: BaselineStore + Sync,
{
    /// `Ok(Ok(()))` to go ahead, `Ok(Err(why))` to refuse; `Err` when the ledger cannot be
    /// read (the request is then neither done nor refused, and Lambda retries it). A notice is
    /// not checked (it changes nothing), so no read is made for it.
    pub async fn check(
        &self,
        request: &EnforcerRequest,
        at_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let checked = match request {
            EnforcerRequest::Enforce { level, .. } => *level >= Level::Freeze,
            EnforcerRequest::Restore { .. } => true,
        };
        if !checked {
            return Ok(Ok(()));
        }
        let at = at_ms.div_euclid(1000);
        let ledger = assess(&self.reader, &self.settings, self.baseline.as_ref(), at).await?;
        Ok(agrees(
            request,
            ledger.as_ref().map(|(_, decision)| decision),
        ))
    }
}
