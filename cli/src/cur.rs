//! Reading a Cost and Usage Report export (CUR 2.0 / split cost allocation data, CSV or
//! gzip-compressed CSV as AWS writes it) from a file, a directory or `s3://bucket/prefix`, into
//! the line items reconciliation needs.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use flate2::read::MultiGzDecoder;
use rust_decimal::Decimal;
use shared::bill::BillLine;

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
    #[error(
        "{source_name}: Parquet exports are not read yet; export the report as CSV (gzip) instead"
    )]
    Parquet { source_name: String },
    #[error("{0}: no CUR files (*.csv, *.csv.gz) there")]
    Empty(String),
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
        let parent_resource = parent.map(field).filter(|p| !p.is_empty());
        let cost_usd = match (parent_resource, split_cost) {
            (Some(_), Some(i)) => number(i, "split_line_item_split_cost")?,
            _ => number(cost, "line_item_unblended_cost")?,
        };
        lines.push(BillLine {
            resource_id: field(resource).to_owned(),
            product_code: field(product).to_owned(),
            usage_type: field(usage_type).to_owned(),
            line_item_type: field(item_type).to_owned(),
            usage_start,
            usage_amount: number(amount, "line_item_usage_amount")?,
            cost_usd,
            region: region.map(field).unwrap_or_default().to_owned(),
            parent_resource_id: parent_resource.map(str::to_owned),
        });
    }
    Ok(())
}

/// What a name says the file is: `Some(gzip)` for CSV, an error for Parquet, `None` otherwise.
fn kind(name: &str) -> Result<Option<bool>, CurError> {
    if name.ends_with(".csv.gz") || name.ends_with(".csv.gzip") {
        Ok(Some(true))
    } else if name.ends_with(".csv") {
        Ok(Some(false))
    } else if name.ends_with(".parquet") {
        Err(CurError::Parquet {
            source_name: name.to_owned(),
        })
    } else {
        Ok(None)
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
        let Some(gzip) = kind(&name)? else { continue };
        let bytes = std::fs::read(&file).map_err(|e| CurError::Read {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        read_csv(&name, &bytes, gzip, &mut lines)?;
        read += 1;
    }
    if read == 0 {
        return Err(CurError::Empty(path.display().to_string()));
    }
    Ok(lines)
}

/// Every CUR file under `s3://bucket/prefix`.
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
        let page =
            page.map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
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
        let Some(gzip) = kind(&key)? else { continue };
        let object = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| s3_error(e.to_string()))?
            .into_bytes();
        read_csv(&format!("s3://{bucket}/{key}"), &bytes, gzip, &mut lines)?;
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
        assert!(matches!(
            kind("x.snappy.parquet"),
            Err(CurError::Parquet { .. })
        ));
        assert!(parse_source("s3://").is_err());
    }
}
