//! Server-side apply of rendered objects, and observing whether an apply would change anything
//! (so that a second run makes no write call at all).

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{FIELD_MANAGER, KubeError};
use crate::render::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, object_ref};

/// What is on the cluster compared with what we would apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    Absent,
    /// Present; every field we set already has our value.
    Same {
        ours: bool,
    },
    /// Present with different values.
    Differs {
        ours: bool,
    },
}

impl ObjectState {
    /// Present and labelled as bootstrap's.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            ObjectState::Same { ours: true } | ObjectState::Differs { ours: true }
        )
    }
}

/// Plurals of the kinds bootstrap renders (others are discovered).
fn known_plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "CustomResourceDefinition" => "customresourcedefinitions",
        "CSIDriver" => "csidrivers",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "DaemonSet" => "daemonsets",
        "Deployment" => "deployments",
        "Namespace" => "namespaces",
        "SecretProviderClass" => "secretproviderclasses",
        "Pod" => "pods",
        "ConfigMap" => "configmaps",
        "Service" => "services",
        _ => return None,
    })
}

fn gvk_of(object: &Value) -> Option<GroupVersionKind> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(GroupVersionKind::gvk(group, version, kind))
}

/// The dynamic API for an object and its name.
pub async fn api_for(
    client: &kube::Client,
    object: &Value,
) -> Result<(Api<DynamicObject>, String), KubeError> {
    let resource = object_ref(object);
    let manifest_err = |problem: &str| KubeError::Manifest {
        resource: resource.clone(),
        source: serde::de::Error::custom(problem),
    };
    let gvk = gvk_of(object).ok_or_else(|| manifest_err("missing apiVersion or kind"))?;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| manifest_err("missing metadata.name"))?
        .to_string();
    let ar = match known_plural(&gvk.kind) {
        Some(plural) => ApiResource::from_gvk_with_plural(&gvk, plural),
        None => {
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(KubeError::api("discover the API of", resource.clone()))?
                .0
        }
    };
    let api = match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    Ok((api, name))
}

/// Reads the live object, if any.
pub async fn get(client: &kube::Client, object: &Value) -> Result<Option<Value>, KubeError> {
    let (api, name) = api_for(client, object).await?;
    // A 404 is absent: the object, or its whole kind (a CRD not installed yet).
    let live = match api.get(&name).await {
        Ok(live) => Some(live),
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(source) => {
            return Err(KubeError::Api {
                action: "read",
                resource: object_ref(object),
                source,
            });
        }
    };
    live.map(|l| {
        serde_json::to_value(l).map_err(|source| KubeError::Manifest {
            resource: object_ref(object),
            source,
        })
    })
    .transpose()
}

/// Compares the desired object with the live one.
pub async fn observe(client: &kube::Client, object: &Value) -> Result<ObjectState, KubeError> {
    Ok(state_of(object, get(client, object).await?.as_ref()))
}

/// The state of `desired` given the live object.
pub fn state_of(desired: &Value, live: Option<&Value>) -> ObjectState {
    match live {
        None => ObjectState::Absent,
        Some(live) => {
            let ours = is_ours(live);
            if is_subset(desired, live) {
                ObjectState::Same { ours }
            } else {
                ObjectState::Differs { ours }
            }
        }
    }
}

/// Whether bootstrap made this object.
pub fn is_ours(live: &Value) -> bool {
    live.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

/// Whether every field of `desired` has the same value in `live` (the server adds defaults,
/// so live may have more). Lists must have the same length and match item by item.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| {
            l.get(k).is_some_and(|lv| is_subset(dv, lv)) || is_empty(dv) && !l.contains_key(k)
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        (d, l) => d == l,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(false) => true,
        _ => false,
    }
}

/// Server-side applies the object with the `bootstrap` field manager (forcing ownership of the
/// fields it sets).
pub async fn apply(client: &kube::Client, object: &Value) -> Result<(), KubeError> {
    let (api, name) = api_for(client, object).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(KubeError::api("apply", object_ref(object)))?;
    Ok(())
}

/// Deletes the object if present (used for the sample pod).
pub async fn delete(client: &kube::Client, object: &Value) -> Result<(), KubeError> {
    let (api, name) = api_for(client, object).await?;
    match api.delete(&name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(KubeError::Api {
            action: "delete",
            resource: object_ref(object),
            source,
        }),
    }
}

/// Deletes the object named by `reference` with foreground propagation (its dependents, such
/// as a DaemonSet's pods, go first); absent is success.
pub async fn delete_ref(
    client: &kube::Client,
    reference: &crate::render::ObjectRef,
) -> Result<(), KubeError> {
    let stub = reference.stub();
    let (api, name) = api_for(client, &stub).await?;
    let params = kube::api::DeleteParams::foreground();
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(KubeError::Api {
            action: "delete",
            resource: reference.to_string(),
            source,
        }),
    }
}

/// Applies a JSON merge patch to the object named by `reference`.
pub async fn merge_patch(
    client: &kube::Client,
    reference: &crate::render::ObjectRef,
    patch: &Value,
) -> Result<(), KubeError> {
    let (api, name) = api_for(client, &reference.stub()).await?;
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(KubeError::api("patch", reference.to_string()))?;
    Ok(())
}

/// Waits until the object named by `reference` no longer exists.
pub async fn wait_gone(
    client: &kube::Client,
    reference: &crate::render::ObjectRef,
    timeout: std::time::Duration,
) -> Result<(), KubeError> {
    let stub = reference.stub();
    let deadline = std::time::Instant::now() + timeout;
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        if get(client, &stub).await?.is_none() {
            return Ok(());
        }
        if std::time::Instant::now() + delay > deadline {
            return Err(KubeError::Timeout {
                what: format!("{reference} to be deleted"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_changes() {
        let desired =
            json!({"spec": {"a": 1, "list": [{"x": "1"}]}, "metadata": {"labels": {"k": "v"}}});
        let live = json!({"spec": {"a": 1.0, "b": 2, "list": [{"x": "1", "y": 3}]}, "metadata": {"labels": {"k": "v", "o": "p"}, "uid": "u"}});
        assert!(is_subset(&desired, &live));
        let changed = json!({"spec": {"a": 2}});
        assert!(!is_subset(&changed, &live));
        let longer = json!({"spec": {"list": [{"x": "1"}, {"x": "2"}]}});
        assert!(!is_subset(&longer, &live));
        let empty_absent = json!({"spec": {"extra": [], "flag": false}});
        assert!(is_subset(&empty_absent, &live));
    }

    #[test]
    fn state_and_ownership() {
        let desired = json!({"metadata": {"name": "x"}});
        assert_eq!(state_of(&desired, None), ObjectState::Absent);
        let ours = json!({"metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "bootstrap"}}});
        assert_eq!(
            state_of(&desired, Some(&ours)),
            ObjectState::Same { ours: true }
        );
        let theirs = json!({"metadata": {"name": "y"}});
        assert_eq!(
            state_of(&desired, Some(&theirs)),
            ObjectState::Differs { ours: false }
        );
    }

    #[test]
    fn api_versions_split_into_group_and_version() {
        let gvk = gvk_of(&json!({"apiVersion": "apps/v1", "kind": "DaemonSet"})).expect("gvk");
        assert_eq!((gvk.group.as_str(), gvk.version.as_str()), ("apps", "v1"));
        let core = gvk_of(&json!({"apiVersion": "v1", "kind": "Pod"})).expect("gvk");
        assert_eq!((core.group.as_str(), core.version.as_str()), ("", "v1"));
    }
}
