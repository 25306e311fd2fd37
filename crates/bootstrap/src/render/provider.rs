//! The Rust AWS provider's objects, rendered from `templates/provider/` (written by the
//! provider work; its variables are the ones `tests/provider_templates.rs` documents).

use serde_json::{Value, json};

use super::engine::{RenderError, render_all, templates};
use super::provider_values::{provider_values, vars};

/// The provider's name (DaemonSet, ServiceAccount, ClusterRole and binding).
pub const PROVIDER_NAME: &str = "aws-csi-provider";

const TEMPLATES: [(&str, &str); 3] = templates!("provider": "serviceaccount", "rbac", "daemonset");

provider_values! {
    /// Values for the provider templates (the `provider:` section of `--values`).
    pub struct ProviderValues {
        priority_class_name: Some("system-node-critical".into()),
        resources: json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}),
        before {
            /// Must match the driver's `providersDir`.
            pub providers_dir: String = "/var/run/secrets-store-csi-providers".into(),
            pub metrics_port: u16 = 8081,
            pub log_format: String = "json".into(),
            pub pod_identity_http_timeout: String = "5s".into(),
            pub mount_deadline: String = "30s".into(),
        }
        region: "Sets AWS_REGION in the provider; empty leaves it to the SecretProviderClass.",
        after {
            /// Grants pods/nodes get so the region can come from the node label.
            pub region_from_node: bool = false,
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
    let own = json!({
        "providers_dir": values.providers_dir,
        "metrics_port": values.metrics_port,
        "log_format": values.log_format,
        "pod_identity_http_timeout": values.pod_identity_http_timeout,
        "mount_deadline": values.mount_deadline,
        "region_from_node": values.region_from_node,
    });
    let context = vars("provider", "provider", PROVIDER_NAME, values.shared(), own)?;
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
