//! Who may invoke the collector: its resource policy judged by IAM's evaluation rules for the
//! callers that matter, so `doctor` (on the policy a deployed function has) and a deployment
//! test (on the template's) check the same thing — the collector takes events only through the
//! stack's own EventBridge rules (ADR 0010).
//!
//! IAM's rules, from "Policy evaluation logic" in the IAM User Guide
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-basics.html>):
//! an explicit Deny in any policy wins; within one account, an Allow in *either* the caller's
//! identity policy or the resource policy is enough. So a resource policy that only allows
//! EventBridge does not keep out a role of the same account whose own policy allows
//! `lambda:InvokeFunction`; only a Deny does. A negated condition operator (`ArnNotEquals`, …)
//! holds when the request has no such key ("Condition operators", same guide), which is what
//! makes a Deny on "any source ARN but the rules'" cover callers that have none.
//!
//! A judgement, not an emulation: a statement with `NotAction`, `NotPrincipal` or
//! `NotResource`, a `Resource` that is not the function, or a condition on an operator or key
//! this module does not model (only `aws:SourceArn` and `aws:SourceAccount` are) is taken to
//! match nobody. That can only make a Deny weaker, so an unusual policy is reported as not
//! guarding the entry rather than as guarding it.

use serde_json::Value;

/// Someone calling `lambda:InvokeFunction` on the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller<'a> {
    /// An AWS service on behalf of one of its resources (EventBridge for a rule).
    Service {
        service: &'a str,
        source_arn: &'a str,
        source_account: &'a str,
    },
    /// A user or role of the function's own account whose identity policy allows the call
    /// (an administrator, a CI role): the request carries no source ARN.
    SameAccountPrincipal { account: &'a str },
}

/// Whether the resource policy `policy` lets `caller` invoke `function` (its ARN, or its name),
/// by IAM's rules.
pub fn may_invoke(policy: &Value, function: &str, caller: Caller<'_>) -> bool {
    let statements: Vec<&Value> = match &policy["Statement"] {
        Value::Array(list) => list.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    let applies = |effect: &str| {
        statements
            .iter()
            .any(|s| s["Effect"].as_str() == Some(effect) && statement_matches(s, function, caller))
    };
    if applies("Deny") {
        return false;
    }
    applies("Allow") || matches!(caller, Caller::SameAccountPrincipal { .. })
}

/// `Ok` when the policy (the JSON text `GetPolicy` returns) lets EventBridge invoke `function`
/// (its ARN, or its name) from each of `rules` and nobody else of `account` — neither another
/// rule nor a user or role; otherwise what is wrong, in a sentence.
pub fn admits_only_rules(
    policy: &str,
    function: &str,
    rules: &[String],
    account: &str,
) -> Result<(), String> {
    let policy: Value = serde_json::from_str(policy)
        .map_err(|e| format!("its resource policy is not JSON ({e})"))?;
    for rule in rules {
        let eventbridge = Caller::Service {
            service: "events.amazonaws.com",
            source_arn: rule,
            source_account: account,
        };
        if !may_invoke(&policy, function, eventbridge) {
            return Err(format!(
                "EventBridge may not invoke it for rule {rule}: those events are lost"
            ));
        }
    }
    if may_invoke(&policy, function, Caller::SameAccountPrincipal { account }) {
        return Err(format!(
            "any user or role of account {account} allowed lambda:InvokeFunction can invoke it \
             with forged events: no Deny keeps out callers other than the stack's rules"
        ));
    }
    let region = rules
        .first()
        .and_then(|arn| arn.split(':').nth(3))
        .unwrap_or("us-east-1");
    let other_rule = format!("arn:aws:events:{region}:{account}:rule/not-batchguard");
    let other = Caller::Service {
        service: "events.amazonaws.com",
        source_arn: &other_rule,
        source_account: account,
    };
    if may_invoke(&policy, function, other) {
        return Err(format!(
            "any EventBridge rule of account {account} can invoke it, not only the stack's"
        ));
    }
    Ok(())
}

fn one_or_many(value: &Value) -> Vec<&str> {
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statement_matches(statement: &Value, function: &str, caller: Caller<'_>) -> bool {
    if ["NotAction", "NotPrincipal", "NotResource"]
        .iter()
        .any(|key| statement.get(*key).is_some())
    {
        return false;
    }
    if statement.get("Resource").is_some() && !resource_matches(&statement["Resource"], function) {
        return false;
    }
    let action = one_or_many(&statement["Action"])
        .into_iter()
        .any(|a| glob(&a.to_ascii_lowercase(), "lambda:invokefunction"));
    action
        && principal_matches(&statement["Principal"], caller)
        && conditions_hold(statement, caller)
}

/// `Resource` names the function: `*`, its ARN (a pattern matching it), or an ARN ending in
/// its name when only the name is known.
fn resource_matches(resource: &Value, function: &str) -> bool {
    one_or_many(resource).into_iter().any(|pattern| {
        pattern == "*"
            || glob(pattern, function)
            || pattern
                .rsplit_once(":function:")
                .is_some_and(|(_, name)| glob(name, function))
    })
}

fn principal_matches(principal: &Value, caller: Caller<'_>) -> bool {
    if principal.as_str() == Some("*") {
        return true;
    }
    let aws = one_or_many(&principal["AWS"]);
    if aws.contains(&"*") {
        return true;
    }
    match caller {
        Caller::Service { service, .. } => one_or_many(&principal["Service"]).contains(&service),
        Caller::SameAccountPrincipal { account } => aws
            .iter()
            .any(|p| *p == account || *p == format!("arn:aws:iam::{account}:root")),
    }
}

fn conditions_hold(statement: &Value, caller: Caller<'_>) -> bool {
    let Some(conditions) = statement.get("Condition") else {
        return true;
    };
    let Some(conditions) = conditions.as_object() else {
        return false;
    };
    conditions.iter().all(|(operator, keys)| {
        keys.as_object().is_some_and(|keys| {
            keys.iter()
                .all(|(key, values)| condition_holds(operator, key, &one_or_many(values), caller))
        })
    })
}

fn condition_holds(operator: &str, key: &str, values: &[&str], caller: Caller<'_>) -> bool {
    let (operator, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let key = key.to_ascii_lowercase();
    if key != "aws:sourcearn" && key != "aws:sourceaccount" {
        // A key not modelled here (aws:PrincipalArn, aws:PrincipalAccount, …) may well be in
        // the request: nothing can be said of the condition, so the statement matches nobody.
        return false;
    }
    let present = match (caller, key.as_str()) {
        (Caller::Service { source_arn, .. }, "aws:sourcearn") => Some(source_arn),
        (Caller::Service { source_account, .. }, "aws:sourceaccount") => Some(source_account),
        _ => None,
    };
    let (negated, matches): (bool, fn(&str, &str) -> bool) = match operator {
        "StringEquals" | "ArnEquals" => (false, |pattern, value| {
            if pattern.contains('*') || pattern.contains('?') {
                glob(pattern, value)
            } else {
                pattern == value
            }
        }),
        "StringLike" | "ArnLike" => (false, glob),
        "StringNotEquals" | "ArnNotEquals" => (true, |p, v| p == v || glob(p, v)),
        "StringNotLike" | "ArnNotLike" => (true, glob),
        // Unknown to this module: the statement is taken to match nobody.
        _ => return false,
    };
    // StringEquals is exact; ArnEquals, like ArnLike, takes wildcards. The difference does not
    // matter for the ARNs and account ids checked here.
    match present {
        None => negated || if_exists,
        Some(value) => {
            let any = values.iter().any(|pattern| matches(pattern, value));
            if negated { !any } else { any }
        }
    }
}

/// `*` any run of characters, `?` any one; everything else literal.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";

    fn rules() -> Vec<String> {
        ["batch", "ecs"]
            .iter()
            .map(|r| format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/stack-{r}"))
            .collect()
    }

    fn allow_rules() -> Value {
        json!({
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:c",
            "Condition": {"ArnEquals": {"aws:SourceArn": rules()}, "StringEquals": {"aws:SourceAccount": ACCOUNT}}
        })
    }

    fn deny_others() -> Value {
        json!({
            "Effect": "Deny", "Principal": "*", "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:c",
            "Condition": {"ArnNotEquals": {"aws:SourceArn": rules()}}
        })
    }

    const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:c";

    fn policy(statements: Vec<Value>) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    /// The judgement of the template's Allow beside this `deny`.
    fn with_deny(deny: Value) -> Result<(), String> {
        admits_only_rules(
            &policy(vec![allow_rules(), deny]),
            FUNCTION,
            &rules(),
            ACCOUNT,
        )
    }

    #[test]
    fn the_rules_alone_get_in_when_a_deny_keeps_out_the_rest() {
        assert_eq!(with_deny(deny_others()), Ok(()));
    }

    /// What `AWS::Lambda::Permission` resources write: an Allow per rule and nothing else. A
    /// role of the account with its own Allow still gets in (IAM's same-account union).
    #[test]
    fn allows_alone_do_not_keep_out_the_accounts_own_roles() {
        let error = admits_only_rules(&policy(vec![allow_rules()]), FUNCTION, &rules(), ACCOUNT)
            .unwrap_err();
        assert!(error.contains("any user or role"), "{error}");
    }

    #[test]
    fn a_deny_without_its_condition_shuts_out_eventbridge_too() {
        let mut deny = deny_others();
        deny.as_object_mut().unwrap().remove("Condition");
        let error = with_deny(deny).unwrap_err();
        assert!(error.contains("EventBridge may not invoke it"), "{error}");
    }

    #[test]
    fn an_allow_for_every_rule_lets_any_rule_of_the_account_in() {
        let mut allow = allow_rules();
        allow["Condition"]["ArnEquals"]["aws:SourceArn"] =
            json!(format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/*"));
        let mut deny = deny_others();
        deny["Condition"] = json!({"ArnNotLike": {"aws:SourceArn": format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/*")}});
        let error =
            admits_only_rules(&policy(vec![allow, deny]), FUNCTION, &rules(), ACCOUNT).unwrap_err();
        assert!(error.contains("any EventBridge rule"), "{error}");
    }

    #[test]
    fn unknown_operators_and_not_principal_never_count_as_a_deny() {
        let mut deny = deny_others();
        deny["Condition"] = json!({"ArnNotEqualsSomething": {"aws:SourceArn": rules()}});
        assert!(with_deny(deny).is_err());
        let mut deny = deny_others();
        deny.as_object_mut().unwrap().remove("Principal");
        deny["NotPrincipal"] = json!({"Service": "events.amazonaws.com"});
        assert!(with_deny(deny).is_err());
        assert!(admits_only_rules("not json", FUNCTION, &rules(), ACCOUNT).is_err());
    }

    /// A Deny that spares the account's own principals (a key this module does not model)
    /// or that names another resource guards nothing here.
    #[test]
    fn a_deny_on_other_keys_or_resources_is_no_guard() {
        let mut spares = deny_others();
        spares["Condition"] = json!({"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}});
        assert!(with_deny(spares).is_err());
        let mut elsewhere = deny_others();
        elsewhere["Resource"] = json!("arn:aws:lambda:us-east-1:123456789012:function:other");
        assert!(with_deny(elsewhere).is_err());
        let mut not_resource = deny_others();
        not_resource.as_object_mut().unwrap().remove("Resource");
        not_resource["NotResource"] = json!("arn:aws:lambda:us-east-1:123456789012:function:x");
        assert!(with_deny(not_resource).is_err());
        // By name, as doctor knows the function.
        assert_eq!(
            admits_only_rules(
                &policy(vec![allow_rules(), deny_others()]),
                "c",
                &rules(),
                ACCOUNT
            ),
            Ok(())
        );
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob(
            "arn:aws:events:*:1:rule/a*",
            "arn:aws:events:us-east-1:1:rule/abc"
        ));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("rule/x", "rule/xy"));
    }
}
