//! Adapters: each owns one technology's wire format.

pub mod batch;
pub mod budgets;
pub mod dynamodb;
pub mod dynamodb_projection;
pub mod emf;
pub mod files;
pub mod lambda;
pub mod memory;
pub mod sns;
pub mod sqlite;
