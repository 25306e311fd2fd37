//! Component tests of the ECR side against mocked ECR APIs (aws-smithy-mocks): the token
//! from GetAuthorizationToken becomes basic auth for the registry, and a push target whose
//! repository is missing gets one, tagged as bootstrap's with scan-on-push; an existing one
//! is left alone.

use aws_sdk_ecr::operation::create_repository::CreateRepositoryOutput;
use aws_sdk_ecr::operation::describe_repositories::{
    DescribeRepositoriesError, DescribeRepositoriesOutput,
};
use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput;
use aws_sdk_ecr::types::error::RepositoryNotFoundException;
use aws_sdk_ecr::types::{AuthorizationData, Repository};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use base64::Engine;
use oci_client::secrets::RegistryAuth;

use super::push::{create_ecr_repository, ecr_repository_missing};
use super::*;

const REGISTRY: &str = "123456789012.dkr.ecr.us-west-2.amazonaws.com";

#[tokio::test]
async fn ecr_tokens_become_basic_auth_for_the_registry() {
    let token = mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(|| {
        GetAuthorizationTokenOutput::builder()
            .authorization_data(
                AuthorizationData::builder()
                    .authorization_token(
                        base64::engine::general_purpose::STANDARD.encode("AWS:ecr-password"),
                    )
                    .proxy_endpoint(format!("https://{REGISTRY}"))
                    .build(),
            )
            .build()
    });
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&token]);
    let creds = Credentials::default()
        .without_docker_config()
        .with_ecr_client(ecr);
    let image = ImageRef::parse(&format!("{REGISTRY}/aws-csi-provider:0.1.0")).unwrap();
    let resolved = creds.resolve(&image).await.unwrap();
    assert_eq!(
        resolved.auth,
        RegistryAuth::Basic("AWS".into(), "ecr-password".into())
    );
    assert_eq!(
        resolved.source,
        AuthSource::Ecr {
            account: "123456789012".into(),
            region: "us-west-2".into()
        }
    );
    assert!(!resolved.source.to_string().contains("ecr-password"));
}

#[tokio::test]
async fn a_missing_repository_is_created_owned_and_scanned_on_push() {
    let describe = mock!(aws_sdk_ecr::Client::describe_repositories)
        .match_requests(|r| {
            r.registry_id() == Some("123456789012") && r.repository_names() == ["team/provider"]
        })
        .then_error(|| {
            DescribeRepositoriesError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder()
                    .message("The repository with name 'team/provider' does not exist")
                    .build(),
            )
        });
    let create = mock!(aws_sdk_ecr::Client::create_repository)
        .match_requests(|r| {
            r.repository_name() == Some("team/provider")
                && r.registry_id() == Some("123456789012")
                && r.image_scanning_configuration()
                    .is_some_and(|c| c.scan_on_push())
                && r.tags().iter().any(|t| {
                    t.key() == bootstrap_common::names::TAG_MANAGED_BY
                        && t.value() == bootstrap_common::names::MANAGED_BY_VALUE
                })
                && r.tags()
                    .iter()
                    .any(|t| t.key() == bootstrap_common::names::TAG_CLUSTER && t.value() == "demo")
        })
        .then_output(|| CreateRepositoryOutput::builder().build());
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&describe, &create]);
    let creds = Credentials::default().with_ecr_client(ecr);
    let target = ImageRef::parse(&format!("{REGISTRY}/team/provider")).unwrap();
    // The read `image push` plans with, then the write its interpreter runs.
    assert!(
        ecr_repository_missing(&creds, &target, "123456789012", "us-west-2")
            .await
            .unwrap()
    );
    create_ecr_repository(&creds, &target, "123456789012", "us-west-2", Some("demo"))
        .await
        .unwrap();
    assert_eq!(create.num_calls(), 1);
}

#[tokio::test]
async fn an_existing_repository_is_left_alone() {
    let describe = mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(
                Repository::builder()
                    .repository_name("team/provider")
                    .build(),
            )
            .build()
    });
    let create = mock!(aws_sdk_ecr::Client::create_repository)
        .then_output(|| CreateRepositoryOutput::builder().build());
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &create]);
    let creds = Credentials::default().with_ecr_client(ecr);
    let target = ImageRef::parse(&format!("{REGISTRY}/team/provider:1")).unwrap();
    let missing = ecr_repository_missing(&creds, &target, "123456789012", "us-west-2")
        .await
        .unwrap();
    assert!(!missing, "found: nothing to create");
    assert_eq!(create.num_calls(), 0);
}

#[tokio::test]
async fn pushing_to_ecr_without_aws_is_a_clear_error() {
    let target = ImageRef::parse(&format!("{REGISTRY}/team/provider:1")).unwrap();
    let err = ecr_repository_missing(
        &Credentials::default(),
        &target,
        "123456789012",
        "us-west-2",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(REGISTRY), "{err}");
    assert!(err.to_string().contains("needs AWS credentials"), "{err}");
}
