//! `batchguard prices fetch`: prices from the AWS Price List API into a price file.

use std::path::PathBuf;

use clap::Subcommand;

use crate::error::CliError;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a region's Fargate and EC2 on-demand prices from the AWS Price List into a price file.
    ///
    /// Fargate's on-demand prices (x86 and ARM vCPU-hour and GB-hour, ephemeral storage) and
    /// EC2 instance prices (Linux, shared tenancy) for one region, from the AWS Price List API
    /// (`GetProducts`), written as a price file for `--prices` and `PRICES_TOML`, each figure
    /// with its SKU, dates and source. What the Price List lacks is listed on stderr, never
    /// guessed; Spot prices are not in the Price List. Needs AWS credentials.
    Fetch {
        /// The region whose prices to read (e.g. `eu-west-1`).
        #[arg(long)]
        region: String,
        /// Where to write the price file; standard output when not given or `-`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// EC2 instance types to price, comma-separated (default: the built-in table's).
        #[arg(long, value_delimiter = ',')]
        instance_types: Vec<String>,
        /// The Price List API's own region (it answers in us-east-1, eu-central-1 and
        /// ap-south-1).
        #[arg(long, default_value = "us-east-1")]
        api_region: String,
        /// Print what was found and missing as JSON on stdout (the file then needs `--out`).
        #[arg(long, requires = "out")]
        json: bool,
    },
}

#[cfg(not(feature = "aws"))]
pub async fn run(_command: Command) -> Result<(), CliError> {
    Err(CliError::NeedsAws {
        what: "prices fetch".into(),
    })
}

#[cfg(feature = "aws")]
pub async fn run(command: Command) -> Result<(), CliError> {
    use chrono::Utc;
    use shared::core::prices::PriceTable;

    let Command::Fetch {
        region,
        out,
        instance_types,
        api_region,
        json,
    } = command;
    if json && out.as_deref().is_some_and(super::is_stdout) {
        return Err(CliError::Usage(
            "--out - and --json would both write to standard output: give --out a file".into(),
        ));
    }
    let config = crate::adapters::sdk_config(Some(&api_region)).await;
    let client = aws_sdk_pricing::Client::new(&config);
    let instance_types = if instance_types.is_empty() {
        PriceTable::builtin().ec2_instance_types()
    } else {
        instance_types
    };
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let fetched =
        crate::adapters::pricing::fetch(&client, &region, &instance_types, &today).await?;
    write_fetched(&fetched, out.as_deref(), json)
}

/// Writes a fetched price file and says what is in it (stderr), or as JSON (stdout).
#[cfg(feature = "aws")]
fn write_fetched(
    fetched: &shared::analysis::pricelist::FetchedPrices,
    out: Option<&std::path::Path>,
    json: bool,
) -> Result<(), CliError> {
    // The file must read back as a price file before it is written anywhere.
    shared::core::prices::PriceTable::builtin_with_overrides(&fetched.toml).map_err(|e| {
        CliError::Prices {
            path: out.map_or_else(|| PathBuf::from("-"), std::path::Path::to_path_buf),
            source: Box::new(e),
        }
    })?;
    match out {
        Some(path) => super::write_output(path, fetched.toml.as_bytes())?,
        None => print!("{}", fetched.toml),
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"found": fetched.found, "missing": fetched.missing})
        );
    } else {
        for line in &fetched.found {
            eprintln!("found: {line}");
        }
        for line in &fetched.missing {
            eprintln!("missing (not in the Price List; nothing written): {line}");
        }
    }
    Ok(())
}
