//! Budget periods and the exhaustion forecast.
//!
//! A budget is an amount of USD for a calendar period in UTC (a month by default, as AWS
//! Budgets uses). The forecast is linear in the current burn rate:
//! `exhaustion = at + (budget − spend) / burn_rate`, reported only when it falls inside the
//! period.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::billing::SECONDS_PER_HOUR;

/// The length of a budget period. Periods are calendar periods in UTC.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Day,
    /// ISO weeks, Monday 00:00 UTC to Monday.
    Week,
    #[default]
    Month,
}

impl BudgetPeriod {
    /// Its name as written in a budgets file: `day`, `week` or `month`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "day" | "daily" => Some(Self::Day),
            "week" | "weekly" => Some(Self::Week),
            "month" | "monthly" => Some(Self::Month),
            _ => None,
        }
    }

    /// The period `[start, end)` containing whole second `at`, in Unix seconds.
    pub fn bounds(self, at: i64) -> (i64, i64) {
        // Unix seconds outside chrono's range (±262,000 years) clamp to the epoch's period;
        // no event time is that far out, and the parser rejects such timestamps.
        let moment = DateTime::<Utc>::from_timestamp(at, 0).unwrap_or_default();
        let date = moment.date_naive();
        // Checked: at the end of chrono's calendar a period ends where it starts.
        let plus = |day: NaiveDate, days: i64| day.checked_add_signed(Duration::days(days));
        let (start, end) = match self {
            Self::Day => (date, plus(date, 1).unwrap_or(date)),
            Self::Week => {
                let back = i64::from(date.weekday().num_days_from_monday());
                let monday = plus(date, -back).unwrap_or(date);
                (monday, plus(monday, 7).unwrap_or(monday))
            }
            Self::Month => {
                let first = date.with_day(1).unwrap_or(date);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first);
                (first, next)
            }
        };
        (midnight(start), midnight(end))
    }
}

fn midnight(date: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .timestamp()
}

/// An amount to spend in each period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
}

/// When the budget runs out, as far as the current burn rate tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outlook", rename_all = "snake_case")]
pub enum Outlook {
    /// Spend has reached the budget.
    Exhausted,
    /// At this burn rate the budget runs out at this Unix second, inside the period.
    RunsOut { at: i64 },
    /// At this burn rate the period ends first.
    LastsThePeriod,
    /// Nothing is running: spend is not growing.
    NoBurn,
}

/// Budget figures for the period containing the evaluation instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetStatus {
    pub budget: Budget,
    pub period_start: i64,
    pub period_end: i64,
    pub spend_usd: Decimal,
    pub used_percent: Decimal,
    pub outlook: Outlook,
    /// Spend at the end of the period if everything running now keeps running.
    pub forecast_usd: Decimal,
}

impl BudgetStatus {
    /// `at` is a whole Unix second; `period_spend_usd` the spend inside the period so far;
    /// `burn_rate_usd_per_hour` the rate of everything running at `at`.
    pub fn evaluate(
        budget: Budget,
        at: i64,
        period_spend_usd: Decimal,
        burn_rate_usd_per_hour: Decimal,
    ) -> Self {
        let (period_start, period_end) = budget.period.bounds(at);
        // Checked throughout: figures at the edge of what a decimal holds saturate (a budget
        // of a trillionth used a trillion times over is simply far over) instead of panicking.
        let used_percent = if budget.amount_usd.is_zero() {
            if period_spend_usd.is_zero() {
                Decimal::ZERO
            } else {
                Decimal::ONE_HUNDRED
            }
        } else {
            period_spend_usd
                .checked_mul(Decimal::ONE_HUNDRED)
                .and_then(|hundredfold| hundredfold.checked_div(budget.amount_usd))
                .unwrap_or(Decimal::MAX)
        };
        let remaining = budget
            .amount_usd
            .checked_sub(period_spend_usd)
            .unwrap_or(Decimal::MIN);
        let outlook = if remaining <= Decimal::ZERO {
            Outlook::Exhausted
        } else if burn_rate_usd_per_hour <= Decimal::ZERO {
            Outlook::NoBurn
        } else {
            // Rounded down: a kill switch would rather be a second early than late.
            let seconds_left = remaining
                .checked_mul(Decimal::from(SECONDS_PER_HOUR))
                .and_then(|numerator| numerator.checked_div(burn_rate_usd_per_hour))
                .and_then(|seconds| seconds.floor().to_i64());
            match seconds_left.and_then(|left| at.checked_add(left)) {
                Some(when) if when < period_end => Outlook::RunsOut { at: when },
                _ => Outlook::LastsThePeriod,
            }
        };
        let forecast_usd = burn_rate_usd_per_hour
            .checked_mul(Decimal::from((period_end - at).max(0)))
            .and_then(|numerator| numerator.checked_div(Decimal::from(SECONDS_PER_HOUR)))
            .and_then(|accrual| period_spend_usd.checked_add(accrual))
            .unwrap_or(Decimal::MAX);
        Self {
            budget,
            period_start,
            period_end,
            spend_usd: period_spend_usd,
            used_percent,
            outlook,
            forecast_usd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn unix(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn month_bounds_cover_december_into_january() {
        assert_eq!(
            BudgetPeriod::Month.bounds(unix("2026-12-31T23:59:59Z")),
            (unix("2026-12-01T00:00:00Z"), unix("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn week_bounds_start_on_monday() {
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            BudgetPeriod::Week.bounds(unix("2026-11-24T10:00:00Z")),
            (unix("2026-11-23T00:00:00Z"), unix("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn forecast_is_linear_in_the_burn_rate() {
        let at = unix("2026-11-10T00:00:00Z");
        let budget = Budget {
            amount_usd: dec!(100),
            period: BudgetPeriod::Month,
        };
        let status = BudgetStatus::evaluate(budget, at, dec!(40), dec!(6));
        assert_eq!(status.used_percent, dec!(40));
        assert_eq!(status.outlook, Outlook::RunsOut { at: at + 10 * 3600 });
        // 21 days (504 h) left in November at $6/h on top of $40.
        assert_eq!(status.forecast_usd, dec!(40) + dec!(6) * dec!(504));
    }

    #[test]
    fn no_forecast_without_burn_or_past_the_period() {
        let at = unix("2026-11-29T00:00:00Z");
        let budget = Budget {
            amount_usd: dec!(100),
            period: BudgetPeriod::Month,
        };
        assert_eq!(
            BudgetStatus::evaluate(budget, at, dec!(40), dec!(0)).outlook,
            Outlook::NoBurn
        );
        assert_eq!(
            BudgetStatus::evaluate(budget, at, dec!(40), dec!(0.01)).outlook,
            Outlook::LastsThePeriod
        );
        assert_eq!(
            BudgetStatus::evaluate(budget, at, dec!(100), dec!(1)).outlook,
            Outlook::Exhausted
        );
    }
}

/// AWS's own figure for the budget (AWS Budgets' `CalculatedSpend.ActualSpend`): exact, but
/// hours late. batchguard's figure is this plus what the ledger saw accrue after `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub spend_usd: Decimal,
    /// When AWS last updated it (`LastUpdatedTime`), Unix seconds.
    pub as_of: i64,
}

/// What batchguard takes from a budget kept in AWS Budgets (`DescribeBudget`): its limit and
/// period, and AWS's own actual spend so far (the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsBudget {
    pub limit_usd: Decimal,
    pub period: BudgetPeriod,
    pub baseline: Baseline,
}

impl AwsBudget {
    pub fn budget(&self) -> Budget {
        Budget {
            amount_usd: self.limit_usd,
            period: self.period,
        }
    }
}

/// The budget scope's spend as the ledger knew it at one tick, kept so that a baseline AWS
/// dates later can be cut at its own instant (the running sums only answer "spend now").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendMark {
    /// Unix seconds.
    pub at: i64,
    /// Spend inside the budget period at `at`.
    pub period_spend_usd: Decimal,
    pub burn_rate_usd_per_hour: Decimal,
}

impl SpendMark {
    /// The spend at `t` (≥ `at`) had everything running at `at` kept running and nothing
    /// else started.
    pub fn extended_to(&self, t: i64) -> Decimal {
        let seconds = Decimal::from((t - self.at).max(0));
        self.period_spend_usd
            + self.burn_rate_usd_per_hour * seconds / Decimal::from(SECONDS_PER_HOUR)
    }
}

/// How the ledger's spend at the baseline's instant was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "cut", rename_all = "snake_case")]
pub enum Cut {
    /// From the whole ledger, each second on one side of the baseline's instant (the CLI).
    Exact,
    /// From the last tick at or before the baseline's instant, extended at its burn rate.
    Mark { at: i64 },
    /// No tick before the baseline's instant in this period (batchguard was not running then):
    /// all the ledger's spend in the period counts after the baseline. It can count twice
    /// what both saw, never miss anything.
    NoMark,
    /// AWS last updated the baseline before this period began: it is last period's figure,
    /// so the ledger's spend in the period is the whole figure.
    StaleBaseline,
}

/// The budget's spend: AWS's baseline plus what the ledger saw accrue after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fused {
    /// AWS's figure (zero when it belongs to an earlier period).
    pub baseline_usd: Decimal,
    pub baseline_as_of: i64,
    /// The ledger's spend in the period after the baseline's instant.
    pub ledger_after_usd: Decimal,
    /// `baseline_usd + ledger_after_usd`: what the budget is measured against.
    pub spend_usd: Decimal,
    #[serde(flatten)]
    pub cut: Cut,
}

impl Fused {
    /// Fuses `baseline` with the ledger's spend in the period now (`ledger_period_spend_usd`),
    /// given the latest mark at or before the baseline's instant in this period.
    ///
    /// The mark is extended at its burn rate to the baseline's instant and capped at the
    /// spend now: exact when nothing starts or stops between that tick and the baseline's
    /// instant, otherwise off by what did in under one tick.
    pub fn of(
        baseline: Baseline,
        mark: Option<SpendMark>,
        period_start: i64,
        ledger_period_spend_usd: Decimal,
    ) -> Self {
        let (baseline_usd, before, cut) = if baseline.as_of < period_start {
            (Decimal::ZERO, Decimal::ZERO, Cut::StaleBaseline)
        } else {
            match mark.filter(|m| m.at <= baseline.as_of && m.at >= period_start) {
                Some(mark) => (
                    baseline.spend_usd,
                    mark.extended_to(baseline.as_of)
                        .min(ledger_period_spend_usd),
                    Cut::Mark { at: mark.at },
                ),
                None => (baseline.spend_usd, Decimal::ZERO, Cut::NoMark),
            }
        };
        let ledger_after_usd = (ledger_period_spend_usd - before).max(Decimal::ZERO);
        Self::new(baseline_usd, baseline.as_of, ledger_after_usd, cut)
    }

    /// Fuses `baseline` with the whole ledger at hand: `spend_since(from)` is the ledger's
    /// spend from `from` to now, each second counted once. The same rule as [`Fused::of`] for
    /// a baseline of an earlier period.
    pub fn exact(
        baseline: Baseline,
        period_start: i64,
        spend_since: impl FnOnce(i64) -> Decimal,
    ) -> Self {
        if baseline.as_of < period_start {
            Self::new(
                Decimal::ZERO,
                baseline.as_of,
                spend_since(period_start),
                Cut::StaleBaseline,
            )
        } else {
            Self::new(
                baseline.spend_usd,
                baseline.as_of,
                spend_since(baseline.as_of),
                Cut::Exact,
            )
        }
    }

    fn new(
        baseline_usd: Decimal,
        baseline_as_of: i64,
        ledger_after_usd: Decimal,
        cut: Cut,
    ) -> Self {
        Self {
            baseline_usd,
            baseline_as_of,
            ledger_after_usd,
            spend_usd: baseline_usd + ledger_after_usd,
            cut,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fusion_tests {
    use super::*;
    use rust_decimal::dec;

    const START: i64 = 1_764_547_200; // 2025-12-01T00:00:00Z

    fn baseline(spend: Decimal, as_of: i64) -> Baseline {
        Baseline {
            spend_usd: spend,
            as_of,
        }
    }

    #[test]
    fn the_ledger_counts_from_the_baselines_instant() {
        // A tick 30 s before AWS's update saw $10 spent at $3.6/h; AWS says $12 then; the
        // ledger has $15 now. At AWS's instant the ledger had 10 + 3.6 × 30/3600 = 10.03.
        let mark = SpendMark {
            at: START + 3_570,
            period_spend_usd: dec!(10),
            burn_rate_usd_per_hour: dec!(3.6),
        };
        let fused = Fused::of(
            baseline(dec!(12), START + 3_600),
            Some(mark),
            START,
            dec!(15),
        );
        assert_eq!(fused.ledger_after_usd, dec!(4.97));
        assert_eq!(fused.spend_usd, dec!(16.97));
        assert_eq!(fused.cut, Cut::Mark { at: START + 3_570 });
    }

    #[test]
    fn the_extension_never_exceeds_the_spend_now() {
        let mark = SpendMark {
            at: START,
            period_spend_usd: dec!(1),
            burn_rate_usd_per_hour: dec!(100),
        };
        // Everything stopped right after the mark: the ledger has $1.5 now.
        let fused = Fused::of(
            baseline(dec!(2), START + 3_600),
            Some(mark),
            START,
            dec!(1.5),
        );
        assert_eq!(fused.ledger_after_usd, Decimal::ZERO);
        assert_eq!(fused.spend_usd, dec!(2));
    }

    #[test]
    fn without_a_mark_the_whole_period_counts() {
        let fused = Fused::of(baseline(dec!(5), START + 60), None, START, dec!(3));
        assert_eq!(fused.cut, Cut::NoMark);
        assert_eq!(fused.spend_usd, dec!(8));
        // A mark after the baseline's instant, or from another period, is no mark.
        let late = SpendMark {
            at: START + 120,
            period_spend_usd: dec!(1),
            burn_rate_usd_per_hour: dec!(0),
        };
        assert_eq!(
            Fused::of(baseline(dec!(5), START + 60), Some(late), START, dec!(3)).cut,
            Cut::NoMark
        );
    }

    #[test]
    fn with_the_whole_ledger_the_cut_is_exact_and_the_stale_rule_the_same() {
        let since = |from: i64| Decimal::from(START + 7_200 - from);
        let fused = Fused::exact(baseline(dec!(5), START + 3_600), START, since);
        assert_eq!(fused.cut, Cut::Exact);
        assert_eq!(fused.spend_usd, dec!(5) + Decimal::from(3_600));
        let stale = Fused::exact(baseline(dec!(900), START - 3_600), START, since);
        assert_eq!(stale.cut, Cut::StaleBaseline);
        assert_eq!(stale.spend_usd, Decimal::from(7_200));
    }

    #[test]
    fn a_baseline_from_the_last_period_is_not_counted() {
        let fused = Fused::of(baseline(dec!(900), START - 3_600), None, START, dec!(3));
        assert_eq!(fused.cut, Cut::StaleBaseline);
        assert_eq!(fused.baseline_usd, Decimal::ZERO);
        assert_eq!(fused.spend_usd, dec!(3));
    }
}
