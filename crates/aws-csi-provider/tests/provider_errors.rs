//! Component tests, failure paths: every user error is clear, names the object and the cause,
//! writes nothing, and leaks no secret into errors, logs or metrics.

mod provider_support;

use aws_csi_provider::mount::MountConfig;
use provider_support::fixtures::*;
use provider_support::*;
use tonic::Code;

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
    let sts_token_only =
        format!(r#"{{"sts.amazonaws.com":{{"token":"{STS_TOKEN}","expirationTimestamp":"x"}}}}"#);
    // (what is wrong, the attributes, the code where it is checked, what the error says)
    let cases: [(&str, String, Option<Code>, &[&str]); 5] = [
        // Invalid usePodIdentity: quotes the value, lists the accepted ones.
        (
            "bad bool",
            attrs_with(&[("usePodIdentity", "yes")], OBJECTS, &both_tokens()),
            Some(Code::InvalidArgument),
            &["\"yes\"", "TRUE", "0"],
        ),
        (
            "traversal alias",
            pod_identity_attrs(
                "- {objectName: api, objectType: secretsmanager, objectAlias: ../../etc/passwd}",
            ),
            None,
            &["not allowed"],
        ),
        (
            "no token for the Pod Identity audience",
            attrs_with(&[], OBJECTS, &sts_token_only),
            None,
            &["tokenRequests", "pods.eks.amazonaws.com"],
        ),
        // Unknown secret: names the object, says not found.
        (
            "unknown secret",
            pod_identity_attrs("- {objectName: nope, objectType: secretsmanager}"),
            Some(Code::NotFound),
            &["\"nope\"", "not found"],
        ),
        // jmesPath on a non-JSON secret says so (not "failed to fetch").
        (
            "jmesPath on a secret that is not JSON",
            pod_identity_attrs(
                "- {objectName: plain, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a}]}",
            ),
            None,
            &["not valid JSON", "jmesPath"],
        ),
    ];
    let mut errors = Vec::new();
    for (wrong, attrs, code, says) in cases {
        let e = mount(&mut h, attrs).await.expect_err(wrong);
        if let Some(code) = code {
            assert_eq!(e.code(), code, "{wrong}: {}", e.message());
        }
        assert_says(&e, says);
        errors.push(e.message().to_string());
    }

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
