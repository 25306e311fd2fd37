//! The trust-policy edits of `migrate` (pure): whether a role already trusts Pod Identity for
//! exactly one workload (a statement scoped like bootstrap's), adding that statement (or
//! pinning the cluster's ARN in the one an earlier version added), and `--remove-irsa`'s
//! removal of only this cluster's OIDC trust for the migrated service accounts — other
//! clusters' issuers, CI providers and whatever cannot be proven to be ours are kept.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::aws::policy::{self, TrustScope};
use crate::diagnose::iam::glob;
use bootstrap_common::names::POD_IDENTITY_PRINCIPAL;

/// A trust document's statements (a single statement object counts as a list of one).
pub fn statements(trust: &Value) -> Vec<Value> {
    match trust.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<&str>> {
    match v? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// A statement's conditions as (operator, key, values), operators and keys lowercased;
/// `None` when a block is not the usual shape (then nothing about it is assumed).
fn conditions(st: &Value) -> Option<Vec<(String, String, Vec<String>)>> {
    let Some(block) = st.get("Condition") else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for (op, keys) in block.as_object()? {
        for (key, values) in keys.as_object()? {
            let values = strings(Some(values))?
                .into_iter()
                .map(str::to_string)
                .collect();
            out.push((op.to_ascii_lowercase(), key.to_ascii_lowercase(), values));
        }
    }
    Some(out)
}

fn label(st: &Value, index: usize) -> String {
    match st.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => format!("statement {sid}"),
        _ => format!("statement #{}", index + 1),
    }
}

/// Whether a statement is an Allow for exactly the Pod Identity service with AssumeRole and
/// TagSession, under exactly the session-tag conditions bootstrap writes for `scope` (with
/// `with_arn`, the cluster ARN too). Anything else — another namespace, service account or
/// cluster, a missing or extra condition, another principal — is not "already trusted".
pub fn scoped_like_ours(st: &Value, scope: &TrustScope<'_>, with_arn: bool) -> bool {
    let principal_ok = st
        .get("Principal")
        .and_then(Value::as_object)
        .is_some_and(|p| {
            p.len() == 1 && strings(p.get("Service")).is_some_and(|s| s == [POD_IDENTITY_PRINCIPAL])
        });
    let actions = strings(st.get("Action")).unwrap_or_default();
    let actions_ok = ["sts:AssumeRole", "sts:TagSession"]
        .iter()
        .all(|a| actions.iter().any(|x| glob(x, a, true)));
    if st.get("Effect").and_then(Value::as_str) != Some("Allow") || !principal_ok || !actions_ok {
        return false;
    }
    let mut wanted = vec![
        ("aws:sourceaccount", scope.account),
        ("aws:requesttag/eks-cluster-name", scope.cluster),
        ("aws:requesttag/kubernetes-namespace", scope.namespace),
        (
            "aws:requesttag/kubernetes-service-account",
            scope.service_account,
        ),
    ];
    if with_arn {
        wanted.push(("aws:requesttag/eks-cluster-arn", scope.cluster_arn));
    }
    let Some(found) = conditions(st) else {
        return false;
    };
    found.len() == wanted.len()
        && found.iter().all(|(op, key, values)| {
            let op_ok = op == "stringequals"
                || (op == "arnequals" && key == "aws:requesttag/eks-cluster-arn");
            op_ok && values.len() == 1 && wanted.iter().any(|(k, v)| k == key && values[0] == *v)
        })
}

/// The trust document with bootstrap's Pod Identity statement for `scope` (every other
/// statement kept) and what was done, or `None` when a statement scoped like it is there.
/// A statement bootstrap added before it pinned the cluster's ARN is replaced in place.
pub fn with_pod_identity(trust: &Value, scope: &TrustScope<'_>) -> Option<(Value, &'static str)> {
    let mut list = statements(trust);
    if list.iter().any(|st| scoped_like_ours(st, scope, true)) {
        return None;
    }
    let mut ours = policy::pod_identity_statement(scope);
    let note = match list
        .iter()
        .position(|st| scoped_like_ours(st, scope, false))
    {
        Some(i) => {
            list.remove(i);
            ours = with_free_sid(ours, &list, scope);
            list.insert(i, ours);
            "pins the cluster's ARN in the Pod Identity statement added earlier; every other statement is kept"
        }
        None => {
            ours = with_free_sid(ours, &list, scope);
            list.push(ours);
            "adds the Pod Identity statement; every existing statement is kept"
        }
    };
    let mut merged = trust.clone();
    merged["Statement"] = Value::Array(list);
    if merged.get("Version").is_none() {
        merged["Version"] = json!("2012-10-17");
    }
    Some((merged, note))
}

/// IAM refuses a policy whose statements share a `Sid`: a role shared by several service
/// accounts gets one Pod Identity statement each, so a taken `Sid` gets a stable suffix from
/// the namespace and service account (or is dropped if that is taken too).
fn with_free_sid(mut statement: Value, others: &[Value], scope: &TrustScope<'_>) -> Value {
    let taken = |sid: &str| others.iter().any(|st| st["Sid"] == sid);
    let Some(sid) = statement["Sid"].as_str().map(str::to_string) else {
        return statement;
    };
    if !taken(&sid) {
        return statement;
    }
    let hash = format!("{}/{}", scope.namespace, scope.service_account)
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    let unique = format!("{sid}{hash:08x}");
    if let Some(map) = statement.as_object_mut() {
        if taken(&unique) {
            map.remove("Sid");
        } else {
            map.insert("Sid".into(), Value::String(unique));
        }
    }
    statement
}

/// What `--remove-irsa` does to a trust document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OidcRemoval {
    /// The document without the removed trust; `None` when nothing changes.
    pub trust: Option<Value>,
    /// What was removed.
    pub removed: Vec<String>,
    /// This cluster's OIDC statements that were kept although they may admit one of the
    /// service accounts, and why (nothing is removed that is not provably only theirs).
    pub kept: Vec<String>,
}

/// `system:serviceaccount:<namespace>:<name>`, the `:sub` of a service account's token.
pub fn sub_of(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// This cluster's OIDC provider ARN: `arn:<partition>:iam::<account>:oidc-provider/<host>`.
pub fn provider_arn(cluster_arn: &str, account: &str, issuer: &str) -> String {
    let partition = cluster_arn.split(':').nth(1).unwrap_or("aws");
    format!(
        "arn:{partition}:iam::{account}:oidc-provider/{}",
        issuer_host(issuer)
    )
}

/// The issuer URL without its scheme and trailing slash (how IAM names the provider).
pub fn issuer_host(issuer: &str) -> &str {
    issuer.trim_start_matches("https://").trim_end_matches('/')
}

/// Removes `subs` from the Allow statements of the OIDC provider `provider` (this cluster's):
/// a `StringEquals` (or literal `StringLike`) `<issuer>:sub` value naming one of them goes,
/// and the statement with it when it named nothing else. Kept, and said so in `kept`: a
/// statement of this provider with no `:sub` condition (every service account), a pattern that
/// matches one of `subs` (it may admit others), a `:sub` under any other operator or under
/// several, a statement naming several providers or one not in the usual shape. Statements of
/// other providers (other clusters, CI) and Deny statements are never touched.
pub fn without_oidc(trust: &Value, provider: &str, subs: &[String]) -> OidcRemoval {
    let host = provider
        .split_once(":oidc-provider/")
        .map_or("", |(_, h)| h);
    let sub_key = format!("{host}:sub").to_ascii_lowercase();
    let mut out = OidcRemoval::default();
    let mut list = Vec::new();
    let mut changed = false;
    for (i, st) in statements(trust).into_iter().enumerate() {
        let federated = strings(st.get("Principal").and_then(|p| p.get("Federated")));
        let names_ours = federated.as_ref().is_some_and(|f| f.contains(&provider));
        let allow = st.get("Effect").and_then(Value::as_str) == Some("Allow");
        if !names_ours || !allow {
            list.push(st);
            continue;
        }
        let name = label(&st, i);
        if federated.as_ref().is_some_and(|f| f.len() > 1) {
            out.kept.push(format!(
                "{name}: trusts several OIDC providers in one statement; edit it by hand"
            ));
            list.push(st);
            continue;
        }
        match edit_statement(&st, &sub_key, subs) {
            Edit::Untouched => list.push(st),
            Edit::Keep(why) => {
                out.kept.push(format!("{name}: {why}"));
                list.push(st);
            }
            Edit::Drop(gone) => {
                out.removed.push(format!("{name} ({})", gone.join(", ")));
                changed = true;
            }
            Edit::Narrow(narrowed, gone, left) => {
                out.removed.push(format!(
                    "{} from {name} (it keeps {})",
                    gone.join(", "),
                    left.join(", ")
                ));
                list.push(narrowed);
                changed = true;
            }
        }
    }
    if changed {
        let mut doc = trust.clone();
        doc["Statement"] = Value::Array(list);
        out.trust = Some(doc);
    }
    out
}

enum Edit {
    /// Names none of the service accounts.
    Untouched,
    /// May admit one of them, but is not provably only theirs: why.
    Keep(String),
    /// Admits only them: removed (the subs it named).
    Drop(Vec<String>),
    /// The statement without their subs, the subs removed, the subs left.
    Narrow(Value, Vec<String>, Vec<String>),
}

fn edit_statement(st: &Value, sub_key: &str, subs: &[String]) -> Edit {
    let Some(found) = conditions(st) else {
        return Edit::Keep("its Condition block is not in the usual shape; edit it by hand".into());
    };
    let on_sub: Vec<&(String, String, Vec<String>)> =
        found.iter().filter(|(_, k, _)| k == sub_key).collect();
    let (op, values) = match on_sub.as_slice() {
        [] => {
            return Edit::Keep(
                "it has no :sub condition, so it admits every service account of this cluster"
                    .into(),
            );
        }
        [(op, _, values)] => (op.as_str(), values),
        _ => {
            return Edit::Keep(
                "it conditions :sub under several operators; edit it by hand".into(),
            );
        }
    };
    let wildcard = |v: &str| op == "stringlike" && (v.contains(['*', '?']) || v.contains("${"));
    if op != "stringequals" && op != "stringlike" {
        let spelled = st["Condition"]
            .as_object()
            .and_then(|c| c.keys().find(|k| k.eq_ignore_ascii_case(op)))
            .map_or(op, String::as_str);
        return Edit::Keep(format!(
            "its :sub condition uses {spelled}, which bootstrap does not edit (it may admit these service accounts); edit it by hand"
        ));
    }
    if let Some(pattern) = values
        .iter()
        .find(|v| wildcard(v) && subs.iter().any(|s| glob(v, s, false)))
    {
        return Edit::Keep(format!(
            "its StringLike pattern {pattern:?} admits {} and maybe other service accounts; narrow it by hand",
            subs.iter()
                .filter(|s| glob(pattern, s, false))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (gone, left): (Vec<String>, Vec<String>) = values
        .iter()
        .cloned()
        .partition(|v| !wildcard(v) && subs.contains(v));
    if gone.is_empty() {
        return Edit::Untouched;
    }
    if left.is_empty() {
        return Edit::Drop(gone);
    }
    let mut narrowed = st.clone();
    if let Some(block) = narrowed
        .get_mut("Condition")
        .and_then(Value::as_object_mut)
        .and_then(|c| {
            c.iter_mut()
                .find(|(o, _)| o.eq_ignore_ascii_case(op))
                .map(|(_, b)| b)
        })
        .and_then(Value::as_object_mut)
        && let Some((_, v)) = block
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(sub_key))
    {
        *v = if left.len() == 1 {
            json!(left[0])
        } else {
            json!(left)
        };
    }
    Edit::Narrow(narrowed, gone, left)
}

/// The service accounts (`namespace`, `name`) a trust's Allow statements for `provider` name
/// literally in `:sub` (where earlier migrated service accounts may still be trusted).
pub fn named_subs(trust_doc: &Value, provider: &str) -> Vec<(String, String)> {
    let host = provider
        .split_once(":oidc-provider/")
        .map_or("", |(_, h)| h);
    let sub_key = format!("{host}:sub");
    let mut out = BTreeSet::new();
    for st in statements(trust_doc) {
        let ours = st["Principal"]["Federated"] == provider
            || st["Principal"]["Federated"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == provider));
        if !ours || st["Effect"] != "Allow" {
            continue;
        }
        for block in st["Condition"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
        {
            for (key, values) in block.as_object().into_iter().flatten() {
                if !key.eq_ignore_ascii_case(&sub_key) {
                    continue;
                }
                let values = match values {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                for v in values {
                    if let Some(rest) = v.strip_prefix("system:serviceaccount:")
                        && let Some((ns, sa)) = rest.split_once(':')
                        && !v.contains(['*', '?', '$'])
                    {
                        out.insert((ns.to_string(), sa.to_string()));
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}
