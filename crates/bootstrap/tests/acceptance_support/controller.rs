//! The acceptance suite's controller part: what `up --controller` installed serves a team that
//! onboards itself with one TeamSecrets object. On the stand-in the Deployment's pods are kwok's
//! (nothing runs in them), so the controller runs as a host process with the identity `up`
//! made for it: its service account's token for the apiserver (the RBAC `up` applied) and, for
//! AWS, the credentials the Pod Identity agent serves for that token (the role and association
//! `up` made, under the stand-in's IAM enforcement). On a real cluster the Deployment does it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use super::{Settings, bootstrap};

/// The namespace and service account `up --controller` installs the controller as.
const NAMESPACE: &str = "kube-system";
const NAME: &str = "bootstrap-controller";

pub fn teamsecrets(kube: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("bootstrap.podid", "v1alpha1", "TeamSecrets");
    Api::namespaced_with(
        kube.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "teamsecrets"),
    )
}

pub fn allowances(kube: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("bootstrap.podid", "v1alpha1", "SecretAllowance");
    Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "secretallowances"),
    )
}

/// The host-process controller; killed when dropped (the test passed or not).
pub struct HostController {
    child: Child,
    log: tempfile::NamedTempFile,
    /// Its kubeconfig: a token of its service account.
    pub kubeconfig: std::path::PathBuf,
}

impl HostController {
    /// The last lines of its log (shown when a wait fails).
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for HostController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn token(kube: &kube::Client, audiences: Vec<String>) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(kube.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences,
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    sas.create_token_request(NAME, &Default::default(), &request)
        .await
        .expect("a token of the controller's service account (made by up --controller)")
        .status
        .expect("token")
        .token
}

/// Starts `bootstrap controller` as the installed Deployment would run it, with the identity
/// `up --controller` made (stand-in only).
pub async fn start_on_host(s: &Settings, kube: &kube::Client, boundary: &str) -> HostController {
    let dir = std::env::temp_dir();
    let api_token = token(kube, Vec::new()).await;
    let agent_token = token(kube, vec!["pods.eks.amazonaws.com".into()]).await;
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG (env.sh)");
    let mut config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(&admin).expect("the environment's kubeconfig"),
    )
    .expect("kubeconfig YAML");
    config["users"][0]["user"] = json!({ "token": api_token });
    let kubeconfig = tempfile::Builder::new()
        .prefix("acc-controller")
        .tempfile_in(&dir)
        .expect("kubeconfig file");
    std::fs::write(kubeconfig.path(), config.to_string()).expect("write kubeconfig");
    let kubeconfig = kubeconfig.into_temp_path().keep().expect("keep kubeconfig");
    let endpoint = std::env::var("POD_IDENTITY_ENDPOINT").expect("POD_IDENTITY_ENDPOINT (env.sh)");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args([
            "controller",
            "--cluster",
            &s.cluster,
            "--permissions-boundary",
            boundary,
            "--lease-namespace",
            NAMESPACE,
            "--identity",
            "acceptance-host",
            "--resync",
            "30s",
        ])
        .env("BOOTSTRAP_LOG", "info")
        .env("KUBECONFIG", &kubeconfig)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", agent_token)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log file"))
        .spawn()
        .expect("bootstrap controller starts");
    HostController {
        child,
        log,
        kubeconfig,
    }
}

fn ready(obj: &Value) -> Option<&str> {
    let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    current.then(|| c["status"].as_str()).flatten()
}

/// Waits for the object's Ready condition of its current generation to be True.
pub async fn wait_ready(
    api: &Api<DynamicObject>,
    name: &str,
    secs: u64,
    host: Option<&HostController>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(obj) = api
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|o| serde_json::to_value(o).ok())
        {
            if ready(&obj) == Some("True") {
                return obj;
            }
            last = obj;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "TeamSecrets {name} not Ready after {secs}s; status: {:#}\ncontroller log:\n{}",
        last["status"],
        host.map(HostController::tail).unwrap_or_default()
    );
}

/// Waits until the object is gone (its finalizer ran).
pub async fn wait_gone(api: &Api<DynamicObject>, name: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if matches!(api.get_opt(name).await, Ok(None)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// With the controller's own credentials, a pod that is not a verification pod (another image,
/// an API token) is refused by the admission policy `up --controller` installed, though its
/// RBAC allows creating pods there.
pub async fn foreign_pod_refused(host: &HostController, ns: &str) {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&host.kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("the controller's kubeconfig");
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "not-a-verification-pod",
                     "labels": {"app.kubernetes.io/managed-by": "bootstrap"}},
        "spec": {"serviceAccountName": "app",
                 "containers": [{"name": "x", "image": "public.ecr.aws/docker/library/busybox:1.37",
                                 "command": ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token"]}]},
    }))
    .expect("pod");
    match pods.create(&Default::default(), &pod).await {
        Err(kube::Error::Api(e)) => assert!(
            (e.code == 403 || e.code == 422) && e.message.contains("verification image"),
            "refused for another reason: {} {}",
            e.code,
            e.message
        ),
        other => panic!("the controller's credentials created an arbitrary pod: {other:?}"),
    }
}

/// `down --dry-run` while a TeamSecrets object exists: refused, naming it, nothing planned.
pub fn down_refuses(s: &Settings, ns: &str, name: &str) {
    let out = bootstrap(&["down", "--cluster", &s.cluster, "--dry-run", "-q"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "down ran beside a TeamSecrets: {err}"
    );
    assert!(
        err.contains("TeamSecrets object(s)") && err.contains(&format!("{ns}/{name}")),
        "{err}"
    );
}

/// The suite's TeamSecrets and SecretAllowance, removed: deleted (the controller finalizes),
/// and stripped of the finalizer if no controller does it within a minute.
pub async fn cleanup(s: &Settings, kube: &kube::Client) -> Vec<String> {
    let mut problems = Vec::new();
    let api = teamsecrets(kube, &s.name("self"));
    if let Ok(list) = api.list(&Default::default()).await {
        for o in list.items {
            let name = o.metadata.name.unwrap_or_default();
            let _ = api.delete(&name, &DeleteParams::default()).await;
            if !wait_gone(&api, &name, 60).await {
                let none = json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&none))
                    .await;
                if !wait_gone(&api, &name, 30).await {
                    problems.push(format!(
                        "TeamSecrets {}/{name} is still there",
                        s.name("self")
                    ));
                }
            }
        }
    }
    let all = allowances(kube);
    if let Err(kube::Error::Api(e)) = all.delete(&s.name("allow"), &DeleteParams::default()).await
        && e.code != 404
    {
        problems.push(format!(
            "delete SecretAllowance {}: {}",
            s.name("allow"),
            e.message
        ));
    }
    problems
}
