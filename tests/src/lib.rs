//! Helpers shared by the integration tests: [`builders`] of facts, events and workloads (and an
//! independent Fargate bill), the local AWS API [`emulator`], Cost and Usage Report
//! [`exports`] and the SAM template ([`cfn`]). The in-memory ports the tests run services on
//! are the library's own (`shared::adapters::memory`).
#![forbid(unsafe_code)]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

pub mod builders;
pub mod cfn;
pub mod emulator;
pub mod exports;
pub mod ledger;

pub use builders::*;
pub use emulator::*;
pub use exports::*;
