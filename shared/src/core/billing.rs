//! The Fargate billing rules for one task, on whole seconds.
//!
//! Fargate bills "from the time you start to download your container image until the Amazon
//! ECS task terminates, rounded up to the nearest second", with a one-minute minimum
//! (<https://aws.amazon.com/fargate/pricing/>). So for a stopped task:
//!
//! `billed_seconds = max(60, ceil(stop − pullStartedAt))`
//!
//! and a task still running at the evaluation instant `at` (a whole second) accrues
//! `max(60, ceil(at − pullStartedAt))`, which for whole-second `at` equals
//! `max(60, at − floor(pullStartedAt))`. That identity is why evaluation instants are whole
//! seconds: it makes accrual linear in `at`, so running sums can answer in O(1).
//!
//! Cost is kept as an exact *numerator*, `hourly_rate × billed_seconds` (USD·s/h), and divided
//! by 3600 once, when a figure is read: sums of numerators stay exact in `rust_decimal`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facts::Millis;

/// Fargate's minimum charge per task.
pub const MINIMUM_BILLED_SECONDS: i64 = 60;
/// Seconds per hour: prices are per hour, billing per second.
pub const SECONDS_PER_HOUR: i64 = 3_600;

/// The start of billing on the whole-second grid: `floor(pullStartedAt)`.
pub fn anchor_seconds(start: Millis) -> i64 {
    start.floor_seconds()
}

/// Billed seconds of a task that started at `start` and stopped at `stop`.
pub fn billed_seconds_closed(start: Millis, stop: Millis) -> i64 {
    let elapsed_ms = stop.0.saturating_sub(start.0);
    Millis(elapsed_ms)
        .ceil_seconds()
        .max(MINIMUM_BILLED_SECONDS)
}

/// Billed seconds so far of a task running since `anchor` (whole seconds), at whole second `at`.
pub fn billed_seconds_running(anchor: i64, at: i64) -> i64 {
    at.saturating_sub(anchor).max(MINIMUM_BILLED_SECONDS)
}

/// How long a container may take to stop once Batch terminates it: ECS sends `SIGTERM`,
/// then `SIGKILL` after the container's stop timeout, 30 s unless set (Fargate's default, and
/// the EC2 agent's `ECS_CONTAINER_STOP_TIMEOUT` default:
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html>).
pub const STOP_GRACE_SECONDS: i64 = 30;

/// The last whole second an attempt started at `started` (Batch's `startedAt`) may be billed
/// for when its job has a timeout of `timeout_seconds`: Batch terminates it `timeout` after
/// its `startedAt` (<https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html>),
/// and the stop may take [`STOP_GRACE_SECONDS`] more. The start is rounded up, the safe side.
pub fn deadline(started: Millis, timeout_seconds: u32) -> i64 {
    started
        .ceil_seconds()
        .saturating_add(i64::from(timeout_seconds))
        .saturating_add(STOP_GRACE_SECONDS)
}

/// USD from a cost numerator (`hourly_rate × seconds`).
pub fn usd(numerator: Decimal) -> Decimal {
    numerator / Decimal::from(SECONDS_PER_HOUR)
}

/// A task's billing state as the events describe it, independent of any evaluation instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Billing {
    /// No start known yet (or it never started): costs nothing so far.
    NotStarted,
    /// Started, no stop known: accrues at `hourly_rate` from `anchor`.
    Running { anchor: i64, hourly_rate: Decimal },
    /// Stopped: a fixed cost over `[anchor, anchor + billed_seconds)`.
    Closed {
        anchor: i64,
        stop: Millis,
        billed_seconds: i64,
        hourly_rate: Decimal,
    },
}

/// What a task has cost by whole second `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Accrued {
    pub billed_seconds: i64,
    /// `hourly_rate × billed_seconds`; see [`usd`].
    pub numerator: Decimal,
    /// Running at `at` (started, not stopped by then).
    pub running: bool,
}

impl Billing {
    pub fn hourly_rate(&self) -> Decimal {
        match self {
            Self::NotStarted => Decimal::ZERO,
            Self::Running { hourly_rate, .. } | Self::Closed { hourly_rate, .. } => *hourly_rate,
        }
    }

    pub fn anchor(&self) -> Option<i64> {
        match self {
            Self::NotStarted => None,
            Self::Running { anchor, .. } | Self::Closed { anchor, .. } => Some(*anchor),
        }
    }

    /// The latest whole second this billing state speaks of: evaluations at or after it see
    /// the state as final (running tasks running, stopped tasks stopped).
    pub fn horizon(&self) -> Option<i64> {
        match self {
            Self::NotStarted => None,
            Self::Running { anchor, .. } => Some(*anchor),
            Self::Closed { stop, anchor, .. } => Some(stop.ceil_seconds().max(*anchor)),
        }
    }

    /// The cost by whole second `at`, as the exact rules say. A task that stopped after `at`
    /// counts as running at `at`; one that started after `at` has cost nothing.
    pub fn accrued(&self, at: i64) -> Accrued {
        match *self {
            Self::NotStarted => Accrued::default(),
            Self::Running {
                anchor,
                hourly_rate,
            } => running_accrual(anchor, hourly_rate, at),
            Self::Closed {
                anchor,
                stop,
                billed_seconds,
                hourly_rate,
            } => {
                if stop <= Millis::from_seconds(at) {
                    Accrued {
                        billed_seconds,
                        numerator: hourly_rate * Decimal::from(billed_seconds),
                        running: false,
                    }
                } else {
                    running_accrual(anchor, hourly_rate, at)
                }
            }
        }
    }

    /// The billed interval `[from, to)` on the seconds grid at whole second `at`, used to share a
    /// cost between budget periods. `None` when nothing is billed yet.
    pub fn billed_interval(&self, at: i64) -> Option<(i64, i64)> {
        let accrued = self.accrued(at);
        let anchor = self.anchor()?;
        (accrued.billed_seconds > 0).then(|| (anchor, anchor + accrued.billed_seconds))
    }
}

fn running_accrual(anchor: i64, hourly_rate: Decimal, at: i64) -> Accrued {
    if anchor > at {
        return Accrued::default();
    }
    let billed_seconds = billed_seconds_running(anchor, at);
    Accrued {
        billed_seconds,
        numerator: hourly_rate * Decimal::from(billed_seconds),
        running: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn a_short_task_is_billed_the_one_minute_minimum() {
        assert_eq!(billed_seconds_closed(Millis(0), Millis(10_000)), 60);
    }

    #[test]
    fn partial_seconds_round_up() {
        assert_eq!(billed_seconds_closed(Millis(500), Millis(90_501)), 91);
        assert_eq!(billed_seconds_closed(Millis(500), Millis(90_500)), 90);
    }

    #[test]
    fn running_accrual_on_whole_seconds_matches_ceil_of_elapsed() {
        // started at 10.250 s; at 100 s the elapsed 89.75 s rounds up to 90.
        let billing = Billing::Running {
            anchor: anchor_seconds(Millis(10_250)),
            hourly_rate: dec!(3600),
        };
        let accrued = billing.accrued(100);
        assert_eq!(accrued.billed_seconds, 90);
        assert_eq!(usd(accrued.numerator), dec!(90));
        assert!(accrued.running);
    }

    #[test]
    fn a_task_stopping_after_at_accrues_only_to_at() {
        let billing = Billing::Closed {
            anchor: 0,
            stop: Millis(1_000_000),
            billed_seconds: 1_000,
            hourly_rate: dec!(1),
        };
        assert_eq!(billing.accrued(500).billed_seconds, 500);
        assert_eq!(billing.accrued(1_000).billed_seconds, 1_000);
        assert!(!billing.accrued(1_000).running);
        assert_eq!(billing.accrued(-5), Accrued::default());
    }
}
