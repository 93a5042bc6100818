//! What stops a command, with what to do about it.

use std::path::PathBuf;

use shared::adapters::files;

impl CliError {
    /// What to do about it, when the failure says (AWS's usual first-run troubles).
    pub fn hint(&self) -> Option<String> {
        let text = self.to_string().to_ascii_lowercase();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
        if text.contains("resourcenotfoundexception") && matches!(self, Self::Store(_)) {
            return Some(
                "the DynamoDB tables are not there: create them with `batchguard init --store dynamodb:<prefix>`, or name a deployed stack's tables (its EventsTableName and StateTableName outputs)".into(),
            );
        }
        if text.contains("credential") || text.contains("unrecognizedclient") {
            return Some("AWS credentials were not found or were refused: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any value for a local emulator)".into());
        }
        if text.contains("expiredtoken") {
            return Some(
                "the AWS credentials have expired: renew them (e.g. `aws sso login`)".into(),
            );
        }
        if text.contains("region") && (text.contains("must be set") || text.contains("no region")) {
            return Some("no AWS region: set AWS_REGION (or a profile's region)".into());
        }
        if text.contains("accessdenied") || text.contains("not authorized") {
            return Some("the credentials lack a permission this command needs (README lists them per command)".into());
        }
        if text.contains("dispatch failure")
            || text.contains("connection refused")
            || text.contains("dns error")
            || text.contains("timed out")
        {
            return Some(match endpoint {
                Some(endpoint) => format!(
                    "AWS could not be reached at AWS_ENDPOINT_URL={endpoint}: is the emulator running there?"
                ),
                None => "AWS could not be reached: check the network (or set AWS_ENDPOINT_URL for a local emulator)".into(),
            });
        }
        None
    }
}

/// A failure that stops the command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Input(#[from] files::InputError),
    #[error(
        "no events found in {0}: give JSON Lines files, JSON array files, single-event files, or directories of *.json, *.jsonl and *.ndjson files"
    )]
    NoEvents(String),
    #[error("price file {path}: {source}")]
    Prices {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] shared::ports::StoreError),
    #[cfg(feature = "aws")]
    #[error("policy: {0}")]
    Policy(String),
    /// Options that cannot go together, or a value out of its range.
    #[error("{0}")]
    Usage(String),
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
    Control(#[from] shared::ports::ControlError),
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
    #[error("{0} enforcement action(s) failed (listed above); everything else was done")]
    ActionsFailed(usize),
    #[cfg(feature = "aws")]
    #[error("no such job queue: {}", .0.join(", "))]
    UnknownQueues(Vec<String>),
    #[cfg(feature = "aws")]
    #[error("stack {stack}: {failed} check(s) failed")]
    Unhealthy { stack: String, failed: usize },
}
