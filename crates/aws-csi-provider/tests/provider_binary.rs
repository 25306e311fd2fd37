//! The real `aws-csi-provider` binary, invoked like the local environment does, against moto
//! and a fake Pod Identity agent: serves mounts on its socket, reports health and metrics,
//! logs no secret, stops cleanly on SIGTERM — and its idle and loaded memory are measured.
//! Skipped when tests/env (moto) is not running.

mod provider_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use futures::StreamExt;
use provider_support::*;

fn env_file() -> Option<std::collections::HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/env/state/env.sh");
    let text = std::fs::read_to_string(path).ok()?;
    let mut vars = std::collections::HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("export ") else {
            continue;
        };
        for assignment in rest.split_whitespace() {
            if let Some((k, v)) = assignment.split_once('=') {
                vars.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
        }
    }
    Some(vars)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_mounts_and_stops_on_sigterm() {
    let Some(vars) = env_file() else {
        bootstrap_common::testenv::skip("tests/env is not up");
        return;
    };
    let (Some(endpoint), Some(key), Some(secret)) = (
        vars.get("AWS_ENDPOINT_URL"),
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) else {
        bootstrap_common::testenv::skip("env.sh lacks AWS settings");
        return;
    };
    if std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_err() {
        bootstrap_common::testenv::skip(&format!("moto is not reachable at {endpoint}"));
        return;
    }
    let region = vars
        .get("AWS_REGION")
        .cloned()
        .unwrap_or_else(|| "us-west-2".into());
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.clone()))
        .credentials_provider(Credentials::new(key, secret, None, None, "env"))
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let names: Vec<String> = (0..3).map(|i| format!("provider-bin-{run}-{i}")).collect();
    for n in &names {
        if let Err(e) = sm
            .create_secret()
            .name(n)
            .secret_string(r#"{"user":"app","pass":"s3cr3t-bin"}"#)
            .send()
            .await
        {
            bootstrap_common::testenv::skip(&format!("moto setup failed: {e:?}"));
            return;
        }
    }

    let agent = start_agent_with(POD_TOKEN, key, secret, "").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let log_path = dir.path().join("provider.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let providers = dir.path().join("providers");
    // AWS_CSI_PROVIDER_BIN selects another build (e.g. target/release) for the measurement.
    let binary = std::env::var("AWS_CSI_PROVIDER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_aws-csi-provider").to_string());
    let mut child = std::process::Command::new(&binary)
        .arg("--provider-volume")
        .arg(&providers)
        .arg("--pod-identity-endpoint")
        .arg(&agent.url)
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", &region)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "debug")
        .stderr(log)
        .spawn()
        .expect("start provider");
    let pid = child.id();
    let socket = providers.join("aws.sock");
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(socket.exists(), "socket never appeared");
    let mut client = connect(socket.clone()).await;
    let health = reqwest::get(format!("http://127.0.0.1:{metrics_port}/healthz"))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid, "VmRSS:");

    let objects: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!("- {{objectName: '{n}', objectType: secretsmanager, objectAlias: s{i}, jmesPath: [{{path: pass, objectAlias: p{i}}}]}}\n")
        })
        .collect();
    let attrs = attributes(
        &[
            ("usePodIdentity", "true"),
            ("region", &region),
            ("objects", &objects),
        ],
        Some(&both_tokens()),
    );
    let first = client
        .mount(mount_request(attrs.clone()))
        .await
        .expect("mount")
        .into_inner();
    assert_eq!(first.files.len(), 6);
    // One version per file: each jmesPath file carries its own entry.
    assert_eq!(first.object_version.len(), 6);

    // Load: 200 mounts, 16 at a time.
    let t = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..200)
        .map(|_| {
            let mut c = client.clone();
            let a = attrs.clone();
            async move { c.mount(mount_request(a)).await.is_ok() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = t.elapsed();
    assert!(results.iter().all(|ok| *ok), "some mounts failed");
    let peak = rss_kib(pid, "VmHWM:");
    eprintln!(
        "aws-csi-provider memory: idle RSS {idle} KiB, peak RSS {peak} KiB after 200 mounts (16 concurrent) in {elapsed:?}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(
            "aws_csi_provider_mounts_total{result=\"success\",method=\"pod_identity\"} 201"
        ),
        "{metrics}"
    );
    assert_eq!(
        agent.hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "credentials cached"
    );

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = child.wait().expect("provider exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(!socket.exists(), "socket removed on shutdown");
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(logs.contains("mounted"), "{logs}");
    for leak in ["s3cr3t", secret.as_str(), POD_TOKEN] {
        assert!(!logs.contains(leak), "provider log leaks {leak}");
    }
    for n in &names {
        let _ = sm
            .delete_secret()
            .secret_id(n)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}
