//! Configuration of the Lambda functions, parsed once per cold start from an injected
//! iterator of variables (tests never touch the process environment), and the services'
//! settings made from it. A bad value is an error that names the variable.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::adapters::dynamodb::TableNames;
use crate::app::enforcer::EnforcerSettings;
use crate::app::ticker::{MAX_SCOPES_READ, TickerSettings};
use crate::core::budget::{Budget, BudgetPeriod};
use crate::core::policy::BudgetPolicy;
use crate::core::prices::{PriceError, PriceTable};

/// A variable that is missing or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} = {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("environment variable PRICES_TOML: {0}")]
    Prices(#[from] PriceError),
}

/// Everything the functions read from their environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub tables: TableNames,
    pub budget: Option<Budget>,
    pub policy: BudgetPolicy,
    pub prices: PriceTable,
    /// Job queue names batchguard watches and enforces on; empty: every queue.
    pub scope_queues: Vec<String>,
    pub dry_run: bool,
    pub topic_arn: Option<String>,
    pub enforcer_function: Option<String>,
    pub retention_days: Option<u32>,
    pub shards: u32,
    /// Jobs open this long with no new event are checked with DescribeJobs.
    pub reconcile_after_seconds: i64,
    /// CloudWatch namespace of the EMF metrics (`METRICS_NAMESPACE`, default `batchguard`).
    pub metrics_namespace: String,
    /// Which job tag keys are scopes (`SCOPE_TAG_KEYS`: comma-separated, `*` for all, `-` for
    /// none; default `team,project`).
    pub tag_scopes: crate::core::scope::TagScopes,
    /// A budget kept in AWS Budgets (`BUDGET_NAME`, `BUDGET_ACCOUNT_ID`): the ticker takes its
    /// limit and AWS's actual spend from it.
    pub aws_budget: Option<AwsBudgetName>,
}

/// A CloudWatch namespace: 1–255 of `0-9A-Za-z.-_/#:` and space, not starting with `AWS/`.
/// Which AWS budget to read, and how often (`BASELINE_REFRESH_SECONDS`, default an hour: AWS
/// updates a budget's actual spend a few times a day).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsBudgetName {
    pub name: String,
    pub account_id: String,
    pub refresh_seconds: i64,
}

fn valid_namespace(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if name.starts_with("AWS/") {
        return Err("must not start with AWS/ (reserved for AWS services)".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_/#: ".contains(*c)))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed (use 0-9A-Za-z . - _ / # : and space)"
        )),
        None => Ok(()),
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

impl Config {
    /// The budget period the projections sum by: the budget's (a month without one).
    pub fn period(&self) -> BudgetPeriod {
        self.budget.map(|b| b.period).unwrap_or_default()
    }

    /// What the ticker watches.
    pub fn ticker_settings(&self) -> TickerSettings {
        TickerSettings {
            budget: self.budget,
            policy: self.policy,
            period: self.period(),
            scope_queues: self.scope_queues.clone(),
            max_scopes_read: MAX_SCOPES_READ,
            budgets: Default::default(),
        }
    }

    /// Who the enforcer acts on, and how.
    pub fn enforcer_settings(&self) -> EnforcerSettings {
        EnforcerSettings {
            queues: self.scope_queues.clone(),
            dry_run: self.dry_run,
            period: self.period(),
        }
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let get = |name: &str| vars.get(name).map(String::as_str);
        let required = |name: &'static str| {
            get(name)
                .map(str::to_owned)
                .ok_or(ConfigError::Missing(name))
        };

        let period = match get("BUDGET_PERIOD") {
            None => BudgetPeriod::Month,
            Some(text) => BudgetPeriod::parse(text).ok_or_else(|| ConfigError::Invalid {
                name: "BUDGET_PERIOD",
                value: text.to_owned(),
                reason: "use month, week or day".into(),
            })?,
        };
        let budget = match get("BUDGET_USD") {
            None => None,
            Some(text) => {
                let amount_usd: Decimal = parse("BUDGET_USD", text)?;
                if amount_usd < Decimal::ZERO {
                    return Err(ConfigError::Invalid {
                        name: "BUDGET_USD",
                        value: text.to_owned(),
                        reason: "must not be negative".into(),
                    });
                }
                Some(Budget { amount_usd, period })
            }
        };
        let defaults = BudgetPolicy::default();
        let percent = |name: &'static str, default: Decimal| {
            get(name).map_or(Ok(default), |t| parse(name, t))
        };
        let policy = BudgetPolicy {
            notify_percent: percent("NOTIFY_PERCENT", defaults.notify_percent)?,
            freeze_percent: percent("FREEZE_PERCENT", defaults.freeze_percent)?,
            stop_percent: percent("STOP_PERCENT", defaults.stop_percent)?,
            tick_seconds: get("TICK_SECONDS")
                .map_or(Ok(defaults.tick_seconds), |t| parse("TICK_SECONDS", t))?,
            stop_delay_seconds: get("STOP_DELAY_SECONDS")
                .map_or(Ok(defaults.stop_delay_seconds), |t| {
                    parse("STOP_DELAY_SECONDS", t)
                })?,
        };
        policy.validate().map_err(|e| ConfigError::Invalid {
            name: "NOTIFY_PERCENT / FREEZE_PERCENT / STOP_PERCENT",
            value: format!("{} / {} / {}", e.notify, e.freeze, e.stop),
            reason: e.to_string(),
        })?;
        let prices = match get("PRICES_TOML") {
            Some(text) => PriceTable::builtin_with_overrides(text)?,
            None => PriceTable::builtin(),
        };
        let dry_run = match get("DRY_RUN").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "DRY_RUN",
                    value: other.to_owned(),
                    reason: "use true or false".into(),
                });
            }
        };
        let aws_budget = match get("BUDGET_NAME") {
            None => None,
            Some(name) => {
                let account_id = required("BUDGET_ACCOUNT_ID")?;
                if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ConfigError::Invalid {
                        name: "BUDGET_ACCOUNT_ID",
                        value: account_id,
                        reason: "an AWS account id is 12 digits".into(),
                    });
                }
                let refresh_seconds: i64 = get("BASELINE_REFRESH_SECONDS")
                    .map_or(Ok(3_600), |t| parse("BASELINE_REFRESH_SECONDS", t))?;
                if refresh_seconds < 60 {
                    return Err(ConfigError::Invalid {
                        name: "BASELINE_REFRESH_SECONDS",
                        value: refresh_seconds.to_string(),
                        reason: "at least 60".into(),
                    });
                }
                Some(AwsBudgetName {
                    name: name.to_owned(),
                    account_id,
                    refresh_seconds,
                })
            }
        };
        Ok(Self {
            aws_budget,
            tables: TableNames {
                events: required("EVENTS_TABLE")?,
                state: required("STATE_TABLE")?,
            },
            budget,
            policy,
            prices,
            scope_queues: get("SCOPE_QUEUES")
                .map(|text| {
                    text.split(',')
                        .map(|q| crate::core::names::last_segment(q.trim()).to_owned())
                        .filter(|q| !q.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            dry_run,
            topic_arn: get("TOPIC_ARN").map(str::to_owned),
            enforcer_function: get("ENFORCER_FUNCTION").map(str::to_owned),
            retention_days: get("RETENTION_DAYS")
                .map(|t| parse("RETENTION_DAYS", t))
                .transpose()?,
            shards: get("SHARDS").map_or(Ok(crate::adapters::dynamodb::DEFAULT_SHARDS), |t| {
                parse("SHARDS", t)
            })?,
            reconcile_after_seconds: get("RECONCILE_AFTER_SECONDS")
                .map_or(Ok(6 * 3600), |t| parse("RECONCILE_AFTER_SECONDS", t))?,
            metrics_namespace: match get("METRICS_NAMESPACE") {
                None => crate::metrics::NAMESPACE.to_owned(),
                Some(name) => {
                    valid_namespace(name).map_err(|reason| ConfigError::Invalid {
                        name: "METRICS_NAMESPACE",
                        value: name.to_owned(),
                        reason,
                    })?;
                    name.to_owned()
                }
            },
            tag_scopes: get("SCOPE_TAG_KEYS").map_or_else(
                crate::core::scope::TagScopes::default_keys,
                crate::core::scope::TagScopes::parse,
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tag_scopes_default_to_team_and_project_and_follow_scope_tag_keys() {
        use crate::core::scope::TagScopes;
        let base = [("EVENTS_TABLE", "ev"), ("STATE_TABLE", "st")];
        let config = Config::from_vars(vars(&base)).unwrap();
        assert_eq!(config.tag_scopes, TagScopes::default_keys());
        for (text, expected) in [
            ("cost-center", TagScopes::parse("cost-center")),
            ("*", TagScopes::All),
            ("-", TagScopes::Keys(Default::default())),
        ] {
            let mut with = base.to_vec();
            with.push(("SCOPE_TAG_KEYS", text));
            assert_eq!(Config::from_vars(vars(&with)).unwrap().tag_scopes, expected);
        }
    }

    #[test]
    fn reads_a_full_configuration() {
        let config = Config::from_vars(vars(&[
            ("EVENTS_TABLE", "ev"),
            ("STATE_TABLE", "st"),
            ("BUDGET_USD", "1000"),
            ("BUDGET_PERIOD", "week"),
            ("FREEZE_PERCENT", "85"),
            ("SCOPE_QUEUES", "arn:aws:batch:us-east-1:1:job-queue/a, b"),
            ("DRY_RUN", "true"),
            ("SHARDS", "4"),
            ("METRICS_NAMESPACE", "batchguard/prod-stack"),
        ]))
        .unwrap();
        assert_eq!(config.metrics_namespace, "batchguard/prod-stack");
        assert_eq!(
            config.tables,
            TableNames {
                events: "ev".into(),
                state: "st".into()
            }
        );
        assert_eq!(
            config.budget,
            Some(Budget {
                amount_usd: dec!(1000),
                period: BudgetPeriod::Week
            })
        );
        assert_eq!(config.policy.freeze_percent, dec!(85));
        assert_eq!(config.scope_queues, vec!["a".to_owned(), "b".to_owned()]);
        assert!(config.dry_run);
        assert_eq!(config.shards, 4);
    }

    #[test]
    fn reads_an_aws_budget_name() {
        let base = [("EVENTS_TABLE", "e"), ("STATE_TABLE", "s")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Config::from_vars(vars(&all))
        };
        assert_eq!(with(&[]).unwrap().aws_budget, None);
        let named = with(&[
            ("BUDGET_NAME", "batch"),
            ("BUDGET_ACCOUNT_ID", "123456789012"),
        ])
        .unwrap()
        .aws_budget
        .unwrap();
        assert_eq!(named.name, "batch");
        assert_eq!(named.refresh_seconds, 3_600);
        let missing = with(&[("BUDGET_NAME", "batch")]).unwrap_err();
        assert!(
            missing.to_string().contains("BUDGET_ACCOUNT_ID"),
            "{missing}"
        );
        let bad = with(&[("BUDGET_NAME", "b"), ("BUDGET_ACCOUNT_ID", "12345")]).unwrap_err();
        assert!(bad.to_string().contains("12 digits"), "{bad}");
        let fast = with(&[
            ("BUDGET_NAME", "b"),
            ("BUDGET_ACCOUNT_ID", "123456789012"),
            ("BASELINE_REFRESH_SECONDS", "5"),
        ])
        .unwrap_err();
        assert!(
            fast.to_string().contains("BASELINE_REFRESH_SECONDS"),
            "{fast}"
        );
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let error = Config::from_vars(vars(&[
            ("EVENTS_TABLE", "e"),
            ("STATE_TABLE", "s"),
            ("BUDGET_USD", "lots"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("BUDGET_USD"), "{error}");
        let error = Config::from_vars(vars(&[("STATE_TABLE", "s")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable EVENTS_TABLE is required"
        );
        let error = Config::from_vars(vars(&[
            ("EVENTS_TABLE", "e"),
            ("STATE_TABLE", "s"),
            ("NOTIFY_PERCENT", "99"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("notify ≤ freeze"), "{error}");
        for bad in ["AWS/Batch", "spend{x}"] {
            let error = Config::from_vars(vars(&[
                ("EVENTS_TABLE", "e"),
                ("STATE_TABLE", "s"),
                ("METRICS_NAMESPACE", bad),
            ]))
            .unwrap_err();
            assert!(error.to_string().contains("METRICS_NAMESPACE"), "{error}");
        }
    }
}
