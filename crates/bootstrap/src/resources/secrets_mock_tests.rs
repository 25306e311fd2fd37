//! Secret discovery against mocked AWS APIs: a key alias becomes the key ARN (KMS ignores
//! alias ARNs in a policy's `Resource`), and an SSM parameter is found from its metadata,
//! never by reading its value.

use aws_sdk_kms::types::KeyMetadata;
use aws_sdk_ssm::types::ParameterMetadata;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::resolve;
use crate::aws::Clients;
use crate::resources::secrets::SecretRef;

const KEY_ARN: &str = "arn:aws:kms:us-west-2:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab";

/// Clients whose Secrets Manager, SSM and KMS answer only by these rules.
fn clients(secrets: &[&Rule], ssm: &[&Rule], kms: &[&Rule]) -> Clients {
    Clients {
        secrets: mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, secrets),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm),
        kms: mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms),
        ..Clients::unmocked()
    }
}

/// DescribeSecret of `prod/db`, encrypted under the key alias `alias/payments`.
fn secret_under_alias() -> Rule {
    mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
        aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput::builder()
            .arn("arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-AbCdEf")
            .kms_key_id("alias/payments")
            .build()
    })
}

fn describe_key() -> Rule {
    mock!(aws_sdk_kms::Client::describe_key)
        .match_requests(|r| r.key_id() == Some("alias/payments"))
        .then_output(|| {
            aws_sdk_kms::operation::describe_key::DescribeKeyOutput::builder()
                .key_metadata(
                    KeyMetadata::builder()
                        .key_id("0f1e2d3c-aaaa-bbbb-cccc-0123456789ab")
                        .arn(KEY_ARN)
                        .build()
                        .expect("metadata"),
                )
                .build()
        })
}

#[tokio::test]
async fn a_secret_encrypted_under_an_alias_grants_decrypt_on_the_key_arn() {
    let describe = secret_under_alias();
    let key = describe_key();
    let aws = clients(&[&describe], &[], &[&key]);
    let secret = SecretRef::parse("prod/db").expect("ref");
    let resolved = resolve(Some(&aws), "us-west-2", "123456789012", false, &secret)
        .await
        .expect("resolves");
    assert_eq!(resolved.kms_key_arn.as_deref(), Some(KEY_ARN));
    assert_eq!(key.num_calls(), 1);
}

#[tokio::test]
async fn an_alias_kms_cannot_describe_fails_naming_the_key() {
    let describe = secret_under_alias();
    let denied = mock!(aws_sdk_kms::Client::describe_key).then_error(|| {
        aws_sdk_kms::operation::describe_key::DescribeKeyError::NotFoundException(
            aws_sdk_kms::types::error::NotFoundException::builder()
                .message("Alias alias/payments is not found.")
                .build(),
        )
    });
    let aws = clients(&[&describe], &[], &[&denied]);
    let secret = SecretRef::parse("prod/db").expect("ref");
    let err = resolve(Some(&aws), "us-west-2", "123456789012", false, &secret)
        .await
        .expect_err("an unresolvable alias is an error, not a policy on the alias");
    assert!(err.to_string().contains("KMS key alias/payments"), "{err}");
}

#[tokio::test]
async fn an_ssm_parameter_is_found_by_its_metadata_with_its_customer_key() {
    let described = mock!(aws_sdk_ssm::Client::describe_parameters).then_output(|| {
        aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput::builder()
            .parameters(
                ParameterMetadata::builder()
                    .name("/app/token")
                    .key_id("alias/payments")
                    .build(),
            )
            .build()
    });
    let read = mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
        aws_sdk_ssm::operation::get_parameter::GetParameterOutput::builder().build()
    });
    let key = describe_key();
    let aws = clients(&[], &[&described, &read], &[&key]);
    let secret = SecretRef::parse("ssm:/app/token").expect("ref");
    let resolved = resolve(Some(&aws), "us-west-2", "123456789012", false, &secret)
        .await
        .expect("resolves");
    assert_eq!(
        resolved.arn,
        "arn:aws:ssm:us-west-2:123456789012:parameter/app/token"
    );
    assert_eq!(resolved.kms_key_arn.as_deref(), Some(KEY_ARN));
    assert_eq!(
        read.num_calls(),
        0,
        "GetParameter reads the value: never called"
    );
    assert_eq!(described.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_ssm_parameter_is_not_found() {
    let described = mock!(aws_sdk_ssm::Client::describe_parameters).then_output(|| {
        aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput::builder().build()
    });
    let aws = clients(&[], &[&described], &[]);
    let secret = SecretRef::parse("ssm:/app/missing").expect("ref");
    let err = resolve(Some(&aws), "us-west-2", "123456789012", false, &secret)
        .await
        .expect_err("missing");
    assert!(err.to_string().contains("was not found"), "{err}");
}
