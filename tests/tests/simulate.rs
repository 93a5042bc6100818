//! The simulator (`batchguard simulate`): batchguard's own policy against the two baselines on
//! the named scenarios, and the simulator's own accounting against an independent bill.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batchguard_tests::IndependentPrices;
use proptest::prelude::*;
use rust_decimal::Decimal;
use shared::analysis::sim::{Outcome, Scenario, Settings, SimReport, scenario, simulate};
use shared::core::facts::{Architecture, Capacity};
use shared::core::prices::PriceTable;

fn run(name: &str, seed: u64) -> (Scenario, SimReport) {
    let scenario = scenario(name, seed).unwrap();
    let report = simulate(&scenario, &Settings::default(), &PriceTable::builtin());
    (scenario, report)
}

fn outcome<'a>(report: &'a SimReport, name: &str) -> &'a Outcome {
    report.strategies.iter().find(|s| s.name == name).unwrap()
}

/// What the workload costs if nothing stops it, from the Fargate pricing page's rules with
/// prices written out here (not read from the code's table): each attempt billed
/// `max(60, seconds)`; an interrupted Spot attempt, then its full retry.
fn independent_uncontrolled_spend(scenario: &Scenario) -> Decimal {
    let prices = IndependentPrices::default();
    let mut total = scenario.prior_spend_usd;
    for job in &scenario.jobs {
        let (vcpu_price, gb_price) = match job.architecture {
            Architecture::Arm64 => (prices.arm_vcpu_hour, prices.arm_gb_hour),
            Architecture::X86_64 => (prices.x86_vcpu_hour, prices.x86_gb_hour),
        };
        let discount = match job.capacity {
            Capacity::Spot => prices.spot_fraction,
            Capacity::OnDemand => Decimal::ONE,
        };
        let hourly = (job.size.vcpu * vcpu_price + job.size.memory_gib * gb_price) * discount;
        let mut seconds = job.duration.max(60);
        if let Some(after) = job.interrupted_after {
            seconds += after.max(60);
        }
        total += hourly * Decimal::from(seconds) / Decimal::from(3600);
    }
    total
}

#[test]
fn runaway_batchguard_stops_within_a_quarter_percent_of_the_budget_and_the_baselines_do_not() {
    let (scenario, report) = run("runaway", 1);
    let budget = scenario.budget.amount_usd;
    let guard = outcome(&report, "batchguard");
    assert!(
        guard.overshoot_percent <= Decimal::new(25, 2),
        "batchguard overshoot {}%",
        guard.overshoot_percent
    );
    // It stopped the array, and stopped it late enough to use the budget (not at 50 %).
    assert_eq!(guard.jobs_stopped_total, 500);
    assert_eq!(
        guard.jobs_stopped, 0,
        "none of them would have finished under budget"
    );
    assert!(guard.final_spend_usd > budget * Decimal::new(99, 2));
    assert!(guard.actions.iter().any(|a| a.action.starts_with("stop")));
    // Both baselines let the whole 6 hours run: $700 + 500 × 6 h × $0.19748.
    let uncontrolled = independent_uncontrolled_spend(&scenario);
    assert_eq!(uncontrolled, Decimal::new(129_244, 2));
    for baseline in ["poll", "budgets"] {
        let result = outcome(&report, baseline);
        assert_eq!(result.final_spend_usd, uncontrolled, "{baseline}");
        assert!(result.overshoot_percent > Decimal::from(29), "{baseline}");
        assert!(
            result.breach_to_stop_seconds.unwrap() > 2 * 3600,
            "{baseline}"
        );
    }
}

#[test]
fn steady_months_end_under_budget_with_no_action_at_all() {
    for seed in [1, 7, 42] {
        let (scenario, report) = run("steady", seed);
        let uncontrolled = independent_uncontrolled_spend(&scenario);
        for result in &report.strategies {
            assert!(result.actions.is_empty(), "seed {seed}: {result:?}");
            assert_eq!(result.jobs_stopped_total, 0);
            assert_eq!(result.overshoot_usd, Decimal::ZERO);
            assert_eq!(result.breach_to_stop_seconds, None);
            // The simulator's ledger bills exactly what the pricing page says.
            assert!(
                (result.final_spend_usd - uncontrolled).abs() < Decimal::new(1, 4),
                "seed {seed}: {} vs {uncontrolled}",
                result.final_spend_usd
            );
        }
        assert!(uncontrolled < scenario.budget.amount_usd * Decimal::new(8, 1));
        assert!(scenario.jobs.iter().any(|j| j.interrupted_after.is_some()));
    }
}

#[test]
fn burst_batchguard_never_crosses_the_budget_and_says_what_it_cost() {
    let (scenario, report) = run("burst", 3);
    let guard = outcome(&report, "batchguard");
    let budgets = outcome(&report, "budgets");
    assert_eq!(guard.overshoot_usd, Decimal::ZERO);
    assert!(budgets.overshoot_usd > Decimal::ZERO);
    assert_eq!(
        budgets.final_spend_usd,
        independent_uncontrolled_spend(&scenario).round_dp(4)
    );
    // Freezing at 90 % refuses later bursts that would have finished under budget: the price
    // of the policy, reported rather than hidden.
    assert!(guard.jobs_stopped > 0 && guard.jobs_stopped <= guard.jobs_stopped_total);
}

#[test]
fn a_stop_delay_of_zero_stops_at_once() {
    // Found by the property below: with no stop delay the termination was ordered for the
    // second already past and never carried out.
    for (tick, delay) in [(30, 0), (60, 0), (300, 120)] {
        let scenario = scenario("runaway", 0).unwrap();
        let settings = Settings {
            policy: shared::core::policy::BudgetPolicy {
                tick_seconds: tick,
                stop_delay_seconds: delay,
                ..Default::default()
            },
            ..Settings::default()
        };
        let report = simulate(&scenario, &settings, &PriceTable::builtin());
        let guard = outcome(&report, "batchguard");
        assert_eq!(guard.jobs_stopped_total, 500, "tick {tick}, delay {delay}");
        assert!(
            guard.overshoot_percent <= Decimal::ONE,
            "tick {tick}, delay {delay}: {guard:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the seed, tick and stop delay, batchguard ends at or under the uncontrolled
    /// spend, and over the budget by at most what everything running burns in one tick plus
    /// the stop delay (and the one-minute minimum of tasks started in it).
    #[test]
    fn batchguard_overshoot_is_bounded_by_one_tick_of_burn(
        seed in 0_u64..1000,
        tick in prop::sample::select(vec![30_i64, 60, 120, 300]),
        delay in 0_i64..=120,
        name in prop::sample::select(vec!["runaway", "burst"]),
    ) {
        let scenario = scenario(name, seed).unwrap();
        let settings = Settings {
            policy: shared::core::policy::BudgetPolicy {
                tick_seconds: tick,
                stop_delay_seconds: delay,
                ..Default::default()
            },
            ..Settings::default()
        };
        let report = simulate(&scenario, &settings, &PriceTable::builtin());
        let guard = outcome(&report, "batchguard");
        let budgets = outcome(&report, "budgets");
        prop_assert!(guard.final_spend_usd <= budgets.final_spend_usd);
        // The largest burn either scenario reaches: 500 × $0.19748/h.
        let max_burn_per_second = Decimal::new(9874, 2) / Decimal::from(3600);
        let bound = max_burn_per_second * Decimal::from(tick + delay + 60);
        prop_assert!(guard.overshoot_usd <= bound, "{} > {}", guard.overshoot_usd, bound);
    }
}

/// GIVEN three teams sharing one queue, each with a daily budget, the last running away (seeds
/// 1 to 3) WHEN the day runs under one budget for the queue, a budget per team that
/// terminates, and a budget per team that sheds THEN under one budget the other teams lose
/// jobs; per team they complete every job; the runaway team ends within a tick and a stop
/// delay of its burn over its budget when terminating, and inside it when shedding, which
/// stops no more of its jobs than terminating does.
#[test]
fn only_the_runaway_team_is_stopped_and_shedding_stops_fewer() {
    use shared::analysis::teams::{TEAM_BUDGET_USD, TEAMS, simulate_teams};
    for seed in 1..=3 {
        let report = simulate_teams(seed, &PriceTable::builtin(), 60, 30);
        let guard = |name: &str| {
            report
                .guards
                .iter()
                .find(|g| g.guard.starts_with(name))
                .unwrap()
        };
        let (one, terminate, shed) = (
            guard("one budget"),
            guard("per team, terminate"),
            guard("per team, shed"),
        );
        let others = 0..TEAMS.len() - 1;
        let lost: u64 = others
            .clone()
            .map(|team| one.teams[team].cancelled + one.teams[team].terminated)
            .sum();
        assert!(
            lost > 0,
            "seed {seed}: one budget stops the other teams too: {one:?}"
        );
        for per_team in [terminate, shed] {
            for team in others.clone() {
                let outcome = &per_team.teams[team];
                assert_eq!(outcome.completed, outcome.jobs, "seed {seed}: {per_team:?}");
                assert_eq!(outcome.overshoot_usd, Decimal::ZERO);
            }
        }
        let runaway = TEAMS.len() - 1;
        // Its burn when stopped is at most its 12 runaway jobs' (16 vCPU, 64 GiB) and a
        // steady job's: well under $20 an hour; a tick and a stop delay are 90 s of it.
        let bound = Decimal::from(20) * Decimal::from(90) / Decimal::from(3_600);
        assert!(
            terminate.teams[runaway].overshoot_usd <= bound,
            "seed {seed}: {terminate:?}"
        );
        assert_eq!(
            shed.teams[runaway].overshoot_usd,
            Decimal::ZERO,
            "seed {seed}: {shed:?}"
        );
        assert!(shed.teams[runaway].spend_usd <= Decimal::from(TEAM_BUDGET_USD));
        assert!(
            shed.teams[runaway].terminated <= terminate.teams[runaway].terminated,
            "seed {seed}: {shed:?} {terminate:?}"
        );
    }
}

/// GIVEN ticks an hour apart (longer than the shortest job) WHEN the teams' day runs THEN
/// every job that started ends by midnight, none runs on unbilled or billed past its end (a
/// job starting and ending between two ticks was once never ended).
#[test]
fn jobs_shorter_than_a_tick_still_end() {
    use shared::analysis::teams::simulate_teams;
    let report = simulate_teams(1, &PriceTable::builtin(), 3_600, 30);
    for guard in &report.guards {
        for team in &guard.teams {
            assert_eq!(team.running_at_end, 0, "{guard:?}");
            assert_eq!(
                team.completed + team.cancelled + team.terminated,
                team.jobs,
                "{guard:?}"
            );
        }
    }
}

/// The guards' budgets files are valid (each is parsed at run time; an invalid one would be an
/// empty book guarding nothing).
#[test]
fn the_teams_guards_budgets_files_are_valid() {
    use shared::analysis::teams::{Guard, TEAMS};
    assert_eq!(Guard::OneBudget.book().len(), 1);
    assert_eq!(Guard::PerTeamTerminate.book().len(), TEAMS.len());
    assert_eq!(Guard::PerTeamShed.book().len(), TEAMS.len());
}
