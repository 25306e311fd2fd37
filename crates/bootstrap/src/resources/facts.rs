//! The readers with no resource of their own: what `doctor` and verification look at, read
//! into diagnose's facts (the cluster's add-ons, nodes, DaemonSets, CSIDriver, classes, pods,
//! events and service accounts). Roles, associations, add-ons and secrets are read by their
//! own modules' readers, the ones `up` and `down` use. Read-only; every failure becomes the
//! [`Seen`] error of what it was reading, so a rule never guesses.

use std::collections::BTreeSet;
use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::de::DeserializeOwned;

use super::{addon, association, role, secrets};
use crate::aws::{AwsError, Clients, classify};
use crate::diagnose::checks::platform::SYNC_ROLE;
use crate::diagnose::checks::workloads::{self, Served};
use crate::diagnose::facts::{
    AddonFacts, AssociationFacts, Component, CsiDriverFacts, DaemonSetFacts, NodeFacts, ObjectKey,
    PodMountFacts, RoleFacts, Seen, ServiceAccountFacts, Snapshot, SpcFacts, WorkloadPod,
};
use crate::diagnose::{Subject, VerifyFacts};
use crate::render::csi_driver::DRIVER_NAME;
use crate::target::Target;
use bootstrap_common::names::{
    AGENT_ADDON, IRSA_ROLE_ANNOTATION, LABEL_MANAGED_BY, MANAGED_BY_VALUE, PROVIDER_ADDON,
};

/// Calls made at once in the second round.
const CONCURRENCY: usize = 8;

/// What a failed Kubernetes read says: the action, then the API's answer.
pub fn kube_problem(action: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            format!("failed to {action}: {} {}: {}", s.code, s.reason, s.message)
        }
        other => format!("failed to {action}: {other}"),
    }
}

/// The object `name` of `api`, `None` when absent; a failure says it was reading `what`.
async fn read<K>(api: &Api<K>, name: &str, what: &str) -> Seen<Option<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| kube_problem(&format!("read {what}"), &e))
}

/// The objects of `api` that `params` select; a failure says it was listing `what`.
async fn list<K>(api: &Api<K>, params: &ListParams, what: &str) -> Seen<Vec<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.list(params)
        .await
        .map(|listed| listed.items)
        .map_err(|e| kube_problem(&format!("list {what}"), &e))
}

/// What a failed AWS read says: the error, then the service's answer.
pub fn problem(e: &AwsError) -> String {
    format!("{e}: {}", e.source)
}

/// Reads everything doctor's rules look at. `namespace` limits the classes and workloads;
/// `pod` (in `namespace`) adds its mount events.
pub async fn snapshot(
    t: &Target,
    aws: &Clients,
    kube: &kube::Client,
    namespace: Option<&str>,
    pod: Option<&str>,
) -> Snapshot {
    let cluster = t.name();
    let mut s = Snapshot::new(cluster, &t.region, &t.account);
    s.cluster_arn = t.cluster.arn.clone();
    s.auto_mode = t.cluster.auto_mode;
    s.oidc_issuer = t.cluster.oidc_issuer.clone();
    s.namespace = namespace.map(str::to_string);
    let (agent, provider, fargate, nodes, daemonsets, csidriver, sync_role, spcs, pods) = tokio::join!(
        addon_facts(aws, cluster, AGENT_ADDON),
        addon_facts(aws, cluster, PROVIDER_ADDON),
        fargate_namespaces(aws, cluster),
        list_nodes(kube),
        list_daemonsets(kube),
        csi_driver(kube),
        cluster_role_exists(kube, SYNC_ROLE),
        list_spcs(kube),
        workload_pods(kube, namespace),
    );
    s.agent_addon = agent;
    s.provider_addon = provider;
    s.fargate_namespaces = fargate;
    s.nodes = nodes;
    s.daemonsets = daemonsets;
    s.csidriver = csidriver;
    s.sync_role = sync_role;
    s.spcs = spcs;
    s.pods = pods;
    if let (Some(ns), Some(name)) = (namespace, pod) {
        s.pod = Some(pod_mount(kube, ns, name).await);
        // The pod's service account and class count even when no other pod mounts them.
        if let (Some(Some(p)), Ok(pods)) = (s.pod.as_ref().map(|f| f.pod.clone()), s.pods.as_mut())
            && !pods
                .iter()
                .any(|q| q.namespace == p.namespace && q.name == p.name)
        {
            pods.push(p);
        }
    }
    let served = workloads::served(&s);
    second_round(&mut s, aws, kube, &served).await;
    s
}

async fn second_round(s: &mut Snapshot, aws: &Clients, kube: &kube::Client, served: &[Served]) {
    let cluster = s.cluster.clone();
    let keys: Vec<(String, String)> = served
        .iter()
        .map(|w| (w.namespace.clone(), w.service_account.clone()))
        .collect();
    let sa_reads = futures::stream::iter(keys.clone())
        .map(|(ns, sa)| async move {
            let found = service_account(kube, &ns, &sa).await;
            ((ns, sa), found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let cluster_ref = &cluster;
    let association_reads = futures::stream::iter(keys)
        .map(|(ns, sa)| async move {
            let found = association::observe(aws, cluster_ref, &ns, &sa)
                .await
                .map(|a| {
                    a.map(|a| AssociationFacts {
                        role_arn: a.role_arn,
                        target_role_arn: a.target_role_arn,
                    })
                })
                .map_err(|e| e.to_string());
            ((ns, sa), found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let (sas, associations) = tokio::join!(sa_reads, association_reads);
    s.service_accounts = sas.into_iter().collect();
    s.associations = associations.into_iter().collect();

    let mut arns = BTreeSet::new();
    for (key, found) in &s.associations {
        match found {
            Ok(Some(a)) => {
                arns.insert(a.role_arn.clone());
                arns.extend(a.target_role_arn.clone());
            }
            Ok(None) => {
                // The role bootstrap would have made: the one to associate, if it exists.
                let name = role::role_name(&s.cluster, &key.0, &key.1);
                let arn = role::role_arn(&s.account, &name);
                arns.insert(arn.clone());
                s.bootstrap_roles.insert(key.clone(), arn);
            }
            Err(_) => {}
        }
    }
    for found in s.service_accounts.values() {
        if let Ok(Some(ServiceAccountFacts {
            role_arn: Some(arn),
        })) = found
        {
            arns.insert(arn.clone());
        }
    }
    let account = s.account.clone();
    let role_reads = futures::stream::iter(
        arns.into_iter()
            .filter(|a| a.split(':').nth(4) == Some(account.as_str())),
    )
    .map(|arn| async move {
        let found = role_facts(aws, cluster_ref, &arn).await;
        (arn, found)
    })
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<_>>();
    let object_keys = object_keys(s);
    let account = &account;
    let object_reads = futures::stream::iter(object_keys)
        .map(|key| async move {
            let found = secrets::object_arn(aws, account, &key).await;
            (key, found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let (roles, objects) = tokio::join!(role_reads, object_reads);
    s.roles = roles.into_iter().collect();
    s.objects = objects.into_iter().collect();
}

/// Every object the aws classes name, by region.
fn object_keys(s: &Snapshot) -> BTreeSet<ObjectKey> {
    let mut keys = BTreeSet::new();
    for class in workloads::aws_classes(s) {
        let region = workloads::region_of(s, class);
        for o in workloads::objects_of(class).unwrap_or_default() {
            keys.insert((region.clone(), o.kind, o.name));
        }
    }
    keys
}

async fn addon_facts(aws: &Clients, cluster: &str, name: &str) -> Seen<Option<AddonFacts>> {
    let found = addon::read(aws, cluster, name)
        .await
        .map_err(|e| problem(&e))?;
    Ok(found.map(|a| AddonFacts {
        status: a
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "?".into()),
        version: a.addon_version().unwrap_or("?").to_string(),
        configuration: a.configuration_values().map(str::to_string),
    }))
}

async fn fargate_namespaces(aws: &Clients, cluster: &str) -> Seen<Vec<String>> {
    let resource = format!("the Fargate profiles of EKS cluster {cluster}");
    let listed = aws
        .eks
        .list_fargate_profiles()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(|e| problem(&classify("list", resource.clone(), e)))?;
    let mut namespaces = Vec::new();
    for name in listed.fargate_profile_names() {
        let out = aws
            .eks
            .describe_fargate_profile()
            .cluster_name(cluster)
            .fargate_profile_name(name)
            .send()
            .await
            .map_err(|e| problem(&classify("describe", format!("Fargate profile {name}"), e)))?;
        if let Some(p) = out.fargate_profile() {
            namespaces.extend(
                p.selectors()
                    .iter()
                    .filter_map(|s| s.namespace().map(str::to_string)),
            );
        }
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

async fn list_nodes(kube: &kube::Client) -> Seen<Vec<NodeFacts>> {
    let api: Api<Node> = Api::all(kube.clone());
    let nodes = list(&api, &ListParams::default(), "nodes").await?;
    Ok(nodes.iter().map(NodeFacts::from_k8s).collect())
}

/// DaemonSets of the agent, the driver and the providers, each with its pods.
async fn list_daemonsets(kube: &kube::Client) -> Seen<Vec<DaemonSetFacts>> {
    let api: Api<DaemonSet> = Api::all(kube.clone());
    let mut found = Vec::new();
    for ds in list(&api, &ListParams::default(), "DaemonSets").await? {
        if DaemonSetFacts::from_k8s(&ds, &[]).component == Component::Other {
            continue;
        }
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let selector = ds
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &ns);
        let name = ds.metadata.name.clone().unwrap_or_default();
        let params = ListParams::default().labels(&selector);
        let what = format!("the pods of DaemonSet {ns}/{name}");
        let listed = list(&pods, &params, &what).await?;
        found.push(DaemonSetFacts::from_k8s(&ds, &listed));
    }
    Ok(found)
}

/// The Secrets Store CSI Driver's CSIDriver object.
pub async fn csi_driver(kube: &kube::Client) -> Seen<Option<CsiDriverFacts>> {
    let api: Api<CSIDriver> = Api::all(kube.clone());
    let found = read(&api, DRIVER_NAME, &format!("CSIDriver {DRIVER_NAME}")).await?;
    Ok(found.map(|d| CsiDriverFacts {
        audiences: d
            .spec
            .token_requests
            .iter()
            .flatten()
            .map(|t| t.audience.clone())
            .collect(),
        requires_republish: d.spec.requires_republish.unwrap_or(false),
        owned: d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .is_some_and(|v| v == MANAGED_BY_VALUE),
    }))
}

async fn cluster_role_exists(kube: &kube::Client, name: &str) -> Seen<bool> {
    let api: Api<ClusterRole> = Api::all(kube.clone());
    let found = read(&api, name, &format!("ClusterRole {name}")).await?;
    Ok(found.is_some())
}

fn spc_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses")
}

fn spc_facts(o: &DynamicObject) -> Option<SpcFacts> {
    serde_json::to_value(o)
        .ok()
        .map(|v| SpcFacts::from_value(&v))
}

/// One SecretProviderClass; `Ok(None)` when absent.
pub async fn spc(kube: &kube::Client, ns: &str, name: &str) -> Seen<Option<SpcFacts>> {
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), ns, &spc_resource());
    let found = read(&api, name, &format!("SecretProviderClass {ns}/{name}")).await?;
    Ok(found.as_ref().and_then(spc_facts))
}

async fn list_spcs(kube: &kube::Client) -> Seen<Vec<SpcFacts>> {
    let api: Api<DynamicObject> = Api::all_with(kube.clone(), &spc_resource());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items.iter().filter_map(spc_facts).collect()),
        // No CRD: no class can exist.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(kube_problem("list SecretProviderClasses", &e)),
    }
}

async fn workload_pods(kube: &kube::Client, namespace: Option<&str>) -> Seen<Vec<WorkloadPod>> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    };
    let pods = list(&api, &ListParams::default(), "pods").await?;
    Ok(pods.iter().filter_map(WorkloadPod::from_k8s).collect())
}

async fn pod_mount(kube: &kube::Client, ns: &str, name: &str) -> PodMountFacts {
    let api: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let found = api.get_opt(name).await.ok().flatten();
    let failed_mounts = warning_events(kube, ns, name, Some("FailedMount"))
        .await
        .unwrap_or_default();
    PodMountFacts {
        name: name.to_string(),
        phase: found
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone()),
        pod: found.as_ref().map(|p| {
            WorkloadPod::from_k8s(p).unwrap_or_else(|| WorkloadPod {
                namespace: ns.to_string(),
                name: name.to_string(),
                service_account: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into()),
                spcs: Vec::new(),
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            })
        }),
        failed_mounts,
    }
}

async fn service_account(
    kube: &kube::Client,
    ns: &str,
    name: &str,
) -> Seen<Option<ServiceAccountFacts>> {
    let api: Api<ServiceAccount> = Api::namespaced(kube.clone(), ns);
    let found = read(&api, name, &format!("service account {ns}/{name}")).await?;
    Ok(found.map(|sa| ServiceAccountFacts {
        role_arn: sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IRSA_ROLE_ANNOTATION))
            .cloned(),
    }))
}

/// A role with its trust policy, inline policies and the default versions of its attached
/// policies, by [`role::read`].
async fn role_facts(aws: &Clients, cluster: &str, arn: &str) -> Seen<Option<RoleFacts>> {
    let name = arn.rsplit('/').next().unwrap_or(arn);
    let found = role::read(aws, name, cluster, role::Depth::Permissions)
        .await
        .map_err(|e| problem(&e))?;
    Ok(found.map(|r| RoleFacts {
        name: r.name,
        trust: r.trust,
        policies: r.policies,
        unread: r.unread,
    }))
}

/// The pod's warnings with one `reason` (all when `None`), oldest first, without repeats.
pub async fn warning_events(
    kube: &kube::Client,
    ns: &str,
    pod: &str,
    reason: Option<&str>,
) -> Seen<Vec<String>> {
    let events: Api<Event> = Api::namespaced(kube.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let listed = list(&events, &params, &format!("the events of pod {ns}/{pod}")).await?;
    let mut found: Vec<(Option<String>, String)> = listed
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| reason.is_none_or(|r| e.reason.as_deref() == Some(r)))
        .filter_map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| {
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                });
            e.message.map(|m| (when, m))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut messages: Vec<String> = Vec::new();
    for (_, message) in found {
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// What a failed verification of `w`'s sample `pod` looks at, read by the same readers as
/// doctor's: the class's `usePodIdentity`, the association, the CSIDriver's audiences and the
/// pod's warnings. `None` where it could not be read (or without AWS access).
pub async fn verify_facts(
    aws: Option<&Clients>,
    kube: &kube::Client,
    w: Subject<'_>,
    pod: &str,
) -> VerifyFacts {
    let association = match aws {
        Some(aws) => association::exists(aws, w.cluster, w.namespace, w.service_account)
            .await
            .ok(),
        None => None,
    };
    VerifyFacts {
        use_pod_identity: spc(kube, w.namespace, w.spc)
            .await
            .ok()
            .flatten()
            .map(|c| c.parameter("usePodIdentity").map(str::to_string)),
        association,
        audiences: csi_driver(kube).await.ok().flatten().map(|d| d.audiences),
        warnings: warning_events(kube, w.namespace, pod, None)
            .await
            .unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "facts_mock_tests.rs"]
mod mock_tests;
