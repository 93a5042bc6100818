//! The pure core: facts → fold → billing → spend → forecast → decision (the policy's level,
//! and the enforcement data: the enforcer's request, which jobs it may touch, what the audit
//! trail says batchguard did to the queues).
//!
//! Invariant (checked by `tests/tests/architecture.rs`): nothing under `core/` performs IO, reads
//! a clock, or names `aws_sdk_*`, `aws_lambda_events`, `lambda_runtime`, `tokio`, `rusqlite`,
//! `serde_json` or `std::fs`. Time comes in as an argument.

pub mod activity;
pub mod admission;
pub mod arrival;
pub mod billing;
pub mod budget;
pub mod budgets;
pub mod caps;
pub mod enforcement;
pub mod facts;
pub mod ledger;
pub mod names;
pub mod policy;
pub mod prices;
pub mod projection;
pub mod scope;
pub mod split;
pub mod sums;
