//! The upstream AWS provider (aws/secrets-store-csi-driver-provider-aws 3.1.1) as a DaemonSet +
//! RBAC, rendered from `templates/provider-upstream/` in the shape of its Helm chart
//! (`bootstrap up --provider upstream`).

use serde_json::{Value, json};

use super::engine::{RenderError, render_all, templates};
use super::provider_values::{provider_values, vars};

/// The DaemonSet and ServiceAccount name (upstream's installer manifest uses it too).
pub const UPSTREAM_NAME: &str = "csi-secrets-store-provider-aws";
/// The upstream provider release bootstrap installs.
pub const UPSTREAM_VERSION: &str = "3.1.1";
/// The upstream image repository (public ECR).
pub const UPSTREAM_REPOSITORY: &str =
    "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws";

const TEMPLATES: [(&str, &str); 3] =
    templates!("provider-upstream": "serviceaccount", "rbac", "daemonset");

provider_values! {
    /// Values for the upstream provider (the `upstreamProvider:` section of `--values`; see
    /// `templates/provider-upstream/README.md`).
    pub struct UpstreamProviderValues {
        priority_class_name: None,
        // The chart's: requests = limits, so the provider is Guaranteed QoS.
        resources: json!({
            "requests": {"cpu": "50m", "memory": "100Mi"},
            "limits": {"cpu": "50m", "memory": "100Mi"},
        }),
        before {
            /// Defaults to the driver's `providersDir`.
            pub providers_dir: Option<String> = None,
            /// kubelet's root directory (its `pods/` is mounted HostToContainer, like the chart).
            pub kubelet_path: String = "/var/lib/kubelet".into(),
        }
        region: "Sets AWS_REGION in the provider; empty leaves it to the SecretProviderClass or node.",
        after {}
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
    let providers_dir = values
        .providers_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_PROVIDERS_DIR.into());
    let own = json!({
        "cluster_role": format!("{UPSTREAM_NAME}-cluster-role"),
        "cluster_role_binding": format!("{UPSTREAM_NAME}-cluster-rolebinding"),
        "providers_dir": providers_dir,
        "kubelet_pods_dir": format!("{}/pods", values.kubelet_path.trim_end_matches('/')),
    });
    const RENDERER: &str = "upstream provider";
    let context = vars(
        RENDERER,
        "provider-upstream",
        UPSTREAM_NAME,
        values.shared(),
        own,
    )?;
    for (what, path) in [
        ("providersDir", providers_dir.as_str()),
        ("kubeletPath", values.kubelet_path.as_str()),
    ] {
        if !path.starts_with('/') {
            return Err(RenderError::InvalidValues {
                renderer: RENDERER,
                problem: format!("{what} must be an absolute path, not {path:?}"),
            });
        }
    }
    render_all(&TEMPLATES, &context)
}

#[cfg(test)]
#[path = "provider_upstream_tests.rs"]
mod tests;
