//! Unit tests of the workload renderer.

use super::*;

fn values() -> WorkloadValues {
    WorkloadValues {
        namespace: "team-a".into(),
        service_account: "app".into(),
        region: "eu-west-1".into(),
        objects: vec![SpcObject {
            object_name: "arn:aws:secretsmanager:eu-west-1:1:secret:team/db-AbC123".into(),
            object_type: "secretsmanager".into(),
            object_alias: "team_db".into(),
            file_permission: None,
            jmes_path: Vec::new(),
        }],
        sample_image: "registry.k8s.io/pause:3.10".into(),
        labels: BTreeMap::new(),
    }
}

#[test]
fn renders_namespace_service_account_and_spc() {
    let objects = render(&values()).expect("renders");
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ServiceAccount", "SecretProviderClass"]
    );
    let spc = &objects[2];
    assert_eq!(spc["metadata"]["name"], "bootstrap-app");
    assert_eq!(spc["metadata"]["namespace"], "team-a");
    assert_eq!(spc["spec"]["provider"], "aws");
    assert_eq!(spc["spec"]["parameters"]["usePodIdentity"], "true");
    assert_eq!(spc["spec"]["parameters"]["region"], "eu-west-1");
    let objects_yaml = spc["spec"]["parameters"]["objects"]
        .as_str()
        .expect("objects is a string");
    let parsed: Vec<serde_json::Value> =
        serde_saphyr::from_str(objects_yaml).expect("objects is YAML");
    assert_eq!(
        parsed[0]["objectName"],
        "arn:aws:secretsmanager:eu-west-1:1:secret:team/db-AbC123"
    );
    assert_eq!(parsed[0]["objectAlias"], "team_db");
    for o in &objects {
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "bootstrap"
        );
    }
}

#[test]
fn sample_pod_mounts_the_spc() {
    let pod = render_sample_pod(&values()).expect("renders");
    assert_eq!(pod["metadata"]["name"], "bootstrap-verify-app");
    assert_eq!(pod["spec"]["serviceAccountName"], "app");
    let csi = &pod["spec"]["volumes"][0]["csi"];
    assert_eq!(csi["driver"], "secrets-store.csi.k8s.io");
    assert_eq!(
        csi["volumeAttributes"]["secretProviderClass"],
        "bootstrap-app"
    );
}

#[test]
fn aliases_drop_the_random_suffix() {
    assert_eq!(
        alias_for("arn:aws:secretsmanager:r:1:secret:bootstrap/demo/demo-AbCdEf"),
        "bootstrap_demo_demo"
    );
    assert_eq!(
        alias_for("arn:aws:secretsmanager:r:1:secret:db-??????"),
        "db"
    );
    assert_eq!(
        alias_for("arn:aws:secretsmanager:r:1:secret:my-db"),
        "my-db"
    );
    assert_eq!(alias_for("arn:aws:ssm:r:1:parameter/app/key"), "app_key");
}

#[test]
fn rejects_bad_names_and_empty_objects() {
    let mut v = values();
    v.namespace = "Team A".into();
    assert!(render(&v).is_err());
    let mut v = values();
    v.objects.clear();
    assert!(render(&v).is_err());
}
