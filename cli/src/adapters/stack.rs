//! `batchguard doctor --stack NAME`: reads a deployed stack from AWS (CloudFormation outputs,
//! parameters and resources; then DynamoDB, SQS, EventBridge, Lambda, CloudWatch and Batch)
//! into [`StackFacts`]; `shared::analysis::checklist` turns them into the checklist. One failing read
//! becomes one failing check; only a stack that cannot be described at all is an error.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::adapters::batch::AwsBatch;
use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
use shared::adapters::sdk_error::summary;
use shared::analysis::checklist::{
    ALARMS, AlarmFacts, METRICS_FRESH_SECONDS, Probe, QueueFacts, StackFacts,
};
use shared::core::budget::BudgetPeriod;
use shared::metrics;
use shared::ports::{AuditTrail, BatchControl, Quarantine};

/// The SDK clients doctor reads with.
#[derive(Clone, Debug)]
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub batch: AwsBatch,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            dynamodb: shared::adapters::dynamodb::client(config),
            events: aws_sdk_eventbridge::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            batch: AwsBatch::from_config(config),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("CloudFormation stack {stack:?}: {message}")]
pub struct DoctorError {
    stack: String,
    message: String,
}

/// Reads everything the checklist looks at, at Unix second `now`.
pub async fn gather(clients: &Clients, stack: &str, now: i64) -> Result<StackFacts, DoctorError> {
    let fail = |message: String| DoctorError {
        stack: stack.to_owned(),
        message,
    };
    let described = clients
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| fail(summary(&e)))?;
    let found = described
        .stacks()
        .first()
        .ok_or_else(|| fail("no such stack".into()))?;
    let outputs: HashMap<&str, &str> = found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    let parameters: HashMap<&str, &str> = found
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?, p.parameter_value()?)))
        .collect();
    let output = |key: &str| -> Probe<String> {
        outputs
            .get(key)
            .map(|v| (*v).to_owned())
            .ok_or_else(|| format!("{} {key}", shared::analysis::checklist::NO_OUTPUT))
    };
    let resources: Vec<_> = clients
        .cloudformation
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| fail(summary(&e)))?;

    let mut tables = Vec::new();
    let mut state_indexes = Err("the state table was not read".to_owned());
    for key in ["EventsTableName", "StateTableName"] {
        let name = output(key).unwrap_or_default();
        let described = match output(key) {
            Err(error) => Err(error),
            Ok(name) => clients
                .dynamodb
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| summary(&e)),
        };
        let state = described.as_ref().map_err(Clone::clone).map(|t| {
            t.table()
                .and_then(|t| t.table_status())
                .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned())
        });
        if key == "StateTableName" {
            state_indexes = described.as_ref().map_err(Clone::clone).map(|t| {
                t.table()
                    .map(|t| t.global_secondary_indexes())
                    .unwrap_or_default()
                    .iter()
                    .map(|index| {
                        (
                            index.index_name().unwrap_or_default().to_owned(),
                            index
                                .index_status()
                                .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned()),
                        )
                    })
                    .collect()
            });
        }
        tables.push((key.to_owned(), name, state));
    }

    let mut rules = Vec::new();
    let mut rule_accounts = Vec::new();
    let mut collector_rules = Vec::new();
    let mut admitter_rules = Vec::new();
    for resource in resources
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::Events::Rule"))
    {
        let logical = resource
            .logical_resource_id()
            .unwrap_or_default()
            .to_owned();
        let name = resource
            .physical_resource_id()
            .unwrap_or_default()
            .to_owned();
        let described = clients
            .events
            .describe_rule()
            .name(&name)
            .send()
            .await
            .map_err(|e| summary(&e));
        let state = described.as_ref().map_err(Clone::clone).map(|r| {
            r.state()
                .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned())
        });
        // The rules that match events (the schedule has no pattern): which accounts they admit.
        match &described {
            Ok(rule) => {
                if let Some(pattern) = rule.event_pattern() {
                    rule_accounts.push((logical.clone(), name.clone(), pattern_accounts(pattern)));
                    // The arrival rule feeds the admitter; every other rule, the collector.
                    if logical == "BatchJobArrivalRule" {
                        admitter_rules.extend(rule.arn().map(str::to_owned));
                    } else {
                        collector_rules.extend(rule.arn().map(str::to_owned));
                    }
                }
            }
            Err(error) if logical != "TickRule" => {
                rule_accounts.push((logical.clone(), name.clone(), Err(error.clone())));
            }
            Err(_) => {}
        }
        rules.push((logical, name, state));
    }

    let mut dead_letter_queues = Vec::new();
    for key in ["EventDeadLetterQueueUrl", "ControlDeadLetterQueueUrl"] {
        let url = output(key).unwrap_or_default();
        let messages = match output(key) {
            Err(error) => Err(error),
            Ok(url) => queue_depth(&clients.sqs, &url).await,
        };
        dead_letter_queues.push((key.to_owned(), url, messages));
    }

    let store = match (output("EventsTableName"), output("StateTableName")) {
        (Ok(events), Ok(state)) => Ok(DynamoEventLog::new(
            clients.dynamodb.clone(),
            TableNames { events, state },
        )),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let quarantined = match &store {
        Ok(log) => log
            .list_quarantined()
            .await
            .map(|q| q.len())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };

    let enforcer = match output("EnforcerFunctionName") {
        Err(e) => Err(e),
        Ok(name) => clients
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .map_err(|e| summary(&e)),
    };
    let enforcer_concurrency = match output("EnforcerFunctionName") {
        Err(e) => Err(e),
        Ok(name) => clients
            .lambda
            .get_function_concurrency()
            .function_name(&name)
            .send()
            .await
            .map(|c| c.reserved_concurrent_executions())
            .map_err(|e| summary(&e)),
    };
    let collector_policy = match output("CollectorFunctionName") {
        Err(e) => Err(e),
        Ok(name) => resource_policy(&clients.lambda, &name).await,
    };
    let admitter_policy = match output("AdmitterFunctionName") {
        Err(e) => Err(e),
        Ok(name) => resource_policy(&clients.lambda, &name).await,
    };
    let enforcer_arn = enforcer.as_ref().map_err(Clone::clone).and_then(|f| {
        f.function_arn()
            .map(str::to_owned)
            .ok_or_else(|| "no FunctionArn in the answer".to_owned())
    });
    let dry_run = enforcer.as_ref().map_err(Clone::clone).map(|f| {
        f.environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("DRY_RUN"))
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    });

    let alarms = alarms_of(&clients.cloudwatch, stack).await;
    let metrics_namespace =
        output("MetricsNamespace").unwrap_or_else(|_| format!("batchguard/{stack}"));
    let ticker_metrics =
        latest_budget_datapoint(&clients.cloudwatch, &metrics_namespace, now).await;

    let period = parameters
        .get("BudgetPeriod")
        .and_then(|p| BudgetPeriod::parse(p))
        .unwrap_or_default();
    let scoped: Vec<String> = parameters
        .get("JobQueueArns")
        .map(|list| {
            list.split(',')
                .map(|arn| shared::core::names::last_segment(arn.trim()).to_owned())
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let job_queues = match &store {
        Err(e) => Err(e.clone()),
        Ok(log) => job_queues(&clients.batch, log, &scoped, period, now).await,
    };

    let aws_budget = match parameters.get("BudgetName").filter(|n| !n.is_empty()) {
        None => None,
        Some(name) => Some((
            (*name).to_owned(),
            match &store {
                Err(e) => Err(e.clone()),
                Ok(log) => shared::ports::BaselineStore::cached_budget(log)
                    .await
                    .map_err(|e| e.to_string()),
            },
        )),
    };
    Ok(StackFacts {
        stack: stack.to_owned(),
        stack_status: found
            .stack_status()
            .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned()),
        now,
        tables,
        state_indexes,
        rules,
        // arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>
        account: found
            .stack_id()
            .and_then(|arn| arn.split(':').nth(4))
            .filter(|account| !account.is_empty())
            .map(str::to_owned),
        rule_accounts,
        enforcer_concurrency,
        collector_rules,
        collector_function: output("CollectorFunctionName").unwrap_or_default(),
        collector_policy,
        admitter_rules,
        admitter_function: output("AdmitterFunctionName").unwrap_or_default(),
        admitter_policy,
        dead_letter_queues,
        quarantined,
        enforcer_arn,
        dry_run,
        alarms,
        ticker_metrics,
        metrics_namespace,
        job_queues,
        store: match &store {
            Ok(log) => format!("dynamodb:{},{}", log.tables().events, log.tables().state),
            Err(_) => format!("dynamodb:<{stack} events table>,<state table>"),
        },
        aws_budget,
        period,
        applied_budgets: match &store {
            Err(e) => Err(e.clone()),
            Ok(log) => shared::ports::BudgetStore::budgets(log)
                .await
                .map(|(_, book)| book)
                .map_err(|e| e.to_string()),
        },
    })
}

/// The accounts an EventBridge event pattern admits (its top-level `account` list; empty when
/// it names none, i.e. any account).
fn pattern_accounts(pattern: &str) -> Probe<Vec<String>> {
    let pattern: serde_json::Value =
        serde_json::from_str(pattern).map_err(|e| format!("the event pattern is not JSON: {e}"))?;
    Ok(match &pattern["account"] {
        serde_json::Value::Array(accounts) => accounts
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .collect(),
        serde_json::Value::String(account) => vec![account.clone()],
        _ => Vec::new(),
    })
}

/// Messages waiting and in flight.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Probe<u64> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| summary(&e))?;
    let attributes = answer.attributes().cloned().unwrap_or_default();
    let count = |name: QueueAttributeName| -> Probe<u64> {
        attributes.get(&name).map_or(Ok(0), |v| {
            v.parse().map_err(|_| format!("{name:?} is {v:?}"))
        })
    };
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)?
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?)
}

/// The stack's alarms by logical id: CloudFormation names them `<stack>-<logical id>-<suffix>`.
async fn alarms_of(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    stack: &str,
) -> Probe<BTreeMap<String, AlarmFacts>> {
    let prefix = format!("{stack}-");
    let pages: Vec<_> = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(&prefix)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| summary(&e))?;
    let mut found = BTreeMap::new();
    for alarm in pages.iter().flat_map(|p| p.metric_alarms()) {
        let name = alarm.alarm_name().unwrap_or_default();
        let Some(logical) = ALARMS.iter().find(|logical| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_prefix(**logical))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        }) else {
            continue;
        };
        found.insert(
            (*logical).to_owned(),
            AlarmFacts {
                name: name.to_owned(),
                actions_enabled: alarm.actions_enabled().unwrap_or(false),
                alarm_actions: alarm.alarm_actions().to_vec(),
                state: alarm
                    .state_value()
                    .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned()),
            },
        );
    }
    Ok(found)
}

/// The latest minute with a `BudgetUsedPercent` datapoint in the last 15 minutes.
async fn latest_budget_datapoint(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    now: i64,
) -> Probe<Option<i64>> {
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let query = MetricDataQuery::builder()
        .id("budget")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(namespace)
                        .metric_name(metrics::BUDGET_USED_PERCENT)
                        .dimensions(dimension(
                            metrics::DIMENSION_SCOPE_KIND,
                            metrics::BUDGET_SCOPE_KIND,
                        ))
                        .dimensions(dimension(metrics::DIMENSION_SCOPE, metrics::BUDGET_SCOPE))
                        .build(),
                )
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build();
    let pages: Vec<_> = cloudwatch
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now - METRICS_FRESH_SECONDS,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now + 60,
        ))
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| summary(&e))?;
    Ok(pages
        .iter()
        .flat_map(|p| p.metric_data_results())
        .flat_map(|r| r.timestamps())
        .map(|t| t.secs())
        .max())
}

/// The queues in scope (all of them when none is named), with what batchguard last did.
async fn job_queues(
    batch: &AwsBatch,
    log: &DynamoEventLog,
    scoped: &[String],
    period: BudgetPeriod,
    now: i64,
) -> Probe<Vec<QueueFacts>> {
    let states = batch.queues(scoped).await.map_err(|e| e.to_string())?;
    let (this_period, _) = period.bounds(now);
    let (last_period, _) = period.bounds(this_period - 1);
    let mut entries = log
        .audit_entries(last_period)
        .await
        .map_err(|e| e.to_string())?;
    entries.extend(
        log.audit_entries(this_period)
            .await
            .map_err(|e| e.to_string())?,
    );
    let recorded = shared::core::enforcement::recorded_queue_states(&entries);
    let mut queues: Vec<QueueFacts> = states
        .iter()
        .map(|q| QueueFacts {
            name: q.name.clone(),
            enabled: Some(q.enabled),
            recorded_enabled: recorded.get(&q.name).copied(),
        })
        .collect();
    for name in scoped {
        if !states.iter().any(|q| &q.name == name) {
            queues.push(QueueFacts {
                name: name.clone(),
                enabled: None,
                recorded_enabled: recorded.get(name).copied(),
            });
        }
    }
    Ok(queues)
}

/// A function's resource policy as `GetPolicy` returns it (`None`: it has none).
async fn resource_policy(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<Option<String>, String> {
    match lambda.get_policy().function_name(function).send().await {
        Ok(answer) => Ok(answer.policy().map(str::to_owned)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(summary(&error)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{MetricAlarm, MetricDataResult, StateValue};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use shared::analysis::checklist::{Status, checklist, healthy};
    use shared::core::facts::{EnforcementAction, EnforcementRecorded, Fact, FactBody, Millis};
    use shared::ports::{EventLog, Quarantined, Record};

    /// A stack with what `doctor` reads, made by the emulator's CloudFormation (whose alarms
    /// are not real CloudWatch alarms: CloudWatch answers come from `aws-smithy-mocks`, as the
    /// current SDK's protocol is one the emulator does not speak).
    async fn emulator_stack(config: &aws_config::SdkConfig, stack: &str, queues: &str) {
        let role = std::env::var("BATCHGUARD_TEST_BATCH_ROLE")
            .expect("BATCHGUARD_TEST_BATCH_ROLE: scripts/test.sh creates the role on the emulator");
        let table = batchguard_tests::cfn_pk_sk_table();
        let rule = |state: &str| {
            serde_json::json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "State": state,
                    "EventPattern": {"account": ["123456789012"], "source": ["aws.batch"]}
                }
            })
        };
        let schedule = |state: &str| {
            serde_json::json!({
                "Type": "AWS::Events::Rule",
                "Properties": {"State": state, "ScheduleExpression": "rate(1 minute)"}
            })
        };
        let template = serde_json::json!({
            "Parameters": {
                // A CommaDelimitedList in template.yaml, which AWS describes as "a,b"; the
                // emulator describes a list parameter as a Python list, so a String here.
                "JobQueueArns": {"Type": "String", "Default": ""},
                "BudgetPeriod": {"Type": "String", "Default": "month"},
                "BudgetName": {"Type": "String", "Default": ""}
            },
            "Resources": {
                "EventsTable": table,
                "StateTable": batchguard_tests::cfn_state_table(),
                "EventDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
                "ControlDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
                "BatchJobStateRule": rule("ENABLED"),
                "BatchJobArrivalRule": rule("ENABLED"),
                "TickRule": schedule("DISABLED"),
                "EnforcerFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "provided.al2023",
                        "Handler": "bootstrap",
                        "Role": role,
                        "Code": {"ZipFile": "bootstrap"},
                        "Environment": {"Variables": {"DRY_RUN": "true"}}
                    }
                },
                // No resource policy: the emulator's CloudFormation has no
                // AWS::Lambda::ResourcePolicy (the test writes the statements itself).
                "CollectorFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "provided.al2023",
                        "Handler": "bootstrap",
                        "Role": role,
                        "Code": {"ZipFile": "bootstrap"}
                    }
                },
                "AdmitterFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "provided.al2023",
                        "Handler": "bootstrap",
                        "Role": role,
                        "Code": {"ZipFile": "bootstrap"}
                    }
                }
            },
            "Outputs": {
                "EventsTableName": {"Value": {"Ref": "EventsTable"}},
                "StateTableName": {"Value": {"Ref": "StateTable"}},
                "EventDeadLetterQueueUrl": {"Value": {"Ref": "EventDeadLetterQueue"}},
                "ControlDeadLetterQueueUrl": {"Value": {"Ref": "ControlDeadLetterQueue"}},
                "EnforcerFunctionName": {"Value": {"Ref": "EnforcerFunction"}},
                "CollectorFunctionName": {"Value": {"Ref": "CollectorFunction"}},
                "AdmitterFunctionName": {"Value": {"Ref": "AdmitterFunction"}},
                "MetricsNamespace": {"Value": format!("batchguard/{stack}")}
            }
        });
        aws_sdk_cloudformation::Client::new(config)
            .create_stack()
            .stack_name(stack)
            .template_body(template.to_string())
            .parameters(
                aws_sdk_cloudformation::types::Parameter::builder()
                    .parameter_key("JobQueueArns")
                    .parameter_value(queues)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// CloudWatch as a deployed stack's: the seven alarms (the forecast alarm's action
    /// replaced when `broken`), and a ticker datapoint two minutes old.
    fn cloudwatch(
        stack: &str,
        enforcer: &str,
        now: i64,
        broken: bool,
    ) -> aws_sdk_cloudwatch::Client {
        let alarms: Vec<MetricAlarm> = ALARMS
            .iter()
            .map(|logical| {
                let mut actions = vec!["arn:aws:sns:us-east-1:123456789012:topic".to_owned()];
                let invokes = shared::analysis::checklist::ENFORCER_ALARMS.contains(logical)
                    && !(broken && *logical == "ForecastAlarm");
                if invokes {
                    actions.push(enforcer.to_owned());
                }
                MetricAlarm::builder()
                    .alarm_name(format!("{stack}-{logical}-1A2B3C"))
                    .actions_enabled(true)
                    .set_alarm_actions(Some(actions))
                    .state_value(StateValue::Ok)
                    .build()
            })
            .collect();
        let described = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .match_requests({
                let prefix = format!("{stack}-");
                move |request| request.alarm_name_prefix() == Some(prefix.as_str())
            })
            .then_output(move || {
                aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput::builder()
                    .set_metric_alarms(Some(alarms.clone()))
                    .build()
            });
        let namespace = format!("batchguard/{stack}");
        let data = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(move |request| {
                let stat = request.metric_data_queries()[0].metric_stat().unwrap();
                let metric = stat.metric().unwrap();
                metric.namespace() == Some(namespace.as_str())
                    && metric.metric_name() == Some("BudgetUsedPercent")
                    && metric.dimensions().len() == 2
            })
            .then_output(move || {
                aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("budget")
                            .timestamps(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                                now - 120,
                            ))
                            .values(42.0)
                            .build(),
                    )
                    .build()
            });
        mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&described, &data])
    }

    fn status(checks: &[shared::analysis::checklist::Check], id: &str) -> Status {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}: {checks:#?}"))
            .status
    }

    #[tokio::test]
    async fn doctor_finds_each_fault_of_a_stack_and_passes_it_once_mended() {
        let config = batchguard_tests::emulator_config().await;
        let stack = batchguard_tests::unique_prefix("doctor");
        let queue = format!("{stack}-etl");
        let batch = aws_sdk_batch::Client::new(&config);
        batchguard_tests::emulator_queue(&batch, &queue).await;
        let missing_queue = format!("{stack}-gone");
        let arn = |name: &str| format!("arn:aws:batch:us-east-1:123456789012:job-queue/{name}");
        emulator_stack(
            &config,
            &stack,
            &format!("{},{}", arn(&queue), arn(&missing_queue)),
        )
        .await;
        let now = chrono::Utc::now().timestamp();

        // Faults: a quarantined event, a message in the events DLQ, the queue re-enabled by
        // hand after batchguard disabled it (the emulator's queue is ENABLED).
        let mut clients = Clients::new(&config);
        let outputs = clients
            .cloudformation
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .unwrap();
        let output = |key: &str| {
            outputs.stacks()[0]
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .unwrap()
                .output_value()
                .unwrap()
                .to_owned()
        };
        let log = DynamoEventLog::new(
            clients.dynamodb.clone(),
            TableNames {
                events: output("EventsTableName"),
                state: output("StateTableName"),
            },
        );
        let quarantined = Quarantined {
            origin: "test".into(),
            reason: "not an event".into(),
            body: "{}".into(),
        };
        log.quarantine(std::slice::from_ref(&quarantined))
            .await
            .unwrap();
        let (period_start, _) = BudgetPeriod::Month.bounds(now);
        let disabled = Fact {
            event_id: "audit-1".into(),
            observed_at: None,
            body: FactBody::Enforcement(EnforcementRecorded {
                action: EnforcementAction::QueueDisabled {
                    queue: queue.clone(),
                    budget: None,
                },
                level: "freeze".into(),
                reason: "test".into(),
                dry_run: false,
                at: Millis((now - 600) * 1000),
                period_start,
            }),
        };
        log.append(&[Record::new(disabled)]).await.unwrap();
        let dlq = output("EventDeadLetterQueueUrl");
        clients
            .sqs
            .send_message()
            .queue_url(&dlq)
            .message_body("{}")
            .send()
            .await
            .unwrap();
        let enforcer = clients
            .lambda
            .get_function_configuration()
            .function_name(output("EnforcerFunctionName"))
            .send()
            .await
            .unwrap()
            .function_arn()
            .unwrap()
            .to_owned();
        clients.cloudwatch = cloudwatch(&stack, &enforcer, now, true);

        let facts = gather(&clients, &stack, now).await.unwrap();
        let checks = checklist(&facts);
        assert!(!healthy(&checks));
        for (id, expected) in [
            ("stack", Status::Ok),
            ("table:EventsTableName", Status::Ok),
            ("table:StateTableName", Status::Ok),
            ("indexes", Status::Ok),
            ("rule:BatchJobStateRule", Status::Ok),
            ("rule:TickRule", Status::Fail),
            ("rule-account:BatchJobStateRule", Status::Ok),
            // The emulator's CloudFormation sets no reserved concurrency.
            ("enforcer-concurrency", Status::Fail),
            // Nor any resource policy: EventBridge could not invoke the collector or the
            // admitter.
            ("collector-entry", Status::Fail),
            ("admitter-entry", Status::Fail),
            ("rule-account:BatchJobArrivalRule", Status::Ok),
            ("dlq:EventDeadLetterQueueUrl", Status::Fail),
            ("dlq:ControlDeadLetterQueueUrl", Status::Ok),
            ("quarantine", Status::Fail),
            ("alarm:BudgetFreezeAlarm", Status::Ok),
            ("alarm:ForecastAlarm", Status::Fail),
            ("alarm:TickerSilentAlarm", Status::Ok),
            ("ticker-metrics", Status::Ok),
            (&format!("job-queue:{queue}"), Status::Fail),
            (&format!("job-queue:{missing_queue}"), Status::Fail),
            ("dry-run", Status::Info),
        ] {
            assert_eq!(status(&checks, id), expected, "{id}: {checks:#?}");
        }
        let rule = checks.iter().find(|c| c.id == "rule:TickRule").unwrap();
        assert!(
            rule.fix
                .as_deref()
                .unwrap()
                .starts_with("aws events enable-rule --name ")
        );
        assert!(facts.dry_run.unwrap());
        assert_eq!(facts.account.as_deref(), Some("123456789012"));
        assert!(
            !facts.rule_accounts.iter().any(|r| r.0 == "TickRule"),
            "the schedule matches no events"
        );

        // Mended: the rule enabled, the DLQ read, the quarantine emptied, the queue disabled
        // again, the alarm fixed, the missing queue out of scope.
        let tick_rule = facts
            .rules
            .iter()
            .find(|r| r.0 == "TickRule")
            .unwrap()
            .1
            .clone();
        clients
            .events
            .enable_rule()
            .name(&tick_rule)
            .send()
            .await
            .unwrap();
        clients
            .sqs
            .purge_queue()
            .queue_url(&dlq)
            .send()
            .await
            .unwrap();
        log.release(&quarantined).await.unwrap();
        clients
            .lambda
            .put_function_concurrency()
            .function_name(output("EnforcerFunctionName"))
            .reserved_concurrent_executions(1)
            .send()
            .await
            .unwrap();
        // The collector: EventBridge allowed from the stack's rule (what AddPermission
        // writes) is not enough — a role of the account still gets in …
        let collector = output("CollectorFunctionName");
        let rule_arn = facts.collector_rules[0].clone();
        clients
            .lambda
            .add_permission()
            .function_name(&collector)
            .statement_id("ThisStacksRules")
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .source_arn(&rule_arn)
            .send()
            .await
            .unwrap();
        let half = checklist(&gather(&clients, &stack, now).await.unwrap());
        let entry = half.iter().find(|c| c.id == "collector-entry").unwrap();
        assert_eq!(entry.status, Status::Fail);
        assert!(entry.detail.contains("any user or role"), "{entry:?}");
        // … until a Deny keeps out every other caller. The emulator can hold no Deny (it has
        // no PutResourcePolicy, and its AddPermission writes Allow statements only), so the
        // policy the template deploys stands in for the one read back.
        let template_policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
             "Action": "lambda:InvokeFunction",
             "Condition": {"ArnEquals": {"aws:SourceArn": [&rule_arn]},
                           "StringEquals": {"aws:SourceAccount": "123456789012"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "lambda:InvokeFunction",
             "Condition": {"ArnNotEquals": {"aws:SourceArn": [&rule_arn]}}}
        ]})
        .to_string();
        batch
            .update_job_queue()
            .job_queue(&queue)
            .state(aws_sdk_batch::types::JqState::Disabled)
            .send()
            .await
            .unwrap();
        clients
            .cloudformation
            .update_stack()
            .stack_name(&stack)
            .use_previous_template(true)
            .parameters(
                aws_sdk_cloudformation::types::Parameter::builder()
                    .parameter_key("JobQueueArns")
                    .parameter_value(arn(&queue))
                    .build(),
            )
            .parameters(
                aws_sdk_cloudformation::types::Parameter::builder()
                    .parameter_key("BudgetName")
                    .parameter_value("team")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // With a BudgetName, the ticker's reading of it is checked too.
        let unread = checklist(&gather(&clients, &stack, now).await.unwrap());
        assert_eq!(status(&unread, "aws-budget"), Status::Fail);
        let reading = shared::ports::CachedBudget {
            budget: shared::core::budget::AwsBudget {
                limit_usd: rust_decimal::Decimal::from(500),
                period: BudgetPeriod::Month,
                baseline: shared::core::budget::Baseline {
                    spend_usd: rust_decimal::Decimal::from(42),
                    as_of: now - 3_600,
                },
            },
            fetched_at: now - 300,
        };
        shared::ports::BaselineStore::put_cached_budget(&log, &reading)
            .await
            .unwrap();
        // Budgets applied to the stack's state table: read, one of them a week's on this
        // monthly stack.
        let book = shared::core::budgets::BudgetBook::parse(
            "[[budget]]\nname = \"m\"\namount_usd = \"5\"\nperiod = \"month\"\nthresholds = [{ at_percent = \"90\", action = \"notify\" }]\n\
             [[budget]]\nname = \"w\"\namount_usd = \"5\"\nperiod = \"week\"\nscope = { queues = [\"etl\"] }\nthresholds = [{ at_percent = \"90\", action = \"notify\" }]\n",
        )
        .unwrap();
        assert!(
            shared::ports::BudgetStore::replace_budgets(&log, &book, 0)
                .await
                .unwrap()
        );
        clients.cloudwatch = cloudwatch(&stack, &enforcer, now, false);
        let mut mended = gather(&clients, &stack, now).await.unwrap();
        assert!(mended.collector_policy.as_ref().unwrap().is_some());
        mended.collector_policy = Ok(Some(template_policy));
        // The admitter's, as the template deploys it: its one caller is the arrival rule,
        // which the collector's rules do not include.
        assert_eq!(mended.admitter_rules.len(), 1);
        assert!(!mended.collector_rules.contains(&mended.admitter_rules[0]));
        assert_eq!(mended.admitter_policy, Ok(None));
        let arrival = &mended.admitter_rules[0];
        mended.admitter_policy = Ok(Some(
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                 "Action": "lambda:InvokeFunction",
                 "Condition": {"ArnEquals": {"aws:SourceArn": [arrival]},
                               "StringEquals": {"aws:SourceAccount": "123456789012"}}},
                {"Effect": "Deny", "Principal": "*", "Action": "lambda:InvokeFunction",
                 "Condition": {"ArnNotEquals": {"aws:SourceArn": [arrival]}}}
            ]})
            .to_string(),
        ));
        let checks = checklist(&mended);
        assert!(healthy(&checks), "{checks:#?}");
        assert_eq!(status(&checks, &format!("job-queue:{queue}")), Status::Ok);
        assert_eq!(status(&checks, "aws-budget"), Status::Ok);
        assert_eq!(status(&checks, "budgets"), Status::Ok);
        // A week's budget on a monthly stack is summed and acted on by its own period.
        assert!(checks.iter().all(|c| c.id != "budget:w"), "{checks:?}");
        assert!(
            checks
                .iter()
                .any(|c| c.id == "budgets" && c.detail.contains("m, w"))
        );
    }

    #[tokio::test]
    async fn a_stack_that_does_not_exist_is_an_error_naming_it() {
        let config = batchguard_tests::emulator_config().await;
        let error = gather(&Clients::new(&config), "no-such-stack", 0)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("\"no-such-stack\""), "{error}");
    }
}
