//! The ticker's spend marks and the AWS budget as last read, in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::core::budget::SpendMark;
use crate::ports::{BaselineStore, CachedBudget, StoreError};

#[derive(Debug, Default)]
struct Inner {
    /// (period start, tick second) → mark.
    marks: BTreeMap<(i64, i64), SpendMark>,
    budget: Option<CachedBudget>,
}

/// Keeps marks and the cached budget in memory (expiry is not modelled: nothing is read past
/// its period).
#[derive(Debug, Default)]
pub struct MemoryBaseline {
    inner: Mutex<Inner>,
}

impl MemoryBaseline {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BaselineStore for MemoryBaseline {
    async fn put_mark(
        &self,
        period_start: i64,
        mark: &SpendMark,
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        self.lock().marks.insert((period_start, mark.at), *mark);
        Ok(())
    }

    async fn mark_at_or_before(
        &self,
        period_start: i64,
        at: i64,
    ) -> Result<Option<SpendMark>, StoreError> {
        Ok(self
            .lock()
            .marks
            .range((period_start, i64::MIN)..=(period_start, at))
            .next_back()
            .map(|(_, mark)| *mark))
    }

    async fn cached_budget(&self) -> Result<Option<CachedBudget>, StoreError> {
        Ok(self.lock().budget)
    }

    async fn put_cached_budget(&self, cached: &CachedBudget) -> Result<(), StoreError> {
        self.lock().budget = Some(*cached);
        Ok(())
    }
}
