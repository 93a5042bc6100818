//! Price List documents (tests/fixtures/pricelist, the `GetProducts` layout) → the price file
//! the ledger reads: Fargate x86/ARM vCPU and memory, ephemeral storage, EC2 Linux on-demand;
//! what the answer lacks is reported, not guessed.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use rust_decimal::Decimal;
use shared::analysis::pricelist::{self, PriceListError};
use shared::core::facts::{Architecture, Capacity};
use shared::core::prices::PriceTable;

fn page(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(
        batchguard_tests::cfn::root()
            .join("tests/fixtures/pricelist")
            .join(name),
    )
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["PriceList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn fetched(instance_types: &[&str]) -> pricelist::FetchedPrices {
    let mut ecs = page("amazonecs-us-east-1.page1.json");
    ecs.extend(page("amazonecs-us-east-1.page2.json"));
    let mut ec2 = page("amazonec2-us-east-1-m5.large.json");
    ec2.extend(page("amazonec2-us-east-1-c5.large.json"));
    let types: Vec<String> = instance_types.iter().map(|t| (*t).to_owned()).collect();
    pricelist::price_file(
        "us-east-1",
        &pricelist::parse_offers(&ecs).unwrap(),
        &pricelist::parse_offers(&ec2).unwrap(),
        &types,
        "2026-11-24",
    )
    .unwrap()
}

#[test]
fn the_price_list_gives_the_built_in_figures_and_the_file_reads_back() {
    let fetched = fetched(&["m5.large", "c5.large"]);
    assert!(fetched.missing.is_empty(), "{:?}", fetched.missing);
    // The published figures, the same as the built-in table's.
    let table = PriceTable::builtin_with_overrides(&fetched.toml).unwrap();
    let builtin = PriceTable::builtin();
    for architecture in [Architecture::X86_64, Architecture::Arm64] {
        assert_eq!(
            table.fargate("us-east-1", architecture, Capacity::OnDemand),
            builtin.fargate("us-east-1", architecture, Capacity::OnDemand),
            "{architecture:?}"
        );
    }
    assert_eq!(
        table.ec2("us-east-1", "m5.large", false).unwrap().hourly,
        Decimal::new(96, 3)
    );
    assert_eq!(
        table.ec2("us-east-1", "c5.large", false).unwrap().hourly,
        Decimal::new(85, 3)
    );
    // The split of an instance's bill needs the type's size: the Price List's `vcpu` and
    // `memory` attributes are written with the price and agree with the built-in table.
    for instance_type in ["m5.large", "c5.large"] {
        let fetched_specs = table.ec2("us-east-1", instance_type, false).unwrap().specs;
        assert!(fetched_specs.is_some(), "{instance_type} has no specs");
        assert_eq!(
            fetched_specs,
            builtin
                .ec2("us-east-1", instance_type, false)
                .unwrap()
                .specs,
            "{instance_type}"
        );
    }
    assert!(fetched.toml.contains("vcpu = 2\nmemory_gib = 8\n"));
    assert!(
        fetched
            .found
            .contains(&"ec2 c5.large = 0.085 (2 vCPU, 4 GiB)".to_owned())
    );
    // And the figures do come from the documents: a changed price comes through.
    let mut ecs = page("amazonecs-us-east-1.page1.json");
    ecs.extend(page("amazonecs-us-east-1.page2.json"));
    let ecs: Vec<String> = ecs
        .iter()
        .map(|d| d.replace("0.0323800000", "0.0299000000"))
        .collect();
    let changed = pricelist::price_file(
        "us-east-1",
        &pricelist::parse_offers(&ecs).unwrap(),
        &[],
        &[],
        "2026-11-24",
    )
    .unwrap();
    let arm = PriceTable::builtin_with_overrides(&changed.toml)
        .unwrap()
        .fargate("us-east-1", Architecture::Arm64, Capacity::OnDemand)
        .unwrap();
    assert_eq!(arm.vcpu_hour, Decimal::new(299, 4));
    // Each figure says where it comes from: service, SKU, usage type and dates.
    assert!(fetched.toml.contains(
        "AWS Price List API (AmazonECS, sku 8CESGAFWKAJ98PME, usagetype USE1-Fargate-vCPU-Hours:perCPU), effective 2026-11-01T00:00:00Z, published 2026-11-05T17:42:09Z, fetched 2026-11-24"
    ));
    assert!(
        fetched
            .toml
            .contains("sku G6G6ZNFBYMW2V8BH, usagetype BoxUsage:m5.large")
    );
    // The Windows licence, reservation, unused-reservation and SQL Server lines are left out
    // (the SQL Server price, 0.471, would otherwise conflict).
    assert!(!fetched.toml.contains("0.471"));
    assert!(!fetched.toml.contains("Windows"));
}

#[test]
fn a_price_the_list_lacks_is_reported_not_guessed() {
    let fetched = fetched(&["m5.large", "x9.huge"]);
    assert_eq!(
        fetched.missing,
        vec!["ec2 x9.huge (Linux, shared) in us-east-1".to_owned()]
    );
    assert!(!fetched.toml.contains("x9.huge"));
    // A region with no Fargate documents at all: every Fargate figure is missing, nothing written.
    let nothing = pricelist::price_file("eu-west-3", &[], &[], &[], "2026-11-24").unwrap();
    assert!(
        nothing
            .missing
            .contains(&"fargate x86_64 vcpu_hour in eu-west-3".to_owned())
    );
    assert!(
        nothing
            .missing
            .contains(&"fargate storage_gb_hour in eu-west-3".to_owned())
    );
    assert!(!nothing.toml.contains("[[fargate]]"));
    PriceTable::builtin_with_overrides(&nothing.toml).unwrap();
}

#[test]
fn broken_or_contradictory_documents_are_errors_that_say_which() {
    let error = pricelist::parse_offers(&["{\"product\": 7}".to_owned()]).unwrap_err();
    assert!(
        matches!(error, PriceListError::Format { index: 0, .. }),
        "{error}"
    );
    let mut ecs = page("amazonecs-us-east-1.page1.json");
    ecs.push(ecs[0].replace("0.0404800000", "not-a-price"));
    let error = pricelist::parse_offers(&ecs).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Price List document 3 (8CESGAFWKAJ98PME): price \"not-a-price\" is not a decimal number"
    );
    let mut ecs = page("amazonecs-us-east-1.page1.json");
    ecs.push(ecs[0].replace("0.0404800000", "0.05"));
    let offers = pricelist::parse_offers(&ecs).unwrap();
    let error = pricelist::price_file("us-east-1", &offers, &[], &[], "2026-11-24").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("two different prices for Fargate Fargate-vCPU-Hours:perCPU"),
        "{error}"
    );
}
