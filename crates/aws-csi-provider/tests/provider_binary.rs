//! The real `aws-csi-provider` binary, invoked like the local environment does, against moto
//! and a fake Pod Identity agent: serves mounts on its socket, reports health and metrics,
//! logs no secret, stops cleanly on SIGTERM — and its idle and loaded memory are measured.
//! Skipped when tests/env (moto) is not running.

mod provider_support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use provider_support::moto::{moto, run_id, set_up};
use provider_support::process::{spawn, status_kib};
use provider_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_mounts_and_stops_on_sigterm() {
    let Some(moto) = moto().await else { return };
    let run = run_id();
    let names: Vec<String> = (0..3).map(|i| format!("provider-bin-{run}-{i}")).collect();
    let mut made = moto.made();
    made.secrets.clone_from(&names);
    for n in &names {
        let created = moto.create_secret(n, r#"{"user":"app","pass":"s3cr3t-bin"}"#);
        if set_up(created.await).is_none() {
            return;
        }
    }

    let agent = start_agent_with(POD_TOKEN, &moto.key, &moto.secret, "").await;
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
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", &moto.region),
        ("RUST_LOG", "debug"),
    ];
    let metrics_addr = ["--metrics-addr".into(), format!("127.0.0.1:{metrics_port}")];
    let (mut child, socket) = spawn(
        &binary,
        &providers,
        &agent.url,
        &env,
        &metrics_addr,
        log.into(),
    )
    .await;
    let pid = child.id();
    assert!(socket.exists(), "socket never appeared");
    let mut client = connect(socket.clone()).await;
    let health = reqwest::get(format!("http://127.0.0.1:{metrics_port}/healthz"))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = status_kib(pid, "VmRSS:");

    let objects: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!("- {{objectName: '{n}', objectType: secretsmanager, objectAlias: s{i}, jmesPath: [{{path: pass, objectAlias: p{i}}}]}}\n")
        })
        .collect();
    let attrs = attrs_with(&[("region", &moto.region)], &objects, &both_tokens());
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
    let peak = status_kib(pid, "VmHWM:");
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
    assert_eq!(agent.requests(), 1, "credentials cached");

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = child.wait().expect("provider exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(!socket.exists(), "socket removed on shutdown");
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(logs.contains("mounted"), "{logs}");
    for leak in ["s3cr3t", moto.secret.as_str(), POD_TOKEN] {
        assert!(!logs.contains(leak), "provider log leaks {leak}");
    }
}
