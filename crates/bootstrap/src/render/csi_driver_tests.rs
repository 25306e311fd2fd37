//! Unit tests of the CSI driver renderer.

use super::*;

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} rendered"))
}

/// The strings `pick` finds in the items of the JSON list `list`.
fn strings<'a>(list: &'a Value, pick: impl Fn(&'a Value) -> &'a Value) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .filter_map(|item| pick(item).as_str())
        .collect()
}

fn default_objects() -> Vec<Value> {
    render(&CsiDriverValues::default()).expect("defaults render")
}

#[test]
fn renders_crds_first_then_the_rest() {
    let objects = default_objects();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds[..2],
        ["CustomResourceDefinition", "CustomResourceDefinition"]
    );
    assert!(!kinds[2..].contains(&"CustomResourceDefinition"));
    for kind in [
        "CSIDriver",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(objects[0]["metadata"]["name"], CRD_NAMES[0]);
    assert_eq!(objects[1]["metadata"]["name"], CRD_NAMES[1]);
}

#[test]
fn every_object_is_labelled_managed_by_bootstrap() {
    for object in default_objects() {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "bootstrap",
            "{}",
            crate::render::object_ref(&object)
        );
    }
}

#[test]
fn crds_serve_v1_as_storage_and_v1alpha1_deprecated() {
    let objects = default_objects();
    for name in CRD_NAMES {
        let crd = find(&objects, "CustomResourceDefinition", name);
        let versions = crd["spec"]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["name"], "v1");
        assert_eq!(versions[0]["storage"], true);
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[1]["name"], "v1alpha1");
        assert_eq!(versions[1]["storage"], false);
        assert_eq!(versions[1]["served"], true);
        assert_eq!(versions[1]["deprecated"], true);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["group"], "secrets-store.csi.x-k8s.io");
        for v in versions {
            assert_eq!(v["schema"]["openAPIV3Schema"]["type"], "object");
        }
    }
}

#[test]
fn secret_provider_class_schema_is_structural() {
    let objects = default_objects();
    let crd = find(&objects, "CustomResourceDefinition", CRD_NAMES[0]);
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["provider"]["type"], "string");
    assert_eq!(
        spec["properties"]["parameters"]["additionalProperties"]["type"],
        "string"
    );
    let item = &spec["properties"]["secretObjects"]["items"]["properties"];
    for field in ["secretName", "type", "labels", "annotations", "data"] {
        assert!(item.get(field).is_some(), "secretObjects[].{field}");
    }
    let data = &item["data"]["items"]["properties"];
    assert_eq!(data["objectName"]["type"], "string");
    assert_eq!(data["key"]["type"], "string");
    let pod_status = find(&objects, "CustomResourceDefinition", CRD_NAMES[1]);
    let status = &pod_status["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"];
    assert_eq!(status["mounted"]["type"], "boolean");
    assert_eq!(
        status["objects"]["items"]["properties"]["version"]["type"],
        "string"
    );
    for field in ["podName", "secretProviderClassName", "targetPath"] {
        assert_eq!(status[field]["type"], "string");
    }
}

#[test]
fn csidriver_requests_both_aws_token_audiences() {
    let objects = default_objects();
    let driver = find(&objects, "CSIDriver", DRIVER_NAME);
    let audiences = strings(&driver["spec"]["tokenRequests"], |t| &t["audience"]);
    assert_eq!(audiences, AWS_TOKEN_AUDIENCES);
    assert_eq!(driver["spec"]["podInfoOnMount"], true);
    assert_eq!(driver["spec"]["attachRequired"], false);
    assert_eq!(driver["spec"]["volumeLifecycleModes"][0], "Ephemeral");
    assert_eq!(driver["spec"]["requiresRepublish"], false);
}

#[test]
fn daemonset_runs_the_three_containers_with_the_upstream_flags() {
    let objects = default_objects();
    let ds = find(&objects, "DaemonSet", DAEMONSET_NAME);
    assert_eq!(ds["metadata"]["namespace"], "kube-system");
    let pod = &ds["spec"]["template"]["spec"];
    let names = strings(&pod["containers"], |c| &c["name"]);
    assert_eq!(
        names,
        ["node-driver-registrar", "secrets-store", "liveness-probe"]
    );
    let driver = &pod["containers"][1];
    assert_eq!(
        driver["image"],
        "registry.k8s.io/csi-secrets-store/driver:v1.6.0"
    );
    assert_eq!(driver["securityContext"]["privileged"], true);
    let args = strings(&driver["args"], |a| a);
    assert!(args.contains(&"--provider-volume=/var/run/secrets-store-csi-providers"));
    assert!(args.contains(
        &"--additional-provider-volume-paths=/etc/kubernetes/secrets-store-csi-providers"
    ));
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--enable-secret-rotation"))
    );
    let mount = driver["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/var/lib/kubelet/pods")
        .expect("pods mount");
    assert_eq!(mount["mountPropagation"], "Bidirectional");
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .map(|l| json!({"app": l["app"]}))
            .expect("pod labels")
    );
    let sidecars = [
        &pod["containers"][0]["image"],
        &pod["containers"][2]["image"],
    ];
    assert_eq!(
        sidecars,
        [
            "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.16.0",
            "registry.k8s.io/sig-storage/livenessprobe:v2.18.0"
        ]
    );
}

#[test]
fn cluster_role_grants_what_the_driver_needs() {
    let objects = default_objects();
    let role = find(&objects, "ClusterRole", "secretproviderclasses-role");
    let rules = role["rules"].as_array().expect("rules");
    let has = |resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r["verbs"]
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|x| x == verb))
        })
    };
    assert!(has("events", "create"));
    assert!(has("pods", "watch"));
    assert!(has("secretproviderclasses", "list"));
    assert!(has("secretproviderclasspodstatuses", "create"));
    assert!(has("secretproviderclasspodstatuses/status", "patch"));
    assert!(has("csidrivers", "get"));
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "secretprovidersyncing-role")
    );
    let binding = find(
        &objects,
        "ClusterRoleBinding",
        "secretproviderclasses-rolebinding",
    );
    assert_eq!(binding["subjects"][0]["name"], "secrets-store-csi-driver");
    assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
}

#[test]
fn rotation_sync_registry_and_namespace_are_configurable() {
    let values = CsiDriverValues {
        namespace: "secrets".into(),
        image_registry: "registry.example.com/mirror/".into(),
        rotation: Rotation {
            enabled: true,
            poll_interval: "30s".into(),
        },
        sync_secrets: true,
        ..CsiDriverValues::default()
    };
    let objects = render(&values).expect("renders");
    let driver = find(&objects, "CSIDriver", DRIVER_NAME);
    assert_eq!(driver["spec"]["requiresRepublish"], true);
    let ds = find(&objects, "DaemonSet", DAEMONSET_NAME);
    assert_eq!(ds["metadata"]["namespace"], "secrets");
    let c = &ds["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(
        c["image"],
        "registry.example.com/mirror/csi-secrets-store/driver:v1.6.0"
    );
    let args = c["args"].to_string();
    assert!(args.contains("--enable-secret-rotation=true"));
    assert!(args.contains("--rotation-poll-interval=30s"));
    // Driver v1.6.0 has no --filtered-watch-secret (it always filters): the flag made it exit.
    assert!(!args.contains("filtered-watch-secret"), "{args}");
    find(&objects, "ClusterRole", "secretprovidersyncing-role");
    find(
        &objects,
        "ClusterRoleBinding",
        "secretprovidersyncing-rolebinding",
    );
}

#[test]
fn values_deserialize_from_helm_style_yaml() {
    let yaml = "imageRegistry: mirror.local\nimages:\n  driver:\n    repository: driver\n    tag: v1.6.0-patched\nnodeSelector:\n  pool: system\n";
    let values: CsiDriverValues = serde_saphyr::from_str(yaml).expect("values parse");
    assert_eq!(
        values.images.driver.reference(&values.image_registry),
        "mirror.local/driver:v1.6.0-patched"
    );
    assert_eq!(values.images.registrar, DriverImages::default().registrar);
    let objects = render(&values).expect("renders");
    let ds = find(&objects, "DaemonSet", DAEMONSET_NAME);
    assert_eq!(
        ds["spec"]["template"]["spec"]["nodeSelector"]["pool"],
        "system"
    );
}

#[test]
fn rejects_values_that_would_break_aws() {
    let values = CsiDriverValues {
        token_audiences: vec!["sts.amazonaws.com".into()],
        ..CsiDriverValues::default()
    };
    let err = render(&values).expect_err("missing audience");
    assert!(err.to_string().contains("pods.eks.amazonaws.com"));
    let values = CsiDriverValues {
        namespace: "Bad_NS".into(),
        ..CsiDriverValues::default()
    };
    assert!(render(&values).is_err());
}

#[test]
fn labels_and_strings_survive_yaml_special_characters() {
    let values = CsiDriverValues {
        labels: BTreeMap::from([("team".into(), "a: b # c".into())]),
        ..CsiDriverValues::default()
    };
    let objects = render(&values).expect("renders");
    assert!(
        objects
            .iter()
            .all(|o| o["metadata"]["labels"]["team"] == "a: b # c")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn any_label_value_renders_to_the_same_value(value in ".{0,80}", key in "[a-z]{1,10}") {
        let values = CsiDriverValues {
            labels: BTreeMap::from([(format!("example.com/{key}"), value.clone())]),
            ..CsiDriverValues::default()
        };
        let objects = render(&values).expect("renders");
        let label = format!("example.com/{key}");
        for o in &objects {
            proptest::prop_assert_eq!(o["metadata"]["labels"][label.as_str()].as_str(), Some(value.as_str()));
        }
    }
}
