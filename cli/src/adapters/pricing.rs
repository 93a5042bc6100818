//! `batchguard prices fetch`: the AWS Price List API (`GetProducts`, paginated) → a price file.
//! The wire format is read by `shared::analysis::pricelist`; this is the SDK side.

use aws_sdk_pricing::Client;
use aws_sdk_pricing::types::{Filter, FilterType};
use shared::analysis::pricelist::{self, FetchedPrices, PriceListError};

/// A failed Price List call or an unreadable answer.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("AWS Price List API, GetProducts {service_code}: {message}")]
    Api {
        service_code: &'static str,
        message: String,
    },
    #[error(transparent)]
    Format(#[from] PriceListError),
}

fn term(field: &str, value: &str) -> Result<Filter, PricingError> {
    Filter::builder()
        .r#type(FilterType::TermMatch)
        .field(field)
        .value(value)
        .build()
        .map_err(|e| PricingError::Api {
            service_code: "-",
            message: e.to_string(),
        })
}

/// Every document of one `GetProducts` query, all pages.
async fn products(
    client: &Client,
    service_code: &'static str,
    filters: Vec<Filter>,
) -> Result<Vec<String>, PricingError> {
    let mut documents = Vec::new();
    let mut pages = client
        .get_products()
        .service_code(service_code)
        .format_version("aws_v1")
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| PricingError::Api {
            service_code,
            message: shared::adapters::sdk_error::summary(&e),
        })?;
        documents.extend(page.price_list().iter().cloned());
    }
    Ok(documents)
}

/// Reads Fargate's prices for `region`, and EC2's for each of `instance_types` (Linux,
/// shared tenancy), into a price file. `fetched_on` is today's date, written in the sources.
pub async fn fetch(
    client: &Client,
    region: &str,
    instance_types: &[String],
    fetched_on: &str,
) -> Result<FetchedPrices, PricingError> {
    let fargate_documents =
        products(client, "AmazonECS", vec![term("regionCode", region)?]).await?;
    let fargate = pricelist::parse_offers(&fargate_documents)?;
    let mut ec2 = Vec::new();
    for instance_type in instance_types {
        let documents = products(
            client,
            "AmazonEC2",
            vec![
                term("regionCode", region)?,
                term("instanceType", instance_type)?,
                term("operatingSystem", "Linux")?,
                term("tenancy", "Shared")?,
                term("preInstalledSw", "NA")?,
                term("capacitystatus", "Used")?,
            ],
        )
        .await?;
        ec2.extend(pricelist::parse_offers(&documents)?);
    }
    Ok(pricelist::price_file(
        region,
        &fargate,
        &ec2,
        instance_types,
        fetched_on,
    )?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use aws_sdk_pricing::operation::get_products::{GetProductsInput, GetProductsOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use rust_decimal::Decimal;
    use shared::core::facts::{Architecture, Capacity};
    use shared::core::prices::PriceTable;

    use super::*;

    fn page(name: &str) -> (Vec<String>, Option<String>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pricelist")
            .join(name);
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let documents = value["PriceList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        (documents, value["NextToken"].as_str().map(str::to_owned))
    }

    fn output(name: &str) -> GetProductsOutput {
        let (documents, next) = page(name);
        GetProductsOutput::builder()
            .set_price_list(Some(documents))
            .set_next_token(next)
            .format_version("aws_v1")
            .build()
    }

    fn filter_value<'a>(input: &'a GetProductsInput, field: &str) -> Option<&'a str> {
        input
            .filters()
            .iter()
            .find(|f| f.field() == field)
            .map(|f| f.value())
    }

    /// The real SDK client, its answers from the fixtures: two pages of Fargate products, one
    /// answer per instance type, one of them empty.
    #[tokio::test]
    async fn fetch_pages_through_get_products_and_writes_a_price_file() {
        let ecs_first = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|r| {
                r.service_code() == Some("AmazonECS")
                    && r.next_token().is_none()
                    && filter_value(r, "regionCode") == Some("us-east-1")
            })
            .then_output(|| output("amazonecs-us-east-1.page1.json"));
        let ecs_second = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|r| {
                r.service_code() == Some("AmazonECS")
                    && r.next_token() == Some("WGDY7ko8fQXdlaUZVdasFQ==:page2")
            })
            .then_output(|| output("amazonecs-us-east-1.page2.json"));
        let m5 = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|r| {
                r.service_code() == Some("AmazonEC2")
                    && filter_value(r, "instanceType") == Some("m5.large")
                    && filter_value(r, "operatingSystem") == Some("Linux")
                    && filter_value(r, "tenancy") == Some("Shared")
            })
            .then_output(|| output("amazonec2-us-east-1-m5.large.json"));
        let unknown = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|r| filter_value(r, "instanceType") == Some("x9.huge"))
            .then_output(|| output("amazonec2-us-east-1-empty.json"));
        let client = mock_client!(
            aws_sdk_pricing,
            RuleMode::MatchAny,
            [&ecs_first, &ecs_second, &m5, &unknown]
        );

        let fetched = fetch(
            &client,
            "us-east-1",
            &["m5.large".to_owned(), "x9.huge".to_owned()],
            "2026-11-24",
        )
        .await
        .unwrap();

        assert_eq!(
            (
                ecs_first.num_calls(),
                ecs_second.num_calls(),
                m5.num_calls(),
                unknown.num_calls()
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            fetched.missing,
            vec!["ec2 x9.huge (Linux, shared) in us-east-1".to_owned()]
        );
        let table = PriceTable::builtin_with_overrides(&fetched.toml).unwrap();
        let arm = table
            .fargate("us-east-1", Architecture::Arm64, Capacity::OnDemand)
            .unwrap();
        // From the second page: paging was followed.
        assert_eq!(arm.vcpu_hour, Decimal::new(3238, 5));
        assert!(fetched.toml.contains("sku Z8E9J2N8X6VYQ2EU"));
        assert_eq!(
            table.ec2("us-east-1", "m5.large", false).unwrap().hourly,
            Decimal::new(96, 3)
        );
    }

    #[tokio::test]
    async fn an_api_failure_names_the_service() {
        let denied = mock!(aws_sdk_pricing::Client::get_products).then_error(|| {
            aws_sdk_pricing::operation::get_products::GetProductsError::AccessDeniedException(
                aws_sdk_pricing::types::error::AccessDeniedException::builder()
                    .message("not authorized to perform pricing:GetProducts")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_pricing, [&denied]);
        let error = fetch(&client, "us-east-1", &[], "2026-11-24")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("AWS Price List API, GetProducts AmazonECS"),
            "{error}"
        );
        assert!(error.contains("pricing:GetProducts"), "{error}");
    }
}
