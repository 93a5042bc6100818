//! ticker — every minute (EventBridge schedule): each scope's spend as EMF, the budget policy,
//! and the enforcer invoked when a threshold is crossed or the forecast says the budget runs
//! out before the next tick can act; first, jobs silent for too long are reconciled with
//! `DescribeJobs`. With `BUDGET_NAME`, the budget's limit and AWS's own actual spend come from
//! AWS Budgets. All of it lives in `shared::handlers::ticker` and `shared::reconciler`.
#![forbid(unsafe_code)]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::budgets::AwsBudgets;
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::dynamodb_projection::DynamoProjector;
use shared::adapters::emf::EmfStdout;
use shared::adapters::lambda::LambdaTrigger;
use shared::collector::Collector;
use shared::config::{Config, ConfigError};
use shared::handlers;
use shared::handlers::ticker::{self, AwsBaseline, TickerSettings};
use shared::reconciler::reconcile;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let enforcer = config
        .enforcer_function
        .clone()
        .ok_or(ConfigError::Missing("ENFORCER_FUNCTION"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let period = config.budget.map(|b| b.period).unwrap_or_default();
    let log = DynamoEventLog::new(
        shared::adapters::dynamodb::client(&aws),
        config.tables.clone(),
    );
    let projector =
        DynamoProjector::new(log.clone(), config.prices.clone(), period).with_shards(config.shards);
    let trigger = LambdaTrigger::new(aws_sdk_lambda::Client::new(&aws), enforcer);
    let settings = TickerSettings {
        budget: config.budget,
        policy: config.policy,
        period,
        scope_queues: config.scope_queues.clone(),
    };
    let batch = AwsBatch::from_config(&aws);
    let collector = Collector::new(log.clone(), projector.clone());
    let silent_for_ms = config.reconcile_after_seconds.saturating_mul(1000);
    let sink = EmfStdout::new(config.metrics_namespace.clone());
    // With BUDGET_NAME, the limit and AWS's own spend come from AWS Budgets.
    let aws_budget = config.aws_budget.as_ref().map(|named| AwsBaseline {
        source: AwsBudgets::new(
            aws_sdk_budgets::Client::new(&aws),
            &named.account_id,
            &named.name,
        ),
        store: log.clone(),
        refresh_seconds: named.refresh_seconds,
    });
    let (projector, log, trigger, settings, batch, collector, sink, aws_budget) = (
        &projector,
        &log,
        &trigger,
        &settings,
        &batch,
        &collector,
        &sink,
        aws_budget.as_ref(),
    );
    lambda_runtime::run(service_fn(move |_tick: LambdaEvent<Value>| async move {
        let now = handlers::now_ms();
        // Jobs silent for too long first, so the spend below is already corrected. A failure
        // here must not stop the tick: it is reported and tried again next minute.
        let reconciled = match reconcile(batch, projector, collector, silent_for_ms, now).await {
            Ok(report) => serde_json::to_value(report).unwrap_or(Value::Null),
            Err(error) => {
                lambda_runtime::tracing::warn!(%error, "reconciliation failed");
                Value::String(error.to_string())
            }
        };
        let tick = ticker::handle_with_aws_budget(
            projector, log, trigger, sink, settings, aws_budget, now,
        )
        .await
        .map_err(Diagnostic::from)?;
        Ok::<_, Diagnostic>(serde_json::json!({ "tick": tick, "reconciled": reconciled }))
    }))
    .await
}
