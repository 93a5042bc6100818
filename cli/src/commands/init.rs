//! `batchguard init`: create a store — a SQLite file, or the DynamoDB tables of
//! `dynamodb:<prefix>` (for development; a deployment gets its own from its template).

use clap::Args as ClapArgs;

use crate::error::CliError;
use crate::store::{Store, StoreSpec, parse_store};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A SQLite file, or `dynamodb:<table-prefix>` or `dynamodb:<events table>,<state table>`.
    #[arg(long, value_parser = parse_store)]
    pub store: StoreSpec,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    match Store::open(&args.store, None).await? {
        Store::Sqlite(_) => {}
        #[cfg(feature = "aws")]
        Store::Dynamo(log) => log.create_tables().await?,
    }
    eprintln!("{}: ready", args.store);
    Ok(())
}
