//! End to end in the local environment: the real secrets-store-csi-driver mounts a pod's
//! secrets through `aws-csi-provider`, over Pod Identity (the agent endpoint, eks-auth, moto
//! STS with IAM enforced) and over IRSA, and refuses bad input with a clear error and
//! nothing written. Secret values are compared, never printed.

mod common;

use common::fixture::Fixture;

use std::collections::BTreeMap;

use serde_json::{Value, json};

fn objects(yaml: &str) -> String {
    yaml.to_string()
}

#[tokio::test]
async fn pod_identity_mounts_secrets_manager_and_ssm_objects_with_aliases_jmespath_labels_and_modes()
 {
    let mut s = common::session!("pi");
    let (_, tag, _, _, cleanup) = s.parts();
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    cleanup.secrets = vec![format!("{tag}/db"), format!("{tag}/api")];
    cleanup.parameters = vec![format!("/{tag}/param")];
    let password = common::unique("pw");
    let db = sm
        .create_secret()
        .name(format!("{tag}/db"))
        .secret_string(json!({"username": "app", "password": password}).to_string())
        .send()
        .await
        .expect("CreateSecret db");
    let api_v1 = common::unique("api-v1");
    let api_v2 = common::unique("api-v2");
    let api = sm
        .create_secret()
        .name(format!("{tag}/api"))
        .secret_string(&api_v1)
        .send()
        .await
        .expect("CreateSecret api");
    let api_put = sm
        .put_secret_value()
        .secret_id(format!("{tag}/api"))
        .secret_string(&api_v2)
        .send()
        .await
        .expect("PutSecretValue");
    let param_value = common::unique("param");
    ssm.put_parameter()
        .name(format!("/{tag}/param"))
        .value(&param_value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");
    let account = "123456789012";
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let param_arn = format!("arn:aws:ssm:{region}:{account}:parameter/{tag}/param");
    let secret_arns = vec![db.arn.clone().expect("arn"), api.arn.clone().expect("arn")];
    let Some(fx) = Fixture::new(
        "e2e-pi",
        &secret_arns,
        std::slice::from_ref(&param_arn),
        false,
    )
    .await
    else {
        return;
    };

    let objs = objects(&format!(
        r#"
- objectName: "{tag}/db"
  objectType: secretsmanager
  objectAlias: db.json
  filePermission: "0600"
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: password
      objectAlias: db-pass
      filePermission: "0400"
- objectName: "{api_arn}"
  objectAlias: api-previous
  objectVersionLabel: AWSPREVIOUS
- objectName: "{tag}/api"
  objectType: secretsmanager
- objectName: "/{tag}/param"
  objectType: ssmparameter
  objectAlias: param
"#,
        api_arn = api.arn.clone().unwrap()
    ));
    fx.pod(
        "reader",
        json!({"objects": objs, "usePodIdentity": "true", "region": region}),
    )
    .await;
    let (_target, files) = fx.mounted("reader").await;
    let names: Vec<_> = files.keys().cloned().collect();
    let api_file = format!("{tag}_api");
    let mut want = vec![
        "api-previous".to_string(),
        api_file.clone(),
        "db-pass".into(),
        "db-user".into(),
        "db.json".into(),
        "param".into(),
    ];
    want.sort();
    assert_eq!(names, want, "one file per object, path translated");
    let db_json: Value =
        serde_json::from_slice(&files["db.json"].0).expect("db.json is the JSON secret");
    assert!(
        db_json["password"] == json!(password),
        "db.json holds the secret"
    );
    assert!(
        files["db-pass"].0 == password.as_bytes(),
        "jmesPath extracted the password"
    );
    assert_eq!(files["db-user"].0, b"app");
    assert!(
        files["api-previous"].0 == api_v1.as_bytes(),
        "the AWSPREVIOUS label selects the old version"
    );
    assert!(
        files[&api_file].0 == api_v2.as_bytes(),
        "the current version by default"
    );
    assert!(
        files["param"].0 == param_value.as_bytes(),
        "the SSM parameter, decrypted"
    );
    assert_eq!(files["db.json"].1, 0o600);
    assert_eq!(files["db-pass"].1, 0o400);
    assert_eq!(files["param"].1, 0o644, "the default mode");

    let status = fx.pod_status("reader").await;
    assert_eq!(status["mounted"], true);
    let versions: BTreeMap<String, String> = status["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap_or_default().to_string(),
                o["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions.get(&api_file),
        api_put.version_id.as_ref(),
        "the current VersionId"
    );
    assert_eq!(versions.get("db.json"), db.version_id.as_ref());
    assert_eq!(
        versions.get("param").map(String::as_str),
        Some("1"),
        "the SSM version"
    );

    // Rotation: a new value shows up on the next mount.
    let api_v3 = common::unique("api-v3");
    sm.put_secret_value()
        .secret_id(format!("{tag}/api"))
        .secret_string(&api_v3)
        .send()
        .await
        .expect("rotate");
    fx.delete_pod("reader").await;
    fx.pod(
        "reader",
        json!({"objects": objs, "usePodIdentity": "true", "region": region}),
    )
    .await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files[&api_file].0 == api_v3.as_bytes(),
        "the rotated value is mounted"
    );
    assert!(
        files["api-previous"].0 == api_v2.as_bytes(),
        "and AWSPREVIOUS moved on"
    );

    // No secret value in the provider's log.
    let log = std::fs::read_to_string(format!("{}/logs/aws-csi-provider.log", fx.env.state_dir))
        .unwrap_or_default();
    for (what, v) in [
        ("password", &password),
        ("api v1", &api_v1),
        ("api v2", &api_v2),
        ("api v3", &api_v3),
        ("param", &param_value),
    ] {
        assert!(
            !log.contains(v.as_str()),
            "the provider log contains the {what} value"
        );
    }
    let _ = fx.role_arn;
}

#[tokio::test]
async fn irsa_mounts_a_secret_with_the_service_account_role() {
    let mut s = common::session!("irsa");
    let (_, tag, _, _, cleanup) = s.parts();
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    cleanup.secrets = vec![format!("{tag}/token")];
    let value = common::unique("irsa-value");
    let s = sm
        .create_secret()
        .name(format!("{tag}/token"))
        .secret_string(&value)
        .send()
        .await
        .expect("CreateSecret");
    let Some(fx) = Fixture::new("e2e-irsa", &[s.arn.expect("arn")], &[], true).await else {
        return;
    };
    let objs = format!(
        "- objectName: \"{tag}/token\"\n  objectType: secretsmanager\n  objectAlias: token\n"
    );
    // usePodIdentity omitted: IRSA, the upstream default.
    fx.pod("reader", json!({"objects": objs})).await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files["token"].0 == value.as_bytes(),
        "the IRSA role read the secret"
    );
    assert_eq!(fx.pod_status("reader").await["mounted"], true);
    let _ = &fx.cfg;
}

#[tokio::test]
async fn bad_input_fails_the_mount_with_a_clear_error_and_writes_nothing() {
    let mut s = common::session!("bad");
    let (_, tag, _, _, cleanup) = s.parts();
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    cleanup.secrets = vec![format!("{tag}/ok"), format!("{tag}/big")];
    let ok = sm
        .create_secret()
        .name(format!("{tag}/ok"))
        .secret_string("fine")
        .send()
        .await
        .expect("CreateSecret");
    let big = sm
        .create_secret()
        .name(format!("{tag}/big"))
        .secret_string("x".repeat(5 * 1024 * 1024))
        .send()
        .await
        .expect("CreateSecret big");
    let arns = vec![ok.arn.expect("arn"), big.arn.expect("arn")];
    let Some(fx) = Fixture::new("e2e-bad", &arns, &[], false).await else {
        return;
    };
    let one = |name: &str, alias: &str| {
        format!(
            "- objectName: \"{tag}/{name}\"\n  objectType: secretsmanager\n  objectAlias: \"{alias}\"\n"
        )
    };

    fx.pod(
        "bad-flag",
        json!({"objects": one("ok", "ok"), "usePodIdentity": "yes"}),
    )
    .await;
    fx.pod(
        "traversal",
        json!({"objects": one("ok", "../escape"), "usePodIdentity": "true"}),
    )
    .await;
    fx.pod(
        "unknown",
        json!({"objects": one("missing", "missing"), "usePodIdentity": "true"}),
    )
    .await;
    fx.pod(
        "oversized",
        json!({"objects": one("big", "big"), "usePodIdentity": "true"}),
    )
    .await;

    let msg = fx.failed("bad-flag").await;
    assert!(
        msg.contains("usePodIdentity") && msg.contains("\"yes\""),
        "quotes the bad value: {msg}"
    );
    assert!(
        msg.contains("true") && msg.contains("false"),
        "lists accepted values: {msg}"
    );
    let msg = fx.failed("traversal").await;
    assert!(
        msg.contains("../escape") || msg.contains(".."),
        "names the traversal: {msg}"
    );
    let msg = fx.failed("unknown").await;
    assert!(
        msg.contains(&format!("{tag}/missing")),
        "names the missing secret: {msg}"
    );
    assert!(
        !msg.to_lowercase().contains("all regions"),
        "the real cause, not a generic fetch failure: {msg}"
    );
    let msg = fx.failed("oversized").await;
    assert!(
        msg.to_lowercase().contains("size")
            || msg.to_lowercase().contains("large")
            || msg.contains("MiB"),
        "says it is too big: {msg}"
    );
}
