//! admitter — the EventBridge target for Batch jobs entering SUBMITTED or RUNNABLE: each is
//! judged against the gates the enforcer last verified on the ledger, and cancelled when a
//! draining budget or a safe budget turns it away (issue 17). All of it lives in
//! `shared::app::enforcer` (`admit_arrival`) and `shared::handlers::admitter`.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::{DynamoEventLog, client};
use shared::adapters::emf::EmfStdout;
use shared::adapters::sns::Notifications;
use shared::app::enforcer::Enforcer;
use shared::config::Config;
use shared::core::arrival::trusted_for_ms;
use shared::handlers::{self, admitter};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // No notice per job: the budget's own notice said it drains (the role cannot publish).
    let notifier = Notifications::for_topic(&aws, None);
    let log = DynamoEventLog::new(client(&aws), config.tables.clone());
    let enforcer = Enforcer::new(
        AwsBatch::from_config(&aws),
        log,
        notifier,
        config.enforcer_settings(),
    )
    // Safe admission prices arriving jobs in the stack's region.
    .with_pricing(
        config.prices.clone(),
        aws.region().map_or("", |r| r.as_ref()),
    );
    let max_age_ms = trusted_for_ms(config.policy.tick_seconds);
    let books = admitter::BookCache::default();
    let sink = EmfStdout::new(config.metrics_namespace.clone());
    let (enforcer, books, sink) = (&enforcer, &books, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = handlers::now_ms();
        let handled = admitter::handle(enforcer, books, sink, event.payload, now, max_age_ms);
        let response = Box::pin(handled).await.map_err(Diagnostic::from)?;
        Ok::<_, Diagnostic>(serde_json::to_value(response).unwrap_or(Value::Null))
    }))
    .await
}
