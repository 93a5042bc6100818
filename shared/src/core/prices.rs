//! Prices as data: Fargate rates keyed by region × architecture × capacity, EC2 instance
//! prices keyed by region × instance type.
//!
//! The built-in tables are `shared/prices/fargate.toml` and `shared/prices/ec2.toml` (sources
//! documented there); a user's price file in the same format overrides them entry by entry.
//! A region or instance type with no entry is an explicit [`Unpriced`] outcome, never a
//! silent $0.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::facts::{Architecture, Capacity, TaskSize};

/// The built-in price files, compiled in so the binary needs nothing beside them.
pub const BUILTIN_PRICE_FILE: &str = include_str!("../../prices/fargate.toml");
pub const BUILTIN_EC2_PRICE_FILE: &str = include_str!("../../prices/ec2.toml");

/// An EC2 instance type's price in one region, USD per instance-hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ec2Rates {
    pub on_demand_hour: Decimal,
    pub spot_hour: Option<Decimal>,
}

/// What an EC2 instance costs per hour, and whether that is the price paid or an estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ec2Price {
    pub hourly: Decimal,
    pub on_demand_hourly: Decimal,
    /// The type's vCPUs, memory (GiB) and GPUs, when the table has them.
    pub specs: Option<super::split::Resources>,
    pub spot: bool,
    /// Spot, but priced at on-demand for want of a `spot_hour`.
    pub estimated: bool,
}

/// Fargate prices for one region, architecture and capacity, USD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FargateRates {
    pub vcpu_hour: Decimal,
    pub gb_hour: Decimal,
    pub storage_gb_hour: Decimal,
    /// Ephemeral storage up to this size is included in the task price.
    pub free_storage_gib: u32,
}

impl FargateRates {
    /// USD per hour for a task of this size:
    /// `vCPU × vcpu_hour + GiB × gb_hour + max(0, storage − free) × storage_gb_hour`.
    pub fn hourly(&self, size: &TaskSize) -> Decimal {
        let storage = size.storage_gib.unwrap_or(0);
        let billable_storage = Decimal::from(storage.saturating_sub(self.free_storage_gib));
        size.vcpu * self.vcpu_hour
            + size.memory_gib * self.gb_hour
            + billable_storage * self.storage_gb_hour
    }
}

/// Why a task has no price.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unpriced {
    /// The price table has no entry for this region and architecture.
    NoPriceForRegion {
        region: String,
        architecture: Architecture,
    },
    /// No event said which region the task ran in.
    UnknownRegion,
    /// No event gave the task's vCPU and memory.
    UnknownSize,
    /// An EC2 task or attempt whose container instance no event has described yet.
    UnknownInstance,
    /// The price table has no entry for this EC2 instance type in this region.
    NoInstancePrice {
        region: String,
        instance_type: String,
    },
    /// No event named the instance's type.
    UnknownInstanceType,
    /// A Windows task on Fargate: billed at Windows rates plus an OS licence per vCPU-hour,
    /// with a longer minimum, which batchguard does not price (never at Linux rates).
    WindowsOnFargate,
    /// A job of AWS Batch on Amazon EKS: its pod is billed as its EC2 node's share, and no
    /// event describes the node (its instance type); batchguard does not look it up yet.
    EksNode,
}

impl std::fmt::Display for Unpriced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoPriceForRegion {
                region,
                architecture,
            } => write!(
                f,
                "no Fargate price for region {region} ({}): add it to your price file",
                architecture.as_str()
            ),
            Self::UnknownRegion => f.write_str("no event named the region"),
            Self::UnknownSize => f.write_str("no event named the task size"),
            Self::UnknownInstance => f.write_str(
                "runs on an EC2 instance no ECS Container Instance State Change has described",
            ),
            Self::NoInstancePrice {
                region,
                instance_type,
            } => write!(
                f,
                "no EC2 price for {instance_type} in {region}: add it to your price file"
            ),
            Self::UnknownInstanceType => f.write_str("no event named the EC2 instance type"),
            Self::WindowsOnFargate => f.write_str(
                "Windows on Fargate: Windows vCPU and memory rates, an OS licence fee and a longer minimum apply, which batchguard does not price",
            ),
            Self::EksNode => f.write_str(
                "AWS Batch on Amazon EKS: a pod is a share of its EC2 node, and no event names the node's instance type",
            ),
        }
    }
}

/// A bad price file: each variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price file is not valid: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error(
        "price entry {index} ({region}, {architecture}, {capacity}): {field} must not be negative"
    )]
    Negative {
        index: usize,
        region: String,
        architecture: &'static str,
        capacity: &'static str,
        field: &'static str,
    },
    #[error("spot_fraction_of_on_demand must be between 0 and 1, got {0}")]
    SpotFraction(Decimal),
    #[error("ec2 entry {index} ({region}, {instance_type}): {field} must not be negative")]
    NegativeEc2 {
        index: usize,
        region: String,
        instance_type: String,
        field: &'static str,
    },
    /// A figure no AWS price comes near (and whose products with task sizes and times could
    /// overflow): more than [`MAX_FARGATE_UNIT_HOUR`] or [`MAX_EC2_HOUR`].
    #[error("{entry}: {field} = {value} is more than {max} USD an hour, which is not a price")]
    TooLarge {
        entry: String,
        field: &'static str,
        value: Decimal,
        max: Decimal,
    },
}

/// The most a Fargate vCPU-hour, GB-hour or storage GB-hour may cost in a price file.
pub const MAX_FARGATE_UNIT_HOUR: u32 = 100;
/// The most an EC2 instance-hour may cost in a price file (the largest instances cost a few
/// hundred).
pub const MAX_EC2_HOUR: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default, deserialize_with = "optional_decimal_string")]
    spot_fraction_of_on_demand: Option<Decimal>,
    #[serde(default)]
    free_ephemeral_storage_gib: Option<u32>,
    #[serde(default)]
    fargate: Vec<PriceEntry>,
    #[serde(default)]
    ec2: Vec<Ec2Entry>,
    /// Compute environments whose instances are Spot (ECS events do not say).
    #[serde(default)]
    ec2_spot_compute_environments: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ec2Entry {
    region: String,
    instance_type: String,
    #[serde(deserialize_with = "decimal_string")]
    on_demand_hour: Decimal,
    #[serde(default, deserialize_with = "optional_decimal_string")]
    spot_hour: Option<Decimal>,
    /// What the type offers: vCPUs, memory in GiB (as AWS lists it: a whole number, or a
    /// string for a fraction, "3.75"), GPUs.
    #[serde(default)]
    vcpu: Option<u32>,
    #[serde(default, deserialize_with = "optional_gib")]
    memory_gib: Option<Decimal>,
    #[serde(default)]
    gpus: Option<u32>,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for people reading the file")]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    region: String,
    architecture: Architecture,
    capacity: Capacity,
    #[serde(deserialize_with = "decimal_string")]
    vcpu_hour: Decimal,
    #[serde(deserialize_with = "decimal_string")]
    gb_hour: Decimal,
    #[serde(deserialize_with = "decimal_string")]
    storage_gb_hour: Decimal,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for people reading the file")]
    source: Option<String>,
}

/// Money in a price file is a string ("0.04048"): a TOML float would pass through binary
/// floating point on the way in, so it is refused.
fn decimal_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a decimal number: {e}")))
}

/// GiB as a whole number (`8`) or, for a fraction, a string (`"3.75"`, a c4.large's): a TOML
/// float is refused, as for money.
fn optional_gib<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Gib {
        Whole(u32),
        Text(String),
    }
    match Gib::deserialize(deserializer)? {
        Gib::Whole(gib) => Ok(Some(Decimal::from(gib))),
        Gib::Text(text) => text.parse().map(Some).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a decimal number of GiB: {e}"))
        }),
    }
}

fn optional_decimal_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    decimal_string(deserializer).map(Some)
}

type PriceKey = (String, Architecture, Capacity);

/// Fargate prices by region × architecture × capacity, EC2 prices by region × instance type.
/// Cloning is cheap (the tables are shared): a projector builds a ledger per billing group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTable {
    tables: std::sync::Arc<Tables>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tables {
    entries: BTreeMap<PriceKey, FargateRates>,
    spot_fraction: Decimal,
    free_storage_gib: u32,
    ec2: BTreeMap<(String, String), Ec2Rates>,
    /// What each EC2 instance type offers, by type.
    specs: BTreeMap<String, super::split::Resources>,
    spot_compute_environments: std::collections::BTreeSet<String>,
}

impl PriceTable {
    /// The built-in table (us-east-1 Linux x86_64 and arm64).
    pub fn builtin() -> Self {
        let mut table = Self {
            tables: std::sync::Arc::new(Tables {
                entries: BTreeMap::new(),
                spot_fraction: Decimal::ONE,
                free_storage_gib: 0,
                ec2: BTreeMap::new(),
                specs: BTreeMap::new(),
                spot_compute_environments: std::collections::BTreeSet::new(),
            }),
        };
        #[allow(
            clippy::expect_used,
            reason = "the built-in files are checked by a unit test"
        )]
        {
            table
                .merge_toml(BUILTIN_PRICE_FILE)
                .expect("built-in price file is valid");
            table
                .merge_toml(BUILTIN_EC2_PRICE_FILE)
                .expect("built-in EC2 price file is valid");
        }
        table
    }

    /// The built-in table with a user's price file laid over it.
    pub fn builtin_with_overrides(override_file: &str) -> Result<Self, PriceError> {
        let mut table = Self::builtin();
        table.merge_toml(override_file)?;
        Ok(table)
    }

    /// Lays a price file over this table: entries with the same key are replaced.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), PriceError> {
        let file: PriceFile = toml::from_str(text)?;
        let tables = std::sync::Arc::make_mut(&mut self.tables);
        if let Some(fraction) = file.spot_fraction_of_on_demand {
            if fraction < Decimal::ZERO || fraction > Decimal::ONE {
                return Err(PriceError::SpotFraction(fraction));
            }
            tables.spot_fraction = fraction;
        }
        if let Some(free) = file.free_ephemeral_storage_gib {
            tables.free_storage_gib = free;
        }
        for (index, entry) in file.ec2.into_iter().enumerate() {
            for (field, value) in [
                ("on_demand_hour", Some(entry.on_demand_hour)),
                ("spot_hour", entry.spot_hour),
            ] {
                if value.is_some_and(|value| value < Decimal::ZERO) {
                    return Err(PriceError::NegativeEc2 {
                        index,
                        region: entry.region,
                        instance_type: entry.instance_type,
                        field,
                    });
                }
                if let Some(value) = value.filter(|&v| v > Decimal::from(MAX_EC2_HOUR)) {
                    return Err(PriceError::TooLarge {
                        entry: format!(
                            "ec2 entry {index} ({}, {})",
                            entry.region, entry.instance_type
                        ),
                        field,
                        value,
                        max: Decimal::from(MAX_EC2_HOUR),
                    });
                }
            }
            // What a type offers is the same in every region: kept once, by type, and kept
            // when a later entry (a user's price) does not repeat it.
            if let (Some(vcpu), Some(memory_gib)) = (entry.vcpu, entry.memory_gib)
                && vcpu > 0
                && memory_gib > Decimal::ZERO
            {
                tables.specs.insert(
                    entry.instance_type.clone(),
                    super::split::Resources {
                        vcpu: Decimal::from(vcpu.min(super::facts::limits::MAX_VCPU)),
                        memory_gib: memory_gib
                            .min(Decimal::from(super::facts::limits::MAX_MEMORY_GIB)),
                        gpus: Decimal::from(
                            entry.gpus.unwrap_or(0).min(super::facts::limits::MAX_GPUS),
                        ),
                    },
                );
            }
            tables.ec2.insert(
                (entry.region, entry.instance_type),
                Ec2Rates {
                    on_demand_hour: entry.on_demand_hour,
                    spot_hour: entry.spot_hour,
                },
            );
        }
        tables
            .spot_compute_environments
            .extend(file.ec2_spot_compute_environments);
        for (index, entry) in file.fargate.into_iter().enumerate() {
            for (field, value) in [
                ("vcpu_hour", entry.vcpu_hour),
                ("gb_hour", entry.gb_hour),
                ("storage_gb_hour", entry.storage_gb_hour),
            ] {
                if value < Decimal::ZERO {
                    return Err(PriceError::Negative {
                        index,
                        region: entry.region,
                        architecture: entry.architecture.as_str(),
                        capacity: entry.capacity.as_str(),
                        field,
                    });
                }
                if value > Decimal::from(MAX_FARGATE_UNIT_HOUR) {
                    return Err(PriceError::TooLarge {
                        entry: format!(
                            "price entry {index} ({}, {}, {})",
                            entry.region,
                            entry.architecture.as_str(),
                            entry.capacity.as_str()
                        ),
                        field,
                        value,
                        max: Decimal::from(MAX_FARGATE_UNIT_HOUR),
                    });
                }
            }
            tables.entries.insert(
                (entry.region, entry.architecture, entry.capacity),
                FargateRates {
                    vcpu_hour: entry.vcpu_hour,
                    gb_hour: entry.gb_hour,
                    storage_gb_hour: entry.storage_gb_hour,
                    free_storage_gib: 0, // set on lookup from the table-wide figure
                },
            );
        }
        Ok(())
    }

    /// Fargate rates for a task. Spot without its own entry is derived from on-demand.
    pub fn fargate(
        &self,
        region: &str,
        architecture: Architecture,
        capacity: Capacity,
    ) -> Result<FargateRates, Unpriced> {
        let lookup = |capacity| {
            // BTreeMap<(String, ..)> cannot be searched by &str without allocating a key;
            // the table is tiny, so a linear scan is cheaper than the allocation.
            self.tables
                .entries
                .iter()
                .find(|((r, a, c), _)| r == region && *a == architecture && *c == capacity)
                .map(|(_, rates)| *rates)
        };
        let rates = match (lookup(capacity), capacity) {
            (Some(rates), _) => rates,
            (None, Capacity::Spot) => {
                let on_demand =
                    lookup(Capacity::OnDemand).ok_or_else(|| no_price(region, architecture))?;
                FargateRates {
                    vcpu_hour: on_demand.vcpu_hour * self.tables.spot_fraction,
                    gb_hour: on_demand.gb_hour * self.tables.spot_fraction,
                    ..on_demand
                }
            }
            (None, Capacity::OnDemand) => return Err(no_price(region, architecture)),
        };
        Ok(FargateRates {
            free_storage_gib: self.tables.free_storage_gib,
            ..rates
        })
    }
}

impl PriceTable {
    /// The EC2 instance types the table prices, in any region.
    pub fn ec2_instance_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.tables.ec2.keys().map(|(_, t)| t.clone()).collect();
        types.sort();
        types.dedup();
        types
    }

    /// The EC2 instance types the table prices in `region`: each one's on-demand price (USD
    /// per instance-hour) and, when the table has them, its vCPUs, memory and GPUs.
    pub fn ec2_offers(
        &self,
        region: &str,
    ) -> impl Iterator<Item = (&str, Decimal, Option<super::split::Resources>)> {
        self.tables
            .ec2
            .iter()
            .filter(move |((r, _), _)| r == region)
            .map(|((_, instance_type), rates)| {
                (
                    instance_type.as_str(),
                    rates.on_demand_hour,
                    self.tables.specs.get(instance_type).copied(),
                )
            })
    }

    /// Whether the price file says this compute environment's instances are Spot.
    pub fn is_spot_compute_environment(&self, compute_environment: &str) -> bool {
        self.tables
            .spot_compute_environments
            .contains(compute_environment)
    }

    /// The hourly price of an EC2 instance of `instance_type` in `region`, in a compute
    /// environment that is Spot or not (see [`PriceTable::is_spot_compute_environment`]).
    pub fn ec2(&self, region: &str, instance_type: &str, spot: bool) -> Result<Ec2Price, Unpriced> {
        let rates = self
            .tables
            .ec2
            .iter()
            .find(|((r, t), _)| r == region && t == instance_type)
            .map(|(_, rates)| *rates)
            .ok_or_else(|| Unpriced::NoInstancePrice {
                region: region.to_owned(),
                instance_type: instance_type.to_owned(),
            })?;
        let (hourly, estimated) = match (spot, rates.spot_hour) {
            (true, Some(spot_hour)) => (spot_hour, false),
            (true, None) => (rates.on_demand_hour, true),
            (false, _) => (rates.on_demand_hour, false),
        };
        Ok(Ec2Price {
            hourly,
            on_demand_hourly: rates.on_demand_hour,
            specs: self.tables.specs.get(instance_type).copied(),
            spot,
            estimated,
        })
    }
}

fn no_price(region: &str, architecture: Architecture) -> Unpriced {
    Unpriced::NoPriceForRegion {
        region: region.to_owned(),
        architecture,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn size(vcpu: Decimal, memory_gib: Decimal, storage_gib: Option<u32>) -> TaskSize {
        TaskSize {
            vcpu,
            memory_gib,
            storage_gib,
            gpus: None,
        }
    }

    #[test]
    fn builtin_table_has_the_published_us_east_1_figures() {
        let table = PriceTable::builtin();
        let x86 = table
            .fargate("us-east-1", Architecture::X86_64, Capacity::OnDemand)
            .unwrap();
        assert_eq!(x86.vcpu_hour, dec!(0.04048));
        assert_eq!(x86.gb_hour, dec!(0.004445));
        assert_eq!(x86.storage_gb_hour, dec!(0.000111));
        assert_eq!(x86.free_storage_gib, 20);
        let arm = table
            .fargate("us-east-1", Architecture::Arm64, Capacity::OnDemand)
            .unwrap();
        assert_eq!((arm.vcpu_hour, arm.gb_hour), (dec!(0.03238), dec!(0.00356)));
    }

    #[test]
    fn spot_defaults_to_thirty_percent_of_on_demand_for_cpu_and_memory() {
        let spot = PriceTable::builtin()
            .fargate("us-east-1", Architecture::X86_64, Capacity::Spot)
            .unwrap();
        assert_eq!(spot.vcpu_hour, dec!(0.012144));
        assert_eq!(spot.gb_hour, dec!(0.0013335));
        assert_eq!(spot.storage_gb_hour, dec!(0.000111));
    }

    #[test]
    fn unknown_region_is_unpriced_not_zero() {
        let outcome =
            PriceTable::builtin().fargate("eu-west-1", Architecture::X86_64, Capacity::OnDemand);
        assert_eq!(
            outcome,
            Err(Unpriced::NoPriceForRegion {
                region: "eu-west-1".into(),
                architecture: Architecture::X86_64
            })
        );
    }

    #[test]
    fn override_file_replaces_and_adds_entries() {
        let table = PriceTable::builtin_with_overrides(
            r#"
            [[fargate]]
            region = "us-east-1"
            architecture = "x86_64"
            capacity = "spot"
            vcpu_hour = "0.0125"
            gb_hour = "0.0014"
            storage_gb_hour = "0.000111"

            [[fargate]]
            region = "eu-west-1"
            architecture = "x86_64"
            capacity = "on_demand"
            vcpu_hour = "0.04456"
            gb_hour = "0.004865"
            storage_gb_hour = "0.000122"
            "#,
        )
        .unwrap();
        let spot = table
            .fargate("us-east-1", Architecture::X86_64, Capacity::Spot)
            .unwrap();
        assert_eq!(spot.vcpu_hour, dec!(0.0125));
        let eu = table
            .fargate("eu-west-1", Architecture::X86_64, Capacity::OnDemand)
            .unwrap();
        assert_eq!(eu.gb_hour, dec!(0.004865));
    }

    #[test]
    fn hourly_rate_charges_storage_above_the_free_twenty_gib() {
        let rates = PriceTable::builtin()
            .fargate("us-east-1", Architecture::X86_64, Capacity::OnDemand)
            .unwrap();
        assert_eq!(
            rates.hourly(&size(dec!(1), dec!(2), Some(20))),
            dec!(0.04048) + dec!(2) * dec!(0.004445)
        );
        assert_eq!(
            rates.hourly(&size(dec!(1), dec!(2), Some(50))),
            dec!(0.04048) + dec!(2) * dec!(0.004445) + dec!(30) * dec!(0.000111)
        );
    }

    #[test]
    fn ec2_prices_come_from_the_table_and_spot_from_the_users_file() {
        let builtin = PriceTable::builtin();
        let m5 = builtin.ec2("us-east-1", "m5.large", false).unwrap();
        assert_eq!((m5.hourly, m5.estimated), (dec!(0.096), false));
        // Spot without a spot_hour: on-demand, flagged an estimate.
        let guess = builtin.ec2("us-east-1", "m5.large", true).unwrap();
        assert_eq!((guess.hourly, guess.estimated), (dec!(0.096), true));
        assert_eq!(
            builtin.ec2("eu-west-1", "m5.large", false),
            Err(Unpriced::NoInstancePrice {
                region: "eu-west-1".into(),
                instance_type: "m5.large".into()
            })
        );
        let table = PriceTable::builtin_with_overrides(
            r#"
            ec2_spot_compute_environments = ["spot-ce"]
            [[ec2]]
            region = "us-east-1"
            instance_type = "m5.large"
            on_demand_hour = "0.096"
            spot_hour = "0.0361"
            "#,
        )
        .unwrap();
        assert!(table.is_spot_compute_environment("spot-ce"));
        assert!(!table.is_spot_compute_environment("ondemand-ce"));
        let spot = table.ec2("us-east-1", "m5.large", true).unwrap();
        assert_eq!(
            (spot.hourly, spot.on_demand_hourly, spot.estimated),
            (dec!(0.0361), dec!(0.096), false)
        );
        let negative = PriceTable::builtin_with_overrides(
            "[[ec2]]\nregion=\"us-east-1\"\ninstance_type=\"x\"\non_demand_hour=\"1\"\nspot_hour=\"-1\"",
        )
        .unwrap_err();
        assert!(
            negative
                .to_string()
                .contains("spot_hour must not be negative"),
            "{negative}"
        );
    }

    #[test]
    fn bad_price_files_name_what_is_wrong() {
        let negative = PriceTable::builtin_with_overrides(
            r#"
            [[fargate]]
            region = "us-east-1"
            architecture = "arm64"
            capacity = "on_demand"
            vcpu_hour = "-1"
            gb_hour = "0"
            storage_gb_hour = "0"
            "#,
        )
        .unwrap_err();
        assert!(
            negative
                .to_string()
                .contains("vcpu_hour must not be negative"),
            "{negative}"
        );

        let typo = PriceTable::builtin_with_overrides("spot_fraction = \"0.3\"").unwrap_err();
        assert!(typo.to_string().contains("spot_fraction"), "{typo}");

        let float = PriceTable::builtin_with_overrides(
            "[[fargate]]\nregion=\"x\"\narchitecture=\"arm64\"\ncapacity=\"spot\"\nvcpu_hour=0.1\ngb_hour=\"0\"\nstorage_gb_hour=\"0\"",
        )
        .unwrap_err();
        assert!(float.to_string().contains("expected a string"), "{float}");
    }
}
