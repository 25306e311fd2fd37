//! The Secrets Store CSI Driver v1.6.0 objects: values, context and rendering.
//!
//! Values are Helm-style (camelCase) so a `--values` file can override image registry and tags,
//! tolerations, node selectors and resources; `templates/csi-driver/README.md` documents them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::{RenderError, render_all, templates};

/// The driver version these templates render.
pub const DRIVER_VERSION: &str = "v1.6.0";
/// The CSIDriver object's name (and the `driver:` of every secrets-store volume).
pub const DRIVER_NAME: &str = "secrets-store.csi.k8s.io";
/// The DaemonSet's name.
pub const DAEMONSET_NAME: &str = "secrets-store-csi-driver";
/// The audiences the CSIDriver must request tokens for, or no token reaches the AWS provider.
pub use bootstrap_common::names::AWS_TOKEN_AUDIENCES;
/// The CRDs the driver needs, in apply order.
pub const CRD_NAMES: [&str; 2] = [
    "secretproviderclasses.secrets-store.csi.x-k8s.io",
    "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io",
];

const TEMPLATES: [(&str, &str); 4] =
    templates!("csi-driver": "crds", "csidriver", "rbac", "daemonset");

/// A container image, split so that a private registry can replace only the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    pub repository: String,
    pub tag: String,
}

impl Image {
    fn new(repository: &str, tag: &str) -> Self {
        Self {
            repository: repository.into(),
            tag: tag.into(),
        }
    }

    /// `registry/repository:tag`, or `repository:tag` when the registry is empty.
    pub fn reference(&self, registry: &str) -> String {
        let registry = registry.trim_end_matches('/');
        if registry.is_empty() {
            format!("{}:{}", self.repository, self.tag)
        } else {
            format!("{registry}/{}:{}", self.repository, self.tag)
        }
    }
}

/// The three images of the driver DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DriverImages {
    pub driver: Image,
    pub registrar: Image,
    pub liveness_probe: Image,
}

impl Default for DriverImages {
    fn default() -> Self {
        Self {
            driver: Image::new("csi-secrets-store/driver", DRIVER_VERSION),
            registrar: Image::new("sig-storage/csi-node-driver-registrar", "v2.16.0"),
            liveness_probe: Image::new("sig-storage/livenessprobe", "v2.18.0"),
        }
    }
}

/// The rotation interval `--rotation` and `rotation.pollInterval` default to: kubelet's
/// re-publish period (its default `--sync-frequency`). Since driver v1.6.0 the interval is the
/// minimum age of a mount's content before a re-publish fetches again, so a longer one only
/// delays rotation (doctor warns about it).
pub const DEFAULT_ROTATION_INTERVAL: &str = "1m";

/// Secret rotation: `requiresRepublish` on the CSIDriver plus the driver's poll interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Rotation {
    pub enabled: bool,
    pub poll_interval: String,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_interval: DEFAULT_ROTATION_INTERVAL.into(),
        }
    }
}

/// Container resources per DaemonSet container (Kubernetes `ResourceRequirements` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DriverResources {
    pub driver: Value,
    pub registrar: Value,
    pub liveness_probe: Value,
}

impl Default for DriverResources {
    fn default() -> Self {
        let small =
            json!({"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "100Mi"}});
        Self {
            driver: json!({"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"memory": "200Mi"}}),
            registrar: small.clone(),
            liveness_probe: small,
        }
    }
}

/// Everything the CSI driver templates can be told (the `csiDriver:` section of `--values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CsiDriverValues {
    pub namespace: String,
    pub image_registry: String,
    pub images: DriverImages,
    pub image_pull_policy: String,
    pub image_pull_secrets: Vec<Value>,
    pub rotation: Rotation,
    pub sync_secrets: bool,
    pub kubelet_root_dir: String,
    pub providers_dir: String,
    pub additional_providers_dir: String,
    pub tolerations: Vec<Value>,
    pub node_selector: BTreeMap<String, String>,
    pub resources: DriverResources,
    pub priority_class_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub token_audiences: Vec<String>,
}

impl Default for CsiDriverValues {
    fn default() -> Self {
        Self {
            namespace: "kube-system".into(),
            image_registry: "registry.k8s.io".into(),
            images: DriverImages::default(),
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: Vec::new(),
            rotation: Rotation::default(),
            sync_secrets: false,
            kubelet_root_dir: "/var/lib/kubelet".into(),
            providers_dir: "/var/run/secrets-store-csi-providers".into(),
            additional_providers_dir: "/etc/kubernetes/secrets-store-csi-providers".into(),
            tolerations: vec![json!({"operator": "Exists"})],
            node_selector: BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]),
            resources: DriverResources::default(),
            priority_class_name: Some("system-node-critical".into()),
            labels: BTreeMap::new(),
            token_audiences: AWS_TOKEN_AUDIENCES.iter().map(|a| a.to_string()).collect(),
        }
    }
}

impl CsiDriverValues {
    fn validate(&self) -> Result<(), RenderError> {
        let invalid = |problem: String| RenderError::InvalidValues {
            renderer: "csi-driver",
            problem,
        };
        if !super::names::is_dns_label(&self.namespace) {
            return Err(invalid(format!(
                "namespace {:?} is not a valid Kubernetes namespace name",
                self.namespace
            )));
        }
        for audience in AWS_TOKEN_AUDIENCES {
            if !self.token_audiences.iter().any(|a| a == audience) {
                return Err(invalid(format!(
                    "tokenAudiences must include {audience}, or the AWS provider gets no token"
                )));
            }
        }
        for (what, dir) in [
            ("kubeletRootDir", &self.kubelet_root_dir),
            ("providersDir", &self.providers_dir),
            ("additionalProvidersDir", &self.additional_providers_dir),
        ] {
            if !dir.starts_with('/') || dir.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "{what} must be an absolute path, got {dir:?}"
                )));
            }
        }
        if self.rotation.enabled && self.rotation.poll_interval.trim().is_empty() {
            return Err(invalid("rotation.pollInterval must not be empty".into()));
        }
        Ok(())
    }

    fn context(&self) -> tera::Context {
        let labels = super::base_labels(DAEMONSET_NAME, &self.labels);
        let selector = BTreeMap::from([("app".to_string(), DAEMONSET_NAME.to_string())]);
        let mut pod_labels = labels.clone();
        pod_labels.extend(selector.clone());
        let mut admin = labels.clone();
        admin.insert(
            "rbac.authorization.k8s.io/aggregate-to-admin".into(),
            "true".into(),
        );
        admin.insert(
            "rbac.authorization.k8s.io/aggregate-to-edit".into(),
            "true".into(),
        );
        let mut view = labels.clone();
        view.insert(
            "rbac.authorization.k8s.io/aggregate-to-view".into(),
            "true".into(),
        );
        let registry = &self.image_registry;
        let mut ctx = tera::Context::new();
        ctx.insert("name", DAEMONSET_NAME);
        ctx.insert("driver_name", DRIVER_NAME);
        ctx.insert("service_account", DAEMONSET_NAME);
        ctx.insert("namespace", &self.namespace);
        ctx.insert("labels", &labels);
        ctx.insert("selector_labels", &selector);
        ctx.insert("pod_labels", &pod_labels);
        ctx.insert("aggregate_admin_labels", &admin);
        ctx.insert("aggregate_view_labels", &view);
        let images = &self.images;
        let reference = |image: &Image| image.reference(registry);
        ctx.insert(
            "images",
            &per_container(
                [&images.driver, &images.registrar, &images.liveness_probe].map(reference),
            ),
        );
        ctx.insert("image_pull_policy", &self.image_pull_policy);
        ctx.insert("image_pull_secrets", &self.image_pull_secrets);
        ctx.insert("rotation", &self.rotation);
        ctx.insert("sync_secrets", &self.sync_secrets);
        ctx.insert(
            "kubelet_root_dir",
            self.kubelet_root_dir.trim_end_matches('/'),
        );
        ctx.insert("providers_dir", &self.providers_dir);
        ctx.insert("additional_providers_dir", &self.additional_providers_dir);
        ctx.insert("tolerations", &self.tolerations);
        ctx.insert("node_selector", &self.node_selector);
        let resources = &self.resources;
        ctx.insert(
            "resources",
            &per_container([
                &resources.driver,
                &resources.registrar,
                &resources.liveness_probe,
            ]),
        );
        ctx.insert("priority_class_name", &self.priority_class_name);
        ctx.insert("token_audiences", &self.token_audiences);
        ctx.insert("healthz_port", &9808);
        ctx.insert("metrics_port", &8095);
        ctx
    }
}

/// Renders every driver object, CRDs first, then CSIDriver, RBAC and the DaemonSet.
pub fn render(values: &CsiDriverValues) -> Result<Vec<Value>, RenderError> {
    values.validate()?;
    render_all(&TEMPLATES, &values.context())
}

/// One value per container of the driver's pod (driver, registrar, liveness probe), keyed as
/// the templates read them.
fn per_container<T: Serialize>([driver, registrar, liveness_probe]: [T; 3]) -> Value {
    json!({"driver": driver, "registrar": registrar, "liveness_probe": liveness_probe})
}

#[cfg(test)]
#[path = "csi_driver_tests.rs"]
mod tests;
