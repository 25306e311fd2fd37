//! Component tests, failure paths: every user error is clear, names the object and the cause,
//! writes nothing, and leaks no secret into errors, logs or metrics.

mod provider_support;

use aws_csi_provider::mount::MountConfig;
use provider_support::fixtures::*;
use provider_support::*;

#[tokio::test]
async fn irsa_without_role_annotation_says_so() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let attrs = attributes(
        &[("region", "us-east-1"), ("objects", OBJECTS)],
        Some(&both_tokens()),
    );
    let err = mount(&mut h, attrs).await.expect_err("no role");
    assert_says(&err, &["eks.amazonaws.com/role-arn", "demo/web"]);
}

#[tokio::test]
async fn user_errors_are_clear_and_write_nothing() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let mut errors = Vec::new();

    // Invalid usePodIdentity: quotes the value, lists the accepted ones.
    let attrs = attrs_with(&[("usePodIdentity", "yes")], OBJECTS, &both_tokens());
    let e = mount(&mut h, attrs).await.expect_err("bad bool");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_says(&e, &["\"yes\"", "TRUE", "0"]);
    errors.push(e.message().to_string());

    // Traversal alias.
    let e = mount_err(
        &mut h,
        "- {objectName: api, objectType: secretsmanager, objectAlias: ../../etc/passwd}",
        "traversal",
    )
    .await;
    assert_says(&e, &["not allowed"]);
    errors.push(e.message().to_string());

    // Missing token for the audience.
    let tokens =
        format!(r#"{{"sts.amazonaws.com":{{"token":"{STS_TOKEN}","expirationTimestamp":"x"}}}}"#);
    let attrs = attrs_with(&[], OBJECTS, &tokens);
    let e = mount(&mut h, attrs).await.expect_err("no token");
    assert_says(&e, &["tokenRequests", "pods.eks.amazonaws.com"]);
    errors.push(e.message().to_string());

    // Unknown secret: names the object, says not found.
    let e = mount_err(
        &mut h,
        "- {objectName: nope, objectType: secretsmanager}",
        "unknown",
    )
    .await;
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_says(&e, &["\"nope\"", "not found"]);
    errors.push(e.message().to_string());

    // jmesPath on a non-JSON secret says so (not "failed to fetch").
    let e = mount_err(
        &mut h,
        "- {objectName: plain, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a}]}",
        "not json",
    )
    .await;
    assert_says(&e, &["not valid JSON", "jmesPath"]);
    errors.push(e.message().to_string());

    assert_no_secret_leak(&h, &errors);
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let config = MountConfig {
        max_response_bytes: 4096,
        ..MountConfig::default()
    };
    let (_agent, mut h) = with_agent(fake_aws(), config).await;
    let e = mount_err(
        &mut h,
        "- {objectName: huge, objectType: secretsmanager}",
        "too big",
    )
    .await;
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert_says(&e, &["4096"]);
}

#[tokio::test]
async fn agent_rejection_and_batch_errors() {
    let agent = start_agent("some-other-token").await;
    let mut h = start(
        fake_aws(),
        FakeCluster::default(),
        &agent.url,
        MountConfig::default(),
    )
    .await;
    let e = mount_err(&mut h, OBJECTS, "agent refuses").await;
    assert_says(&e, &["Pod Identity", "403"]);
    assert_no_secret_leak(&h, &[e.message().to_string()]);
}
