//! Unit tests of the workload renderer.

use super::*;

fn values() -> WorkloadValues {
    WorkloadValues {
        service_account: crate::service_account::ServiceAccountRef::new("team-a", "app"),
        region: "eu-west-1".into(),
        objects: vec![SpcObject {
            object_name: "arn:aws:secretsmanager:eu-west-1:1:secret:team/db-AbC123".into(),
            object_type: "secretsmanager".into(),
            object_alias: Some("team_db".into()),
            ..SpcObject::default()
        }],
        failover_region: None,
        secret_objects: Vec::new(),
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
    v.service_account.namespace = "Team A".into();
    assert!(render(&v).is_err());
    let mut v = values();
    v.objects.clear();
    assert!(render(&v).is_err());
}

fn objects_yaml(spc: &Value) -> Vec<Value> {
    let text = spc["spec"]["parameters"]["objects"]
        .as_str()
        .expect("objects is a string");
    serde_saphyr::from_str(text).expect("objects is YAML")
}

#[test]
fn an_spc_without_the_new_options_renders_as_before() {
    let objects = render(&values()).expect("renders");
    let spc = &objects[2];
    let text = spc["spec"]["parameters"]["objects"].as_str().expect("text");
    assert_eq!(
        text.trim_end(),
        "- objectName: arn:aws:secretsmanager:eu-west-1:1:secret:team/db-AbC123\n  objectType: secretsmanager\n  objectAlias: team_db"
    );
    assert!(spc["spec"]["parameters"].get("failoverRegion").is_none());
    assert!(spc["spec"].get("secretObjects").is_none());
}

#[test]
fn prefix_all_keys_optional_failover_and_sync_render_as_the_provider_reads_them() {
    let mut v = values();
    v.objects = vec![
        SpcObject {
            object_name: "teams/payments/".into(),
            object_type: "secretsmanager".into(),
            match_prefix: flag(true),
            recursive: Some("false".into()),
            ..SpcObject::default()
        },
        SpcObject {
            object_name: "arn:aws:secretsmanager:eu-west-1:1:secret:teams/payments/cfg-AbC123"
                .into(),
            object_type: "secretsmanager".into(),
            object_alias: Some("cfg".into()),
            all_keys: flag(true),
            ..SpcObject::default()
        },
        SpcObject {
            object_name: "teams/payments/later".into(),
            object_type: "secretsmanager".into(),
            object_alias: Some("later".into()),
            optional: flag(true),
            ..SpcObject::default()
        },
    ];
    v.failover_region = Some("us-west-2".into());
    v.secret_objects = vec![SyncedSecret {
        secret_name: "payments-cfg".into(),
        kind: "Opaque".into(),
        data: vec![
            SyncedKey {
                object_name: "host".into(),
                key: "host".into(),
            },
            SyncedKey {
                object_name: "port".into(),
                key: "port".into(),
            },
        ],
    }];
    let rendered = render(&v).expect("renders");
    let spc = &rendered[2];
    assert_eq!(spc["spec"]["parameters"]["failoverRegion"], "us-west-2");
    assert_eq!(spc["spec"]["parameters"]["region"], "eu-west-1");
    let objects = objects_yaml(spc);
    // Strings, as the driver passes every parameter: "true", "false".
    assert_eq!(objects[0]["matchPrefix"], "true");
    assert_eq!(objects[0]["recursive"], "false");
    assert!(objects[0].get("objectAlias").is_none(), "{:?}", objects[0]);
    assert_eq!(objects[1]["allKeys"], "true");
    assert!(objects[1].get("matchPrefix").is_none());
    assert_eq!(objects[2]["optional"], "true");
    assert_eq!(
        spc["spec"]["secretObjects"],
        serde_json::json!([{"secretName": "payments-cfg", "type": "Opaque", "data": [
            {"objectName": "host", "key": "host"},
            {"objectName": "port", "key": "port"}]}])
    );
}

#[test]
fn synced_secrets_with_bad_or_twice_named_keys_are_refused() {
    let mut v = values();
    let key = |k: &str| SyncedKey {
        object_name: k.into(),
        key: k.into(),
    };
    v.secret_objects = vec![SyncedSecret {
        secret_name: "s".into(),
        kind: "Opaque".into(),
        data: vec![key("a"), key("a")],
    }];
    let err = render(&v).expect_err("a key twice").to_string();
    assert!(err.contains("key \"a\" twice"), "{err}");
    v.secret_objects[0].data = vec![key("a b")];
    assert!(render(&v).is_err());
    v.secret_objects[0].data = vec![key("a")];
    v.secret_objects[0].secret_name = "Not_A_Name".into();
    assert!(render(&v).is_err());
}
