//! CloudWatch Embedded Metric Format, written with serde_json: the wire format of
//! [`MetricDocument`]s.
//!
//! [`to_emf`] turns a document into EMF JSON objects (split at CloudWatch's limit of 100
//! metrics per document); [`EmfStdout`] prints them, one per line, where the Lambda runtime
//! sends them to CloudWatch Logs, which extracts the metrics; [`EmfMemory`] keeps them.
//! Spec: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::io::Write;
use std::str::FromStr;
use std::sync::Mutex;

use serde_json::{Map, Number, Value, json};

use crate::metrics::{
    MAX_DIMENSION_VALUE_LENGTH, MAX_DIMENSIONS_PER_SET, MAX_METRICS_PER_DOCUMENT, MetricDocument,
    MetricError,
};
use crate::ports::MetricSink;

/// The EMF objects for a document: one per 100 metrics.
pub fn to_emf(namespace: &str, document: &MetricDocument) -> Result<Vec<Value>, MetricError> {
    if document.dimensions.len() > MAX_DIMENSIONS_PER_SET {
        return Err(MetricError::TooManyDimensions(document.dimensions.len()));
    }
    if let Some((name, value)) = document
        .dimensions
        .iter()
        .find(|(_, value)| value.is_empty() || value.chars().count() > MAX_DIMENSION_VALUE_LENGTH)
    {
        return Err(MetricError::BadDimensionValue {
            name,
            value: value.clone(),
        });
    }
    let sets: Vec<Vec<&str>> = if document.dimension_sets.is_empty() {
        vec![document.dimensions.iter().map(|(name, _)| *name).collect()]
    } else {
        for set in &document.dimension_sets {
            if set.len() > MAX_DIMENSIONS_PER_SET {
                return Err(MetricError::TooManyDimensions(set.len()));
            }
            if let Some(name) = set
                .iter()
                .find(|name| !document.dimensions.iter().any(|(d, _)| d == *name))
            {
                return Err(MetricError::UnknownDimension(name));
            }
        }
        document.dimension_sets.clone()
    };
    let mut out = Vec::new();
    for chunk in document.metrics.chunks(MAX_METRICS_PER_DOCUMENT) {
        let mut object = Map::new();
        for (name, value) in &document.properties {
            object.insert(name.clone(), value.clone());
        }
        for (name, value) in &document.dimensions {
            if object
                .insert((*name).to_owned(), Value::String(value.clone()))
                .is_some()
            {
                return Err(MetricError::PropertyClash((*name).to_owned()));
            }
        }
        let mut definitions = Vec::new();
        for metric in chunk {
            // CloudWatch stores metric values as doubles; the exact decimal goes in as its
            // decimal text, parsed by serde_json.
            let number = Number::from_str(&metric.value.normalize().to_string()).map_err(|_| {
                MetricError::NotANumber {
                    name: metric.name,
                    value: metric.value,
                }
            })?;
            if object
                .insert(metric.name.to_owned(), Value::Number(number))
                .is_some()
            {
                return Err(MetricError::PropertyClash(metric.name.to_owned()));
            }
            definitions.push(json!({"Name": metric.name, "Unit": metric.unit.as_str()}));
        }
        object.insert(
            "_aws".into(),
            json!({
                "Timestamp": document.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        out.push(Value::Object(object));
    }
    Ok(out)
}

/// Prints EMF to stdout, one JSON object per line (in Lambda, to CloudWatch Logs).
#[derive(Clone, Debug)]
pub struct EmfStdout {
    namespace: String,
}

impl EmfStdout {
    /// Metrics in `namespace` (see `Config::metrics_namespace`).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }
}

impl Default for EmfStdout {
    fn default() -> Self {
        Self::new(crate::metrics::NAMESPACE)
    }
}

impl MetricSink for EmfStdout {
    fn emit(&self, documents: &[MetricDocument]) -> Result<(), MetricError> {
        let mut lines = String::new();
        for document in documents {
            for object in to_emf(&self.namespace, document)? {
                lines.push_str(&object.to_string());
                lines.push('\n');
            }
        }
        // One write per call, so concurrent invocations' lines do not interleave mid-line.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(lines.as_bytes());
        let _ = stdout.flush();
        Ok(())
    }
}

/// Keeps the EMF objects in memory (tests, and the CLI's dry runs).
#[derive(Debug, Default)]
pub struct EmfMemory {
    pub objects: Mutex<Vec<Value>>,
}

impl MetricSink for EmfMemory {
    fn emit(&self, documents: &[MetricDocument]) -> Result<(), MetricError> {
        let mut objects = self
            .objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for document in documents {
            objects.extend(to_emf(crate::metrics::NAMESPACE, document)?);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;

    use super::*;
    use crate::metrics::{Metric, Unit};
    use rust_decimal::dec;

    #[test]
    fn one_document_can_publish_under_several_dimension_sets() {
        let document = MetricDocument {
            timestamp_ms: 1,
            dimensions: vec![
                ("JobQueue", "q".into()),
                ("JobDefinition", "d".into()),
                ("Status", "RUNNING".into()),
            ],
            dimension_sets: vec![vec!["JobQueue", "Status"], vec!["JobDefinition", "Status"]],
            metrics: vec![Metric {
                name: "JobStateTransitions",
                unit: Unit::Count,
                value: Decimal::ONE,
            }],
            properties: BTreeMap::new(),
        };
        let objects = to_emf("ns", &document).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(
            objects[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["JobQueue", "Status"], ["JobDefinition", "Status"]])
        );
        assert_eq!(objects[0]["JobDefinition"], "d");
        let unknown = MetricDocument {
            dimension_sets: vec![vec!["ComputeEnvironment"]],
            ..document
        };
        assert_eq!(
            to_emf("ns", &unknown),
            Err(MetricError::UnknownDimension("ComputeEnvironment"))
        );
    }

    #[test]
    fn a_document_follows_the_emf_shape() {
        let document = MetricDocument {
            timestamp_ms: 1_700_000_000_000,
            dimensions: vec![("ScopeKind", "queue".into()), ("Scope", "etl".into())],
            dimension_sets: Vec::new(),
            metrics: vec![Metric {
                name: "SpendUSD",
                unit: Unit::None,
                value: dec!(12.50),
            }],
            properties: BTreeMap::from([("spend_usd_exact".to_owned(), json!("12.50"))]),
        };
        let objects = to_emf("batchguard", &document).unwrap();
        assert_eq!(
            objects,
            vec![json!({
                "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "batchguard",
                    "Dimensions": [["ScopeKind", "Scope"]],
                    "Metrics": [{"Name": "SpendUSD", "Unit": "None"}]}]},
                "ScopeKind": "queue", "Scope": "etl", "SpendUSD": 12.5, "spend_usd_exact": "12.50"
            })]
        );
    }

    #[test]
    fn documents_split_at_one_hundred_metrics() {
        let names: Vec<&'static str> = (0..150)
            .map(|i| &*Box::leak(format!("M{i}").into_boxed_str()))
            .collect();
        let document = MetricDocument {
            dimension_sets: Vec::new(),
            metrics: names
                .iter()
                .enumerate()
                .map(|(i, name)| Metric {
                    name,
                    unit: Unit::Count,
                    value: Decimal::from(i),
                })
                .collect(),
            ..MetricDocument::default()
        };
        let objects = to_emf("ns", &document).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(
            objects[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            100
        );
        assert_eq!(
            objects[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
    }

    #[test]
    fn an_empty_dimension_value_is_an_error() {
        let document = MetricDocument {
            dimensions: vec![("Scope", String::new())],
            ..MetricDocument::default()
        };
        assert_eq!(
            to_emf("ns", &document),
            Err(MetricError::BadDimensionValue {
                name: "Scope",
                value: String::new()
            })
        );
    }

    #[test]
    fn too_many_dimensions_is_an_error() {
        let document = MetricDocument {
            dimensions: (0..31).map(|_| ("D", String::new())).collect(),
            ..MetricDocument::default()
        };
        assert_eq!(
            to_emf("ns", &document),
            Err(MetricError::TooManyDimensions(31))
        );
    }
}
