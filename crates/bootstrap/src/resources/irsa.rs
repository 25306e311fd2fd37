//! IRSA workloads, found and planned for Pod Identity: service accounts annotated with an IAM
//! role, the `aws` SecretProviderClasses their workloads (pods, and the pod templates of
//! workload controllers) mount whose `usePodIdentity` is not "true", and the changes that move
//! them — a session-tag-scoped Pod Identity statement added to the role's trust (every other
//! statement kept), the association, and `usePodIdentity: "true"` set on each
//! SecretProviderClass by a server-side apply of that one field. `--remove-irsa` then removes
//! only this cluster's OIDC trust for the migrated service accounts, once no other annotated
//! service account of the cluster uses the role.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::association::{self, LiveAssociation};
use crate::aws::policy::TrustScope;
use crate::aws::{Clients, classify};
use crate::error::StepError;
use crate::plan::{Action, Change, ObjectRef, Op};
use crate::service_account::ServiceAccountRef;
use bootstrap_common::names::IRSA_ROLE_ANNOTATION;

#[path = "irsa_scan.rs"]
pub mod scan;
#[path = "irsa_trust.rs"]
pub mod trust;

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

/// A pod, or a workload controller's pod template, that mounts SecretProviderClasses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundWorkload {
    /// `Pod`, `Deployment`, `StatefulSet`, `DaemonSet`, `Job` or `CronJob`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub spcs: Vec<String>,
    /// Why its nodes cannot use Pod Identity (Fargate, Windows), if so.
    pub node_problem: Option<String>,
}

/// What a scan of the cluster found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// (namespace, service account) → the annotated role ARN, in every namespace.
    pub annotated: BTreeMap<(String, String), String>,
    pub spcs: Vec<FoundSpc>,
    pub workloads: Vec<FoundWorkload>,
}

/// One workload to migrate: a service account, its role, the SPCs its workloads mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(flatten)]
    pub service_account: ServiceAccountRef,
    pub role_arn: String,
    pub spcs: Vec<String>,
    /// The pods and workload controllers it was found through (`Deployment/web`).
    pub found_in: Vec<String>,
    /// Set when the migration cannot handle it: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot: Option<String>,
}

/// An annotated service account whose namespace holds `aws` SecretProviderClasses on IRSA
/// that no pod or workload controller found mounts with it: not migrated, listed with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Untied {
    #[serde(flatten)]
    pub service_account: ServiceAccountRef,
    pub role_arn: String,
    pub spcs: Vec<String>,
    pub reason: String,
}

/// Groups the scan into candidates: annotated service accounts whose workloads mount `aws`
/// SPCs. Workloads it cannot handle get the reason: workloads on Fargate or Windows nodes,
/// roles in another account, SPCs shared by service accounts of different roles.
pub fn candidates(scan: &Scan, account: &str, only_namespace: Option<&str>) -> Vec<Candidate> {
    let spc_names: BTreeSet<(String, String)> = scan
        .spcs
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    // Which roles use each SPC (through the service accounts of the workloads that mount it).
    let mut roles_of_spc: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for w in &scan.workloads {
        let role = scan
            .annotated
            .get(&(w.namespace.clone(), w.service_account.clone()))
            .cloned()
            .unwrap_or_else(|| format!("(no IRSA role: {})", w.service_account));
        for spc in &w.spcs {
            roles_of_spc
                .entry((w.namespace.clone(), spc.clone()))
                .or_default()
                .insert(role.clone());
        }
    }
    let mut out = Vec::new();
    for ((ns, sa), role_arn) in &scan.annotated {
        if only_namespace.is_some_and(|want| want != ns) {
            continue;
        }
        let mut users: Vec<&FoundWorkload> = scan
            .workloads
            .iter()
            .filter(|w| &w.namespace == ns && &w.service_account == sa)
            .filter(|w| {
                w.spcs
                    .iter()
                    .any(|s| spc_names.contains(&(ns.clone(), s.clone())))
            })
            .collect();
        users.sort_by_key(|w| (w.kind, w.name.clone()));
        let spcs: BTreeSet<String> = users
            .iter()
            .flat_map(|w| w.spcs.iter().cloned())
            .filter(|s| spc_names.contains(&(ns.clone(), s.clone())))
            .collect();
        if spcs.is_empty() {
            continue;
        }
        let mut cannot = None;
        if let Some(w) = users.iter().find(|w| w.node_problem.is_some()) {
            cannot = Some(format!(
                "{} {}/{} runs on {}: EKS Pod Identity does not work there",
                w.kind,
                w.namespace,
                w.name,
                w.node_problem.clone().unwrap_or_default()
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
        let mut found_in: Vec<String> = users
            .iter()
            .map(|w| format!("{}/{}", w.kind, w.name))
            .collect();
        found_in.dedup();
        out.push(Candidate {
            service_account: ServiceAccountRef::new(ns, sa),
            role_arn: role_arn.clone(),
            spcs: spcs.into_iter().collect(),
            found_in,
            cannot,
        });
    }
    out
}

/// Annotated service accounts that are no candidate although their namespace holds `aws`
/// SecretProviderClasses on IRSA that no found workload mounts: bootstrap cannot tell which
/// service account those classes are for, so it migrates none of them and says why.
pub fn untied(scan: &Scan, only_namespace: Option<&str>) -> Vec<Untied> {
    let candidates: BTreeSet<ServiceAccountRef> = candidates(scan, "", only_namespace)
        .into_iter()
        .map(|c| c.service_account)
        .collect();
    let mounted: BTreeSet<(&str, &str)> = scan
        .workloads
        .iter()
        .flat_map(|w| w.spcs.iter().map(|s| (w.namespace.as_str(), s.as_str())))
        .collect();
    let mut out = Vec::new();
    for ((ns, sa), role_arn) in &scan.annotated {
        if only_namespace.is_some_and(|want| want != ns)
            || candidates.contains(&ServiceAccountRef::new(ns, sa))
        {
            continue;
        }
        let spcs: Vec<String> = scan
            .spcs
            .iter()
            .filter(|s| &s.namespace == ns && !s.uses_pod_identity())
            .filter(|s| !mounted.contains(&(ns.as_str(), s.name.as_str())))
            .map(|s| s.name.clone())
            .collect();
        if spcs.is_empty() {
            continue;
        }
        out.push(Untied {
            service_account: ServiceAccountRef::new(ns, sa),
            role_arn: role_arn.clone(),
            reason: format!(
                "no pod, Deployment, StatefulSet, DaemonSet, Job or CronJob in {ns} mounts {} with service account {sa}: \
                 not migrated; mount it from a workload of that service account (or set usePodIdentity: \"true\" and create the association by hand)",
                spcs.join(", ")
            ),
            spcs,
        });
    }
    out
}

/// The other annotated service accounts of this cluster (any namespace) whose annotation
/// names `role_arn`, as `namespace/name`, leaving out `except` (the migrated one and those
/// whose annotation this run removed). Role ARNs compare ignoring case (IAM role names are
/// unique regardless of case), so a differently spelled annotation still counts as a user.
pub fn other_irsa_users(
    scan: &Scan,
    role_arn: &str,
    except: &BTreeSet<(String, String)>,
) -> Vec<String> {
    scan.annotated
        .iter()
        .filter(|(key, role)| role.eq_ignore_ascii_case(role_arn) && !except.contains(key))
        .map(|((ns, sa), _)| format!("{ns}/{sa}"))
        .collect()
}

/// The cluster's OIDC issuer URL (DescribeCluster), `None` when it has none.
pub async fn oidc_issuer(aws: &Clients, cluster: &str) -> Result<Option<String>, StepError> {
    let out = aws
        .eks
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| classify("describe", format!("EKS cluster {cluster}"), e))?;
    Ok(out
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .map(str::to_string))
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

fn role_name(role_arn: &str) -> String {
    role_arn.rsplit('/').next().unwrap_or_default().to_string()
}

/// The cluster a migration is for: name, ARN (pinned in the trust) and account.
#[derive(Debug, Clone, Copy)]
pub struct ClusterRef<'a> {
    pub name: &'a str,
    pub arn: &'a str,
    pub account: &'a str,
}

/// Plans a candidate's move (pure): `trust` is the role's live trust policy, `live` its
/// association if any, `spcs` the found SPCs.
pub fn plan(
    c: &Candidate,
    cluster: ClusterRef<'_>,
    trust: &Value,
    live: Option<&LiveAssociation>,
    spcs: &[FoundSpc],
) -> Result<Migration, String> {
    let role = role_name(&c.role_arn);
    let scope = TrustScope {
        account: cluster.account,
        cluster: cluster.name,
        cluster_arn: cluster.arn,
        namespace: &c.service_account.namespace,
        service_account: &c.service_account.name,
    };
    let mut m = Migration::default();
    match trust::with_pod_identity(trust, &scope) {
        Some((merged, note)) => {
            m.changes.push(
                Change::new(Action::Update, format!("IAM role {role} (trust)"))
                    .op(Op::UpdateAssumeRolePolicy {
                        role: role.clone(),
                        trust: merged,
                    })
                    .note(note),
            );
            m.rollback.push(Op::UpdateAssumeRolePolicy {
                role: role.clone(),
                trust: trust.clone(),
            });
        }
        None => m.changes.push(
            Change::new(Action::Unchanged, format!("IAM role {role} (trust)")).note(format!(
                "already trusts pods.eks.amazonaws.com for {} on this cluster (name and ARN)",
                c.service_account
            )),
        ),
    }
    match live {
        Some(a) if a.role_arn == c.role_arn => m.changes.push(
            Change::new(
                Action::Unchanged,
                format!("Pod Identity association {}", c.service_account),
            )
            .note(format!("id {}", a.id)),
        ),
        Some(a) => {
            return Err(format!(
                "service account {} is already associated with another role ({}) than its IRSA role",
                c.service_account, a.role_arn
            ));
        }
        None => {
            let change = association::plan(
                cluster.name,
                &c.service_account.namespace,
                &c.service_account.name,
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
            .find(|s| s.namespace == c.service_account.namespace && &s.name == name);
        let Some(found) = found else { continue };
        let resource = format!("SecretProviderClass/{}/{name}", c.service_account.namespace);
        if found.uses_pod_identity() {
            m.changes.push(
                Change::new(Action::Unchanged, resource).note("usePodIdentity is already true"),
            );
            continue;
        }
        m.changes.push(
            Change::new(Action::Update, resource)
                .op(Op::Apply {
                    object: spc_use_pod_identity(&c.service_account.namespace, name),
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
            Some(&c.service_account.namespace),
            name,
        );
        m.rollback.push(Op::MergePatch {
            object: reference,
            patch: json!({"spec": {"parameters": {"usePodIdentity": found.use_pod_identity}}}),
        });
    }
    Ok(m)
}

/// What `--remove-irsa` may remove from the role's trust, decided by the caller from the
/// cluster: this cluster's OIDC provider, the other annotated users of the role, and the
/// service accounts (this one, and earlier migrated ones) whose `:sub` may go.
#[derive(Debug, Clone, Default)]
pub struct IrsaRemoval {
    /// This cluster's OIDC provider ARN; `None`: the cluster has no issuer.
    pub provider: Option<String>,
    /// Other annotated service accounts of the cluster that use the role (`ns/name`).
    pub others: Vec<String>,
    /// `system:serviceaccount:<ns>:<sa>` values to remove.
    pub subs: Vec<String>,
}

/// `--remove-irsa` after a successful check: the annotation, and this cluster's OIDC trust
/// for the migrated service accounts once no other annotated service account uses the role.
pub fn plan_remove_irsa(c: &Candidate, trust_after: &Value, r: &IrsaRemoval) -> Vec<Change> {
    let role = role_name(&c.role_arn);
    let mut changes = vec![
        Change::new(
            Action::Update,
            format!("ServiceAccount/{}", c.service_account),
        )
        .op(Op::MergePatch {
            object: ObjectRef::new(
                "v1",
                "ServiceAccount",
                Some(&c.service_account.namespace),
                &c.service_account.name,
            ),
            patch: json!({"metadata": {"annotations": {IRSA_ROLE_ANNOTATION: null}}}),
        })
        .note(format!("removes the {IRSA_ROLE_ANNOTATION} annotation")),
    ];
    let resource = format!("IAM role {role} (trust)");
    let provider = match (&r.provider, r.others.is_empty()) {
        (_, false) => {
            changes.push(Change::new(Action::Unchanged, resource).note(format!(
                "keeps this cluster's OIDC trust: {} still use the role through IRSA; it is removed with the last of them",
                r.others.join(", ")
            )));
            return changes;
        }
        (None, true) => {
            changes.push(
                Change::new(Action::Unchanged, resource)
                    .note("the cluster reports no OIDC issuer: no OIDC statement is removed"),
            );
            return changes;
        }
        (Some(p), true) => p,
    };
    let removal = trust::without_oidc(trust_after, provider, &r.subs);
    let mut notes = Vec::new();
    if !removal.removed.is_empty() {
        notes.push(format!(
            "removes this cluster's OIDC trust: {}",
            removal.removed.join("; ")
        ));
    }
    if !removal.kept.is_empty() {
        notes.push(format!(
            "kept (not provably only for {}): {}",
            r.subs.join(", "),
            removal.kept.join("; ")
        ));
    }
    notes.push("other OIDC providers' statements (other clusters, CI) are kept".into());
    let change = match removal.trust {
        Some(trust) => {
            Change::new(Action::Update, resource).op(Op::UpdateAssumeRolePolicy { role, trust })
        }
        None => Change::new(Action::Unchanged, resource),
    };
    changes.push(change.note(notes.join("; ")));
    changes
}

#[cfg(test)]
#[path = "irsa_tests.rs"]
mod tests;
