//! The Rust AWS provider's objects, rendered from `templates/provider/` (written by the
//! provider work; its variables are the ones `tests/provider_templates.rs` documents).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::{RenderError, render_all};

/// The provider's name (DaemonSet, ServiceAccount, ClusterRole and binding).
pub const PROVIDER_NAME: &str = "aws-csi-provider";

const TEMPLATES: [(&str, &str); 3] = [
    (
        "provider/serviceaccount.yaml.tera",
        include_str!("../../templates/provider/serviceaccount.yaml.tera"),
    ),
    (
        "provider/rbac.yaml.tera",
        include_str!("../../templates/provider/rbac.yaml.tera"),
    ),
    (
        "provider/daemonset.yaml.tera",
        include_str!("../../templates/provider/daemonset.yaml.tera"),
    ),
];

/// Values for the provider templates (the `provider:` section of `--values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProviderValues {
    /// Defaults to the driver's namespace.
    pub namespace: Option<String>,
    /// Defaults to [`default_image`]; `--provider-image` overrides it.
    pub image: Option<String>,
    pub image_pull_policy: String,
    pub image_pull_secrets: Vec<Value>,
    pub priority_class_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Value>,
    /// Must match the driver's `providersDir`.
    pub providers_dir: String,
    pub metrics_port: u16,
    pub log_format: String,
    pub pod_identity_http_timeout: String,
    pub mount_deadline: String,
    pub extra_args: Vec<String>,
    /// Sets AWS_REGION in the provider; empty leaves it to the SecretProviderClass.
    pub region: String,
    /// Grants pods/nodes get so the region can come from the node label.
    pub region_from_node: bool,
    pub resources: Value,
    pub labels: BTreeMap<String, String>,
}

impl Default for ProviderValues {
    fn default() -> Self {
        Self {
            namespace: None,
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: Vec::new(),
            priority_class_name: Some("system-node-critical".into()),
            node_selector: BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]),
            tolerations: vec![json!({"operator": "Exists"})],
            providers_dir: "/var/run/secrets-store-csi-providers".into(),
            metrics_port: 8081,
            log_format: "json".into(),
            pod_identity_http_timeout: "5s".into(),
            mount_deadline: "30s".into(),
            extra_args: Vec::new(),
            region: String::new(),
            region_from_node: false,
            resources: json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}),
            labels: BTreeMap::new(),
        }
    }
}

/// The provider image of this build: the one the release workflow compiled in
/// (`BOOTSTRAP_RELEASE_PROVIDER_IMAGE`), or `None` when no release registry was configured.
pub fn configured_image() -> Option<String> {
    match crate::image::default_provider_image() {
        Ok(crate::image::DefaultProviderImage::Configured(image)) => Some(image.to_string()),
        _ => None,
    }
}

/// What a manifest shows for the default image: [`configured_image`], or the sentence
/// that says none is configured (a run stops at the image check before applying it).
pub fn default_image() -> String {
    configured_image()
        .unwrap_or_else(|| crate::image::DefaultProviderImage::NotConfigured.to_string())
}

/// Renders ServiceAccount, ClusterRole + binding and the DaemonSet.
pub fn render(values: &ProviderValues) -> Result<Vec<Value>, RenderError> {
    let namespace = values
        .namespace
        .clone()
        .unwrap_or_else(|| "kube-system".into());
    if let Some(problem) = super::names::label_problem("namespace", &namespace) {
        return Err(RenderError::InvalidValues {
            renderer: "provider",
            problem,
        });
    }
    let labels = super::base_labels(PROVIDER_NAME, &values.labels);
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        PROVIDER_NAME.to_string(),
    )]);
    let vars = json!({
        "name": PROVIDER_NAME,
        "namespace": namespace,
        "service_account": PROVIDER_NAME,
        "labels": labels,
        "selector_labels": selector,
        "pod_labels": labels,
        "image": values.image.clone().unwrap_or_else(default_image),
        "image_pull_policy": values.image_pull_policy,
        "image_pull_secrets": values.image_pull_secrets,
        "priority_class_name": values.priority_class_name,
        "node_selector": values.node_selector,
        "tolerations": values.tolerations,
        "providers_dir": values.providers_dir,
        "metrics_port": values.metrics_port,
        "log_format": values.log_format,
        "pod_identity_http_timeout": values.pod_identity_http_timeout,
        "mount_deadline": values.mount_deadline,
        "extra_args": values.extra_args,
        "region": values.region,
        "region_from_node": values.region_from_node,
        "resources": values.resources,
    });
    let context = tera::Context::from_value(vars).map_err(|source| RenderError::Template {
        template: "provider (context)".into(),
        source: Box::new(source),
    })?;
    render_all(&TEMPLATES, &context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_provider_with_our_labels_and_image() {
        let objects = render(&ProviderValues::default()).expect("renders");
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "DaemonSet"
            ]
        );
        for o in &objects {
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "bootstrap"
            );
        }
        let ds = &objects[3];
        assert_eq!(ds["metadata"]["namespace"], "kube-system");
        assert_eq!(
            ds["spec"]["template"]["spec"]["containers"][0]["image"],
            default_image()
        );
        let values = ProviderValues {
            image: Some("mirror/p:1".into()),
            namespace: Some("sscsi".into()),
            ..Default::default()
        };
        let objects = render(&values).expect("renders");
        assert_eq!(
            objects[3]["spec"]["template"]["spec"]["containers"][0]["image"],
            "mirror/p:1"
        );
        assert_eq!(objects[2]["subjects"][0]["namespace"], "sscsi");
    }
}
