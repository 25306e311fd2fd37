//! Running the `bootstrap` binary from env tests (off the async runtime), its JSON output,
//! the executor's journal, and the stand-in's control API (faults, call counters).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Runs the binary with `args`; with `ops_log`, its executor journals every executed write there.
pub fn bootstrap(args: &[&str], ops_log: Option<&Path>) -> Output {
    bootstrap_via(args, ops_log, None)
}

/// [`bootstrap`], with `kubeconfig` in place of the environment's `KUBECONFIG` (say, the
/// stand-in's fault-injecting proxy of the apiserver, `BOOTSTRAP_ENV_KUBE_PROXY_KUBECONFIG`).
pub fn bootstrap_via(args: &[&str], ops_log: Option<&Path>, kubeconfig: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    cmd.args(args).stdin(Stdio::null());
    if let Some(path) = ops_log {
        cmd.env("BOOTSTRAP_OPS_LOG", path);
    }
    if let Some(path) = kubeconfig {
        cmd.env("KUBECONFIG", path);
    }
    cmd.output().expect("bootstrap runs")
}

/// [`bootstrap_via`] on a blocking thread.
pub async fn run_via(
    args: Vec<String>,
    ops_log: Option<std::path::PathBuf>,
    kubeconfig: Option<std::path::PathBuf>,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bootstrap_via(&args, ops_log.as_deref(), kubeconfig.as_deref())
    })
    .await
    .expect("join")
}

/// [`bootstrap`] on a blocking thread.
pub async fn run_logged(args: Vec<String>, ops_log: Option<std::path::PathBuf>) -> Output {
    run_via(args, ops_log, None).await
}

/// [`bootstrap`] on a blocking thread, without a journal.
pub async fn run(args: Vec<String>) -> Output {
    run_logged(args, None).await
}

/// Runs the binary with `args` and a journal at `log`, and SIGKILLs it as soon as `kill_when`
/// holds for the journal's lines (in execution order); returns whether it was killed (false: it
/// ended first, or `within` passed).
pub async fn killed_when(
    args: &[String],
    log: &Path,
    within: std::time::Duration,
    kill_when: impl Fn(&[String]) -> bool,
) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .env("BOOTSTRAP_OPS_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bootstrap starts");
    let deadline = std::time::Instant::now() + within;
    let killed = loop {
        if kill_when(&journal_in_order(log)) {
            break true;
        }
        if child.try_wait().expect("poll").is_some() || std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    killed
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `command --cluster CLUSTER` then `extra`, with a quiet JSON report (`--output json -q`).
pub fn json_args(command: &str, cluster: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[command, "--cluster", cluster]);
    a.extend(args(extra));
    a.extend(args(&["--output", "json", "-q"]));
    a
}

/// A teams file `teams.yaml` in `dir` of `(name, namespace, service account, secret)` entries,
/// no verification; its path.
pub fn teams_file(dir: &Path, teams: &[(&str, &str, &str, &str)]) -> std::path::PathBuf {
    let mut text = String::from("teams:\n");
    for (name, ns, sa, secret) in teams {
        text.push_str(&format!(
            "  - name: {name}\n    namespace: {ns}\n    serviceAccount: {sa}\n    secrets: [{{name: {secret}}}]\n"
        ));
    }
    teams_yaml(dir, &text)
}

/// `text` written to `teams.yaml` in `dir`; its path.
pub fn teams_yaml(dir: &Path, text: &str) -> std::path::PathBuf {
    let file = dir.join("teams.yaml");
    std::fs::write(&file, text).expect("write teams file");
    file
}

pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The command's JSON report, failing the test (with the report and stderr) unless it exited 0.
pub fn json_ok(out: &Output) -> Value {
    let report = json_of(out);
    assert!(
        out.status.success(),
        "exit {:?}: {report:#}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Fails the test with the command's stderr unless it exited 0.
pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The executed writes in a journal, sorted.
pub fn journal(path: &Path) -> Vec<String> {
    let mut lines = journal_in_order(path);
    lines.sort();
    lines
}

/// The executed writes in a journal, in execution order.
pub fn journal_in_order(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A URL of the stand-in's control API.
pub fn control(path: &str) -> String {
    let base = std::env::var("BOOTSTRAP_ENV_CONTROL")
        .unwrap_or_else(|_| "http://127.0.0.1:15000/_bootstrap".into());
    format!("{base}{path}")
}

/// The binary in a clean environment: no credentials, config, region, kubeconfig or IMDS.
pub fn offline(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    for var in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "KUBECONFIG",
        "BOOTSTRAP_CLUSTER",
        "BOOTSTRAP_PROVIDER_IMAGE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", home.path())
        .args(args);
    cmd.output().expect("bootstrap runs")
}

/// `bootstrap up` of the demo workload (and the platform), failing the test unless it passed.
pub async fn ensure_up(cluster: &str) {
    let out = run(args(&[
        "up",
        "--cluster",
        cluster,
        "--create-demo-secret",
        "-q",
        "--timeout",
        "4m",
    ]))
    .await;
    ok(&out, "up");
}

/// Resets the stand-in's per-operation call counters.
pub async fn reset_calls(http: &reqwest::Client) {
    http.post(control("/calls/reset"))
        .send()
        .await
        .expect("reset the call counters");
}

/// The stand-in's per-operation call counters (since the last reset).
pub async fn calls(http: &reqwest::Client) -> Value {
    http.get(control("/calls"))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("calls JSON")
}

/// Whether a counted operation (`service:Action`) writes.
pub fn is_write(op: &str) -> bool {
    let action = op.split(':').nth(1).unwrap_or(op);
    [
        "Create",
        "Put",
        "Update",
        "Delete",
        "Tag",
        "Untag",
        "Associate",
        "Attach",
        "Detach",
    ]
    .iter()
    .any(|p| action.starts_with(p))
}

/// The write operations the stand-in counted since the last reset.
pub async fn writes(http: &reqwest::Client) -> Vec<String> {
    calls(http)
        .await
        .as_object()
        .map(|m| m.keys().filter(|k| is_write(k)).cloned().collect())
        .unwrap_or_default()
}

/// What `action` returns, and the write operations the stand-in counted while it ran (its
/// call counters are reset first).
pub async fn writes_during<T>(action: impl Future<Output = T>) -> (T, Vec<String>) {
    let http = reqwest::Client::new();
    reset_calls(&http).await;
    let done = action.await;
    (done, writes(&http).await)
}

/// Adds the stand-in's fault rules (`POST /faults`, one rule or a list), or clears them all
/// (`None`); fails the test when the control API refuses.
pub async fn faults(http: &reqwest::Client, rules: Option<Value>) {
    let request = match &rules {
        Some(rules) => http.post(control("/faults")).json(rules),
        None => http.delete(control("/faults")),
    };
    let out = request.send().await.expect("the control API answers");
    assert!(
        out.status().is_success(),
        "faults {rules:?}: {}",
        out.status()
    );
}

/// `up` with the demo secret, quiet: of service account `app` in namespace `ns` when given,
/// else of the demo workload; then `extra` flags (and `--timeout 3m` unless they set one).
pub fn up_args(cluster: &str, ns: Option<&str>, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["up", "--cluster", cluster]);
    if let Some(ns) = ns {
        a.extend(args(&["--namespace", ns, "--service-account", "app"]));
    }
    a.extend(args(&["--create-demo-secret", "-q"]));
    a.extend(args(extra));
    if !extra.contains(&"--timeout") {
        a.extend(args(&["--timeout", "3m"]));
    }
    a
}

/// `down --workloads-only --force --yes`: every workload bootstrap owns on the cluster, quiet;
/// the platform stays.
pub fn down_workloads_args(cluster: &str) -> Vec<String> {
    args(&[
        "down",
        "--cluster",
        cluster,
        "--yes",
        "--force",
        "--workloads-only",
        "-q",
        "--timeout",
        "4m",
    ])
}
