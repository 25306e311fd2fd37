//! What doctor observed, as plain data. Each part is a [`Seen`]: read, or why it could not
//! be (no access, API error), so a rule never guesses. Kubernetes objects become facts through
//! pure conversions here, so the rules are tested with made-up observations.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Node, Pod, Volume};
use serde_json::Value;

use super::iam::NamedPolicy;
use super::spc::ObjectKind;
use crate::render::csi_driver::DRIVER_NAME;
use crate::render::metadata_label;
use crate::render::provider::PROVIDER_NAME;
use crate::render::provider_upstream::{DEFAULT_PROVIDERS_DIR, UPSTREAM_NAME};

/// An observation, or why it could not be made.
pub type Seen<T> = Result<T, String>;

/// The Pod Identity agent's DaemonSet (kube-system), as the add-on installs it.
pub const AGENT_DAEMONSET: &str = "eks-pod-identity-agent";
/// The DaemonSet the provider add-on installs.
pub const ADDON_PROVIDER_DAEMONSET: &str = "secrets-store-csi-driver-provider-aws";

/// An EKS add-on as DescribeAddon reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddonFacts {
    pub status: String,
    pub version: String,
    /// `configurationValues` (JSON or YAML), when set.
    pub configuration: Option<String>,
}

/// A node: its OS and EKS compute type (`fargate`, `hybrid`, `auto`, or none for EC2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeFacts {
    pub name: String,
    pub os: String,
    pub compute_type: Option<String>,
}

impl NodeFacts {
    pub fn from_k8s(node: &Node) -> Self {
        let label = |k: &str| metadata_label(&node.metadata, k).map(str::to_string);
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            os: label("kubernetes.io/os").unwrap_or_else(|| "linux".into()),
            compute_type: label("eks.amazonaws.com/compute-type"),
        }
    }

    pub fn fargate(&self) -> bool {
        self.compute_type.as_deref() == Some("fargate")
    }

    pub fn windows(&self) -> bool {
        self.os == "windows"
    }

    /// A Linux node the add-on's agent DaemonSet serves (not Fargate, hybrid or Auto Mode).
    pub fn linux_ec2(&self) -> bool {
        !self.windows()
            && !matches!(
                self.compute_type.as_deref(),
                Some("fargate" | "hybrid" | "auto")
            )
    }
}

/// What a DaemonSet is, for doctor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Component {
    Agent,
    Driver,
    /// bootstrap's Rust provider.
    OurProvider,
    /// The upstream Go provider's Helm chart (or bootstrap's `--provider upstream`).
    UpstreamProvider,
    /// The provider DaemonSet of the EKS add-on.
    AddonProvider,
    #[default]
    Other,
}

impl Component {
    pub fn is_provider(self) -> bool {
        matches!(
            self,
            Component::OurProvider | Component::UpstreamProvider | Component::AddonProvider
        )
    }
}

/// One pod of a DaemonSet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodOnNode {
    pub name: String,
    pub node: Option<String>,
    pub ready: bool,
}

/// A DaemonSet that matters to doctor, with its pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DaemonSetFacts {
    pub namespace: String,
    pub name: String,
    pub component: Component,
    /// The driver's image tag (driver DaemonSets only).
    pub version: Option<String>,
    /// The arguments of its containers, flattened.
    pub args: Vec<String>,
    /// Host directories of provider sockets: where the driver looks (its `--provider-volume`
    /// and additional paths) or where a provider creates `aws.sock`.
    pub socket_dirs: Vec<String>,
    pub pods: Vec<PodOnNode>,
}

impl DaemonSetFacts {
    /// The DaemonSet's facts, its pods taken from `pods` by owner.
    pub fn from_k8s(ds: &DaemonSet, pods: &[Pod]) -> Self {
        let namespace = ds.metadata.namespace.clone().unwrap_or_default();
        let name = ds.metadata.name.clone().unwrap_or_default();
        let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
        let volumes: &[Volume] = spec.and_then(|s| s.volumes.as_deref()).unwrap_or_default();
        let args: Vec<String> = containers
            .iter()
            .flat_map(|c| {
                c.command
                    .iter()
                    .flatten()
                    .chain(c.args.iter().flatten())
                    .cloned()
            })
            .collect();
        let images: Vec<&str> = containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .collect();
        let component = classify(&namespace, &name, &images, &args);
        let mut socket_dirs = Vec::new();
        let mut version = None;
        for c in containers {
            let own: Vec<String> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect();
            let mut dirs = flag_values(&own, "provider-volume");
            if component == Component::Driver {
                if dirs.is_empty() && !is_driver_container(c, &own) {
                    continue;
                }
                dirs.extend(
                    flag_values(&own, "additional-provider-volume-paths")
                        .iter()
                        .flat_map(|v| v.split(','))
                        .map(str::to_string),
                );
                version = c.image.as_deref().and_then(image_tag);
            } else if component.is_provider() && dirs.is_empty() {
                dirs.push(DEFAULT_PROVIDERS_DIR.to_string());
            }
            for dir in dirs.iter().filter(|d| !d.is_empty()) {
                let host = host_path(c, volumes, dir);
                if !socket_dirs.contains(&host) {
                    socket_dirs.push(host);
                }
            }
        }
        let uid = ds.metadata.uid.as_deref();
        let pods = pods
            .iter()
            .filter(|p| {
                p.metadata.owner_references.iter().flatten().any(|o| {
                    o.kind == "DaemonSet"
                        && (Some(o.uid.as_str()) == uid || uid.is_none() && o.name == name)
                })
            })
            .map(PodOnNode::from_k8s)
            .collect();
        Self {
            namespace,
            name,
            component,
            version,
            args,
            socket_dirs,
            pods,
        }
    }

    /// `namespace/name`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Nodes with a ready pod of this DaemonSet.
    pub fn ready_nodes(&self) -> Vec<&str> {
        self.pods
            .iter()
            .filter(|p| p.ready)
            .filter_map(|p| p.node.as_deref())
            .collect()
    }

    /// Whether a flag is on (`--flag`, `--flag=true`).
    pub fn flag_on(&self, flag: &str) -> bool {
        self.args.iter().any(|a| {
            let a = a.trim_start_matches('-');
            a == flag
                || a.strip_prefix(flag)
                    .is_some_and(|r| r == "=true" || r == "=1")
        })
    }
}

impl PodOnNode {
    pub fn from_k8s(pod: &Pod) -> Self {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            ready,
        }
    }
}

fn is_driver_container(c: &Container, args: &[String]) -> bool {
    c.name == "secrets-store" || args.iter().any(|a| a.starts_with("--nodeid"))
}

fn classify(namespace: &str, name: &str, images: &[&str], args: &[String]) -> Component {
    let image_has = |s: &str| images.iter().any(|i| i.contains(s));
    if name == AGENT_DAEMONSET && namespace == "kube-system" {
        Component::Agent
    } else if name == PROVIDER_NAME || image_has("/aws-csi-provider") {
        Component::OurProvider
    } else if name == UPSTREAM_NAME {
        Component::UpstreamProvider
    } else if name == ADDON_PROVIDER_DAEMONSET {
        Component::AddonProvider
    } else if image_has("secrets-store-csi-driver-provider-aws") {
        Component::UpstreamProvider
    } else if image_has("csi-secrets-store/driver")
        || args.iter().any(|a| a.starts_with("--nodeid"))
            && args.iter().any(|a| a.contains("provider-volume"))
    {
        Component::Driver
    } else {
        Component::Other
    }
}

/// The values of `--flag=value` / `--flag value` / `-flag=value`.
pub fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let bare = arg.trim_start_matches('-');
        if !arg.starts_with('-') {
            continue;
        }
        if let Some(value) = bare.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            found.push(value.to_string());
        } else if bare == flag
            && let Some(next) = it.next_if(|n| !n.starts_with('-'))
        {
            found.push(next.clone());
        }
    }
    found
}

/// The tag of an image reference (`repo:tag`, `repo:tag@sha256:…`); `None` without one.
pub fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag.to_string())
}

/// The host path behind a container path: the hostPath volume of the longest mount that
/// contains it, plus the rest; the container path itself when no hostPath backs it.
fn host_path(c: &Container, volumes: &[Volume], path: &str) -> String {
    let path = path.trim_end_matches('/');
    let best = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            let mp = m.mount_path.trim_end_matches('/');
            path == mp || path.starts_with(&format!("{mp}/"))
        })
        .max_by_key(|m| m.mount_path.len());
    let Some(mount) = best else {
        return path.to_string();
    };
    let Some(host) = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.host_path.as_ref())
    else {
        return path.to_string();
    };
    let rest = &path[mount.mount_path.trim_end_matches('/').len()..];
    format!("{}{rest}", host.path.trim_end_matches('/'))
}

/// The CSIDriver object of the Secrets Store CSI Driver.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsiDriverFacts {
    pub audiences: Vec<String>,
    pub requires_republish: bool,
    /// Labelled as bootstrap's.
    pub owned: bool,
}

/// A SecretProviderClass (any provider; rules look only at `aws`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpcFacts {
    pub namespace: String,
    pub name: String,
    pub provider: String,
    /// The parameters the provider reads (names and settings, never secret values).
    pub parameters: BTreeMap<String, String>,
    /// How many `secretObjects` (Kubernetes Secrets synced from the mount) it declares.
    pub secret_objects: usize,
    pub owned: bool,
}

impl SpcFacts {
    /// From the object as the API returns it.
    pub fn from_value(obj: &Value) -> Self {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let parameters = obj
            .pointer("/spec/parameters")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default();
        Self {
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            name: obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            provider: obj
                .pointer("/spec/provider")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            parameters,
            secret_objects: obj
                .pointer("/spec/secretObjects")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            owned: obj
                .pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                .and_then(Value::as_str)
                == Some("bootstrap"),
        }
    }

    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).map(String::as_str)
    }
}

/// A pod that mounts SecretProviderClasses through the driver.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadPod {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub spcs: Vec<String>,
    pub node: Option<String>,
}

impl WorkloadPod {
    /// `None` for a pod without a secrets-store CSI volume.
    pub fn from_k8s(pod: &Pod) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        let spcs: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.csi.as_ref())
            .filter(|csi| csi.driver == DRIVER_NAME)
            .filter_map(|csi| {
                csi.volume_attributes
                    .as_ref()
                    .and_then(|a| a.get("secretProviderClass"))
                    .cloned()
            })
            .collect();
        if spcs.is_empty() {
            return None;
        }
        Some(Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            service_account: spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            spcs,
            node: spec.node_name.clone(),
        })
    }
}

/// A service account: present, with its IRSA annotation if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceAccountFacts {
    pub role_arn: Option<String>,
}

/// The Pod Identity association of a service account.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssociationFacts {
    pub role_arn: String,
    pub target_role_arn: Option<String>,
}

/// An IAM role with its trust policy and every permission policy that could be read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleFacts {
    pub name: String,
    pub trust: Option<Value>,
    pub policies: Vec<NamedPolicy>,
    /// Policies that exist but could not be read, with the reason.
    pub unread: Vec<String>,
}

/// The pod named by `--pod`, with its FailedMount event messages (oldest first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodMountFacts {
    /// The name asked for.
    pub name: String,
    /// `None`: no such pod.
    pub pod: Option<WorkloadPod>,
    pub phase: Option<String>,
    pub failed_mounts: Vec<String>,
}

/// Key of a resolved object: region, kind, name as written in the class.
pub type ObjectKey = (String, ObjectKind, String);

/// Everything doctor read from the cluster and the account.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub cluster: String,
    pub cluster_arn: String,
    pub region: String,
    pub account: String,
    pub auto_mode: bool,
    pub oidc_issuer: Option<String>,
    /// `--namespace`, when given: only that namespace's classes and workloads.
    pub namespace: Option<String>,
    pub agent_addon: Seen<Option<AddonFacts>>,
    pub provider_addon: Seen<Option<AddonFacts>>,
    pub nodes: Seen<Vec<NodeFacts>>,
    /// DaemonSets classified as agent, driver or provider (others are dropped).
    pub daemonsets: Seen<Vec<DaemonSetFacts>>,
    pub csidriver: Seen<Option<CsiDriverFacts>>,
    /// Whether ClusterRole `secretprovidersyncing-role` exists.
    pub sync_role: Seen<bool>,
    pub spcs: Seen<Vec<SpcFacts>>,
    pub pods: Seen<Vec<WorkloadPod>>,
    /// Namespaces selected by Fargate profiles.
    pub fargate_namespaces: Seen<Vec<String>>,
    /// By `(namespace, name)`; `Ok(None)`: no such service account.
    pub service_accounts: BTreeMap<(String, String), Seen<Option<ServiceAccountFacts>>>,
    /// By `(namespace, name)`; `Ok(None)`: no association.
    pub associations: BTreeMap<(String, String), Seen<Option<AssociationFacts>>>,
    /// By role ARN; `Ok(None)`: no such role.
    pub roles: BTreeMap<String, Seen<Option<RoleFacts>>>,
    /// By `(namespace, name)` of a service account without an association: the ARN of the
    /// role bootstrap names for it (read into `roles`; the one to associate if it exists).
    pub bootstrap_roles: BTreeMap<(String, String), String>,
    /// The ARN of each object named in a class; `Ok(None)`: not found.
    pub objects: BTreeMap<ObjectKey, Seen<Option<String>>>,
    pub pod: Option<PodMountFacts>,
}

impl Snapshot {
    /// A snapshot of a cluster where everything was read and nothing was found.
    pub fn new(cluster: &str, region: &str, account: &str) -> Self {
        Self {
            cluster: cluster.into(),
            cluster_arn: format!("arn:aws:eks:{region}:{account}:cluster/{cluster}"),
            region: region.into(),
            account: account.into(),
            auto_mode: false,
            oidc_issuer: None,
            namespace: None,
            agent_addon: Ok(None),
            provider_addon: Ok(None),
            nodes: Ok(Vec::new()),
            daemonsets: Ok(Vec::new()),
            csidriver: Ok(None),
            sync_role: Ok(false),
            spcs: Ok(Vec::new()),
            pods: Ok(Vec::new()),
            fargate_namespaces: Ok(Vec::new()),
            service_accounts: BTreeMap::new(),
            associations: BTreeMap::new(),
            roles: BTreeMap::new(),
            bootstrap_roles: BTreeMap::new(),
            objects: BTreeMap::new(),
            pod: None,
        }
    }
}

#[cfg(test)]
#[path = "facts_tests.rs"]
mod tests;
