//! IRSA workloads, found and planned for Pod Identity: service accounts annotated with an IAM
//! role, the `aws` SecretProviderClasses their pods mount whose `usePodIdentity` is not
//! "true", and the changes that move them — a session-tag-scoped Pod Identity statement added
//! to the role's trust (every other statement kept), the association, and `usePodIdentity:
//! "true"` set on each SecretProviderClass by a server-side apply of that one field.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::association::{self, LiveAssociation};
use crate::aws::policy::{self, TrustScope};
use crate::plan::{Action, Change, ObjectRef, Op};
use bootstrap_common::names::{IRSA_ROLE_ANNOTATION, POD_IDENTITY_PRINCIPAL};

/// A SecretProviderClass of provider `aws` as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSpc {
    pub namespace: String,
    pub name: String,
    /// `usePodIdentity` as set (`None`: absent).
    pub use_pod_identity: Option<String>,
    /// The files its objects mount (aliases, or names with `/` made `_`).
    pub files: Vec<String>,
}

impl FoundSpc {
    pub fn uses_pod_identity(&self) -> bool {
        matches!(
            self.use_pod_identity.as_deref(),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True")
        )
    }
}

/// A pod that mounts SecretProviderClasses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPod {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub spcs: Vec<String>,
    /// Why its node cannot use Pod Identity (Fargate, Windows), if so.
    pub node_problem: Option<String>,
}

/// What a scan of the cluster found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// (namespace, service account) → the annotated role ARN.
    pub annotated: BTreeMap<(String, String), String>,
    pub spcs: Vec<FoundSpc>,
    pub pods: Vec<FoundPod>,
}

/// One workload to migrate: a service account, its role, the SPCs its pods mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub spcs: Vec<String>,
    /// Set when the migration cannot handle it: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot: Option<String>,
}

/// Groups the scan into candidates: annotated service accounts whose pods mount `aws` SPCs.
/// Workloads it cannot handle get the reason: pods on Fargate or Windows nodes, roles in
/// another account, SPCs shared by service accounts of different roles.
pub fn candidates(scan: &Scan, account: &str, only_namespace: Option<&str>) -> Vec<Candidate> {
    let spc_names: BTreeSet<(String, String)> = scan
        .spcs
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    // Which roles use each SPC (through the service accounts of the pods that mount it).
    let mut roles_of_spc: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for pod in &scan.pods {
        let role = scan
            .annotated
            .get(&(pod.namespace.clone(), pod.service_account.clone()))
            .cloned()
            .unwrap_or_else(|| format!("(no IRSA role: {})", pod.service_account));
        for spc in &pod.spcs {
            roles_of_spc
                .entry((pod.namespace.clone(), spc.clone()))
                .or_default()
                .insert(role.clone());
        }
    }
    let mut out = Vec::new();
    for ((ns, sa), role_arn) in &scan.annotated {
        if only_namespace.is_some_and(|want| want != ns) {
            continue;
        }
        let pods: Vec<&FoundPod> = scan
            .pods
            .iter()
            .filter(|p| &p.namespace == ns && &p.service_account == sa)
            .collect();
        let spcs: BTreeSet<String> = pods
            .iter()
            .flat_map(|p| p.spcs.iter().cloned())
            .filter(|s| spc_names.contains(&(ns.clone(), s.clone())))
            .collect();
        if spcs.is_empty() {
            continue;
        }
        let mut cannot = None;
        if let Some(pod) = pods.iter().find(|p| p.node_problem.is_some()) {
            cannot = Some(format!(
                "pod {}/{} runs on {}: EKS Pod Identity does not work there",
                pod.namespace,
                pod.name,
                pod.node_problem.clone().unwrap_or_default()
            ));
        } else if role_arn.split(':').nth(4) != Some(account) {
            cannot = Some(format!(
                "role {role_arn} is in another account than the cluster's ({account}): migrate it with a targetRoleArn by hand"
            ));
        } else if let Some(spc) = spcs.iter().find(|s| {
            roles_of_spc
                .get(&(ns.clone(), (*s).clone()))
                .is_some_and(|roles| roles.len() > 1)
        }) {
            cannot = Some(format!(
                "SecretProviderClass {ns}/{spc} is mounted by service accounts of different roles: split it first"
            ));
        }
        out.push(Candidate {
            namespace: ns.clone(),
            service_account: sa.clone(),
            role_arn: role_arn.clone(),
            spcs: spcs.into_iter().collect(),
            cannot,
        });
    }
    out
}

/// Whether a trust statement already lets Pod Identity assume the role with session tags.
fn trusts_pod_identity(statement: &Value) -> bool {
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    statement["Effect"] == "Allow"
        && as_list(&statement["Principal"]["Service"])
            .iter()
            .any(|s| s == POD_IDENTITY_PRINCIPAL)
        && {
            let actions = as_list(&statement["Action"]);
            ["sts:AssumeRole", "sts:TagSession"]
                .iter()
                .all(|a| actions.iter().any(|x| x == a || x == "sts:*" || x == "*"))
        }
}

/// Whether a trust statement is the IRSA (OIDC web identity) one.
fn is_oidc_statement(statement: &Value) -> bool {
    statement["Principal"]["Federated"]
        .as_str()
        .is_some_and(|f| f.contains(":oidc-provider/"))
}

/// The trust document with the Pod Identity statement added (every existing one kept), or
/// `None` when one is there already.
pub fn trust_with_pod_identity(trust: &Value, scope: &TrustScope<'_>) -> Option<Value> {
    let statements = trust["Statement"].as_array().cloned().unwrap_or_default();
    if statements.iter().any(trusts_pod_identity) {
        return None;
    }
    let mut merged = trust.clone();
    let mut list = statements;
    list.push(policy::pod_identity_statement(scope));
    merged["Statement"] = Value::Array(list);
    if merged.get("Version").is_none() {
        merged["Version"] = json!("2012-10-17");
    }
    Some(merged)
}

/// The trust document without the IRSA statements (`--remove-irsa`), or `None` if it has none.
pub fn trust_without_oidc(trust: &Value) -> Option<Value> {
    let statements = trust["Statement"].as_array().cloned().unwrap_or_default();
    if !statements.iter().any(is_oidc_statement) {
        return None;
    }
    let mut out = trust.clone();
    out["Statement"] = Value::Array(
        statements
            .into_iter()
            .filter(|s| !is_oidc_statement(s))
            .collect(),
    );
    Some(out)
}

/// The one-field server-side apply that turns Pod Identity on for a SecretProviderClass.
pub fn spc_use_pod_identity(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"parameters": {"usePodIdentity": "true"}}
    })
}

/// What a candidate's migration changes, and how to undo each part.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    pub changes: Vec<Change>,
    /// Operations that restore the IRSA state if the mount check fails.
    pub rollback: Vec<Op>,
}

/// Plans a candidate's move (pure): `trust` is the role's live trust policy, `live` its
/// association if any, `spcs` the found SPCs.
pub fn plan(
    c: &Candidate,
    cluster: &str,
    account: &str,
    trust: &Value,
    live: Option<&LiveAssociation>,
    spcs: &[FoundSpc],
) -> Result<Migration, String> {
    let role = c
        .role_arn
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let scope = TrustScope {
        account,
        cluster,
        namespace: &c.namespace,
        service_account: &c.service_account,
    };
    let mut m = Migration::default();
    match trust_with_pod_identity(trust, &scope) {
        Some(merged) => {
            m.changes.push(
                Change::new(Action::Update, format!("IAM role {role} (trust)"))
                    .op(Op::UpdateAssumeRolePolicy {
                        role: role.clone(),
                        trust: merged,
                    })
                    .note("adds the Pod Identity statement; every existing statement is kept"),
            );
            m.rollback.push(Op::UpdateAssumeRolePolicy {
                role: role.clone(),
                trust: trust.clone(),
            });
        }
        None => m.changes.push(
            Change::new(Action::Unchanged, format!("IAM role {role} (trust)"))
                .note("already trusts pods.eks.amazonaws.com"),
        ),
    }
    match live {
        Some(a) if a.role_arn == c.role_arn => m.changes.push(
            Change::new(
                Action::Unchanged,
                format!(
                    "Pod Identity association {}/{}",
                    c.namespace, c.service_account
                ),
            )
            .note(format!("id {}", a.id)),
        ),
        Some(a) => {
            return Err(format!(
                "service account {}/{} is already associated with another role ({}) than its IRSA role",
                c.namespace, c.service_account, a.role_arn
            ));
        }
        None => {
            let change = association::plan(
                cluster,
                &c.namespace,
                &c.service_account,
                &c.role_arn,
                None,
                false,
                None,
            )
            .map_err(|e| e.to_string())?;
            m.changes.push(change);
            // Undone by id once it exists: the executor looks it up (see migrate's rollback).
        }
    }
    for name in &c.spcs {
        let found = spcs
            .iter()
            .find(|s| s.namespace == c.namespace && &s.name == name);
        let Some(found) = found else { continue };
        let resource = format!("SecretProviderClass/{}/{name}", c.namespace);
        if found.uses_pod_identity() {
            m.changes.push(
                Change::new(Action::Unchanged, resource).note("usePodIdentity is already true"),
            );
            continue;
        }
        m.changes.push(
            Change::new(Action::Update, resource)
                .op(Op::Apply {
                    object: spc_use_pod_identity(&c.namespace, name),
                })
                .note(format!(
                    "usePodIdentity {} → \"true\" (only that field)",
                    found
                        .use_pod_identity
                        .as_deref()
                        .map_or("unset".to_string(), |v| format!("{v:?}"))
                )),
        );
        let reference = ObjectRef::new(
            "secrets-store.csi.x-k8s.io/v1",
            "SecretProviderClass",
            Some(&c.namespace),
            name,
        );
        m.rollback.push(Op::MergePatch {
            object: reference,
            patch: json!({"spec": {"parameters": {"usePodIdentity": found.use_pod_identity}}}),
        });
    }
    Ok(m)
}

/// `--remove-irsa` after a successful check: the annotation and the OIDC trust statement.
pub fn plan_remove_irsa(c: &Candidate, trust_after: &Value) -> Vec<Change> {
    let role = c
        .role_arn
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut changes = vec![
        Change::new(
            Action::Update,
            format!("ServiceAccount/{}/{}", c.namespace, c.service_account),
        )
        .op(Op::MergePatch {
            object: ObjectRef::new(
                "v1",
                "ServiceAccount",
                Some(&c.namespace),
                &c.service_account,
            ),
            patch: json!({"metadata": {"annotations": {IRSA_ROLE_ANNOTATION: null}}}),
        })
        .note(format!("removes the {IRSA_ROLE_ANNOTATION} annotation")),
    ];
    if let Some(trust) = trust_without_oidc(trust_after) {
        changes.push(
            Change::new(Action::Update, format!("IAM role {role} (trust)"))
                .op(Op::UpdateAssumeRolePolicy { role, trust })
                .note("removes the OIDC (IRSA) trust statement"),
        );
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc_trust() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.eks.us-west-2.amazonaws.com/id/ABC:sub": "system:serviceaccount:ns:app"}}}]})
    }

    const SCOPE: TrustScope<'static> = TrustScope {
        account: "123",
        cluster: "demo",
        namespace: "ns",
        service_account: "app",
    };

    #[test]
    fn the_pod_identity_statement_is_added_and_the_oidc_one_kept() {
        let merged = trust_with_pod_identity(&oidc_trust(), &SCOPE).expect("added");
        let st = merged["Statement"].as_array().expect("list");
        assert_eq!(st.len(), 2);
        assert_eq!(
            st[0],
            oidc_trust()["Statement"][0],
            "the IRSA statement is kept as is"
        );
        assert_eq!(st[1]["Principal"]["Service"], "pods.eks.amazonaws.com");
        assert!(
            trust_with_pod_identity(&merged, &SCOPE).is_none(),
            "idempotent"
        );
        let without = trust_without_oidc(&merged).expect("removed");
        assert_eq!(without["Statement"].as_array().map(Vec::len), Some(1));
        assert!(trust_without_oidc(&without).is_none());
    }

    fn scan(pods: Vec<FoundPod>, role: &str) -> Scan {
        Scan {
            annotated: [(("ns".to_string(), "app".to_string()), role.to_string())]
                .into_iter()
                .collect(),
            spcs: vec![FoundSpc {
                namespace: "ns".into(),
                name: "db".into(),
                use_pod_identity: None,
                files: vec!["db".into()],
            }],
            pods,
        }
    }

    fn pod(sa: &str, node_problem: Option<&str>) -> FoundPod {
        FoundPod {
            namespace: "ns".into(),
            name: format!("p-{sa}"),
            service_account: sa.into(),
            spcs: vec!["db".into()],
            node_problem: node_problem.map(str::to_string),
        }
    }

    #[test]
    fn what_cannot_be_migrated_is_listed_with_the_reason() {
        let ok = candidates(
            &scan(vec![pod("app", None)], "arn:aws:iam::123:role/r"),
            "123",
            None,
        );
        assert_eq!(ok.len(), 1);
        assert!(ok[0].cannot.is_none(), "{ok:?}");
        let fargate = candidates(
            &scan(
                vec![pod("app", Some("Fargate node f-1"))],
                "arn:aws:iam::123:role/r",
            ),
            "123",
            None,
        );
        assert!(
            fargate[0]
                .cannot
                .as_deref()
                .is_some_and(|c| c.contains("Fargate"))
        );
        let foreign = candidates(
            &scan(vec![pod("app", None)], "arn:aws:iam::999:role/r"),
            "123",
            None,
        );
        assert!(
            foreign[0]
                .cannot
                .as_deref()
                .is_some_and(|c| c.contains("another account"))
        );
        let mut shared = scan(
            vec![pod("app", None), pod("other", None)],
            "arn:aws:iam::123:role/r",
        );
        shared.annotated.insert(
            ("ns".into(), "other".into()),
            "arn:aws:iam::123:role/other".into(),
        );
        let found = candidates(&shared, "123", None);
        assert!(
            found.iter().all(|c| c
                .cannot
                .as_deref()
                .is_some_and(|r| r.contains("different roles"))),
            "{found:?}"
        );
        assert!(
            candidates(
                &scan(vec![pod("app", None)], "arn:aws:iam::123:role/r"),
                "123",
                Some("elsewhere")
            )
            .is_empty()
        );
    }

    #[test]
    fn a_plan_sets_only_use_pod_identity_and_knows_how_to_undo() {
        let c = &candidates(
            &scan(vec![pod("app", None)], "arn:aws:iam::123:role/r"),
            "123",
            None,
        )[0];
        let spcs = scan(vec![], "x").spcs;
        let m = plan(c, "demo", "123", &oidc_trust(), None, &spcs).expect("plans");
        let lines: Vec<String> = m.changes.iter().flat_map(|c| c.calls.clone()).collect();
        assert!(lines[0].starts_with("iam:UpdateAssumeRolePolicy RoleName=r"));
        assert!(lines[1].starts_with("eks:CreatePodIdentityAssociation"));
        assert!(lines[2].contains("SecretProviderClass/ns/db"));
        let Op::Apply { object } = &m.changes[2].ops[0] else {
            panic!("apply")
        };
        assert_eq!(
            object["spec"],
            json!({"parameters": {"usePodIdentity": "true"}}),
            "one field only"
        );
        assert_eq!(m.rollback.len(), 2, "trust and SPC are restored on failure");
        let other = LiveAssociation {
            id: "a".into(),
            namespace: "ns".into(),
            service_account: "app".into(),
            role_arn: "arn:aws:iam::123:role/else".into(),
            target_role_arn: None,
            owned: false,
        };
        assert!(plan(c, "demo", "123", &oidc_trust(), Some(&other), &spcs).is_err());
    }
}
