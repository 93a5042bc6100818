//! enforcer — invoked by the ticker, by CloudWatch alarms, or by hand: notify, freeze
//! (disable queues, cancel queued jobs), stop (terminate running jobs), restore, or the applied
//! budgets' orders (each on its own budget's jobs); each only when the ledger agrees.
//! All of it lives in `shared::app::enforcer` and `shared::handlers::enforcer`.
#![forbid(unsafe_code)]
// The handler's future nests the enforcer, the ledger check and the SDK's: its layout is deeper than rustc's
// default query depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::{DynamoEventLog, DynamoProjector, client};
use shared::adapters::emf::EmfStdout;
use shared::adapters::sns::Notifications;
use shared::app::enforcer::Enforcer;
use shared::app::verify::LedgerCheck;
use shared::config::Config;
use shared::handlers::{self, enforcer};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let notifier = Notifications::for_topic(&aws, config.topic_arn.as_deref());
    let log = DynamoEventLog::new(client(&aws), config.tables.clone());
    // A freeze, stop or restore is checked against the ledger, read as the ticker reads it.
    let projector = DynamoProjector::new(log.clone(), config.prices.clone(), config.period())
        .with_shards(config.shards)
        .with_tag_scopes(config.tag_scopes.clone());
    let check = LedgerCheck {
        reader: projector.clone(),
        settings: config.ticker_settings(),
        baseline: config.aws_budget.as_ref().map(|_| log.clone()),
    };
    let enforcer = Enforcer::new(
        AwsBatch::from_config(&aws),
        log,
        notifier,
        config.enforcer_settings(),
    )
    // A shedding budget's running jobs' burn rates.
    .with_projections(projector)
    // Safe admission prices waiting jobs in the stack's region.
    .with_pricing(
        config.prices.clone(),
        aws.region().map_or("", |r| r.as_ref()),
    );
    let sink = EmfStdout::new(config.metrics_namespace.clone());
    let (enforcer, check, sink) = (&enforcer, &check, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let handled = enforcer::handle(enforcer, check, sink, event.payload, handlers::now_ms());
        let report = Box::pin(handled).await.map_err(Diagnostic::from)?;
        Ok::<_, Diagnostic>(serde_json::to_value(report).unwrap_or(Value::Null))
    }))
    .await
}
