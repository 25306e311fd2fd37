//! The acceptance suite's settings (stand-in or real account, the prefix guard), the names it
//! creates under its prefix, and the cleanup of everything it made outside bootstrap.

pub mod controller;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams};
use serde_json::Value;

/// Where the suite runs and what it may touch, from the environment `tests/acceptance/run.sh`
/// exports.
#[derive(Debug, Clone)]
pub struct Settings {
    pub real: bool,
    pub cluster: String,
    pub prefix: String,
    pub rotation_timeout: Duration,
    pub image: String,
    /// The stand-in's state directory (the kubelet shim's view of mounts); `None` when real.
    pub state_dir: Option<String>,
    /// `up --controller`'s image: BOOTSTRAP_CONTROLLER_IMAGE; on the stand-in a reference
    /// nobody pulls (kwok runs no container) when unset; on a real account, unset skips the
    /// controller part.
    pub controller_image: Option<String>,
}

/// The longest prefix: `<prefix>-acc-irsa` must stay a valid namespace and IAM role name.
pub const MAX_PREFIX: usize = 40;

/// Refuses a prefix that is not a DNS label start, or a cluster whose name does not start with it.
pub fn guard(cluster: &str, prefix: &str) -> Result<(), String> {
    let valid = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "prefix {prefix:?} must be 1-{MAX_PREFIX} characters of a-z, 0-9 and '-', starting with a letter or digit"
        ));
    }
    if !cluster.starts_with(prefix) {
        return Err(format!(
            "refusing to run against cluster {cluster:?}: its name does not start with the prefix {prefix:?} (the suite ends with `bootstrap down`, which deletes everything bootstrap owns on the cluster)"
        ));
    }
    Ok(())
}

impl Settings {
    /// The settings, or `None` (with the reason printed) when the suite was not asked for.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if var("BOOTSTRAP_ACCEPTANCE").as_deref() != Some("1") {
            eprintln!("skipped: the acceptance suite runs from tests/acceptance/run.sh");
            return None;
        }
        let real = var("BOOTSTRAP_ACCEPTANCE_REAL").as_deref() == Some("1");
        let cluster = var("BOOTSTRAP_ACCEPTANCE_CLUSTER")
            .or_else(|| (!real).then(|| var("BOOTSTRAP_TEST_CLUSTER")).flatten())
            .expect("BOOTSTRAP_ACCEPTANCE_CLUSTER (or, on the stand-in, BOOTSTRAP_TEST_CLUSTER)");
        let prefix = var("BOOTSTRAP_ACCEPTANCE_PREFIX")
            .or_else(|| (!real).then(|| cluster.clone()))
            .expect("BOOTSTRAP_ACCEPTANCE_PREFIX");
        if let Err(why) = guard(&cluster, &prefix) {
            panic!("{why}");
        }
        let secs = var("BOOTSTRAP_ACCEPTANCE_ROTATION_TIMEOUT")
            .map(|v| {
                v.parse::<u64>()
                    .expect("BOOTSTRAP_ACCEPTANCE_ROTATION_TIMEOUT: seconds")
            })
            .unwrap_or(if real { 300 } else { 120 });
        Some(Settings {
            real,
            cluster,
            prefix,
            rotation_timeout: Duration::from_secs(secs),
            image: var("BOOTSTRAP_ACCEPTANCE_IMAGE")
                .unwrap_or_else(|| "public.ecr.aws/docker/library/busybox:1.37".into()),
            controller_image: var("BOOTSTRAP_CONTROLLER_IMAGE").or_else(|| {
                (!real).then(|| "localhost/bootstrap-controller:acceptance-not-pulled".into())
            }),
            state_dir: if real {
                None
            } else {
                Some(
                    var("BOOTSTRAP_ENV_STATE")
                        .expect("BOOTSTRAP_ENV_STATE (source tests/env/state/env.sh)"),
                )
            },
        })
    }

    pub fn name(&self, what: &str) -> String {
        format!("{}-acc-{what}", self.prefix)
    }

    /// A Secrets Manager name under the prefix.
    pub fn secret(&self, what: &str) -> String {
        format!("{}-acc/{what}", self.prefix)
    }

    /// The namespaces the suite makes or has bootstrap make.
    pub fn namespaces(&self) -> [String; 4] {
        [
            self.name("demo"),
            self.name("team"),
            self.name("irsa"),
            self.name("self"),
        ]
    }
}

/// Prints a step with the time since `start` (stderr; never a secret value).
pub fn step(start: Instant, what: &str) {
    eprintln!(
        "[acceptance {:>6.1}s] {what}",
        start.elapsed().as_secs_f64()
    );
}

/// Runs the bootstrap binary.
pub fn bootstrap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("bootstrap runs")
}

/// Runs the bootstrap binary off the async runtime; fails the test unless it exits 0, and
/// returns its JSON output.
pub async fn bootstrap_json(args: Vec<String>) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        (args.clone(), bootstrap(&a))
    })
    .await
    .expect("join");
    let (args, out) = out;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "bootstrap {} failed ({:?}): {}\n{json:#}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Deletes our pods and the IRSA workload's namespace and association, runs `bootstrap down`,
/// then removes the rest of what the suite made itself (the IRSA role, the secrets it created).
/// Idempotent; returns what could not be removed.
pub async fn cleanup(
    s: &Settings,
    kube: &kube::Client,
    cfg: &aws_config::SdkConfig,
) -> Vec<String> {
    // Teams' requests first: while one exists, `down` refuses to run.
    let mut problems = controller::cleanup(s, kube).await;
    for ns in s.namespaces() {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &ns);
        if let Err(e) = pods.delete("app", &DeleteParams::default()).await
            && !is_not_found(&e)
        {
            problems.push(format!("delete pod {ns}/app: {e}"));
        }
    }
    for ns in s.namespaces() {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &ns);
        let deadline = Instant::now() + Duration::from_secs(120);
        while matches!(pods.get_opt("app").await, Ok(Some(_))) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let irsa_ns = s.name("irsa");
    let eks = aws_sdk_eks::Client::new(cfg);
    if let Ok(list) = eks
        .list_pod_identity_associations()
        .cluster_name(&s.cluster)
        .namespace(&irsa_ns)
        .send()
        .await
    {
        for a in list.associations() {
            if let Err(e) = eks
                .delete_pod_identity_association()
                .cluster_name(&s.cluster)
                .association_id(a.association_id().unwrap_or_default())
                .send()
                .await
            {
                problems.push(format!("delete association in {irsa_ns}: {e}"));
            }
        }
    }
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    // The IRSA workload's and the self-onboarded team's namespaces: the suite made them.
    for ns in [&irsa_ns, &s.name("self")] {
        if let Err(e) = namespaces.delete(ns, &DeleteParams::default()).await
            && !is_not_found(&e)
        {
            problems.push(format!("delete namespace {ns}: {e}"));
        }
    }
    // The IRSA workload's SecretProviderClass is not bootstrap's: while it exists, `down`
    // rightly keeps the driver it needs. So it goes first.
    let deadline = Instant::now() + Duration::from_secs(180);
    while matches!(namespaces.get_opt(&irsa_ns).await, Ok(Some(_))) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let args: Vec<String> = [
        "down",
        "--cluster",
        &s.cluster,
        "--yes",
        "--output",
        "json",
        "-q",
        "--timeout",
        "15m",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        bootstrap(&a)
    })
    .await
    .expect("join");
    if !out.status.success() {
        problems.push(format!(
            "bootstrap down failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let iam = aws_sdk_iam::Client::new(cfg);
    let role = s.name("irsa");
    if let Err(e) = crate::common::cleanup::delete_role(&iam, &role).await
        && !e
            .as_service_error()
            .is_some_and(|e| e.is_no_such_entity_exception())
    {
        problems.push(format!("delete IAM role {role}: {e}"));
    }
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    for name in [
        s.secret("team/db"),
        s.secret("irsa/token"),
        s.secret("self/db"),
    ] {
        if sm.describe_secret().secret_id(&name).send().await.is_ok()
            && let Err(e) = sm
                .delete_secret()
                .secret_id(&name)
                .force_delete_without_recovery(true)
                .send()
                .await
        {
            problems.push(format!("delete secret {name}: {e}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for ns in s.namespaces() {
        while matches!(namespaces.get_opt(&ns).await, Ok(Some(_))) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Ok(Some(_)) = namespaces.get_opt(&ns).await {
            problems.push(format!("namespace {ns} is still there"));
        }
    }
    problems
}
