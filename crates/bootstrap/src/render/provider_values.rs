//! What the two provider renderers share: the values every provider DaemonSet takes (one
//! macro, since `serde(flatten)` cannot sit beside `deny_unknown_fields`), and the template
//! variables built from them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::engine::RenderError;

/// Declares a provider's values struct: the fields every provider DaemonSet has, with this
/// provider's own fields in their places (`$before` after `tolerations`, `$after` after
/// `region`, so the keys keep the order errors list them in), and its `Default`.
macro_rules! provider_values {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            priority_class_name: $priority:expr,
            resources: $resources:expr,
            before { $($(#[$bmeta:meta])* pub $bfield:ident: $bty:ty = $bdefault:expr,)* }
            region: $region_doc:literal,
            after { $($(#[$ameta:meta])* pub $afield:ident: $aty:ty = $adefault:expr,)* }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default, deny_unknown_fields)]
        pub struct $name {
            /// Defaults to the driver's namespace.
            pub namespace: Option<String>,
            /// Defaults to [`default_image`]; `--provider-image` overrides it.
            pub image: Option<String>,
            pub image_pull_policy: String,
            pub image_pull_secrets: Vec<serde_json::Value>,
            pub priority_class_name: Option<String>,
            pub node_selector: std::collections::BTreeMap<String, String>,
            pub tolerations: Vec<serde_json::Value>,
            $($(#[$bmeta])* pub $bfield: $bty,)*
            pub extra_args: Vec<String>,
            #[doc = $region_doc]
            pub region: String,
            $($(#[$ameta])* pub $afield: $aty,)*
            pub resources: serde_json::Value,
            pub labels: std::collections::BTreeMap<String, String>,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    namespace: None,
                    image: None,
                    image_pull_policy: "IfNotPresent".into(),
                    image_pull_secrets: Vec::new(),
                    priority_class_name: $priority,
                    node_selector: std::collections::BTreeMap::from([(
                        "kubernetes.io/os".into(),
                        "linux".into(),
                    )]),
                    tolerations: vec![serde_json::json!({"operator": "Exists"})],
                    $($bfield: $bdefault,)*
                    extra_args: Vec::new(),
                    region: String::new(),
                    $($afield: $adefault,)*
                    resources: $resources,
                    labels: std::collections::BTreeMap::new(),
                }
            }
        }

        impl $name {
            /// The variables of the fields above, for [`super::provider_values::vars`].
            fn shared(&self) -> super::provider_values::Shared<'_> {
                super::provider_values::Shared {
                    namespace: self.namespace.as_deref(),
                    image: self.image.clone().unwrap_or_else(default_image),
                    rest: serde_json::json!({
                        "image_pull_policy": self.image_pull_policy,
                        "image_pull_secrets": self.image_pull_secrets,
                        "priority_class_name": self.priority_class_name,
                        "node_selector": self.node_selector,
                        "tolerations": self.tolerations,
                        "extra_args": self.extra_args,
                        "region": self.region,
                        "resources": self.resources,
                    }),
                    labels: &self.labels,
                }
            }
        }
    };
}
pub(super) use provider_values;

/// The shared fields of a provider's values, as its macro-made `shared()` hands them over.
pub(super) struct Shared<'a> {
    pub namespace: Option<&'a str>,
    pub image: String,
    pub rest: Value,
    pub labels: &'a BTreeMap<String, String>,
}

/// The variables every provider template set takes — name, namespace (checked), labels,
/// selector, image and the shared fields — merged with the provider's own `extra`.
pub(super) fn vars(
    renderer: &'static str,
    template: &str,
    name: &str,
    shared: Shared<'_>,
    extra: Value,
) -> Result<tera::Context, RenderError> {
    let namespace = shared.namespace.unwrap_or("kube-system");
    if let Some(problem) = super::names::label_problem("namespace", namespace) {
        return Err(RenderError::InvalidValues { renderer, problem });
    }
    let labels = super::base_labels(name, shared.labels);
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), name.to_string())]);
    let mut vars: Map<String, Value> = match json!({
        "name": name,
        "namespace": namespace,
        "service_account": name,
        "labels": labels,
        "selector_labels": selector,
        "pod_labels": labels,
        "image": shared.image,
    }) {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    };
    for part in [shared.rest, extra] {
        if let Value::Object(map) = part {
            vars.extend(map);
        }
    }
    tera::Context::from_value(Value::Object(vars)).map_err(|source| RenderError::Template {
        template: format!("{template} (context)"),
        source: Box::new(source),
    })
}
