//! The kubeconfig-less path: a Kubernetes client built from DescribeCluster (endpoint and CA)
//! and an EKS token that bootstrap signs itself, accepted by the local apiserver's
//! EKS-style token webhook — and refused when signed for another cluster or by a stranger.

mod common;

use bootstrap::kube::client::{ClusterEndpoint, from_endpoint};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

async fn endpoint(cfg: &aws_config::SdkConfig, cluster: &str) -> ClusterEndpoint {
    let described = aws_sdk_eks::Client::new(cfg)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .expect("DescribeCluster")
        .cluster
        .expect("cluster");
    ClusterEndpoint {
        name: cluster.to_string(),
        arn: described.arn.unwrap_or_default(),
        endpoint: described.endpoint.expect("endpoint"),
        certificate_authority: described
            .certificate_authority
            .and_then(|c| c.data)
            .expect("CA data"),
    }
}

fn status_of(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(e) => e.code,
        other => panic!("expected an API status error, got {other}"),
    }
}

#[tokio::test]
async fn describe_cluster_and_a_self_signed_eks_token_reach_the_apiserver() {
    let mut s = common::session!("t");
    let (env, _, cfg, ..) = s.parts();
    let region = std::env::var("AWS_REGION").expect("AWS_REGION");
    let ep = endpoint(cfg, &env.cluster).await;
    assert!(
        ep.endpoint.starts_with("https://127.0.0.1:"),
        "DescribeCluster reports the local apiserver"
    );

    let token = bootstrap::aws::token::eks_token(cfg, &region, &env.cluster)
        .await
        .expect("token");
    assert!(token.starts_with("k8s-aws-v1."));
    let client = from_endpoint(&ep, token).expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let list = namespaces
        .list(&ListParams::default())
        .await
        .expect("the admin lists namespaces");
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
    );

    // Signed for another cluster: the signature covers x-k8s-aws-id, so the apiserver says 401.
    let foreign = bootstrap::aws::token::eks_token(cfg, &region, "someone-elses")
        .await
        .expect("token");
    let refused = Api::<Namespace>::all(from_endpoint(&ep, foreign).expect("client"))
        .list(&ListParams::default())
        .await;
    assert_eq!(
        status_of(refused.expect_err("a foreign token is refused")),
        401
    );
}

#[tokio::test]
async fn a_user_without_access_is_authenticated_but_forbidden() {
    let mut s = common::session!("t");
    let (env, _, cfg, _, cleanup) = s.parts();
    let region = std::env::var("AWS_REGION").expect("AWS_REGION");
    let iam = aws_sdk_iam::Client::new(cfg);
    let key = common::make::user_with_key(&iam, cleanup, "stranger").await;
    let creds = aws_credential_types::Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        None,
        None,
        "test",
    );
    let endpoint_url = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let token = bootstrap::aws::token::presign(
        &creds,
        &region,
        &env.cluster,
        &endpoint_url,
        std::time::SystemTime::now(),
    )
    .expect("presign");
    let ep = endpoint(cfg, &env.cluster).await;
    let denied = Api::<Namespace>::all(from_endpoint(&ep, token).expect("client"))
        .list(&ListParams::default())
        .await;
    assert_eq!(status_of(denied.expect_err("no RBAC for a stranger")), 403);
}
