//! Shared fixtures of the provider component tests: mocked Secrets Manager answers, the
//! objects YAML, attributes as the driver sends them, and the secret-leak check.

use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::SecretValueEntry;
use aws_smithy_mocks::mock;
use aws_smithy_types::error::ErrorMetadata;

use super::*;

pub const DB_JSON: &str = r#"{"username":"admin","password":"s3cr3t-db-password"}"#;
pub const API_KEY: &str = "s3cr3t-api-key";
pub const OLD_KEY: &str = "s3cr3t-previous-key";
pub const PARAM: &str = "s3cr3t-param-value";

pub fn entry(name: &str, value: &str, version: &str) -> SecretValueEntry {
    SecretValueEntry::builder()
        .name(name)
        .arn(format!(
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}-AbCdEf"
        ))
        .secret_string(value)
        .version_id(version)
        .build()
}

pub fn sm_rules() -> Vec<aws_smithy_mocks::Rule> {
    vec![
        mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value).then_output(|| {
            BatchGetSecretValueOutput::builder()
                .secret_values(entry("prod/db", DB_JSON, "v-db-1"))
                .secret_values(entry("api", API_KEY, "v-api-2"))
                .build()
        }),
        get_secret("api", Some("AWSPREVIOUS"), OLD_KEY, "v-api-1"),
        get_secret("plain", None, "s3cr3t-not-json", "v1"),
        get_secret("huge", None, "x".repeat(5000), "v1"),
        mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(not_found),
    ]
}

/// GetSecretValue of the secret `id` (at the version stage `stage`, when given): `value` at
/// `version`.
pub fn get_secret(
    id: &'static str,
    stage: Option<&'static str>,
    value: impl Into<String>,
    version: &'static str,
) -> aws_smithy_mocks::Rule {
    let value = value.into();
    mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(move |r| {
            r.secret_id() == Some(id) && stage.is_none_or(|s| r.version_stage() == Some(s))
        })
        .then_output(move || {
            GetSecretValueOutput::builder()
                .name(id)
                .secret_string(value.clone())
                .version_id(version)
                .build()
        })
}

/// GetSecretValue's answer for a secret that does not exist.
pub fn not_found() -> GetSecretValueError {
    GetSecretValueError::ResourceNotFoundException(
        aws_sdk_secretsmanager::types::error::ResourceNotFoundException::builder()
            .message("Secrets Manager can't find the specified secret.")
            .meta(
                ErrorMetadata::builder()
                    .code("ResourceNotFoundException")
                    .build(),
            )
            .build(),
    )
}

pub fn fake_aws() -> FakeAws {
    let mut aws = FakeAws::default();
    aws.sm.insert("us-east-1".into(), sm_rules());
    aws
}

pub const OBJECTS: &str = r#"
- objectName: prod/db
  objectType: secretsmanager
  filePermission: "0600"
  jmesPath:
    - {path: username, objectAlias: db-user}
    - {path: password, objectAlias: db-pass, filePermission: "0400"}
- objectName: api
  objectType: secretsmanager
  objectAlias: api-key
- objectName: api
  objectType: secretsmanager
  objectAlias: api-key-previous
  objectVersionLabel: AWSPREVIOUS
"#;

pub fn pod_identity_attrs(objects: &str) -> String {
    attrs_with(&[], objects, &both_tokens())
}

/// Mounts `objects` as [`pod_identity_attrs`] does; the mount must succeed (`why`).
pub async fn mount_ok(h: &mut Harness, objects: &str, why: &str) -> MountResponse {
    mount(h, pod_identity_attrs(objects)).await.expect(why)
}

/// Mounts `objects` as [`pod_identity_attrs`] does and expects the mount to fail (`why`).
pub async fn mount_err(h: &mut Harness, objects: &str, why: &str) -> tonic::Status {
    mount(h, pod_identity_attrs(objects)).await.expect_err(why)
}

pub fn assert_no_secret_leak(h: &Harness, errors: &[String]) {
    let logs = h.logs.text();
    let metrics = h.metrics.render();
    for secret in [
        "s3cr3t",
        API_KEY,
        OLD_KEY,
        PARAM,
        POD_TOKEN,
        STS_TOKEN,
        AGENT_SECRET_KEY,
        "irsa-secret-key",
    ] {
        assert!(!logs.contains(secret), "log leaks {secret}:\n{logs}");
        assert!(!metrics.contains(secret), "metrics leak {secret}");
        for e in errors {
            assert!(!e.contains(secret), "error leaks {secret}: {e}");
        }
    }
}
