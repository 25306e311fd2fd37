//! End to end in the local environment: the real secrets-store-csi-driver mounts a pod's
//! secrets through `aws-csi-provider`, over Pod Identity (the agent endpoint, eks-auth, moto
//! STS with IAM enforced) and over IRSA, and refuses bad input with a clear error and
//! nothing written. Secret values are compared, never printed.

mod common;

use common::fixture::Fixture;
use common::make;

use std::collections::BTreeMap;

use serde_json::{Value, json};

fn objects(yaml: &str) -> String {
    yaml.to_string()
}

/// Checks that each mounted file (name, expected content, what it shows) holds its value;
/// the values are compared, never printed.
fn assert_holds(files: &BTreeMap<String, (Vec<u8>, u32)>, want: &[(&str, &str, &str)]) {
    for (file, value, what) in want {
        assert!(files[*file].0 == value.as_bytes(), "{file}: {what}");
    }
}

#[tokio::test]
async fn pod_identity_mounts_secrets_manager_and_ssm_objects_with_aliases_jmespath_labels_and_modes()
 {
    let mut s = common::session!("pi");
    let (_, tag, cfg, _, cleanup) = s.parts();
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    let ssm = aws_sdk_ssm::Client::new(cfg);
    cleanup.secrets = vec![format!("{tag}/db"), format!("{tag}/api")];
    cleanup.parameters = vec![format!("/{tag}/param")];
    let password = common::unique("pw");
    let db_secret = json!({"username": "app", "password": password}).to_string();
    let db = make::secret(&sm, &format!("{tag}/db"), db_secret).await;
    let api_v1 = common::unique("api-v1");
    let api_v2 = common::unique("api-v2");
    let api = make::secret(&sm, &format!("{tag}/api"), &api_v1).await;
    let api_put = make::secret_version(&sm, &format!("{tag}/api"), &api_v2).await;
    let param_value = common::unique("param");
    make::parameter(&ssm, &format!("/{tag}/param"), &param_value).await;
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
    let params = json!({"objects": objs, "usePodIdentity": "true", "region": region});
    fx.pod("reader", params.clone()).await;
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
    assert_holds(
        &files,
        &[
            (
                "db-pass",
                password.as_str(),
                "jmesPath extracted the password",
            ),
            ("db-user", "app", "the username"),
            (
                "api-previous",
                api_v1.as_str(),
                "the AWSPREVIOUS label selects the old version",
            ),
            (
                api_file.as_str(),
                api_v2.as_str(),
                "the current version by default",
            ),
            (
                "param",
                param_value.as_str(),
                "the SSM parameter, decrypted",
            ),
        ],
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
    make::secret_version(&sm, &format!("{tag}/api"), &api_v3).await;
    fx.delete_pod("reader").await;
    fx.pod("reader", params).await;
    let (_, files) = fx.mounted("reader").await;
    assert_holds(
        &files,
        &[
            (
                api_file.as_str(),
                api_v3.as_str(),
                "the rotated value is mounted",
            ),
            ("api-previous", api_v2.as_str(), "and AWSPREVIOUS moved on"),
        ],
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
    let (_, tag, cfg, _, cleanup) = s.parts();
    let value = common::unique("irsa-value");
    let arn = cleanup.secret(cfg, &format!("{tag}/token"), &value).await;
    let Some(fx) = Fixture::new("e2e-irsa", &[arn], &[], true).await else {
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
    let (_, tag, cfg, _, cleanup) = s.parts();
    let big = "x".repeat(5 * 1024 * 1024);
    let arns = vec![
        cleanup.secret(cfg, &format!("{tag}/ok"), "fine").await,
        cleanup.secret(cfg, &format!("{tag}/big"), &big).await,
    ];
    let Some(fx) = Fixture::new("e2e-bad", &arns, &[], false).await else {
        return;
    };
    let one = |name: &str, alias: &str| {
        format!(
            "- objectName: \"{tag}/{name}\"\n  objectType: secretsmanager\n  objectAlias: \"{alias}\"\n"
        )
    };

    for (pod, secret, alias, use_pod_identity) in [
        ("bad-flag", "ok", "ok", "yes"),
        ("traversal", "ok", "../escape", "true"),
        ("unknown", "missing", "missing", "true"),
        ("oversized", "big", "big", "true"),
    ] {
        let objects = one(secret, alias);
        fx.pod(
            pod,
            json!({"objects": objects, "usePodIdentity": use_pod_identity}),
        )
        .await;
    }

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
