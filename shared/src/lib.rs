//! batchguard's library: a pure spend-ledger core, the EventBridge wire format, the
//! event-log port and its adapters.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod bill;
pub mod collector;
pub mod config;
pub mod core;
pub mod doctor;
pub mod enforcer;
pub mod events;
pub mod handlers;
pub mod intake;
pub mod metrics;
pub mod ports;
pub mod pricelist;
pub mod reconciler;
pub mod report;
pub mod sim;
pub mod synth;
