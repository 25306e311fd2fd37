//! Component tests of the features beyond upstream (mocked AWS, the real gRPC server): prefix
//! objects paged through BatchGetSecretValue and GetParametersByPath, their bound, a mount
//! that follows the account from one mount to the next; all keys of a JSON secret; optional
//! objects skipped when missing and never when denied; collisions; no secret in any error.

mod provider_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_csi_provider::mount::MountConfig;
use aws_sdk_secretsmanager::operation::batch_get_secret_value::{
    BatchGetSecretValueInput, BatchGetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::{ApiErrorType, FilterNameStringType};
use aws_sdk_ssm::operation::get_parameters::{GetParametersError, GetParametersOutput};
use aws_sdk_ssm::operation::get_parameters_by_path::{
    GetParametersByPathInput, GetParametersByPathOutput,
};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use provider_support::fixtures::*;
use provider_support::*;

/// A Secrets Manager account: name → (value, version), shared with the mock's closure.
type Account = Arc<Mutex<BTreeMap<String, (String, String)>>>;

fn account(names: &[&str]) -> Account {
    Arc::new(Mutex::new(
        names
            .iter()
            .map(|n| (n.to_string(), (format!("s3cr3t-{n}"), format!("v-{n}"))))
            .collect(),
    ))
}

/// BatchGetSecretValue with a name filter over `account`, 20 a page (the token is the next
/// index). Like AWS's filter, it matches case-insensitively: the provider keeps exact prefixes.
fn sm_listing(account: Account) -> Rule {
    mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value)
        .match_requests(|r| r.filters().len() == 1)
        .then_compute_output(move |r: &BatchGetSecretValueInput| {
            let f = &r.filters()[0];
            assert_eq!(f.key(), Some(&FilterNameStringType::Name));
            assert_eq!(r.max_results(), Some(20), "MaxResults 20");
            assert!(r.secret_id_list().is_empty(), "a filter, not ids");
            let prefix = f.values()[0].to_lowercase();
            let all: Vec<(String, (String, String))> = account
                .lock()
                .expect("account")
                .iter()
                .filter(|(n, _)| n.to_lowercase().starts_with(&prefix))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            let from: usize = r.next_token().map_or(0, |t| t.parse().expect("token"));
            let page: Vec<_> = all.iter().skip(from).take(20).collect();
            let mut out = BatchGetSecretValueOutput::builder();
            for (n, (v, ver)) in &page {
                out = out.secret_values(entry(n, v, ver));
            }
            if from + 20 < all.len() {
                out = out.next_token((from + 20).to_string());
            }
            out.build()
        })
}

fn ssm_param(name: &str, version: i64) -> Parameter {
    Parameter::builder()
        .name(name)
        .value(format!("s3cr3t-{name}"))
        .version(version)
        .build()
}

/// GetParametersByPath over `names`, 10 a page, recursive or not as asked.
fn ssm_listing(names: Vec<String>) -> Rule {
    mock!(aws_sdk_ssm::Client::get_parameters_by_path).then_compute_output(
        move |r: &GetParametersByPathInput| {
            assert_eq!(r.with_decryption(), Some(true));
            assert_eq!(r.max_results(), Some(10));
            let path = r.path().expect("path");
            let recursive = r.recursive() == Some(true);
            let under: Vec<&String> = names
                .iter()
                .filter(|n| {
                    n.strip_prefix(path)
                        .map(|rest| rest.trim_start_matches('/'))
                        .is_some_and(|rest| recursive || !rest.contains('/'))
                })
                .collect();
            let from: usize = r.next_token().map_or(0, |t| t.parse().expect("token"));
            let mut out = GetParametersByPathOutput::builder();
            for (i, n) in under.iter().enumerate().skip(from).take(10) {
                out = out.parameters(ssm_param(n, i as i64 + 1));
            }
            if from + 10 < under.len() {
                out = out.next_token((from + 10).to_string());
            }
            out.build()
        },
    )
}

fn paths(resp: &aws_csi_provider::proto::MountResponse) -> Vec<&str> {
    resp.files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn a_prefix_pages_through_batch_get_secret_value_and_follows_the_account() {
    let mut names: Vec<String> = (0..24).map(|i| format!("teams/payments/s{i:02}")).collect();
    names.push("teams/payments/db/main".into());
    names.push("Teams/Payments/other-case".into());
    names.push("teams/paymentsx".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let acct = account(&refs);
    let mut aws = FakeAws::default();
    aws.sm
        .insert("us-east-1".into(), vec![sm_listing(acct.clone())]);
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: teams/payments/, objectType: secretsmanager, matchPrefix: true, objectAlias: payments}";

    let resp = mount_ok(&mut h, objects, "mount").await;
    let files = paths(&resp);
    assert_eq!(
        files.len(),
        25,
        "24 + db/main; other case and paymentsx left out: {files:?}"
    );
    assert_eq!(files[0], "payments/db/main");
    assert_eq!(files[1], "payments/s00");
    assert!(
        !files
            .iter()
            .any(|f| f.contains("other-case") || f.contains('x'))
    );
    let db = resp
        .files
        .iter()
        .find(|f| f.path == "payments/db/main")
        .expect("db/main");
    assert_eq!(db.contents, b"s3cr3t-teams/payments/db/main");
    let v = resp
        .object_version
        .iter()
        .find(|v| v.id == "payments/db/main")
        .expect("version");
    assert_eq!(v.version, "v-teams/payments/db/main");
    assert_eq!(resp.object_version.len(), 25, "one version per file");
    assert_eq!(
        calls(&h, "BatchGetSecretValue"),
        2,
        "ceil(26 listed / 20) pages"
    );

    // Stateless: a secret added under the prefix is in the next mount, a deleted one is not.
    {
        let mut a = acct.lock().expect("account");
        a.remove("teams/payments/s00");
        a.insert(
            "teams/payments/new".into(),
            ("s3cr3t-new".into(), "v-new".into()),
        );
    }
    let resp = mount_ok(&mut h, objects, "remount").await;
    let files = paths(&resp);
    assert!(
        files.contains(&"payments/new") && !files.contains(&"payments/s00"),
        "{files:?}"
    );
    assert_eq!(files.len(), 25);

    // recursive: false keeps direct children only.
    let direct = "- {objectName: teams/payments/, objectType: secretsmanager, matchPrefix: true, recursive: false}";
    let resp = mount_ok(&mut h, direct, "direct").await;
    let files = paths(&resp);
    assert_eq!(files.len(), 24, "{files:?}");
    assert!(!files.contains(&"db/main") && files.contains(&"new"));
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn an_ssm_prefix_pages_through_get_parameters_by_path_recursive_or_not() {
    let mut names: Vec<String> = (0..12).map(|i| format!("/teams/p/k{i:02}")).collect();
    names.push("/teams/p/deep/er".into());
    let rule = ssm_listing(names);
    let mut aws = FakeAws::default();
    aws.ssm.insert("us-east-1".into(), vec![rule.clone()]);
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: /teams/p/, objectType: ssmparameter, matchPrefix: true}";
    let resp = mount_ok(&mut h, objects, "mount").await;
    let files = paths(&resp);
    assert_eq!(files.len(), 13);
    assert_eq!(files[0], "deep/er");
    assert_eq!(resp.files[1].contents, b"s3cr3t-/teams/p/k00");
    assert_eq!(rule.num_calls(), 2, "two pages of ten");
    let objects = "- {objectName: /teams/p, objectType: ssmparameter, matchPrefix: true, recursive: false, objectAlias: p}";
    let resp = mount_ok(&mut h, objects, "direct").await;
    let files = paths(&resp);
    assert_eq!(files.len(), 12, "{files:?}");
    assert_eq!(
        files[0], "p/k00",
        "the path's / is not part of the file name"
    );
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn more_matches_than_the_bound_fail_the_mount_and_say_how_many() {
    let many: Vec<String> = (0..143)
        .map(|i| format!("teams/payments/s{i:03}"))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut aws = FakeAws::default();
    aws.sm
        .insert("us-east-1".into(), vec![sm_listing(account(&refs))]);
    let huge: Vec<String> = (0..700).map(|i| format!("/t/p{i:03}")).collect();
    aws.ssm.insert("us-east-1".into(), vec![ssm_listing(huge)]);
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: teams/payments/, objectType: secretsmanager, matchPrefix: true}";
    let e = mount_err(&mut h, objects, "over the bound").await;
    assert_eq!(
        e.message(),
        "object \"teams/payments/\": 143 secrets match the prefix, over the limit of 100 per object; hint: split it into narrower prefixes"
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let objects = "- {objectName: /t/, objectType: ssmparameter, matchPrefix: true}";
    let e2 = mount_err(&mut h, objects, "capped count").await;
    assert_says(&e2, &["500 or more parameters match the prefix"]);
    assert!(
        h.metrics.render().contains("cause=\"too_many_matches\"} 2"),
        "{}",
        h.metrics.render()
    );
    assert_no_secret_leak(&h, &[e.message().to_string(), e2.message().to_string()]);
}

fn batch_error(id: &str, code: &str) -> ApiErrorType {
    ApiErrorType::builder()
        .secret_id(id)
        .error_code(code)
        .message(format!("{code} for {id}"))
        .build()
}

/// Ids batch: `here` has a value, `gone` is not found, `denied` is denied, `slow` throttled.
fn optional_rules() -> Vec<Rule> {
    vec![
        mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value)
            .match_requests(|r| !r.secret_id_list().is_empty())
            .then_compute_output(|r: &BatchGetSecretValueInput| {
                let mut out = BatchGetSecretValueOutput::builder();
                for id in r.secret_id_list() {
                    out = match id.as_str() {
                        "here" => out.secret_values(entry("here", "s3cr3t-here", "v1")),
                        "denied" => out.errors(batch_error(id, "AccessDeniedException")),
                        "slow" => out.errors(batch_error(id, "ThrottlingException")),
                        _ => out.errors(batch_error(id, "ResourceNotFoundException")),
                    };
                }
                out.build()
            }),
        mock!(aws_sdk_secretsmanager::Client::batch_get_secret_value)
            .match_requests(|r| r.filters().len() == 1)
            .then_compute_output(|r: &BatchGetSecretValueInput| {
                let prefix = &r.filters()[0].values()[0];
                let mut out = BatchGetSecretValueOutput::builder();
                if prefix == "with-denied/" {
                    out = out
                        .secret_values(entry("with-denied/ok", "s3cr3t-ok", "v1"))
                        .errors(batch_error(
                            "arn:aws:secretsmanager:us-east-1:111122223333:secret:with-denied/no-AbCdEf",
                            "AccessDeniedException",
                        ));
                }
                out.build()
            }),
        get_secret("here", None, "s3cr3t-here", "v1"),
        mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(not_found),
    ]
}

#[tokio::test]
async fn optional_objects_are_skipped_only_when_missing() {
    let mut aws = FakeAws::default();
    aws.sm.insert("us-east-1".into(), optional_rules());
    aws.ssm.insert(
        "us-east-1".into(),
        vec![
            mock!(aws_sdk_ssm::Client::get_parameters)
                .match_requests(|r| r.names().iter().any(|n| n == "/denied"))
                .then_error(|| {
                    GetParametersError::generic(
                        ErrorMetadata::builder()
                            .code("AccessDeniedException")
                            .message("not authorized to perform ssm:GetParameters")
                            .build(),
                    )
                }),
            mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
                GetParametersOutput::builder()
                    .parameters(ssm_param("/here", 3))
                    .invalid_parameters("/gone")
                    .build()
            }),
            ssm_listing(vec![]),
        ],
    );
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let mut errors = Vec::new();

    // Missing in a batch (Errors: ResourceNotFoundException), alone (GetSecretValue), in
    // SSM (InvalidParameters), and a prefix with no match: skipped, the mount goes on.
    let ok = "- {objectName: here, objectType: secretsmanager}\n\
              - {objectName: gone, objectType: secretsmanager, optional: true}\n\
              - {objectName: /here, objectType: ssmparameter}\n\
              - {objectName: /gone, objectType: ssmparameter, optional: \"TRUE\"}\n\
              - {objectName: /empty/, objectType: ssmparameter, matchPrefix: true, optional: true}";
    let resp = mount_ok(&mut h, ok, "optional skipped").await;
    assert_eq!(paths(&resp), vec!["here", "_here"]);
    assert_eq!(resp.object_version.len(), 2);
    let alone = "- {objectName: gone-alone, objectType: secretsmanager, optional: true}";
    let resp = mount_ok(&mut h, alone, "alone").await;
    assert!(resp.files.is_empty());
    let logs = h.logs.text();
    for name in ["gone", "/gone", "/empty/", "gone-alone"] {
        assert!(
            logs.lines().any(|l| l.contains("WARN")
                && l.contains("optional object not found")
                && l.contains(&format!("object={name} "))
                && l.contains("region=us-east-1")),
            "a warning names {name} and the region:\n{logs}"
        );
    }

    let refused: [(&str, tonic::Code, &[&str]); 6] = [
        // Without optional, missing still fails; and a prefix without match too.
        (
            "- {objectName: here, objectType: secretsmanager}\n- {objectName: gone, objectType: secretsmanager}",
            tonic::Code::NotFound,
            &[],
        ),
        (
            "- {objectName: /empty/, objectType: ssmparameter, matchPrefix: true}",
            tonic::Code::NotFound,
            &["nothing matches the prefix", "optional: true"],
        ),
        // Denied, throttled: the mount fails although the object is optional.
        (
            "- {objectName: here, objectType: secretsmanager}\n- {objectName: gone, objectType: secretsmanager, optional: true}\n- {objectName: denied, objectType: secretsmanager, optional: true}",
            tonic::Code::PermissionDenied,
            &["\"denied\""],
        ),
        (
            "- {objectName: here, objectType: secretsmanager}\n- {objectName: slow, objectType: secretsmanager, optional: true}",
            tonic::Code::Unavailable,
            &["\"slow\""],
        ),
        (
            "- {objectName: /denied, objectType: ssmparameter, optional: true}",
            tonic::Code::PermissionDenied,
            &["\"/denied\""],
        ),
        (
            "- {objectName: with-denied/, objectType: secretsmanager, matchPrefix: true, optional: true}",
            tonic::Code::PermissionDenied,
            &["\"with-denied/no\""],
        ),
    ];
    for (objects, code, says) in refused {
        let e = mount_err(&mut h, objects, objects).await;
        assert_eq!(e.code(), code, "{objects}: {}", e.message());
        assert_says(&e, says);
        errors.push(e.message().to_string());
    }
    assert!(
        errors[5].contains("listed under prefix \"with-denied/\""),
        "{}",
        errors[5]
    );
    assert_no_secret_leak(&h, &errors);
}

#[tokio::test]
async fn all_keys_of_a_json_secret_are_files_and_collisions_fail_naming_both() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let objects = "- {objectName: prod/db, objectType: secretsmanager, allKeys: true, objectAlias: db.json, filePermission: '0600'}\n- {objectName: api, objectType: secretsmanager}";
    let resp = mount_ok(&mut h, objects, "mount").await;
    assert_eq!(
        files_of(&resp),
        vec![
            ("db.json", DB_JSON.as_bytes()),
            ("password", b"s3cr3t-db-password".as_slice()),
            ("username", b"admin".as_slice()),
            ("api", API_KEY.as_bytes()),
        ]
    );
    assert!(resp.files[..3].iter().all(|f| f.mode == 0o600));
    assert_eq!(
        versions_of(&resp),
        vec![
            ("db.json", "v-db-1"),
            ("password", "v-db-1"),
            ("username", "v-db-1"),
            ("api", "v-api-2")
        ]
    );

    let mut errors = Vec::new();
    let clash = "- {objectName: prod/db, objectType: secretsmanager, allKeys: true}\n- {objectName: api, objectType: secretsmanager, objectAlias: password}";
    let e = mount_err(&mut h, clash, "collision").await;
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_says(
        &e,
        &[
            "file \"password\"",
            "key \"password\" of object \"prod/db\"",
            "object \"api\"",
        ],
    );
    errors.push(e.message().to_string());
    let plain = "- {objectName: plain, objectType: secretsmanager, allKeys: true}";
    let e = mount_err(&mut h, plain, "not JSON").await;
    assert_says(&e, &["allKeys of object \"plain\"", "not valid JSON"]);
    errors.push(e.message().to_string());
    let e = mount_err(
        &mut h,
        "- {objectName: api, objectType: secretsmanager, allKeys: maybe}",
        "bad flag",
    )
    .await;
    assert_says(&e, &["object \"api\": allKeys \"maybe\" is not a boolean"]);
    errors.push(e.message().to_string());
    assert_no_secret_leak(&h, &errors);
}

#[tokio::test]
async fn an_objects_list_without_the_new_keys_makes_the_same_calls() {
    // The pre-existing fixture: one batch for two unpinned secrets, one GetSecretValue for the
    // label; no listing call.
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(not_found);
    let mut rules = sm_rules();
    rules.push(get);
    let listing = sm_listing(account(&["prod/db"]));
    rules.insert(0, listing.clone());
    let mut aws = FakeAws::default();
    aws.sm.insert("us-east-1".into(), rules);
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let resp = mount_ok(&mut h, OBJECTS, "mount").await;
    assert_eq!(resp.files.len(), 5);
    assert_eq!(listing.num_calls(), 0, "no listing without matchPrefix");
    assert_eq!(calls(&h, "BatchGetSecretValue"), 1);
    assert_eq!(calls(&h, "GetSecretValue"), 1);
}
