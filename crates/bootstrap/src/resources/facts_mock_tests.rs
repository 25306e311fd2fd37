//! The readers doctor and verification share, against mocked AWS APIs (aws-smithy-mocks):
//! one role reader at every depth, and the association check that lists without describing.

use aws_sdk_eks::types::PodIdentityAssociationSummary;
use aws_sdk_iam::types::{AttachedPolicy, Policy, PolicyVersion, Role};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::json;

use crate::aws::Clients;
use crate::resources::mock_tests::{clients, no_eks, no_iam};
use crate::resources::{association, role};

const MANAGED: &str = "arn:aws:iam::aws:policy/ReadSecrets";

/// A policy document as IAM returns it (URL-encoded JSON).
fn encoded(document: &serde_json::Value) -> String {
    document
        .to_string()
        .replace('%', "%25")
        .replace('"', "%22")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace(':', "%3A")
}

fn statement(action: &str) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
}

/// A role bootstrap did not make (no tags), with inline policies `a` (readable) and `b`
/// (access denied) and one attached managed policy. Returns the rules that read policies.
fn someone_elses_role() -> (Clients, Rule, Rule) {
    let get_role = mock!(aws_sdk_iam::Client::get_role).then_output(|| {
        aws_sdk_iam::operation::get_role::GetRoleOutput::builder()
            .role(
                Role::builder()
                    .path("/")
                    .role_name("app-reader")
                    .role_id("AROA")
                    .arn("arn:aws:iam::111122223333:role/app-reader")
                    .create_date(aws_smithy_types::DateTime::from_secs(0))
                    .assume_role_policy_document(encoded(&statement("sts:AssumeRole")))
                    .build()
                    .expect("role"),
            )
            .build()
    });
    let list_inline = mock!(aws_sdk_iam::Client::list_role_policies).then_output(|| {
        aws_sdk_iam::operation::list_role_policies::ListRolePoliciesOutput::builder()
            .policy_names("a")
            .policy_names("b")
            .build()
            .expect("output")
    });
    let denied = mock!(aws_sdk_iam::Client::get_role_policy)
        .match_requests(|r| r.policy_name() == Some("b"))
        .then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(403).expect("status"),
                SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>1</RequestId></ErrorResponse>",
                ),
            )
        });
    let inline = mock!(aws_sdk_iam::Client::get_role_policy).then_output(|| {
        aws_sdk_iam::operation::get_role_policy::GetRolePolicyOutput::builder()
            .role_name("app-reader")
            .policy_name("a")
            .policy_document(encoded(&statement("secretsmanager:GetSecretValue")))
            .build()
            .expect("output")
    });
    let list_attached = mock!(aws_sdk_iam::Client::list_attached_role_policies).then_output(|| {
        aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput::builder()
            .attached_policies(AttachedPolicy::builder().policy_arn(MANAGED).build())
            .build()
    });
    let get_policy = mock!(aws_sdk_iam::Client::get_policy).then_output(|| {
        aws_sdk_iam::operation::get_policy::GetPolicyOutput::builder()
            .policy(
                Policy::builder()
                    .arn(MANAGED)
                    .default_version_id("v2")
                    .build(),
            )
            .build()
    });
    let version = mock!(aws_sdk_iam::Client::get_policy_version).then_output(|| {
        aws_sdk_iam::operation::get_policy_version::GetPolicyVersionOutput::builder()
            .policy_version(
                PolicyVersion::builder()
                    .version_id("v2")
                    .document(encoded(&statement("ssm:GetParameters")))
                    .build(),
            )
            .build()
    });
    let iam = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [
            &get_role,
            &list_inline,
            &denied,
            &inline,
            &list_attached,
            &get_policy,
            &version
        ]
    );
    (clients(no_eks(), iam), inline, list_inline)
}

#[tokio::test]
async fn doctor_reads_every_permission_of_a_role_it_did_not_make() {
    let (aws, _, _) = someone_elses_role();
    let live = role::read(&aws, "app-reader", "demo", role::Depth::Permissions)
        .await
        .expect("read")
        .expect("exists");
    assert!(!live.owned);
    assert_eq!(live.trust, Some(statement("sts:AssumeRole")));
    let sources: Vec<&str> = live.policies.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "inline policy a",
            "attached policy arn:aws:iam::aws:policy/ReadSecrets"
        ]
    );
    assert_eq!(
        live.policies[0].document,
        statement("secretsmanager:GetSecretValue")
    );
    assert_eq!(live.policies[1].document, statement("ssm:GetParameters"));
    assert_eq!(live.unread.len(), 1, "{:?}", live.unread);
    assert!(
        live.unread[0].starts_with("inline policy b (") && live.unread[0].contains("AccessDenied"),
        "{}",
        live.unread[0]
    );
    assert_eq!(live.inline_names, ["a", "b"]);
    assert_eq!(live.attached, [MANAGED]);
}

#[tokio::test]
async fn a_plan_reads_no_policy_of_a_role_it_did_not_make() {
    let (aws, inline, list_inline) = someone_elses_role();
    let live = role::observe(&aws, "app-reader", "demo", true)
        .await
        .expect("read")
        .expect("exists");
    assert!(!live.owned && live.policies.is_empty() && live.inline_names.is_empty());
    assert_eq!(inline.num_calls() + list_inline.num_calls(), 0);
}

#[tokio::test]
async fn verification_asks_eks_only_whether_an_association_exists() {
    let list = mock!(aws_sdk_eks::Client::list_pod_identity_associations)
        .match_requests(|r| r.service_account() == Some("app"))
        .then_output(|| {
            aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput::builder()
                .associations(PodIdentityAssociationSummary::builder().association_id("a-1").build())
                .build()
        });
    let none = mock!(aws_sdk_eks::Client::list_pod_identity_associations).then_output(|| {
        aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput::builder().build()
    });
    let describe = mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(|| {
        aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationOutput::builder().build()
    });
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&list, &none, &describe]);
    let aws = clients(eks, no_iam());
    assert!(
        association::exists(&aws, "demo", "ns", "app")
            .await
            .expect("listed")
    );
    assert!(
        !association::exists(&aws, "demo", "ns", "other")
            .await
            .expect("listed")
    );
    assert_eq!(describe.num_calls(), 0);
}
