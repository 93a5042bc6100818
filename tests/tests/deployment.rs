//! The deployment, checked offline: `template.yaml` and `dashboards/*.json` against the code.
//!
//! - the template's dashboards are generated from `dashboards/*.json` (and kept so);
//! - every metric a dashboard or alarm names is in `shared::metrics::CATALOGUE`, with one of
//!   its dimension sets, and the functions emit exactly the catalogue (run on the emulator);
//! - alarms wired to the enforcer name a level the enforcer reads, and may invoke it;
//! - the EventBridge rules, evaluated from the template and put on the emulator's EventBridge
//!   with SQS targets, deliver exactly the real sample events the collector keeps;
//! - every parameter is documented in the README;
//! - only the enforcer's role may write the admission gates, and no function's the budgets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use batchguard_tests::cfn::{self, Stack};
use serde_json::{Value, json};
use serde_norway::Value as Yaml;
use shared::core::scope::Scope;
use shared::events::{Parsed, parse_event};
use shared::metrics::{self, CATALOGUE};

fn template() -> Yaml {
    serde_norway::from_str(&cfn::template_text()).expect("template.yaml is YAML")
}

fn default_stack() -> Stack {
    Stack::new(template(), &[], "123456789012", "us-east-1")
}

#[test]
fn the_templates_dashboards_are_generated_from_the_dashboard_files() {
    let text = cfn::template_text();
    let generated = cfn::template_with_dashboards(&text);
    if std::env::var_os("BATCHGUARD_BLESS").is_some() {
        std::fs::write(cfn::root().join("template.yaml"), &generated).unwrap();
        return;
    }
    assert!(
        text == generated,
        "template.yaml's dashboards differ from dashboards/*.json; run \
         BATCHGUARD_BLESS=1 cargo test -p batchguard-tests --test deployment"
    );
    let stack = default_stack();
    let dashboards = stack.resources_of("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), cfn::dashboard_files().len());
    assert!(dashboards.len() >= 2, "{dashboards:?}");
}

#[test]
fn dashboard_files_use_only_known_placeholders_or_cloudwatch_labels() {
    let template = template();
    for (name, body) in cfn::dashboard_files() {
        serde_json::from_str::<Value>(&body)
            .unwrap_or_else(|e| panic!("dashboards/{name}.json is not JSON: {e}"));
        let mut rest = body.as_str();
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let end = after.find('}').unwrap();
            let inner = &after[..end];
            assert!(
                cfn::is_template_placeholder(inner, &template)
                    || [
                        "PROP(", "LABEL", "SUM", "MIN", "MAX", "AVG", "LAST", "FIRST"
                    ]
                    .iter()
                    .any(|label| inner.starts_with(label)),
                "dashboards/{name}.json: ${{{inner}}} is neither a template name nor a CloudWatch label"
            );
            rest = &after[end + 1..];
        }
    }
}

/// The dashboards as CloudWatch receives them, after `Fn::Sub`.
fn deployed_dashboards(stack: &Stack) -> Vec<(String, Value)> {
    stack
        .resources_of("AWS::CloudWatch::Dashboard")
        .into_iter()
        .map(|id| {
            let body = stack.eval(&stack.resource(&id)["Properties"]["DashboardBody"]);
            let body: Value = serde_json::from_str(body.as_str().unwrap())
                .unwrap_or_else(|e| panic!("{id}: the deployed body is not JSON: {e}"));
            (id, body)
        })
        .collect()
}

/// A metric a dashboard or alarm names: namespace, name, dimensions (sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricRef {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
}

/// `SEARCH('{"ns",A,B} A="x" MetricName="M"', 'Stat', 60)` → the metric it searches for.
fn search_ref(expression: &str) -> MetricRef {
    let open = expression.find('{').expect("a SEARCH schema");
    let close = expression.find('}').expect("a SEARCH schema");
    let mut schema = expression[open + 1..close].split(',');
    let namespace = schema.next().unwrap().trim_matches('"').to_owned();
    let names: Vec<String> = schema.map(str::to_owned).collect();
    let filters = &expression[close + 1..];
    let value_of = |key: &str| {
        filters
            .split_once(&format!("{key}=\""))
            .map(|(_, rest)| rest.split('"').next().unwrap().to_owned())
    };
    MetricRef {
        namespace,
        name: value_of("MetricName").expect("SEARCH names its MetricName"),
        dimensions: names
            .iter()
            .map(|n| (n.clone(), value_of(n).unwrap_or_else(|| "*".into())))
            .collect(),
    }
}

fn widget_metrics(widget: &Value) -> Vec<MetricRef> {
    let mut refs = Vec::new();
    let rows = widget["properties"]["metrics"].as_array().cloned();
    for row in rows.into_iter().flatten() {
        let row = row.as_array().unwrap();
        if let Some(expression) = row[0].get("expression").and_then(Value::as_str) {
            if expression.starts_with("SEARCH(") {
                refs.push(search_ref(expression));
            }
            continue;
        }
        let strings: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
        assert!(
            strings.len() >= 2 && strings.len().is_multiple_of(2),
            "a metric row is namespace, name, then dimension pairs: {row:?}"
        );
        refs.push(MetricRef {
            namespace: strings[0].to_owned(),
            name: strings[1].to_owned(),
            dimensions: strings[2..]
                .chunks(2)
                .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                .collect(),
        });
    }
    refs
}

fn scope_kinds() -> BTreeSet<&'static str> {
    let mut kinds: BTreeSet<&str> = [
        Scope::Total,
        Scope::Queue("q".into()),
        Scope::ComputeEnvironment("c".into()),
        Scope::JobDefinition("d".into()),
        Scope::Tag("k".into(), "v".into()),
    ]
    .iter()
    .map(Scope::kind)
    .collect();
    kinds.insert(metrics::BUDGET_SCOPE_KIND);
    kinds
}

/// Checks a metric reference against the catalogue (ours) or the template's resources (AWS).
fn check_ref(stack: &Stack, metric: &MetricRef, context: &str) {
    if metric.namespace == stack.namespace() {
        let spec = metrics::spec(&metric.name).unwrap_or_else(|| {
            panic!(
                "{context}: {} is not a metric batchguard emits",
                metric.name
            )
        });
        let names: BTreeSet<&str> = metric.dimensions.keys().map(String::as_str).collect();
        assert!(
            spec.dimension_sets
                .iter()
                .any(|set| set.iter().copied().collect::<BTreeSet<_>>() == names),
            "{context}: {} has no dimension set {names:?} (emitted with {:?})",
            metric.name,
            spec.dimension_sets
        );
        if let Some(kind) = metric.dimensions.get(metrics::DIMENSION_SCOPE_KIND) {
            assert!(
                scope_kinds().contains(kind.as_str()),
                "{context}: no scope kind {kind:?}"
            );
        }
        if metric
            .dimensions
            .get(metrics::DIMENSION_SCOPE_KIND)
            .map(String::as_str)
            == Some(metrics::BUDGET_SCOPE_KIND)
        {
            // The template's own budget, a search over every budget (applied budgets are
            // named by the user, so a widget can only list them), or all of them at once
            // (the highest action level: no Scope).
            if let Some(scope) = metric.dimensions.get(metrics::DIMENSION_SCOPE) {
                assert!(
                    scope == metrics::BUDGET_SCOPE || scope == "*",
                    "{context}: budget scope {scope:?}"
                );
            } else {
                assert_eq!(metric.name, metrics::BUDGET_ACTION_LEVEL, "{context}");
            }
        }
        return;
    }
    let (dimension, resource_type) = match metric.namespace.as_str() {
        "AWS/SQS" => ("QueueName", "AWS::SQS::Queue"),
        "AWS/Lambda" => ("FunctionName", "AWS::Serverless::Function"),
        other => panic!("{context}: namespace {other} is neither batchguard's nor expected"),
    };
    let value = &metric.dimensions[dimension];
    let resource = value.split('.').next().unwrap();
    assert_eq!(
        stack.resource(resource)["Type"].as_str(),
        Some(resource_type),
        "{context}: {dimension} {value} is not one of the stack's resources"
    );
}

#[test]
fn every_metric_a_dashboard_or_alarm_names_is_one_the_code_emits() {
    let stack = default_stack();
    let mut seen = BTreeSet::new();
    for (id, body) in deployed_dashboards(&stack) {
        for widget in body["widgets"].as_array().unwrap() {
            let title = widget["properties"]["title"].as_str().unwrap_or("(text)");
            let context = format!("dashboard {id}, widget {title:?}");
            match widget["type"].as_str().unwrap() {
                "metric" => {
                    let refs = widget_metrics(widget);
                    assert!(!refs.is_empty(), "{context}: no metric");
                    for metric in refs {
                        check_ref(&stack, &metric, &context);
                        seen.insert(metric.name.clone());
                    }
                }
                "log" => {
                    let query = widget["properties"]["query"].as_str().unwrap();
                    let source = query
                        .strip_prefix("SOURCE '")
                        .and_then(|q| q.split('\'').next())
                        .unwrap();
                    assert_eq!(
                        stack.resource(source)["Type"].as_str(),
                        Some("AWS::Logs::LogGroup"),
                        "{context}"
                    );
                    let field = query
                        .split_once("ispresent(")
                        .and_then(|(_, rest)| rest.split(')').next())
                        .unwrap();
                    assert!(metrics::spec(field).is_some(), "{context}: {field}");
                    seen.insert(field.to_owned());
                }
                "text" => {}
                other => panic!("{context}: widget type {other}"),
            }
        }
    }
    for id in stack.resources_of("AWS::CloudWatch::Alarm") {
        let properties = stack.eval(&stack.resource(&id)["Properties"]);
        let metric = MetricRef {
            namespace: properties["Namespace"].as_str().unwrap().to_owned(),
            name: properties["MetricName"].as_str().unwrap().to_owned(),
            dimensions: properties["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    (
                        d["Name"].as_str().unwrap().to_owned(),
                        d["Value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        };
        check_ref(&stack, &metric, &format!("alarm {id}"));
        seen.insert(metric.name);
    }
    // The dashboards show everything batchguard measures.
    for spec in CATALOGUE {
        assert!(seen.contains(spec.name), "no dashboard shows {}", spec.name);
    }
}

/// `batchguard doctor` knows the stack by the template's names: its alarms (and which invoke
/// the enforcer), outputs and parameters, and the metric the ticker-silent alarm watches.
#[test]
fn doctor_reads_what_the_template_defines() {
    use shared::analysis::checklist::{ALARMS, ENFORCER_ALARMS, OUTPUTS, PARAMETERS};
    let stack = default_stack();
    let alarms: BTreeSet<String> = stack
        .resources_of("AWS::CloudWatch::Alarm")
        .into_iter()
        .collect();
    let known: BTreeSet<String> = ALARMS.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(alarms, known);
    let invoking: BTreeSet<String> = alarms
        .iter()
        .filter(|id| {
            let properties = stack.eval(&stack.resource(id)["Properties"]);
            properties["AlarmActions"]
                .as_array()
                .unwrap()
                .contains(&json!("EnforcerFunction.Arn"))
        })
        .cloned()
        .collect();
    let expected: BTreeSet<String> = ENFORCER_ALARMS.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(invoking, expected);
    let template = template();
    for output in OUTPUTS {
        assert!(
            !template["Outputs"][output].is_null(),
            "the template has no output {output}"
        );
    }
    for parameter in PARAMETERS {
        assert!(
            !template["Parameters"][parameter].is_null(),
            "the template has no parameter {parameter}"
        );
    }
    let silent = stack.eval(&stack.resource("TickerSilentAlarm")["Properties"]);
    assert_eq!(silent["MetricName"], metrics::BUDGET_USED_PERCENT);
    assert_eq!(
        silent["Dimensions"],
        json!([{"Name": "ScopeKind", "Value": "budget"}, {"Name": "Scope", "Value": "budget"}])
    );
}

#[test]
fn alarms_that_invoke_the_enforcer_name_a_level_it_reads_and_may_invoke_it() {
    use shared::core::enforcement::EnforcerRequest;
    use shared::core::policy::Level;
    use shared::handlers::enforcer::read_request;
    let stack = default_stack();
    let permissions: Vec<Value> = stack
        .resources_of("AWS::Lambda::Permission")
        .iter()
        .map(|id| stack.eval(&stack.resource(id)["Properties"]))
        .collect();
    let mut levels = BTreeSet::new();
    let mut budget_alarms = BTreeSet::new();
    for id in stack.resources_of("AWS::CloudWatch::Alarm") {
        let properties = stack.eval(&stack.resource(&id)["Properties"]);
        let actions = properties["AlarmActions"].as_array().unwrap();
        assert!(
            actions.contains(&json!("Topic")),
            "alarm {id} notifies the topic"
        );
        if !actions.contains(&json!("EnforcerFunction.Arn")) {
            continue;
        }
        // The payload CloudWatch sends the function, with this alarm's description.
        let payload = json!({
            "source": "aws.cloudwatch",
            "alarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{id}"),
            "accountId": "123456789012",
            "time": "2026-11-24T12:00:00.000+0000",
            "region": "us-east-1",
            "alarmData": {
                "alarmName": id,
                "state": {"value": "ALARM", "reason": "threshold crossed", "timestamp": "2026-11-24T12:00:00.000+0000"},
                "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-24T11:00:00.000+0000"},
                "configuration": {"description": properties["AlarmDescription"], "metrics": []}
            }
        });
        let request = read_request(payload)
            .unwrap_or_else(|e| panic!("alarm {id}: {e}"))
            .unwrap();
        match request {
            EnforcerRequest::Enforce { level, .. } => {
                levels.insert(level);
            }
            EnforcerRequest::JudgeBudgets { .. } => {
                budget_alarms.insert(id.clone());
            }
            other => panic!("alarm {id} asks for {other:?}"),
        }
        assert!(
            permissions.iter().any(|p| {
                p["Principal"] == "lambda.alarms.cloudwatch.amazonaws.com"
                    && p["FunctionName"] == "EnforcerFunction"
                    && p["SourceArn"] == format!("{id}.Arn")
                    && p["Action"] == "lambda:InvokeFunction"
            }),
            "alarm {id} invokes the enforcer without a permission scoped to it"
        );
    }
    assert_eq!(
        levels,
        BTreeSet::from([Level::Freeze, Level::Stop]),
        "the freeze and stop alarms reach the enforcer"
    );
    assert_eq!(
        budget_alarms,
        BTreeSet::from([
            "AppliedBudgetsDrainAlarm".to_owned(),
            "AppliedBudgetsStopAlarm".to_owned()
        ]),
        "the alarms on the applied budgets have the enforcer judge them"
    );
}

/// One enforcer at a time (overlapping runs would double notices and Batch calls), and event
/// rules that take this account's events only.
#[test]
fn the_enforcer_runs_alone_and_the_rules_take_only_this_accounts_events() {
    let stack = default_stack();
    assert_eq!(
        stack.eval(
            &stack.resource("EnforcerFunction")["Properties"]["ReservedConcurrentExecutions"]
        ),
        json!(1)
    );
    for rule in [
        "BatchJobStateRule",
        "BatchJobArrivalRule",
        "EcsTaskStateRule",
    ] {
        let pattern = stack.eval(&stack.resource(rule)["Properties"]["EventPattern"]);
        assert_eq!(pattern["account"], json!(["123456789012"]), "{rule}");
    }
}

/// The admitter cancels jobs, so it takes events only through its own rule, as the collector
/// does (the same check of its resource policy by IAM's rules), and that rule targets nothing
/// else.
#[test]
fn the_admitter_takes_events_only_through_its_rule() {
    use shared::analysis::entry_policy::admits_only_rules;
    let stack = default_stack();
    let policies: Vec<String> = stack
        .resources_of("AWS::Lambda::ResourcePolicy")
        .into_iter()
        .filter(|id| {
            stack.eval(&stack.resource(id)["Properties"]["ResourceArn"])
                == json!("AdmitterFunction.Arn")
        })
        .collect();
    assert_eq!(policies, vec!["AdmitterEntryPolicy".to_owned()]);
    let document = stack.eval(&stack.resource(&policies[0])["Properties"]["PolicyDocument"]);
    let rules = vec!["BatchJobArrivalRule.Arn".to_owned()];
    assert_eq!(
        admits_only_rules(
            &document.to_string(),
            "AdmitterFunction.Arn",
            &rules,
            "123456789012"
        ),
        Ok(())
    );
    for id in stack.resources_of("AWS::Events::Rule") {
        let targets = stack.eval(&stack.resource(&id)["Properties"]["Targets"]);
        let targets = targets.as_array().unwrap();
        let to_admitter = targets
            .iter()
            .any(|t| t["Arn"] == json!("AdmitterFunction.Arn"));
        assert_eq!(to_admitter, id == "BatchJobArrivalRule", "{id}");
        if to_admitter {
            assert_eq!(targets.len(), 1, "{id} targets the admitter only");
        }
    }
    for id in stack.resources_of("AWS::Lambda::Permission") {
        let function = stack.eval(&stack.resource(&id)["Properties"]["FunctionName"]);
        assert_ne!(function, json!("AdmitterFunction"), "{id}");
    }
}

/// The collector takes events only through the stack's two rules: its resource policy, as the
/// template writes it and judged by IAM's rules (`shared::analysis::entry_policy`, which
/// `doctor` applies to a deployed stack), lets EventBridge invoke it from those rules and keeps
/// out another rule and the account's own users and roles; no AWS::Lambda::Permission adds to
/// it (a resource policy replaces what AddPermission writes).
#[test]
fn the_collector_takes_events_only_through_the_stacks_rules() {
    use shared::analysis::entry_policy::admits_only_rules;
    let stack = default_stack();
    let policies: Vec<String> = stack
        .resources_of("AWS::Lambda::ResourcePolicy")
        .into_iter()
        .filter(|id| {
            stack.eval(&stack.resource(id)["Properties"]["ResourceArn"])
                == json!("CollectorFunction.Arn")
        })
        .collect();
    assert_eq!(policies, vec!["CollectorEntryPolicy".to_owned()]);
    let document = stack.eval(&stack.resource(&policies[0])["Properties"]["PolicyDocument"]);
    let rules: Vec<String> = ["BatchJobStateRule", "EcsTaskStateRule"]
        .iter()
        .map(|rule| format!("{rule}.Arn"))
        .collect();
    assert_eq!(
        admits_only_rules(
            &document.to_string(),
            "CollectorFunction.Arn",
            &rules,
            "123456789012"
        ),
        Ok(())
    );
    // Every rule that targets the collector is one the policy admits.
    for id in stack.resources_of("AWS::Events::Rule") {
        let targets = stack.eval(&stack.resource(&id)["Properties"]["Targets"]);
        let to_collector = targets
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Arn"] == json!("CollectorFunction.Arn"));
        assert_eq!(to_collector, rules.contains(&format!("{id}.Arn")), "{id}");
    }
    for id in stack.resources_of("AWS::Lambda::Permission") {
        let function = stack.eval(&stack.resource(&id)["Properties"]["FunctionName"]);
        assert_ne!(function, json!("CollectorFunction"), "{id}");
    }
    // The check fails on the policy without its Deny (what Permissions alone give).
    let mut allow_only = document.clone();
    allow_only["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Effect"] == "Allow");
    assert!(
        admits_only_rules(
            &allow_only.to_string(),
            "CollectorFunction.Arn",
            &rules,
            "123456789012"
        )
        .is_err()
    );
}

/// Whether identity-policy `statements` let a role `action` the state table's item under
/// partition `leading_key`, by IAM's rules for what they use: an explicit deny wins, else an
/// allow is needed. Actions and resources match as IAM globs (`*`, `?`); condition values
/// exactly (`StringEquals`); `ForAllValues:StringEquals` and `ForAnyValue:StringEquals` on
/// `dynamodb:LeadingKeys` hold when the one key is among their values. Whatever else a
/// statement uses (`NotAction`, `NotResource`, another condition) counts for an allow and
/// against a deny: the answer errs towards "may write".
fn may_write_state(statements: &[Value], action: &str, leading_key: &str) -> bool {
    fn glob(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => {
                pattern.len() == text.len()
                    && pattern
                        .chars()
                        .zip(text.chars())
                        .all(|(p, t)| p == '?' || p == t)
            }
            Some((head, tail)) => {
                text.len() >= head.len()
                    && glob(head, &text[..head.len()])
                    && (head.len()..=text.len()).any(|cut| glob(tail, &text[cut..]))
            }
        }
    }
    let one_or_many = |value: &Value| -> Vec<String> {
        match value {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let applies = |statement: &Value, allow: bool| {
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            return allow;
        }
        let conditions_hold = statement["Condition"].as_object().is_none_or(|conditions| {
            conditions.iter().all(|(operator, keys)| {
                let known = matches!(
                    operator.as_str(),
                    "ForAllValues:StringEquals" | "ForAnyValue:StringEquals"
                );
                let Some(keys) = keys.as_object().filter(|_| known) else {
                    return allow;
                };
                keys.iter().all(|(key, values)| {
                    if key != "dynamodb:LeadingKeys" {
                        return allow;
                    }
                    one_or_many(values).iter().any(|value| value == leading_key)
                })
            })
        });
        one_or_many(&statement["Action"])
            .iter()
            .any(|pattern| glob(pattern, action))
            && one_or_many(&statement["Resource"])
                .iter()
                .any(|pattern| glob(pattern, "StateTable.Arn"))
            && conditions_hold
    };
    let denied = statements
        .iter()
        .any(|s| s["Effect"] == "Deny" && applies(s, false));
    let allowed = statements
        .iter()
        .any(|s| s["Effect"] == "Allow" && applies(s, true));
    allowed && !denied
}

/// GIVEN the template WHEN each function's role is asked whether it may write the state
/// table's gates (`GATE`: the admitter cancels jobs on them) or applied budgets (`BUDGETS`:
/// every function acts on them) THEN only the enforcer may write a gate, no role may write the
/// budgets (the command line applies them with the operator's credentials), and the collector
/// and ticker may still write their own items. Without their deny, the collector's and
/// ticker's roles could forge a gate: the check fails on them.
#[test]
fn only_the_enforcer_writes_the_gates_and_no_function_the_budgets() {
    let stack = default_stack();
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    let statements_of = |id: &str| -> Vec<Value> {
        let policies = stack.eval(&stack.resource(id)["Properties"]["Policies"]);
        assert!(
            stack.resource(id)["Properties"].get("Role").is_none(),
            "{id}: a role this check does not read"
        );
        policies
            .as_array()
            .unwrap_or_else(|| panic!("{id}: no Policies"))
            .iter()
            .flat_map(|policy| {
                policy["Statement"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{id}: a policy this check cannot read: {policy}"))
                    .clone()
            })
            .collect()
    };
    // The evaluator errs towards "may write" on what it does not model.
    let allow = |extra: Value| {
        let mut statement =
            json!({"Effect": "Allow", "Action": "dynamodb:Put*", "Resource": "StateTable.Arn"});
        statement
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        statement
    };
    assert!(may_write_state(
        &[allow(json!({}))],
        "dynamodb:PutItem",
        "GATE"
    ));
    assert!(may_write_state(
        &[allow(
            json!({"Condition": {"StringLike": {"dynamodb:LeadingKeys": ["X"]}}})
        )],
        "dynamodb:PutItem",
        "GATE"
    ));
    let star_deny = json!({"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["*"]}}});
    assert!(may_write_state(
        &[allow(json!({})), star_deny],
        "dynamodb:PutItem",
        "GATE"
    ));
    let functions = stack.resources_of("AWS::Serverless::Function");
    assert!(functions.len() >= 4, "{functions:?}");
    for id in &functions {
        let statements = statements_of(id);
        for action in writes {
            assert_eq!(
                may_write_state(&statements, action, "GATE"),
                id == "EnforcerFunction" && action == "dynamodb:PutItem",
                "{id} {action} GATE"
            );
            assert!(
                !may_write_state(&statements, action, "BUDGETS"),
                "{id} {action} BUDGETS"
            );
        }
    }
    for id in ["CollectorFunction", "TickerFunction"] {
        let statements = statements_of(id);
        assert!(
            may_write_state(&statements, "dynamodb:PutItem", "PROJ#JOB#j"),
            "{id}"
        );
        let allows_only: Vec<Value> = statements
            .into_iter()
            .filter(|s| s["Effect"] == "Allow")
            .collect();
        assert!(
            may_write_state(&allows_only, "dynamodb:PutItem", "GATE"),
            "{id}"
        );
    }
}

#[test]
fn the_functions_run_with_the_configuration_the_template_gives_them() {
    // Each function's environment, as deployed, is a valid configuration.
    for overrides in [
        &[][..],
        &[
            (
                "JobQueueArns",
                "arn:aws:batch:us-east-1:123456789012:job-queue/etl,arn:aws:batch:us-east-1:123456789012:job-queue/ml-training",
            ),
            ("DryRun", "false"),
            ("TickMinutes", "5"),
        ][..],
    ] {
        let stack = Stack::new(template(), overrides, "123456789012", "us-east-1");
        let globals =
            stack.eval(&stack.template["Globals"]["Function"]["Environment"]["Variables"]);
        for id in stack.resources_of("AWS::Serverless::Function") {
            let mut variables = globals.as_object().unwrap().clone();
            let own = stack.eval(&stack.resource(&id)["Properties"]["Environment"]["Variables"]);
            if let Some(own) = own.as_object() {
                variables.extend(own.clone());
            }
            let config = shared::config::Config::from_vars(variables.iter().map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            }))
            .unwrap_or_else(|e| panic!("{id} with {overrides:?}: {e}"));
            assert_eq!(config.metrics_namespace, stack.namespace());
            let minutes: i64 = stack.parameters["TickMinutes"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(config.policy.tick_seconds, minutes * 60);
            if overrides.is_empty() {
                assert!(config.dry_run, "a first deployment is a dry run");
                assert!(config.scope_queues.is_empty());
            } else {
                assert!(!config.dry_run);
                assert_eq!(config.scope_queues, ["etl", "ml-training"]);
            }
        }
        let schedule = stack.eval(&stack.resource("TickRule")["Properties"]["ScheduleExpression"]);
        let expected = if overrides.is_empty() {
            "rate(1 minute)"
        } else {
            "rate(5 minutes)"
        };
        assert_eq!(schedule, expected);
    }
}

#[test]
fn every_parameter_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(cfn::root().join("README.md")).unwrap();
    let template = template();
    for (name, _) in template["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README.md has no row for the template parameter {name}"
        );
    }
}

// ---------------------------------------------------------------- on the emulator

/// The real sample events (one per file; the alarm payloads are not EventBridge events).
fn sample_events() -> Vec<(String, Value)> {
    let dir = cfn::root().join("tests/fixtures/events");
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if value.get("detail-type").is_some() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            events.push((name, value));
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    // And the samples moved to where batchguard reads them: a Spot interruption of a Batch
    // task, an EC2 instance of a Batch cluster.
    let [job, task] = batchguard_tests::spot_interrupted_job_events();
    for (name, text) in [
        ("derived:spot-interrupted-job", job),
        ("derived:spot-interrupted-task", task),
        (
            "derived:batch-instance",
            batchguard_tests::batch_instance_event(),
        ),
    ] {
        events.push((name.to_owned(), serde_json::from_str(&text).unwrap()));
    }
    events
}

async fn deliveries(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = output.messages();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            bodies.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Runs `scripts/validate-emf.py` (AWS's EMF schema, from the test command's Python tools) on
/// `documents` written at `now_ms`: whether they passed, and what it printed.
fn validate_emf(documents: &[String], now_ms: i64) -> (bool, String) {
    let root = cfn::root();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("emf.jsonl");
    std::fs::write(&file, documents.join("\n") + "\n").unwrap();
    let python = root.join(".venv-tools/bin/python");
    let output = std::process::Command::new(&python)
        .arg(root.join("scripts/validate-emf.py"))
        .arg(root.join("tests/fixtures/emf/schema.json"))
        .arg(&file)
        .args(["--now-ms", &now_ms.to_string()])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test.sh installs the Python tools)",
                python.display()
            )
        });
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Account, region, and parameters overridden.
type Deployment = (String, String, Vec<(&'static str, &'static str)>);

#[tokio::test]
async fn the_event_rules_deliver_exactly_the_sample_events_the_collector_keeps() {
    const EMULATOR_ACCOUNT: &str = "123456789012";
    let config = batchguard_tests::emulator_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut samples = sample_events();
    assert!(samples.len() >= 15, "{} samples", samples.len());
    // An array child entering RUNNABLE, from the real RUNNABLE sample: the admitter's rule
    // leaves it out (a child is judged through its parent).
    let (_, runnable) = samples
        .iter()
        .find(|(name, _)| name == "batch_job_state_change_RUNNABLE_awsdocs.json")
        .unwrap();
    let mut child = runnable.clone();
    let id = format!("{}:3", child["detail"]["jobId"].as_str().unwrap());
    child["detail"]["jobId"] = json!(id);
    child["detail"]["jobArn"] = json!(format!("arn:aws:batch:us-east-1:123456789012:job/{id}"));
    child["detail"]["arrayProperties"] = json!({"index": 3});
    samples.push(("derived:array-child-runnable".to_owned(), child));

    // One deployment per account and region the samples come from (where their events are
    // delivered), and one more scoped to a single queue.
    let mut deployments: Vec<Deployment> = samples
        .iter()
        .map(|(_, e)| {
            (
                e["account"].as_str().unwrap().to_owned(),
                e["region"].as_str().unwrap().to_owned(),
                vec![],
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let scoped_queue = "batch-job-queue-dev";
    deployments.push((
        "123456789012".into(),
        "us-east-1".into(),
        vec![(
            "JobQueueArns",
            "arn:aws:batch:us-east-1:123456789012:job-queue/batch-job-queue-dev",
        )],
    ));

    let prefix = batchguard_tests::unique_prefix("rules");
    let mut rules = Vec::new(); // (deployment index, rule id, queue url)
    for (index, (account, region, overrides)) in deployments.iter().enumerate() {
        let stack = Stack::new(template(), overrides, account, region);
        for rule in [
            "BatchJobStateRule",
            "BatchJobArrivalRule",
            "EcsTaskStateRule",
        ] {
            let pattern = stack.eval(&stack.resource(rule)["Properties"]["EventPattern"]);
            let name = format!("{prefix}-{index}-{rule}");
            let queue_url = sqs
                .create_queue()
                .queue_name(&name)
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned();
            let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
            events
                .put_rule()
                .name(&name)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{rule} {pattern}: {e:?}"));
            events
                .put_targets()
                .rule(&name)
                .targets(
                    aws_sdk_eventbridge::types::Target::builder()
                        .id("queue")
                        .arn(queue_arn)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            rules.push((index, rule, queue_url));
        }
    }

    // Every sample event, as AWS puts it on the default bus.
    for (_, event) in &samples {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(event["source"].as_str().unwrap())
            .detail_type(event["detail-type"].as_str().unwrap())
            .detail(event["detail"].to_string())
            .set_resources(event["resources"].as_array().map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }))
            .build();
        let output = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(output.failed_entry_count(), 0);
    }

    for (index, rule, queue_url) in &rules {
        let (account, region, overrides) = &deployments[*index];
        let got: BTreeSet<String> = deliveries(&sqs, queue_url)
            .await
            .iter()
            .map(|body| body["detail"].to_string())
            .collect();
        // The emulator's bus stamps every event with its own account: a deployment for
        // another account must take none of them (the rules' `account` filter).
        if account != EMULATOR_ACCOUNT {
            assert!(
                got.is_empty(),
                "{rule} deployed in {account} took {} events of account {EMULATOR_ACCOUNT}",
                got.len()
            );
            continue;
        }
        // What the collector keeps, of the events delivered to this account and region.
        let expected: BTreeSet<String> = samples
            .iter()
            .filter(|(_, e)| e["account"] == account.as_str() && e["region"] == region.as_str())
            .filter(|(name, e)| {
                let kept = parse_event(e.to_string().as_bytes())
                    .unwrap_or_else(|error| panic!("{name}: {error}"));
                match (kept, *rule) {
                    (Parsed::Fact(fact), "BatchJobStateRule") => match &fact.body {
                        shared::core::facts::FactBody::Job(job) => {
                            overrides.is_empty() || job.queue == scoped_queue
                        }
                        _ => false,
                    },
                    // Entering SUBMITTED or RUNNABLE, and a job the admitter judges.
                    (Parsed::Fact(fact), "BatchJobArrivalRule") => match &fact.body {
                        shared::core::facts::FactBody::Job(job) => {
                            (overrides.is_empty() || job.queue == scoped_queue)
                                && matches!(
                                    job.status,
                                    shared::core::facts::JobStatus::Submitted
                                        | shared::core::facts::JobStatus::Runnable
                                )
                                && shared::handlers::admitter::arriving_job(e)
                                    .unwrap()
                                    .is_some()
                        }
                        _ => false,
                    },
                    (Parsed::Fact(fact), "EcsTaskStateRule") => matches!(
                        fact.body,
                        shared::core::facts::FactBody::Task(_)
                            | shared::core::facts::FactBody::Instance(_)
                    ),
                    _ => false,
                }
            })
            .map(|(_, e)| e["detail"].to_string())
            .collect();
        // The bus of a deployment carries its own account and region's events only.
        let local: BTreeSet<String> = samples
            .iter()
            .filter(|(_, e)| e["account"] == account.as_str() && e["region"] == region.as_str())
            .map(|(_, e)| e["detail"].to_string())
            .collect();
        let got_local: BTreeSet<String> = got.intersection(&local).cloned().collect();
        assert_eq!(
            got_local, expected,
            "{rule} deployed in {account}/{region} with {overrides:?}"
        );
        if *rule == "EcsTaskStateRule" {
            assert!(
                got.is_subset(&local),
                "the ECS rule takes tasks of this account and region's Batch clusters only"
            );
        }
    }
    // The run checked something of each kind.
    let count = |rule: &str| {
        samples
            .iter()
            .filter(|(_, e)| {
                e["detail-type"]
                    == if rule == "batch" {
                        "Batch Job State Change"
                    } else {
                        "ECS Task State Change"
                    }
            })
            .count()
    };
    assert!(count("batch") >= 10 && count("ecs") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_emit_exactly_the_catalogue() {
    use batchguard_tests::emulator_event_log;
    use rust_decimal::Decimal;
    use shared::adapters::dynamodb::DynamoProjector;
    use shared::adapters::emf::EmfMemory;
    use shared::adapters::memory::MemoryEventLog;
    use shared::adapters::memory::{MemoryBatch, Outbox};
    use shared::app::collector::Collector;
    use shared::app::enforcer::{Enforcer, EnforcerSettings};
    use shared::app::ticker;
    use shared::core::budget::{Budget, BudgetPeriod};
    use shared::core::facts::{JobStatus, Millis};
    use shared::core::policy::BudgetPolicy;
    use shared::core::prices::PriceTable;
    use shared::handlers::ticker::TickerFunction;
    use shared::handlers::{collector, enforcer};

    let sink = EmfMemory::default();
    // The collector: the real samples, a generated workload (jobs finish, some still run at
    // the end), and one unreadable event.
    let (config, workload) = batchguard_tests::workload_ending_with_running_tasks(20_261_124, 10);
    let period = BudgetPeriod::Month;
    let log = emulator_event_log("catalogue").await;
    let projector = DynamoProjector::new(log.clone(), PriceTable::builtin(), period);
    let collecting = Collector::new(log.clone(), projector.clone());
    let mut payloads: Vec<Value> = sample_events().into_iter().map(|(_, e)| e).collect();
    payloads.extend(
        workload
            .events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap()),
    );
    payloads.push(json!({"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": {"jobId": 7}}));
    let response = collector::handle(
        &collecting,
        &sink,
        Value::Array(payloads),
        "test",
        config.end_ms,
    )
    .await
    .unwrap();
    assert_eq!(response.quarantined, 1);

    // The ticker, with a budget the burn rate exhausts inside the period.
    let at = Millis(config.end_ms).ceil_seconds();
    let local = batchguard_tests::replay_ledger(&workload.events, period);
    let total = local.scope_spend(&Scope::Total, at);
    assert!(total.burn_rate_usd_per_hour > Decimal::ZERO);
    let settings = ticker::TickerSettings {
        budget: Some(Budget {
            amount_usd: total.period_spend_usd + total.burn_rate_usd_per_hour,
            period,
        }),
        policy: BudgetPolicy::default(),
        period,
        scope_queues: vec![],
        max_scopes_read: shared::app::ticker::MAX_SCOPES_READ,
        budgets: Default::default(),
    };
    let trigger = shared::adapters::memory::RecordingTrigger::default();
    // The ticker function: the tick, then the silent-job check (no job silent for a year).
    let function: TickerFunction<_, _, _, _, _> = TickerFunction {
        batch: MemoryBatch::default(),
        projector: &projector,
        collector: Collector::new(&log, &projector),
        audit: &log,
        trigger: &trigger,
        sink: &sink,
        settings: settings.clone(),
        aws_budget: None,
        silent: shared::app::silent_jobs::SilentCheck::after(365 * 86_400_000),
        last_budgets: Default::default(),
    };
    // A budget applied to the stack, which the tick judges (`BudgetActionLevel`).
    let book = shared::core::budgets::BudgetBook::parse(&format!(
        "[[budget]]\nname = \"everything\"\namount_usd = \"1000\"\nperiod = \"{}\"\n\
         thresholds = [{{ at_percent = \"80\", action = \"notify\" }}]\n",
        shared::core::budgets::period_name(period)
    ))
    .unwrap();
    assert!(
        shared::ports::BudgetStore::replace_budgets(&log, &book, 0)
            .await
            .unwrap()
    );
    function.invoke(at * 1000).await.unwrap();
    // Again with a budget kept in AWS Budgets (the emulator's): the baseline metrics.
    let budgets = aws_sdk_budgets::Client::new(&batchguard_tests::emulator_config().await);
    let name = batchguard_tests::unique_prefix("catalogue");
    batchguard_tests::emulator_budget(&budgets, &name, "5000", "10").await;
    let aws = ticker::AwsBaseline {
        source: shared::adapters::budgets::AwsBudgets::new(budgets, "123456789012", name),
        store: &log,
        refresh_seconds: 3_600,
    };
    let report = ticker::tick_with_aws_budget(
        &projector,
        &log,
        &trigger,
        &sink,
        &settings,
        Some(&aws),
        at * 1000,
    )
    .await
    .unwrap();
    assert!(report.baseline.is_some(), "{report:?}");

    // The enforcer, stopping a queue's jobs.
    let batch = MemoryBatch::with(
        &[("etl", true)],
        &[("j1", "etl", JobStatus::Running, false)],
    );
    let enforcing = Enforcer::new(
        batch,
        MemoryEventLog::default(),
        Outbox::default(),
        EnforcerSettings {
            queues: vec![],
            dry_run: false,
            period,
        },
    );
    // The ledger it checks the stop against (on the emulator's tables) is over a budget of
    // half the period's spend.
    let check = shared::app::verify::LedgerCheck {
        reader: projector.clone(),
        settings: ticker::TickerSettings {
            budget: Some(Budget {
                amount_usd: total.period_spend_usd / Decimal::TWO,
                period,
            }),
            ..settings.clone()
        },
        baseline: None::<ticker::NoAwsBudget>,
    };
    let report = enforcer::handle(
        &enforcing,
        &check,
        &sink,
        json!({"action": "enforce", "level": "stop", "reason": "test"}),
        at * 1000,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        report.actions.iter().any(|a| matches!(
            a.action,
            shared::core::facts::EnforcementAction::JobTerminated { .. }
        )),
        "{report:?}"
    );

    // Every metric emitted is in the catalogue with that dimension set, and every catalogue
    // entry was emitted.
    let objects = sink.objects.lock().unwrap();
    let mut emitted: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for object in objects.iter() {
        let directive = &object["_aws"]["CloudWatchMetrics"][0];
        for set in directive["Dimensions"].as_array().unwrap() {
            let mut dimensions: Vec<String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect();
            dimensions.sort();
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap().to_owned();
                emitted.entry(name).or_default().insert(dimensions.clone());
            }
        }
    }
    for (name, sets) in &emitted {
        let spec = metrics::spec(name).unwrap_or_else(|| panic!("{name} is not in the catalogue"));
        let allowed: BTreeSet<Vec<String>> = spec
            .dimension_sets
            .iter()
            .map(|set| {
                let mut set: Vec<String> = set.iter().map(|d| (*d).to_owned()).collect();
                set.sort();
                set
            })
            .collect();
        assert_eq!(sets, &allowed, "{name}");
    }
    let names: BTreeSet<&str> = emitted.keys().map(String::as_str).collect();
    let catalogue: BTreeSet<&str> = CATALOGUE.iter().map(|spec| spec.name).collect();
    assert_eq!(names, catalogue);
    // CloudWatch drops a document that breaks the specification without telling the writer:
    // every one the three functions wrote passes AWS's schema and the rules stated in prose,
    // its timestamp inside CloudWatch's window around the moment the functions ran.
    let lines: Vec<String> = objects.iter().map(Value::to_string).collect();
    let (ok, out) = validate_emf(&lines, at * 1000);
    assert!(ok, "{} documents, problems:\n{out}", lines.len());
    // The check can fail: a document CloudWatch would drop is named.
    let mut broken = objects[0].clone();
    broken["_aws"]["Timestamp"] = json!(at * 1000 - 15 * 86_400_000);
    let (ok, out) = validate_emf(&[broken.to_string()], at * 1000);
    assert!(!ok && out.contains("two weeks"), "{out}");
    // The settled jobs' costs carry what the costliest-jobs table reads.
    let cost = objects
        .iter()
        .find(|o| o.get(metrics::JOB_COST_USD).is_some())
        .unwrap();
    for property in [
        "job_id",
        "job_name",
        "job_definition",
        "status",
        "billed_seconds",
        "JobQueue",
    ] {
        assert!(cost.get(property).is_some(), "{property} in {cost}");
    }
}
