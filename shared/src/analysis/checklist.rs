//! The stack checklist behind `batchguard doctor`: what a deployed stack looks like, turned
//! into a checklist with the fix for each failure. Pure: the CLI gathers [`StackFacts`] from
//! AWS (its `adapters::stack`), this module judges them.

use std::collections::BTreeMap;

use serde::Serialize;

/// Alarms the template defines, by logical id; CloudFormation names them
/// `<stack>-<logical id>-<suffix>`. A deployment test keeps this list equal to the template's.
pub const ALARMS: [&str; 9] = [
    "BudgetFreezeAlarm",
    "BudgetStopAlarm",
    "ForecastAlarm",
    "AppliedBudgetsDrainAlarm",
    "AppliedBudgetsStopAlarm",
    "TickerSilentAlarm",
    "QuarantineAlarm",
    "EventDeadLetterAlarm",
    "ControlDeadLetterAlarm",
];

/// The stack outputs doctor reads (a deployment test checks the template has them).
pub const OUTPUTS: [&str; 8] = [
    "EventsTableName",
    "StateTableName",
    "EventDeadLetterQueueUrl",
    "ControlDeadLetterQueueUrl",
    "EnforcerFunctionName",
    "CollectorFunctionName",
    "AdmitterFunctionName",
    "MetricsNamespace",
];

/// The stack parameters doctor reads.
pub const PARAMETERS: [&str; 3] = ["JobQueueArns", "BudgetPeriod", "BudgetName"];

/// The ticker reads the AWS budget hourly; a reading older than this means it stopped.
pub const BUDGET_READING_FRESH_SECONDS: i64 = 2 * 3600;

/// The alarms whose action is the enforcer function.
pub const ENFORCER_ALARMS: [&str; 5] = [
    "BudgetFreezeAlarm",
    "BudgetStopAlarm",
    "ForecastAlarm",
    "AppliedBudgetsDrainAlarm",
    "AppliedBudgetsStopAlarm",
];

/// The state table's indexes the functions query.
pub const STATE_INDEXES: [&str; 3] = ["open", "recent", "caps"];

/// The ticker's metrics must have arrived within this many seconds.
pub const METRICS_FRESH_SECONDS: i64 = 15 * 60;

/// Something read from AWS, or why it could not be.
pub type Probe<T> = Result<T, String>;

/// One alarm as `DescribeAlarms` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmFacts {
    pub name: String,
    pub actions_enabled: bool,
    pub alarm_actions: Vec<String>,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
}

/// A job queue in scope: its state on Batch and what batchguard last did to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFacts {
    pub name: String,
    /// `None`: Batch does not know the queue.
    pub enabled: Option<bool>,
    /// The last queue action batchguard recorded (not in dry run) this period or the last:
    /// `Some(false)` disabled, `Some(true)` re-enabled, `None` none.
    pub recorded_enabled: Option<bool>,
}

/// Everything `doctor` looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackFacts {
    pub stack: String,
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, …
    pub stack_status: String,
    pub now: i64,
    /// (output key, table name, `TableStatus`).
    pub tables: Vec<(String, String, Probe<String>)>,
    /// The state table's indexes, (name, `IndexStatus`): the collector and the ticker need
    /// `open`, `recent` and `caps`.
    pub state_indexes: Probe<Vec<(String, String)>>,
    /// (logical id, rule name, `State`).
    pub rules: Vec<(String, String, Probe<String>)>,
    /// The account the stack is in (from its ARN).
    pub account: Option<String>,
    /// (logical id, rule name, the accounts its event pattern admits: empty for any) of the
    /// rules that match events (not the schedule).
    pub rule_accounts: Vec<(String, String, Probe<Vec<String>>)>,
    /// The enforcer's reserved concurrency (`None`: not set, runs may overlap).
    pub enforcer_concurrency: Probe<Option<i32>>,
    /// The ARNs of the rules in `rule_accounts`: the collector's only callers.
    pub collector_rules: Vec<String>,
    /// The collector function's name (its policy's statements must name it).
    pub collector_function: String,
    /// The collector's resource policy as `GetPolicy` returns it (`None`: it has none).
    pub collector_policy: Probe<Option<String>>,
    /// The ARN of the rule that sends jobs' arrivals to the admitter (`BatchJobArrivalRule`):
    /// its only caller (not one of `collector_rules`).
    pub admitter_rules: Vec<String>,
    /// The admitter function's name.
    pub admitter_function: String,
    /// The admitter's resource policy as `GetPolicy` returns it (`None`: it has none).
    pub admitter_policy: Probe<Option<String>>,
    /// (output key, queue URL, messages waiting or in flight).
    pub dead_letter_queues: Vec<(String, String, Probe<u64>)>,
    pub quarantined: Probe<usize>,
    pub enforcer_arn: Probe<String>,
    pub dry_run: Probe<bool>,
    /// By logical id; an alarm CloudWatch does not have is absent.
    pub alarms: Probe<BTreeMap<String, AlarmFacts>>,
    /// The latest datapoint of the ticker's `BudgetUsedPercent` in the last
    /// [`METRICS_FRESH_SECONDS`] (Unix seconds), `None` if there is none.
    pub ticker_metrics: Probe<Option<i64>>,
    pub metrics_namespace: String,
    pub job_queues: Probe<Vec<QueueFacts>>,
    /// The store argument for the CLI's commands on this stack's tables.
    pub store: String,
    /// With a `BudgetName`: its name and the ticker's last reading of it.
    pub aws_budget: Option<(String, Probe<Option<crate::ports::CachedBudget>>)>,
    /// The stack's `BudgetPeriod`: what its sums are bucketed by.
    pub period: crate::core::budget::BudgetPeriod,
    /// The budgets applied with `budgets apply` (`None`: none), as the functions read them.
    pub applied_budgets: Probe<Option<crate::core::budgets::BudgetBook>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Worth knowing, nothing wrong.
    Info,
    /// Not broken, but look.
    Warn,
    Fail,
}

/// One line of the checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id for scripts: `stack`, `table:EventsTableName`, `alarm:ForecastAlarm`, …
    pub id: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it (set on warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(id: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Prefix of the reason a stack output is missing.
pub const NO_OUTPUT: &str = "the stack has no output";

/// The collector takes events only through the stack's rules (ADR 0010).
fn collector_entry(facts: &StackFacts) -> Check {
    entry_check(
        "collector-entry",
        "collector",
        &facts.collector_function,
        &facts.collector_policy,
        &facts.collector_rules,
        facts.account.as_deref(),
        "`sam deploy` this version's template: its CollectorEntryPolicy lets EventBridge \
         invoke the collector from the stack's rules and denies everyone else",
    )
}

/// The admitter takes jobs' arrivals only through the stack's arrival rule: anyone else who
/// could invoke it could have it cancel a job it names (the job's event is its only input).
fn admitter_entry(facts: &StackFacts) -> Check {
    entry_check(
        "admitter-entry",
        "admitter",
        &facts.admitter_function,
        &facts.admitter_policy,
        &facts.admitter_rules,
        facts.account.as_deref(),
        "`sam deploy` this version's template: its AdmitterEntryPolicy lets EventBridge \
         invoke the admitter from the stack's BatchJobArrivalRule and denies everyone else",
    )
}

/// A function whose resource policy must admit EventBridge from `rules` alone.
fn entry_check(
    id: &str,
    who: &str,
    function: &str,
    policy: &Probe<Option<String>>,
    rules: &[String],
    account: Option<&str>,
    fix: &str,
) -> Check {
    match (policy, account) {
        (Err(error), _) => unreadable(id, &format!("the {who}'s resource policy"), error),
        (Ok(None), _) => Check::new(
            id,
            Status::Fail,
            format!("the {who} has no resource policy: EventBridge cannot deliver events to it"),
        )
        .fix(fix),
        (Ok(Some(_)), None) => unreadable(id, "the stack's account", "no account in its ARN"),
        // No rule to judge the policy against (the rules could not be read, or the stack
        // has none): a policy that admits nobody would otherwise pass.
        (Ok(Some(_)), Some(_)) if rules.is_empty() => Check::new(
            id,
            Status::Fail,
            format!("no rule of the stack that feeds the {who} could be read"),
        )
        .fix(fix),
        (Ok(Some(policy)), Some(account)) => {
            match super::entry_policy::admits_only_rules(policy, function, rules, account) {
                Ok(()) => Check::new(
                    id,
                    Status::Ok,
                    format!(
                        "the {who} takes events only through the stack's {} rule{}",
                        rules.len(),
                        if rules.len() == 1 { "" } else { "s" }
                    ),
                ),
                Err(why) => Check::new(id, Status::Fail, format!("the {who}: {why}")).fix(fix),
            }
        }
    }
}

fn unreadable(id: impl Into<String>, what: &str, error: &str) -> Check {
    let fix = if error.starts_with(NO_OUTPUT) {
        "deploy the stack from this version's template.yaml (`sam deploy`): older or other \
         stacks lack the outputs doctor reads"
    } else {
        "run doctor with credentials that may read the stack's resources (see the error), \
         or check the resource still exists"
    };
    Check::new(id, Status::Fail, format!("cannot read {what}: {error}")).fix(fix)
}

/// A resource's name, or the output that should have named it.
fn named<'a>(name: &'a str, key: &'a str) -> &'a str {
    if name.is_empty() { key } else { name }
}

/// The checklist, in a fixed order.
pub fn checklist(facts: &StackFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    let status = &facts.stack_status;
    checks.push(if status.ends_with("_IN_PROGRESS") {
        Check::new(
            "stack",
            Status::Warn,
            format!("{} is {status}", facts.stack),
        )
        .fix("wait for the operation to finish, then run doctor again")
    } else if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
        Check::new("stack", Status::Ok, format!("{} is {status}", facts.stack))
    } else {
        Check::new(
            "stack",
            Status::Fail,
            format!("{} is {status}", facts.stack),
        )
        .fix(format!(
            "read why in `aws cloudformation describe-stack-events --stack-name {}`, fix it and \
             `sam deploy` again",
            facts.stack
        ))
    });

    for (key, name, state) in &facts.tables {
        let id = format!("table:{key}");
        checks.push(match state {
            Ok(state) if state == "ACTIVE" => {
                Check::new(id, Status::Ok, format!("{name} is ACTIVE"))
            }
            Ok(state) => Check::new(id, Status::Warn, format!("{name} is {state}"))
                .fix("wait until DynamoDB reports it ACTIVE"),
            Err(error) => unreadable(id, &format!("table {}", named(name, key)), error),
        });
    }

    let state_table = facts
        .tables
        .iter()
        .find(|(key, _, _)| key == "StateTableName")
        .map_or("the state table", |(_, name, _)| name.as_str());
    checks.push(match &facts.state_indexes {
        Err(error) => unreadable("indexes", &format!("{state_table}'s indexes"), error),
        Ok(indexes) => {
            let missing: Vec<&str> = STATE_INDEXES
                .iter()
                .filter(|wanted| !indexes.iter().any(|(name, _)| name == *wanted))
                .copied()
                .collect();
            let building: Vec<&str> = indexes
                .iter()
                .filter(|(_, status)| status != "ACTIVE")
                .map(|(name, _)| name.as_str())
                .collect();
            if !missing.is_empty() {
                Check::new(
                    "indexes",
                    Status::Fail,
                    format!(
                        "{state_table} has no index {}: {}",
                        missing.join(", "),
                        "without `caps` per-job caps stop nothing, without `open` or `recent` the ticker fails"
                    ),
                )
                .fix("`sam deploy` the stack again: the template adds the missing index")
            } else if !building.is_empty() {
                Check::new(
                    "indexes",
                    Status::Warn,
                    format!("{state_table}: index {} is still building", building.join(", ")),
                )
                .fix("wait until DynamoDB reports it ACTIVE")
            } else {
                Check::new(
                    "indexes",
                    Status::Ok,
                    format!("{state_table} has its indexes ({})", STATE_INDEXES.join(", ")),
                )
            }
        }
    });

    for (logical, name, state) in &facts.rules {
        let id = format!("rule:{logical}");
        checks.push(match state {
            Ok(state) if state == "ENABLED" => {
                Check::new(id, Status::Ok, format!("{name} is ENABLED"))
            }
            Ok(state) => Check::new(
                id,
                Status::Fail,
                format!("{name} is {state}: its events are not reaching batchguard"),
            )
            .fix(format!("aws events enable-rule --name {name}")),
            Err(error) => unreadable(id, &format!("rule {name}"), error),
        });
    }

    for (logical, name, accounts) in &facts.rule_accounts {
        let id = format!("rule-account:{logical}");
        let account = facts.account.as_deref().unwrap_or("(unknown)");
        checks.push(match accounts {
            Ok(accounts) if accounts.len() == 1 && accounts[0] == account => Check::new(
                id,
                Status::Ok,
                format!("{name} takes account {account}'s events only"),
            ),
            Ok(accounts) => Check::new(
                id,
                Status::Fail,
                if accounts.is_empty() {
                    format!(
                        "{name} takes any account's events: another account's could count as spend"
                    )
                } else {
                    format!(
                        "{name} takes events of accounts {}, not only {account}",
                        accounts.join(", ")
                    )
                },
            )
            .fix("`sam deploy` this version's template: its rules match `account` to the stack's"),
            Err(error) => unreadable(id, &format!("rule {name}'s pattern"), error),
        });
    }

    checks.push(collector_entry(facts));
    checks.push(admitter_entry(facts));

    checks.push(match &facts.enforcer_concurrency {
        Ok(Some(1)) => Check::new(
            "enforcer-concurrency",
            Status::Ok,
            "the enforcer runs one invocation at a time",
        ),
        Ok(other) => Check::new(
            "enforcer-concurrency",
            Status::Fail,
            format!(
                "the enforcer's reserved concurrency is {}: runs can overlap (doubled notices \
                 and Batch calls)",
                other.map_or("not set".to_owned(), |n| n.to_string())
            ),
        )
        .fix(format!(
            "aws lambda put-function-concurrency --function-name {} \
             --reserved-concurrent-executions 1 (or `sam deploy` this version's template)",
            facts
                .enforcer_arn
                .as_deref()
                .unwrap_or("<the stack's EnforcerFunctionName output>")
        )),
        Err(error) => unreadable("enforcer-concurrency", "the enforcer's concurrency", error),
    });

    for (key, url, messages) in &facts.dead_letter_queues {
        let id = format!("dlq:{key}");
        let what = if key.starts_with("Event") {
            "events the collector did not take (the original EventBridge events, or Lambda's \
             failure records holding them); re-ingest them with `batchguard ingest`"
        } else {
            "failed ticks or enforcer requests; read them and the ticker's and enforcer's logs"
        };
        checks.push(match messages {
            Ok(0) => Check::new(id, Status::Ok, format!("{url} is empty")),
            Ok(n) => Check::new(id, Status::Fail, format!("{url} holds {n} message(s)")).fix(
                format!("`aws sqs receive-message --queue-url {url}`: {what}"),
            ),
            Err(error) => unreadable(id, &format!("queue {}", named(url, key)), error),
        });
    }

    checks.push(match &facts.quarantined {
        Ok(0) => Check::new("quarantine", Status::Ok, "no quarantined events"),
        Ok(n) => Check::new(
            "quarantine",
            Status::Fail,
            format!("{n} quarantined event(s): not counted in the spend"),
        )
        .fix(format!(
            "after an upgrade that reads them: `batchguard redrive --store {}`; the reasons are \
             in the state table's QUARANTINE items",
            facts.store
        )),
        Err(error) => unreadable("quarantine", "the quarantine", error),
    });

    match &facts.alarms {
        Err(error) => checks.push(unreadable("alarms", "the alarms", error)),
        Ok(alarms) => {
            for logical in ALARMS {
                let id = format!("alarm:{logical}");
                let Some(alarm) = alarms.get(logical) else {
                    checks.push(
                        Check::new(
                            id,
                            Status::Fail,
                            format!("no alarm {logical} in CloudWatch"),
                        )
                        .fix("`sam deploy` the stack again to recreate it"),
                    );
                    continue;
                };
                let name = &alarm.name;
                let wants_enforcer = ENFORCER_ALARMS.contains(&logical);
                let check = if !alarm.actions_enabled {
                    Check::new(id, Status::Fail, format!("{name}: actions are disabled")).fix(
                        format!("aws cloudwatch enable-alarm-actions --alarm-names {name}"),
                    )
                } else if wants_enforcer
                    && !facts
                        .enforcer_arn
                        .as_ref()
                        .is_ok_and(|arn| alarm.alarm_actions.iter().any(|a| a == arn))
                {
                    let enforcer = facts.enforcer_arn.as_deref().unwrap_or("(unreadable)");
                    Check::new(
                        id,
                        Status::Fail,
                        format!(
                            "{name} does not invoke the enforcer {enforcer}: it would not stop spend \
                             (actions: {})",
                            alarm.alarm_actions.join(", ")
                        ),
                    )
                    .fix("`sam deploy` the stack again: the template sets the enforcer as the action")
                } else if alarm.state == "ALARM" {
                    Check::new(id, Status::Warn, format!("{name} is in ALARM")).fix(
                        if wants_enforcer {
                            "the budget threshold is crossed: the enforcer has been invoked; see \
                             the audit log on the spend dashboard"
                        } else {
                            "see the operations dashboard for what it watches"
                        },
                    )
                } else {
                    let target = if wants_enforcer {
                        ", invokes the enforcer"
                    } else {
                        ""
                    };
                    Check::new(id, Status::Ok, format!("{name} is {}{target}", alarm.state))
                };
                checks.push(check);
            }
        }
    }

    checks.push(match &facts.ticker_metrics {
        Ok(Some(at)) if facts.now - at <= METRICS_FRESH_SECONDS => Check::new(
            "ticker-metrics",
            Status::Ok,
            format!(
                "{} BudgetUsedPercent arrived {} s ago",
                facts.metrics_namespace,
                (facts.now - at).max(0)
            ),
        ),
        Ok(_) => Check::new(
            "ticker-metrics",
            Status::Fail,
            format!(
                "no {} BudgetUsedPercent in the last {} minutes: the ticker is not running or \
                 failing",
                facts.metrics_namespace,
                METRICS_FRESH_SECONDS / 60
            ),
        )
        .fix(
            "check the TickRule is enabled, and the ticker's log group and the control \
             dead-letter queue for its errors",
        ),
        Err(error) => unreadable("ticker-metrics", "the ticker's metrics", error),
    });

    match &facts.job_queues {
        Err(error) => checks.push(unreadable("job-queues", "the job queues", error)),
        Ok(queues) if queues.is_empty() => checks.push(
            Check::new("job-queues", Status::Warn, "no job queues in scope")
                .fix("create the job queues, or correct the stack's JobQueueArns"),
        ),
        Ok(queues) => {
            for queue in queues {
                let id = format!("job-queue:{}", queue.name);
                let name = &queue.name;
                let state = |enabled: bool| if enabled { "ENABLED" } else { "DISABLED" };
                checks.push(match (queue.enabled, queue.recorded_enabled) {
                    (None, _) => Check::new(
                        id,
                        Status::Fail,
                        format!("{name}: AWS Batch has no such queue"),
                    )
                    .fix("correct the stack's JobQueueArns parameter"),
                    (Some(now), Some(recorded)) if now != recorded => Check::new(
                        id,
                        Status::Fail,
                        format!(
                            "{name} is {} but batchguard last {} it",
                            state(now),
                            if recorded { "re-enabled" } else { "disabled" }
                        ),
                    )
                    .fix(if recorded {
                        format!(
                            "someone disabled it after batchguard: \
                             `aws batch update-job-queue --job-queue {name} --state ENABLED` if \
                             it should run"
                        )
                    } else {
                        "someone re-enabled it while the budget is frozen; disable it again, or \
                         raise the budget"
                            .to_owned()
                    }),
                    (Some(false), None) => Check::new(
                        id,
                        Status::Warn,
                        format!("{name} is DISABLED, not by batchguard"),
                    )
                    .fix("its jobs will not run; enable it if that is not intended"),
                    (Some(now), _) => {
                        Check::new(id, Status::Ok, format!("{name} is {}", state(now)))
                    }
                });
            }
        }
    }

    if let Some((name, reading)) = &facts.aws_budget {
        checks.push(match reading {
            Ok(Some(cached)) if facts.now - cached.fetched_at <= BUDGET_READING_FRESH_SECONDS => {
                let budget = &cached.budget;
                Check::new(
                    "aws-budget",
                    Status::Ok,
                    format!(
                        "{name}: limit {} USD, AWS's actual spend {} USD as of {}, read {} min ago",
                        budget.limit_usd,
                        budget.baseline.spend_usd,
                        chrono::DateTime::from_timestamp(budget.baseline.as_of, 0)
                            .map_or_else(|| budget.baseline.as_of.to_string(), |t| t.to_rfc3339()),
                        (facts.now - cached.fetched_at).max(0) / 60
                    ),
                )
            }
            Ok(stale) => Check::new(
                "aws-budget",
                Status::Fail,
                match stale {
                    Some(cached) => format!(
                        "the ticker last read the AWS budget {name} {} min ago",
                        (facts.now - cached.fetched_at) / 60
                    ),
                    None => format!("the ticker has not read the AWS budget {name}"),
                },
            )
            .fix(
                "look for budgets:DescribeBudget errors in the ticker's log (`baseline_error`): \
                 the budget must exist in this account, be a monthly or daily cost budget in \
                 USD, and match BudgetPeriod",
            ),
            Err(error) => unreadable(
                "aws-budget",
                "the ticker's reading of the AWS budget",
                error,
            ),
        });
    }

    checks.extend(applied_budgets(facts));

    checks.push(match facts.dry_run {
        Ok(true) => Check::new(
            "dry-run",
            Status::Info,
            "dry run is ON: batchguard records and notifies, and changes nothing on AWS Batch",
        )
        .fix("to enforce: `sam deploy --parameter-overrides DryRun=false`"),
        Ok(false) => Check::new(
            "dry-run",
            Status::Info,
            "dry run is OFF: batchguard disables queues and cancels and terminates jobs",
        ),
        Err(ref error) => unreadable("dry-run", "the enforcer's configuration", error),
    });
    checks
}

/// The budgets applied to the stack: readable (the functions read the same item). Each is
/// summed and judged by its own period; warned of: one whose period is longer than the
/// stack's (the enforcer reads two of the stack's periods of its audit trail, so its notices
/// may come again and its drain be dated anew within its period), and one of the whole bill of
/// another period (its sums begin at its apply, where the total's are complete).
fn applied_budgets(facts: &StackFacts) -> Vec<Check> {
    let apply = format!("batchguard budgets apply FILE --store {}", facts.store);
    let book = match &facts.applied_budgets {
        Ok(Some(book)) => book,
        Ok(None) => {
            return vec![
                Check::new(
                    "budgets",
                    Status::Info,
                    "no budgets applied: the stack guards its template budget alone",
                )
                .fix(format!("to give each team its own: `{apply}`")),
            ];
        }
        Err(error) => {
            return vec![
                Check::new(
                    "budgets",
                    Status::Fail,
                    format!("cannot read the applied budgets: {error}"),
                )
                .fix(format!(
                    "`{apply}` replaces them whole (collectors project without a book that does \
                     not validate; the ticker judges the last one it read)"
                )),
            ];
        }
    };
    let names: Vec<&str> = book.budgets().map(|b| b.name.as_str()).collect();
    let mut checks = vec![Check::new(
        "budgets",
        Status::Ok,
        format!("{} budgets applied: {}", names.len(), names.join(", ")),
    )];
    let stack_period = crate::core::budgets::period_name(facts.period);
    for spec in book.budgets().filter(|b| b.period != facts.period) {
        let own = crate::core::budgets::period_name(spec.period);
        let mut said = Vec::new();
        if spec.period > facts.period {
            said.push(format!(
                "the enforcer reads two of the stack's periods of its audit trail, so its notices may come again and its drain be dated anew within its {own}"
            ));
        }
        if spec.counts_the_bill() {
            said.push(
                "it counts the whole bill by its own sums, which begin at its apply: jobs closed earlier in its period, and an EC2 instance that sends no event, count from their next projection".to_owned(),
            );
        }
        if said.is_empty() {
            continue;
        }
        checks.push(
            Check::new(
                format!("budget:{}", spec.name),
                Status::Warn,
                format!(
                    "budget {} is per {own} but the stack's period is a {stack_period}: {}",
                    spec.name,
                    said.join("; ")
                ),
            )
            .fix(format!(
                "give the stack the budget's period (`BudgetPeriod={own}`) if it is the longest of the budgets', or the budget `period = \"{stack_period}\"`"
            )),
        );
    }
    checks
}

/// Whether the checklist has a failure.
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ENFORCER: &str = "arn:aws:lambda:us-east-1:123456789012:function:s-EnforcerFunction-1";

    const RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/s-BatchJobStateRule";

    const ARRIVAL_RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/s-BatchJobArrivalRule";

    /// The template's collector policy for [`RULE`]; without the Deny when `deny` is false.
    fn entry_policy(deny: bool) -> String {
        entry_policy_for(RULE, deny)
    }

    /// The template's entry policy for `rule`; without the Deny when `deny` is false.
    fn entry_policy_for(rule: &str, deny: bool) -> String {
        let allow = serde_json::json!({
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Condition": {"ArnEquals": {"aws:SourceArn": [rule]}}
        });
        let refuse = serde_json::json!({
            "Effect": "Deny", "Principal": "*", "Action": "lambda:InvokeFunction",
            "Condition": {"ArnNotEquals": {"aws:SourceArn": [rule]}}
        });
        let statements = if deny {
            vec![allow, refuse]
        } else {
            vec![allow]
        };
        serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn healthy_facts() -> StackFacts {
        let alarms = ALARMS
            .iter()
            .map(|logical| {
                let mut actions = vec!["arn:aws:sns:us-east-1:123456789012:topic".to_owned()];
                if ENFORCER_ALARMS.contains(logical) {
                    actions.push(ENFORCER.to_owned());
                }
                (
                    (*logical).to_owned(),
                    AlarmFacts {
                        name: format!("s-{logical}-X"),
                        actions_enabled: true,
                        alarm_actions: actions,
                        state: "OK".into(),
                    },
                )
            })
            .collect();
        StackFacts {
            stack: "s".into(),
            stack_status: "UPDATE_COMPLETE".into(),
            now: 10_000,
            tables: vec![(
                "EventsTableName".into(),
                "s-events".into(),
                Ok("ACTIVE".into()),
            )],
            state_indexes: Ok(STATE_INDEXES
                .iter()
                .map(|name| ((*name).to_owned(), "ACTIVE".to_owned()))
                .collect()),
            rules: vec![("TickRule".into(), "s-TickRule".into(), Ok("ENABLED".into()))],
            account: Some("123456789012".into()),
            rule_accounts: vec![(
                "BatchJobStateRule".into(),
                "s-BatchJobStateRule".into(),
                Ok(vec!["123456789012".into()]),
            )],
            enforcer_concurrency: Ok(Some(1)),
            collector_rules: vec![RULE.into()],
            collector_function: "s-collector".into(),
            collector_policy: Ok(Some(entry_policy(true))),
            admitter_rules: vec![ARRIVAL_RULE.into()],
            admitter_function: "s-admitter".into(),
            admitter_policy: Ok(Some(entry_policy_for(ARRIVAL_RULE, true))),
            dead_letter_queues: vec![("EventDeadLetterQueueUrl".into(), "u".into(), Ok(0))],
            quarantined: Ok(0),
            enforcer_arn: Ok(ENFORCER.into()),
            dry_run: Ok(false),
            alarms: Ok(alarms),
            ticker_metrics: Ok(Some(9_950)),
            metrics_namespace: "batchguard/s".into(),
            job_queues: Ok(vec![QueueFacts {
                name: "etl".into(),
                enabled: Some(false),
                recorded_enabled: Some(false),
            }]),
            store: "dynamodb:e,s".into(),
            aws_budget: None,
            period: crate::core::budget::BudgetPeriod::Month,
            applied_budgets: Ok(None),
        }
    }

    /// GIVEN applied budgets WHEN doctor runs THEN it names them; one whose period is longer
    /// than the stack's is a warning (its audit trail is read two stack periods back), one of
    /// the stack's period or a shorter one is not, unless it counts the whole bill (its sums
    /// begin at its apply); an unreadable book fails with the apply
    /// that replaces it; none applied is information.
    #[test]
    fn applied_budgets_are_read_and_those_of_a_longer_period_are_named() {
        // Budgets of one queue's jobs (`bill`: the whole bill).
        let budget = |name: &str, period: &str| {
            let scope = if name == "bill" {
                ""
            } else {
                "scope = { queues = [\"q\"] }\n"
            };
            format!(
                "[[budget]]\nname = \"{name}\"\namount_usd = \"5\"\nperiod = \"{period}\"\n{scope}thresholds = [{{ at_percent = \"90\", action = \"notify\" }}]\n"
            )
        };
        let book = crate::core::budgets::BudgetBook::parse(&format!(
            "{}{}{}",
            budget("a", "month"),
            budget("b", "week"),
            budget("c", "day")
        ))
        .unwrap();
        let facts = StackFacts {
            applied_budgets: Ok(Some(book.clone())),
            ..healthy_facts()
        };
        let checks = checklist(&facts);
        assert_eq!(status_of(&checks, "budgets"), Status::Ok);
        assert!(
            checks.iter().all(|c| !c.id.starts_with("budget:")),
            "on a monthly stack every period is summed and acted on whole: {checks:?}"
        );
        let facts = StackFacts {
            applied_budgets: Ok(Some(book)),
            period: crate::core::budget::BudgetPeriod::Week,
            ..healthy_facts()
        };
        let checks = checklist(&facts);
        assert_eq!(status_of(&checks, "budget:a"), Status::Warn);
        assert!(
            checks
                .iter()
                .all(|c| c.id != "budget:b" && c.id != "budget:c")
        );
        assert!(healthy(&checks));
        // A budget of the whole bill of another period: its sums begin at its apply.
        let bill = crate::core::budgets::BudgetBook::parse(&budget("bill", "day")).unwrap();
        let facts = StackFacts {
            applied_budgets: Ok(Some(bill)),
            ..healthy_facts()
        };
        let checks = checklist(&facts);
        assert_eq!(status_of(&checks, "budget:bill"), Status::Warn);
        let detail = &checks
            .iter()
            .find(|c| c.id == "budget:bill")
            .unwrap()
            .detail;
        assert!(
            detail.contains("whole bill") && !detail.contains("audit trail"),
            "{detail}"
        );

        let facts = StackFacts {
            applied_budgets: Err("budget b: thresholds[0].at_percent: above 1000".into()),
            ..healthy_facts()
        };
        let checks = checklist(&facts);
        assert_eq!(status_of(&checks, "budgets"), Status::Fail);
        let check = checks.iter().find(|c| c.id == "budgets").unwrap();
        assert!(check.fix.as_deref().unwrap().contains("budgets apply"));
        assert!(!healthy(&checks));

        assert_eq!(
            status_of(&checklist(&healthy_facts()), "budgets"),
            Status::Info
        );
    }

    fn status_of(checks: &[Check], id: &str) -> Status {
        checks.iter().find(|c| c.id == id).unwrap().status
    }

    #[test]
    fn a_healthy_stack_passes_every_check() {
        let checks = checklist(&healthy_facts());
        assert!(healthy(&checks));
        assert!(
            checks
                .iter()
                .all(|c| matches!(c.status, Status::Ok | Status::Info))
        );
        assert_eq!(
            checks.len(),
            1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + ALARMS.len() + 1 + 1 + 1 + 1
        );
        assert_eq!(status_of(&checks, "admitter-entry"), Status::Ok);
    }

    /// A state table without the caps index (a stack deployed before it, or tables made by
    /// an older `init`) fails, naming the index and the redeploy; one still building warns.
    #[test]
    fn a_state_table_without_its_caps_index_fails() {
        let facts = StackFacts {
            state_indexes: Ok(vec![
                ("open".into(), "ACTIVE".into()),
                ("recent".into(), "ACTIVE".into()),
            ]),
            ..healthy_facts()
        };
        let checks = checklist(&facts);
        assert_eq!(status_of(&checks, "indexes"), Status::Fail);
        let check = checks.iter().find(|c| c.id == "indexes").unwrap();
        assert!(check.detail.contains("no index caps"), "{check:?}");
        assert!(!healthy(&checks));
        let facts = StackFacts {
            state_indexes: Ok(vec![
                ("open".into(), "ACTIVE".into()),
                ("recent".into(), "ACTIVE".into()),
                ("caps".into(), "CREATING".into()),
            ]),
            ..healthy_facts()
        };
        assert_eq!(status_of(&checklist(&facts), "indexes"), Status::Warn);
    }

    #[test]
    fn each_fault_fails_its_own_check_with_a_fix() {
        type Break = fn(&mut StackFacts);
        let cases: [(&str, Break); 20] = [
            ("stack", |f| {
                f.stack_status = "UPDATE_ROLLBACK_FAILED".into()
            }),
            ("rule:TickRule", |f| f.rules[0].2 = Ok("DISABLED".into())),
            ("rule-account:BatchJobStateRule", |f| {
                f.rule_accounts[0].2 = Ok(vec![])
            }),
            ("rule-account:BatchJobStateRule", |f| {
                f.rule_accounts[0].2 = Ok(vec!["999999999999".into()])
            }),
            ("enforcer-concurrency", |f| {
                f.enforcer_concurrency = Ok(None)
            }),
            ("collector-entry", |f| {
                f.collector_policy = Ok(Some(entry_policy(false)))
            }),
            ("collector-entry", |f| f.collector_policy = Ok(None)),
            ("collector-entry", |f| f.collector_rules.clear()),
            ("admitter-entry", |f| f.admitter_policy = Ok(None)),
            ("admitter-entry", |f| f.admitter_rules.clear()),
            ("admitter-entry", |f| {
                f.admitter_policy = Ok(Some(entry_policy_for(ARRIVAL_RULE, false)))
            }),
            // The collector's rule is not the admitter's caller: a policy admitting it fails.
            ("admitter-entry", |f| {
                f.admitter_policy = Ok(Some(entry_policy_for(RULE, true)))
            }),
            ("dlq:EventDeadLetterQueueUrl", |f| {
                f.dead_letter_queues[0].2 = Ok(3)
            }),
            ("quarantine", |f| f.quarantined = Ok(2)),
            ("alarm:ForecastAlarm", |f| {
                f.alarms
                    .as_mut()
                    .unwrap()
                    .get_mut("ForecastAlarm")
                    .unwrap()
                    .alarm_actions
                    .clear();
            }),
            ("alarm:QuarantineAlarm", |f| {
                f.alarms.as_mut().unwrap().remove("QuarantineAlarm");
            }),
            ("ticker-metrics", |f| {
                f.ticker_metrics = Ok(Some(10_000 - 901))
            }),
            ("job-queue:etl", |f| {
                f.job_queues.as_mut().unwrap()[0].enabled = Some(true);
            }),
            ("table:EventsTableName", |f| {
                f.tables[0].2 = Err("AccessDenied".into())
            }),
            ("budgets", |f| {
                f.applied_budgets = Err("budget a: period: \"fortnight\"".into())
            }),
        ];
        for (id, breaking) in cases {
            let mut facts = healthy_facts();
            breaking(&mut facts);
            let checks = checklist(&facts);
            let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
            assert_eq!(failed.len(), 1, "{id}: {failed:?}");
            assert_eq!(failed[0].id, id);
            assert!(failed[0].fix.is_some(), "{id}");
            assert!(!healthy(&checks));
        }
    }

    #[test]
    fn the_aws_budget_reading_must_be_recent() {
        use crate::core::budget::{AwsBudget, Baseline, BudgetPeriod};
        let reading = |fetched_at| crate::ports::CachedBudget {
            budget: AwsBudget {
                limit_usd: rust_decimal::Decimal::from(500),
                period: BudgetPeriod::Month,
                baseline: Baseline {
                    spend_usd: rust_decimal::Decimal::from(42),
                    as_of: 1_000,
                },
            },
            fetched_at,
        };
        let mut facts = healthy_facts();
        facts.aws_budget = Some(("team".into(), Ok(Some(reading(10_000 - 600)))));
        let checks = checklist(&facts);
        let check = checks.iter().find(|c| c.id == "aws-budget").unwrap();
        assert_eq!(check.status, Status::Ok);
        assert!(check.detail.contains("limit 500 USD") && check.detail.contains("read 10 min ago"));
        for stale in [Ok(None), Ok(Some(reading(10_000 - 7_201)))] {
            facts.aws_budget = Some(("team".into(), stale));
            assert_eq!(status_of(&checklist(&facts), "aws-budget"), Status::Fail);
        }
    }

    #[test]
    fn warnings_and_information_are_not_failures() {
        let mut facts = healthy_facts();
        facts.dry_run = Ok(true);
        facts.stack_status = "UPDATE_IN_PROGRESS".into();
        facts
            .alarms
            .as_mut()
            .unwrap()
            .get_mut("BudgetStopAlarm")
            .unwrap()
            .state = "ALARM".into();
        facts.job_queues.as_mut().unwrap()[0].recorded_enabled = None;
        let checks = checklist(&facts);
        assert!(healthy(&checks));
        assert_eq!(status_of(&checks, "stack"), Status::Warn);
        assert_eq!(status_of(&checks, "alarm:BudgetStopAlarm"), Status::Warn);
        assert_eq!(status_of(&checks, "job-queue:etl"), Status::Warn);
        let dry = checks.iter().find(|c| c.id == "dry-run").unwrap();
        assert_eq!(dry.status, Status::Info);
        assert!(dry.detail.contains("ON"));
    }
}
