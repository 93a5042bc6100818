//! Adapters: each owns one technology's wire format and implements ports with it. They never
//! import the services (`app`) or the handlers.
//!
//! Always built: [`memory`] (in-memory ports), [`sqlite`] (the embedded store), [`files`]
//! (event files on disk), [`emf`] (CloudWatch Embedded Metric Format). With the `aws` feature:
//! [`dynamodb`] (its table names in every build), [`batch`] (AWS Batch), [`sns`], [`lambda`] (invoking the enforcer) and
//! [`budgets`] (AWS Budgets).

#[cfg(feature = "aws")]
pub mod batch;
#[cfg(feature = "aws")]
pub mod budgets;
pub mod dynamodb;
pub mod emf;
pub mod files;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod memory;
#[cfg(feature = "aws")]
pub mod sdk_error;
#[cfg(feature = "aws")]
pub mod sns;
pub mod sqlite;
