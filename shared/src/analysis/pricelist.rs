//! The AWS Price List wire format → batchguard's price file.
//!
//! `GetProducts` answers with a list of JSON documents, one per product (SKU): `product.attributes`
//! says what it is (`usagetype`, `instanceType`, `operatingSystem`, …) and `terms.OnDemand`
//! holds its price dimensions (`pricePerUnit.USD`, as a decimal string). This module reads those
//! documents — Fargate's (`AmazonECS`) and EC2's (`AmazonEC2`) — and writes the price file the
//! ledger reads, each figure with its source and dates. A figure the documents lack is reported
//! in [`FetchedPrices::missing`], never guessed. Fargate Spot and EC2 Spot are not in the Price
//! List: they come from the user's file or from the bill.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Deserialize;

/// A Price List document batchguard could not read, with what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PriceListError {
    #[error("Price List document {index} is not JSON in the Price List format: {source}")]
    Format {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("Price List document {index} ({sku}): price {value:?} is not a decimal number")]
    Price {
        index: usize,
        sku: String,
        value: String,
    },
    #[error("the Price List gives two different prices for {what}: {first} and {second}")]
    Conflict {
        what: String,
        first: Decimal,
        second: Decimal,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    product: Product,
    #[serde(default)]
    terms: Terms,
    #[serde(default)]
    publication_date: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Product {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Terms {
    #[serde(default, rename = "OnDemand")]
    on_demand: BTreeMap<String, Term>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Term {
    #[serde(default)]
    price_dimensions: BTreeMap<String, Dimension>,
    #[serde(default)]
    effective_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dimension {
    #[serde(default)]
    price_per_unit: BTreeMap<String, String>,
    #[serde(default)]
    begin_range: Option<String>,
}

/// One on-demand price read from a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub usd: Decimal,
    pub effective_date: Option<String>,
    pub publication_date: Option<String>,
}

impl Offer {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Where the figure comes from, for the price file's `source`.
    fn source(&self, service: &str, fetched_on: &str) -> String {
        format!(
            "AWS Price List API ({service}, sku {}, usagetype {}), effective {}, published {}, fetched {fetched_on}",
            self.sku,
            self.attribute("usagetype").unwrap_or("?"),
            self.effective_date.as_deref().unwrap_or("?"),
            self.publication_date.as_deref().unwrap_or("?"),
        )
    }
}

/// Reads `GetProducts` documents into on-demand offers. A product without an on-demand USD
/// price (reserved-only, free tiers) yields nothing; a malformed document is an error.
pub fn parse_offers(documents: &[String]) -> Result<Vec<Offer>, PriceListError> {
    let mut offers = Vec::new();
    for (index, text) in documents.iter().enumerate() {
        let document: Document = serde_json::from_str(text)
            .map_err(|source| PriceListError::Format { index, source })?;
        for term in document.terms.on_demand.values() {
            // The first paid tier (a free first tier, beginRange 0 at $0, does not count).
            let mut prices = Vec::new();
            for dimension in term.price_dimensions.values() {
                let Some(text) = dimension.price_per_unit.get("USD") else {
                    continue;
                };
                let usd: Decimal = text.parse().map_err(|_| PriceListError::Price {
                    index,
                    sku: document.product.sku.clone(),
                    value: text.clone(),
                })?;
                let begin: Decimal = dimension
                    .begin_range
                    .as_deref()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or_default();
                prices.push((begin, usd));
            }
            prices.sort();
            if let Some(&(_, usd)) = prices.iter().find(|(_, usd)| !usd.is_zero()) {
                offers.push(Offer {
                    sku: document.product.sku.clone(),
                    attributes: document.product.attributes.clone(),
                    usd: usd.normalize(),
                    effective_date: term.effective_date.clone(),
                    publication_date: document.publication_date.clone(),
                });
            }
        }
    }
    Ok(offers)
}

/// The Fargate figures of one region, keyed by the `usagetype` after its region prefix.
const FARGATE_USAGE: [(&str, &str, &str); 5] = [
    ("Fargate-vCPU-Hours:perCPU", "x86_64", "vcpu_hour"),
    ("Fargate-GB-Hours", "x86_64", "gb_hour"),
    ("Fargate-ARM-vCPU-Hours:perCPU", "arm64", "vcpu_hour"),
    ("Fargate-ARM-GB-Hours", "arm64", "gb_hour"),
    ("Fargate-EphemeralStorage-GB-Hours", "*", "storage_gb_hour"),
];

/// `USE1-Fargate-GB-Hours` → `Fargate-GB-Hours`; us-east-1 usage types have no prefix.
fn usage_without_region(usage: &str) -> &str {
    match usage.split_once('-') {
        Some((prefix, rest))
            if prefix.len() >= 3
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && !usage.starts_with("Fargate") =>
        {
            rest
        }
        _ => usage,
    }
}

/// What `batchguard prices fetch` wrote, and what it could not find.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FetchedPrices {
    /// The price file, ready for `--prices`.
    pub toml: String,
    /// Figures written, as `fargate x86_64 vcpu_hour = 0.04048`, `ec2 m5.large = 0.096`.
    pub found: Vec<String>,
    /// Figures the Price List did not have (nothing is written for them).
    pub missing: Vec<String>,
}

fn keep_one(
    slot: &mut Option<(Decimal, String)>,
    what: &str,
    usd: Decimal,
    source: String,
) -> Result<(), PriceListError> {
    match slot {
        Some((held, _)) if *held != usd => Err(PriceListError::Conflict {
            what: what.to_owned(),
            first: *held,
            second: usd,
        }),
        Some(_) => Ok(()),
        None => {
            *slot = Some((usd, source));
            Ok(())
        }
    }
}

/// Is this EC2 offer the plain on-demand Linux price of a shared-tenancy instance (not a
/// reservation, a dedicated host, Windows, SQL Server or an unused capacity reservation)?
fn plain_linux_on_demand(offer: &Offer) -> bool {
    offer.attribute("operatingSystem") == Some("Linux")
        && offer.attribute("tenancy") == Some("Shared")
        && offer.attribute("preInstalledSw").is_none_or(|s| s == "NA")
        && offer
            .attribute("capacitystatus")
            .is_none_or(|s| s == "Used")
        && offer
            .attribute("licenseModel")
            .is_none_or(|s| s == "No License required")
        && offer
            .attribute("usagetype")
            .is_some_and(|u| usage_without_region(u).starts_with("BoxUsage:"))
}

/// Builds the price file for `region` from the Fargate (`AmazonECS`) and EC2 (`AmazonEC2`)
/// offers, for the instance types asked for. `fetched_on` is the date written in the sources.
pub fn price_file(
    region: &str,
    fargate: &[Offer],
    ec2: &[Offer],
    instance_types: &[String],
    fetched_on: &str,
) -> Result<FetchedPrices, PriceListError> {
    let in_region = |offer: &&Offer| {
        offer
            .attribute("regionCode")
            .is_none_or(|code| code == region)
    };
    let mut figures: BTreeMap<(&str, &str), Option<(Decimal, String)>> = BTreeMap::new();
    for (usage, architecture, field) in FARGATE_USAGE {
        let slot = figures.entry((architecture, field)).or_default();
        for offer in fargate.iter().filter(in_region) {
            if offer.attribute("usagetype").map(usage_without_region) == Some(usage) {
                keep_one(
                    slot,
                    &format!("Fargate {usage} in {region}"),
                    offer.usd,
                    offer.source("AmazonECS", fetched_on),
                )?;
            }
        }
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut toml = format!(
        "# Prices for {region} from the AWS Price List API, fetched {fetched_on} by\n\
         # `batchguard prices fetch`. On-demand only: Fargate Spot and EC2 Spot are not in the\n\
         # Price List (add `capacity = \"spot\"` / `spot_hour` entries from your bill).\n"
    );
    let storage = figures.get(&("*", "storage_gb_hour")).cloned().flatten();
    for architecture in ["x86_64", "arm64"] {
        let vcpu = figures.get(&(architecture, "vcpu_hour")).cloned().flatten();
        let gb = figures.get(&(architecture, "gb_hour")).cloned().flatten();
        match (&vcpu, &gb, &storage) {
            (Some((vcpu, vcpu_source)), Some((gb, gb_source)), Some((storage, _))) => {
                let _ = write!(
                    toml,
                    "\n[[fargate]]\nregion = \"{region}\"\narchitecture = \"{architecture}\"\ncapacity = \"on_demand\"\nvcpu_hour = \"{vcpu}\"\ngb_hour = \"{gb}\"\nstorage_gb_hour = \"{storage}\"\nsource = \"{}; {}\"\n",
                    escape(vcpu_source),
                    escape(gb_source)
                );
                found.push(format!("fargate {architecture} vcpu_hour = {vcpu}"));
                found.push(format!("fargate {architecture} gb_hour = {gb}"));
            }
            _ => {
                for (name, figure) in [("vcpu_hour", &vcpu), ("gb_hour", &gb)] {
                    if figure.is_none() {
                        missing.push(format!("fargate {architecture} {name} in {region}"));
                    }
                }
                if storage.is_none() {
                    missing.push(format!("fargate storage_gb_hour in {region}"));
                }
            }
        }
    }
    if let Some((storage, _)) = &storage {
        found.push(format!("fargate storage_gb_hour = {storage}"));
    }
    missing.dedup();

    for instance_type in instance_types {
        let mut slot = None;
        let mut specs = None;
        for offer in ec2.iter().filter(in_region).filter(|o| {
            o.attribute("instanceType") == Some(instance_type.as_str()) && plain_linux_on_demand(o)
        }) {
            keep_one(
                &mut slot,
                &format!("EC2 {instance_type} (Linux, shared) in {region}"),
                offer.usd,
                offer.source("AmazonEC2", fetched_on),
            )?;
            specs = specs.or_else(|| InstanceSpecs::of(offer));
        }
        match slot {
            Some((usd, source)) => {
                let _ = write!(
                    toml,
                    "\n[[ec2]]\nregion = \"{region}\"\ninstance_type = \"{instance_type}\"\non_demand_hour = \"{usd}\"\n"
                );
                let mut line = format!("ec2 {instance_type} = {usd}");
                if let Some(specs) = specs {
                    // A fraction of a GiB is written as a string, as money is: a TOML float
                    // would pass through binary floating point.
                    let memory = if specs.memory_gib.fract().is_zero() {
                        specs.memory_gib.normalize().to_string()
                    } else {
                        format!("\"{}\"", specs.memory_gib.normalize())
                    };
                    let _ = write!(toml, "vcpu = {}\nmemory_gib = {memory}\n", specs.vcpu);
                    let _ = write!(
                        line,
                        " ({} vCPU, {} GiB",
                        specs.vcpu,
                        specs.memory_gib.normalize()
                    );
                    if let Some(gpus) = specs.gpus {
                        let _ = writeln!(toml, "gpus = {gpus}");
                        let _ = write!(line, ", {gpus} GPU");
                    }
                    line.push(')');
                }
                let _ = writeln!(toml, "source = \"{}\"", escape(&source));
                found.push(line);
            }
            None => missing.push(format!("ec2 {instance_type} (Linux, shared) in {region}")),
        }
    }
    Ok(FetchedPrices {
        toml,
        found,
        missing,
    })
}

/// What an instance type offers, from its Price List attributes (`vcpu` "4", `memory`
/// "16 GiB", "1,152 GiB" or "3.75 GiB", `gpu` "8"). A type without readable figures gets no
/// specs, and batchguard then splits its bill by the resources its container instance
/// registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InstanceSpecs {
    vcpu: u32,
    memory_gib: Decimal,
    gpus: Option<u32>,
}

impl InstanceSpecs {
    fn of(offer: &Offer) -> Option<Self> {
        let vcpu: u32 = offer.attribute("vcpu")?.trim().parse().ok()?;
        let memory = offer.attribute("memory")?.trim();
        let memory = memory.strip_suffix("GiB").unwrap_or(memory).trim();
        let memory_gib: Decimal = memory.replace(',', "").parse().ok()?;
        let gpus = offer
            .attribute("gpu")
            .and_then(|g| g.trim().parse::<u32>().ok())
            .filter(|&g| g > 0);
        (vcpu > 0 && memory_gib > Decimal::ZERO).then_some(Self {
            vcpu,
            memory_gib,
            gpus,
        })
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer_with(attributes: &[(&str, &str)]) -> Offer {
        Offer {
            sku: "SKU".into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            usd: Decimal::ONE,
            effective_date: None,
            publication_date: None,
        }
    }

    #[test]
    fn instance_specs_come_from_the_price_list_attributes() {
        let m5 = offer_with(&[("vcpu", "2"), ("memory", "8 GiB")]);
        assert_eq!(
            InstanceSpecs::of(&m5),
            Some(InstanceSpecs {
                vcpu: 2,
                memory_gib: Decimal::from(8),
                gpus: None
            })
        );
        let p4d = offer_with(&[("vcpu", "96"), ("memory", "1,152 GiB"), ("gpu", "8")]);
        assert_eq!(
            InstanceSpecs::of(&p4d),
            Some(InstanceSpecs {
                vcpu: 96,
                memory_gib: Decimal::from(1152),
                gpus: Some(8)
            })
        );
        // A fraction of a GiB, as a c4.large's; a missing or unreadable figure gives no specs.
        assert_eq!(
            InstanceSpecs::of(&offer_with(&[("vcpu", "2"), ("memory", "3.75 GiB")])),
            Some(InstanceSpecs {
                vcpu: 2,
                memory_gib: Decimal::new(375, 2),
                gpus: None
            })
        );
        assert_eq!(InstanceSpecs::of(&offer_with(&[("vcpu", "2")])), None);
        assert_eq!(
            InstanceSpecs::of(&offer_with(&[("vcpu", "NA"), ("memory", "8 GiB")])),
            None
        );
    }

    #[test]
    fn region_prefixes_come_off_usage_types() {
        assert_eq!(
            usage_without_region("USE1-Fargate-GB-Hours"),
            "Fargate-GB-Hours"
        );
        assert_eq!(
            usage_without_region("EUW1-Fargate-ARM-vCPU-Hours:perCPU"),
            "Fargate-ARM-vCPU-Hours:perCPU"
        );
        assert_eq!(usage_without_region("Fargate-GB-Hours"), "Fargate-GB-Hours");
        assert_eq!(
            usage_without_region("BoxUsage:m5.large"),
            "BoxUsage:m5.large"
        );
        assert_eq!(
            usage_without_region("APS2-BoxUsage:m5.large"),
            "BoxUsage:m5.large"
        );
    }
}
