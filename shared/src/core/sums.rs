//! Running sums of one scope, and the spend they answer with.
//!
//! The in-memory ledger keeps one [`ScopeTotals`] per scope; the DynamoDB projector (ADR 0004)
//! keeps them in shard items and adds deltas built with the same [`ScopeTotals::account`].
//! Counts are signed so a delta (old units removed, new units added) is a `ScopeTotals` too.
//!
//! Spend at whole second `at`: `closed + Σ rate × (at − anchor)` over running units, which is
//! `Σ rate × (at − bucket start) − Σ rate × (anchor − bucket start)` per bucket of units that
//! started in the same budget period, plus the one-minute minimum for units started in the
//! last 60 s (given by the caller, who knows them).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::billing::{self, Billing, MINIMUM_BILLED_SECONDS};
use super::budget::BudgetPeriod;
use super::facts::TaskSize;
use super::scope::ScopeSpend;

/// Adding or taking away a unit's contribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    Add,
    Remove,
}

impl Sign {
    fn apply(self, held: Decimal, delta: Decimal) -> Decimal {
        match self {
            Self::Add => held + delta,
            Self::Remove => held - delta,
        }
    }

    fn count(self, held: i64) -> i64 {
        match self {
            Self::Add => held + 1,
            Self::Remove => held - 1,
        }
    }
}

/// What one unit (an attempt or a task) contributes to each scope it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitBilling {
    pub billing: Billing,
    pub size: TaskSize,
    pub estimated: bool,
    pub unpriced: bool,
    /// The last second it may be billed for, when its job has a timeout
    /// (`billing::deadline`): what it still runs until then is committed spend.
    pub deadline: Option<i64>,
}

/// A unit's contribution worked out once for all its scopes.
#[derive(Clone, Debug)]
pub struct Accounting<'a> {
    unit: &'a UnitBilling,
    running_period_start: i64,
    closed_parts: Vec<(i64, Decimal)>,
}

impl<'a> Accounting<'a> {
    pub fn of(unit: &'a UnitBilling, period: BudgetPeriod) -> Self {
        let running_period_start = match unit.billing {
            Billing::Running { anchor, .. } => period.bounds(anchor).0,
            _ => 0,
        };
        let closed_parts = match unit.billing {
            Billing::Closed {
                anchor,
                billed_seconds,
                hourly_rate,
                ..
            } => split_by_period(period, anchor, anchor + billed_seconds)
                .into_iter()
                .map(|(start, seconds)| (start, hourly_rate * Decimal::from(seconds)))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            unit,
            running_period_start,
            closed_parts,
        }
    }
}

/// One unit's [`Accounting`] by every period its scopes are bucketed by: the stack's worked
/// out at once, another (a budget's own, `Scope::period`: at most two) when first asked for.
#[derive(Clone, Debug)]
pub struct Accountings<'a> {
    unit: &'a UnitBilling,
    stack: (BudgetPeriod, Accounting<'a>),
    others: Vec<(BudgetPeriod, Accounting<'a>)>,
}

impl<'a> Accountings<'a> {
    pub fn of(unit: &'a UnitBilling, stack: BudgetPeriod) -> Self {
        Self {
            unit,
            stack: (stack, Accounting::of(unit, stack)),
            others: Vec::new(),
        }
    }

    /// The unit's accounting in buckets of `period`.
    pub fn by(&mut self, period: BudgetPeriod) -> &Accounting<'a> {
        if period == self.stack.0 {
            return &self.stack.1;
        }
        let at = match self.others.iter().position(|(p, _)| *p == period) {
            Some(at) => at,
            None => {
                self.others
                    .push((period, Accounting::of(self.unit, period)));
                self.others.len() - 1
            }
        };
        &self.others[at].1
    }
}

/// Running units that started in one budget period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunningBucket {
    pub units: i64,
    pub sum_rate: Decimal,
    /// Σ rate × (anchor − bucket period start): offsets from the period start stay small, so
    /// the products keep all their digits.
    pub sum_rate_offset: Decimal,
    /// Of those units, the ones with a deadline (their job has a timeout)…
    pub timed_units: i64,
    /// … Σ of their rates …
    pub timed_rate: Decimal,
    /// … and Σ rate × (deadline − bucket period start): what they may still cost at `at` is
    /// `timed_rate_offset − timed_rate × (at − start)`.
    pub timed_rate_offset: Decimal,
}

impl RunningBucket {
    fn is_empty(&self) -> bool {
        self.units == 0
            && self.sum_rate.is_zero()
            && self.sum_rate_offset.is_zero()
            && self.timed_units == 0
            && self.timed_rate.is_zero()
            && self.timed_rate_offset.is_zero()
    }
}

/// The sums of one scope. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeTotals {
    pub units: i64,
    pub unpriced_units: i64,
    pub estimated_units: i64,
    /// Cost numerators (`hourly rate × seconds`) of stopped units, all time.
    pub closed_total: Decimal,
    /// The same, split by the budget period (start, Unix seconds) the seconds fell in.
    pub closed_by_period: BTreeMap<i64, Decimal>,
    pub running_by_period: BTreeMap<i64, RunningBucket>,
    pub running_vcpu: Decimal,
    pub running_memory_gib: Decimal,
}

impl ScopeTotals {
    /// Adds or removes one unit's contribution.
    pub fn account(&mut self, accounting: &Accounting<'_>, sign: Sign) {
        let unit = accounting.unit;
        self.units = sign.count(self.units);
        if unit.unpriced {
            self.unpriced_units = sign.count(self.unpriced_units);
        }
        if unit.estimated {
            self.estimated_units = sign.count(self.estimated_units);
        }
        match unit.billing {
            Billing::NotStarted => {}
            Billing::Running {
                anchor,
                hourly_rate,
            } => {
                let start = accounting.running_period_start;
                let bucket = self.running_by_period.entry(start).or_default();
                bucket.units = sign.count(bucket.units);
                bucket.sum_rate = sign.apply(bucket.sum_rate, hourly_rate);
                bucket.sum_rate_offset = sign.apply(
                    bucket.sum_rate_offset,
                    hourly_rate * Decimal::from(anchor - start),
                );
                if let Some(deadline) = unit.deadline {
                    bucket.timed_units = sign.count(bucket.timed_units);
                    bucket.timed_rate = sign.apply(bucket.timed_rate, hourly_rate);
                    bucket.timed_rate_offset = sign.apply(
                        bucket.timed_rate_offset,
                        hourly_rate * Decimal::from(deadline - start),
                    );
                }
                if bucket.is_empty() {
                    self.running_by_period.remove(&start);
                }
                self.running_vcpu = sign.apply(self.running_vcpu, unit.size.vcpu);
                self.running_memory_gib = sign.apply(self.running_memory_gib, unit.size.memory_gib);
            }
            Billing::Closed {
                billed_seconds,
                hourly_rate,
                ..
            } => {
                self.closed_total = sign.apply(
                    self.closed_total,
                    hourly_rate * Decimal::from(billed_seconds),
                );
                for &(start, part) in &accounting.closed_parts {
                    let slot = self.closed_by_period.entry(start).or_default();
                    *slot = sign.apply(*slot, part);
                    if slot.is_zero() {
                        self.closed_by_period.remove(&start);
                    }
                }
            }
        }
    }

    /// Adds another set of sums (a shard, or a delta).
    pub fn merge(&mut self, other: &Self) {
        self.units += other.units;
        self.unpriced_units += other.unpriced_units;
        self.estimated_units += other.estimated_units;
        self.closed_total += other.closed_total;
        for (&start, &part) in &other.closed_by_period {
            *self.closed_by_period.entry(start).or_default() += part;
        }
        for (&start, bucket) in &other.running_by_period {
            let held = self.running_by_period.entry(start).or_default();
            held.units += bucket.units;
            held.sum_rate += bucket.sum_rate;
            held.sum_rate_offset += bucket.sum_rate_offset;
            held.timed_units += bucket.timed_units;
            held.timed_rate += bucket.timed_rate;
            held.timed_rate_offset += bucket.timed_rate_offset;
        }
        self.running_vcpu += other.running_vcpu;
        self.running_memory_gib += other.running_memory_gib;
    }

    /// Spend at whole second `at` (at or after every start and stop the sums hold).
    /// `recent` lists the running units started in the last 60 s as (anchor, hourly rate).
    pub fn spend_at(
        &self,
        at: i64,
        period: BudgetPeriod,
        recent: impl IntoIterator<Item = (i64, Decimal)>,
    ) -> ScopeSpend {
        let (period_start, _) = period.bounds(at);
        let mut all_time = self.closed_total;
        let mut in_period = self
            .closed_by_period
            .get(&period_start)
            .copied()
            .unwrap_or_default();
        let mut burn = Decimal::ZERO;
        let mut running_units = 0;
        let mut timed_units = 0;
        let mut remaining = Decimal::ZERO;
        for (&bucket_start, bucket) in &self.running_by_period {
            remaining +=
                bucket.timed_rate_offset - bucket.timed_rate * Decimal::from(at - bucket_start);
            timed_units += bucket.timed_units;
            let linear =
                bucket.sum_rate * Decimal::from(at - bucket_start) - bucket.sum_rate_offset;
            all_time += linear;
            in_period += if bucket_start >= period_start {
                linear
            } else {
                bucket.sum_rate * Decimal::from(at - period_start)
            };
            burn += bucket.sum_rate;
            running_units += bucket.units;
        }
        // The linear sum counted (at − anchor) seconds for a unit started less than a minute
        // ago; the rule says 60.
        for (anchor, rate) in recent {
            let missing = MINIMUM_BILLED_SECONDS - (at - anchor);
            if missing > 0 {
                let correction = rate * Decimal::from(missing);
                all_time += correction;
                in_period += correction;
            }
        }
        ScopeSpend {
            spend_usd: billing::usd(all_time),
            period_spend_usd: billing::usd(in_period),
            committed_usd: committed(in_period, remaining),
            open_ended_tasks: u64::try_from(running_units - timed_units).unwrap_or(0),
            burn_rate_usd_per_hour: burn,
            running_tasks: u64::try_from(running_units).unwrap_or(0),
            running_vcpu: self.running_vcpu,
            running_memory_gib: self.running_memory_gib,
            unpriced_tasks: u64::try_from(self.unpriced_units).unwrap_or(0),
            estimated_tasks: u64::try_from(self.estimated_units).unwrap_or(0),
        }
    }
}

/// Committed spend in USD: the period's spend numerator and what the running units with a
/// deadline may still cost (`Σ rate × (deadline − at)`), never less than the spend. A unit past
/// its deadline but not yet seen stopped gives back what it ran over, so the sum is linear and
/// the same from the running sums as from a walk of the units; the floor keeps it at least
/// the spend.
pub fn committed(in_period_numerator: Decimal, remaining_numerator: Decimal) -> Decimal {
    billing::usd(in_period_numerator + remaining_numerator.max(Decimal::ZERO))
}

/// Splits `[from, to)` (whole seconds) into the budget periods it touches.
pub fn split_by_period(period: BudgetPeriod, from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut parts = Vec::with_capacity(1);
    let mut cursor = from;
    while cursor < to {
        let (start, end) = period.bounds(cursor);
        let upto = end.min(to);
        if upto <= cursor {
            break; // unreachable for valid bounds; guards against an endless loop
        }
        parts.push((start, upto - cursor));
        cursor = upto;
    }
    parts
}
