//! The scopes the ledger sums over, interned to small ids, each with its running sums.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use super::entities::{UnitId, index_u32};
use crate::core::budget::BudgetPeriod;
use crate::core::scope::Scope;
use crate::core::sums::ScopeTotals;

pub(super) type ScopeId = u32;

/// Running sums for one scope; see the module docs.
#[derive(Clone, Debug, Default)]
pub(super) struct ScopeSums {
    pub(super) totals: ScopeTotals,
    /// Running units by anchor, to apply the one-minute minimum to recent starts.
    pub(super) running_by_anchor: BTreeMap<(i64, UnitId), Decimal>,
}

/// Scopes by id, with lookups by borrowed names so interning a known scope allocates nothing.
#[derive(Clone, Debug, Default)]
pub(super) struct ScopeTable {
    pub(super) sums: Vec<ScopeSums>,
    pub(super) names: Vec<Scope>,
    pub(super) index: FxHashMap<Scope, ScopeId>,
    pub(super) queues: FxHashMap<String, ScopeId>,
    pub(super) compute_environments: FxHashMap<String, ScopeId>,
    pub(super) job_definitions: FxHashMap<String, ScopeId>,
    pub(super) tags: FxHashMap<String, FxHashMap<String, ScopeId>>,
    pub(super) budgets: FxHashMap<String, ScopeId>,
}

/// A scope named by borrowed strings, as a unit's input states it.
#[derive(Clone, Copy, Debug)]
pub(super) enum ScopeKey<'a> {
    Total,
    Queue(&'a str),
    ComputeEnvironment(&'a str),
    JobDefinition(&'a str),
    Tag(&'a str, &'a str),
    /// A budget, with its period when it is not the stack's ([`Scope::PeriodBudget`]).
    Budget(&'a str, Option<BudgetPeriod>),
}

impl ScopeTable {
    pub(super) fn intern(&mut self, key: ScopeKey<'_>) -> ScopeId {
        let known = match key {
            ScopeKey::Total => self.index.get(&Scope::Total).copied(),
            ScopeKey::Queue(name) => self.queues.get(name).copied(),
            ScopeKey::ComputeEnvironment(name) => self.compute_environments.get(name).copied(),
            ScopeKey::JobDefinition(name) => self.job_definitions.get(name).copied(),
            ScopeKey::Tag(k, v) => self.tags.get(k).and_then(|values| values.get(v)).copied(),
            ScopeKey::Budget(name, None) => self.budgets.get(name).copied(),
            ScopeKey::Budget(name, Some(period)) => self
                .index
                .get(&Scope::PeriodBudget(name.into(), period))
                .copied(),
        };
        if let Some(id) = known {
            return id;
        }
        let id = index_u32(self.sums.len());
        let scope = match key {
            ScopeKey::Total => Scope::Total,
            ScopeKey::Queue(name) => {
                self.queues.insert(name.to_owned(), id);
                Scope::Queue(name.into())
            }
            ScopeKey::ComputeEnvironment(name) => {
                self.compute_environments.insert(name.to_owned(), id);
                Scope::ComputeEnvironment(name.into())
            }
            ScopeKey::JobDefinition(name) => {
                self.job_definitions.insert(name.to_owned(), id);
                Scope::JobDefinition(name.into())
            }
            ScopeKey::Tag(k, v) => {
                self.tags
                    .entry(k.to_owned())
                    .or_default()
                    .insert(v.to_owned(), id);
                Scope::Tag(k.into(), v.into())
            }
            ScopeKey::Budget(name, None) => {
                self.budgets.insert(name.to_owned(), id);
                Scope::Budget(name.into())
            }
            ScopeKey::Budget(name, Some(period)) => Scope::PeriodBudget(name.into(), period),
        };
        self.sums.push(ScopeSums::default());
        self.names.push(scope.clone());
        self.index.insert(scope, id);
        id
    }
}
