use serde_json::json;

use super::*;
use crate::diagnose::checks::Status::{Fail, Pass, Warn};
use crate::diagnose::checks::test_support::{
    all_pass_once, assert_fix, assert_saw, expect, fix, only,
};
use crate::diagnose::facts::{CsiDriverFacts, PodMountFacts, ServiceAccountFacts, WorkloadPod};
use crate::diagnose::iam::NamedPolicy;

const ACCOUNT: &str = "111122223333";
const DB: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf";
const API: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:api-XyZ123";
const ROLE: &str = "arn:aws:iam::111122223333:role/app-reader";

fn class(params: &[(&str, &str)]) -> SpcFacts {
    SpcFacts {
        namespace: "ns".into(),
        name: "bootstrap-app".into(),
        provider: "aws".into(),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secret_objects: 0,
        owned: true,
    }
}

const OBJECTS: &str = "- objectName: db\n  objectType: secretsmanager\n- objectName: api\n  objectType: secretsmanager\n";

fn read_policy(arns: &[&str]) -> NamedPolicy {
    NamedPolicy {
        source: "inline policy read".into(),
        document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"], "Resource": arns}]}),
    }
}

fn trust() -> serde_json::Value {
    crate::aws::policy::pod_identity_trust(&TrustScope {
        account: ACCOUNT,
        cluster: "demo",
        cluster_arn: &format!("arn:aws:eks:us-west-2:{ACCOUNT}:cluster/demo"),
        namespace: "ns",
        service_account: "app",
    })
}

/// The service account every test here looks at.
fn key() -> (String, String) {
    ("ns".into(), "app".into())
}

fn association(role_arn: &str, target_role_arn: Option<&str>) -> Option<AssociationFacts> {
    Some(AssociationFacts {
        role_arn: role_arn.into(),
        target_role_arn: target_role_arn.map(Into::into),
    })
}

/// The service account annotated for IRSA with [`ROLE`].
fn irsa_annotated(s: &mut Snapshot) {
    let sa = ServiceAccountFacts {
        role_arn: Some(ROLE.into()),
    };
    s.service_accounts.insert(key(), Ok(Some(sa)));
}

/// The workload's pod, on node n1.
fn app_pod() -> WorkloadPod {
    WorkloadPod {
        namespace: "ns".into(),
        name: "app-1".into(),
        service_account: "app".into(),
        spcs: vec!["bootstrap-app".into()],
        node: Some("n1".into()),
    }
}

/// One Pod Identity workload that works: class, pod, association, role, policy, secrets.
fn healthy() -> Snapshot {
    let mut s = Snapshot::new("demo", "us-west-2", ACCOUNT);
    s.spcs = Ok(vec![class(&[
        ("usePodIdentity", "true"),
        ("region", "us-west-2"),
        ("objects", OBJECTS),
    ])]);
    s.pods = Ok(vec![app_pod()]);
    s.service_accounts
        .insert(key(), Ok(Some(ServiceAccountFacts::default())));
    s.associations.insert(key(), Ok(association(ROLE, None)));
    s.roles.insert(
        ROLE.into(),
        Ok(Some(RoleFacts {
            name: "app-reader".into(),
            trust: Some(trust()),
            policies: vec![read_policy(&[DB, API])],
            unread: Vec::new(),
        })),
    );
    for (name, arn) in [("db", DB), ("api", API)] {
        s.objects.insert(
            ("us-west-2".into(), ObjectKind::SecretsManager, name.into()),
            Ok(Some(arn.into())),
        );
    }
    s.csidriver = Ok(Some(CsiDriverFacts {
        audiences: vec!["sts.amazonaws.com".into(), "pods.eks.amazonaws.com".into()],
        ..Default::default()
    }));
    s
}

fn all(s: &Snapshot) -> Vec<Check> {
    [classes(s), service_accounts(s), super::super::pod::pod(s)].concat()
}

fn set_class(s: &mut Snapshot, params: &[(&str, &str)]) {
    s.spcs = Ok(vec![class(params)]);
}

#[test]
fn a_working_workload_passes_every_check() {
    let s = healthy();
    let checks = all(&s);
    all_pass_once(
        &checks,
        &[
            "spc.use-pod-identity",
            "spc.objects",
            "spc.region",
            "sa.association",
            "sa.trust",
            "sa.policy",
        ],
    );
    assert_saw(
        expect(&checks, "sa.policy", Pass),
        &["conditions were not evaluated"],
    );
}

#[test]
fn use_pod_identity_invalid_fails_quoting_it_and_missing_warns_irsa() {
    let mut s = healthy();
    set_class(
        &mut s,
        &[
            ("usePodIdentity", "yes"),
            ("region", "us-west-2"),
            ("objects", OBJECTS),
        ],
    );
    let c = all(&s);
    let upi = expect(&c, "spc.use-pod-identity", Fail);
    assert!(
        upi.saw
            .starts_with(r#"usePodIdentity "yes" is not a boolean"#),
        "{}",
        upi.saw
    );
    assert_eq!(
        fix(upi),
        r#"kubectl -n ns patch secretproviderclass bootstrap-app --type=merge -p '{"spec":{"parameters":{"usePodIdentity":"true"}}}'"#
    );
    assert!(
        c.iter().all(|c| !c.check.starts_with("sa.")),
        "an invalid class expects nothing of its service account"
    );

    set_class(&mut s, &[("region", "us-west-2"), ("objects", OBJECTS)]);
    let c = classes(&s);
    let upi = expect(&c, "spc.use-pod-identity", Warn);
    assert_saw(upi, &["uses IRSA"]);
    assert_eq!(fix(upi), "bootstrap migrate --cluster demo --namespace ns");
}

#[test]
fn objects_must_parse_and_exist_and_region_should_be_set() {
    let mut s = healthy();
    set_class(
        &mut s,
        &[
            ("usePodIdentity", "true"),
            ("objects", "- objectType: secretsmanager"),
        ],
    );
    let c = classes(&s);
    assert_saw(
        expect(&c, "spc.objects", Fail),
        &["objectName must be specified"],
    );
    let region = expect(&c, "spc.region", Warn);
    assert_fix(region, &[r#""region":"us-west-2""#]);

    let mut s = healthy();
    s.objects.insert(
        ("us-west-2".into(), ObjectKind::SecretsManager, "api".into()),
        Ok(None),
    );
    let c = classes(&s);
    let missing = expect(&c, "spc.objects", Fail);
    assert_saw(missing, &["secretsmanager api not found in us-west-2"]);
    assert!(
        fix(missing)
            .contains("aws secretsmanager describe-secret --region us-west-2 --secret-id api")
    );
}

#[test]
fn pod_identity_without_an_association_fails_with_the_create_command() {
    let mut s = healthy();
    s.associations.insert(key(), Ok(None));
    let c = service_accounts(&s);
    let a = expect(&c, "sa.association", Fail);
    assert_saw(a, &["no Pod Identity association on cluster demo"]);
    assert_eq!(
        fix(a),
        "aws eks create-pod-identity-association --cluster-name demo --namespace ns --service-account app --role-arn <ROLE_ARN>"
    );
    // The IRSA role, when annotated, is the one to associate.
    irsa_annotated(&mut s);
    let c = service_accounts(&s);
    assert!(fix(only(&c, "sa.association")).ends_with(ROLE));
}

#[test]
fn without_an_association_the_fix_names_bootstraps_role_once_it_is_read() {
    let mut s = healthy();
    s.associations.insert(key(), Ok(None));
    let ours = "arn:aws:iam::111122223333:role/bootstrap-demo.ns.app";
    s.bootstrap_roles.insert(key(), ours.into());
    let association_fix =
        |s: &Snapshot| fix(only(&service_accounts(s), "sa.association")).to_string();
    // Not read, or read and absent: the placeholder.
    assert!(
        association_fix(&s).ends_with("--role-arn <ROLE_ARN>"),
        "{}",
        association_fix(&s)
    );
    s.roles.insert(ours.into(), Ok(None));
    assert!(
        association_fix(&s).ends_with("--role-arn <ROLE_ARN>"),
        "{}",
        association_fix(&s)
    );
    s.roles.insert(
        ours.into(),
        Ok(Some(RoleFacts {
            name: "bootstrap-demo.ns.app".into(),
            ..RoleFacts::default()
        })),
    );
    assert!(
        association_fix(&s).ends_with(&format!("--role-arn {ours}")),
        "{}",
        association_fix(&s)
    );
}

#[test]
fn irsa_classes_need_the_annotation_and_an_oidc_trust() {
    let mut s = healthy();
    set_class(
        &mut s,
        &[
            ("usePodIdentity", "false"),
            ("region", "us-west-2"),
            ("objects", OBJECTS),
        ],
    );
    let c = service_accounts(&s);
    assert_saw(
        expect(&c, "sa.irsa-annotation", Fail),
        &["no eks.amazonaws.com/role-arn annotation"],
    );

    irsa_annotated(&mut s);
    s.oidc_issuer = Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC".into());
    let c = service_accounts(&s);
    expect(&c, "sa.irsa-annotation", Pass);
    // The role trusts only Pod Identity; the fix keeps the old statement.
    assert_fix(
        expect(&c, "sa.trust", Fail),
        &[
            "oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC",
            "pods.eks.amazonaws.com",
        ],
    );
}

#[test]
fn a_missing_role_and_a_trust_without_tag_session_fail() {
    let mut s = healthy();
    s.roles.insert(ROLE.into(), Ok(None));
    assert_saw(
        expect(&service_accounts(&s), "sa.role", Fail),
        &["does not exist"],
    );

    let mut s = healthy();
    if let Some(Ok(Some(role))) = s.roles.get_mut(ROLE) {
        role.trust = Some(
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        );
    }
    let c = service_accounts(&s);
    let trust = expect(&c, "sa.trust", Fail);
    assert_saw(trust, &["sts:TagSession"]);
    let f = fix(trust);
    assert!(
        f.starts_with(
            "aws iam update-assume-role-policy --role-name app-reader --policy-document '"
        ),
        "{f}"
    );
    // Adds ours, keeps theirs.
    assert_fix(trust, &["EksPodIdentity", r#""Action":"sts:AssumeRole""#]);

    let mut s = healthy();
    s.associations.insert(
        key(),
        Ok(association("arn:aws:iam::999999999999:role/x", None)),
    );
    // Another account's role is not readable.
    expect(&service_accounts(&s), "sa.role", Warn);
}

#[test]
fn a_policy_missing_one_secret_fails_naming_it() {
    let mut s = healthy();
    if let Some(Ok(Some(role))) = s.roles.get_mut(ROLE) {
        role.policies = vec![read_policy(&[DB])];
    }
    let c = service_accounts(&s);
    let p = expect(&c, "sa.policy", Fail);
    assert_saw(
        p,
        &[&format!(
            "secretsmanager:GetSecretValue on {API} (no Allow matches)"
        )],
    );
    assert!(!p.saw.contains(&format!("on {DB}")), "{}", p.saw);
    let f = fix(p);
    assert!(
        f.starts_with(
            "aws iam put-role-policy --role-name app-reader --policy-name doctor-read-secrets"
        ),
        "{f}"
    );
    assert!(f.contains(API) && !f.contains(DB), "{f}");

    // A target role reads instead of the associated one.
    let target = "arn:aws:iam::111122223333:role/target";
    s.associations
        .insert(key(), Ok(association(ROLE, Some(target))));
    s.roles.insert(
        target.into(),
        Ok(Some(RoleFacts {
            name: "target".into(),
            policies: vec![read_policy(&[DB, API])],
            ..RoleFacts::default()
        })),
    );
    expect(&service_accounts(&s), "sa.policy", Pass);
}

#[test]
fn a_class_no_pod_mounts_serves_the_service_account_its_name_is_for() {
    let mut s = healthy();
    s.pods = Ok(Vec::new());
    let w = served(&s);
    assert_eq!(w.len(), 1);
    assert!(w[0].inferred);
    assert_eq!(w[0].service_account, "app");
    expect(&service_accounts(&s), "sa.association", Pass);
    // Inferred and absent: nothing to check.
    s.service_accounts.insert(key(), Ok(None));
    assert!(service_accounts(&s).is_empty());
    // A foreign class with no pod serves nobody.
    if let Ok(list) = s.spcs.as_mut() {
        list[0].owned = false;
    }
    assert!(served(&s).is_empty());
}

#[test]
fn the_pod_s_failed_mounts_map_to_cause_and_fix() {
    let mut s = healthy();
    s.namespace = Some("ns".into());
    s.pod = Some(mount(Some("Running"), Vec::new()));
    expect(&pod_checks(&s), "pod.mount", Pass);

    s.pod = Some(mount(
        Some("Pending"),
        vec![
            "MountVolume.SetUp failed for volume \"secrets\" : rpc error: code = Unknown desc = failed to mount secrets store objects for pod ns/app-1, err: rpc error: code = Unknown desc = usePodIdentity \"yes\" is not a boolean".into(),
        ],
    ));
    let c = pod_checks(&s);
    let m = expect(&c, "pod.mount", Fail);
    assert_saw(
        m,
        &[
            "its warning: MountVolume.SetUp failed",
            "usePodIdentity parameter is invalid",
        ],
    );
    assert_fix(m, &["patch secretproviderclass bootstrap-app"]);

    s.pod = Some(mount(
        Some("Pending"),
        vec![format!(
            "access denied: User: x is not authorized to perform: secretsmanager:GetSecretValue on resource: {API} because no identity-based policy allows it"
        )],
    ));
    let m = pod_checks(&s);
    assert!(
        m[0].saw.contains(&format!("cannot read {API}")),
        "{}",
        m[0].saw
    );
    assert_fix(&m[0], &["--role-name app-reader", API]);

    s.pod = Some(PodMountFacts {
        pod: None,
        ..mount(None, Vec::new())
    });
    expect(&pod_checks(&s), "pod.mount", Fail);
}

/// What `--pod app-1` read: the pod, its phase and its failed mounts.
fn mount(phase: Option<&str>, failed_mounts: Vec<String>) -> PodMountFacts {
    PodMountFacts {
        name: "app-1".into(),
        pod: Some(app_pod()),
        phase: phase.map(Into::into),
        failed_mounts,
    }
}

fn pod_checks(s: &Snapshot) -> Vec<Check> {
    super::super::pod::pod(s)
}
