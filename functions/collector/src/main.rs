//! collector — EventBridge target for *Batch Job State Change* and *ECS Task State Change*:
//! parse, append to the DynamoDB event log, project, quarantine what cannot be read.
//! All of it lives in `shared::handlers::collector`; this file wires clients once per cold start.
#![forbid(unsafe_code)]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::dynamodb_projection::DynamoProjector;
use shared::adapters::emf::EmfStdout;
use shared::collector::Collector;
use shared::config::Config;
use shared::handlers::{self, collector};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut log = DynamoEventLog::new(
        shared::adapters::dynamodb::client(&aws),
        config.tables.clone(),
    );
    if let Some(days) = config.retention_days {
        log = log.with_retention(std::time::Duration::from_secs(u64::from(days) * 86_400));
    }
    let projector = DynamoProjector::new(
        log.clone(),
        config.prices.clone(),
        config.budget.map(|b| b.period).unwrap_or_default(),
    )
    .with_shards(config.shards);
    let collector = Collector::new(log, projector);
    let sink = EmfStdout::new(config.metrics_namespace.clone());
    let (collector, sink) = (&collector, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        collector::handle(
            collector,
            sink,
            event.payload,
            &event.context.request_id,
            handlers::now_ms(),
        )
        .await
        .map_err(Diagnostic::from)
    }))
    .await
}
