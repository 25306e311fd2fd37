//! The upstream AWS provider (aws/secrets-store-csi-driver-provider-aws 3.1.1) as a DaemonSet +
//! RBAC, rendered from `templates/provider-upstream/` in the shape of its Helm chart
//! (`bootstrap up --provider upstream`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::{RenderError, render_all};

/// The DaemonSet and ServiceAccount name (upstream's installer manifest uses it too).
pub const UPSTREAM_NAME: &str = "csi-secrets-store-provider-aws";
/// The upstream provider release bootstrap installs.
pub const UPSTREAM_VERSION: &str = "3.1.1";
/// The upstream image repository (public ECR).
pub const UPSTREAM_REPOSITORY: &str =
    "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws";

const TEMPLATES: [(&str, &str); 3] = [
    (
        "provider-upstream/serviceaccount.yaml.tera",
        include_str!("../../templates/provider-upstream/serviceaccount.yaml.tera"),
    ),
    (
        "provider-upstream/rbac.yaml.tera",
        include_str!("../../templates/provider-upstream/rbac.yaml.tera"),
    ),
    (
        "provider-upstream/daemonset.yaml.tera",
        include_str!("../../templates/provider-upstream/daemonset.yaml.tera"),
    ),
];

/// Values for the upstream provider (the `upstreamProvider:` section of `--values`; see
/// `templates/provider-upstream/README.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UpstreamProviderValues {
    /// Defaults to the driver's namespace.
    pub namespace: Option<String>,
    /// Defaults to [`default_image`]; `--provider-image` overrides it.
    pub image: Option<String>,
    pub image_pull_policy: String,
    pub image_pull_secrets: Vec<Value>,
    pub priority_class_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Value>,
    /// Defaults to the driver's `providersDir`.
    pub providers_dir: Option<String>,
    /// kubelet's root directory (its `pods/` is mounted HostToContainer, like the chart).
    pub kubelet_path: String,
    pub extra_args: Vec<String>,
    /// Sets AWS_REGION in the provider; empty leaves it to the SecretProviderClass or node.
    pub region: String,
    pub resources: Value,
    pub labels: BTreeMap<String, String>,
}

impl Default for UpstreamProviderValues {
    fn default() -> Self {
        Self {
            namespace: None,
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: Vec::new(),
            priority_class_name: None,
            node_selector: BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]),
            tolerations: vec![json!({"operator": "Exists"})],
            providers_dir: None,
            kubelet_path: "/var/lib/kubelet".into(),
            extra_args: Vec::new(),
            region: String::new(),
            // The chart's: requests = limits, so the provider is Guaranteed QoS.
            resources: json!({
                "requests": {"cpu": "50m", "memory": "100Mi"},
                "limits": {"cpu": "50m", "memory": "100Mi"},
            }),
            labels: BTreeMap::new(),
        }
    }
}

/// The upstream image of the pinned release (override with `--provider-image` for a mirror).
pub fn default_image() -> String {
    format!("{UPSTREAM_REPOSITORY}:{UPSTREAM_VERSION}")
}

/// The providers directory when neither the values nor the driver say otherwise.
pub const DEFAULT_PROVIDERS_DIR: &str = "/var/run/secrets-store-csi-providers";

/// Renders ServiceAccount, ClusterRole + binding and the DaemonSet, in apply order.
pub fn render(values: &UpstreamProviderValues) -> Result<Vec<Value>, RenderError> {
    let namespace = values
        .namespace
        .clone()
        .unwrap_or_else(|| "kube-system".into());
    let invalid = |problem: String| RenderError::InvalidValues {
        renderer: "upstream provider",
        problem,
    };
    if let Some(problem) = super::names::label_problem("namespace", &namespace) {
        return Err(invalid(problem));
    }
    let providers_dir = values
        .providers_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_PROVIDERS_DIR.into());
    for (what, path) in [
        ("providersDir", providers_dir.as_str()),
        ("kubeletPath", values.kubelet_path.as_str()),
    ] {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "{what} must be an absolute path, not {path:?}"
            )));
        }
    }
    let labels = super::base_labels(UPSTREAM_NAME, &values.labels);
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        UPSTREAM_NAME.to_string(),
    )]);
    let vars = json!({
        "name": UPSTREAM_NAME,
        "namespace": namespace,
        "service_account": UPSTREAM_NAME,
        "cluster_role": format!("{UPSTREAM_NAME}-cluster-role"),
        "cluster_role_binding": format!("{UPSTREAM_NAME}-cluster-rolebinding"),
        "labels": labels,
        "selector_labels": selector,
        "pod_labels": labels,
        "image": values.image.clone().unwrap_or_else(default_image),
        "image_pull_policy": values.image_pull_policy,
        "image_pull_secrets": values.image_pull_secrets,
        "priority_class_name": values.priority_class_name,
        "node_selector": values.node_selector,
        "tolerations": values.tolerations,
        "providers_dir": providers_dir,
        "kubelet_pods_dir": format!("{}/pods", values.kubelet_path.trim_end_matches('/')),
        "extra_args": values.extra_args,
        "region": values.region,
        "resources": values.resources,
    });
    let context = tera::Context::from_value(vars).map_err(|source| RenderError::Template {
        template: "provider-upstream (context)".into(),
        source: Box::new(source),
    })?;
    render_all(&TEMPLATES, &context)
}

#[cfg(test)]
#[path = "provider_upstream_tests.rs"]
mod tests;
