//! collector — EventBridge target for *Batch Job State Change*, *ECS Task State Change* and
//! *ECS Container Instance State Change*: read, append to the DynamoDB event log, project,
//! quarantine what cannot be read. All of it lives in `shared::handlers::collector` and
//! `shared::app::collector`; this file wires the adapters in once per cold start.
#![forbid(unsafe_code)]
// The handler's future nests the collector, the projector and the SDK's: its layout is deeper
// than rustc's default query depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::dynamodb::DynamoProjector;
use shared::adapters::emf::EmfStdout;
use shared::app::collector::Collector;
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
    let projector = DynamoProjector::new(log.clone(), config.prices.clone(), config.period())
        .with_shards(config.shards)
        .with_tag_scopes(config.tag_scopes.clone())
        .with_applied_budgets();
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
