//! batchguard's library, in layers that follow the data (ADR 0008; `tests/tests/architecture.rs`
//! holds them):
//!
//! - [`core`]: pure — facts, the fold, billing, prices, budgets, policy, enforcement decisions.
//!   No IO, no clock; imports nothing but itself.
//! - [`events`]: the EventBridge wire format → facts. Imports the core.
//! - [`metrics`]: metric documents and the catalogue. Imports the core.
//! - [`ports`]: every capability the services need, as traits. Imports the core and metrics.
//! - [`app`]: the services (intake, collector, enforcer, silent-job check, ticker) over ports.
//!   Names no adapter and no AWS SDK.
//! - [`adapters`]: one technology each (memory, SQLite, files, EMF; with `aws`: DynamoDB, Batch,
//!   SNS, Lambda, Budgets). Never import `app` or `handlers`.
//! - [`handlers`] (feature `lambda`): one per Lambda function, over ports; the functions'
//!   `main`s wire adapters in. [`config`]: their environment.
//! - [`analysis`]: what only the command line runs (status report, bill check, stack
//!   checklist, price list, simulator, workload generator).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod analysis;
pub mod app;
#[cfg(feature = "lambda")]
pub mod config;
pub mod core;
pub mod events;
#[cfg(feature = "lambda")]
pub mod handlers;
pub mod metrics;
pub mod ports;
