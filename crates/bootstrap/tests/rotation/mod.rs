//! The cluster's DaemonSets and the environment's per-node processes that follow them
//! (tests/env/kubelet/follow.py), for the rotation, sync and failover tests: which provider
//! runs, with which flags, and a guard that puts the environment back even when a test fails.
#![allow(dead_code)]

pub mod scenarios;

use std::time::Duration;

use bootstrap::render::csi_driver::{CsiDriverValues, Rotation};
use bootstrap::render::provider::ProviderValues;
use bootstrap::render::provider_upstream::UpstreamProviderValues;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, DeleteParams};
use serde_json::Value;

use crate::common;

/// The driver's `--rotation-poll-interval` in these tests (since v1.6.0: the minimum age of a
/// mount's content before a re-publish refreshes it).
pub const POLL: Duration = Duration::from_secs(2);
/// How often the environment's kubelet shim re-publishes (BOOTSTRAP_ENV_REPUBLISH_SECONDS).
pub fn republish() -> Duration {
    let secs = std::env::var("BOOTSTRAP_ENV_REPUBLISH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Which AWS provider a scenario runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ours,
    Upstream,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Ours => "ours",
            Provider::Upstream => "upstream",
        }
    }

    /// What the running provider's command line contains.
    fn needle(self) -> &'static str {
        match self {
            Provider::Ours => "aws-csi-provider",
            Provider::Upstream => "secrets-store-csi-driver-provider-aws",
        }
    }

    /// The manifests bootstrap renders for this provider, with `extra_args`.
    pub fn manifests(self, extra_args: &[&str]) -> Vec<Value> {
        let extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        match self {
            Provider::Ours => bootstrap::render::provider::render(&ProviderValues {
                image: Some(
                    std::env::var("BOOTSTRAP_ENV_PROVIDER_IMAGE")
                        .ok()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "127.0.0.1/bootstrap/aws-csi-provider:env".into()),
                ),
                extra_args,
                ..Default::default()
            })
            .expect("render our provider"),
            Provider::Upstream => {
                bootstrap::render::provider_upstream::render(&UpstreamProviderValues {
                    extra_args,
                    ..Default::default()
                })
                .expect("render the upstream provider")
            }
        }
    }

    /// Whether the environment can run it: the upstream binary comes from
    /// `tests/env/build.sh upstream-provider`, which needs upstream's source tarball.
    pub fn available(self) -> bool {
        self == Provider::Ours || std::path::Path::new(&upstream_binary()).exists()
    }
}

fn upstream_binary() -> String {
    let cache = std::env::var("BOOTSTRAP_ENV_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/bootstrap-env",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    format!("{cache}/upstream-aws-provider-3.1.1/secrets-store-csi-driver-provider-aws")
}

/// The driver as bootstrap renders it with rotation every [`POLL`] and sync on.
pub fn driver_values(rotation: Option<&str>, sync: bool) -> CsiDriverValues {
    CsiDriverValues {
        rotation: Rotation {
            enabled: rotation.is_some(),
            poll_interval: rotation.unwrap_or("2m").into(),
        },
        sync_secrets: sync,
        ..Default::default()
    }
}

pub async fn apply_driver(kube: &kube::Client, values: &CsiDriverValues) {
    let objs = bootstrap::render::csi_driver::render(values).expect("render the driver");
    common::apply_all(kube, "bootstrap-rotation-test", &objs).await;
}

/// Applies `provider`'s manifests after removing the other provider's DaemonSet (bootstrap
/// never runs both: they would serve the same socket).
pub async fn apply_provider(kube: &kube::Client, provider: Provider, extra_args: &[&str]) {
    let other = match provider {
        Provider::Ours => Provider::Upstream,
        Provider::Upstream => Provider::Ours,
    };
    delete_provider(kube, other).await;
    common::apply_all(
        kube,
        "bootstrap-rotation-test",
        &provider.manifests(extra_args),
    )
    .await;
}

pub async fn delete_provider(kube: &kube::Client, provider: Provider) {
    let name = match provider {
        Provider::Ours => bootstrap::render::provider::PROVIDER_NAME,
        Provider::Upstream => bootstrap::render::provider_upstream::UPSTREAM_NAME,
    };
    let dss: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
    let _ = dss.delete(name, &DeleteParams::default()).await;
    if provider == Provider::Upstream {
        // Its RBAC too: the environment is left as the test found it (no upstream provider).
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        delete_if_there::<ClusterRole>(kube, "csi-secrets-store-provider-aws-cluster-role").await;
        delete_if_there::<ClusterRoleBinding>(
            kube,
            "csi-secrets-store-provider-aws-cluster-rolebinding",
        )
        .await;
    }
}

/// Deletes cluster-scoped object `name` of kind `K`; one that is not there is fine.
async fn delete_if_there<K>(kube: &kube::Client, name: &str)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let _ = Api::<K>::all(kube.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// The command line of the environment's process `name` (csi-driver-0, aws-csi-provider).
pub fn cmdline(state_dir: &str, name: &str) -> Option<Vec<String>> {
    let pid = std::fs::read_to_string(format!("{state_dir}/nodes/{name}/pid")).ok()?;
    let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Waits until process `name` runs with a command line for which `want` holds.
pub async fn process_runs(
    state_dir: &str,
    name: &str,
    what: &str,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    common::eventually(&format!("{name} to run {what}"), 60, || {
        let got = cmdline(state_dir, name).filter(|c| want(c));
        async move { got }
    })
    .await
}

/// Waits until `provider` serves the environment's aws.sock from a process whose command line
/// satisfies `want` (so that a test does not talk to the process being replaced).
pub async fn provider_serves(
    state_dir: &str,
    provider: Provider,
    want: impl Fn(&[String]) -> bool,
) {
    let sock = format!("{state_dir}/providers/aws.sock");
    let runs = |c: &[String]| c.iter().any(|a| a.contains(provider.needle())) && want(c);
    process_runs(state_dir, "aws-csi-provider", provider.name(), runs).await;
    common::eventually(
        &format!("the {} provider's socket", provider.name()),
        60,
        || {
            let ok = std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && cmdline(state_dir, "aws-csi-provider").is_some_and(|c| runs(&c));
            async move { ok.then_some(()) }
        },
    )
    .await;
}

/// The provider as its DaemonSet (bootstrap's render: `--mount-deadline` is always there for
/// ours) runs it.
pub fn from_daemonset(c: &[String]) -> bool {
    c.iter().any(|a| a.starts_with("--mount-deadline="))
        || c.iter().any(|a| a.contains("upstream-run.py"))
}

/// Waits until every fake node's driver accepts connections on its socket.
pub async fn drivers_listen(env: &common::Env) {
    for i in 0..env.nodes.len() {
        let sock = format!("{}/csi/node{i}/csi.sock", env.state_dir);
        common::eventually(&format!("driver {i} to listen"), 60, || {
            let ok = std::os::unix::net::UnixStream::connect(&sock).is_ok();
            async move { ok.then_some(()) }
        })
        .await;
    }
}

/// Puts the environment back when dropped (test passed or not): no provider DaemonSet (the
/// environment's own provider runs again), the driver as bootstrap renders it by default, no
/// fault rule left.
pub struct Restore {
    pub state_dir: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let state_dir = self.state_dir.clone();
        common::block_on_own_thread(move || async move {
            let kube = common::kube().await;
            let _ = reqwest::Client::new()
                .delete(common::cli::control("/faults"))
                .send()
                .await;
            delete_provider(&kube, Provider::Upstream).await;
            delete_provider(&kube, Provider::Ours).await;
            apply_driver(&kube, &CsiDriverValues::default()).await;
            provider_serves(&state_dir, Provider::Ours, |c| !from_daemonset(c)).await;
        });
    }
}

/// The stand-in's per-operation call counters.
pub async fn calls() -> std::collections::BTreeMap<String, u64> {
    reqwest::get(common::cli::control("/calls"))
        .await
        .expect("GET /calls")
        .json()
        .await
        .expect("calls JSON")
}

/// Adds a fault rule to the stand-in.
pub async fn fault(rule: Value) {
    common::cli::faults(&reqwest::Client::new(), Some(rule)).await;
}

/// How many times the driver logged a completed publish for `target` (the first mount and
/// every re-publish that reached the provider; skipped ones log nothing).
pub fn publishes(state_dir: &str, target: &str) -> usize {
    (0..2)
        .map(|i| {
            std::fs::read_to_string(format!("{state_dir}/logs/csi-driver-{i}.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("node publish volume complete") && l.contains(target))
                .count()
        })
        .sum()
}

/// The provider's log from byte `from` on.
pub fn provider_log_since(state_dir: &str, from: usize) -> String {
    let log = std::fs::read(format!("{state_dir}/logs/aws-csi-provider.log")).unwrap_or_default();
    String::from_utf8_lossy(log.get(from..).unwrap_or_default()).into_owned()
}

pub fn provider_log_len(state_dir: &str) -> usize {
    std::fs::metadata(format!("{state_dir}/logs/aws-csi-provider.log"))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}
