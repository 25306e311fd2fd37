//! IAM documents evaluated without IAM: whether a role's policies allow an action on a
//! resource (Allow minus explicit Deny, `*` and `?` wildcards in Action and Resource;
//! conditions are not evaluated, only reported), and whether a trust policy lets EKS Pod
//! Identity or IRSA assume the role for one service account. Pure.

use serde_json::Value;

use crate::aws::policy::TrustScope;

/// A policy document and where it came from ("inline policy X", "attached policy ARN").
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPolicy {
    pub source: String,
    pub document: Value,
}

/// The outcome of evaluating one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the named statement (`source`, `Sid` when there is one).
    Allowed { by: String },
    /// An unconditional Deny matches.
    Denied { by: String },
    /// No Allow matches (IAM's implicit deny).
    NotAllowed,
}

/// A decision and the conditions it did not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// An Allow that decided it has conditions, assumed to hold.
    pub allow_conditional: bool,
    /// Matching Deny statements with conditions, assumed not to apply.
    pub conditional_denies: Vec<String>,
}

fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `*` matches any run of characters, `?` one; policy variables (`${...}`) match anything.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let normalize = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let mut flat = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        flat.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                flat.push('*');
                rest = &rest[start + end + 1..];
            }
            None => {
                flat.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    flat.push_str(rest);
    let p: Vec<char> = normalize(&flat).chars().collect();
    let t: Vec<char> = normalize(text).chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn matches_field(st: &Value, key: &str, not_key: &str, value: &str, ignore_case: bool) -> bool {
    if let Some(v) = st.get(key) {
        strings(Some(v)).iter().any(|p| glob(p, value, ignore_case))
    } else if let Some(v) = st.get(not_key) {
        !strings(Some(v)).iter().any(|p| glob(p, value, ignore_case))
    } else {
        false
    }
}

fn label(source: &str, st: &Value) -> String {
    match st.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => format!("{source} (statement {sid})"),
        _ => source.to_string(),
    }
}

fn has_condition(st: &Value) -> bool {
    st.get("Condition")
        .and_then(Value::as_object)
        .is_some_and(|c| !c.is_empty())
}

/// Whether `policies` allow `action` on `resource`. Actions compare case-insensitively,
/// resources exactly; an unconditional Deny wins over any Allow.
pub fn evaluate(policies: &[NamedPolicy], action: &str, resource: &str) -> Evaluation {
    let mut allowed: Option<(String, bool)> = None;
    let mut denied = None;
    let mut conditional_denies = Vec::new();
    for policy in policies {
        for st in statements(&policy.document) {
            let applies = matches_field(st, "Action", "NotAction", action, true)
                && matches_field(st, "Resource", "NotResource", resource, false);
            if !applies {
                continue;
            }
            let conditional = has_condition(st);
            match st.get("Effect").and_then(Value::as_str) {
                Some("Deny") if conditional => {
                    conditional_denies.push(label(&policy.source, st));
                }
                Some("Deny") => {
                    denied.get_or_insert_with(|| label(&policy.source, st));
                }
                // Prefer an unconditional Allow as the reason.
                Some("Allow") if allowed.as_ref().is_none_or(|(_, c)| *c && !conditional) => {
                    allowed = Some((label(&policy.source, st), conditional));
                }
                _ => {}
            }
        }
    }
    let allow_conditional = allowed.as_ref().is_some_and(|(_, c)| *c);
    let decision = match (denied, allowed) {
        (Some(by), _) => Decision::Denied { by },
        (None, Some((by, _))) => Decision::Allowed { by },
        (None, None) => Decision::NotAllowed,
    };
    Evaluation {
        decision,
        allow_conditional,
        conditional_denies,
    }
}

/// Who is assuming the role, for trust-policy conditions: the workload bootstrap's trust is
/// scoped to, and the cluster's OIDC issuer URL when known (IRSA).
#[derive(Debug, Clone, Copy)]
pub struct Assumer<'a> {
    pub scope: TrustScope<'a>,
    pub oidc_issuer: Option<&'a str>,
}

/// The value a condition key takes for this assumer, when doctor knows it.
fn known_value(key: &str, who: &Assumer<'_>) -> Option<String> {
    let key = key.to_ascii_lowercase();
    Some(match key.as_str() {
        "aws:sourceaccount" => who.scope.account.to_string(),
        "aws:sourcearn" | "aws:requesttag/eks-cluster-arn" => who.scope.cluster_arn.to_string(),
        "aws:requesttag/eks-cluster-name" => who.scope.cluster.to_string(),
        "aws:requesttag/kubernetes-namespace" => who.scope.namespace.to_string(),
        "aws:requesttag/kubernetes-service-account" => who.scope.service_account.to_string(),
        k if k.ends_with(":sub") => format!(
            "system:serviceaccount:{}:{}",
            who.scope.namespace, who.scope.service_account
        ),
        k if k.ends_with(":aud") => bootstrap_common::names::IRSA_AUDIENCE.to_string(),
        _ => return None,
    })
}

/// Checks a statement's conditions on the keys doctor knows. `Err` names the first
/// mismatch; `Ok` lists the conditions it could not check.
fn check_conditions(st: &Value, who: &Assumer<'_>) -> Result<Vec<String>, String> {
    let mut unchecked = Vec::new();
    let Some(conditions) = st.get("Condition").and_then(Value::as_object) else {
        return Ok(unchecked);
    };
    for (operator, block) in conditions {
        let Some(block) = block.as_object() else {
            continue;
        };
        let op = operator.to_ascii_lowercase();
        let compare: Option<fn(&str, &str) -> bool> = match op.as_str() {
            "stringequals" | "arnequals" => Some(|p, v| p == v),
            "stringequalsignorecase" => Some(|p, v| p.eq_ignore_ascii_case(v)),
            "stringlike" | "arnlike" => Some(|p, v| glob(p, v, false)),
            _ => None,
        };
        for (key, wanted) in block {
            match (compare, known_value(key, who)) {
                (Some(compare), Some(actual)) => {
                    let wanted = strings(Some(wanted));
                    if !wanted.iter().any(|w| compare(w, &actual)) {
                        return Err(format!(
                            "its condition {operator} {key} is {} but this workload's is {actual:?}",
                            wanted
                                .iter()
                                .map(|w| format!("{w:?}"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ));
                    }
                }
                _ => unchecked.push(format!("{operator} {key}")),
            }
        }
    }
    Ok(unchecked)
}

fn principal_values<'a>(st: &'a Value, kind: &str) -> Vec<&'a str> {
    strings(st.get("Principal").and_then(|p| p.get(kind)))
}

/// Allowed actions of trust statements for a principal, after their known conditions.
struct TrustScan {
    found: bool,
    actions: Vec<String>,
    mismatch: Option<String>,
    unchecked: Vec<String>,
    sids: Vec<String>,
    denied_by: Option<String>,
}

fn scan(trust: &Value, who: &Assumer<'_>, principal: impl Fn(&Value) -> bool) -> TrustScan {
    let mut s = TrustScan {
        found: false,
        actions: Vec::new(),
        mismatch: None,
        unchecked: Vec::new(),
        sids: Vec::new(),
        denied_by: None,
    };
    for st in statements(trust) {
        if !principal(st) {
            continue;
        }
        let effect = st.get("Effect").and_then(Value::as_str);
        match check_conditions(st, who) {
            Err(why) => {
                if effect == Some("Allow") {
                    s.found = true;
                    s.mismatch.get_or_insert(why);
                }
            }
            Ok(unchecked) if effect == Some("Deny") => {
                if unchecked.is_empty() {
                    s.denied_by = Some(label("the trust policy", st));
                }
            }
            Ok(unchecked) => {
                s.found = true;
                s.unchecked.extend(unchecked);
                s.actions
                    .extend(strings(st.get("Action")).iter().map(|a| a.to_string()));
                if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                    s.sids.push(sid.to_string());
                }
            }
        }
    }
    s
}

fn allows(actions: &[String], action: &str) -> bool {
    actions.iter().any(|a| glob(a, action, true))
}

fn describe_ok(what: &str, s: &TrustScan) -> String {
    let mut saw = what.to_string();
    if !s.sids.is_empty() {
        saw.push_str(&format!(" (statement {})", s.sids.join(", ")));
    }
    if s.unchecked.is_empty() {
        saw.push_str("; its conditions match this workload");
    } else {
        saw.push_str(&format!(
            "; conditions not evaluated: {}",
            s.unchecked.join(", ")
        ));
    }
    saw
}

/// Whether EKS Pod Identity can assume the role for this workload: an Allow for the
/// `pods.eks.amazonaws.com` service with `sts:AssumeRole` and `sts:TagSession`, whose
/// session-tag conditions (when present) name this cluster, namespace and service account.
/// `Ok` is what was seen; `Err` the problem.
pub fn pod_identity_trust(trust: &Value, who: &Assumer<'_>) -> Result<String, String> {
    let principal = bootstrap_common::names::POD_IDENTITY_PRINCIPAL;
    let s = scan(trust, who, |st| {
        principal_values(st, "Service").contains(&principal)
    });
    if let Some(by) = &s.denied_by {
        return Err(format!("{by} denies {principal}"));
    }
    if !s.found {
        return Err(format!("no trust statement allows the service {principal}"));
    }
    if s.actions.is_empty()
        && let Some(why) = s.mismatch
    {
        return Err(format!(
            "its trust statement for {principal} does not apply to this workload: {why}"
        ));
    }
    let missing: Vec<&str> = ["sts:AssumeRole", "sts:TagSession"]
        .into_iter()
        .filter(|a| !allows(&s.actions, a))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "its trust in {principal} does not allow {} (Pod Identity needs sts:AssumeRole and sts:TagSession)",
            missing.join(" and ")
        ));
    }
    Ok(describe_ok(
        &format!("trusts {principal} with sts:AssumeRole and sts:TagSession"),
        &s,
    ))
}

/// Whether IRSA can assume the role for this workload: an Allow for a `Federated` OIDC
/// provider (the cluster's issuer, when known) with `sts:AssumeRoleWithWebIdentity`, whose
/// `:sub` / `:aud` conditions (when present) name this service account and sts.amazonaws.com.
pub fn irsa_trust(trust: &Value, who: &Assumer<'_>) -> Result<String, String> {
    let issuer = who
        .oidc_issuer
        .map(|i| i.trim_start_matches("https://").trim_end_matches('/'));
    let federated = |st: &Value| {
        principal_values(st, "Federated")
            .iter()
            .any(|p| p.contains(":oidc-provider/"))
    };
    let s = scan(trust, who, |st| {
        federated(st)
            && issuer.is_none_or(|i| {
                principal_values(st, "Federated")
                    .iter()
                    .any(|p| p.ends_with(&format!("oidc-provider/{i}")))
            })
    });
    if !s.found {
        let other = scan(trust, who, federated);
        return Err(match (other.found, issuer) {
            (true, Some(i)) => format!(
                "it trusts an OIDC provider, but not this cluster's issuer {i} (was the cluster recreated?)"
            ),
            _ => "no trust statement allows a Federated OIDC provider (IRSA)".into(),
        });
    }
    if let Some(by) = &s.denied_by {
        return Err(format!("{by} denies the OIDC provider"));
    }
    if s.actions.is_empty()
        && let Some(why) = s.mismatch
    {
        return Err(format!(
            "its OIDC trust statement does not apply to this service account: {why}"
        ));
    }
    if !allows(&s.actions, "sts:AssumeRoleWithWebIdentity") {
        return Err("its OIDC trust statement does not allow sts:AssumeRoleWithWebIdentity".into());
    }
    Ok(describe_ok(
        "trusts the cluster's OIDC provider with sts:AssumeRoleWithWebIdentity",
        &s,
    ))
}

#[cfg(test)]
#[path = "iam_tests.rs"]
mod tests;
