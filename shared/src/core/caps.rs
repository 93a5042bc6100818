//! Per-job caps (issue 17): a job tagged `batchguard:max-usd=N` is terminated once its own
//! cost reaches N USD.
//!
//! A job's own cost is what its billing group's units have accrued (its attempts' tasks on
//! Fargate, its split share of EC2 instances; an array child and a multi-node node are each a
//! job of their own, and a node over its cap stops its whole multi-node job). A unit without a
//! price accrues nothing here, so a job whose running work is unpriced is not stopped by its
//! cap (the collector logs it). Between two events a running unit accrues linearly (`core::billing`), so
//! the instant the cost reaches the cap is known when the group is projected:
//! [`cap_reached_at`]. The DynamoDB projector keeps that instant in a sparse index; each tick
//! the ticker asks for the capped jobs whose instant has passed, and the enforcer re-reads each
//! one's projection before it terminates it ([`cap_agrees`]). The tick interval is the bound:
//! a job is stopped within one tick of reaching its cap, plus Batch's stop time.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::billing::{Billing, usd};
use super::budgets::MAX_AMOUNT_USD;
use super::projection::GroupProjection;

/// The tag that caps a job's own cost, in USD.
pub const CAP_TAG: &str = "batchguard:max-usd";
/// Decimal places a cap may have.
pub const MAX_CAP_SCALE: u32 = 6;
/// How far ahead a crossing is looked for: a job that would take longer than this (ten years)
/// to reach its cap is not indexed.
pub const CAP_HORIZON_SECONDS: i64 = 10 * 366 * 86_400;

/// The cap a job's tags set: `None` without the tag, `Err` (naming what is wrong) when its value
/// is not an amount: digits with an optional fraction of up to six places, more than zero and
/// at most 10^12.
pub fn job_cap<'a>(
    mut tags: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<Result<Decimal, String>> {
    let (_, value) = tags.find(|(key, _)| *key == CAP_TAG)?;
    Some(parse_cap(value))
}

fn parse_cap(value: &str) -> Result<Decimal, String> {
    let bad = |why: &str| Err(format!("tag {CAP_TAG}={value:?}: {why}"));
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return bad("expected an amount in USD such as 25 or 12.50");
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (value.contains('.') && fraction.is_empty())
    {
        return bad("expected an amount in USD such as 25 or 12.50");
    }
    if fraction.len() > MAX_CAP_SCALE as usize {
        return bad("at most six decimal places");
    }
    if whole.len() > 13 {
        return bad("more than 10^12 USD");
    }
    let Ok(cap) = Decimal::from_str(value) else {
        return bad("expected an amount in USD such as 25 or 12.50");
    };
    if cap <= Decimal::ZERO {
        return bad("a cap must be more than 0 USD");
    }
    if cap > Decimal::from(MAX_AMOUNT_USD) {
        return bad("more than 10^12 USD");
    }
    Ok(cap.normalize())
}

/// A group's own cost by whole second `at`, in USD.
pub fn cost_at(projection: &GroupProjection, at: i64) -> Decimal {
    usd(projection
        .units
        .iter()
        .map(|unit| unit.billing.accrued(at).numerator)
        .sum())
}

/// What the group costs an hour now: its running units' rates (USD).
pub fn burn_usd_per_hour(projection: &GroupProjection) -> Decimal {
    projection
        .units
        .iter()
        .filter(|unit| matches!(unit.billing, Billing::Running { .. }))
        .map(|unit| unit.billing.hourly_rate())
        .sum()
}

/// Whether any of the group's units is running (started, no stop known).
pub fn is_running(projection: &GroupProjection) -> bool {
    projection
        .units
        .iter()
        .any(|unit| matches!(unit.billing, Billing::Running { .. }))
}

/// The first whole second at which the group's cost reaches `cap`, while a unit of it runs:
/// `None` when nothing runs (a stopped job's cost does not grow, and there is nothing to
/// stop) or the cost would not reach the cap within [`CAP_HORIZON_SECONDS`] of the latest
/// start. The cost is non-decreasing in time, so a bisection over whole seconds finds it
/// exactly; it may be in the past (the job is over its cap already).
pub fn cap_reached_at(projection: &GroupProjection, cap: Decimal) -> Option<i64> {
    if !is_running(projection) {
        return None;
    }
    let anchors = projection
        .units
        .iter()
        .filter_map(|unit| unit.billing.anchor());
    let (first, last) = anchors.fold((i64::MAX, i64::MIN), |(lo, hi), anchor| {
        (lo.min(anchor), hi.max(anchor))
    });
    // Before every start, nothing has accrued (a cap is more than zero).
    let mut below = first.checked_sub(1)?;
    let mut reached = last.checked_add(CAP_HORIZON_SECONDS)?;
    if cost_at(projection, reached) < cap {
        return None;
    }
    while reached - below > 1 {
        let mid = below + (reached - below) / 2;
        if cost_at(projection, mid) >= cap {
            reached = mid;
        } else {
            below = mid;
        }
    }
    Some(reached)
}

/// A capped job the ticker found past its cap's instant, sent to the enforcer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct CapOrder {
    pub job_id: String,
}

/// A capped job's projection as the enforcer reads it before acting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapReading {
    pub job_id: String,
    /// The cap its tags set (`Err`: the tag's value is not an amount).
    pub cap_usd: Option<Result<Decimal, String>>,
    /// Its own cost at the instant read.
    pub cost_usd: Decimal,
    pub running: bool,
    /// The projection's version when read: a deferral (`JobProjections::defer_cap`) holds
    /// only while the projection is unchanged.
    pub version: u64,
}

/// Whether a job's projection backs terminating it for its cap: it runs, it has a valid cap,
/// and its cost has reached it. `Err` says why not.
pub fn cap_agrees(reading: Option<&CapReading>, job_id: &str) -> Result<Decimal, String> {
    let Some(reading) = reading else {
        return Err(format!("job {job_id} is not in the projections"));
    };
    let cap = match &reading.cap_usd {
        None => return Err(format!("job {job_id} has no {CAP_TAG} tag")),
        Some(Err(why)) => return Err(format!("job {job_id}: {why}")),
        Some(Ok(cap)) => *cap,
    };
    if !reading.running {
        return Err(format!("job {job_id} is no longer running"));
    }
    if reading.cost_usd < cap {
        return Err(format!(
            "job {job_id} has cost {} USD, under its cap of {cap} USD",
            reading.cost_usd.round_dp(4)
        ));
    }
    Ok(cap)
}

/// The reason given to Batch and the audit trail for a job stopped at its cap.
pub fn cap_reason(job_id: &str, cost_usd: Decimal, cap_usd: Decimal) -> String {
    format!(
        "job {job_id} has cost {} USD, reaching its cap {CAP_TAG}={cap_usd}",
        cost_usd.round_dp(4)
    )
}

/// Tags as `(key, value)` pairs from a map.
pub fn pairs(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::facts::{Millis, TaskSize};
    use crate::core::projection::ProjectedUnit;
    use proptest::prelude::*;
    use rust_decimal::dec;

    fn unit(billing: Billing) -> ProjectedUnit {
        ProjectedUnit {
            scopes: Vec::new(),
            billing,
            size: TaskSize {
                vcpu: Decimal::ONE,
                memory_gib: Decimal::TWO,
                storage_gib: None,
                gpus: None,
            },
            estimated: false,
            deadline: None,
            unpriced: false,
        }
    }

    fn cap(value: &str) -> Option<Result<Decimal, String>> {
        job_cap([(CAP_TAG, value), ("team", "a")].into_iter())
    }

    #[test]
    fn a_cap_is_a_plain_positive_amount() {
        assert_eq!(cap("25"), Some(Ok(dec!(25))));
        assert_eq!(cap("12.50"), Some(Ok(dec!(12.5))));
        assert_eq!(cap("0.000001"), Some(Ok(dec!(0.000001))));
        assert_eq!(job_cap([("team", "a")].into_iter()), None);
        for bad in [
            "",
            "-5",
            "+5",
            "1e3",
            "12.",
            ".5",
            "0",
            "0.00",
            "abc",
            "1,5",
            " 5",
            "0.0000001",
        ] {
            let Some(Err(why)) = cap(bad) else {
                panic!("{bad:?} was taken as a cap");
            };
            assert!(
                why.contains(CAP_TAG) && why.contains(&format!("{bad:?}")),
                "{why}"
            );
        }
        assert!(matches!(cap("1000000000001"), Some(Err(_))));
        assert_eq!(cap("1000000000000"), Some(Ok(dec!(1000000000000))));
    }

    /// Fargate's one-minute minimum: a task at 3.6 USD an hour has cost 0.06 USD for its first
    /// minute, then 0.001 USD a second (core::billing, from AWS's Fargate pricing page).
    #[test]
    fn the_crossing_is_the_first_second_the_cost_reaches_the_cap() {
        let running = GroupProjection {
            units: vec![unit(Billing::Running {
                anchor: 1_000,
                hourly_rate: dec!(3.6),
            })],
        };
        // Inside the minimum: the cap is reached at the start.
        assert_eq!(cap_reached_at(&running, dec!(0.05)), Some(1_000));
        // 0.1 USD: 100 s after the start.
        assert_eq!(cap_reached_at(&running, dec!(0.1)), Some(1_100));
        assert_eq!(cap_reached_at(&running, dec!(0.1005)), Some(1_101));
        // A closed unit adds its fixed cost; the running one makes up the rest.
        let both = GroupProjection {
            units: vec![
                unit(Billing::Closed {
                    anchor: 0,
                    stop: Millis(500_000),
                    billed_seconds: 500,
                    hourly_rate: dec!(3.6),
                }),
                running.units[0].clone(),
            ],
        };
        assert_eq!(cost_at(&both, 1_100), dec!(0.6));
        assert_eq!(cap_reached_at(&both, dec!(0.6)), Some(1_100));
        // Nothing running: nothing to stop.
        let stopped = GroupProjection {
            units: vec![both.units[0].clone()],
        };
        assert_eq!(cap_reached_at(&stopped, dec!(0.01)), None);
        // A free unit never reaches a cap.
        let free = GroupProjection {
            units: vec![unit(Billing::Running {
                anchor: 1_000,
                hourly_rate: Decimal::ZERO,
            })],
        };
        assert_eq!(cap_reached_at(&free, dec!(0.01)), None);
    }

    proptest! {
        /// The instant found is the first whole second at which the cost reaches the cap; none
        /// is found only when the cap is not reached within the horizon.
        #[test]
        fn the_crossing_is_exact(
            anchors in proptest::collection::vec(0i64..100_000, 1..5),
            rates in proptest::collection::vec(1u32..100_000, 5),
            closed_seconds in 0i64..10_000,
            cap_cents in 1u64..10_000_000,
        ) {
            let mut units: Vec<ProjectedUnit> = anchors
                .iter()
                .zip(&rates)
                .map(|(&anchor, &rate)| unit(Billing::Running {
                    anchor,
                    hourly_rate: Decimal::new(i64::from(rate), 3),
                }))
                .collect();
            if closed_seconds > 0 {
                units.push(unit(Billing::Closed {
                    anchor: 0,
                    stop: Millis(closed_seconds * 1000),
                    billed_seconds: closed_seconds.max(60),
                    hourly_rate: dec!(1.5),
                }));
            }
            let projection = GroupProjection { units };
            let cap = Decimal::new(i64::try_from(cap_cents).expect("under 10^7"), 2);
            match cap_reached_at(&projection, cap) {
                Some(at) => {
                    prop_assert!(cost_at(&projection, at) >= cap);
                    prop_assert!(cost_at(&projection, at - 1) < cap);
                }
                // Not within the horizon of the latest start.
                None => {
                    let last = anchors.iter().max().copied().unwrap_or_default();
                    prop_assert!(cost_at(&projection, last + CAP_HORIZON_SECONDS) < cap);
                }
            }
        }
    }

    #[test]
    fn the_enforcer_acts_only_on_a_running_job_over_a_valid_cap() {
        let reading = |cap: Option<Result<Decimal, String>>, cost, running| CapReading {
            job_id: "j".into(),
            cap_usd: cap,
            cost_usd: cost,
            running,
            version: 1,
        };
        assert_eq!(
            cap_agrees(Some(&reading(Some(Ok(dec!(5))), dec!(5), true)), "j"),
            Ok(dec!(5))
        );
        for (read, why) in [
            (None, "not in the projections"),
            (
                Some(reading(None, dec!(9), true)),
                "has no batchguard:max-usd",
            ),
            (Some(reading(Some(Err("bad".into())), dec!(9), true)), "bad"),
            (
                Some(reading(Some(Ok(dec!(5))), dec!(9), false)),
                "no longer running",
            ),
            (
                Some(reading(Some(Ok(dec!(5))), dec!(4.99), true)),
                "under its cap",
            ),
        ] {
            let refused = cap_agrees(read.as_ref(), "j").expect_err(why);
            assert!(refused.contains(why), "{refused}");
        }
    }
}
