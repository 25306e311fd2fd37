//! Test harness for the provider: the real gRPC server on a temp unix socket, a fake Pod
//! Identity agent on 127.0.0.1, mocked AWS clients (aws-smithy-mocks) and captured logs.
#![allow(dead_code)]

pub mod fixtures;
pub mod moto;
pub mod process;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_csi_provider::auth::PodIdentityAgent;
use aws_csi_provider::clients::AwsFactory;
use aws_csi_provider::cluster::{ClusterLookup, Lookup};
use aws_csi_provider::metrics::Metrics;
use aws_csi_provider::mount::{MountConfig, Mounter};
use aws_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use aws_csi_provider::proto::{MountRequest, MountResponse};
use aws_csi_provider::server::{SOCKET_NAME, serve_unix};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Bytes;
use tonic::transport::{Channel, Endpoint};

/// Mocked AWS rules per region.
#[derive(Default, Clone)]
pub struct FakeAws {
    pub sm: HashMap<String, Vec<Rule>>,
    pub ssm: HashMap<String, Vec<Rule>>,
    pub sts: Vec<Rule>,
}

fn interceptor(rules: &[Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    )
}

/// What every mocked client shares: its region, its credentials (when it signs), no retries,
/// and the mock HTTP client.
fn mock_config(region: &str, creds: Option<&Credentials>) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .http_client(create_mock_http_client());
    if let Some(creds) = creds {
        builder = builder.credentials_provider(SharedCredentialsProvider::new(creds.clone()));
    }
    builder.build()
}

/// The rules of `region` in `rules` (none: every call fails as unmatched).
fn rules_of(rules: &HashMap<String, Vec<Rule>>, region: &str) -> MockResponseInterceptor {
    interceptor(&rules.get(region).cloned().unwrap_or_default())
}

impl AwsFactory for FakeAws {
    fn secrets_manager(&self, region: &str, creds: &Credentials) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::config::Builder::from(&mock_config(region, Some(creds)))
            .interceptor(rules_of(&self.sm, region))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    fn ssm(&self, region: &str, creds: &Credentials) -> aws_sdk_ssm::Client {
        let conf = aws_sdk_ssm::config::Builder::from(&mock_config(region, Some(creds)))
            .interceptor(rules_of(&self.ssm, region))
            .build();
        aws_sdk_ssm::Client::from_conf(conf)
    }

    fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&mock_config(region, None))
            .interceptor(interceptor(&self.sts))
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }
}

/// Service accounts' role annotations and the node region.
#[derive(Default)]
pub struct FakeCluster {
    pub roles: HashMap<(String, String), String>,
    pub node_region: Option<String>,
}

impl ClusterLookup for FakeCluster {
    fn role_arn<'a>(&'a self, ns: &'a str, sa: &'a str) -> Lookup<'a> {
        let r = self.roles.get(&(ns.to_string(), sa.to_string())).cloned();
        Box::pin(async move { Ok(r) })
    }
    fn node_region<'a>(&'a self, _: &'a str, _: &'a str) -> Lookup<'a> {
        let r = self.node_region.clone();
        Box::pin(async move { Ok(r) })
    }
}

/// A fake Pod Identity agent: answers the expected token with credentials, others with 403.
pub struct FakeAgent {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl FakeAgent {
    /// Requests the agent has answered so far.
    pub fn requests(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub const AGENT_SECRET_KEY: &str = "agent-secret-key-DO-NOT-LOG";

pub async fn start_agent(expected_token: &'static str) -> FakeAgent {
    start_agent_with(expected_token, "ASIAFAKE", AGENT_SECRET_KEY, "session").await
}

/// A fake agent handing out the given keys (e.g. keys moto accepts).
pub async fn start_agent_with(
    expected_token: &'static str,
    access_key: &str,
    secret_key: &str,
    session_token: &str,
) -> FakeAgent {
    let reply_keys = Arc::new((
        access_key.to_string(),
        secret_key.to_string(),
        session_token.to_string(),
    ));
    let (listener, url) = agent_listener().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            let keys = reply_keys.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.clone();
                        let auth = req
                            .headers()
                            .get(hyper::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        async move {
                            let (status, body) = if auth == expected_token {
                                let exp = aws_smithy_types::DateTime::from(
                                    SystemTime::now() + Duration::from_secs(3600),
                                )
                                .fmt(aws_smithy_types::date_time::Format::DateTime)
                                .unwrap_or_default();
                                (
                                    200,
                                    format!(
                                        r#"{{"AccessKeyId":"{}","SecretAccessKey":"{}","Token":"{}","AccountId":"111122223333","Expiration":"{exp}"}}"#,
                                        keys.0, keys.1, keys.2
                                    ),
                                )
                            } else {
                                (403, r#"{"message":"invalid token"}"#.to_string())
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                                .unwrap_or(hyper::StatusCode::OK);
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    FakeAgent { url, hits }
}

/// A listener on a free local port, and the Pod Identity agent URL it would serve.
pub async fn agent_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind agent");
    let addr = listener.local_addr().expect("agent address");
    (listener, format!("http://{addr}/v1/credentials"))
}

/// Captured log output of the test (all levels of this crate).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|g| g.clone()).unwrap_or_default()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut g) = self.0.lock() {
            g.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running provider and a client connected to its socket.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub client: CsiDriverProviderClient<Channel>,
    pub metrics: Arc<Metrics>,
    pub logs: Logs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _log_guard: tracing::subscriber::DefaultGuard,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start(
    aws: impl AwsFactory + 'static,
    cluster: FakeCluster,
    agent_url: &str,
    config: MountConfig,
) -> Harness {
    start_with_cluster(aws, cluster, agent_url, config).await
}

/// [`start`] with no service account annotations, no node region, and a fake agent that
/// accepts [`POD_TOKEN`]: the usual Pod Identity setup.
pub async fn with_agent(
    aws: impl AwsFactory + 'static,
    config: MountConfig,
) -> (FakeAgent, Harness) {
    let agent = start_agent(POD_TOKEN).await;
    let h = start(aws, FakeCluster::default(), &agent.url, config).await;
    (agent, h)
}

/// [`start`] with any cluster lookup.
pub async fn start_with_cluster(
    aws: impl AwsFactory + 'static,
    cluster: impl ClusterLookup + 'static,
    agent_url: &str,
    config: MountConfig,
) -> Harness {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let metrics = Arc::new(Metrics::new());
    let agent = PodIdentityAgent::new(Duration::from_secs(2), Some(agent_url.to_string()))
        .expect("agent client")
        .with_retries(2, Duration::from_millis(10));
    let mounter = Arc::new(Mounter::new(
        config,
        Arc::new(aws),
        Arc::new(cluster),
        agent,
        metrics.clone(),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let serve_dir = path.clone();
    tokio::spawn(async move {
        let _ = serve_unix(
            &serve_dir,
            mounter,
            move || {
                let _ = ready_tx.send(());
            },
            async {
                let _ = stopped.await;
            },
        )
        .await;
    });
    let _ = ready_rx.await;
    Harness {
        dir,
        client: connect(path.join(SOCKET_NAME)).await,
        metrics,
        logs,
        stop: Some(stop),
        _log_guard: guard,
    }
}

/// Connects tonic to a unix socket.
#[derive(Clone)]
pub struct UnixConnector(pub std::path::PathBuf);

impl tonic::codegen::Service<tonic::codegen::http::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        })
    }
}

/// Attributes as the driver sends them: SPC parameters plus pod info and tokens.
pub fn attributes(params: &[(&str, &str)], tokens: Option<&str>) -> String {
    let mut m = serde_json::Map::new();
    m.insert("csi.storage.k8s.io/pod.name".into(), "web-0".into());
    m.insert("csi.storage.k8s.io/pod.namespace".into(), "demo".into());
    m.insert("csi.storage.k8s.io/pod.uid".into(), "uid-1".into());
    m.insert(
        "csi.storage.k8s.io/serviceAccount.name".into(),
        "web".into(),
    );
    if let Some(t) = tokens {
        m.insert("csi.storage.k8s.io/serviceAccount.tokens".into(), t.into());
    }
    for (k, v) in params {
        m.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(m).to_string()
}

/// Attributes of a Pod Identity mount of `objects` in us-east-1, with `params` added to the
/// parameters (or replacing one of them) and the tokens JSON `tokens`.
pub fn attrs_with(params: &[(&str, &str)], objects: &str, tokens: &str) -> String {
    let mut all = vec![
        ("usePodIdentity", "true"),
        ("region", "us-east-1"),
        ("objects", objects),
    ];
    all.extend_from_slice(params);
    attributes(&all, Some(tokens))
}

pub const POD_TOKEN: &str = "pod-identity-token-DO-NOT-LOG";
pub const STS_TOKEN: &str = "sts-token-DO-NOT-LOG";

/// Tokens JSON with both audiences.
pub fn both_tokens() -> String {
    format!(
        r#"{{"pods.eks.amazonaws.com":{{"token":"{POD_TOKEN}","expirationTimestamp":"2030-01-01T00:00:00Z"}},"sts.amazonaws.com":{{"token":"{STS_TOKEN}","expirationTimestamp":"2030-01-01T00:00:00Z"}}}}"#
    )
}

pub async fn mount(h: &mut Harness, attributes: String) -> Result<MountResponse, tonic::Status> {
    h.client
        .mount(MountRequest {
            target_path: "/var/lib/kubelet/pods/uid-1/volumes/x".into(),
            ..mount_request(attributes)
        })
        .await
        .map(|r| r.into_inner())
}

/// The files of a mount response: (path, contents), in the order the provider wrote them.
pub fn files_of(resp: &MountResponse) -> Vec<(&str, &[u8])> {
    resp.files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_slice()))
        .collect()
}

/// Asserts that the error's message says each of `texts`.
pub fn assert_says(e: &tonic::Status, texts: &[&str]) {
    for text in texts {
        assert!(
            e.message().contains(text),
            "{:?} does not say {text:?}",
            e.message()
        );
    }
}

/// Successful AWS calls of `operation`, from the metrics.
pub fn calls(h: &Harness, operation: &str) -> u64 {
    let needle = format!("operation=\"{operation}\",outcome=\"ok\"}} ");
    h.metrics
        .render()
        .lines()
        .find_map(|l| {
            l.split_once(&needle)
                .map(|(_, n)| n.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// The object versions of a mount response: (id, version), in the order the provider listed them.
pub fn versions_of(resp: &MountResponse) -> Vec<(&str, &str)> {
    resp.object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect()
}

/// A gRPC client of the provider socket at `socket`.
pub async fn connect(socket: std::path::PathBuf) -> CsiDriverProviderClient<Channel> {
    let channel = Endpoint::try_from("http://[::1]:1")
        .expect("endpoint")
        .connect_with_connector(UnixConnector(socket))
        .await
        .expect("connect to provider socket");
    CsiDriverProviderClient::new(channel)
}

/// A mount request as the driver sends it.
pub fn mount_request(attributes: String) -> MountRequest {
    MountRequest {
        attributes,
        secrets: "{}".into(),
        target_path: "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount".into(),
        permission: "\"420\"".into(),
        current_object_version: vec![],
    }
}
