//! Faults at the driver side: a driver that hangs up mid-mount leaves no task behind, and the
//! provider keeps serving.

mod provider_support;

use std::time::Duration;

use aws_csi_provider::mount::MountConfig;
use provider_support::fixtures::*;
use provider_support::*;

/// How long the driver's client waits for each mount before it gives up.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_driver_disconnect_mid_mount_leaves_nothing_in_flight() {
    // An agent that accepts and never answers: the mount waits on it.
    let (silent, url) = agent_listener().await;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let mut h = start(
        fake_aws(),
        FakeCluster::default(),
        &url,
        MountConfig::default(),
    )
    .await;
    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut client = h.client.clone();
        let attrs = pod_identity_attrs("- {objectName: api, objectType: secretsmanager}");
        calls.push(tokio::spawn(async move {
            let mut req = tonic::Request::new(mount_request(attrs));
            req.set_timeout(CLIENT_DEADLINE);
            client.mount(req).await
        }));
    }
    // All five reach the agent and wait on it, until their client's deadline.
    let waiting = in_flight_within(&h, |n| n == 5, CLIENT_DEADLINE * 3 / 4).await;
    assert_eq!(waiting, 5, "the mounts are waiting on the agent");
    for c in calls {
        let r = c.await.expect("join");
        assert!(r.is_err(), "the client gave up");
    }
    // The client's deadline reset the streams; the server dropped the mounts with them.
    let left = in_flight_within(&h, |n| n == 0, Duration::from_secs(2)).await;
    assert_eq!(left, 0, "mounts still in flight after their driver left");
    // Still serving.
    let v = h
        .client
        .version(aws_csi_provider::proto::VersionRequest {
            version: "v1alpha1".into(),
        })
        .await;
    assert!(v.is_ok());
    held.abort();
}

/// Polls the provider's in-flight mount count every 5 ms until `holds` is true of it or
/// `within` has passed; returns the last count seen.
async fn in_flight_within(h: &Harness, holds: impl Fn(i64) -> bool, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = h.metrics.in_flight();
        if holds(n) || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
