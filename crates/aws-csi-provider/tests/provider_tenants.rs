//! The provider is shared by every tenant of a node: what one client of its socket sends must
//! neither reach another pod's secrets nor take the provider down. Each test here is an
//! attack (or an accident) and the bound that stops it: token-bound sessions, a session age
//! cap, an owner-only socket, bounded jmesPath, a cap on objects, one fetch per secret,
//! byte counting as values arrive, and a bound on mounts in flight.

mod provider_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_csi_provider::cluster::{ClusterLookup, Lookup};
use aws_csi_provider::mount::MountConfig;
use aws_csi_provider::server::SOCKET_NAME;
use provider_support::fixtures::*;
use provider_support::*;
use tonic::Code;

fn tokens(pod_identity_token: &str) -> String {
    format!(
        r#"{{"pods.eks.amazonaws.com":{{"token":"{pod_identity_token}","expirationTimestamp":"2030-01-01T00:00:00Z"}}}}"#
    )
}

const API: &str = "- {objectName: api, objectType: secretsmanager, objectAlias: a, objectVersionLabel: AWSPREVIOUS}";

fn attrs_with_token(objects: &str, token: &str) -> String {
    attrs_with(&[], objects, &tokens(token))
}

#[tokio::test]
async fn a_forged_token_for_a_cached_pod_gets_nothing() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    // The pod mounts with kubelet's token: its session is cached.
    mount(&mut h, attrs_with_token(API, POD_TOKEN))
        .await
        .expect("the pod's mount");
    assert_eq!(agent.requests(), 1);
    // Another client of the socket names the same pod (namespace, name, uid) with a made-up
    // token: it goes to the agent, which refuses it, and nothing is fetched.
    let e = mount(&mut h, attrs_with_token(API, "forged-token"))
        .await
        .expect_err("a forged token is refused");
    assert_says(&e, &["403"]);
    assert!(!e.message().contains("forged-token"), "{}", e.message());
    assert_eq!(agent.requests(), 2);
    assert_eq!(calls(&h, "GetSecretValue"), 1);
    // The pod's own remount still hits its cached session.
    let again = mount(&mut h, attrs_with_token(API, POD_TOKEN))
        .await
        .expect("the pod's remount");
    assert_eq!(again.files[0].contents, OLD_KEY.as_bytes());
    assert_eq!(agent.requests(), 2);
    assert_no_secret_leak(&h, &[e.message().to_string()]);
}

#[tokio::test]
async fn cached_sessions_are_reused_for_at_most_the_max_age() {
    let config = MountConfig {
        credential_max_age: Duration::from_millis(50),
        ..MountConfig::default()
    };
    let (agent, mut h) = with_agent(fake_aws(), config).await;
    mount(&mut h, attrs_with_token(API, POD_TOKEN))
        .await
        .expect("first");
    tokio::time::sleep(Duration::from_millis(80)).await;
    mount(&mut h, attrs_with_token(API, POD_TOKEN))
        .await
        .expect("second");
    // Older than the max age: the token was exchanged again (a deleted association would
    // have failed here), although the credentials themselves had an hour left.
    assert_eq!(agent.requests(), 2);
}

#[tokio::test]
async fn the_socket_is_owner_only() {
    let (_agent, h) = with_agent(fake_aws(), MountConfig::default()).await;
    let meta = std::fs::symlink_metadata(h.dir.path().join(SOCKET_NAME)).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
}

#[tokio::test]
async fn a_deep_jmespath_is_refused_before_any_call_and_the_provider_keeps_serving() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let deep = format!(
        "- objectName: prod/db\n  objectType: secretsmanager\n  jmesPath:\n    - {{path: '{}a', objectAlias: x}}\n",
        "!".repeat(100_000)
    );
    let e = mount_err(&mut h, &deep, "refused").await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_says(&e, &["100001 bytes", "1024"]);
    assert_eq!(agent.requests(), 0, "no credentials fetched");
    assert_eq!(
        calls(&h, "BatchGetSecretValue") + calls(&h, "GetSecretValue"),
        0
    );
    let within_length = format!(
        "- objectName: prod/db\n  objectType: secretsmanager\n  jmesPath:\n    - {{path: '{}username', objectAlias: x}}\n",
        "!".repeat(33)
    );
    let e = mount_err(&mut h, &within_length, "refused").await;
    assert_says(&e, &["33 operators"]);
    // The next normal mount on the node works.
    let ok = mount_ok(&mut h, OBJECTS, "next mount").await;
    assert_eq!(ok.files.len(), 5);
}

#[tokio::test]
async fn a_20000_object_spc_is_refused_before_any_call() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let many: String = (0..20_000)
        .map(|i| format!("- {{objectName: s{i}, objectType: ssmparameter}}\n"))
        .collect();
    assert!(many.len() < 1 << 20, "under the 1 MiB YAML limit");
    let e = mount_err(&mut h, &many, "refused").await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_says(&e, &["20000 files", "1000"]);
    assert_eq!(agent.requests(), 0, "no credentials fetched");
    // jmesPath entries count as files too.
    let keys: String = (0..1000)
        .map(|i| format!("{{path: username, objectAlias: k{i}}},"))
        .collect();
    let e = mount_err(
        &mut h,
        &format!("- {{objectName: prod/db, objectType: secretsmanager, jmesPath: [{keys}]}}"),
        "refused",
    )
    .await;
    assert_says(&e, &["1001 files"]);
    mount_ok(&mut h, OBJECTS, "next mount").await;
}

#[tokio::test]
async fn a_secret_under_several_aliases_is_fetched_once() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let aliases: String = (0..5)
        .map(|i| {
            format!("- {{objectName: api, objectType: secretsmanager, objectAlias: k{i}, objectVersionLabel: AWSPREVIOUS}}\n")
        })
        .collect();
    let resp = mount_ok(&mut h, &aliases, "mount").await;
    assert_eq!(resp.files.len(), 5);
    assert!(resp.files.iter().all(|f| f.contents == OLD_KEY.as_bytes()));
    assert_eq!(resp.object_version.len(), 5);
    assert_eq!(calls(&h, "GetSecretValue"), 1);
}

#[tokio::test]
async fn bytes_are_counted_as_they_arrive() {
    // One call at a time, 10,000 bytes allowed; each version of "huge" is 5,000 bytes.
    let config = MountConfig {
        max_response_bytes: 10_000,
        concurrency: 1,
        ..MountConfig::default()
    };
    let (_agent, mut h) = with_agent(fake_aws(), config).await;
    let objects: String = (0..50)
        .map(|i| format!("- {{objectName: huge, objectType: secretsmanager, objectAlias: h{i}, objectVersion: v{i}}}\n"))
        .collect();
    let e = mount_err(&mut h, &objects, "too large").await;
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_says(&e, &["10000"]);
    // The third value took the total over the limit: no further call was made.
    assert_eq!(calls(&h, "GetSecretValue"), 3);
    // The same secret under many aliases counts once per file.
    let aliases: String = (0..3)
        .map(|i| format!("- {{objectName: huge, objectType: secretsmanager, objectAlias: a{i}, objectVersion: v1}}\n"))
        .collect();
    let e = mount_err(&mut h, &aliases, "too large").await;
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(calls(&h, "GetSecretValue"), 4);
}

/// A cluster whose node lookup blocks until released: holds a mount (and its slot) open.
struct StuckNode {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl ClusterLookup for StuckNode {
    fn role_arn<'a>(&'a self, _: &'a str, _: &'a str) -> Lookup<'a> {
        Box::pin(async { Ok(None) })
    }
    fn node_region<'a>(&'a self, _: &'a str, _: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            self.entered.notify_one();
            self.release.notified().await;
            Ok(Some("us-east-1".to_string()))
        })
    }
}

#[tokio::test]
async fn mounts_in_flight_are_bounded_and_the_excess_fails_clearly() {
    let agent = start_agent(POD_TOKEN).await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let config = MountConfig {
        max_concurrent_mounts: 1,
        deadline: Duration::from_secs(2),
        ..MountConfig::default()
    };
    let mut h = start_with_cluster(
        fake_aws(),
        StuckNode {
            entered: entered.clone(),
            release: release.clone(),
        },
        &agent.url,
        config,
    )
    .await;
    // Mount A takes the only slot and waits for its node's region.
    let no_region = attributes(
        &[("usePodIdentity", "true"), ("objects", API)],
        Some(&both_tokens()),
    );
    let mut client = h.client.clone();
    let a = tokio::spawn(async move { client.mount(mount_request(no_region)).await });
    entered.notified().await;
    // Mount B waits half the deadline for the slot, then is told the provider is busy.
    let started = Instant::now();
    let e = mount_err(&mut h, API, "busy").await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(e.code(), Code::Unavailable);
    assert_says(&e, &["busy", "--max-concurrent-mounts"]);
    // A finishes; its slot is free again and the next mount works.
    release.notify_one();
    let _ = a.await;
    mount_ok(&mut h, API, "next mount").await;
    assert!(h.metrics.render().contains("cause=\"busy\""));
}
