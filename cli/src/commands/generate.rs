//! `batchguard generate`: write a generated, realistic workload as JSON Lines (how
//! `examples/` was made).

use std::path::PathBuf;

use clap::Args as ClapArgs;
use shared::analysis::synth::{self, WorkloadConfig};

use crate::error::CliError;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Seed of the generator; the same seed gives the same file.
    #[arg(long, default_value_t = WorkloadConfig::sample_day().seed)]
    pub seed: u64,
    /// Top-level jobs to generate (1 to 100000).
    #[arg(long, default_value_t = WorkloadConfig::sample_day().jobs, value_parser = jobs_in_range)]
    pub jobs: usize,
    /// Output file (JSON Lines); `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
}

fn jobs_in_range(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(jobs @ 1..=100_000) => Ok(jobs),
        _ => Err(format!("{text:?}: from 1 to 100000 jobs")),
    }
}

pub fn run(args: &Args) -> Result<(), CliError> {
    let config = WorkloadConfig {
        seed: args.seed,
        jobs: args.jobs,
        ..WorkloadConfig::sample_day()
    };
    let workload = synth::generate(&config);
    let mut text = workload.events.join("\n");
    text.push('\n');
    super::write_output(&args.out, text.as_bytes())?;
    eprintln!(
        "wrote {} events ({} tasks) to {}",
        workload.events.len(),
        workload.tasks.len(),
        if super::is_stdout(&args.out) {
            "standard output".to_owned()
        } else {
            args.out.display().to_string()
        }
    );
    Ok(())
}
