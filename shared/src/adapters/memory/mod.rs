//! In-memory adapters: first-class implementations of every port, for replays, the CLI's
//! local commands and the tests (services run on them exactly as on AWS).
//!
//! - [`MemoryEventLog`]: the event log, quarantine, ingest counters and audit trail;
//! - [`MemoryProjector`]: projections as one ledger (spend per scope, silent jobs), and
//!   [`NoProjection`];
//! - [`MemoryBaseline`]: the ticker's spend marks and AWS budget reading;
//! - [`MemoryBatch`]: AWS Batch's queues and jobs;
//! - [`Outbox`], [`RecordingTrigger`]: notifications and enforcer triggers, kept.

mod baseline;
mod batch;
mod control;
mod event_log;
mod projector;

pub use baseline::MemoryBaseline;
pub use batch::{Fault, MemoryBatch};
pub use control::{Outbox, RecordingTrigger};
pub use event_log::MemoryEventLog;
pub use projector::{MemoryProjector, NoProjection};
