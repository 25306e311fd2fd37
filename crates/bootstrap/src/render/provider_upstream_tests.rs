//! Unit tests of the upstream provider's rendering: the chart's shape, our marks, the values.

use super::*;

fn daemonset(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("a DaemonSet")
}

#[test]
fn renders_the_chart_objects_in_apply_order_with_our_labels() {
    let objects = render(&UpstreamProviderValues::default()).expect("renders");
    let refs: Vec<String> = objects.iter().map(crate::render::object_ref).collect();
    assert_eq!(
        refs,
        [
            "ServiceAccount/kube-system/csi-secrets-store-provider-aws",
            "ClusterRole/csi-secrets-store-provider-aws-cluster-role",
            "ClusterRoleBinding/csi-secrets-store-provider-aws-cluster-rolebinding",
            "DaemonSet/kube-system/csi-secrets-store-provider-aws",
        ]
    );
    for o in &objects {
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "bootstrap",
            "{o}"
        );
    }
}

#[test]
fn the_daemonset_runs_upstream_3_1_1_like_its_chart() {
    let objects = render(&UpstreamProviderValues::default()).expect("renders");
    let ds = daemonset(&objects);
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1"
    );
    assert_eq!(
        container["args"],
        json!(["--provider-volume=/var/run/secrets-store-csi-providers"])
    );
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"cpu": "50m", "memory": "100Mi"}})
    );
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0],
        json!({"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]})
    );
    assert_eq!(pod["serviceAccountName"], UPSTREAM_NAME);
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // The socket directory and kubelet's pods directory come from the host.
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "providervol", "hostPath": {"path": "/var/run/secrets-store-csi-providers", "type": "DirectoryOrCreate"}},
            {"name": "mountpoint-dir", "hostPath": {"path": "/var/lib/kubelet/pods", "type": "DirectoryOrCreate"}},
        ])
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/var/run/secrets-store-csi-providers"
    );
    assert_eq!(
        container["volumeMounts"][1]["mountPropagation"],
        "HostToContainer"
    );
    assert_eq!(container["securityContext"]["privileged"], false);
    assert!(pod.get("priorityClassName").is_none());
    assert!(container.get("env").is_none());
    // The selector must select the pod template.
    let selector = ds["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector");
    for (k, v) in selector {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }
}

#[test]
fn the_cluster_role_reads_only_service_accounts_pods_and_nodes() {
    let objects = render(&UpstreamProviderValues::default()).expect("renders");
    assert_eq!(
        objects[1]["rules"],
        json!([
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        ])
    );
    assert_eq!(
        objects[2]["roleRef"]["name"],
        "csi-secrets-store-provider-aws-cluster-role"
    );
    assert_eq!(
        objects[2]["subjects"],
        json!([{"kind": "ServiceAccount", "name": UPSTREAM_NAME, "namespace": "kube-system"}])
    );
}

#[test]
fn values_reach_the_objects() {
    let values = UpstreamProviderValues {
        namespace: Some("sscsi".into()),
        image: Some("mirror.example/aws-provider:3.1.1".into()),
        image_pull_secrets: vec![json!({"name": "regcred"})],
        priority_class_name: Some("system-node-critical".into()),
        providers_dir: Some("/etc/kubernetes/secrets-store-csi-providers".into()),
        kubelet_path: "/data/kubelet/".into(),
        extra_args: vec!["--qps=10".into()],
        region: "eu-west-1".into(),
        tolerations: vec![json!({"key": "dedicated", "operator": "Equal", "value": "x: y"})],
        ..Default::default()
    };
    let objects = render(&values).expect("renders");
    let ds = daemonset(&objects);
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(ds["metadata"]["namespace"], "sscsi");
    assert_eq!(objects[2]["subjects"][0]["namespace"], "sscsi");
    assert_eq!(container["image"], "mirror.example/aws-provider:3.1.1");
    assert_eq!(
        container["args"],
        json!([
            "--provider-volume=/etc/kubernetes/secrets-store-csi-providers",
            "--qps=10"
        ])
    );
    assert_eq!(
        container["env"],
        json!([{"name": "AWS_REGION", "value": "eu-west-1"}])
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"][0]["value"], "x: y");
    assert_eq!(pod["volumes"][1]["hostPath"]["path"], "/data/kubelet/pods");
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    for (values, reason) in [
        (
            UpstreamProviderValues {
                namespace: Some("Not_A_Namespace".into()),
                ..Default::default()
            },
            r#"namespace name "Not_A_Namespace" is not a valid Kubernetes name"#,
        ),
        (
            UpstreamProviderValues {
                providers_dir: Some("relative/dir".into()),
                ..Default::default()
            },
            "providersDir must be an absolute path",
        ),
    ] {
        let err = render(&values).expect_err(reason).to_string();
        assert!(
            err.starts_with("invalid values for upstream provider") && err.contains(reason),
            "{err}"
        );
    }
}

#[test]
fn unknown_value_keys_are_rejected() {
    let parsed: Result<UpstreamProviderValues, _> =
        serde_saphyr::from_str("image: x\nmetricsPort: 1\n");
    assert!(parsed.is_err());
    let parsed: UpstreamProviderValues =
        serde_saphyr::from_str("image: x\nkubeletPath: /k\n").expect("valid");
    assert_eq!(parsed.image.as_deref(), Some("x"));
    assert_eq!(parsed.kubelet_path, "/k");
}
