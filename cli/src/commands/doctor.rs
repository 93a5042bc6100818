//! `batchguard doctor`: check a deployed stack and print a checklist with the fix for each
//! failure; exit 1 when a check fails. The facts come from AWS (`adapters::stack`), the
//! judging from `shared::analysis::checklist`.

use clap::Args as ClapArgs;

use crate::error::CliError;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The CloudFormation stack name (`sam deploy --stack-name`).
    #[arg(long)]
    pub stack: String,
    /// Print the checklist as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(not(feature = "aws"))]
pub async fn run(_args: Args) -> Result<(), CliError> {
    Err(CliError::NeedsAws {
        what: "doctor".into(),
    })
}

#[cfg(feature = "aws")]
pub async fn run(args: Args) -> Result<(), CliError> {
    use chrono::Utc;
    use shared::analysis::checklist::{self, Status};

    use crate::adapters::stack;
    use crate::render::text;

    let config = crate::adapters::sdk_config(None).await;
    let facts = stack::gather(
        &stack::Clients::new(&config),
        &args.stack,
        Utc::now().timestamp(),
    )
    .await?;
    let checks = checklist::checklist(&facts);
    let healthy = checklist::healthy(&checks);
    if args.json {
        let document = serde_json::json!({
            "stack": args.stack,
            "healthy": healthy,
            "checks": checks,
        });
        println!("{document:#}");
    } else {
        print!("{}", text::doctor_checklist(&checks));
    }
    if healthy {
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            stack: args.stack,
            failed: checks.iter().filter(|c| c.status == Status::Fail).count(),
        })
    }
}
