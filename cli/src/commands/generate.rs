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
    /// Top-level jobs to generate.
    #[arg(long, default_value_t = WorkloadConfig::sample_day().jobs)]
    pub jobs: usize,
    /// Output file (JSON Lines).
    #[arg(long)]
    pub out: PathBuf,
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
    std::fs::write(&args.out, text).map_err(|source| CliError::Output {
        path: args.out.clone(),
        source,
    })?;
    eprintln!(
        "wrote {} events ({} tasks) to {}",
        workload.events.len(),
        workload.tasks.len(),
        args.out.display()
    );
    Ok(())
}
