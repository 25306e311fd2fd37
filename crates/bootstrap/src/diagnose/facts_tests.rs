use serde_json::json;

use super::*;
use crate::render::csi_driver::{self, CsiDriverValues, Rotation};
use crate::render::{provider, provider_upstream};

fn daemonset_of(objects: Vec<Value>) -> DaemonSet {
    let ds = objects
        .into_iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    serde_json::from_value(ds).expect("a valid DaemonSet")
}

fn pod_of(ds_name: &str, uid: &str, node: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{ds_name}-{node}"), "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds_name, "uid": uid}]},
        "spec": {"nodeName": node, "containers": []},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .expect("pod")
}

#[test]
fn rendered_driver_and_providers_are_classified_with_their_socket_dirs() {
    let values = CsiDriverValues {
        rotation: Rotation {
            enabled: true,
            poll_interval: "2m".into(),
        },
        ..CsiDriverValues::default()
    };
    let mut driver = daemonset_of(csi_driver::render(&values).expect("driver"));
    driver.metadata.uid = Some("u1".into());
    let pods = [
        pod_of("secrets-store-csi-driver", "u1", "n1", true),
        pod_of("secrets-store-csi-driver", "u1", "n2", false),
        pod_of("secrets-store-csi-driver", "other-uid", "n3", true),
    ];
    let d = DaemonSetFacts::from_k8s(&driver, &pods);
    assert_eq!(d.component, Component::Driver);
    assert_eq!(d.version.as_deref(), Some("v1.6.0"));
    assert_eq!(
        d.socket_dirs,
        [
            "/var/run/secrets-store-csi-providers",
            "/etc/kubernetes/secrets-store-csi-providers"
        ]
    );
    assert!(d.flag_on("enable-secret-rotation"));
    assert_eq!(d.pods.len(), 2, "only its own pods");
    assert_eq!(d.ready_nodes(), ["n1"]);

    let ours = DaemonSetFacts::from_k8s(
        &daemonset_of(provider::render(&Default::default()).expect("ours")),
        &[],
    );
    assert_eq!(ours.component, Component::OurProvider);
    assert_eq!(ours.socket_dirs, ["/var/run/secrets-store-csi-providers"]);
    assert!(!ours.flag_on("enable-secret-rotation"));

    let upstream = DaemonSetFacts::from_k8s(
        &daemonset_of(provider_upstream::render(&Default::default()).expect("upstream")),
        &[],
    );
    assert_eq!(upstream.component, Component::UpstreamProvider);
    assert_eq!(
        upstream.socket_dirs,
        ["/var/run/secrets-store-csi-providers"]
    );
}

#[test]
fn socket_dirs_are_host_paths_behind_the_mounts() {
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "my-provider", "namespace": "x"},
        "spec": {"selector": {}, "template": {"spec": {
            "containers": [{"name": "p", "image": "example.com/secrets-store-csi-driver-provider-aws:2.0",
                "args": ["--provider-volume", "/providers/sub"],
                "volumeMounts": [{"name": "dir", "mountPath": "/providers"}]}],
            "volumes": [{"name": "dir", "hostPath": {"path": "/etc/kubernetes/secrets-store-csi-providers/"}}]}}}
    }))
    .expect("ds");
    let facts = DaemonSetFacts::from_k8s(&ds, &[]);
    assert_eq!(facts.component, Component::UpstreamProvider);
    assert_eq!(
        facts.socket_dirs,
        ["/etc/kubernetes/secrets-store-csi-providers/sub"]
    );
    let other: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "k", "image": "kube-proxy:1"}]}}}
    }))
    .expect("ds");
    assert_eq!(
        DaemonSetFacts::from_k8s(&other, &[]).component,
        Component::Other
    );
}

#[test]
fn flags_and_image_tags() {
    let args: Vec<String> = [
        "--a=1",
        "-b",
        "2",
        "--c",
        "--a",
        "3",
        "positional",
        "--enable-secret-rotation=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(flag_values(&args, "a"), ["1", "3"]);
    assert_eq!(flag_values(&args, "b"), ["2"]);
    assert!(flag_values(&args, "c").is_empty());
    assert_eq!(
        image_tag("registry.k8s.io/csi-secrets-store/driver:v1.6.0").as_deref(),
        Some("v1.6.0")
    );
    assert_eq!(
        image_tag("localhost:5000/driver:v1.5.1@sha256:abc").as_deref(),
        Some("v1.5.1")
    );
    assert_eq!(image_tag("localhost:5000/driver"), None);
}

#[test]
fn nodes_pods_and_classes_from_their_objects() {
    let node = |labels: Value| -> NodeFacts {
        NodeFacts::from_k8s(
            &serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}}))
                .expect("node"),
        )
    };
    assert!(node(json!({"kubernetes.io/os": "linux"})).linux_ec2());
    let fargate = node(json!({"eks.amazonaws.com/compute-type": "fargate"}));
    assert!(fargate.fargate() && !fargate.linux_ec2());
    let windows = node(json!({"kubernetes.io/os": "windows"}));
    assert!(windows.windows() && !windows.linux_ec2());
    assert!(!node(json!({"eks.amazonaws.com/compute-type": "auto"})).linux_ec2());

    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"serviceAccountName": "sa", "nodeName": "n1", "containers": [], "volumes": [
            {"name": "s", "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"secretProviderClass": "db"}}},
            {"name": "o", "csi": {"driver": "ebs.csi.aws.com"}}]}
    }))
    .expect("pod");
    let w = WorkloadPod::from_k8s(&pod).expect("mounts a class");
    assert_eq!(
        (w.service_account.as_str(), w.spcs.as_slice()),
        ("sa", &["db".to_string()][..])
    );
    let plain: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
            .expect("pod");
    assert!(WorkloadPod::from_k8s(&plain).is_none());

    let spc = SpcFacts::from_value(&json!({
        "metadata": {"name": "db", "namespace": "ns", "labels": {"app.kubernetes.io/managed-by": "bootstrap"}},
        "spec": {"provider": "aws", "parameters": {"usePodIdentity": "yes", "objects": "- objectName: x"},
                 "secretObjects": [{"secretName": "s", "type": "Opaque"}]}
    }));
    assert_eq!(spc.parameter("usePodIdentity"), Some("yes"));
    assert_eq!((spc.secret_objects, spc.owned), (1, true));
    assert_eq!(spc.reference(), "ns/db");
}
