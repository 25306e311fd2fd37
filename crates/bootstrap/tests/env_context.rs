//! The cluster you named and no other: a kubeconfig context that carries the cluster's name
//! but points at another server is never dialled; the context whose server is the cluster's
//! endpoint is the one used, whatever order the kubeconfig lists them in.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::cli;

/// A TCP listener that counts connection attempts: the "other cluster".
fn decoy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = format!("https://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (server, count)
}

/// A kubeconfig whose first context is named after the cluster and points at `decoy`,
/// followed by the environment's own contexts when `keep_real`.
fn kubeconfig(dir: &Path, cluster: &str, decoy: &str, keep_real: bool) -> std::path::PathBuf {
    let real = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let mut config: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&real).expect("read kubeconfig"))
            .expect("parse kubeconfig");
    let user = config["contexts"][0]["context"]["user"].clone();
    let mut clusters = vec![serde_json::json!({
        "name": format!("arn:aws:eks:eu-west-1:999999999999:cluster/{cluster}"),
        "cluster": {"server": decoy, "insecure-skip-tls-verify": true},
    })];
    let mut contexts = vec![serde_json::json!({
        "name": cluster,
        "context": {"cluster": format!("arn:aws:eks:eu-west-1:999999999999:cluster/{cluster}"), "user": user},
    })];
    if keep_real {
        clusters.extend(config["clusters"].as_array().cloned().unwrap_or_default());
        contexts.extend(config["contexts"].as_array().cloned().unwrap_or_default());
    }
    config["clusters"] = clusters.into();
    config["contexts"] = contexts.into();
    config["current-context"] = cluster.into();
    let path = dir.join(if keep_real { "both.yaml" } else { "decoy.yaml" });
    std::fs::write(&path, config.to_string()).expect("write"); // JSON is YAML
    path
}

#[tokio::test]
async fn a_same_named_context_on_another_server_is_never_dialled() {
    let Some(env) = common::env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, dialled) = decoy();
    let plan = |kubeconfig: std::path::PathBuf| {
        cli::run_via(
            cli::args(&["up", "--cluster", &env.cluster, "--dry-run"]),
            None,
            Some(kubeconfig),
        )
    };

    // Only the decoy names the cluster: refused before any Kubernetes call, naming both servers.
    let out = plan(kubeconfig(dir.path(), &env.cluster, &server, false)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a name-only match must be refused");
    assert!(
        stderr.contains(&server),
        "names the context's server: {stderr}"
    );
    assert!(
        stderr.contains("https://127.0.0.1:"),
        "names the cluster's endpoint: {stderr}"
    );
    assert!(
        stderr.contains("update-kubeconfig"),
        "says what to do: {stderr}"
    );

    // The decoy listed first and the real context after it: the real one is chosen.
    let out = plan(kubeconfig(dir.path(), &env.cluster, &server, true)).await;
    cli::ok(
        &out,
        "up --dry-run through the context whose server is the cluster's",
    );

    assert_eq!(
        dialled.load(Ordering::SeqCst),
        0,
        "the decoy server was dialled"
    );
}
