//! Reconciliation with the bill: the Cost and Usage Report's line items for ECS tasks, matched to
//! batchguard's own per-task figures by resource id (the task ARN), for one day.
//!
//! Fargate tasks are billed under `AmazonECS` with the task ARN as `line_item_resource_id`; an
//! EC2 task with split cost allocation data has its instance as
//! `split_line_item_parent_resource_id` and its share as `split_line_item_split_cost`. Only
//! `Usage` lines count (credits, taxes, Savings Plans and reservations are other questions).
//! What the bill paid for Spot, per vCPU-hour and GB-hour, is the *effective Spot price*,
//! which can go into the price file.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::report::money;
use crate::core::facts::Architecture;
use crate::core::ledger::TaskWindowCost;

/// Effective prices (USD per hour) and the usage hours behind them are rounded to this many
/// decimal places: finer than any published price, coarser than the noise of a Parquet
/// export's `double` columns.
pub const PRICE_DECIMAL_PLACES: u32 = 10;

/// One CUR line item, the columns reconciliation reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLine {
    pub resource_id: String,
    pub product_code: String,
    pub usage_type: String,
    pub line_item_type: String,
    /// `line_item_usage_start_date`, Unix seconds.
    pub usage_start: i64,
    pub usage_amount: Decimal,
    /// `line_item_unblended_cost`, or `split_line_item_split_cost` for a split line.
    pub cost_usd: Decimal,
    pub region: String,
    /// `split_line_item_parent_resource_id` (an EC2 instance) for a split line.
    pub parent_resource_id: Option<String>,
}

impl BillLine {
    /// A task's line: Fargate usage of a task, or a task's split of an EC2 instance.
    fn is_task_usage(&self) -> bool {
        self.line_item_type == "Usage"
            && self.resource_id.contains(":task/")
            && ((self.product_code == "AmazonECS" && self.usage_type.contains("Fargate"))
                || self.parent_resource_id.is_some())
    }

    fn is_spot(&self) -> bool {
        self.usage_type.contains("Spot")
    }

    fn architecture(&self) -> Architecture {
        if self.usage_type.contains("ARM") {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        }
    }
}

/// How one task's figures compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Within the tolerance.
    Matched,
    /// Both have it, the amounts differ by more than the tolerance.
    Drift,
    /// The bill has it, batchguard does not (an event never arrived, or another scope).
    MissingFromLedger,
    /// batchguard has it, the bill does not (yet: the bill lags, or the task was not billed).
    MissingFromBill,
    /// batchguard could not price it.
    Unpriced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskDrift {
    pub task_arn: String,
    pub job_id: Option<String>,
    pub queue: String,
    pub spot: bool,
    pub ledger_usd: Option<Decimal>,
    pub billed_usd: Option<Decimal>,
    /// `ledger − billed`.
    pub difference_usd: Option<Decimal>,
    #[serde(rename = "match")]
    pub outcome: Match,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    pub ledger_usd: Decimal,
    pub billed_usd: Decimal,
    pub difference_usd: Decimal,
    pub tasks: u64,
    pub drifting: u64,
}

/// What the bill actually charged for Spot capacity, per region and architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveSpotPrice {
    pub region: String,
    pub architecture: &'static str,
    pub vcpu_hour: Option<Decimal>,
    pub gb_hour: Option<Decimal>,
    pub vcpu_hours: Decimal,
    pub gb_hours: Decimal,
}

/// The reconciliation of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub day_start: i64,
    pub tolerance_usd: Decimal,
    pub total: Sums,
    pub by_queue: BTreeMap<String, Sums>,
    /// Every task either side knows, by ARN.
    pub tasks: Vec<TaskDrift>,
    pub effective_spot_prices: Vec<EffectiveSpotPrice>,
    /// Bill lines read and used.
    pub bill_lines_read: u64,
    pub bill_lines_used: u64,
}

/// Queue name for a billed task batchguard has never seen.
pub const NOT_IN_LEDGER: &str = "(not in the ledger)";

/// Reconciles `[day_start, day_start + 86,400)`: `ledger` is
/// [`crate::core::ledger::Ledger::task_costs_between`] over the same day, `lines` the bill.
pub fn reconcile(
    day_start: i64,
    lines: &[BillLine],
    ledger: &[TaskWindowCost],
    tolerance_usd: Decimal,
) -> Reconciliation {
    let day_end = day_start + 86_400;
    let used: Vec<&BillLine> = lines
        .iter()
        .filter(|l| l.is_task_usage() && (day_start..day_end).contains(&l.usage_start))
        .collect();
    let mut billed: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in &used {
        *billed.entry(line.resource_id.as_str()).or_default() += line.cost_usd;
    }
    let ours: BTreeMap<&str, &TaskWindowCost> = ledger
        .iter()
        .filter(|t| t.billed_seconds > 0)
        .map(|t| (t.task_arn.as_str(), t))
        .collect();

    let mut tasks = Vec::new();
    let mut arns: Vec<&str> = billed.keys().chain(ours.keys()).copied().collect();
    arns.sort_unstable();
    arns.dedup();
    for arn in arns {
        let task = ours.get(arn).copied();
        let bill = billed.get(arn).copied();
        let ledger_usd = task.and_then(|t| t.cost_usd);
        let outcome = match (task, bill, ledger_usd) {
            (None, _, _) => Match::MissingFromLedger,
            (Some(_), _, None) => Match::Unpriced,
            (Some(_), None, Some(_)) => Match::MissingFromBill,
            (Some(_), Some(bill), Some(ours)) if (ours - bill).abs() <= tolerance_usd => {
                Match::Matched
            }
            (Some(_), Some(_), Some(_)) => Match::Drift,
        };
        tasks.push(TaskDrift {
            task_arn: arn.to_owned(),
            job_id: task.and_then(|t| t.job_id.clone()),
            queue: task.map_or_else(|| NOT_IN_LEDGER.to_owned(), |t| t.queue.clone()),
            spot: task.is_some_and(|t| t.spot),
            ledger_usd,
            billed_usd: bill,
            difference_usd: Some(ledger_usd.unwrap_or_default() - bill.unwrap_or_default()),
            outcome,
        });
    }

    // Reported like every figure of batchguard's, to 10 decimal places; the sums are of the
    // reported figures, so they add up exactly.
    for task in &mut tasks {
        task.ledger_usd = task.ledger_usd.map(money);
        task.billed_usd = task.billed_usd.map(money);
        task.difference_usd = task.difference_usd.map(money);
    }
    let mut total = Sums::default();
    let mut by_queue: BTreeMap<String, Sums> = BTreeMap::new();
    for task in &tasks {
        for sums in [&mut total, by_queue.entry(task.queue.clone()).or_default()] {
            sums.ledger_usd += task.ledger_usd.unwrap_or_default();
            sums.billed_usd += task.billed_usd.unwrap_or_default();
            sums.difference_usd += task.difference_usd.unwrap_or_default();
            sums.tasks += 1;
            if task.outcome != Match::Matched {
                sums.drifting += 1;
            }
        }
    }

    // Effective Spot prices: Σ cost / Σ usage of the Spot vCPU and memory lines.
    let mut spot: BTreeMap<(String, Architecture), [(Decimal, Decimal); 2]> = BTreeMap::new();
    for line in used.iter().filter(|l| l.is_spot()) {
        let slot = if line.usage_type.contains("vCPU") {
            0
        } else if line.usage_type.contains("GB-Hours") && !line.usage_type.contains("Storage") {
            1
        } else {
            continue;
        };
        let entry = spot
            .entry((line.region.clone(), line.architecture()))
            .or_default();
        entry[slot].0 += line.cost_usd;
        entry[slot].1 += line.usage_amount;
    }
    let effective_spot_prices = spot
        .into_iter()
        .map(|((region, architecture), [vcpu, gb])| EffectiveSpotPrice {
            region,
            architecture: architecture.as_str(),
            vcpu_hour: (!vcpu.1.is_zero())
                .then(|| (vcpu.0 / vcpu.1).round_dp(PRICE_DECIMAL_PLACES).normalize()),
            gb_hour: (!gb.1.is_zero())
                .then(|| (gb.0 / gb.1).round_dp(PRICE_DECIMAL_PLACES).normalize()),
            vcpu_hours: vcpu.1.round_dp(PRICE_DECIMAL_PLACES).normalize(),
            gb_hours: gb.1.round_dp(PRICE_DECIMAL_PLACES).normalize(),
        })
        .collect();

    Reconciliation {
        day_start,
        tolerance_usd,
        total,
        by_queue,
        tasks,
        effective_spot_prices,
        bill_lines_read: lines.len() as u64,
        bill_lines_used: used.len() as u64,
    }
}

impl Reconciliation {
    /// The effective Spot prices as `[[fargate]]` entries of a price file; ephemeral storage,
    /// which Spot does not discount, at `storage_gb_hour(region, architecture)`.
    pub fn spot_price_file(&self, storage_gb_hour: impl Fn(&str, &str) -> Decimal) -> String {
        let mut out = String::from(
            "# Fargate Spot prices actually paid, from the Cost and Usage Report\n# (`batchguard reconcile`).\n",
        );
        for price in &self.effective_spot_prices {
            let (Some(vcpu), Some(gb)) = (price.vcpu_hour, price.gb_hour) else {
                continue;
            };
            let storage_gb_hour = storage_gb_hour(&price.region, price.architecture);
            out.push_str(&format!(
                "\n[[fargate]]\nregion = \"{}\"\narchitecture = \"{}\"\ncapacity = \"spot\"\nvcpu_hour = \"{vcpu}\"\ngb_hour = \"{gb}\"\nstorage_gb_hour = \"{storage_gb_hour}\"\nsource = \"Cost and Usage Report: {} vCPU-hours and {} GB-hours of Spot usage\"\n",
                price.region, price.architecture, price.vcpu_hours, price.gb_hours
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::facts::{Platform, TaskSize};

    const TASK: &str = "arn:aws:ecs:us-east-1:1:task/AWSBatch-ce/abc";

    fn line(usage_type: &str, start: i64, cost: Decimal) -> BillLine {
        BillLine {
            resource_id: TASK.into(),
            product_code: "AmazonECS".into(),
            usage_type: usage_type.into(),
            line_item_type: "Usage".into(),
            usage_start: start,
            usage_amount: Decimal::ONE,
            cost_usd: cost,
            region: "us-east-1".into(),
            parent_resource_id: None,
        }
    }

    fn ours(cost: Decimal) -> TaskWindowCost {
        TaskWindowCost {
            task_arn: TASK.into(),
            job_id: Some("j".into()),
            queue: "q".into(),
            platform: Platform::Fargate,
            spot: false,
            region: Some("us-east-1".into()),
            architecture: Architecture::X86_64,
            size: TaskSize {
                vcpu: Decimal::ONE,
                memory_gib: Decimal::TWO,
                storage_gib: None,
                gpus: None,
            },
            billed_seconds: 600,
            cost_usd: Some(cost),
        }
    }

    #[test]
    fn only_the_days_usage_lines_of_tasks_count() {
        let day = 1_795_392_000; // 2026-11-23T00:00:00Z
        let lines = vec![
            line(
                "USE1-Fargate-vCPU-Hours:perCPU",
                day + 3600,
                Decimal::new(4, 2),
            ),
            // The day before, a credit, and an EC2 instance's own line: not the task's.
            line("USE1-Fargate-vCPU-Hours:perCPU", day - 3600, Decimal::ONE),
            BillLine {
                line_item_type: "Credit".into(),
                ..line("USE1-Fargate-GB-Hours", day + 60, Decimal::ONE)
            },
            BillLine {
                resource_id: "i-0abc".into(),
                product_code: "AmazonEC2".into(),
                ..line("BoxUsage:m5.large", day, Decimal::ONE)
            },
        ];
        let result = reconcile(day, &lines, &[ours(Decimal::new(4, 2))], Decimal::new(1, 6));
        assert_eq!(result.bill_lines_used, 1);
        assert_eq!(result.tasks[0].outcome, Match::Matched);
        assert_eq!(result.total.billed_usd, Decimal::new(4, 2));
    }

    #[test]
    fn an_ec2_tasks_split_of_its_instance_is_its_bill() {
        let day = 1_795_392_000;
        let split = BillLine {
            product_code: "AmazonEC2".into(),
            parent_resource_id: Some("i-0abc".into()),
            ..line("BoxUsage:m5.large", day + 7200, Decimal::new(3, 2))
        };
        let result = reconcile(
            day,
            &[split],
            &[ours(Decimal::new(5, 2))],
            Decimal::new(1, 6),
        );
        assert_eq!(result.tasks[0].outcome, Match::Drift);
        assert_eq!(result.tasks[0].difference_usd, Some(Decimal::new(2, 2)));
    }
}
