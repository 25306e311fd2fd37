//! Doctor's gathering: the platform, the classes and their pods first; then the service
//! accounts those classes serve, their associations and roles (trust and every policy), and
//! the objects the classes name (metadata only: DescribeSecret, DescribeParameters — never a
//! value). Read-only; every failure becomes the [`Seen`] error of what it was reading.

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::aws::policy::decode_document;
use crate::aws::{Clients, ErrorKind, classify};
use crate::diagnose::checks::platform::SYNC_ROLE;
use crate::diagnose::checks::workloads::{self, Served};
use crate::diagnose::facts::{
    AddonFacts, AssociationFacts, Component, CsiDriverFacts, DaemonSetFacts, NodeFacts, ObjectKey,
    PodMountFacts, RoleFacts, Seen, ServiceAccountFacts, Snapshot, SpcFacts, WorkloadPod,
};
use crate::diagnose::iam::NamedPolicy;
use crate::diagnose::spc::{self, ObjectKind};
use crate::render::csi_driver::DRIVER_NAME;
use crate::resources::platform::{AGENT_ADDON, PROVIDER_ADDON};
use crate::target::Target;
use bootstrap_common::names::{IRSA_ROLE_ANNOTATION, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

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

fn aws_problem(e: &crate::aws::AwsError) -> String {
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
    s.namespace = namespace.map(str::to_string);
    let (agent, provider, issuer, fargate, nodes, daemonsets, csidriver, sync_role, spcs, pods) = tokio::join!(
        addon(aws, cluster, AGENT_ADDON),
        addon(aws, cluster, PROVIDER_ADDON),
        oidc_issuer(aws, cluster),
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
    s.oidc_issuer = issuer;
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
            let found = crate::resources::association::observe(aws, cluster_ref, &ns, &sa)
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
                let name = crate::resources::role::role_name(&s.cluster, &key.0, &key.1);
                arns.insert(crate::resources::role::role_arn(&s.account, &name));
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
        let found = role(aws, &arn).await;
        (arn, found)
    })
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<_>>();
    let object_keys = object_keys(s);
    let account = &account;
    let object_reads = futures::stream::iter(object_keys)
        .map(|key| async move {
            let found = object(aws, account, &key).await;
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

async fn addon(aws: &Clients, cluster: &str, name: &str) -> Seen<Option<AddonFacts>> {
    match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.addon().map(|a| AddonFacts {
            status: a
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "?".into()),
            version: a.addon_version().unwrap_or("?").to_string(),
            configuration: a.configuration_values().map(str::to_string),
        })),
        Err(e) => {
            let err = classify("describe", format!("EKS add-on {name}"), e);
            if err.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(aws_problem(&err))
            }
        }
    }
}

async fn oidc_issuer(aws: &Clients, cluster: &str) -> Option<String> {
    let out = aws.eks.describe_cluster().name(cluster).send().await.ok()?;
    out.cluster()?
        .identity()?
        .oidc()?
        .issuer()
        .map(str::to_string)
}

async fn fargate_namespaces(aws: &Clients, cluster: &str) -> Seen<Vec<String>> {
    let resource = format!("the Fargate profiles of EKS cluster {cluster}");
    let listed = aws
        .eks
        .list_fargate_profiles()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(|e| aws_problem(&classify("list", resource.clone(), e)))?;
    let mut namespaces = Vec::new();
    for name in listed.fargate_profile_names() {
        let out = aws
            .eks
            .describe_fargate_profile()
            .cluster_name(cluster)
            .fargate_profile_name(name)
            .send()
            .await
            .map_err(|e| {
                aws_problem(&classify("describe", format!("Fargate profile {name}"), e))
            })?;
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
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_problem("list nodes", &e))?;
    Ok(list.items.iter().map(NodeFacts::from_k8s).collect())
}

/// DaemonSets of the agent, the driver and the providers, each with its pods.
async fn list_daemonsets(kube: &kube::Client) -> Seen<Vec<DaemonSetFacts>> {
    let api: Api<DaemonSet> = Api::all(kube.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_problem("list DaemonSets", &e))?;
    let mut found = Vec::new();
    for ds in list.items {
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
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_problem(&format!("list the pods of DaemonSet {ns}/{name}"), &e))?;
        found.push(DaemonSetFacts::from_k8s(&ds, &listed.items));
    }
    Ok(found)
}

async fn csi_driver(kube: &kube::Client) -> Seen<Option<CsiDriverFacts>> {
    let api: Api<CSIDriver> = Api::all(kube.clone());
    let found = api
        .get_opt(DRIVER_NAME)
        .await
        .map_err(|e| kube_problem(&format!("read CSIDriver {DRIVER_NAME}"), &e))?;
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
    api.get_opt(name)
        .await
        .map(|r| r.is_some())
        .map_err(|e| kube_problem(&format!("read ClusterRole {name}"), &e))
}

async fn list_spcs(kube: &kube::Client) -> Seen<Vec<SpcFacts>> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses");
    let api: Api<DynamicObject> = Api::all_with(kube.clone(), &ar);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .map(|v| SpcFacts::from_value(&v))
            .collect()),
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
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_problem("list pods", &e))?;
    Ok(list
        .items
        .iter()
        .filter_map(WorkloadPod::from_k8s)
        .collect())
}

async fn pod_mount(kube: &kube::Client, ns: &str, name: &str) -> PodMountFacts {
    let api: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let found = api.get_opt(name).await.ok().flatten();
    let failed_mounts = super::warning_events(kube, ns, name, Some("FailedMount"))
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
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| kube_problem(&format!("read service account {ns}/{name}"), &e))?;
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
/// policies.
async fn role(aws: &Clients, arn: &str) -> Seen<Option<RoleFacts>> {
    let name = arn.rsplit('/').next().unwrap_or(arn).to_string();
    let got = match aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = classify("read", format!("IAM role {name}"), e);
            return if err.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(aws_problem(&err))
            };
        }
    };
    let mut facts = RoleFacts {
        name: name.clone(),
        trust: got
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .and_then(decode_document),
        ..RoleFacts::default()
    };
    let inline = aws
        .iam
        .list_role_policies()
        .role_name(&name)
        .send()
        .await
        .map_err(|e| {
            aws_problem(&classify(
                "list the inline policies of",
                format!("IAM role {name}"),
                e,
            ))
        })?;
    for policy in inline.policy_names() {
        match aws
            .iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => match decode_document(out.policy_document()) {
                Some(document) => facts.policies.push(NamedPolicy {
                    source: format!("inline policy {policy}"),
                    document,
                }),
                None => facts
                    .unread
                    .push(format!("inline policy {policy} (not JSON)")),
            },
            Err(e) => facts.unread.push(format!(
                "inline policy {policy} ({})",
                aws_problem(&classify("read", format!("inline policy {policy}"), e))
            )),
        }
    }
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(&name)
        .send()
        .await
        .map_err(|e| {
            aws_problem(&classify(
                "list the policies attached to",
                format!("IAM role {name}"),
                e,
            ))
        })?;
    for policy in attached.attached_policies() {
        let Some(policy_arn) = policy.policy_arn() else {
            continue;
        };
        match attached_document(aws, policy_arn).await {
            Ok(document) => facts.policies.push(NamedPolicy {
                source: format!("attached policy {policy_arn}"),
                document,
            }),
            Err(why) => facts
                .unread
                .push(format!("attached policy {policy_arn} ({why})")),
        }
    }
    Ok(Some(facts))
}

async fn attached_document(aws: &Clients, arn: &str) -> Result<serde_json::Value, String> {
    let policy = aws
        .iam
        .get_policy()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| aws_problem(&classify("read", format!("IAM policy {arn}"), e)))?;
    let version = policy
        .policy()
        .and_then(|p| p.default_version_id())
        .ok_or("no default version")?;
    let out = aws
        .iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(|e| {
            aws_problem(&classify(
                "read",
                format!("version {version} of IAM policy {arn}"),
                e,
            ))
        })?;
    out.policy_version()
        .and_then(|v| v.document())
        .and_then(decode_document)
        .ok_or_else(|| "its document is not JSON".into())
}

/// The ARN of an object (metadata only), `Ok(None)` when it does not exist.
async fn object(aws: &Clients, account: &str, key: &ObjectKey) -> Seen<Option<String>> {
    let (region, kind, name) = key;
    let config = aws
        .config
        .to_builder()
        .region(aws_config::Region::new(region.clone()))
        .build();
    match kind {
        ObjectKind::SecretsManager => {
            let client = if region == &aws.region {
                aws.secrets.clone()
            } else {
                aws_sdk_secretsmanager::Client::new(&config)
            };
            match client.describe_secret().secret_id(name).send().await {
                Ok(out) => Ok(Some(out.arn().unwrap_or(name).to_string())),
                Err(e) => {
                    let err = classify("describe", format!("secret {name} in {region}"), e);
                    if err.is(ErrorKind::NotFound) {
                        Ok(None)
                    } else {
                        Err(aws_problem(&err))
                    }
                }
            }
        }
        ObjectKind::SsmParameter => {
            let client = if region == &aws.region {
                aws.ssm.clone()
            } else {
                aws_sdk_ssm::Client::new(&config)
            };
            let bare = name
                .rsplit_once(":parameter")
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| name.clone());
            let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .values(&bare)
                .build()
                .map_err(|e| {
                    format!("failed to build the DescribeParameters filter for {name}: {e}")
                })?;
            let out = client
                .describe_parameters()
                .parameter_filters(filter)
                .send()
                .await
                .map_err(|e| {
                    aws_problem(&classify(
                        "describe",
                        format!("parameter {name} in {region}"),
                        e,
                    ))
                })?;
            Ok(out.parameters().first().map(|p| {
                p.arn()
                    .map(str::to_string)
                    .unwrap_or_else(|| spc::parameter_arn(region, account, &bare))
            }))
        }
    }
}
