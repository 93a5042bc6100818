//! enforcer — invoked by the ticker, by CloudWatch alarms, or by hand: notify, freeze
//! (disable queues, cancel queued jobs), stop (terminate running jobs), or restore.
//! All of it lives in `shared::app::enforcer` and `shared::handlers::enforcer`.
#![forbid(unsafe_code)]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::{DynamoEventLog, client};
use shared::adapters::emf::EmfStdout;
use shared::adapters::sns::Notifications;
use shared::app::enforcer::Enforcer;
use shared::config::Config;
use shared::handlers::{self, enforcer};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let notifier = Notifications::for_topic(&aws, config.topic_arn.as_deref());
    let enforcer = Enforcer::new(
        AwsBatch::from_config(&aws),
        DynamoEventLog::new(client(&aws), config.tables.clone()),
        notifier,
        config.enforcer_settings(),
    );
    let sink = EmfStdout::new(config.metrics_namespace.clone());
    let (enforcer, sink) = (&enforcer, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let report = enforcer::handle(enforcer, sink, event.payload, handlers::now_ms())
            .await
            .map_err(Diagnostic::from)?;
        Ok::<_, Diagnostic>(serde_json::to_value(report).unwrap_or(Value::Null))
    }))
    .await
}
