//! Read-only observations the diagnosis rules work on; each is `None` (or, for doctor's
//! [`snapshot`], a [`Seen`] error) when it could not be read, so a rule never guesses. Only
//! get, list and describe calls: nothing here writes.

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::aws::Clients;
use crate::diagnose::facts::Seen;

#[path = "observe_doctor.rs"]
mod doctor;
pub use doctor::{kube_problem, snapshot};

/// The pod's warning messages, oldest first, without repeats.
pub async fn warnings(kube: &kube::Client, ns: &str, pod: &str) -> Vec<String> {
    warning_events(kube, ns, pod, None)
        .await
        .unwrap_or_default()
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
    let list = events
        .list(&params)
        .await
        .map_err(|e| kube_problem(&format!("list the events of pod {ns}/{pod}"), &e))?;
    let mut found: Vec<(Option<String>, String)> = list
        .items
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

pub async fn spc_use_pod_identity(
    kube: &kube::Client,
    ns: &str,
    spc: &str,
) -> Option<Option<String>> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses");
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), ns, &ar);
    let found = api.get_opt(spc).await.ok()??;
    let value = found
        .data
        .pointer("/spec/parameters/usePodIdentity")
        .cloned();
    Some(value.map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    }))
}

pub async fn association_exists(
    aws: Option<&Clients>,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Option<bool> {
    let aws = aws?;
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(service_account)
        .send()
        .await
        .ok()?;
    Some(!listed.associations().is_empty())
}

pub async fn driver_audiences(kube: &kube::Client) -> Option<Vec<String>> {
    let drivers: Api<k8s_openapi::api::storage::v1::CSIDriver> = Api::all(kube.clone());
    let driver = drivers
        .get_opt(crate::render::csi_driver::DRIVER_NAME)
        .await
        .ok()??;
    Some(
        driver
            .spec
            .token_requests
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.audience)
            .collect(),
    )
}
