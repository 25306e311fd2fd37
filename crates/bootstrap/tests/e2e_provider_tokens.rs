//! End to end, alone in its own test binary because it changes the cluster-wide CSIDriver:
//! when the CSIDriver's `tokenRequests` lack the Pod Identity audience, no token for it reaches
//! the provider, and the mount fails saying to add the audience — with nothing written.

mod common;

use common::fixture::Fixture;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn set_audiences(kube: &kube::Client, audiences: &[&str]) {
    let api: Api<CSIDriver> = Api::all(kube.clone());
    let requests: Vec<_> = audiences.iter().map(|a| json!({"audience": a})).collect();
    let patch = json!({"spec": {"tokenRequests": requests}});
    api.patch(
        "secrets-store.csi.k8s.io",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("patch the CSIDriver's tokenRequests");
}

#[tokio::test]
async fn a_missing_pod_identity_token_fails_with_a_hint_to_add_the_audience() {
    let mut s = common::session!("tok");
    let (_, tag, cfg, _, cleanup) = s.parts();
    let arn = cleanup.secret(cfg, &format!("{tag}/s"), "fine").await;
    let Some(fx) = Fixture::new("e2e-tok", &[arn], &[], false).await else {
        return;
    };
    set_audiences(&fx.kube, &["sts.amazonaws.com"]).await;
    let objs = format!("- objectName: \"{tag}/s\"\n  objectType: secretsmanager\n");
    // The body runs in a task so that the CSIDriver is restored even when it panics.
    let body = tokio::spawn(async move {
        fx.pod(
            "no-token",
            json!({"objects": objs, "usePodIdentity": "true"}),
        )
        .await;
        let msg = fx.failed("no-token").await;
        (msg, fx)
    });
    let outcome = body.await;
    set_audiences(
        &common::kube().await,
        &["sts.amazonaws.com", "pods.eks.amazonaws.com"],
    )
    .await;
    let (msg, _fx) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    assert!(
        msg.contains("pods.eks.amazonaws.com"),
        "names the missing audience: {msg}"
    );
    assert!(msg.contains("tokenRequests"), "says where to add it: {msg}");
}
