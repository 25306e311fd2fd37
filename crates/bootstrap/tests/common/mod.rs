//! Shared helpers for tests that run against the local EKS stand-in (tests/env).
#![allow(dead_code)]

pub mod cleanup;
pub mod cli;
pub mod fixture;
pub mod inventory;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};

/// What `tests/env/state/env.sh` exports.
pub struct Env {
    pub cluster: String,
    pub state_dir: String,
    pub agent_endpoint: String,
    pub nodes: Vec<String>,
}

/// The environment, or `None` (with the reason printed) when tests run without it.
/// With `BOOTSTRAP_REQUIRE_ENV` set (as `tests/run.sh` does) a missing environment fails.
pub fn env() -> Option<Env> {
    let Ok(cluster) = std::env::var("BOOTSTRAP_TEST_CLUSTER") else {
        bootstrap_common::testenv::skip("the local environment is not up");
        return None;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    Some(Env {
        cluster,
        state_dir: var("BOOTSTRAP_ENV_STATE"),
        agent_endpoint: var("POD_IDENTITY_ENDPOINT"),
        nodes: var("BOOTSTRAP_TEST_NODES")
            .split_whitespace()
            .map(String::from)
            .collect(),
    })
}

/// A name unique to this test run, for resources that must not collide across runs.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{:x}", nanos & 0xff_ffff_ffff)
}

pub async fn kube() -> Client {
    Client::try_default()
        .await
        .expect("kube client from KUBECONFIG")
}

pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Polls `f` every 200 ms until it returns `Some`, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server-side applies arbitrary objects (as JSON), resolving each kind through discovery.
pub async fn apply_all(client: &Client, manager: &str, objs: &[serde_json::Value]) {
    let mut discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for obj in objs {
        let api_version = obj["apiVersion"].as_str().expect("apiVersion");
        let kind = obj["kind"].as_str().expect("kind");
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let mut found = discovery.resolve_gvk(&gvk);
        if found.is_none() {
            // A CRD applied just before: refresh discovery once it is served.
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                discovery = Discovery::new(client.clone())
                    .run()
                    .await
                    .expect("discovery");
                found = discovery.resolve_gvk(&gvk);
                if found.is_some() {
                    break;
                }
            }
        }
        let (ar, caps): (ApiResource, ApiCapabilities) =
            found.unwrap_or_else(|| panic!("{api_version}/{kind} is not served by the apiserver"));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &ar),
            Scope::Namespaced => {
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &ar)
            }
        };
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| panic!("server-side apply of {kind}/{name} failed: {e}"));
    }
}

/// Creates (applies) a namespace labelled as a test namespace.
pub async fn namespace(client: &Client, name: &str) {
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"bootstrap.test/env-test": "true"}}
    });
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        name,
        &PatchParams::apply("bootstrap-env-test").force(),
        &Patch::Apply(&ns),
    )
    .await
    .expect("apply namespace");
}

pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// Waits until every fake node's CSI driver listens on its socket. The environment's drivers
/// restart until their CRDs exist, so a test that just applied them waits here before
/// creating pods (kubelet would report "driver not found" events meanwhile, as it does).
pub async fn drivers_ready(env: &Env) {
    let sockets: Vec<String> = (0..env.nodes.len())
        .map(|i| format!("{}/csi/node{i}/csi.sock", env.state_dir))
        .collect();
    eventually("the CSI drivers to listen", 60, || {
        let ready = sockets.iter().all(|s| std::path::Path::new(s).exists());
        async move { ready.then_some(()) }
    })
    .await;
}

/// The trust policy of a Pod Identity role.
pub const POD_IDENTITY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// A token for service account `name` with one audience, from the apiserver's TokenRequest.
pub async fn sa_token(
    sas: &kube::Api<k8s_openapi::api::core::v1::ServiceAccount>,
    name: &str,
    audience: &str,
) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.into()],
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create_token_request(name, &kube::api::PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token
}
