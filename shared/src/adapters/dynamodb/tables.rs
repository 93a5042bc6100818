//! The two tables of a deployment, by name. Built without the AWS SDK, so the command line
//! can read a `dynamodb:` store argument in any build.

/// Table names of one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub events: String,
    pub state: String,
}

impl TableNames {
    pub fn from_prefix(prefix: &str) -> Self {
        Self {
            events: format!("{prefix}-events"),
            state: format!("{prefix}-state"),
        }
    }
}
