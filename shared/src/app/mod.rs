//! The application layer: services over ports, each what batchguard does for one kind of
//! request, independent of how the request arrives (a Lambda invocation, the command line).
//! They name no AWS SDK and no adapter: `main`s and the CLI wire adapters in.
//!
//! - [`intake`]: raw events → facts, every event accounted for (the one parse-and-quarantine);
//! - [`collector`]: read, append, project one event; re-drive the quarantine;
//! - [`enforcer`]: carry a level out on AWS Batch, and restore;
//! - [`job_caps`]: find the running jobs past their `batchguard:max-usd` cap, for the enforcer;
//! - [`silent_jobs`]: ask AWS Batch about jobs that went silent;
//! - [`ticker`]: one tick — spend per scope, the budget (optionally on AWS Budgets' figure),
//!   the decision and the enforcer's trigger;
//! - [`verify`]: the enforcer's check of a freeze, stop or restore against the ledger.

pub mod collector;
pub mod enforcer;
pub mod intake;
pub mod job_caps;
pub mod silent_jobs;
pub mod ticker;
pub mod verify;
