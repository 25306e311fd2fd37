//! Faults at the driver side: a driver that hangs up mid-mount leaves no task behind, and the
//! provider keeps serving.

mod provider_support;

use std::time::Duration;

use aws_csi_provider::mount::MountConfig;
use provider_support::fixtures::*;
use provider_support::*;

#[tokio::test]
async fn a_driver_disconnect_mid_mount_leaves_nothing_in_flight() {
    // An agent that accepts and never answers: the mount waits on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/credentials",
        silent.local_addr().expect("addr")
    );
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
            req.set_timeout(Duration::from_millis(300));
            client.mount(req).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.metrics.in_flight(),
        5,
        "the mounts are waiting on the agent"
    );
    for c in calls {
        let r = c.await.expect("join");
        assert!(r.is_err(), "the client gave up");
    }
    // The client's deadline reset the streams; the server dropped the mounts with them.
    let mut left = h.metrics.in_flight();
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = h.metrics.in_flight();
    }
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
