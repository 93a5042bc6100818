//! The budget policy: from budget figures to an enforcement level, and from a level to the
//! actions an enforcer carries out. Decisions are data; adapters act on them.
//!
//! The ladder: **notify** (tell people), **freeze** (disable the scope's job queues and cancel
//! jobs that have not started: SUBMITTED, PENDING, RUNNABLE), **stop** (also terminate STARTING
//! and RUNNING jobs). Each level includes the ones below it.
//!
//! A level is reached when the period's spend crosses its percentage of the budget — or, for
//! *stop*, when the forecast says the budget runs out before the next tick plus the time a
//! termination takes to bite: waiting for the next tick would be too late, so stop now.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::budget::{BudgetStatus, Outlook};

/// How far enforcement goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Notify,
    Freeze,
    Stop,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Notify => "notify",
            Self::Freeze => "freeze",
            Self::Stop => "stop",
        }
    }
}

/// Thresholds, as percentages of the budget, and how far ahead the forecast must look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetPolicy {
    pub notify_percent: Decimal,
    pub freeze_percent: Decimal,
    pub stop_percent: Decimal,
    /// Seconds between ticks (the next chance to act).
    pub tick_seconds: i64,
    /// Seconds from a TerminateJob call until the task stops billing (Batch's default stop
    /// timeout is 30 s).
    pub stop_delay_seconds: i64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            notify_percent: Decimal::from(80),
            freeze_percent: Decimal::from(90),
            stop_percent: Decimal::from(100),
            tick_seconds: 60,
            stop_delay_seconds: 30,
        }
    }
}

/// A policy that cannot order its levels.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("thresholds must satisfy 0 ≤ notify ≤ freeze ≤ stop, got {notify} / {freeze} / {stop}")]
pub struct PolicyError {
    pub notify: Decimal,
    pub freeze: Decimal,
    pub stop: Decimal,
}

impl BudgetPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let ordered = Decimal::ZERO <= self.notify_percent
            && self.notify_percent <= self.freeze_percent
            && self.freeze_percent <= self.stop_percent;
        if ordered {
            Ok(())
        } else {
            Err(PolicyError {
                notify: self.notify_percent,
                freeze: self.freeze_percent,
                stop: self.stop_percent,
            })
        }
    }
}

/// What the policy says at an instant, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub level: Level,
    pub reason: String,
}

/// Decides the level for budget figures at whole second `at`.
pub fn decide(status: &BudgetStatus, policy: &BudgetPolicy, at: i64) -> Decision {
    let used = status.used_percent;
    let crossed = |threshold: Decimal| used >= threshold;
    if crossed(policy.stop_percent) {
        return Decision {
            level: Level::Stop,
            reason: format!(
                "{}% of the budget used (stop at {}%)",
                used.round_dp(2),
                policy.stop_percent
            ),
        };
    }
    if let Outlook::RunsOut { at: runs_out } = status.outlook {
        let horizon = at + policy.tick_seconds + policy.stop_delay_seconds;
        if runs_out <= horizon {
            return Decision {
                level: Level::Stop,
                reason: format!(
                    "at the current burn rate the budget runs out in {} s, before the next tick ({} s) plus the stop delay ({} s)",
                    runs_out - at,
                    policy.tick_seconds,
                    policy.stop_delay_seconds
                ),
            };
        }
    }
    let (level, threshold) = if crossed(policy.freeze_percent) {
        (Level::Freeze, policy.freeze_percent)
    } else if crossed(policy.notify_percent) {
        (Level::Notify, policy.notify_percent)
    } else {
        return Decision {
            level: Level::Ok,
            reason: format!("{}% of the budget used", used.round_dp(2)),
        };
    };
    Decision {
        level,
        reason: format!(
            "{}% of the budget used ({} at {}%)",
            used.round_dp(2),
            level.as_str(),
            threshold
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::core::budget::{Budget, BudgetPeriod};
    use rust_decimal::dec;

    const AT: i64 = 1_793_577_600; // 2026-11-02T00:00:00Z

    fn status(spend: Decimal, burn_per_hour: Decimal) -> BudgetStatus {
        BudgetStatus::evaluate(
            Budget {
                amount_usd: dec!(1000),
                period: BudgetPeriod::Month,
            },
            AT,
            spend,
            burn_per_hour,
        )
    }

    #[test]
    fn nothing_happens_below_the_notify_threshold() {
        let decision = decide(&status(dec!(500), dec!(1)), &BudgetPolicy::default(), AT);
        assert_eq!(decision.level, Level::Ok);
    }

    #[test]
    fn each_threshold_raises_the_level() {
        let policy = BudgetPolicy::default();
        assert_eq!(
            decide(&status(dec!(800), dec!(0)), &policy, AT).level,
            Level::Notify
        );
        assert_eq!(
            decide(&status(dec!(900), dec!(0)), &policy, AT).level,
            Level::Freeze
        );
        assert_eq!(
            decide(&status(dec!(1000), dec!(0)), &policy, AT).level,
            Level::Stop
        );
    }

    #[test]
    fn stops_ahead_of_the_threshold_when_the_forecast_beats_the_next_tick() {
        // $10 left at $600/hour: 60 s left, less than the next tick (60 s) + stop delay (30 s).
        let decision = decide(&status(dec!(990), dec!(600)), &BudgetPolicy::default(), AT);
        assert_eq!(decision.level, Level::Stop);
        assert!(
            decision.reason.contains("runs out in 60 s"),
            "{}",
            decision.reason
        );
        // $10 left at $300/hour: 120 s left, the next tick can still act.
        assert_eq!(
            decide(&status(dec!(990), dec!(300)), &BudgetPolicy::default(), AT).level,
            Level::Freeze
        );
    }

    #[test]
    fn thresholds_out_of_order_are_refused() {
        let policy = BudgetPolicy {
            notify_percent: dec!(95),
            ..BudgetPolicy::default()
        };
        assert!(policy.validate().is_err());
        assert!(BudgetPolicy::default().validate().is_ok());
    }
}
