//! Cost and Usage Report exports as AWS writes them (CSV and Parquet), generated from a
//! workload's ground truth, for the reconciliation tests.

use rust_decimal::Decimal;

use crate::builders::IndependentPrices;
use shared::analysis::synth::TrueTask;

/// What a Cost and Usage Report charges for Fargate Spot in [`cur_csv`]: not the 30 % the
/// ledger assumes, so reconciliation has a drift to find and a price to learn.
pub const BILLED_SPOT_X86: (Decimal, Decimal) = (
    Decimal::from_parts(125, 0, 0, false, 4),
    Decimal::from_parts(137, 0, 0, false, 5),
);
pub const BILLED_SPOT_ARM: (Decimal, Decimal) = (
    Decimal::from_parts(101, 0, 0, false, 4),
    Decimal::from_parts(111, 0, 0, false, 5),
);

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A CUR 2.0 export (CSV, the column names AWS writes, a few more columns than batchguard
/// reads, in AWS's order) of the Fargate tasks of a generated workload billed up to `until_ms`:
/// one line item per task, hour and usage type (vCPU, memory, ephemeral storage above 20 GiB),
/// per second with the one-minute minimum from the image pull. On-demand at the published
/// prices; Spot at [`BILLED_SPOT_X86`] / [`BILLED_SPOT_ARM`].
pub fn cur_csv(tasks: &[TrueTask], until_ms: i64) -> String {
    let prices = IndependentPrices::default();
    let mut out = String::from(
        "identity_line_item_id,identity_time_interval,bill_bill_type,bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_product_code,line_item_usage_type,line_item_operation,line_item_resource_id,line_item_usage_amount,line_item_unblended_rate,line_item_unblended_cost,line_item_currency_code,product_region_code,resource_tags,split_line_item_parent_resource_id,split_line_item_split_cost\n",
    );
    let iso = |seconds: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string()
    };
    let mut id = 0_u64;
    for task in tasks {
        if task.pull_started_ms > until_ms {
            continue;
        }
        let stop = task
            .stopped_ms
            .filter(|&s| s <= until_ms)
            .unwrap_or(until_ms);
        let anchor = task.pull_started_ms.div_euclid(1000);
        let billed = (stop - task.pull_started_ms + 999).div_euclid(1000).max(60);
        let (end, vcpu) = (
            anchor + billed,
            Decimal::from(task.cpu_units) / Decimal::from(1024),
        );
        let gib = Decimal::from(task.memory_mib) / Decimal::from(1024);
        let arch = if task.arm { "ARM-" } else { "" };
        let spot = if task.spot { "SpotUsage-" } else { "" };
        let (vcpu_price, gb_price) = match (task.spot, task.arm) {
            (true, false) => BILLED_SPOT_X86,
            (true, true) => BILLED_SPOT_ARM,
            (false, false) => (prices.x86_vcpu_hour, prices.x86_gb_hour),
            (false, true) => (prices.arm_vcpu_hour, prices.arm_gb_hour),
        };
        let storage = Decimal::from(task.storage_gib.saturating_sub(20));
        let mut hour = anchor - anchor.rem_euclid(3600);
        while hour < end {
            let seconds = Decimal::from(end.min(hour + 3600) - anchor.max(hour));
            for (usage_type, amount, price) in [
                (
                    format!("USE1-{spot}Fargate-{arch}vCPU-Hours:perCPU"),
                    vcpu,
                    vcpu_price,
                ),
                (format!("USE1-{spot}Fargate-{arch}GB-Hours"), gib, gb_price),
                (
                    "USE1-Fargate-EphemeralStorage-GB-Hours".to_owned(),
                    storage,
                    prices.storage_gb_hour,
                ),
            ] {
                if amount.is_zero() {
                    continue;
                }
                id += 1;
                let usage = amount * seconds / Decimal::from(3600);
                let cost = usage * price;
                let fields = [
                    format!("li{id:08}"),
                    format!("{}/{}", iso(hour), iso(hour + 3600)),
                    "Anniversary".into(),
                    iso(hour - hour.rem_euclid(86_400)),
                    "123456789012".into(),
                    "123456789012".into(),
                    "Usage".into(),
                    iso(hour),
                    iso(hour + 3600),
                    "AmazonECS".into(),
                    usage_type.clone(),
                    "FargateTask".into(),
                    task.task_arn.clone(),
                    usage.normalize().to_string(),
                    price.to_string(),
                    cost.normalize().to_string(),
                    "USD".into(),
                    "us-east-1".into(),
                    format!("{{\"user:queue\":\"{}\"}}", task.queue),
                    String::new(),
                    String::new(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            hour += 3600;
        }
    }
    out
}

/// The export [`cur_csv`] writes, as AWS writes it in Parquet: Snappy-compressed, money and
/// amounts as `double`, dates as `timestamp` (milliseconds, UTC), everything else text.
/// (`resource_tags`, a map in CUR 2.0 Parquet, stays its JSON text here.)
pub fn cur_parquet(csv_text: &str) -> Vec<u8> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    #[derive(Clone, Copy)]
    enum Kind {
        Text,
        Double,
        Timestamp,
    }
    let kind = |name: &str| {
        if name.ends_with("_date") {
            Kind::Timestamp
        } else if name.ends_with("_amount") || name.ends_with("_cost") || name.ends_with("_rate") {
            Kind::Double
        } else {
            Kind::Text
        }
    };
    let message = headers
        .iter()
        .map(|name| match kind(name) {
            Kind::Text => format!("optional binary {name} (STRING);"),
            Kind::Double => format!("optional double {name};"),
            Kind::Timestamp => format!("optional int64 {name} (TIMESTAMP(MILLIS,true));"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(&format!("message schema {{ {message} }}"))
            .unwrap(),
    );
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, properties).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for (column, name) in headers.iter().enumerate() {
        let cells: Vec<&str> = records
            .iter()
            .map(|r| r.get(column).unwrap_or(""))
            .collect();
        let levels: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
        let mut writer = group.next_column().unwrap().unwrap();
        match kind(name) {
            Kind::Text => {
                let values: Vec<ByteArray> = cells
                    .iter()
                    .filter(|c| !c.is_empty())
                    .map(|c| ByteArray::from(*c))
                    .collect();
                writer
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&levels), None)
                    .unwrap();
            }
            Kind::Double => {
                let values: Vec<f64> = cells
                    .iter()
                    .filter(|c| !c.is_empty())
                    .map(|c| c.parse().unwrap())
                    .collect();
                writer
                    .typed::<DoubleType>()
                    .write_batch(&values, Some(&levels), None)
                    .unwrap();
            }
            Kind::Timestamp => {
                let values: Vec<i64> = cells
                    .iter()
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        chrono::DateTime::parse_from_rfc3339(c)
                            .unwrap()
                            .timestamp_millis()
                    })
                    .collect();
                writer
                    .typed::<Int64Type>()
                    .write_batch(&values, Some(&levels), None)
                    .unwrap();
            }
        }
        writer.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}
