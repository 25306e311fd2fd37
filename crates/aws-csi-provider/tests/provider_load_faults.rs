//! The provider under load with faults: 200 concurrent mounts (each a new pod, so each pays
//! its credential exchange), 5% of Secrets Manager calls failing (the fake's SDK retries are
//! off, so each failure reaches a mount), then the Pod Identity agent restarting (mounts while
//! it is down, mounts once it is back). No mount may crash the provider or return a wrong or partial set of
//! files; every failure is a clear error naming its cause; nothing stays in flight; a mount
//! after the storm succeeds.

mod provider_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_csi_provider::mount::MountConfig;
use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueError;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::error::InternalServiceError;
use aws_smithy_mocks::mock;
use aws_smithy_types::error::ErrorMetadata;
use futures::stream::{self, StreamExt};
use provider_support::fixtures::*;
use provider_support::*;

/// A TCP relay in front of the fake agent that can be taken down like a restarting agent:
/// open connections are cut, new ones are dropped at once, until it is brought back.
async fn relay(target: String) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    let (down, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if *watch.borrow() {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            let mut watch = watch.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                }
            });
        }
    });
    (addr.to_string(), down)
}

/// The attributes of pod number `i` (its own name and uid: its own credentials).
fn pod(i: usize) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&pod_identity_attrs(OBJECTS)).expect("attributes");
    v["csi.storage.k8s.io/pod.name"] = format!("web-{i}").into();
    v["csi.storage.k8s.io/pod.uid"] = format!("uid-{i}").into();
    v.to_string()
}

type Files = BTreeMap<String, Vec<u8>>;

/// The 500 every injected Secrets Manager failure answers with.
fn backend_failure() -> InternalServiceError {
    InternalServiceError::builder()
        .message("injected backend failure")
        .meta(
            ErrorMetadata::builder()
                .code("InternalServiceError")
                .message("injected backend failure")
                .build(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_mounts_with_backend_errors_and_an_agent_restart() {
    let agent = start_agent(POD_TOKEN).await;
    let agent_addr = agent
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1/credentials")
        .to_string();
    let (relay_addr, agent_down) = relay(agent_addr).await;

    // Every 20th BatchGetSecretValue fails with a 500 (InternalServiceError).
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let flaky = mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value)
        .match_requests(move |_| counter.fetch_add(1, Ordering::SeqCst) % 20 == 19)
        .then_error(|| BatchGetSecretValueError::InternalServiceError(backend_failure()));
    // A failed batch falls back to GetSecretValue: every 20th of those fails too, the others
    // answer like Secrets Manager.
    let gets = Arc::new(AtomicUsize::new(0));
    let get_counter = gets.clone();
    let flaky_get = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(move |_| get_counter.fetch_add(1, Ordering::SeqCst) % 20 == 19)
        .then_error(|| GetSecretValueError::InternalServiceError(backend_failure()));
    let current = |name: &'static str, value: &'static str, version: &'static str| {
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(move |r| r.secret_id() == Some(name) && r.version_stage().is_none())
            .then_output(move || {
                GetSecretValueOutput::builder()
                    .name(name)
                    .secret_string(value)
                    .version_id(version)
                    .build()
            })
    };
    let mut aws = fake_aws();
    let mut rules = vec![
        flaky,
        flaky_get,
        current("prod/db", DB_JSON, "v-db-1"),
        current("api", API_KEY, "v-api-2"),
    ];
    rules.extend(sm_rules());
    aws.sm.insert("us-east-1".into(), rules);

    let mut h = start(
        aws,
        FakeCluster::default(),
        &format!("http://{relay_addr}/v1/credentials"),
        MountConfig::default(),
    )
    .await;
    let baseline: Files = mount(&mut h, pod(0))
        .await
        .expect("a clean mount")
        .files
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    assert_eq!(baseline.len(), 5, "{:?}", baseline.keys());

    let client = h.client.clone();
    let storm = |range: std::ops::Range<usize>| {
        let client = client.clone();
        async move {
            stream::iter(range)
                .map(|i| {
                    let mut c = client.clone();
                    async move {
                        c.mount(mount_request(pod(i))).await.map(|r| {
                            r.into_inner()
                                .files
                                .into_iter()
                                .map(|f| (f.path, f.contents))
                                .collect::<Files>()
                        })
                    }
                })
                .buffer_unordered(200)
                .collect::<Vec<_>>()
                .await
        }
    };
    // 200 at once with the backend failing; then the agent restarts: 20 mounts while it is
    // down, 20 once it is back.
    let mut results = storm(1..201).await;
    agent_down.send_replace(true);
    let during = storm(1000..1020).await;
    agent_down.send_replace(false);
    let back = storm(2000..2020).await;

    let mut errors = Vec::new();
    let mut tally = |results: &[Result<Files, tonic::Status>]| {
        let mut ok = 0;
        let mut causes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for r in results {
            match r {
                Ok(files) => {
                    assert_eq!(files, &baseline, "a mount returned other or partial files");
                    ok += 1;
                }
                Err(e) => {
                    let m = e.message();
                    let cause = if m.contains("injected backend failure") {
                        "backend 500"
                    } else if m.to_lowercase().contains("agent") {
                        "agent unreachable"
                    } else {
                        "other"
                    };
                    assert_ne!(cause, "other", "an unclear failure: {:?} {m}", e.code());
                    assert_ne!(e.code(), tonic::Code::InvalidArgument, "{m}");
                    *causes.entry(cause).or_default() += 1;
                    errors.push(m.to_string());
                }
            }
        }
        (ok, causes)
    };
    let (ok, causes) = tally(&results);
    eprintln!(
        "200 concurrent mounts: {ok} mounted, failures by cause {causes:?}, {} BatchGetSecretValue and {} GetSecretValue calls",
        calls.load(Ordering::SeqCst),
        gets.load(Ordering::SeqCst)
    );
    assert!(ok >= 150, "most mounts succeed: {ok}");
    assert!(
        causes.get("backend 500").copied().unwrap_or(0) >= 1,
        "the injected errors reached some mounts: {causes:?}"
    );
    let (ok_during, causes_during) = tally(&during);
    assert_eq!(ok_during, 0, "no credentials while the agent is down");
    assert_eq!(
        causes_during.get("agent unreachable"),
        Some(&20),
        "{causes_during:?}"
    );
    let (ok_back, causes_back) = tally(&back);
    eprintln!(
        "agent down: 20 failed naming it; agent back: {ok_back} of 20 mounted ({causes_back:?})"
    );
    assert!(
        ok_back >= 15,
        "mounts succeed once the agent is back: {causes_back:?}"
    );
    results.extend(during);
    assert_no_secret_leak(&h, &errors);

    // Nothing is left in flight, and the provider still serves.
    let metrics = h.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("aws_csi_provider_mounts_in_flight") && l.ends_with(" 0")),
        "{metrics}"
    );
    let mut after = None;
    for i in 0..3 {
        if let Ok(r) = mount(&mut h, pod(1000 + i)).await {
            after = Some(r);
            break;
        }
    }
    let after: Files = after
        .expect("a mount after the storm succeeds")
        .files
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    assert_eq!(after, baseline);
}
