//! Discovery for `down`: everything bootstrap owns on a cluster, read back from its AWS tags
//! and Kubernetes labels (no state file), and what must stay because it is not ours — foreign
//! objects in our namespaces, foreign SecretProviderClasses that the CRDs serve.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::addon::{self, AddonState};
use super::association::{self, LiveAssociation};
use super::namespace_scan;
use super::platform::{AGENT_ADDON, PROVIDER_ADDON};
use super::role::{self, LiveRole};
use super::secrets::{self, DemoState};
use crate::aws::{Clients, classify};
use crate::error::StepError;
use crate::kube::KubeError;
use crate::plan::ObjectRef;
use bootstrap_common::names::{
    LABEL_CLUSTER, LABEL_MANAGED_BY, MANAGED_BY_VALUE, POD_IDENTITY_PRINCIPAL, TAG_CLUSTER,
    TAG_MANAGED_BY,
};

/// The `app.kubernetes.io/name` of the platform's objects (driver and providers); anything
/// else bootstrap labels belongs to a workload.
pub const PLATFORM_COMPONENTS: [&str; 4] = [
    crate::render::csi_driver::DAEMONSET_NAME,
    crate::render::provider::PROVIDER_NAME,
    crate::render::provider_upstream::UPSTREAM_NAME,
    super::controller::NAME,
];

/// The kinds bootstrap creates, in the order `down` removes them.
pub const OWNED_KINDS: [(&str, &str, &str); 15] = [
    ("v1", "Pod", "pods"),
    (
        "secrets-store.csi.x-k8s.io/v1",
        "SecretProviderClass",
        "secretproviderclasses",
    ),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "Namespace", "namespaces"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("apps/v1", "Deployment", "deployments"),
    ("coordination.k8s.io/v1", "Lease", "leases"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
    ),
    ("storage.k8s.io/v1", "CSIDriver", "csidrivers"),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    ),
];

/// An object bootstrap labelled as its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnedObject {
    pub reference: ObjectRef,
    /// Its `app.kubernetes.io/name` label: which component it belongs to.
    pub component: String,
}

impl OwnedObject {
    /// Part of the driver or a provider (vs a workload's).
    pub fn platform(&self) -> bool {
        PLATFORM_COMPONENTS.contains(&self.component.as_str())
    }

    /// Part of the Secrets Store CSI Driver.
    pub fn driver(&self) -> bool {
        self.component == crate::render::csi_driver::DAEMONSET_NAME
    }

    /// Part of the controller `up --controller` installed.
    pub fn controller(&self) -> bool {
        self.component == super::controller::NAME
    }
}

/// Everything found on (and for) one cluster.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Roles tagged as bootstrap's for this cluster.
    pub roles: Vec<LiveRole>,
    /// Every association on the cluster (owned or not).
    pub associations: Vec<LiveAssociation>,
    pub addons: Vec<(String, AddonState)>,
    /// The demo secret's name, when bootstrap made it for this cluster.
    pub demo_secret: Option<String>,
    pub objects: Vec<OwnedObject>,
    /// For each owned namespace, the objects in it bootstrap does not own (`Kind/name`).
    pub foreign_in_namespace: BTreeMap<String, Vec<String>>,
    /// For each owned namespace, the kinds that could not be listed (with the error): what
    /// they hold is unknown, so the namespace stays.
    pub unknown_in_namespace: BTreeMap<String, Vec<String>>,
    /// SecretProviderClasses bootstrap does not own (`namespace/name`).
    pub foreign_spcs: Vec<(String, String)>,
    /// ECR repositories `bootstrap image push --cluster` created for this cluster.
    pub ecr_repositories: Vec<String>,
    /// The controller's permissions boundary (bootstrap's or not), when it exists.
    pub boundary: Option<super::boundary::LivePolicy>,
    /// TeamSecrets objects (`namespace/name`): teams' requests, which hold the controller's
    /// finalizer; `down` removes nothing they made while one exists.
    pub team_requests: Vec<(String, String)>,
    /// SecretAllowance objects: administrators' policy, which the CRD's deletion would delete.
    pub allowances: Vec<String>,
}

/// How many reads discovery runs at once (a cluster with a thousand teams has a thousand
/// associations and roles to read; one at a time, that took minutes).
const READS_AT_ONCE: usize = 16;

/// Reads the inventory, [`READS_AT_ONCE`] reads at a time. With `only_namespace` (`down
/// --namespace`), only that namespace's contents are scanned for what bootstrap did not make
/// (no other namespace is deleted); the platform and the AWS side are still read, the plan
/// filters.
pub async fn discover(
    aws: &Clients,
    kube: &kube::Client,
    cluster: &str,
    account: &str,
    only_namespace: Option<&str>,
) -> Result<Inventory, StepError> {
    let boundary_arn = super::boundary::arn_of(account, &super::boundary::name(cluster));
    let (roles, associations, addons, demo, objects, ecr_repositories) = tokio::try_join!(
        role_candidates(aws),
        associations(aws, cluster),
        addons(aws, cluster),
        secrets::observe_demo(Some(aws), cluster),
        owned_objects(kube, cluster),
        owned_ecr_repositories(aws, cluster),
    )?;
    let (boundary, team_requests, allowances) = tokio::try_join!(
        super::boundary::observe(aws, &boundary_arn, cluster),
        controller_objects(kube, "TeamSecrets", "teamsecrets"),
        controller_objects(kube, "SecretAllowance", "secretallowances"),
    )?;
    let roles = owned_roles(aws, cluster, roles, &associations).await?;
    let mut inventory = Inventory {
        roles,
        associations,
        addons,
        ecr_repositories,
        demo_secret: matches!(demo, DemoState::Present { owned: true })
            .then(|| secrets::demo_secret_name(cluster)),
        objects,
        boundary,
        team_requests,
        allowances: allowances.into_iter().map(|(_, name)| name).collect(),
        ..Inventory::default()
    };
    let namespaces: Vec<String> = inventory
        .objects
        .iter()
        .filter(|o| o.reference.kind == "Namespace")
        .map(|o| o.reference.name.clone())
        .filter(|ns| only_namespace.is_none_or(|only| only == ns))
        .collect();
    if !namespaces.is_empty() {
        let owned: BTreeSet<namespace_scan::Key> = inventory
            .objects
            .iter()
            .map(|o| namespace_scan::key_of(&o.reference))
            .collect();
        let (kinds, kinds_unknown) = namespace_scan::namespaced_kinds(kube).await;
        let (kinds, kinds_unknown, owned) = (&kinds, &kinds_unknown, &owned);
        let scanned: Vec<_> = stream::iter(namespaces)
            .map(|ns| async move {
                let contents = namespace_scan::scan(kube, kinds, kinds_unknown, &ns, owned).await;
                (ns, contents)
            })
            .buffered(READS_AT_ONCE)
            .collect()
            .await;
        for (ns, contents) in scanned {
            if !contents.unknown.is_empty() {
                inventory
                    .unknown_in_namespace
                    .insert(ns.clone(), contents.unknown);
            }
            inventory.foreign_in_namespace.insert(ns, contents.foreign);
        }
    }
    inventory.foreign_spcs = foreign_spcs(kube, cluster).await?;
    Ok(inventory)
}

/// ECR repositories tagged as bootstrap's for this cluster (`image push --cluster`). A caller
/// who may not list ECR has none to delete: that is not an error of `down`.
async fn owned_ecr_repositories(aws: &Clients, cluster: &str) -> Result<Vec<String>, StepError> {
    let mut repos = Vec::new();
    let mut pages = aws.ecr.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => repos.extend(page.repositories().iter().filter_map(|r| {
                Some((
                    r.repository_name()?.to_string(),
                    r.repository_arn()?.to_string(),
                ))
            })),
            Err(e) => {
                let e = classify("list", "the account's ECR repositories", e);
                if e.is(crate::aws::ErrorKind::AccessDenied) {
                    tracing::warn!("{e}: ECR repositories are not considered");
                    return Ok(Vec::new());
                }
                return Err(e.into());
            }
        }
    }
    let mut owned = Vec::new();
    for (name, arn) in repos {
        let tags = aws
            .ecr
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| classify("list the tags of", format!("ECR repository {name}"), e))?;
        let tag = |k: &str| {
            tags.tags()
                .iter()
                .find(|t| t.key() == k)
                .map(|t| t.value().to_string())
        };
        if tag(TAG_MANAGED_BY).as_deref() == Some(MANAGED_BY_VALUE)
            && tag(TAG_CLUSTER).as_deref() == Some(cluster)
        {
            owned.push(name);
        }
    }
    Ok(owned)
}

/// Every role of the account that may be a Pod Identity role: (name, ARN, whether its trust
/// names `pods.eks.amazonaws.com` or cannot be read).
async fn role_candidates(aws: &Clients) -> Result<Vec<(String, String, bool)>, StepError> {
    let mut found = Vec::new();
    let mut pages = aws.iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("list", "the account's IAM roles", e))?;
        found.extend(page.roles().iter().map(|r| {
            let pod_identity = r
                .assume_role_policy_document()
                .and_then(crate::aws::policy::decode_document)
                .is_none_or(|trust| trust.to_string().contains(POD_IDENTITY_PRINCIPAL));
            (r.role_name().to_string(), r.arn().to_string(), pod_identity)
        }));
    }
    Ok(found)
}

/// The roles bootstrap made for this cluster, found by their tags (never by their names):
/// among the roles that trust Pod Identity or that an association of the cluster names.
async fn owned_roles(
    aws: &Clients,
    cluster: &str,
    candidates: Vec<(String, String, bool)>,
    associations: &[LiveAssociation],
) -> Result<Vec<LiveRole>, StepError> {
    let named: BTreeSet<&str> = associations.iter().map(|a| a.role_arn.as_str()).collect();
    let observed: Vec<_> = stream::iter(candidates)
        .filter(|(_, arn, pod_identity)| {
            std::future::ready(*pod_identity || named.contains(arn.as_str()))
        })
        .map(|(name, _, _)| async move { role::observe(aws, &name, cluster, true).await })
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    let mut roles = Vec::new();
    for live in observed {
        if let Some(live) = live?
            && live.owned
        {
            roles.push(live);
        }
    }
    Ok(roles)
}

async fn associations(aws: &Clients, cluster: &str) -> Result<Vec<LiveAssociation>, StepError> {
    let mut ids = Vec::new();
    let mut pages = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            classify(
                "list the Pod Identity associations of",
                format!("EKS cluster {cluster}"),
                e,
            )
        })?;
        ids.extend(
            page.associations()
                .iter()
                .filter_map(|a| a.association_id().map(str::to_string)),
        );
    }
    let described: Vec<_> = stream::iter(ids)
        .map(|id| async move { association::describe(aws, cluster, &id).await })
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    let mut found = Vec::new();
    for live in described {
        if let Some(live) = live? {
            found.push(live);
        }
    }
    Ok(found)
}

async fn addons(aws: &Clients, cluster: &str) -> Result<Vec<(String, AddonState)>, StepError> {
    let mut found = Vec::new();
    for name in [AGENT_ADDON, PROVIDER_ADDON] {
        if let Some(state) = addon::describe(aws, cluster, name).await? {
            found.push((name.to_string(), state));
        }
    }
    Ok(found)
}

fn api(kube: &kube::Client, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Whether an object's labels make it bootstrap's for this cluster: `managed-by=bootstrap` and
/// `bootstrap.podid/cluster=<cluster>`; objects of earlier releases carry no cluster label and
/// count as ours by `managed-by` alone (the next `up` adds the label); one labelled for another
/// cluster is not ours.
pub fn labelled_ours(labels: Option<&BTreeMap<String, String>>, cluster: &str) -> bool {
    let Some(labels) = labels else { return false };
    labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(LABEL_CLUSTER).is_none_or(|c| c == cluster)
}

async fn owned_objects(kube: &kube::Client, cluster: &str) -> Result<Vec<OwnedObject>, StepError> {
    let selector = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"));
    let mut found = Vec::new();
    for (api_version, kind, plural) in OWNED_KINDS {
        let list = match api(kube, api_version, kind, plural).list(&selector).await {
            Ok(list) => list,
            // The CRDs are gone (or never came): no SecretProviderClass can exist.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(source) => {
                return Err(KubeError::Api {
                    action: "list",
                    resource: format!(
                        "{kind} objects labelled {LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"
                    ),
                    source,
                }
                .into());
            }
        };
        for item in list.items {
            if !labelled_ours(item.metadata.labels.as_ref(), cluster) {
                continue;
            }
            let component = item
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .cloned()
                .unwrap_or_default();
            found.push(OwnedObject {
                reference: ObjectRef::new(
                    api_version,
                    kind,
                    item.metadata.namespace.as_deref(),
                    item.metadata.name.as_deref().unwrap_or_default(),
                ),
                component,
            });
        }
    }
    Ok(found)
}

/// Every object of a kind (`namespace/name`; cluster-scoped: `""`) whose labels pass `keep`,
/// whoever made it. No CRD for the kind: none.
async fn every_object(
    kube: &kube::Client,
    (api_version, kind, plural): (&str, &str, &str),
    keep: impl Fn(Option<&BTreeMap<String, String>>) -> bool,
) -> Result<Vec<(String, String)>, StepError> {
    let list = match api(kube, api_version, kind, plural)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(source) => {
            return Err(KubeError::Api {
                action: "list",
                resource: format!("{kind} objects"),
                source,
            }
            .into());
        }
    };
    Ok(list
        .items
        .into_iter()
        .filter(|item| keep(item.metadata.labels.as_ref()))
        .map(|item| {
            (
                item.metadata.namespace.unwrap_or_default(),
                item.metadata.name.unwrap_or_default(),
            )
        })
        .collect())
}

/// Every object of one of the controller's kinds, whoever made it.
async fn controller_objects(
    kube: &kube::Client,
    kind: &str,
    plural: &str,
) -> Result<Vec<(String, String)>, StepError> {
    every_object(kube, ("bootstrap.podid/v1alpha1", kind, plural), |_| true).await
}

/// The SecretProviderClasses bootstrap did not make.
async fn foreign_spcs(
    kube: &kube::Client,
    cluster: &str,
) -> Result<Vec<(String, String)>, StepError> {
    every_object(kube, OWNED_KINDS[1], |labels| {
        !labelled_ours(labels, cluster)
    })
    .await
}
