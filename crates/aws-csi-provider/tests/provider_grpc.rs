//! Component tests, success paths: the real gRPC provider over a unix socket with a fake Pod
//! Identity agent, a fake cluster and mocked AWS (aws-smithy-mocks).

mod provider_support;

use aws_csi_provider::mount::MountConfig;
use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::types::ApiErrorType;
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::types::Parameter;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput;
use aws_smithy_mocks::mock;
use provider_support::fixtures::*;
use provider_support::*;

#[tokio::test]
async fn version_reports_runtime() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let v = h
        .client
        .version(aws_csi_provider::proto::VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .expect("version")
        .into_inner();
    assert_eq!(v.runtime_name, "aws-csi-provider");
    assert_eq!(v.version, "v1alpha1");
}

#[tokio::test]
async fn pod_identity_secrets_manager_alias_jmes_label_and_cache() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let resp = mount_ok(&mut h, OBJECTS, "mount succeeds").await;
    let files: Vec<(&str, i32, &[u8])> = resp
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode, f.contents.as_slice()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("db-user", 0o600, b"admin".as_slice()),
            ("db-pass", 0o400, b"s3cr3t-db-password".as_slice()),
            ("prod_db", 0o600, DB_JSON.as_bytes()),
            ("api-key", 420, API_KEY.as_bytes()),
            ("api-key-previous", 420, OLD_KEY.as_bytes()),
        ]
    );
    assert_eq!(
        versions_of(&resp),
        vec![
            ("prod_db", "v-db-1"),
            ("db-user", "v-db-1"),
            ("db-pass", "v-db-1"),
            ("api-key", "v-api-2"),
            ("api-key-previous", "v-api-1")
        ]
    );
    // A second mount reuses the cached credentials: the agent is asked once.
    mount_ok(&mut h, OBJECTS, "second mount").await;
    assert_eq!(agent.requests(), 1);
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("operation=\"BatchGetSecretValue\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("cache=\"hit\"} 1"), "{metrics}");
    assert!(h.logs.text().contains("web-0"), "logs name the pod");
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn irsa_with_ssm_parameters() {
    let agent = start_agent(POD_TOKEN).await;
    let mut aws = fake_aws();
    aws.sts.push(
        mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
            .match_requests(|r| {
                r.web_identity_token() == Some(STS_TOKEN)
                    && r.role_arn() == Some("arn:aws:iam::111122223333:role/web")
            })
            .then_output(|| {
                let exp = aws_smithy_types::DateTime::from(
                    std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
                );
                AssumeRoleWithWebIdentityOutput::builder()
                    .credentials(
                        aws_sdk_sts::types::Credentials::builder()
                            .access_key_id("ASIAIRSA")
                            .secret_access_key("irsa-secret-key")
                            .session_token("irsa-session")
                            .expiration(exp)
                            .build()
                            .expect("credentials"),
                    )
                    .build()
            }),
    );
    aws.ssm.insert(
        "eu-west-1".into(),
        vec![mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
            GetParametersOutput::builder()
                .parameters(
                    Parameter::builder()
                        .name("/app/db-url")
                        .value(PARAM)
                        .version(4)
                        .build(),
                )
                .parameters(
                    Parameter::builder()
                        .name("/app/flag")
                        .selector(":2")
                        .value("on")
                        .version(2)
                        .build(),
                )
                .build()
        })],
    );
    let mut cluster = FakeCluster {
        node_region: Some("eu-west-1".into()),
        ..Default::default()
    };
    cluster.roles.insert(
        ("demo".into(), "web".into()),
        "arn:aws:iam::111122223333:role/web".into(),
    );
    let mut h = start(aws, cluster, &agent.url, MountConfig::default()).await;
    let objects = "- {objectName: /app/db-url, objectType: ssmparameter}\n- {objectName: /app/flag, objectType: ssmparameter, objectVersion: 2, objectAlias: flag}";
    // No region parameter: it comes from the node label. usePodIdentity empty → IRSA.
    let attrs = attributes(
        &[("usePodIdentity", ""), ("objects", objects)],
        Some(&both_tokens()),
    );
    let resp = mount(&mut h, attrs).await.expect("IRSA + SSM mount");
    let files = files_of(&resp);
    assert_eq!(
        files,
        vec![
            ("_app_db-url", PARAM.as_bytes()),
            ("flag", b"on".as_slice())
        ]
    );
    assert_eq!(resp.object_version[0].version, "4");
    assert_eq!(agent.requests(), 0);
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn batch_entry_errors_name_the_object_and_failover_recovers() {
    let mut aws = FakeAws::default();
    aws.sm.insert(
        "us-east-1".into(),
        vec![
            mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value).then_output(|| {
                BatchGetSecretValueOutput::builder()
                    .secret_values(entry("a", "s3cr3t-a", "va"))
                    .errors(
                        ApiErrorType::builder()
                            .secret_id("b")
                            .error_code("InternalServiceError")
                            .message("try later")
                            .build(),
                    )
                    .build()
            }),
        ],
    );
    aws.sm.insert(
        "us-west-2".into(),
        vec![get_secret("b-replica", None, "s3cr3t-b", "vb")],
    );
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager, objectAlias: b, failoverObject: {objectName: b-replica}}";
    let failover = [("usePodIdentity", "1"), ("failoverRegion", "us-west-2")];
    let attrs = attrs_with(&failover, objects, &both_tokens());
    let resp = mount(&mut h, attrs).await.expect("failover mount");
    let files = files_of(&resp);
    assert_eq!(
        files,
        vec![("a", b"s3cr3t-a".as_slice()), ("b", b"s3cr3t-b".as_slice())]
    );
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn batch_denied_falls_back_to_get_secret_value_and_remembers() {
    use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueError;
    let batch = mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value).then_error(|| {
        BatchGetSecretValueError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform secretsmanager:BatchGetSecretValue")
                .build(),
        )
    });
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(|| {
        GetSecretValueOutput::builder()
            .secret_string("s3cr3t-x")
            .version_id("v")
            .build()
    });
    let mut aws = FakeAws::default();
    aws.sm
        .insert("us-east-1".into(), vec![batch.clone(), get.clone()]);
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager}";
    for _ in 0..2 {
        let resp = mount_ok(&mut h, objects, "fallback mount").await;
        assert_eq!(resp.files.len(), 2);
    }
    assert_eq!(
        batch.num_calls(),
        1,
        "batch tried once, then remembered as denied"
    );
    assert_eq!(get.num_calls(), 4);
}
