//! The AWS SDK calls only the command line makes (kept out of the Lambda builds), and the
//! files it reads that the functions never see.
//!
//! - [`cur`]: Cost and Usage Report exports — CSV, gzip CSV, Parquet; local or in S3;
//! - [`cost_explorer`]: a baseline from `GetCostAndUsage` (feature `aws`);
//! - [`pricing`]: the AWS Price List (`GetProducts`) (feature `aws`);
//! - [`stack`]: a deployed stack's facts for `doctor` (feature `aws`).

#[cfg(feature = "aws")]
pub mod cost_explorer;
pub mod cur;
#[cfg(feature = "aws")]
pub mod pricing;
#[cfg(feature = "aws")]
pub mod stack;

/// The AWS configuration from the usual variables (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL`), in `region` when given: the one place the command line loads it.
#[cfg(feature = "aws")]
pub async fn sdk_config(region: Option<&str>) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    match region {
        Some(region) => loader.region(aws_config::Region::new(region.to_owned())),
        None => loader,
    }
    .load()
    .await
}
