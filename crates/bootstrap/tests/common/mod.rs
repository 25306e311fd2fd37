//! Shared helpers for tests that run against the local EKS stand-in (tests/env).
#![allow(dead_code)]

pub mod cleanup;
pub mod cli;
pub mod fixture;
pub mod inventory;
pub mod make;
pub mod session;

#[allow(unused_imports)]
pub(crate) use session::{Session, session};

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

/// The environment's image registry (`HOST:PORT`) and the provider image's OCI layout, or
/// `None` (with the reason printed; a failure under `BOOTSTRAP_REQUIRE_ENV`) without them.
pub fn registry() -> Option<(String, String)> {
    match (
        std::env::var("BOOTSTRAP_ENV_REGISTRY"),
        std::env::var("BOOTSTRAP_ENV_PROVIDER_LAYOUT"),
    ) {
        (Ok(registry), Ok(layout)) => Some((registry, layout)),
        _ => {
            bootstrap_common::testenv::skip("the environment has no registry");
            None
        }
    }
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

/// The Pod Identity associations of namespace `ns` on `cluster` (of `service_account` only,
/// when given).
pub async fn associations(
    cfg: &aws_config::SdkConfig,
    cluster: &str,
    ns: &str,
    service_account: Option<&str>,
) -> Vec<aws_sdk_eks::types::PodIdentityAssociationSummary> {
    aws_sdk_eks::Client::new(cfg)
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(ns)
        .set_service_account(service_account.map(String::from))
        .send()
        .await
        .expect("ListPodIdentityAssociations")
        .associations
        .unwrap_or_default()
}

/// Runs the future `work` makes to completion on a thread and runtime of its own: for a guard's
/// `Drop`, which cannot await and may run inside the test's runtime. Returns whether it ended
/// without a panic.
pub fn block_on_own_thread<F, Fut>(work: F) -> bool
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work())
    })
    .join()
    .is_ok()
}

/// The SecretProviderClasses of namespace `ns`.
pub fn spc_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk =
        kube::api::GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses"),
    )
}

/// Waits (at most 60 s) for a FailedMount event in namespace `ns` whose message `wanted`
/// accepts, and returns that message; `what` names it in the timeout's failure.
pub async fn failed_mount(
    client: &Client,
    ns: &str,
    what: &str,
    wanted: impl Fn(&k8s_openapi::api::core::v1::Event, &str) -> bool,
) -> String {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let wanted = &wanted;
    eventually(what, 60, || {
        let events = events.clone();
        async move {
            events
                .list(&kube::api::ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find_map(|e| {
                    let m = e.message.clone().unwrap_or_default();
                    (e.reason.as_deref() == Some("FailedMount") && wanted(&e, &m)).then_some(m)
                })
        }
    })
    .await
}

/// Creates a Pod Identity association of `ns`/`service_account` with `role_arn`, by hand (no
/// bootstrap tags); its id.
pub async fn associate(
    cfg: &aws_config::SdkConfig,
    cluster: &str,
    ns: &str,
    service_account: &str,
    role_arn: &str,
) -> String {
    aws_sdk_eks::Client::new(cfg)
        .create_pod_identity_association()
        .cluster_name(cluster)
        .namespace(ns)
        .service_account(service_account)
        .role_arn(role_arn)
        .send()
        .await
        .expect("CreatePodIdentityAssociation")
        .association
        .and_then(|a| a.association_id)
        .unwrap_or_default()
}

/// The account the AWS config's credentials belong to (STS GetCallerIdentity).
pub async fn account(cfg: &aws_config::SdkConfig) -> String {
    let sts = aws_sdk_sts::Client::new(cfg);
    let identity = sts.get_caller_identity().send().await;
    let identity = identity.unwrap_or_else(|e| panic!("GetCallerIdentity: {e:?}"));
    identity.account.expect("GetCallerIdentity: no account")
}

/// IAM role `name`, or `None` when GetRole fails (no such role).
pub async fn role(iam: &aws_sdk_iam::Client, name: &str) -> Option<aws_sdk_iam::types::Role> {
    iam.get_role().role_name(name).send().await.ok()?.role
}

/// EKS DescribeCluster of `name`: the cluster.
pub async fn describe_cluster(
    cfg: &aws_config::SdkConfig,
    name: &str,
) -> aws_sdk_eks::types::Cluster {
    let eks = aws_sdk_eks::Client::new(cfg);
    let described = eks.describe_cluster().name(name).send().await;
    let described = described.unwrap_or_else(|e| panic!("DescribeCluster {name}: {e:?}"));
    described.cluster.expect("DescribeCluster: no cluster")
}

/// Creates Secrets Manager secret `name` holding `value` (not registered for removal: see
/// [`cleanup::Cleanup::secret`]); returns its ARN.
pub async fn create_secret(cfg: &aws_config::SdkConfig, name: &str, value: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    make::secret(&sm, name, value)
        .await
        .arn
        .unwrap_or_else(|| panic!("CreateSecret {name}: no ARN"))
}

/// An IAM policy document as IAM returns it (URL-encoded) decoded to its JSON text.
pub fn url_decode(raw: &str) -> String {
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
