//! Kubernetes look-ups the provider needs (IRSA role annotation, node region), behind a trait,
//! and the small client that makes them ([`client`], configured by [`config`]).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use http::StatusCode;
use serde::Deserialize;
use tokio::sync::OnceCell;

pub mod client;
pub mod config;

pub use client::{KubeClient, KubeError};
pub use config::Config;

use super::auth::irsa::ROLE_ANNOTATION;

/// The node label carrying the region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// What a look-up answers: the value if the object has it, or a readable error.
pub type Lookup<'a> = BoxFuture<'a, Result<Option<String>, String>>;

/// Read-only cluster look-ups. Errors are human-readable and name the object.
pub trait ClusterLookup: Send + Sync {
    /// The `eks.amazonaws.com/role-arn` annotation of a service account, if any.
    fn role_arn<'a>(&'a self, namespace: &'a str, service_account: &'a str) -> Lookup<'a>;

    /// The region label of the node the pod runs on, if any.
    fn node_region<'a>(&'a self, namespace: &'a str, pod: &'a str) -> Lookup<'a>;
}

/// The few fields read of a service account, pod or node (not k8s-openapi's types: a `Pod`'s
/// deserializer is large code, resident on every node, for one field).
#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    node_name: Option<String>,
}

/// The real cluster, through a client created on first use (KUBECONFIG or in-cluster).
#[derive(Default)]
pub struct KubeLookup {
    client: OnceCell<KubeClient>,
}

impl KubeLookup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `client` instead of creating one (tests, or a client the caller already has).
    pub fn with_client(client: KubeClient) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
        }
    }

    async fn client(&self) -> Result<&KubeClient, String> {
        self.client
            .get_or_try_init(|| async {
                Config::infer().and_then(KubeClient::new).map_err(|e| {
                    format!("no Kubernetes client (KUBECONFIG or in-cluster config): {e}")
                })
            })
            .await
    }
}

/// `name` as one path segment: names come from the mount request, so one that would change the
/// path (`/`, `..`, `?`, `%`, …) is refused rather than sent.
fn segment<'n>(name: &'n str, what: &str) -> Result<&'n str, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if ok {
        Ok(name)
    } else {
        Err(format!("{what} {name:?} is not a valid Kubernetes name"))
    }
}

/// A failed GET of `what`, with the RBAC hint when it can be the cause (403) and "not found"
/// said plainly for a 404.
fn failed(what: &str, e: &KubeError, needs: &str) -> String {
    match e.status() {
        Some(StatusCode::NOT_FOUND) => format!("{what} not found ({e})"),
        Some(StatusCode::FORBIDDEN) | Some(StatusCode::UNAUTHORIZED) => {
            format!("get {what}: {e}; hint: the provider's ClusterRole needs {needs}")
        }
        _ => format!("get {what}: {e}"),
    }
}

/// A namespaced kind the provider reads: its path segment, its name in a name check and in
/// an error, and the RBAC rule a 403 points at.
struct Kind {
    plural: &'static str,
    noun: &'static str,
    label: &'static str,
    needs: &'static str,
}

const SERVICE_ACCOUNTS: Kind = Kind {
    plural: "serviceaccounts",
    noun: "service account",
    label: "serviceaccount",
    needs: "serviceaccounts get",
};

const PODS: Kind = Kind {
    plural: "pods",
    noun: "pod",
    label: "pod",
    needs: "pods get when the region comes from the node",
};

impl KubeLookup {
    /// GETs object `name` of `kind` in `namespace`, both checked as names first.
    async fn get_namespaced(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, String> {
        let path = format!(
            "/api/v1/namespaces/{}/{}/{}",
            segment(namespace, "namespace")?,
            kind.plural,
            segment(name, kind.noun)?
        );
        self.client().await?.get(&path).await.map_err(|e| {
            let what = format!("{} {namespace}/{name}", kind.label);
            failed(&what, &e, kind.needs)
        })
    }
}

impl ClusterLookup for KubeLookup {
    fn role_arn<'a>(&'a self, namespace: &'a str, service_account: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let sa = self
                .get_namespaced(SERVICE_ACCOUNTS, namespace, service_account)
                .await?;
            Ok(sa
                .metadata
                .and_then(|m| m.annotations)
                .and_then(|mut a| a.remove(ROLE_ANNOTATION))
                .filter(|v| !v.is_empty()))
        })
    }

    fn node_region<'a>(&'a self, namespace: &'a str, pod: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let p = self.get_namespaced(PODS, namespace, pod).await?;
            let client = self.client().await?;
            let Some(node_name) = p.spec.and_then(|s| s.node_name) else {
                return Ok(None);
            };
            let path = format!("/api/v1/nodes/{}", segment(&node_name, "node")?);
            let node: Object = client.get(&path).await.map_err(|e| {
                failed(
                    &format!("node {node_name}"),
                    &e,
                    "nodes get when the region comes from the node",
                )
            })?;
            Ok(node
                .metadata
                .and_then(|m| m.labels)
                .and_then(|mut l| l.remove(REGION_LABEL))
                .filter(|v| !v.is_empty()))
        })
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
