use serde_json::json;

use super::*;
use crate::diagnose::checks::Status;
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

/// One Pod Identity workload that works: class, pod, association, role, policy, secrets.
fn healthy() -> Snapshot {
    let mut s = Snapshot::new("demo", "us-west-2", ACCOUNT);
    s.spcs = Ok(vec![class(&[
        ("usePodIdentity", "true"),
        ("region", "us-west-2"),
        ("objects", OBJECTS),
    ])]);
    s.pods = Ok(vec![WorkloadPod {
        namespace: "ns".into(),
        name: "app-1".into(),
        service_account: "app".into(),
        spcs: vec!["bootstrap-app".into()],
        node: Some("n1".into()),
    }]);
    let key = ("ns".to_string(), "app".to_string());
    s.service_accounts
        .insert(key.clone(), Ok(Some(ServiceAccountFacts::default())));
    s.associations.insert(
        key,
        Ok(Some(AssociationFacts {
            role_arn: ROLE.into(),
            target_role_arn: None,
        })),
    );
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

fn only<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    let found: Vec<&Check> = checks.iter().filter(|c| c.check == name).collect();
    assert_eq!(found.len(), 1, "one {name} check in {checks:#?}");
    found[0]
}

fn set_class(s: &mut Snapshot, params: &[(&str, &str)]) {
    s.spcs = Ok(vec![class(params)]);
}

#[test]
fn a_working_workload_passes_every_check() {
    let s = healthy();
    let checks = all(&s);
    let bad: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for name in [
        "spc.use-pod-identity",
        "spc.objects",
        "spc.region",
        "sa.association",
        "sa.trust",
        "sa.policy",
    ] {
        only(&checks, name);
    }
    let policy = only(&checks, "sa.policy");
    assert!(
        policy.saw.contains("conditions were not evaluated"),
        "{}",
        policy.saw
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
    let upi = only(&c, "spc.use-pod-identity");
    assert_eq!(upi.status, Status::Fail);
    assert!(
        upi.saw
            .starts_with(r#"usePodIdentity "yes" is not a boolean"#),
        "{}",
        upi.saw
    );
    assert_eq!(
        upi.fix.as_deref(),
        Some(
            r#"kubectl -n ns patch secretproviderclass bootstrap-app --type=merge -p '{"spec":{"parameters":{"usePodIdentity":"true"}}}'"#
        )
    );
    assert!(
        c.iter().all(|c| !c.check.starts_with("sa.")),
        "an invalid class expects nothing of its service account"
    );

    set_class(&mut s, &[("region", "us-west-2"), ("objects", OBJECTS)]);
    let c = classes(&s);
    let upi = only(&c, "spc.use-pod-identity");
    assert_eq!(upi.status, Status::Warn);
    assert!(upi.saw.contains("uses IRSA"), "{}", upi.saw);
    assert_eq!(
        upi.fix.as_deref(),
        Some("bootstrap migrate --cluster demo --namespace ns")
    );
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
    let objects = only(&c, "spc.objects");
    assert_eq!(objects.status, Status::Fail);
    assert!(
        objects.saw.contains("objectName must be specified"),
        "{}",
        objects.saw
    );
    let region = only(&c, "spc.region");
    assert_eq!(region.status, Status::Warn);
    assert!(
        region
            .fix
            .as_deref()
            .is_some_and(|f| f.contains(r#""region":"us-west-2""#))
    );

    let mut s = healthy();
    s.objects.insert(
        ("us-west-2".into(), ObjectKind::SecretsManager, "api".into()),
        Ok(None),
    );
    let c = classes(&s);
    let missing = only(&c, "spc.objects");
    assert_eq!(missing.status, Status::Fail);
    assert!(
        missing
            .saw
            .contains("secretsmanager api not found in us-west-2"),
        "{}",
        missing.saw
    );
    assert!(missing.fix.as_deref().is_some_and(|f| {
        f.contains("aws secretsmanager describe-secret --region us-west-2 --secret-id api")
    }));
}

#[test]
fn pod_identity_without_an_association_fails_with_the_create_command() {
    let mut s = healthy();
    s.associations.insert(("ns".into(), "app".into()), Ok(None));
    let c = service_accounts(&s);
    let a = only(&c, "sa.association");
    assert_eq!(a.status, Status::Fail);
    assert!(
        a.saw
            .contains("no Pod Identity association on cluster demo"),
        "{}",
        a.saw
    );
    assert_eq!(
        a.fix.as_deref(),
        Some(
            "aws eks create-pod-identity-association --cluster-name demo --namespace ns --service-account app --role-arn <ROLE_ARN>"
        )
    );
    // The IRSA role, when annotated, is the one to associate.
    s.service_accounts.insert(
        ("ns".into(), "app".into()),
        Ok(Some(ServiceAccountFacts {
            role_arn: Some(ROLE.into()),
        })),
    );
    let c = service_accounts(&s);
    assert!(
        only(&c, "sa.association")
            .fix
            .as_deref()
            .is_some_and(|f| f.ends_with(ROLE))
    );
}

#[test]
fn without_an_association_the_fix_names_bootstraps_role_once_it_is_read() {
    let mut s = healthy();
    let key = ("ns".to_string(), "app".to_string());
    s.associations.insert(key.clone(), Ok(None));
    let ours = "arn:aws:iam::111122223333:role/bootstrap-demo.ns.app";
    s.bootstrap_roles.insert(key, ours.into());
    let fix = |s: &Snapshot| {
        only(&service_accounts(s), "sa.association")
            .fix
            .clone()
            .unwrap_or_default()
    };
    // Not read, or read and absent: the placeholder.
    assert!(fix(&s).ends_with("--role-arn <ROLE_ARN>"), "{}", fix(&s));
    s.roles.insert(ours.into(), Ok(None));
    assert!(fix(&s).ends_with("--role-arn <ROLE_ARN>"), "{}", fix(&s));
    s.roles.insert(
        ours.into(),
        Ok(Some(RoleFacts {
            name: "bootstrap-demo.ns.app".into(),
            ..RoleFacts::default()
        })),
    );
    assert!(
        fix(&s).ends_with(&format!("--role-arn {ours}")),
        "{}",
        fix(&s)
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
    let a = only(&c, "sa.irsa-annotation");
    assert_eq!(a.status, Status::Fail);
    assert!(
        a.saw.contains("no eks.amazonaws.com/role-arn annotation"),
        "{}",
        a.saw
    );

    s.service_accounts.insert(
        ("ns".into(), "app".into()),
        Ok(Some(ServiceAccountFacts {
            role_arn: Some(ROLE.into()),
        })),
    );
    s.oidc_issuer = Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC".into());
    let c = service_accounts(&s);
    assert_eq!(only(&c, "sa.irsa-annotation").status, Status::Pass);
    let t = only(&c, "sa.trust");
    assert_eq!(t.status, Status::Fail, "the role trusts only Pod Identity");
    let fix = t.fix.clone().unwrap_or_default();
    assert!(
        fix.contains("oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC")
            && fix.contains("pods.eks.amazonaws.com"),
        "keeps the old statement: {fix}"
    );
}

#[test]
fn a_missing_role_and_a_trust_without_tag_session_fail() {
    let mut s = healthy();
    s.roles.insert(ROLE.into(), Ok(None));
    let c = service_accounts(&s);
    let r = only(&c, "sa.role");
    assert_eq!(r.status, Status::Fail);
    assert!(r.saw.contains("does not exist"));

    let mut s = healthy();
    if let Some(Ok(Some(role))) = s.roles.get_mut(ROLE) {
        role.trust = Some(
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        );
    }
    let c = service_accounts(&s);
    let t = only(&c, "sa.trust");
    assert_eq!(t.status, Status::Fail);
    assert!(t.saw.contains("sts:TagSession"), "{}", t.saw);
    let fix = t.fix.clone().unwrap_or_default();
    assert!(
        fix.starts_with(
            "aws iam update-assume-role-policy --role-name app-reader --policy-document '"
        ),
        "{fix}"
    );
    assert!(
        fix.contains("EksPodIdentity") && fix.contains(r#""Action":"sts:AssumeRole""#),
        "adds ours, keeps theirs: {fix}"
    );

    let mut s = healthy();
    s.associations.insert(
        ("ns".into(), "app".into()),
        Ok(Some(AssociationFacts {
            role_arn: "arn:aws:iam::999999999999:role/x".into(),
            target_role_arn: None,
        })),
    );
    assert_eq!(
        only(&service_accounts(&s), "sa.role").status,
        Status::Warn,
        "another account's role is not readable"
    );
}

#[test]
fn a_policy_missing_one_secret_fails_naming_it() {
    let mut s = healthy();
    if let Some(Ok(Some(role))) = s.roles.get_mut(ROLE) {
        role.policies = vec![read_policy(&[DB])];
    }
    let c = service_accounts(&s);
    let p = only(&c, "sa.policy");
    assert_eq!(p.status, Status::Fail);
    assert!(
        p.saw.contains(&format!(
            "secretsmanager:GetSecretValue on {API} (no Allow matches)"
        )),
        "{}",
        p.saw
    );
    assert!(!p.saw.contains(&format!("on {DB}")), "{}", p.saw);
    let fix = p.fix.clone().unwrap_or_default();
    assert!(
        fix.starts_with(
            "aws iam put-role-policy --role-name app-reader --policy-name doctor-read-secrets"
        ),
        "{fix}"
    );
    assert!(fix.contains(API) && !fix.contains(DB), "{fix}");

    // A target role reads instead of the associated one.
    let target = "arn:aws:iam::111122223333:role/target";
    s.associations.insert(
        ("ns".into(), "app".into()),
        Ok(Some(AssociationFacts {
            role_arn: ROLE.into(),
            target_role_arn: Some(target.into()),
        })),
    );
    s.roles.insert(
        target.into(),
        Ok(Some(RoleFacts {
            name: "target".into(),
            policies: vec![read_policy(&[DB, API])],
            ..RoleFacts::default()
        })),
    );
    assert_eq!(
        only(&service_accounts(&s), "sa.policy").status,
        Status::Pass
    );
}

#[test]
fn a_class_no_pod_mounts_serves_the_service_account_its_name_is_for() {
    let mut s = healthy();
    s.pods = Ok(Vec::new());
    let w = served(&s);
    assert_eq!(w.len(), 1);
    assert!(w[0].inferred);
    assert_eq!(w[0].service_account, "app");
    assert_eq!(
        only(&service_accounts(&s), "sa.association").status,
        Status::Pass
    );
    // Inferred and absent: nothing to check.
    s.service_accounts
        .insert(("ns".into(), "app".into()), Ok(None));
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
    let pod = WorkloadPod {
        namespace: "ns".into(),
        name: "app-1".into(),
        service_account: "app".into(),
        spcs: vec!["bootstrap-app".into()],
        node: Some("n1".into()),
    };
    s.pod = Some(PodMountFacts {
        name: "app-1".into(),
        pod: Some(pod.clone()),
        phase: Some("Running".into()),
        failed_mounts: Vec::new(),
    });
    assert_eq!(only(&pod_checks(&s), "pod.mount").status, Status::Pass);

    s.pod = Some(PodMountFacts {
        name: "app-1".into(),
        pod: Some(pod.clone()),
        phase: Some("Pending".into()),
        failed_mounts: vec![
            "MountVolume.SetUp failed for volume \"secrets\" : rpc error: code = Unknown desc = failed to mount secrets store objects for pod ns/app-1, err: rpc error: code = Unknown desc = usePodIdentity \"yes\" is not a boolean".into(),
        ],
    });
    let c = pod_checks(&s);
    let m = only(&c, "pod.mount");
    assert_eq!(m.status, Status::Fail);
    assert!(
        m.saw.contains("its warning: MountVolume.SetUp failed")
            && m.saw.contains("usePodIdentity parameter is invalid"),
        "{}",
        m.saw
    );
    assert!(
        m.fix
            .as_deref()
            .is_some_and(|f| f.contains("patch secretproviderclass bootstrap-app"))
    );

    s.pod = Some(PodMountFacts {
        name: "app-1".into(),
        pod: Some(pod.clone()),
        phase: Some("Pending".into()),
        failed_mounts: vec![format!(
            "access denied: User: x is not authorized to perform: secretsmanager:GetSecretValue on resource: {API} because no identity-based policy allows it"
        )],
    });
    let m = pod_checks(&s);
    assert!(
        m[0].saw.contains(&format!("cannot read {API}")),
        "{}",
        m[0].saw
    );
    let fix = m[0].fix.clone().unwrap_or_default();
    assert!(
        fix.contains("--role-name app-reader") && fix.contains(API),
        "{fix}"
    );

    s.pod = Some(PodMountFacts {
        name: "app-1".into(),
        pod: None,
        phase: None,
        failed_mounts: Vec::new(),
    });
    assert_eq!(only(&pod_checks(&s), "pod.mount").status, Status::Fail);
}

fn pod_checks(s: &Snapshot) -> Vec<Check> {
    super::super::pod::pod(s)
}
