//! A billing group's projection: its units as the fold leaves them, and the per-scope delta
//! between two projections. The DynamoDB projector (ADR 0004) stores a group's projection with
//! a version and adds the delta of each change to the scopes' sharded sums; since every change
//! goes through [`GroupProjection::delta_to`], the sums always equal Σ over the stored
//! projections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::billing::{Billing, MINIMUM_BILLED_SECONDS};
use super::budget::BudgetPeriod;
use super::facts::TaskSize;
use super::ledger::Ledger;
use super::scope::Scope;
use super::sums::{Accountings, ScopeTotals, Sign, UnitBilling};

/// One unit of a group and the scopes it counts in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectedUnit {
    pub scopes: Vec<Scope>,
    pub billing: Billing,
    pub size: TaskSize,
    pub estimated: bool,
    pub unpriced: bool,
    /// The last second it may be billed for (its job's timeout), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
}

impl ProjectedUnit {
    fn unit_billing(&self) -> UnitBilling {
        UnitBilling {
            billing: self.billing.clone(),
            size: self.size,
            estimated: self.estimated,
            unpriced: self.unpriced,
            deadline: self.deadline,
        }
    }
}

/// The units of one billing group (a job and its tasks, or an unclaimed task), in a
/// canonical order so equal groups compare and serialise equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProjection {
    pub units: Vec<ProjectedUnit>,
}

impl GroupProjection {
    /// The projection of everything a ledger holds (fold the group's facts into a ledger of
    /// their own first).
    pub fn of(ledger: &Ledger) -> Self {
        Self::from_units(ledger.units())
    }

    /// As [`GroupProjection::of`], leaving out EC2 instances' own bills: a job's group reads
    /// its instances' facts only to price its share.
    pub fn without_instances(ledger: &Ledger) -> Self {
        Self::from_units(ledger.units_without_instances())
    }

    /// The units of one job's own attempts in a ledger that may hold others too (the
    /// in-memory projector's one ledger).
    pub fn of_job(ledger: &Ledger, job_id: &str) -> Self {
        Self::from_units(ledger.job_units(job_id))
    }

    fn from_units<'a>(units: impl Iterator<Item = (Vec<Scope>, &'a UnitBilling)>) -> Self {
        let mut units: Vec<ProjectedUnit> = units
            .map(|(scopes, unit)| ProjectedUnit {
                scopes,
                billing: unit.billing.clone(),
                size: unit.size,
                estimated: unit.estimated,
                unpriced: unit.unpriced,
                deadline: unit.deadline,
            })
            .collect();
        units.sort_by(|a, b| {
            (&a.scopes, &a.billing, a.estimated, a.unpriced)
                .cmp(&(&b.scopes, &b.billing, b.estimated, b.unpriced))
                .then_with(|| a.size.cmp(&b.size))
                .then_with(|| a.deadline.cmp(&b.deadline))
        });
        Self { units }
    }

    /// What moving from `self` to `next` adds to each scope's sums (signed). Each scope's
    /// buckets are those of its own period ([`Scope::period`]; `period` is the stack's). A
    /// scope's period is part of the scope, so a unit is taken out of the buckets it was put in.
    pub fn delta_to(&self, next: &Self, period: BudgetPeriod) -> BTreeMap<Scope, ScopeTotals> {
        let mut delta: BTreeMap<Scope, ScopeTotals> = BTreeMap::new();
        for (units, sign) in [(&self.units, Sign::Remove), (&next.units, Sign::Add)] {
            for unit in units {
                let billing = unit.unit_billing();
                let mut accountings = Accountings::of(&billing, period);
                for scope in &unit.scopes {
                    let accounting = accountings.by(scope.period(period));
                    delta
                        .entry(scope.clone())
                        .or_default()
                        .account(accounting, sign);
                }
            }
        }
        delta.retain(|_, totals| *totals != ScopeTotals::default());
        delta
    }

    /// Running units started less than a minute before `at`, as (scope, anchor, hourly rate):
    /// the one-minute-minimum correction a reader of the sums adds.
    pub fn recent_starts(
        &self,
        at: i64,
    ) -> impl Iterator<Item = (&Scope, i64, rust_decimal::Decimal)> {
        self.units.iter().flat_map(move |unit| {
            let recent = match unit.billing {
                Billing::Running {
                    anchor,
                    hourly_rate,
                } if anchor <= at && at - anchor < MINIMUM_BILLED_SECONDS => {
                    Some((anchor, hourly_rate))
                }
                _ => None,
            };
            recent.into_iter().flat_map(move |(anchor, rate)| {
                unit.scopes.iter().map(move |scope| (scope, anchor, rate))
            })
        })
    }
}
