//! The bundled example is what the generator makes: regenerate it with
//! `cargo run --release -p batchguard-cli -- generate --out examples/sample-day.jsonl`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use shared::analysis::synth::{self, WorkloadConfig};

#[test]
fn the_sample_day_is_the_generators_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-day.jsonl");
    let committed = std::fs::read_to_string(path).unwrap();
    let generated = synth::generate(&WorkloadConfig::sample_day())
        .events
        .join("\n")
        + "\n";
    assert!(
        committed == generated,
        "examples/sample-day.jsonl is stale: regenerate it (see this file's header)"
    );
}
