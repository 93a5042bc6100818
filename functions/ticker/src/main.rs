//! ticker — every minute (EventBridge schedule): jobs silent for too long checked with
//! `DescribeJobs`, each scope's and applied budget's spend as EMF, the budget policy, and the
//! enforcer invoked when a threshold is crossed or the forecast says the budget runs out before
//! the next tick can act; with `BUDGET_NAME`, the limit and AWS's spend from AWS Budgets. All
//! of it lives in `shared::handlers::ticker` and `shared::app`; this file wires the adapters.
#![forbid(unsafe_code)]
// The handler's future nests the tick, the silent-job check and the SDK's (boxed below): its
// layout is deeper than rustc's default query depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::budgets::AwsBudgets;
use shared::adapters::dynamodb::{DynamoEventLog, DynamoProjector, client};
use shared::adapters::emf::EmfStdout;
use shared::adapters::lambda::LambdaTrigger;
use shared::app::collector::Collector;
use shared::app::silent_jobs::SilentCheck;
use shared::app::ticker::AwsBaseline;
use shared::config::{Config, ConfigError};
use shared::handlers::{self, ticker::TickerFunction};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let enforcer = config.enforcer_function.clone();
    let enforcer = enforcer.ok_or(ConfigError::Missing("ENFORCER_FUNCTION"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let log = DynamoEventLog::new(client(&aws), config.tables.clone());
    let projector = DynamoProjector::new(log.clone(), config.prices.clone(), config.period())
        .with_shards(config.shards)
        .with_tag_scopes(config.tag_scopes.clone());
    let budgets = aws_sdk_budgets::Client::new(&aws);
    let aws_budget = config.aws_budget.as_ref().map(|named| AwsBaseline {
        source: AwsBudgets::new(budgets, &named.account_id, &named.name),
        store: log.clone(),
        refresh_seconds: named.refresh_seconds,
    });
    let function = TickerFunction {
        batch: AwsBatch::from_config(&aws),
        collector: Collector::new(log.clone(), projector.clone()),
        projector,
        audit: log,
        trigger: LambdaTrigger::new(aws_sdk_lambda::Client::new(&aws), enforcer),
        sink: EmfStdout::new(config.metrics_namespace.clone()),
        settings: config.ticker_settings(),
        aws_budget,
        silent: SilentCheck::after(config.reconcile_after_seconds.saturating_mul(1000)),
        last_budgets: Default::default(),
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |_tick: LambdaEvent<Value>| async move {
        let invoked = Box::pin(function.invoke(handlers::now_ms())).await;
        invoked.map_err(Diagnostic::from)
    }))
    .await
}
