//! The local environment's AWS half, driven with the AWS SDK for Rust: Pod Identity
//! associations with EKS's real conflict semantics, and a real service-account token from
//! the kube-apiserver exchanged at the Pod Identity agent endpoint for role credentials
//! that read (only) the role's own secret.

mod common;

use aws_sdk_eks::operation::create_pod_identity_association::CreatePodIdentityAssociationError;
use common::cli::{calls, faults};
use common::fixture::reading_role;
use common::make;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn pod_identity_association_is_created_and_a_duplicate_is_a_409() {
    let mut s = common::session!("t");
    let (env, _, cfg, _, cleanup) = s.parts();
    let eks = aws_sdk_eks::Client::new(cfg);
    let iam = aws_sdk_iam::Client::new(cfg);
    let ns = common::unique("env-c");
    // The role, and the association if the test stops before deleting it.
    cleanup.namespaces = vec![ns.clone()];
    cleanup.roles = vec![ns.clone()];
    let role_arn = reading_role(&iam, &ns, &[], &[]).await;

    // The same association asked for twice: the second is a conflict.
    let associate = || {
        eks.create_pod_identity_association()
            .cluster_name(&env.cluster)
            .namespace(&ns)
            .service_account("app")
            .role_arn(&role_arn)
    };
    let created = associate()
        .tags("bootstrap.podid/managed-by", "env-test")
        .send()
        .await
        .expect("CreatePodIdentityAssociation")
        .association
        .expect("association in the response");
    let id = created.association_id.clone().expect("association id");
    assert_eq!(created.role_arn.as_deref(), Some(role_arn.as_str()));
    assert_eq!(created.namespace.as_deref(), Some(ns.as_str()));

    let listed = common::associations(cfg, &env.cluster, &ns, None).await;
    let ids: Vec<_> = listed
        .iter()
        .filter_map(|a| a.association_id.clone())
        .collect();
    assert_eq!(ids, vec![id.clone()]);

    let err = associate()
        .send()
        .await
        .expect_err("a second association for the same service account must fail");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(409));
    assert!(
        matches!(
            err.into_service_error(),
            CreatePodIdentityAssociationError::ResourceInUseException(_)
        ),
        "the duplicate is a ResourceInUseException"
    );

    let describe = || {
        eks.describe_pod_identity_association()
            .cluster_name(&env.cluster)
            .association_id(&id)
            .send()
    };
    let described = describe().await.expect("DescribePodIdentityAssociation");
    let tags = described
        .association
        .and_then(|a| a.tags)
        .unwrap_or_default();
    assert_eq!(
        tags.get("bootstrap.podid/managed-by").map(String::as_str),
        Some("env-test")
    );

    eks.delete_pod_identity_association()
        .cluster_name(&env.cluster)
        .association_id(&id)
        .send()
        .await
        .expect("delete");
    let gone = describe().await;
    assert_eq!(
        gone.expect_err("deleted")
            .raw_response()
            .map(|r| r.status().as_u16()),
        Some(404)
    );
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

#[tokio::test]
async fn service_account_token_is_exchanged_at_the_agent_for_credentials_that_read_the_secret() {
    let mut s = common::session!("t");
    let (env, _, cfg, client, cleanup) = s.parts();
    let ns = make::namespace(client, cleanup, "env-d").await;
    cleanup.roles = vec![ns.clone()];
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}});
    sas.patch(
        "app",
        &PatchParams::apply("bootstrap-env-test"),
        &Patch::Apply(&sa),
    )
    .await
    .expect("apply SA");

    // Two secrets: the role may read the first only.
    let value = common::unique("value");
    let mine_arn = cleanup.secret(cfg, &format!("{ns}/mine"), &value).await;
    let other_arn = cleanup.secret(cfg, &format!("{ns}/other"), "other").await;
    let iam = aws_sdk_iam::Client::new(cfg);
    let role_arn = reading_role(&iam, &ns, std::slice::from_ref(&mine_arn), &[]).await;
    common::associate(cfg, &env.cluster, &ns, "app", &role_arn).await;

    // A real token, signed by the apiserver, for the Pod Identity audience.
    let token = common::sa_token(&sas, "app", "pods.eks.amazonaws.com").await;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let http = reqwest::Client::new();
    let reply = http
        .get(&env.agent_endpoint)
        .header("Authorization", &token)
        .send()
        .await
        .expect("agent call");
    assert_eq!(reply.status().as_u16(), 200);
    let creds: AgentCredentials = reply.json().await.expect("agent JSON");
    assert!(!creds.expiration.is_empty() && !creds.token.is_empty());

    let as_role = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(cfg)
            .credentials_provider(aws_credential_types::Credentials::new(
                creds.access_key_id,
                creds.secret_access_key,
                Some(creds.token),
                None,
                "pod-identity-agent",
            ))
            .build(),
    );
    let read = |arn: String| as_role.get_secret_value().secret_id(arn).send();
    let got = read(mine_arn)
        .await
        .expect("GetSecretValue with role credentials");
    assert!(
        got.secret_string.as_deref() == Some(value.as_str()),
        "the role read its secret, and the value matches"
    );

    if std::env::var("BOOTSTRAP_ENV_IAM_ENFORCED").as_deref() == Ok("true") {
        let denied = read(other_arn).await;
        let err = denied.expect_err("the role must not read another secret");
        let code = err
            .as_service_error()
            .and_then(|e| aws_smithy_types::error::metadata::ProvideErrorMetadata::code(e))
            .map(String::from);
        assert!(
            code.as_deref().is_some_and(|c| c.contains("AccessDenied")),
            "AccessDenied, got {code:?}"
        );
    } else {
        eprintln!(
            "note: IAM enforcement is off in this environment; the deny half was not checked"
        );
    }

    // A token for another audience is refused by the agent.
    let wrong_token = common::sa_token(&sas, "app", "sts.amazonaws.com").await;
    let refused = http
        .get(&env.agent_endpoint)
        .header("Authorization", wrong_token)
        .send()
        .await
        .expect("agent call");
    assert!(
        refused.status().is_client_error(),
        "a token without the pods.eks.amazonaws.com audience is refused"
    );
}

/// The stand-in's fault knobs and call counters, seen through the Rust SDK: two injected
/// throttles are absorbed by the SDK's standard retries, and the counter shows three calls.
#[tokio::test]
async fn injected_throttling_is_retried_by_the_sdk_and_every_call_is_counted() {
    let mut s = common::session!("t");
    let (env, _, cfg, ..) = s.parts();
    let http = reqwest::Client::new();
    let eks = aws_sdk_eks::Client::new(cfg);
    let count = |calls: &serde_json::Value| calls["eks:ListAddons"].as_u64().unwrap_or(0);
    let before = calls(&http).await;
    faults(&http, None).await;
    let fault = json!({"operation": "eks:ListAddons", "kind": "throttle", "count": 2});
    faults(&http, Some(fault)).await;
    eks.list_addons()
        .cluster_name(&env.cluster)
        .send()
        .await
        .expect("ListAddons succeeds after two throttles");
    let after = calls(&http).await;
    assert_eq!(
        count(&after) - count(&before),
        3,
        "two throttled attempts and the successful one"
    );

    // With as many throttles as the SDK's three attempts, the error reaches the caller as throttling.
    let fault = json!({"operation": "eks:ListAddons", "kind": "throttle", "count": 3});
    faults(&http, Some(fault)).await;
    let err = eks
        .list_addons()
        .cluster_name(&env.cluster)
        .send()
        .await
        .expect_err("throttled out");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    faults(&http, None).await;
}

/// Under IAM enforcement the stand-in checks SigV4 signatures over the body the SDK sent:
/// the Rust SDK encodes a space in a form body as %20 (moto alone re-encoded it and refused).
#[tokio::test]
async fn signed_form_bodies_with_spaces_and_punctuation_are_accepted() {
    let mut s = common::session!("t");
    let (_, _, cfg, _, cleanup) = s.parts();
    let iam = aws_sdk_iam::Client::new(cfg);
    for description in ["with spaces", "bootstrap: role (cluster x/y) — a+b~c*"] {
        let name = common::unique("desc");
        cleanup.roles.push(name.clone());
        let created = iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(common::POD_IDENTITY_TRUST)
            .description(description)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateRole with description {description:?}: {e:?}"));
        assert_eq!(
            created.role.and_then(|r| r.description).as_deref(),
            Some(description)
        );
    }
}
