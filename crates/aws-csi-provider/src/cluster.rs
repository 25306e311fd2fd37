//! Kubernetes look-ups the provider needs (IRSA role annotation, node region), behind a trait.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kube::api::GetParams;
use kube::core::Request;
use serde::Deserialize;
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

/// The few fields read of a service account, pod or node. The same GETs as `kube::Api` of the
/// k8s-openapi types, but without their deserializers (a `Pod`'s is large code, resident on
/// every node, for one field).
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

/// GET `{collection}/{name}` (a path like `/api/v1/namespaces/demo/pods`), as `Api::get` does.
async fn get(client: kube::Client, collection: String, name: &str) -> Result<Object, kube::Error> {
    let mut request = Request::new(collection)
        .get(name, &GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("get");
    client.request::<Object>(request).await
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

    /// Uses `client` instead of creating one (tests, or a client the caller already has).
    pub fn with_client(client: kube::Client) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
        }
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
            let collection = format!("/api/v1/namespaces/{namespace}/serviceaccounts");
            let sa = get(self.client().await?, collection, service_account).await.map_err(|e| {
                format!("get serviceaccount {namespace}/{service_account}: {e}; hint: the provider's ClusterRole needs serviceaccounts get")
            })?;
            Ok(sa
                .metadata
                .and_then(|m| m.annotations)
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
            let collection = format!("/api/v1/namespaces/{namespace}/pods");
            let p = get(client.clone(), collection, pod).await.map_err(|e| {
                format!("get pod {namespace}/{pod}: {e}; hint: the provider's ClusterRole needs pods get when the region comes from the node")
            })?;
            let Some(node_name) = p.spec.and_then(|s| s.node_name) else {
                return Ok(None);
            };
            let node = get(client, "/api/v1/nodes".to_string(), &node_name).await.map_err(|e| {
                format!("get node {node_name}: {e}; hint: the provider's ClusterRole needs nodes get when the region comes from the node")
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
mod tests {
    use super::*;
    use hyper::{Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    async fn answer(handle: &mut Handle, path: &str, body: serde_json::Value) {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.uri().path(), path);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        send.send_response(Response::new(Body::from(bytes)));
    }

    #[tokio::test]
    async fn reads_role_annotation_and_node_region() {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut handle = Box::pin(handle);
            answer(
                &mut handle,
                "/api/v1/namespaces/demo/serviceaccounts/web",
                serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "web", "annotations": {ROLE_ANNOTATION: "arn:aws:iam::1:role/web"}}}),
            )
            .await;
            answer(
                &mut handle,
                "/api/v1/namespaces/demo/pods/web-0",
                serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
                    "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]}}),
            )
            .await;
            answer(
                &mut handle,
                "/api/v1/nodes/node-a",
                serde_json::json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": "node-a", "labels": {REGION_LABEL: "eu-central-1"}}}),
            )
            .await;
        });
        let lookup = KubeLookup::with_client(kube::Client::new(service, "default"));
        let role = lookup.role_arn("demo", "web").await.expect("role lookup");
        assert_eq!(role.as_deref(), Some("arn:aws:iam::1:role/web"));
        let region = lookup
            .node_region("demo", "web-0")
            .await
            .expect("region lookup");
        assert_eq!(region.as_deref(), Some("eu-central-1"));
        server.await.expect("mock server");
    }
}
