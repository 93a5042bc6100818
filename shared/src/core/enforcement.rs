//! Enforcement as data: what the enforcer is asked to do, whether the ledger agrees with it,
//! which jobs it may touch, which scopes a budget over some queues counts, and what the audit
//! trail says batchguard did to the queues. The enforcer service (`app::enforcer`), the ticker and the stack checklist all read
//! the audit trail through [`recorded_queue_states`], so they agree on it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::budgets::Action;
use super::facts::{EnforcementAction, EnforcementRecorded, JobStatus};
use super::policy::{Decision, Level};
use super::scope::Scope;

/// The tag that exempts a job from enforcement.
pub const PROTECT_TAG: (&str, &str) = ("batchguard:protect", "true");
/// States `CancelJob` applies to.
pub const QUEUED: [JobStatus; 3] = [
    JobStatus::Submitted,
    JobStatus::Pending,
    JobStatus::Runnable,
];
/// States `TerminateJob` applies to.
pub const STARTED: [JobStatus; 2] = [JobStatus::Starting, JobStatus::Running];

/// Whether a job's tags exempt it ([`PROTECT_TAG`], its value in any case).
pub fn is_protected(tags: &BTreeMap<String, String>) -> bool {
    tags.get(PROTECT_TAG.0)
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTECT_TAG.1))
}

/// A request the enforcer understands (from the ticker, an alarm, or a person).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EnforcerRequest {
    Enforce {
        level: Level,
        #[serde(default)]
        reason: String,
    },
    /// Re-enable the queues a holder disabled: the stack's own (`budget` absent), or one
    /// applied budget's (`"budget": "genomics"`), checked against that budget alone
    /// (`budget_restore_agrees`): the queues another holder still holds stay disabled.
    Restore {
        #[serde(default)]
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
    /// What the applied budgets' thresholds call for (issue 17): each order is checked against
    /// the ledger on its own ([`budget_agrees`]) and carried out on that budget's jobs.
    Budgets { orders: Vec<BudgetOrder> },
    /// Jobs the projections say reached their `batchguard:max-usd` cap (`core::caps`): each is
    /// checked against its own projection (`caps::cap_agrees`) and Batch's answer.
    Caps { jobs: Vec<super::caps::CapOrder> },
    /// Every applied budget, judged by the enforcer itself on the ledger (from the alarm on
    /// the applied budgets' `BudgetActionLevel`, the second path to the enforcer): each at a
    /// threshold is carried out as its order would be.
    JudgeBudgets {
        #[serde(default)]
        reason: String,
    },
    /// Safe admission for the applied budgets with `admission = "safe"`: the enforcer reads
    /// each one's committed spend itself and cancels the waiting jobs whose worst case does
    /// not fit (`core::admission`). Sent by the ticker every tick while any budget is safe.
    Admit {
        #[serde(default)]
        reason: String,
    },
}

/// One applied budget's action, as the ticker judged it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct BudgetOrder {
    pub budget: String,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
}

impl BudgetOrder {
    /// The order its figures call for: `budget` has spent `spend_usd` of `amount_usd` this
    /// period (`used_percent`), and its thresholds call for `action`; the reason says so.
    pub fn judged(
        budget: &str,
        spend_usd: rust_decimal::Decimal,
        amount_usd: rust_decimal::Decimal,
        used_percent: rust_decimal::Decimal,
        action: Action,
        dry_run: bool,
    ) -> Self {
        Self {
            budget: budget.to_owned(),
            action,
            reason: format!(
                "budget {budget} has spent {} of {amount_usd} USD this period ({}%): its thresholds call for {action}{}",
                spend_usd.round_dp(2),
                used_percent.round_dp(1),
                if dry_run { " (dry run)" } else { "" }
            ),
        }
    }
}

/// Whether the ledger agrees with a budget's order: the action its thresholds call for on the
/// ledger's figures (`judged`, `None`: below the first) reaches the order's. A notice needs no
/// agreement. `Err` says why the order is refused.
pub fn budget_agrees(order: &BudgetOrder, judged: Option<Action>) -> Result<(), String> {
    match judged {
        _ if order.action == Action::Notify => Ok(()),
        Some(judged) if judged >= order.action => Ok(()),
        Some(judged) => Err(format!(
            "budget {} asked to {}, but its spend calls for {judged}",
            order.budget, order.action
        )),
        None => Err(format!(
            "budget {} asked to {}, but its spend is below its first threshold",
            order.budget, order.action
        )),
    }
}

/// Whether an applied budget's queues may be re-enabled: `judged` is the action its spend
/// calls for now while it acts for real (`None`: below its first threshold, in a dry run, or
/// no longer in the book, when nothing holds its queues); at `drain` or above the restore is
/// refused, and `Err` says why.
pub fn budget_restore_agrees(budget: &str, judged: Option<Action>) -> Result<(), String> {
    match judged {
        Some(action) if action >= Action::Drain => Err(format!(
            "asked to restore budget {budget}, but its spend still calls for {action}"
        )),
        _ => Ok(()),
    }
}

/// What one run of the enforcer carried out: a level of the policy, or a restore. Written as
/// the lowercase word (`ok`, `notify`, `freeze`, `stop`, `restore`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    #[default]
    Ok,
    Notify,
    Freeze,
    Stop,
    Restore,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Notify => "notify",
            Self::Freeze => "freeze",
            Self::Stop => "stop",
            Self::Restore => "restore",
        }
    }
}

impl From<Level> for Step {
    fn from(level: Level) -> Self {
        match level {
            Level::Ok => Self::Ok,
            Level::Notify => Self::Notify,
            Level::Freeze => Self::Freeze,
            Level::Stop => Self::Stop,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request agrees with what the ledger says now (`ledger`: the policy's decision on
/// the budget's spend, `None` when there is no budget). A freeze or stop is carried out only
/// when the ledger is at that level or above; a restore only when it is below freeze. A notice
/// needs no agreement. `Err` says why the request is refused. A CloudWatch alarm or an
/// invocation by hand is a signal anyone with `cloudwatch:PutMetricData` or
/// `lambda:InvokeFunction` can forge; the ledger is written only from Batch's own events.
pub fn agrees(request: &EnforcerRequest, ledger: Option<&Decision>) -> Result<(), String> {
    match request {
        EnforcerRequest::Enforce { level, .. } if *level <= Level::Notify => Ok(()),
        EnforcerRequest::Enforce { level, .. } => match ledger {
            None => Err(format!(
                "asked to {}, but no budget is set to check it against",
                level.as_str()
            )),
            Some(decision) if decision.level >= *level => Ok(()),
            Some(decision) => Err(format!(
                "asked to {}, but the ledger is at {} ({})",
                level.as_str(),
                decision.level.as_str(),
                decision.reason
            )),
        },
        EnforcerRequest::Restore {
            budget: Some(budget),
            ..
        } => Err(format!(
            "a restore of budget {budget} is checked against that budget (budget_restore_agrees)"
        )),
        EnforcerRequest::Restore { budget: None, .. } => match ledger {
            Some(decision) if decision.level >= Level::Freeze => Err(format!(
                "asked to restore, but the ledger is still at {} ({})",
                decision.level.as_str(),
                decision.reason
            )),
            _ => Ok(()),
        },
        EnforcerRequest::Budgets { .. } => {
            Err("budget orders are checked each against its own budget (budget_agrees)".into())
        }
        EnforcerRequest::Caps { .. } => {
            Err("capped jobs are checked each against its own projection (cap_agrees)".into())
        }
        EnforcerRequest::JudgeBudgets { .. } => Err(
            "the applied budgets are judged each on its own (LedgerCheck::judge_budgets)".into(),
        ),
        EnforcerRequest::Admit { .. } => Err(
            "safe admission reads each budget's committed spend itself (LedgerCheck::uncommitted)"
                .into(),
        ),
    }
}

/// The scopes a budget over these queues counts: every job (the total) when none is named.
pub fn budget_scopes(queues: &[String]) -> Vec<Scope> {
    if queues.is_empty() {
        vec![Scope::Total]
    } else {
        queues
            .iter()
            .map(|queue| Scope::Queue(queue.as_str().into()))
            .collect()
    }
}

/// Who holds a queue disabled: the stack's own budget (`None`, the template's levels) or an
/// applied budget (its name), each released only by its own restore.
pub type Holder = Option<String>;

/// The holders of each queue batchguard disabled (not in a dry run) and has not re-enabled,
/// from audit entries in any order (by `at`): a `QueueDisabled` or `QueueHeld` adds its
/// holder, a `QueueReleased` or `QueueEnabled` (the last holder's restore) removes it. Each
/// entry changes its own holder only, so entries of different holders at the same instant
/// give the same holds in any order. A queue's set is empty once nobody holds it.
pub fn queue_holds(entries: &[EnforcementRecorded]) -> BTreeMap<String, BTreeSet<Holder>> {
    let mut entries: Vec<&EnforcementRecorded> = entries.iter().filter(|e| !e.dry_run).collect();
    entries.sort_by_key(|e| e.at);
    let mut holds: BTreeMap<String, BTreeSet<Holder>> = BTreeMap::new();
    for entry in entries {
        match &entry.action {
            EnforcementAction::QueueDisabled { queue, budget }
            | EnforcementAction::QueueHeld { queue, budget } => {
                holds
                    .entry(queue.clone())
                    .or_default()
                    .insert(budget.clone());
            }
            EnforcementAction::QueueReleased { queue, budget }
            | EnforcementAction::QueueEnabled { queue, budget } => {
                holds.entry(queue.clone()).or_default().remove(budget);
            }
            EnforcementAction::Notified { .. }
            | EnforcementAction::JobCancelled { .. }
            | EnforcementAction::JobTerminated { .. }
            | EnforcementAction::Refused { .. }
            | EnforcementAction::BudgetReached { .. } => {}
        }
    }
    holds
}

/// Per queue batchguard acted on for real (not in a dry run): `false` while any holder holds
/// it disabled, `true` once none does.
pub fn recorded_queue_states(entries: &[EnforcementRecorded]) -> BTreeMap<String, bool> {
    queue_holds(entries)
        .into_iter()
        .map(|(queue, holders)| (queue, holders.is_empty()))
        .collect()
}

/// The queues batchguard disabled (not in a dry run) that some holder still holds.
pub fn queues_disabled_by_us(entries: &[EnforcementRecorded]) -> BTreeSet<String> {
    recorded_queue_states(entries)
        .into_iter()
        .filter_map(|(queue, enabled)| (!enabled).then_some(queue))
        .collect()
}

/// The queues `holder` holds disabled.
pub fn queues_held_by(entries: &[EnforcementRecorded], holder: &Holder) -> BTreeSet<String> {
    queue_holds(entries)
        .into_iter()
        .filter_map(|(queue, holders)| holders.contains(holder).then_some(queue))
        .collect()
}

/// The applied budgets that hold some queue disabled, by name.
pub fn budgets_holding_queues(entries: &[EnforcementRecorded]) -> BTreeSet<String> {
    queue_holds(entries)
        .into_values()
        .flatten()
        .flatten()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_or_stop_is_carried_out_only_when_the_ledger_agrees() {
        let enforce = |level| EnforcerRequest::Enforce {
            level,
            reason: "alarm".into(),
        };
        let restore = EnforcerRequest::Restore {
            reason: String::new(),
            budget: None,
        };
        let at = |level| Decision {
            level,
            reason: "figures".into(),
        };
        // A notice needs no agreement; a freeze or stop needs the ledger at that level or above.
        assert!(agrees(&enforce(Level::Notify), None).is_ok());
        assert!(agrees(&enforce(Level::Stop), Some(&at(Level::Stop))).is_ok());
        assert!(agrees(&enforce(Level::Freeze), Some(&at(Level::Stop))).is_ok());
        let refused = agrees(&enforce(Level::Stop), Some(&at(Level::Notify))).unwrap_err();
        assert_eq!(
            refused,
            "asked to stop, but the ledger is at notify (figures)"
        );
        assert!(agrees(&enforce(Level::Freeze), Some(&at(Level::Ok))).is_err());
        assert!(agrees(&enforce(Level::Stop), None).is_err());
        // A restore only below freeze.
        assert!(agrees(&restore, Some(&at(Level::Notify))).is_ok());
        assert!(agrees(&restore, None).is_ok());
        assert!(agrees(&restore, Some(&at(Level::Freeze))).is_err());
    }
    use crate::core::facts::Millis;

    fn entry(action: EnforcementAction, at: i64, dry_run: bool) -> EnforcementRecorded {
        EnforcementRecorded {
            action,
            level: "freeze".into(),
            reason: String::new(),
            dry_run,
            at: Millis(at),
            period_start: 0,
        }
    }

    #[test]
    fn the_latest_real_queue_action_wins_whatever_the_order() {
        let disabled = |queue: &str, at| {
            entry(
                EnforcementAction::QueueDisabled {
                    queue: queue.into(),
                    budget: None,
                },
                at,
                false,
            )
        };
        let enabled = |queue: &str, at| {
            entry(
                EnforcementAction::QueueEnabled {
                    queue: queue.into(),
                    budget: None,
                },
                at,
                false,
            )
        };
        let entries = vec![
            enabled("a", 20),
            disabled("a", 10),
            disabled("b", 5),
            entry(
                EnforcementAction::QueueDisabled {
                    queue: "c".into(),
                    budget: None,
                },
                1,
                true,
            ),
        ];
        assert_eq!(
            recorded_queue_states(&entries),
            BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)])
        );
        assert_eq!(
            queues_disabled_by_us(&entries),
            BTreeSet::from(["b".to_owned()])
        );
    }

    /// GIVEN the stack's levels and two budgets holding queues, in any order of entries WHEN
    /// the holds are read THEN a release drops its holder's hold only, the last holder's
    /// restore clears the queue, and each budget's restore is refused only while its spend
    /// calls for drain or more.
    #[test]
    fn each_holder_holds_a_queue_until_its_own_release() {
        let at = |action, at| entry(action, at, false);
        let stack: Holder = None;
        let genomics: Holder = Some("genomics".into());
        let imaging: Holder = Some("imaging".into());
        let mut entries = vec![
            at(
                EnforcementAction::QueueDisabled {
                    queue: "gq".into(),
                    budget: genomics.clone(),
                },
                10,
            ),
            at(
                EnforcementAction::QueueHeld {
                    queue: "gq".into(),
                    budget: stack.clone(),
                },
                20,
            ),
            at(
                EnforcementAction::QueueDisabled {
                    queue: "iq".into(),
                    budget: imaging.clone(),
                },
                15,
            ),
            // A dry run holds nothing.
            entry(
                EnforcementAction::QueueDisabled {
                    queue: "dq".into(),
                    budget: imaging.clone(),
                },
                16,
                true,
            ),
        ];
        entries.reverse();
        assert_eq!(
            queues_held_by(&entries, &genomics),
            BTreeSet::from(["gq".to_owned()])
        );
        assert_eq!(
            queues_held_by(&entries, &stack),
            BTreeSet::from(["gq".to_owned()])
        );
        assert_eq!(
            budgets_holding_queues(&entries),
            BTreeSet::from(["genomics".to_owned(), "imaging".to_owned()])
        );
        // genomics lets go; the stack still holds gq disabled.
        entries.push(at(
            EnforcementAction::QueueReleased {
                queue: "gq".into(),
                budget: genomics.clone(),
            },
            30,
        ));
        assert!(queues_held_by(&entries, &genomics).is_empty());
        assert_eq!(
            queues_disabled_by_us(&entries),
            BTreeSet::from(["gq".to_owned(), "iq".to_owned()])
        );
        // The stack's restore re-enables it: nobody holds it any more.
        entries.push(at(
            EnforcementAction::QueueEnabled {
                queue: "gq".into(),
                budget: stack,
            },
            40,
        ));
        assert_eq!(recorded_queue_states(&entries).get("gq"), Some(&true));
        assert_eq!(
            queues_disabled_by_us(&entries),
            BTreeSet::from(["iq".to_owned()])
        );
        assert!(budget_restore_agrees("imaging", Some(Action::Drain)).is_err());
        assert!(budget_restore_agrees("imaging", Some(Action::Notify)).is_ok());
        assert!(budget_restore_agrees("imaging", None).is_ok());
    }

    #[test]
    fn a_budget_over_no_queue_counts_the_total() {
        assert_eq!(budget_scopes(&[]), vec![Scope::Total]);
        assert_eq!(
            budget_scopes(&["q".to_owned()]),
            vec![Scope::Queue("q".into())]
        );
    }

    #[test]
    fn a_step_is_written_as_its_word() {
        assert_eq!(Step::from(Level::Freeze).as_str(), "freeze");
        assert_eq!(Step::Restore.to_string(), "restore");
    }
}
