//! `batchguard simulate`: one workload under batchguard's policy and two baselines (a poller of
//! a spend figure refreshed every 8 h, and alert-only AWS Budgets), and their overshoot.

use clap::Args as ClapArgs;
use shared::analysis::sim;
use shared::core::policy::BudgetPolicy;
use shared::core::prices::PriceTable;

use crate::error::CliError;
use crate::render::text;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// steady (a month under budget), runaway (70 % spent, then 500 tasks of 4 vCPU for 6 h),
    /// burst (85 % spent, a burst of 200 tasks every 4 h), or teams (three teams share a queue,
    /// each with a daily budget, and one runs away: one budget for the queue against a budget
    /// per team, terminating or shedding).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    pub scenario: String,
    /// Seed of the scenario's random parts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// batchguard's tick, seconds (1 to 86400).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub tick_seconds: i64,
    /// Seconds from a terminate call to the task stopping (Batch's default stop timeout; 0 to
    /// 86400).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=86_400))]
    pub stop_delay_seconds: i64,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Every scenario `--scenario` takes.
const SCENARIOS: [&str; 4] = ["steady", "runaway", "burst", "teams"];

pub fn run(args: &Args) -> Result<(), CliError> {
    if args.scenario == "teams" {
        let report = shared::analysis::teams::simulate_teams(
            args.seed,
            &PriceTable::builtin(),
            args.tick_seconds,
            args.stop_delay_seconds,
        );
        if args.json {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|error| CliError::Usage(format!("cannot write JSON: {error}")))?;
            println!("{text}");
        } else {
            print!("{}", text::teams_human(&report));
        }
        return Ok(());
    }
    let scenario = sim::scenario(&args.scenario, args.seed)
        .ok_or_else(|| CliError::Usage(format!("no scenario {:?}", args.scenario)))?;
    let settings = sim::Settings {
        policy: BudgetPolicy {
            tick_seconds: args.tick_seconds,
            stop_delay_seconds: args.stop_delay_seconds,
            ..BudgetPolicy::default()
        },
        ..sim::Settings::default()
    };
    let report = sim::simulate(&scenario, &settings, &PriceTable::builtin());
    if args.json {
        println!("{}", text::simulation_json(&report));
    } else {
        print!("{}", text::simulation_human(&report, &scenario));
    }
    Ok(())
}
