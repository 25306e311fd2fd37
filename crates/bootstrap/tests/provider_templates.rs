//! Renders `templates/provider/*.yaml.tera` with the documented default variables and checks
//! the objects: least RBAC, Fargate excluded, all taints tolerated, probes, hostPath, flags.

use serde_json::{Value, json};

fn context(region_from_node: bool) -> tera::Context {
    let labels = json!({"app.kubernetes.io/name": "aws-csi-provider", "app.kubernetes.io/managed-by": "bootstrap"});
    let vars = json!({
        "name": "aws-csi-provider",
        "namespace": "kube-system",
        "service_account": "aws-csi-provider",
        "labels": labels,
        "selector_labels": {"app.kubernetes.io/name": "aws-csi-provider"},
        "pod_labels": labels,
        "image": "public.ecr.aws/example/aws-csi-provider:0.1.0",
        "image_pull_policy": "IfNotPresent",
        "image_pull_secrets": [],
        "priority_class_name": "system-node-critical",
        "node_selector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"operator": "Exists"}],
        "providers_dir": "/var/run/secrets-store-csi-providers",
        "metrics_port": 8081,
        "log_format": "json",
        "pod_identity_http_timeout": "5s",
        "mount_deadline": "30s",
        "extra_args": [],
        "region": "",
        "region_from_node": region_from_node,
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    });
    tera::Context::from_value(vars).expect("context")
}

fn render(region_from_node: bool) -> Vec<Value> {
    let mut tera = tera::Tera::default();
    let mut docs = Vec::new();
    for file in ["serviceaccount", "rbac", "daemonset"] {
        let path = format!(
            "{}/templates/provider/{file}.yaml.tera",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("template");
        tera.add_raw_template(file, &text).expect("parses");
        let out = tera
            .render(file, &context(region_from_node))
            .expect("renders");
        let many: Vec<Value> = serde_saphyr::from_multiple(&out).expect("valid YAML");
        docs.extend(many);
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn rbac_is_least_privilege() {
    let docs = render(false);
    let role = find(&docs, "ClusterRole");
    assert_eq!(role["rules"].as_array().map(Vec::len), Some(1));
    assert_eq!(role["rules"][0]["resources"], json!(["serviceaccounts"]));
    assert_eq!(role["rules"][0]["verbs"], json!(["get"]));
    let docs = render(true);
    let role = find(&docs, "ClusterRole");
    assert_eq!(role["rules"][1]["resources"], json!(["pods", "nodes"]));
    assert_eq!(role["rules"][1]["verbs"], json!(["get"]));
    let binding = find(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
}

#[test]
fn daemonset_shape() {
    let docs = render(false);
    let ds = find(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    let expr = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0];
    assert_eq!(expr["key"], "eks.amazonaws.com/compute-type");
    assert_eq!(expr["operator"], "NotIn");
    assert_eq!(expr["values"], json!(["fargate"]));
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--provider-volume=/var/run/secrets-store-csi-providers"),
        "{args:?}"
    );
    assert!(args.contains(&"--metrics-addr=0.0.0.0:8081"), "{args:?}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(
        pod["volumes"][0]["hostPath"]["path"],
        "/var/run/secrets-store-csi-providers"
    );
    assert!(c.get("env").is_none() || c["env"].is_null());
    // The selector must match the pod labels.
    let sel = ds["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector");
    for (k, v) in sel {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }
}
