//! The local AWS API emulator (which `scripts/test.sh` starts): its configuration, fresh
//! tables, queues, budgets and Cost Explorer answers on it, a request counter, and the check
//! that projected spend equals a local replay.

/// The local AWS API emulator's endpoint, which `scripts/test.sh` starts and exports as
/// `AWS_ENDPOINT_URL`. Panics (failing the test, not skipping it) when it is missing or not on
/// the loopback interface: these tests must never reach a real AWS account.
pub fn emulator_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL is {endpoint:?}: run the tests with `bash scripts/test.sh`, which starts the local AWS emulator"
    );
    endpoint
}

/// AWS SDK configuration pointed at the emulator.
pub async fn emulator_config() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

/// A table prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bg-{test}-{}-{nanos:x}", std::process::id())
}

/// A fresh DynamoDB event log (both tables created) on the emulator.
pub async fn emulator_event_log(test: &str) -> shared::adapters::dynamodb::DynamoEventLog {
    use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
    let config = emulator_config().await;
    let log = DynamoEventLog::new(
        aws_sdk_dynamodb::Client::new(&config),
        TableNames::from_prefix(&unique_prefix(test)),
    );
    log.create_tables()
        .await
        .unwrap_or_else(|e| panic!("creating tables on the emulator: {e}"));
    log
}

/// Counts the DynamoDB operations a client sends (an SDK interceptor), to report requests per
/// job lifecycle.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl RequestCounter {
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// As [`emulator_event_log`], with every operation its client sends counted.
pub async fn counted_emulator_event_log(
    test: &str,
) -> (shared::adapters::dynamodb::DynamoEventLog, RequestCounter) {
    use shared::adapters::dynamodb::{DynamoEventLog, TableNames};
    let config = emulator_config().await;
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let log = DynamoEventLog::new(client, TableNames::from_prefix(&unique_prefix(test)));
    log.create_tables()
        .await
        .unwrap_or_else(|e| panic!("creating tables on the emulator: {e}"));
    (log, counter)
}

/// A job queue on the emulator, on an unmanaged compute environment (whose service role
/// `scripts/test.sh` creates in the emulator's IAM).
pub async fn emulator_queue(batch: &aws_sdk_batch::Client, name: &str) {
    let environment = format!("{name}-ce");
    let exists = batch
        .describe_job_queues()
        .job_queues(name)
        .send()
        .await
        .map(|d| !d.job_queues().is_empty())
        .unwrap_or(false);
    if exists {
        // Left by an earlier run on the same emulator: start from an enabled queue.
        batch
            .update_job_queue()
            .job_queue(name)
            .state(aws_sdk_batch::types::JqState::Enabled)
            .send()
            .await
            .unwrap();
        return;
    }
    batch
        .create_compute_environment()
        .compute_environment_name(&environment)
        .r#type(aws_sdk_batch::types::CeType::Unmanaged)
        .service_role(
            std::env::var("BATCHGUARD_TEST_BATCH_ROLE").expect(
                "BATCHGUARD_TEST_BATCH_ROLE: scripts/test.sh creates the role on the emulator",
            ),
        )
        .state(aws_sdk_batch::types::CeState::Enabled)
        .send()
        .await
        .unwrap();
    batch
        .create_job_queue()
        .job_queue_name(name)
        .priority(1)
        .state(aws_sdk_batch::types::JqState::Enabled)
        .compute_environment_order(
            aws_sdk_batch::types::ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment(&environment)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

pub async fn queue_state(batch: &aws_sdk_batch::Client, name: &str) -> String {
    let described = batch
        .describe_job_queues()
        .job_queues(name)
        .send()
        .await
        .unwrap();
    described.job_queues()[0]
        .state()
        .unwrap()
        .as_str()
        .to_owned()
}

/// Asserts that every scope's spend read from the DynamoDB projections (shard sums plus the
/// one-minute correction of recent starts) equals `expected`, the local replay's, at `at`.
pub async fn assert_projected_spend_is(
    projector: &shared::adapters::dynamodb::DynamoProjector,
    expected: &std::collections::BTreeMap<
        shared::core::scope::Scope,
        shared::core::scope::ScopeSpend,
    >,
    at: i64,
    period: shared::core::budget::BudgetPeriod,
) {
    let recent = projector.recent_starts(at).await.unwrap();
    for (scope, spend) in expected {
        let totals = projector.scope_totals(scope).await.unwrap();
        let corrections = recent
            .iter()
            .filter(|(s, _, _)| s == scope)
            .map(|(_, anchor, rate)| (*anchor, *rate));
        assert_eq!(
            &totals.spend_at(at, period, corrections),
            spend,
            "scope {scope:?}"
        );
    }
}

/// Queues Cost Explorer answers on the emulator (its own API, one plain HTTP POST): $12.50 and
/// $7.25 of unblended cost on 2026-11-01 and 02, nothing on the 3rd. Every test that asks
/// queues the same answer, so the emulator's first-come order does not matter.
pub fn set_emulator_cost_and_usage() {
    let endpoint = emulator_endpoint();
    let results = serde_json::json!({"results": [{
        "ResultsByTime": [
            {"TimePeriod": {"Start": "2026-11-01", "End": "2026-11-02"},
             "Total": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}}, "Groups": [], "Estimated": false},
            {"TimePeriod": {"Start": "2026-11-02", "End": "2026-11-03"},
             "Total": {"UnblendedCost": {"Amount": "7.25", "Unit": "USD"}}, "Groups": [], "Estimated": true},
            {"TimePeriod": {"Start": "2026-11-03", "End": "2026-11-04"},
             "Total": {}, "Groups": [], "Estimated": true}
        ]
    }]});
    let body = results.to_string();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /moto-api/static/ce/cost-and-usage-results HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
}

/// A monthly cost budget in USD on the emulator's AWS Budgets (account 123456789012) with
/// AWS's actual spend so far; the emulator dates it now (`LastUpdatedTime`).
pub async fn emulator_budget(
    client: &aws_sdk_budgets::Client,
    name: &str,
    limit_usd: &str,
    actual_spend_usd: &str,
) {
    use aws_sdk_budgets::types::{Budget, BudgetType, CalculatedSpend, Spend, TimeUnit};
    let usd = |amount: &str| Spend::builder().amount(amount).unit("USD").build().unwrap();
    client
        .create_budget()
        .account_id("123456789012")
        .budget(
            Budget::builder()
                .budget_name(name)
                .budget_limit(usd(limit_usd))
                .time_unit(TimeUnit::Monthly)
                .budget_type(BudgetType::Cost)
                .calculated_spend(
                    CalculatedSpend::builder()
                        .actual_spend(usd(actual_spend_usd))
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// A DynamoDB table keyed `pk`/`sk` (strings), as a CloudFormation resource for stacks made
/// on the emulator.
pub fn cfn_pk_sk_table() -> serde_json::Value {
    serde_json::json!({
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"}
            ],
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"}
            ]
        }
    })
}

/// The state table as template.yaml declares its keys and indexes (`open`, `recent`,
/// `caps`: what `doctor` checks), for CloudFormation on the emulator.
pub fn cfn_state_table() -> serde_json::Value {
    let index = |name: &str, hash: &str, range: &str, projection: &str| {
        serde_json::json!({
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash, "KeyType": "HASH"},
                {"AttributeName": range, "KeyType": "RANGE"}
            ],
            "Projection": {"ProjectionType": projection}
        })
    };
    let mut table = cfn_pk_sk_table();
    let properties = &mut table["Properties"];
    if let Some(definitions) = properties["AttributeDefinitions"].as_array_mut() {
        for (name, kind) in [
            ("open_shard", "S"),
            ("last_event_ms", "N"),
            ("recent_minute", "S"),
            ("cap_shard", "S"),
            ("cap_at", "N"),
        ] {
            definitions.push(serde_json::json!({"AttributeName": name, "AttributeType": kind}));
        }
    }
    properties["GlobalSecondaryIndexes"] = serde_json::json!([
        index("open", "open_shard", "last_event_ms", "KEYS_ONLY"),
        index("recent", "recent_minute", "pk", "ALL"),
        index("caps", "cap_shard", "cap_at", "KEYS_ONLY"),
    ]);
    table
}

/// A container job definition named `name` on the emulator (1 vCPU, 2 GiB of `busybox true`);
/// its ARN.
pub async fn emulator_job_definition(batch: &aws_sdk_batch::Client, name: &str) -> String {
    let requirement = |kind, value: &str| {
        aws_sdk_batch::types::ResourceRequirement::builder()
            .r#type(kind)
            .value(value)
            .build()
    };
    batch
        .register_job_definition()
        .job_definition_name(name)
        .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
        .container_properties(
            aws_sdk_batch::types::ContainerProperties::builder()
                .image("busybox")
                .command("true")
                .resource_requirements(requirement(aws_sdk_batch::types::ResourceType::Vcpu, "1"))
                .resource_requirements(requirement(
                    aws_sdk_batch::types::ResourceType::Memory,
                    "2048",
                ))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("registering {name} on the emulator: {e}"))
        .job_definition_arn()
        .expect("RegisterJobDefinition answers with an ARN")
        .to_owned()
}
