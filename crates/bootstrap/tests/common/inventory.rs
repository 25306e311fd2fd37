//! What bootstrap owns on the environment's cluster, read independently of bootstrap's own
//! discovery: IAM roles, associations, add-ons and secrets by their tags, Kubernetes objects by
//! their managed-by label.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

const AGENT: &str = "eks-pod-identity-agent";

/// The kinds bootstrap labels `app.kubernetes.io/managed-by=bootstrap`, by API group (all `v1`).
const LABELLED_KINDS: &[(&str, &[&str])] = &[
    ("", &["Pod", "ServiceAccount", "Namespace"]),
    ("secrets-store.csi.x-k8s.io", &["SecretProviderClass"]),
    ("apps", &["DaemonSet", "Deployment"]),
    ("coordination.k8s.io", &["Lease"]),
    (
        "rbac.authorization.k8s.io",
        &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"],
    ),
    ("storage.k8s.io", &["CSIDriver"]),
    ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
];

/// What bootstrap owns for `cluster`, read independently of bootstrap's own discovery.
pub async fn owned_inventory(
    cfg: &aws_config::SdkConfig,
    kube: &kube::Client,
    cluster: &str,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ours = |tags: &[(String, String)]| {
        tags.iter()
            .any(|(k, v)| k == "bootstrap.podid/managed-by" && v == "bootstrap")
            && tags
                .iter()
                .any(|(k, v)| k == "bootstrap.podid/cluster" && v == cluster)
    };
    let iam = aws_sdk_iam::Client::new(cfg);
    let mut roles = Vec::new();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        roles.extend(page.expect("list roles").roles().to_vec());
    }
    for role in &roles {
        if ours(&role_tags(&iam, role.role_name()).await) {
            found.insert(format!("iam role {}", role.role_name()));
        }
    }
    // Customer managed policies (the controller's permissions boundary).
    let mut pages = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for p in page.expect("list policies").policies() {
            let arn = p.arn().unwrap_or_default();
            let tags: Vec<(String, String)> = iam
                .list_policy_tags()
                .policy_arn(arn)
                .send()
                .await
                .map(|t| {
                    t.tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if ours(&tags) {
                found.insert(format!("iam policy {arn}"));
            }
        }
    }
    let eks = aws_sdk_eks::Client::new(cfg);
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .send()
        .await
        .expect("list associations");
    for a in listed.associations() {
        let d = eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(a.association_id().unwrap_or_default())
            .send()
            .await
            .expect("describe association");
        let tags = tag_pairs(d.association().and_then(|a| a.tags()));
        if ours(&tags) {
            found.insert(format!(
                "association {}/{}",
                a.namespace().unwrap_or_default(),
                a.service_account().unwrap_or_default()
            ));
        }
    }
    for addon in [AGENT, "aws-secrets-store-csi-driver-provider"] {
        if let Some(described) = described_addon(&eks, cluster, addon).await {
            let tags = tag_pairs(described.tags());
            if ours(&tags) {
                found.insert(format!("addon {addon}"));
            }
        }
    }
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    let secrets = sm.list_secrets().send().await.expect("list secrets");
    for s in secrets.secret_list() {
        let tags: Vec<(String, String)> = s
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_string(),
                    t.value().unwrap_or("").to_string(),
                )
            })
            .collect();
        if ours(&tags) {
            found.insert(format!("secret {}", s.name().unwrap_or_default()));
        }
    }
    let labelled = ListParams::default().labels("app.kubernetes.io/managed-by=bootstrap");
    for (group, kind) in LABELLED_KINDS
        .iter()
        .flat_map(|(group, kinds)| kinds.iter().map(move |kind| (*group, *kind)))
    {
        // Every kind's plural is the regular one that `from_gvk` derives.
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        let api: Api<DynamicObject> = Api::all_with(kube.clone(), &ar);
        if let Ok(list) = api.list(&labelled).await {
            for item in list.items {
                // Terminating objects are on their way out.
                if item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ns = item
                    .metadata
                    .namespace
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default();
                found.insert(format!(
                    "{kind}/{ns}{}",
                    item.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    found
}

/// Add-on `name` of `cluster` as DescribeAddon answers, or None when it fails (no such add-on).
async fn described_addon(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Option<aws_sdk_eks::types::Addon> {
    let described = eks.describe_addon().cluster_name(cluster).addon_name(name);
    described.send().await.ok()?.addon
}

/// An EKS resource's tags (none when it has no tag map), as (key, value) pairs.
fn tag_pairs(tags: Option<&std::collections::HashMap<String, String>>) -> Vec<(String, String)> {
    let tags = tags.into_iter().flatten();
    tags.map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The tags of IAM role `name`, as (key, value) pairs.
pub async fn role_tags(iam: &aws_sdk_iam::Client, name: &str) -> Vec<(String, String)> {
    let role = super::role(iam, name).await;
    let role = role.unwrap_or_else(|| panic!("GetRole {name}: no such role"));
    role.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The items of [`owned_inventory`] that are not the platform's: the workloads.
pub async fn owned_workloads(
    cfg: &aws_config::SdkConfig,
    kube: &kube::Client,
    cluster: &str,
) -> Vec<String> {
    let owned = owned_inventory(cfg, kube, cluster).await;
    owned.into_iter().filter(|i| !platform_item(i)).collect()
}

/// Whether an item of [`owned_inventory`] is the platform's (driver, CRDs, provider, add-ons),
/// which `down --workloads-only` keeps: shared by every test of the environment, whose CSI
/// driver keeps its CRDs for the tests that run after.
pub fn platform_item(item: &str) -> bool {
    item.starts_with("CustomResourceDefinition/")
        || item.starts_with("CSIDriver/")
        || item.starts_with("addon ")
        || item.contains("kube-system/")
        || item.contains("secretprovider")
        || item.contains("aws-csi-provider")
        || item.contains("secrets-store-csi-driver")
}

/// The agent add-on as someone else installed it (no bootstrap tags), ACTIVE.
pub async fn foreign_agent_addon(eks: &aws_sdk_eks::Client, cluster: &str) {
    if let Some(agent) = described_addon(eks, cluster, AGENT).await {
        let owned = agent
            .tags()
            .is_some_and(|t| t.contains_key("bootstrap.podid/managed-by"));
        if !owned {
            return;
        }
        no_agent_addon(eks, cluster).await;
    }
    eks.create_addon()
        .cluster_name(cluster)
        .addon_name(AGENT)
        .send()
        .await
        .expect("create the pre-existing add-on");
}

/// No agent add-on at all (so that `up` creates its own).
pub async fn no_agent_addon(eks: &aws_sdk_eks::Client, cluster: &str) {
    if described_addon(eks, cluster, AGENT).await.is_none() {
        return;
    }
    eks.delete_addon()
        .cluster_name(cluster)
        .addon_name(AGENT)
        .send()
        .await
        .expect("delete the agent add-on");
    let deadline = Instant::now() + Duration::from_secs(60);
    while described_addon(eks, cluster, AGENT).await.is_some() {
        assert!(Instant::now() < deadline, "add-on deletion timed out");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
