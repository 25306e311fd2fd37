//! Component tests of resources, preflight and the executor against mocked AWS APIs
//! (aws-smithy-mocks): real SDK clients and response parsing, canned HTTP answers.

use std::time::{Duration, Instant};

use aws_sdk_eks::types::{
    Cluster, ClusterStatus, PodIdentityAssociation, PodIdentityAssociationSummary,
};
use aws_sdk_iam::types::{Role, Tag};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::{Workload, association, role};
use crate::aws::Clients;
use crate::interp::Backends;
use crate::plan::{Action, Executor};
use bootstrap_common::names::{TAG_CLUSTER, TAG_MANAGED_BY, TAG_NAMESPACE, TAG_SERVICE_ACCOUNT};

const ROLE: &str = "arn:aws:iam::123456789012:role/bootstrap-demo-bootstrap-demo-demo-app";

pub(super) fn clients(eks: aws_sdk_eks::Client, iam: aws_sdk_iam::Client) -> Clients {
    Clients {
        eks,
        iam,
        ..Clients::unmocked()
    }
}

/// An EKS client with no mocked answers, for a test that must not call it.
pub(super) fn no_eks() -> aws_sdk_eks::Client {
    mock_client!(aws_sdk_eks, RuleMode::MatchAny, &[] as &[&Rule])
}

fn backends(aws: Clients) -> Backends {
    Backends {
        aws,
        kube: None,
        cluster: "demo".into(),
    }
}

fn fast() -> bootstrap_common::Backoff {
    bootstrap_common::Backoff {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        budget: Duration::from_millis(20),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// An IAM client with no mocked answers, for a test that must not call it.
pub(super) fn no_iam() -> aws_sdk_iam::Client {
    mock_client!(aws_sdk_iam, RuleMode::MatchAny, &[] as &[&Rule])
}

/// An EKS (REST-JSON) error as the service sends it.
fn eks_error(
    status: u16,
    code: &'static str,
    message: &'static str,
) -> impl Fn() -> HttpResponse + Send + Sync {
    move || {
        let mut r = HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(format!("{{\"message\":\"{message}\"}}")),
        );
        r.headers_mut().insert("x-amzn-errortype", code);
        r
    }
}

#[tokio::test]
async fn an_unknown_cluster_names_the_ones_that_exist() {
    let describe = mock!(aws_sdk_eks::Client::describe_cluster).then_http_response(eks_error(
        404,
        "ResourceNotFoundException",
        "No cluster found for name: nope.",
    ));
    let list = mock!(aws_sdk_eks::Client::list_clusters).then_output(|| {
        aws_sdk_eks::operation::list_clusters::ListClustersOutput::builder()
            .clusters("alpha")
            .clusters("beta")
            .build()
    });
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&describe, &list]);
    let aws = clients(eks, no_iam());
    let err = crate::target::describe_cluster(&aws, "demo")
        .await
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "EKS cluster demo was not found in region us-west-2"
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("clusters in us-west-2: alpha, beta")
    );
}

#[tokio::test]
async fn a_cluster_that_is_not_active_is_refused() {
    let describe = mock!(aws_sdk_eks::Client::describe_cluster).then_output(|| {
        aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput::builder()
            .cluster(
                Cluster::builder()
                    .name("demo")
                    .status(ClusterStatus::Creating)
                    .version("1.34")
                    .build(),
            )
            .build()
    });
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&describe]);
    let err = crate::target::describe_cluster(&clients(eks, no_iam()), "demo")
        .await
        .expect_err("fails");
    assert_eq!(err.to_string(), "EKS cluster demo is CREATING, not ACTIVE");
    assert!(err.hint().is_some());
}

fn association_rules(current_role: &'static str) -> (Rule, Rule) {
    let list = mock!(aws_sdk_eks::Client::list_pod_identity_associations).then_output(|| {
        aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsOutput::builder()
            .associations(PodIdentityAssociationSummary::builder().association_id("a-1").namespace("bootstrap-demo").service_account("demo-app").build())
            .build()
    });
    let describe = mock!(aws_sdk_eks::Client::describe_pod_identity_association).then_output(move || {
        aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationOutput::builder()
            .association(PodIdentityAssociation::builder().association_id("a-1").namespace("bootstrap-demo").service_account("demo-app").role_arn(current_role).build())
            .build()
    });
    (list, describe)
}

/// The plan of demo-app's association with [`ROLE`] (forced or not) against `live`.
fn plan_demo_association(
    force: bool,
    live: Option<&association::LiveAssociation>,
) -> Result<crate::plan::Change, crate::error::StepError> {
    association::plan(
        "demo",
        "bootstrap-demo",
        "demo-app",
        ROLE,
        None,
        force,
        live,
    )
}

#[tokio::test]
async fn another_roles_association_is_a_conflict_until_forced_then_updated() {
    let (list, describe) = association_rules("arn:aws:iam::123456789012:role/other");
    let update = mock!(aws_sdk_eks::Client::update_pod_identity_association)
        .then_output(|| aws_sdk_eks::operation::update_pod_identity_association::UpdatePodIdentityAssociationOutput::builder().build());
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&list, &describe, &update]);
    let aws = clients(eks, no_iam());
    let live = association::observe(&aws, "demo", "bootstrap-demo", "demo-app")
        .await
        .expect("observed");
    let err = plan_demo_association(false, live.as_ref()).expect_err("conflict");
    assert!(
        err.to_string()
            .contains("already associated with another role: arn:aws:iam::123456789012:role/other"),
        "{err}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("--force")));
    let forced = plan_demo_association(true, live.as_ref()).expect("forced");
    assert_eq!(forced.action, Action::Replace);
    let b = backends(aws);
    Executor::new(false, Some(&b), soon())
        .run(&forced.ops)
        .await
        .expect("updates");
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn the_same_association_is_unchanged_and_nothing_is_sent() {
    let (list, describe) = association_rules(ROLE);
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&list, &describe]);
    let aws = clients(eks, no_iam());
    let live = association::observe(&aws, "demo", "bootstrap-demo", "demo-app")
        .await
        .expect("observed");
    let change = plan_demo_association(false, live.as_ref()).expect("ok");
    assert_eq!(change.action, Action::Unchanged);
    assert!(change.ops.is_empty());
}

#[tokio::test]
async fn association_creation_is_retried_while_the_new_role_propagates() {
    let create = mock!(aws_sdk_eks::Client::create_pod_identity_association)
        .sequence()
        .http_response(eks_error(400, "InvalidParameterException", "Role does not exist"))
        .output(|| aws_sdk_eks::operation::create_pod_identity_association::CreatePodIdentityAssociationOutput::builder().build())
        .build();
    let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&create]);
    let change = plan_demo_association(false, None).expect("create");
    let b = backends(clients(eks, no_iam()));
    let exec = Executor::new(false, Some(&b), soon()).with_retry(fast());
    exec.run(&change.ops).await.expect("created after a retry");
    assert_eq!(create.num_calls(), 2);
    assert_eq!(
        exec.journal().len(),
        1,
        "one executed write, journaled once"
    );
}

/// A Kubernetes API server where nothing exists yet: every request is answered 404.
fn kube_finds_nothing() -> kube::Client {
    let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
        http::Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(status.to_vec()))
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });
    kube::Client::new(service, "default")
}

/// The role spec of [`workload`] on cluster demo.
fn demo_role() -> role::RoleSpec {
    role::RoleSpec::for_workload(
        "123456789012",
        "us-west-2",
        "demo",
        "arn:aws:eks:us-west-2:123456789012:cluster/demo",
        &workload(),
    )
}

fn workload() -> Workload {
    Workload::reading(
        "bootstrap-demo",
        "demo-app",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf",
    )
}

/// An owned role with the right trust and inline policy, described as `description`; returns
/// its clients and the rules for PutRolePolicy and UpdateRoleDescription (to count writes).
fn owned_role(description: Option<&'static str>) -> (Clients, Rule, Rule) {
    let (aws, put, describe, _) = role_rules(description, true, None);
    (aws, put, describe)
}

/// An IAM (query protocol) error as the service sends it.
fn iam_error(status: u16, code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync {
    move || {
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{code}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
            )),
        )
    }
}

/// The IAM side of an owned role (with or without the workload tags of this release); with
/// `only_name`, GetRole of any other name answers NoSuchEntity. Returns the rules for
/// PutRolePolicy, UpdateRoleDescription and TagRole (to count writes).
fn role_rules(
    description: Option<&'static str>,
    workload_tags: bool,
    only_name: Option<&'static str>,
) -> (Clients, Rule, Rule, Rule) {
    let spec = demo_role();
    let policy = spec.inline.to_string();
    let trust = spec
        .trust
        .to_string()
        .replace('"', "%22")
        .replace('{', "%7B")
        .replace('}', "%7D");
    let arn = match only_name {
        Some(name) => format!("arn:aws:iam::123456789012:role/{name}"),
        None => ROLE.to_string(),
    };
    let absent = mock!(aws_sdk_iam::Client::get_role)
        .match_requests(move |r| only_name.is_some_and(|n| r.role_name() != Some(n)))
        .then_http_response(iam_error(404, "NoSuchEntity"));
    let get_role = mock!(aws_sdk_iam::Client::get_role).then_output(move || {
        let mut role = Role::builder()
            .path("/")
            .role_name("r")
            .role_id("AROA")
            .arn(arn.clone())
            .create_date(aws_smithy_types::DateTime::from_secs(0))
            .assume_role_policy_document(trust.clone())
            .tags(
                Tag::builder()
                    .key(TAG_MANAGED_BY)
                    .value("bootstrap")
                    .build()
                    .expect("tag"),
            )
            .tags(
                Tag::builder()
                    .key(TAG_CLUSTER)
                    .value("demo")
                    .build()
                    .expect("tag"),
            );
        if let Some(d) = description {
            role = role.description(d);
        }
        if workload_tags {
            for (k, v) in [
                (TAG_NAMESPACE, "bootstrap-demo"),
                (TAG_SERVICE_ACCOUNT, "demo-app"),
            ] {
                role = role.tags(Tag::builder().key(k).value(v).build().expect("tag"));
            }
        }
        aws_sdk_iam::operation::get_role::GetRoleOutput::builder()
            .role(role.build().expect("role"))
            .build()
    });
    let get_policy = mock!(aws_sdk_iam::Client::get_role_policy).then_output(move || {
        aws_sdk_iam::operation::get_role_policy::GetRolePolicyOutput::builder()
            .role_name("r")
            .policy_name(role::POLICY_NAME)
            .policy_document(policy.clone())
            .build()
            .expect("output")
    });
    let put = mock!(aws_sdk_iam::Client::put_role_policy).then_output(|| {
        aws_sdk_iam::operation::put_role_policy::PutRolePolicyOutput::builder().build()
    });
    let describe = mock!(aws_sdk_iam::Client::update_role_description).then_output(|| {
        aws_sdk_iam::operation::update_role_description::UpdateRoleDescriptionOutput::builder()
            .build()
    });
    let tag = mock!(aws_sdk_iam::Client::tag_role)
        .then_output(|| aws_sdk_iam::operation::tag_role::TagRoleOutput::builder().build());
    let iam = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&absent, &get_role, &get_policy, &put, &describe, &tag]
    );
    (clients(no_eks(), iam), put, describe, tag)
}

const DESCRIPTION: &str =
    "EKS Pod Identity role for bootstrap-demo/demo-app on cluster demo (managed by bootstrap)";

async fn plan_and_apply(aws: Clients) -> crate::plan::Change {
    let spec = demo_role();
    let live = role::observe(&aws, &spec.name, "demo", false)
        .await
        .expect("observed");
    let change = role::plan(&spec, live.as_ref());
    let b = backends(aws);
    Executor::new(false, Some(&b), soon())
        .run(&change.ops)
        .await
        .expect("applies");
    change
}

#[tokio::test]
async fn an_owned_role_with_the_right_policies_is_unchanged() {
    assert_eq!(
        role::role_description("demo", "bootstrap-demo", "demo-app"),
        DESCRIPTION
    );
    let (aws, put, describe) = owned_role(Some(DESCRIPTION));
    let change = plan_and_apply(aws).await;
    assert_eq!(change.action, Action::Unchanged, "{change:?}");
    assert_eq!(put.num_calls(), 0);
    assert_eq!(describe.num_calls(), 0);
}

#[tokio::test]
async fn an_owned_role_without_the_description_gets_only_the_description() {
    for stale in [None, Some("made by an older bootstrap")] {
        let (aws, put, describe) = owned_role(stale);
        let change = plan_and_apply(aws).await;
        assert_eq!(change.action, Action::Update, "{change:?}");
        assert_eq!(
            change.calls,
            [format!(
                "iam:UpdateRoleDescription RoleName=bootstrap-demo.bootstrap-demo.demo-app Description=\"{DESCRIPTION}\""
            )]
        );
        assert_eq!(describe.num_calls(), 1);
        assert_eq!(put.num_calls(), 0);
    }
}

/// A role the previous release made (its name, tagged managed-by + cluster, no workload tags)
/// that the workload's association names: the same role keeps being used — no new role, no
/// association update — and it only gets the workload tags; once tagged, nothing is written.
#[tokio::test]
async fn a_previous_release_role_is_adopted_without_churn() {
    const LEGACY: &str = "bootstrap-demo-bootstrap-demo-demo-app";
    assert_eq!(
        super::role_identity::legacy_role_name("demo", "bootstrap-demo", "demo-app"),
        LEGACY
    );
    for tagged in [false, true] {
        let (mut aws, put, describe, tag) = role_rules(Some(DESCRIPTION), tagged, Some(LEGACY));
        let (list, describe_assoc) = association_rules(ROLE);
        let update = mock!(aws_sdk_eks::Client::update_pod_identity_association).then_output(|| {
            aws_sdk_eks::operation::update_pod_identity_association::UpdatePodIdentityAssociationOutput::builder().build()
        });
        aws.eks = mock_client!(
            aws_sdk_eks,
            RuleMode::MatchAny,
            [&list, &describe_assoc, &update]
        );
        let mut t = crate::target::Target::offline("demo", Some("us-west-2"));
        t.account = "123456789012".into();
        t.cluster.arn = "arn:aws:eks:us-west-2:123456789012:cluster/demo".into();
        t.access = crate::target::Access::Live(Box::new(crate::target::Live {
            aws: aws.clone(),
            kube: kube_finds_nothing(),
        }));
        let plan = super::workload::plan(&workload(), &t, false)
            .await
            .unwrap_or_else(|(step, e)| panic!("{step}: {e}"));
        assert_eq!(plan.role_name, LEGACY, "the same role keeps being used");
        let role_calls: Vec<String> = plan
            .role
            .changes
            .iter()
            .flat_map(|c| c.calls.clone())
            .collect();
        let assoc = &plan.association.changes[0];
        assert_eq!(assoc.action, Action::Unchanged, "{assoc:?}");
        let b = backends(aws);
        let exec = Executor::new(false, Some(&b), soon());
        exec.run(&plan.role.all_ops()).await.expect("role ops");
        exec.run(&plan.association.all_ops())
            .await
            .expect("association ops");
        assert_eq!(
            put.num_calls() + describe.num_calls() + update.num_calls(),
            0
        );
        if tagged {
            assert!(role_calls.is_empty(), "{role_calls:?}");
            assert_eq!(tag.num_calls(), 0);
        } else {
            assert_eq!(
                role_calls,
                [format!(
                    "iam:TagRole RoleName={LEGACY} tags=bootstrap.podid/namespace=bootstrap-demo,bootstrap.podid/service-account=demo-app"
                )]
            );
            assert_eq!(tag.num_calls(), 1);
        }
    }
}
