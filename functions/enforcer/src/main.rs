//! enforcer — invoked by the ticker, by CloudWatch alarms, or by hand: notify, freeze
//! (disable queues, cancel queued jobs), stop (terminate running jobs), or restore.
//! All of it lives in `shared::enforcer` and `shared::handlers::enforcer`.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::DynamoEventLog;
use shared::adapters::sns::{LogNotifier, Notifications, SnsNotifier};
use shared::config::Config;
use shared::enforcer::{Enforcer, EnforcerSettings};
use shared::handlers::{HandlerError, enforcer};

/// A handler error as Lambda reports it (`errorType` says whether a retry can help).
#[derive(Debug)]
struct Failure(HandlerError);

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.0.error_type().to_owned(),
            error_message: failure.0.to_string(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_vars(std::env::vars())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let notifier = match &config.topic_arn {
        Some(topic) => Notifications::Sns(SnsNotifier::new(
            aws_sdk_sns::Client::new(&aws),
            topic.clone(),
        )),
        None => Notifications::Log(LogNotifier),
    };
    let enforcer = Enforcer::new(
        AwsBatch::from_config(&aws),
        DynamoEventLog::new(
            shared::adapters::dynamodb::client(&aws),
            config.tables.clone(),
        ),
        notifier,
        EnforcerSettings {
            queues: config.scope_queues.clone(),
            dry_run: config.dry_run,
            period: config.budget.map(|b| b.period).unwrap_or_default(),
        },
    );
    let enforcer = &enforcer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let report = enforcer::handle(enforcer, event.payload, now_ms())
            .await
            .map_err(Failure)?;
        Ok::<_, Failure>(serde_json::to_value(report).unwrap_or(Value::Null))
    }))
    .await
}
