//! Adapters: each owns one technology's wire format.

pub mod dynamodb;
pub mod files;
pub mod memory;
pub mod sqlite;
