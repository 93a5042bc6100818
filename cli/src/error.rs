//! What stops a command, with what to do about it.

use std::path::PathBuf;

use rust_decimal::Decimal;
use shared::adapters::files;

/// A failure that stops the command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Input(#[from] files::InputError),
    #[error("price file {path}: {source}")]
    Prices {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] shared::ports::StoreError),
    #[error("budget must not be negative, got {0}")]
    NegativeBudget(Decimal),
    #[error("policy: {0}")]
    Policy(String),
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cur(#[from] crate::adapters::cur::CurError),
    #[cfg(not(feature = "aws"))]
    #[error(
        "{what} needs AWS, and this batchguard was built without it (cargo's `aws` feature): build it with `cargo build --release -p batchguard-cli`"
    )]
    NeedsAws { what: String },
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Enforce(#[from] shared::app::enforcer::EnforceError),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Pricing(#[from] crate::adapters::pricing::PricingError),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Budgets(#[from] shared::adapters::budgets::BudgetsError),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Doctor(#[from] crate::adapters::stack::DoctorError),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    CostExplorer(#[from] crate::adapters::cost_explorer::CostExplorerError),
    #[cfg(feature = "aws")]
    #[error("stack {stack}: {failed} check(s) failed")]
    Unhealthy { stack: String, failed: usize },
}
