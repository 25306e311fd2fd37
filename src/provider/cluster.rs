//! Kubernetes look-ups the provider needs (IRSA role annotation, node region), behind a trait.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::Api;
use tokio::sync::OnceCell;

use super::auth::irsa::ROLE_ANNOTATION;

/// The node label carrying the region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// Read-only cluster look-ups. Errors are human-readable and name the object.
pub trait ClusterLookup: Send + Sync {
    /// The `eks.amazonaws.com/role-arn` annotation of a service account, if any.
    fn role_arn<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;

    /// The region label of the node the pod runs on, if any.
    fn node_region<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// The real cluster, through a client created on first use (KUBECONFIG or in-cluster).
#[derive(Default)]
pub struct KubeLookup {
    client: OnceCell<kube::Client>,
}

impl KubeLookup {
    pub fn new() -> Self {
        Self::default()
    }

    async fn client(&self) -> Result<kube::Client, String> {
        self.client
            .get_or_try_init(|| async {
                kube::Client::try_default().await.map_err(|e| {
                    format!("no Kubernetes client (KUBECONFIG or in-cluster config): {e}")
                })
            })
            .await
            .cloned()
    }
}

impl ClusterLookup for KubeLookup {
    fn role_arn<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
            let sa = api.get(service_account).await.map_err(|e| {
                format!("get serviceaccount {namespace}/{service_account}: {e}; hint: the provider's ClusterRole needs serviceaccounts get")
            })?;
            Ok(sa
                .metadata
                .annotations
                .and_then(|mut a| a.remove(ROLE_ANNOTATION))
                .filter(|v| !v.is_empty()))
        })
    }

    fn node_region<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let p = pods.get(pod).await.map_err(|e| {
                format!("get pod {namespace}/{pod}: {e}; hint: the provider's ClusterRole needs pods get when the region comes from the node")
            })?;
            let Some(node_name) = p.spec.and_then(|s| s.node_name) else {
                return Ok(None);
            };
            let nodes: Api<Node> = Api::all(client);
            let node = nodes.get(&node_name).await.map_err(|e| {
                format!("get node {node_name}: {e}; hint: the provider's ClusterRole needs nodes get when the region comes from the node")
            })?;
            Ok(node
                .metadata
                .labels
                .and_then(|mut l| l.remove(REGION_LABEL))
                .filter(|v| !v.is_empty()))
        })
    }
}
