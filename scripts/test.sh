#!/usr/bin/env bash
# The project's test command (README, "Set up"). CI (.ci/run) runs exactly this.
# Formatting, lints as errors, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
