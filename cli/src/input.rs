//! Reading event files: every event through the intake (`shared::app::intake`), a progress
//! bar on stderr when it is a terminal, and rejected events listed as `file:line: reason`.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::adapters::files::{self, InputFile};
use shared::app::intake::{Intake, Outcome};
use shared::core::facts::Fact;
use shared::ports::{IngestCounts, Quarantined};

use crate::error::CliError;

/// How many rejected events are listed on stderr before the rest are only counted.
const REJECTIONS_LISTED: u64 = 100;

/// A byte-counting progress bar on stderr, drawn only when stderr is a terminal.
fn progress(files: &[InputFile]) -> ProgressBar {
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Lists a rejected event on stderr (the first [`REJECTIONS_LISTED`] of them).
fn report_rejection(rejected_so_far: u64, event: &Quarantined, bar: &ProgressBar) {
    if rejected_so_far <= REJECTIONS_LISTED {
        bar.suspend(|| eprintln!("rejected {}: {}", event.origin, event.reason));
    }
}

fn summarize_rejections(counts: &IngestCounts) {
    if counts.rejected > REJECTIONS_LISTED {
        eprintln!(
            "rejected {} events in all ({} more not listed)",
            counts.rejected,
            counts.rejected - REJECTIONS_LISTED
        );
    }
}

/// Reads every event of every file under `paths` through `intake`, handing facts and
/// rejections on. Paths with no event at all are an error: a mistyped directory must not give
/// an empty report.
pub fn read_all(
    paths: &[PathBuf],
    intake: &mut Intake,
    mut on_fact: impl FnMut(Fact),
    mut on_rejected: impl FnMut(Quarantined),
) -> Result<(), CliError> {
    let files = files::expand_paths(paths)?;
    let files = files.as_slice();
    let bar = progress(files);
    let mut done_before = 0;
    for file in files {
        bar.set_message(file.path.display().to_string());
        let mut last_tick = 0;
        files::read_events(&file.path, |event| {
            let origin = || format!("{}:{}", file.path.display(), event.line);
            let outcome = match event.problem {
                Some(problem) => intake.refuse(origin(), event.bytes, problem),
                None => intake.offer(origin, event.bytes),
            };
            match outcome {
                Outcome::Fact(fact) => on_fact(fact),
                Outcome::Rejected(quarantined) => {
                    report_rejection(intake.counts.rejected, &quarantined, &bar);
                    on_rejected(quarantined);
                }
                Outcome::Duplicate | Outcome::Skipped(_) => {}
            }
            // Redraw about every MiB, not every event.
            if event.consumed - last_tick > 1 << 20 {
                last_tick = event.consumed;
                bar.set_position(done_before + event.consumed);
            }
        })?;
        done_before += file.bytes;
        bar.set_position(done_before);
    }
    bar.finish_and_clear();
    summarize_rejections(&intake.counts);
    if intake.counts.read == 0 {
        return Err(CliError::NoEvents(
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Ok(())
}
