//! The local environment's CSI half: a pod with a secrets-store CSI volume on a fake node
//! gets a real tmpfs mount from the real secrets-store-csi-driver (through the kubelet shim
//! and the environment's minimal test provider), and the driver records a
//! SecretProviderClassPodStatus with `mounted: true`.

mod common;

use common::make;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use serde_json::json;

fn mounts() -> String {
    std::fs::read_to_string("/proc/mounts").unwrap_or_default()
}

#[tokio::test]
async fn pod_with_csi_volume_gets_a_real_mount_and_a_pod_status() {
    let mut s = common::session!("t");
    let (env, _, _, client, cleanup) = s.parts();
    make::csi_driver(client, "bootstrap-env-test").await;
    common::drivers_ready(env).await;

    // Removed when the test ends, pass or fail.
    let ns = make::namespace(client, cleanup, "env-e").await;
    let files = json!({"greeting.txt": "hello from the test provider"}).to_string();
    let objs = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}}),
        json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
               "metadata": {"name": "greeting", "namespace": ns},
               "spec": {"provider": "bootstrap-test", "parameters": {"files": files}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader", "namespace": ns},
               "spec": {"serviceAccountName": "app",
                        "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.37",
                                        "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
                        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                                     "volumeAttributes": {"secretProviderClass": "greeting"}}}]}}),
    ];
    common::apply_all(client, "bootstrap-env-test", &objs).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = common::eventually("the pod to be Ready after its mount", 90, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("reader").await.ok()?;
            let ready = pod
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(pod)
        }
    })
    .await;
    let uid = pod.metadata.uid.clone().expect("uid");
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("scheduled");
    assert!(env.nodes.contains(&node), "scheduled on a fake node");

    let target = format!(
        "{}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
        env.state_dir
    );
    let line = mounts()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(target.as_str()))
        .map(String::from);
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("tmpfs ")),
        "a tmpfs is mounted at {target}: {line:?}"
    );
    let content =
        std::fs::read_to_string(format!("{target}/greeting.txt")).expect("the mounted file");
    assert_eq!(content, "hello from the test provider");

    let gvk = GroupVersionKind::gvk(
        "secrets-store.csi.x-k8s.io",
        "v1",
        "SecretProviderClassPodStatus",
    );
    let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasspodstatuses");
    let statuses: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let status = common::eventually("the SecretProviderClassPodStatus", 30, || {
        let statuses = statuses.clone();
        async move {
            statuses
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(
        status.metadata.name.as_deref(),
        Some(format!("reader-{ns}-greeting").as_str())
    );
    let st = &status.data["status"];
    assert_eq!(st["mounted"], true);
    assert_eq!(st["podName"], "reader");
    assert_eq!(st["secretProviderClassName"], "greeting");
    assert_eq!(
        st["objects"],
        json!([{"id": "greeting.txt", "version": "1"}])
    );
    let labels = status.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("internal.secrets-store.csi.k8s.io/node-name"),
        Some(&node)
    );

    // Deleting the pod unpublishes the volume: the tmpfs goes away.
    pods.delete("reader", &DeleteParams::default())
        .await
        .expect("delete pod");
    common::eventually("the mount to be removed", 60, || {
        let target = target.clone();
        async move {
            (!mounts()
                .lines()
                .any(|l| l.split(' ').nth(1) == Some(target.as_str())))
            .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_failed_mount_becomes_a_pod_event_and_the_pod_stays_pending() {
    let mut s = common::session!("t");
    let (_, _, _, client, cleanup) = s.parts();
    make::csi_driver(client, "bootstrap-env-test").await;
    // Removed when the test ends, pass or fail.
    let ns = make::namespace(client, cleanup, "env-e-fail").await;
    let objs = vec![
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "busybox"}],
                 "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                              "volumeAttributes": {"secretProviderClass": "does-not-exist"}}}]}}),
    ];
    common::apply_all(client, "bootstrap-env-test", &objs).await;
    // The first attempts may find the driver still restarting after its CRDs appeared (a
    // FailedMount about the socket, as kubelet reports it); then the driver's own error.
    let message = common::failed_mount(
        client,
        &ns,
        "a FailedMount event naming the missing SecretProviderClass",
        |_, m| m.contains("does-not-exist"),
    )
    .await;
    assert!(
        message.contains("MountVolume.SetUp failed for volume \"secrets\""),
        "{message}"
    );
    let pod = Api::<Pod>::namespaced(client.clone(), &ns)
        .get("orphan")
        .await
        .expect("pod");
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
}
