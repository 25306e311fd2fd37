//! Unit tests of `migrate`'s planning: candidates from pods and workload controllers, what
//! cannot be tied or migrated, and the trust edits (Pod Identity in, this cluster's OIDC out).

use super::trust::{self, OidcRemoval};
use super::*;

const HOST: &str = "oidc.eks.us-west-2.amazonaws.com/id/ABC";
const PROVIDER: &str = "arn:aws:iam::123:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC";
const OTHER_CLUSTER: &str =
    "arn:aws:iam::123:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/XYZ";
const GITHUB: &str = "arn:aws:iam::123:oidc-provider/token.actions.githubusercontent.com";
const ARN: &str = "arn:aws:eks:us-west-2:123:cluster/demo";

fn oidc(provider: &str, op: &str, key: &str, sub: Value) -> Value {
    json!({"Effect": "Allow", "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {op: {key: sub}}})
}

fn ours(sub: Value) -> Value {
    oidc(PROVIDER, "StringEquals", &format!("{HOST}:sub"), sub)
}

fn doc(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn oidc_trust() -> Value {
    doc(vec![ours(json!("system:serviceaccount:ns:app"))])
}

const SCOPE: TrustScope<'static> = TrustScope {
    account: "123",
    cluster: "demo",
    cluster_arn: ARN,
    namespace: "ns",
    service_account: "app",
};

const CLUSTER: ClusterRef<'static> = ClusterRef {
    name: "demo",
    arn: ARN,
    account: "123",
};

fn subs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_pod_identity_statement_is_added_and_the_oidc_one_kept() {
    let (merged, _) = trust::with_pod_identity(&oidc_trust(), &SCOPE).expect("added");
    let st = merged["Statement"].as_array().expect("list");
    assert_eq!(st.len(), 2);
    assert_eq!(
        st[0],
        oidc_trust()["Statement"][0],
        "the IRSA statement is kept"
    );
    assert_eq!(st[1], crate::aws::policy::pod_identity_statement(&SCOPE));
    assert!(
        trust::with_pod_identity(&merged, &SCOPE).is_none(),
        "idempotent"
    );
    // A single statement object (not a list) is kept too.
    let single = json!({"Version": "2012-10-17", "Statement": oidc_trust()["Statement"][0]});
    let (merged, _) = trust::with_pod_identity(&single, &SCOPE).expect("added");
    assert_eq!(merged["Statement"].as_array().map(Vec::len), Some(2));
}

#[test]
fn only_a_statement_scoped_like_ours_counts_as_already_trusting_pod_identity() {
    let scoped = |ns: &str, sa: &str, cluster: &str, arn: &str| {
        crate::aws::policy::pod_identity_statement(&TrustScope {
            account: "123",
            cluster,
            cluster_arn: arn,
            namespace: ns,
            service_account: sa,
        })
    };
    let bare = json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]});
    let other_arn = "arn:aws:eks:eu-west-1:123:cluster/demo";
    for (what, st) in [
        ("another namespace", scoped("other", "app", "demo", ARN)),
        ("another service account", scoped("ns", "api", "demo", ARN)),
        ("another cluster", scoped("ns", "app", "prod", ARN)),
        (
            "a same-named cluster elsewhere",
            scoped("ns", "app", "demo", other_arn),
        ),
        ("no conditions at all", bare),
    ] {
        let trust = doc(vec![
            ours(json!("system:serviceaccount:ns:app")),
            st.clone(),
        ]);
        let (merged, note) = trust::with_pod_identity(&trust, &SCOPE)
            .unwrap_or_else(|| panic!("{what} must not count as already trusted"));
        let list = merged["Statement"].as_array().expect("list");
        assert_eq!(list.len(), 3, "{what}: ours added, the others kept");
        assert_eq!(list[1], st, "{what}: kept as it was");
        assert!(note.starts_with("adds"), "{note}");
    }
    // Extra conditions narrow it (this workload may not get in): not ours either.
    let mut narrower = crate::aws::policy::pod_identity_statement(&SCOPE);
    narrower["Condition"]["StringLike"] = json!({"aws:RequestTag/kubernetes-pod-name": "web-*"});
    assert!(trust::with_pod_identity(&doc(vec![narrower]), &SCOPE).is_some());
}

#[test]
fn a_role_shared_by_two_service_accounts_gets_two_statements_with_distinct_sids() {
    let (first, _) = trust::with_pod_identity(&oidc_trust(), &SCOPE).expect("added");
    let api = TrustScope {
        service_account: "api",
        ..SCOPE
    };
    let (both, _) = trust::with_pod_identity(&first, &api).expect("added");
    let sids: Vec<&Value> = both["Statement"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| &s["Sid"])
        .filter(|s| !s.is_null())
        .collect();
    assert_eq!(sids.len(), 2, "{both}");
    assert_ne!(sids[0], sids[1], "IAM refuses duplicate Sids: {both}");
    assert!(
        sids[1]
            .as_str()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_alphanumeric()))
    );
    assert!(
        trust::with_pod_identity(&both, &api).is_none(),
        "idempotent"
    );
    assert!(trust::with_pod_identity(&both, &SCOPE).is_none());
}

#[test]
fn the_statement_of_an_earlier_version_gets_the_cluster_arn_in_place() {
    let mut old = crate::aws::policy::pod_identity_statement(&SCOPE);
    old["Condition"]["StringEquals"]
        .as_object_mut()
        .expect("block")
        .remove("aws:RequestTag/eks-cluster-arn");
    let trust = doc(vec![ours(json!("system:serviceaccount:ns:app")), old]);
    let (merged, note) = trust::with_pod_identity(&trust, &SCOPE).expect("upgraded");
    let list = merged["Statement"].as_array().expect("list");
    assert_eq!(list.len(), 2, "replaced, not added: {merged}");
    assert_eq!(list[1], crate::aws::policy::pod_identity_statement(&SCOPE));
    assert!(note.contains("ARN"), "{note}");
    assert!(trust::with_pod_identity(&merged, &SCOPE).is_none());
}

#[test]
fn remove_irsa_keeps_other_clusters_and_ci_providers() {
    let me = "system:serviceaccount:ns:app";
    let github = oidc(
        GITHUB,
        "StringLike",
        "token.actions.githubusercontent.com:sub",
        json!("repo:org/repo:*"),
    );
    let elsewhere = oidc(
        OTHER_CLUSTER,
        "StringEquals",
        "oidc.eks.eu-west-1.amazonaws.com/id/XYZ:sub",
        json!(me),
    );
    let pod_identity = crate::aws::policy::pod_identity_statement(&SCOPE);
    let trust = doc(vec![
        ours(json!(me)),
        elsewhere.clone(),
        github.clone(),
        pod_identity.clone(),
    ]);
    let out = trust::without_oidc(&trust, PROVIDER, &subs(&[me]));
    let left = out.trust.expect("ours removed");
    assert_eq!(
        left["Statement"],
        json!([elsewhere, github, pod_identity]),
        "only this cluster's statement for this service account goes"
    );
    assert_eq!(out.removed.len(), 1, "{:?}", out.removed);
    assert!(out.kept.is_empty(), "{:?}", out.kept);
    assert_eq!(
        trust::without_oidc(&left, PROVIDER, &subs(&[me])),
        OidcRemoval::default(),
        "idempotent"
    );
}

#[test]
fn remove_irsa_removes_only_what_is_provably_ours() {
    let me = "system:serviceaccount:ns:app";
    let key = format!("{HOST}:sub");
    // A list of subs loses only ours.
    let listed = ours(json!([me, "system:serviceaccount:ns:api"]));
    let out = trust::without_oidc(&doc(vec![listed]), PROVIDER, &subs(&[me]));
    let left = out.trust.expect("narrowed");
    assert_eq!(
        left["Statement"][0]["Condition"]["StringEquals"][&key],
        json!("system:serviceaccount:ns:api")
    );
    assert!(out.removed[0].contains("it keeps system:serviceaccount:ns:api"));
    // A literal StringLike value goes like a StringEquals one.
    let like = oidc(PROVIDER, "StringLike", &key, json!([me]));
    assert!(
        trust::without_oidc(&doc(vec![like]), PROVIDER, &subs(&[me]))
            .trust
            .is_some_and(|t| t["Statement"] == json!([]))
    );
    // Kept, and said why: a pattern, no :sub at all, other operators, several providers.
    let no_sub = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{HOST}:aud"): "sts.amazonaws.com"}}});
    let two_ops = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {&key: me}, "StringLike": {&key: "system:serviceaccount:*"}}});
    let two_providers = json!({"Effect": "Allow", "Principal": {"Federated": [PROVIDER, GITHUB]},
        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {&key: me}}});
    for (what, st, why) in [
        (
            "a wildcard",
            oidc(
                PROVIDER,
                "StringLike",
                &key,
                json!([me, "system:serviceaccount:ns:*"]),
            ),
            "pattern",
        ),
        ("no :sub condition", no_sub, "every service account"),
        (
            "another operator",
            oidc(PROVIDER, "StringNotEquals", &key, json!("x")),
            "StringNotEquals",
        ),
        ("several operators", two_ops, "several operators"),
        ("several providers", two_providers, "several OIDC providers"),
    ] {
        let out = trust::without_oidc(&doc(vec![st]), PROVIDER, &subs(&[me]));
        assert!(out.trust.is_none(), "{what}: nothing removed");
        assert!(
            out.kept.len() == 1 && out.kept[0].contains(why),
            "{what}: {:?}",
            out.kept
        );
    }
    // Deny statements and other service accounts' statements are not touched, silently.
    let deny = json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {&key: me}}});
    let theirs = ours(json!("system:serviceaccount:ns:api"));
    let out = trust::without_oidc(&doc(vec![deny, theirs]), PROVIDER, &subs(&[me]));
    assert_eq!(out, OidcRemoval::default());
}

#[test]
fn subs_named_in_this_providers_statements_are_found() {
    let trust = doc(vec![
        ours(json!([
            "system:serviceaccount:a:x",
            "system:serviceaccount:b:y"
        ])),
        oidc(
            PROVIDER,
            "StringLike",
            &format!("{HOST}:sub"),
            json!("system:serviceaccount:c:*"),
        ),
        oidc(
            OTHER_CLUSTER,
            "StringEquals",
            "oidc.eks.eu-west-1.amazonaws.com/id/XYZ:sub",
            json!("system:serviceaccount:d:z"),
        ),
    ]);
    assert_eq!(
        trust::named_subs(&trust, PROVIDER),
        vec![("a".into(), "x".into()), ("b".into(), "y".into())]
    );
    assert_eq!(
        trust::provider_arn(ARN, "123", &format!("https://{HOST}/")),
        PROVIDER
    );
}

fn spc(ns: &str, name: &str) -> FoundSpc {
    FoundSpc {
        namespace: ns.into(),
        name: name.into(),
        use_pod_identity: None,
        files: vec![name.into()],
    }
}

fn scan(workloads: Vec<FoundWorkload>, role: &str) -> Scan {
    Scan {
        annotated: [(("ns".to_string(), "app".to_string()), role.to_string())]
            .into_iter()
            .collect(),
        spcs: vec![spc("ns", "db")],
        workloads,
    }
}

fn found(kind: &'static str, sa: &str, node_problem: Option<&str>) -> FoundWorkload {
    FoundWorkload {
        kind,
        namespace: "ns".into(),
        name: format!("w-{sa}"),
        service_account: sa.into(),
        spcs: vec!["db".into()],
        node_problem: node_problem.map(str::to_string),
    }
}

fn pod(sa: &str, node_problem: Option<&str>) -> FoundWorkload {
    found("Pod", sa, node_problem)
}

const ROLE: &str = "arn:aws:iam::123:role/r";

/// The candidates in account 123 of a scan of `workloads` where ns/app is annotated with `role`.
fn candidates_of(workloads: Vec<FoundWorkload>, role: &str) -> Vec<Candidate> {
    candidates(&scan(workloads, role), "123", None)
}

/// Why a candidate cannot be migrated, or "" when it can.
fn cannot(c: &Candidate) -> &str {
    c.cannot.as_deref().unwrap_or_default()
}

#[test]
fn workload_controllers_without_pods_are_candidates() {
    for kind in ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"] {
        let c = candidates_of(vec![found(kind, "app", None)], ROLE);
        assert_eq!(c.len(), 1, "{kind}");
        assert_eq!(c[0].found_in, vec![format!("{kind}/w-app")]);
        assert!(c[0].cannot.is_none());
    }
    let windows = candidates_of(
        vec![found(
            "Deployment",
            "app",
            Some("Windows nodes (its nodeSelector)"),
        )],
        ROLE,
    );
    assert!(cannot(&windows[0]).contains("Deployment ns/w-app"));
}

#[test]
fn annotated_accounts_with_classes_no_workload_mounts_are_listed_with_the_reason() {
    let mut s = scan(vec![], ROLE);
    assert!(candidates(&s, "123", None).is_empty());
    let untied = untied(&s, None);
    assert_eq!(untied.len(), 1);
    assert_eq!(
        (
            untied[0].service_account.name.as_str(),
            untied[0].spcs.clone()
        ),
        ("app", vec!["db".to_string()])
    );
    assert!(
        untied[0].reason.contains("no pod, Deployment"),
        "{}",
        untied[0].reason
    );
    assert!(super::untied(&s, Some("elsewhere")).is_empty());
    // Tied once a workload mounts it; a class already on Pod Identity is not listed.
    s.workloads.push(found("CronJob", "app", None));
    assert!(super::untied(&s, None).is_empty());
    s.workloads.clear();
    s.spcs[0].use_pod_identity = Some("true".into());
    assert!(super::untied(&s, None).is_empty());
}

#[test]
fn other_annotated_users_of_the_role_are_found_in_every_namespace() {
    let mut s = scan(vec![], "arn:aws:iam::123:role/shared");
    s.annotated.insert(
        ("team-b".into(), "api".into()),
        "arn:aws:iam::123:role/Shared".into(),
    );
    s.annotated.insert(
        ("team-c".into(), "x".into()),
        "arn:aws:iam::123:role/other".into(),
    );
    let me: BTreeSet<(String, String)> = [("ns".to_string(), "app".to_string())].into();
    assert_eq!(
        other_irsa_users(&s, "arn:aws:iam::123:role/shared", &me),
        vec!["team-b/api".to_string()]
    );
    let mut released = me.clone();
    released.insert(("team-b".into(), "api".into()));
    assert!(other_irsa_users(&s, "arn:aws:iam::123:role/shared", &released).is_empty());
}

#[test]
fn remove_irsa_keeps_the_trust_while_another_service_account_uses_the_role() {
    let c = &candidates_of(vec![pod("app", None)], ROLE)[0];
    let trust = doc(vec![ours(json!([
        "system:serviceaccount:ns:app",
        "system:serviceaccount:b:api"
    ]))]);
    let waiting = IrsaRemoval {
        provider: Some(PROVIDER.into()),
        others: vec!["b/api".into()],
        subs: subs(&["system:serviceaccount:ns:app"]),
    };
    let changes = plan_remove_irsa(c, &trust, &waiting);
    assert!(
        changes.iter().all(|ch| ch
            .ops
            .iter()
            .all(|o| !matches!(o, Op::UpdateAssumeRolePolicy { .. }))),
        "the trust is not written while b/api uses the role"
    );
    assert!(
        changes[1]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("b/api"))
    );
    assert!(
        matches!(changes[0].ops[0], Op::MergePatch { .. }),
        "the annotation still goes"
    );
    let last = IrsaRemoval {
        others: Vec::new(),
        subs: subs(&[
            "system:serviceaccount:ns:app",
            "system:serviceaccount:b:api",
        ]),
        ..waiting
    };
    let changes = plan_remove_irsa(c, &trust, &last);
    let Op::UpdateAssumeRolePolicy { trust: after, .. } = &changes[1].ops[0] else {
        panic!("the last one removes the statement: {changes:?}")
    };
    assert_eq!(after["Statement"], json!([]));
}

#[test]
fn what_cannot_be_migrated_is_listed_with_the_reason() {
    let ok = candidates_of(vec![pod("app", None)], ROLE);
    assert_eq!(ok.len(), 1);
    assert!(ok[0].cannot.is_none(), "{ok:?}");
    let fargate = candidates_of(vec![pod("app", Some("Fargate node f-1"))], ROLE);
    assert!(cannot(&fargate[0]).contains("Fargate"));
    let foreign = candidates_of(vec![pod("app", None)], "arn:aws:iam::999:role/r");
    assert!(cannot(&foreign[0]).contains("another account"));
    let mut shared = scan(vec![pod("app", None), pod("other", None)], ROLE);
    shared.annotated.insert(
        ("ns".into(), "other".into()),
        "arn:aws:iam::123:role/other".into(),
    );
    let found = candidates(&shared, "123", None);
    assert!(
        found.iter().all(|c| cannot(c).contains("different roles")),
        "{found:?}"
    );
    assert!(
        candidates(
            &scan(vec![pod("app", None)], ROLE),
            "123",
            Some("elsewhere")
        )
        .is_empty()
    );
}

#[test]
fn a_plan_sets_only_use_pod_identity_and_knows_how_to_undo() {
    let c = &candidates_of(vec![pod("app", None)], ROLE)[0];
    let spcs = scan(vec![], "x").spcs;
    let m = plan(c, CLUSTER, &oidc_trust(), None, &spcs).expect("plans");
    let lines: Vec<String> = m.changes.iter().flat_map(|c| c.calls.clone()).collect();
    assert!(lines[0].starts_with("iam:UpdateAssumeRolePolicy RoleName=r"));
    assert!(
        m.changes[0].documents[0].to_string().contains(ARN),
        "the cluster ARN is pinned"
    );
    assert!(lines[1].starts_with("eks:CreatePodIdentityAssociation"));
    assert!(lines[2].contains("SecretProviderClass/ns/db"));
    let Op::Apply { object } = &m.changes[2].ops[0] else {
        panic!("apply")
    };
    assert_eq!(
        object["spec"],
        json!({"parameters": {"usePodIdentity": "true"}}),
        "one field only"
    );
    assert_eq!(m.rollback.len(), 2, "trust and SPC are restored on failure");
    let other = LiveAssociation {
        id: "a".into(),
        namespace: "ns".into(),
        service_account: "app".into(),
        role_arn: "arn:aws:iam::123:role/else".into(),
        target_role_arn: None,
        owned: false,
    };
    assert!(plan(c, CLUSTER, &oidc_trust(), Some(&other), &spcs).is_err());
}
