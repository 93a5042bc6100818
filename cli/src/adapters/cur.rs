//! Reading a Cost and Usage Report export (CUR 2.0 / split cost allocation data: CSV,
//! gzip-compressed CSV or Parquet, as AWS writes them) from a file, a directory or
//! `s3://bucket/prefix`, into the line items reconciliation needs.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use flate2::read::MultiGzDecoder;
use rust_decimal::Decimal;
use shared::analysis::bill::BillLine;

/// A CUR export batchguard cannot read; each variant names the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum CurError {
    #[error("{source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: no column {column} (a CUR 2.0 export has it)")]
    MissingColumn {
        source_name: String,
        column: &'static str,
    },
    #[error("{source_name}:{line}: {column} = {value:?}: {reason}")]
    BadValue {
        source_name: String,
        line: u64,
        column: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{0}: no CUR files (*.csv, *.csv.gz, *.parquet) there")]
    Empty(String),
    #[cfg(feature = "aws")]
    #[error("S3 {location}: {message}")]
    S3 { location: String, message: String },
}

const REQUIRED: [&str; 7] = [
    "line_item_resource_id",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_amount",
    "line_item_unblended_cost",
];

/// One line item's columns as read, before the split-cost rule.
struct RawLine {
    resource_id: String,
    product_code: String,
    usage_type: String,
    line_item_type: String,
    usage_start: i64,
    usage_amount: Decimal,
    unblended_cost: Decimal,
    region: String,
    parent_resource_id: Option<String>,
    split_cost: Option<Decimal>,
}

impl RawLine {
    /// A split line (an EC2 task's share of its instance) costs its split cost.
    fn into_bill_line(self) -> BillLine {
        let parent_resource_id = self.parent_resource_id.filter(|p| !p.is_empty());
        let cost_usd = match (&parent_resource_id, self.split_cost) {
            (Some(_), Some(split)) => split,
            _ => self.unblended_cost,
        };
        BillLine {
            resource_id: self.resource_id,
            product_code: self.product_code,
            usage_type: self.usage_type,
            line_item_type: self.line_item_type,
            usage_start: self.usage_start,
            usage_amount: self.usage_amount,
            cost_usd,
            region: self.region,
            parent_resource_id,
        }
    }
}

/// The line items of one CSV export file (gzip when `gzip`).
pub fn read_csv(
    source_name: &str,
    bytes: &[u8],
    gzip: bool,
    lines: &mut Vec<BillLine>,
) -> Result<(), CurError> {
    let read_error = |message: String| CurError::Read {
        source_name: source_name.to_owned(),
        message,
    };
    let mut text = Vec::new();
    if gzip {
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(|e| read_error(format!("not gzip: {e}")))?;
    } else {
        text.extend_from_slice(bytes);
    }
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| read_error(e.to_string()))?
        .clone();
    let column = |name: &'static str| headers.iter().position(|h| h == name);
    let mut required = [0_usize; REQUIRED.len()];
    for (slot, name) in required.iter_mut().zip(REQUIRED) {
        *slot = column(name).ok_or_else(|| CurError::MissingColumn {
            source_name: source_name.to_owned(),
            column: name,
        })?;
    }
    let [
        resource,
        product,
        usage_type,
        item_type,
        start,
        amount,
        cost,
    ] = required;
    let region = column("product_region_code");
    let parent = column("split_line_item_parent_resource_id");
    let split_cost = column("split_line_item_split_cost");
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2; // the header is line 1
        let record = record.map_err(|e| read_error(format!("line {line}: {e}")))?;
        let field = |i: usize| record.get(i).unwrap_or_default();
        let bad = |column: &'static str, value: &str, reason: &'static str| CurError::BadValue {
            source_name: source_name.to_owned(),
            line,
            column,
            value: value.to_owned(),
            reason,
        };
        let number = |i: usize, column: &'static str| -> Result<Decimal, CurError> {
            let text = field(i);
            if text.is_empty() {
                return Ok(Decimal::ZERO);
            }
            text.parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(text))
                .map_err(|_| bad(column, text, "not a decimal number"))
        };
        let usage_start = DateTime::parse_from_rfc3339(field(start))
            .map_err(|_| {
                bad(
                    "line_item_usage_start_date",
                    field(start),
                    "not an RFC 3339 time",
                )
            })?
            .timestamp();
        let raw = RawLine {
            resource_id: field(resource).to_owned(),
            product_code: field(product).to_owned(),
            usage_type: field(usage_type).to_owned(),
            line_item_type: field(item_type).to_owned(),
            usage_start,
            usage_amount: number(amount, "line_item_usage_amount")?,
            unblended_cost: number(cost, "line_item_unblended_cost")?,
            region: region.map(field).unwrap_or_default().to_owned(),
            parent_resource_id: parent.map(field).map(str::to_owned),
            split_cost: split_cost
                .map(|i| number(i, "split_line_item_split_cost"))
                .transpose()?,
        };
        lines.push(raw.into_bill_line());
    }
    Ok(())
}

#[cfg(feature = "parquet")]
/// The line items of one Parquet export file (AWS writes Snappy-compressed pages). Columns
/// may be typed (`double` money, `timestamp` dates, as AWS writes them) or text.
pub fn read_parquet(
    source_name: &str,
    bytes: bytes::Bytes,
    lines: &mut Vec<BillLine>,
) -> Result<(), CurError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use parquet::schema::types::Type;

    let read_error = |message: String| CurError::Read {
        source_name: source_name.to_owned(),
        message,
    };
    let reader = SerializedFileReader::new(bytes)
        .map_err(|e| read_error(format!("not a Parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    let find = |name: &str| fields.iter().find(|f| f.name() == name).cloned();
    let mut wanted = Vec::new();
    for name in REQUIRED {
        wanted.push(find(name).ok_or_else(|| CurError::MissingColumn {
            source_name: source_name.to_owned(),
            column: name,
        })?);
    }
    let optional = [
        "product_region_code",
        "split_line_item_parent_resource_id",
        "split_line_item_split_cost",
    ];
    let present: Vec<bool> = optional
        .iter()
        .map(|name| match find(name) {
            Some(field) => {
                wanted.push(field);
                true
            }
            None => false,
        })
        .collect();
    let projection = Type::group_type_builder(schema.name())
        .with_fields(wanted)
        .build()
        .map_err(|e| read_error(e.to_string()))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| read_error(e.to_string()))?;
    for (index, row) in rows.enumerate() {
        let line = index as u64 + 1; // row number
        let row = row.map_err(|e| read_error(format!("row {line}: {e}")))?;
        let values: Vec<&Field> = row.get_column_iter().map(|(_, value)| value).collect();
        let bad = |column: &'static str, value: &Field, reason: &'static str| CurError::BadValue {
            source_name: source_name.to_owned(),
            line,
            column,
            value: value.to_string(),
            reason,
        };
        let text = |i: usize, column: &'static str| -> Result<String, CurError> {
            match values.get(i) {
                None | Some(Field::Null) => Ok(String::new()),
                Some(Field::Str(text)) => Ok(text.clone()),
                Some(other) => Err(bad(column, other, "not text")),
            }
        };
        let number = |i: usize, column: &'static str| -> Result<Decimal, CurError> {
            use rust_decimal::prelude::FromPrimitive;
            let Some(value) = values.get(i) else {
                return Ok(Decimal::ZERO);
            };
            let parsed = match value {
                Field::Null => Some(Decimal::ZERO),
                // The shortest text that reads back as the same double: what AWS computed.
                Field::Double(d) => d
                    .to_string()
                    .parse::<Decimal>()
                    .ok()
                    .or_else(|| Decimal::from_f64(*d)),
                Field::Float(f) => f.to_string().parse::<Decimal>().ok(),
                Field::Int(n) => Some(Decimal::from(*n)),
                Field::Long(n) => Some(Decimal::from(*n)),
                Field::Decimal(d) => {
                    let bytes = d.data();
                    (bytes.len() <= 16)
                        .then(|| {
                            let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                                0xff
                            } else {
                                0
                            };
                            let mut wide = [fill; 16];
                            wide[16 - bytes.len()..].copy_from_slice(bytes);
                            i128::from_be_bytes(wide)
                        })
                        .and_then(|n| {
                            Decimal::try_from_i128_with_scale(n, u32::try_from(d.scale()).ok()?)
                                .ok()
                        })
                }
                Field::Str(text) => text
                    .parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(text))
                    .ok(),
                _ => None,
            };
            parsed.ok_or_else(|| bad(column, value, "not a decimal number"))
        };
        let start_value = values.get(4).copied().unwrap_or(&Field::Null);
        let usage_start = match start_value {
            Field::TimestampMillis(ms) => Some(ms.div_euclid(1000)),
            Field::TimestampMicros(us) => Some(us.div_euclid(1_000_000)),
            Field::Str(text) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp()),
            _ => None,
        }
        .ok_or_else(|| {
            bad(
                "line_item_usage_start_date",
                start_value,
                "not a timestamp or an RFC 3339 time",
            )
        })?;
        // Optional columns follow the required ones, in `optional`'s order, when present.
        let mut next = REQUIRED.len();
        let mut slot = |present: bool| {
            present.then(|| {
                next += 1;
                next - 1
            })
        };
        let region = slot(present[0]);
        let parent = slot(present[1]);
        let split = slot(present[2]);
        let raw = RawLine {
            resource_id: text(0, "line_item_resource_id")?,
            product_code: text(1, "line_item_product_code")?,
            usage_type: text(2, "line_item_usage_type")?,
            line_item_type: text(3, "line_item_line_item_type")?,
            usage_start,
            usage_amount: number(5, "line_item_usage_amount")?,
            unblended_cost: number(6, "line_item_unblended_cost")?,
            region: region
                .map(|i| text(i, "product_region_code"))
                .transpose()?
                .unwrap_or_default(),
            parent_resource_id: parent
                .map(|i| text(i, "split_line_item_parent_resource_id"))
                .transpose()?,
            split_cost: split
                .map(|i| number(i, "split_line_item_split_cost"))
                .transpose()?,
        };
        lines.push(raw.into_bill_line());
    }
    Ok(())
}

/// What a file's name says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv { gzip: bool },
    Parquet,
}

fn kind(name: &str) -> Option<Format> {
    if name.ends_with(".csv.gz") || name.ends_with(".csv.gzip") {
        Some(Format::Csv { gzip: true })
    } else if name.ends_with(".csv") {
        Some(Format::Csv { gzip: false })
    } else if name.ends_with(".parquet") {
        Some(Format::Parquet)
    } else {
        None
    }
}

/// One export file's line items, whichever its format.
fn read_file(
    source_name: &str,
    bytes: bytes::Bytes,
    format: Format,
    lines: &mut Vec<BillLine>,
) -> Result<(), CurError> {
    match format {
        Format::Csv { gzip } => read_csv(source_name, &bytes, gzip, lines),
        #[cfg(feature = "parquet")]
        Format::Parquet => read_parquet(source_name, bytes, lines),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => Err(CurError::Read {
            source_name: source_name.to_owned(),
            message: "a Parquet export, and this batchguard was built without Parquet (cargo's `parquet` feature): build it with `cargo build --release -p batchguard-cli`".into(),
        }),
    }
}

/// Every CUR file under a local path (a file, or a directory walked recursively).
pub fn read_local(path: &Path) -> Result<Vec<BillLine>, CurError> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(next) = stack.pop() {
        if next.is_dir() {
            let entries = std::fs::read_dir(&next).map_err(|e| CurError::Read {
                source_name: next.display().to_string(),
                message: e.to_string(),
            })?;
            for entry in entries.flatten() {
                stack.push(entry.path());
            }
        } else {
            files.push(next);
        }
    }
    files.sort();
    let mut lines = Vec::new();
    let mut read = 0;
    for file in files {
        let name = file.display().to_string();
        let Some(format) = kind(&name) else { continue };
        let bytes = std::fs::read(&file).map_err(|e| CurError::Read {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        read_file(&name, bytes.into(), format, &mut lines)?;
        read += 1;
    }
    if read == 0 {
        return Err(CurError::Empty(path.display().to_string()));
    }
    Ok(lines)
}

/// Every CUR file under `s3://bucket/prefix`.
#[cfg(feature = "aws")]
pub async fn read_s3(client: &aws_sdk_s3::Client, url: &str) -> Result<Vec<BillLine>, CurError> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3_error = |message: String| CurError::S3 {
        location: url.to_owned(),
        message,
    };
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error(shared::adapters::sdk_error::summary(&e)))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys.sort();
    let mut lines = Vec::new();
    let mut read = 0;
    for key in keys {
        let Some(format) = kind(&key) else { continue };
        let object = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error(shared::adapters::sdk_error::summary(&e)))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| s3_error(e.to_string()))?
            .into_bytes();
        read_file(&format!("s3://{bucket}/{key}"), bytes, format, &mut lines)?;
        read += 1;
    }
    if read == 0 {
        return Err(CurError::Empty(url.to_owned()));
    }
    Ok(lines)
}

/// A CUR location: a local path or `s3://…`.
#[derive(Clone, Debug)]
pub enum CurSource {
    Local(PathBuf),
    S3(String),
}

pub fn parse_source(text: &str) -> Result<CurSource, String> {
    if let Some(rest) = text.strip_prefix("s3://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("{text}: s3://bucket/prefix expected"));
        }
        Ok(CurSource::S3(text.to_owned()))
    } else {
        Ok(CurSource::Local(PathBuf::from(text)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn a_missing_column_or_a_bad_value_is_named() {
        let mut lines = Vec::new();
        let error = read_csv("cur.csv", b"line_item_resource_id\nx\n", false, &mut lines)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "cur.csv: no column line_item_product_code (a CUR 2.0 export has it)"
        );
        let csv = "line_item_resource_id,line_item_product_code,line_item_usage_type,line_item_line_item_type,line_item_usage_start_date,line_item_usage_amount,line_item_unblended_cost\narn:aws:ecs:us-east-1:1:task/c/t,AmazonECS,USE1-Fargate-GB-Hours,Usage,2026-11-23T06:00:00Z,2,lots\n";
        let error = read_csv("cur.csv", csv.as_bytes(), false, &mut lines)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "cur.csv:2: line_item_unblended_cost = \"lots\": not a decimal number"
        );
        assert_eq!(kind("x.snappy.parquet"), Some(Format::Parquet));
        assert_eq!(kind("manifest.json"), None);
        let error = read_file(
            "x.parquet",
            bytes::Bytes::from_static(b"PAR1 no"),
            Format::Parquet,
            &mut lines,
        )
        .unwrap_err()
        .to_string();
        let expected = if cfg!(feature = "parquet") {
            "x.parquet: not a Parquet file"
        } else {
            "x.parquet: a Parquet export, and this batchguard was built without Parquet"
        };
        assert!(error.starts_with(expected), "{error}");
        assert!(parse_source("s3://").is_err());
    }
}
