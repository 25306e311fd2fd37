//! Typed template contexts rendered with tera into Kubernetes manifests.
//!
//! Templates live in `templates/` and are embedded into the binary at compile time, so an
//! installed `bootstrap` needs no files next to it. Every renderer returns one
//! [`serde_json::Value`] per Kubernetes object, in apply order.

pub mod csi_driver;
mod engine;
pub mod names;
mod object_ref;
pub mod provider;
pub mod provider_upstream;
mod provider_values;
pub mod workload;

pub use engine::{RenderError, object_ref};
pub use object_ref::{ObjectRef, metadata_label};

/// The label every object bootstrap renders carries (DESIGN "The cloud is the state").
pub use bootstrap_common::names::LABEL_MANAGED_BY as MANAGED_BY_LABEL;
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "bootstrap";

/// Labels common to everything bootstrap renders, plus `extra`.
pub fn base_labels(
    name: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.insert("app.kubernetes.io/name".into(), name.into());
    labels.insert("app.kubernetes.io/part-of".into(), "bootstrap".into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels
}
