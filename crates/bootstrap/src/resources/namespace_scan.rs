//! What else is in a namespace `down` would delete: every namespaced kind the apiserver serves
//! is listed; an object counts as bootstrap's only when discovery found it as owned (its kind is
//! one bootstrap creates and its labels say so for this cluster). A kind that cannot be listed —
//! a group whose discovery fails (a broken aggregated API), a list refused by RBAC or failed by
//! a conversion webhook — is an unknown, and an unknown keeps the namespace (fail closed).

use std::collections::BTreeSet;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, Discovery, Scope, verbs};

use crate::plan::ObjectRef;

/// One namespace's contents besides what bootstrap owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Objects bootstrap did not make (`Kind/name`).
    pub foreign: Vec<String>,
    /// Kinds (or API groups) that could not be read, each with the error.
    pub unknown: Vec<String>,
}

/// The identity of an object for ownership: API group, kind, name (the version may differ
/// between discovery's preferred one and the one bootstrap applied).
pub type Key = (String, String, String);

pub fn key(api_version: &str, kind: &str, name: &str) -> Key {
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    (group, kind.to_string(), name.to_string())
}

/// The key of an owned object's reference.
pub fn key_of(r: &ObjectRef) -> Key {
    key(&r.api_version, &r.kind, &r.name)
}

/// One kind's list in a namespace: (apiVersion, kind, its objects or the list call's error).
pub type KindList = (String, String, Result<Vec<Listed>, String>);

/// One listed object, as far as ownership goes.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    /// Made by another object (a pod's SecretProviderClassPodStatus, a ReplicaSet's pods).
    pub has_owner: bool,
}

/// The namespaced, listable kinds the apiserver serves, discovered group by group so that one
/// broken group is an unknown instead of a failure of the whole discovery.
pub async fn namespaced_kinds(
    kube: &kube::Client,
) -> (Vec<(ApiResource, ApiCapabilities)>, Vec<String>) {
    let mut unknown = Vec::new();
    let mut names = vec![String::new()];
    match kube.list_api_groups().await {
        Ok(groups) => names.extend(groups.groups.into_iter().map(|g| g.name)),
        Err(e) => unknown.push(format!("the API groups ({e})")),
    }
    let mut kinds = Vec::new();
    let mut seen = BTreeSet::new();
    for name in names {
        let found = match Discovery::new(kube.clone())
            .filter(&[name.as_str()])
            .run()
            .await
        {
            Ok(d) => d,
            Err(e) => {
                let group = if name.is_empty() { "core" } else { &name };
                unknown.push(format!("API group {group} ({e})"));
                continue;
            }
        };
        for group in found.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope == Scope::Namespaced
                    && caps.supports_operation(verbs::LIST)
                    && ar.kind != "Event"
                    && seen.insert((ar.group.clone(), ar.kind.clone()))
                {
                    kinds.push((ar, caps));
                }
            }
        }
    }
    (kinds, unknown)
}

/// Lists every kind in `ns` and sorts what is there into foreign and unknown.
pub async fn scan(
    kube: &kube::Client,
    kinds: &[(ApiResource, ApiCapabilities)],
    kinds_unknown: &[String],
    ns: &str,
    owned: &BTreeSet<Key>,
) -> Contents {
    let mut results = Vec::new();
    for (ar, _) in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), ns, ar);
        let listed = api
            .list(&ListParams::default())
            .await
            .map(|list| {
                list.items
                    .into_iter()
                    .map(|item| Listed {
                        name: item.metadata.name.unwrap_or_default(),
                        has_owner: item
                            .metadata
                            .owner_references
                            .is_some_and(|o| !o.is_empty()),
                    })
                    .collect()
            })
            .map_err(|e| e.to_string());
        results.push((ar.api_version.clone(), ar.kind.clone(), listed));
    }
    classify(&results, kinds_unknown, owned)
}

/// Pure: the lists of one namespace (per kind: its objects, or the error of its list call) →
/// what is foreign and what is unknown. Kubernetes' own objects (the `default` ServiceAccount,
/// the `kube-root-ca.crt` ConfigMap, anything with an owner) are neither.
pub fn classify(lists: &[KindList], kinds_unknown: &[String], owned: &BTreeSet<Key>) -> Contents {
    let mut out = Contents {
        unknown: kinds_unknown.to_vec(),
        ..Contents::default()
    };
    for (api_version, kind, listed) in lists {
        let items = match listed {
            Ok(items) => items,
            Err(e) => {
                out.unknown.push(format!("{kind} ({api_version}): {e}"));
                continue;
            }
        };
        for item in items {
            let automatic = item.has_owner
                || (kind == "ServiceAccount" && item.name == "default")
                || (kind == "ConfigMap" && item.name == "kube-root-ca.crt");
            if !automatic && !owned.contains(&key(api_version, kind, &item.name)) {
                out.foreign.push(format!("{kind}/{}", item.name));
            }
        }
    }
    out.foreign.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One kind's list as discovery returns it.
    fn list(api_version: &str, kind: &str, listed: Result<Vec<Listed>, String>) -> KindList {
        (api_version.into(), kind.into(), listed)
    }

    /// One kind's list of objects with these names and no owner.
    fn listed(api_version: &str, kind: &str, names: &[&str]) -> KindList {
        let items = names
            .iter()
            .map(|name| Listed {
                name: (*name).into(),
                has_owner: false,
            })
            .collect();
        list(api_version, kind, Ok(items))
    }

    #[test]
    fn a_kind_that_cannot_be_listed_is_unknown_not_empty() {
        let owned: BTreeSet<Key> = [key("v1", "ServiceAccount", "app")].into_iter().collect();
        let lists = vec![
            listed("v1", "ServiceAccount", &["app", "default"]),
            list(
                "example.com/v2",
                "Widget",
                Err("conversion webhook for example.com/v1, Kind=Widget failed".to_string()),
            ),
        ];
        let c = classify(&lists, &["API group metrics.k8s.io (503)".into()], &owned);
        assert!(c.foreign.is_empty(), "{c:?}");
        assert_eq!(c.unknown.len(), 2, "{c:?}");
        assert!(c.unknown[1].contains("Widget") && c.unknown[1].contains("conversion webhook"));
        assert!(c.unknown[0].contains("metrics.k8s.io"));
    }

    #[test]
    fn only_what_discovery_found_as_owned_is_ours() {
        // A ConfigMap labelled managed-by=bootstrap is not a kind bootstrap makes: it was not
        // found as owned, so it is foreign and keeps the namespace.
        let owned: BTreeSet<Key> = [key(
            "secrets-store.csi.x-k8s.io/v1",
            "SecretProviderClass",
            "bootstrap-app",
        )]
        .into_iter()
        .collect();
        let lists = vec![
            listed("v1", "ConfigMap", &["looks-like-ours", "kube-root-ca.crt"]),
            listed(
                "secrets-store.csi.x-k8s.io/v1",
                "SecretProviderClass",
                &["bootstrap-app", "theirs"],
            ),
            list(
                "secrets-store.csi.x-k8s.io/v1",
                "SecretProviderClassPodStatus",
                Ok(vec![Listed {
                    name: "pod-x".into(),
                    has_owner: true,
                }]),
            ),
        ];
        let c = classify(&lists, &[], &owned);
        assert_eq!(
            c.foreign,
            ["ConfigMap/looks-like-ours", "SecretProviderClass/theirs"]
        );
        assert!(c.unknown.is_empty());
    }
}
