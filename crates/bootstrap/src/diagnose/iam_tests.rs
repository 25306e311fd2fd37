use serde_json::json;

use super::*;

/// What one policy decides for `action` on `resource`.
fn decision_of(policy: &NamedPolicy, action: &str, resource: &str) -> Decision {
    evaluate(std::slice::from_ref(policy), action, resource).decision
}

fn policy(source: &str, document: Value) -> NamedPolicy {
    NamedPolicy {
        source: source.into(),
        document,
    }
}

const SECRET: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf";

#[test]
fn wildcards_match_like_iam() {
    assert!(glob(
        "arn:aws:secretsmanager:*:*:secret:db-??????",
        SECRET,
        false
    ));
    assert!(!glob(
        "arn:aws:secretsmanager:*:*:secret:db-?????",
        SECRET,
        false
    ));
    assert!(glob("*", "", false));
    assert!(glob(
        "secretsmanager:Get*",
        "SecretsManager:GetSecretValue",
        true
    ));
    assert!(!glob(
        "secretsmanager:Get*",
        "SecretsManager:GetSecretValue",
        false
    ));
    assert!(glob(
        "arn:aws:secretsmanager:us-west-2:111122223333:secret:${aws:PrincipalTag/team}-*",
        SECRET,
        false
    ));
    assert!(!glob("a*b*c", "a-b-d", false));
    assert!(glob("a*b*c", "a-b-d-c", false));
}

#[test]
fn allow_minus_deny_with_wildcards() {
    let allow = policy(
        "inline policy read",
        json!({"Statement": [{"Sid": "Read", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
            "Resource": ["arn:aws:secretsmanager:us-west-2:111122223333:secret:db-??????"]}]}),
    );
    let e = evaluate(
        std::slice::from_ref(&allow),
        "secretsmanager:GetSecretValue",
        SECRET,
    );
    assert_eq!(
        e.decision,
        Decision::Allowed {
            by: "inline policy read (statement Read)".into()
        }
    );
    assert!(!e.allow_conditional);
    // Another secret, another action: not allowed.
    let other = "arn:aws:secretsmanager:us-west-2:111122223333:secret:api-XyZ123";
    assert_eq!(
        decision_of(&allow, "secretsmanager:GetSecretValue", other),
        Decision::NotAllowed
    );
    assert_eq!(
        evaluate(std::slice::from_ref(&allow), "ssm:GetParameters", SECRET).decision,
        Decision::NotAllowed
    );
    // An unconditional Deny in an attached policy wins; a conditional one is only reported.
    let deny = policy(
        "attached policy arn:aws:iam::111122223333:policy/guard",
        json!({"Statement": {"Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*"}}),
    );
    assert!(matches!(
        evaluate(
            &[allow.clone(), deny],
            "secretsmanager:GetSecretValue",
            SECRET
        )
        .decision,
        Decision::Denied { .. }
    ));
    let conditional_deny = policy(
        "inline policy tls",
        json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}),
    );
    let e = evaluate(
        &[allow, conditional_deny],
        "secretsmanager:GetSecretValue",
        SECRET,
    );
    assert!(matches!(e.decision, Decision::Allowed { .. }));
    assert_eq!(e.conditional_denies, ["inline policy tls"]);
}

#[test]
fn not_action_not_resource_and_conditional_allows() {
    let p = policy(
        "inline policy broad",
        json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:secretsmanager:*:*:secret:admin-*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "a"}}}]}),
    );
    let e = evaluate(
        std::slice::from_ref(&p),
        "secretsmanager:GetSecretValue",
        SECRET,
    );
    assert!(matches!(e.decision, Decision::Allowed { .. }));
    assert!(
        e.allow_conditional,
        "the condition is reported, not evaluated"
    );
    let admin = "arn:aws:secretsmanager:us-west-2:1:secret:admin-AbCdEf";
    assert_eq!(
        decision_of(&p, "secretsmanager:GetSecretValue", admin),
        Decision::NotAllowed
    );
    assert_eq!(
        evaluate(&[p], "iam:PassRole", SECRET).decision,
        Decision::NotAllowed
    );
}

const SCOPE: TrustScope<'static> = TrustScope {
    account: "111122223333",
    cluster: "demo",
    cluster_arn: "arn:aws:eks:us-west-2:111122223333:cluster/demo",
    namespace: "team-a",
    service_account: "app",
};

const WHO: Assumer<'static> = Assumer {
    scope: SCOPE,
    oidc_issuer: Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC"),
};

#[test]
fn pod_identity_trust_needs_the_service_tag_session_and_matching_tags() {
    let scoped = crate::aws::policy::pod_identity_trust(&SCOPE);
    let saw = pod_identity_trust(&scoped, &WHO).expect("bootstrap's trust passes");
    assert!(saw.contains("conditions match"), "{saw}");
    assert!(
        scoped
            .to_string()
            .contains("aws:RequestTag/eks-cluster-arn"),
        "{scoped}"
    );

    // A same-named cluster in another region has another ARN: its trust does not apply here.
    let twin = crate::aws::policy::pod_identity_trust(&TrustScope {
        cluster_arn: "arn:aws:eks:eu-west-1:111122223333:cluster/demo",
        ..SCOPE
    });
    let err = pod_identity_trust(&twin, &WHO).expect_err("pinned to the twin's ARN");
    assert!(err.contains("eks-cluster-arn"), "{err}");

    let other_ns = crate::aws::policy::pod_identity_trust(&TrustScope {
        namespace: "team-b",
        ..SCOPE
    });
    let err = pod_identity_trust(&other_ns, &WHO).expect_err("scoped to team-b");
    assert!(
        err.contains("kubernetes-namespace") && err.contains("team-b"),
        "{err}"
    );

    let no_tag = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let err = pod_identity_trust(&no_tag, &WHO).expect_err("no TagSession");
    assert!(err.contains("sts:TagSession"), "{err}");

    let ec2 = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": "sts:*"}]});
    assert!(
        pod_identity_trust(&ec2, &WHO)
            .expect_err("ec2 only")
            .contains("no trust statement")
    );

    let wildcard = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]}, "Action": "sts:*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}]});
    let saw = pod_identity_trust(&wildcard, &WHO).expect("sts:* covers both");
    assert!(
        saw.contains("not evaluated: StringEquals aws:PrincipalOrgID"),
        "{saw}"
    );
}

#[test]
fn irsa_trust_needs_the_cluster_issuer_and_the_service_account() {
    let trust = |provider: &str, sub: &str| {
        json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::111122223333:oidc-provider/{provider}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{provider}:sub"): sub,
                format!("{provider}:aud"): "sts.amazonaws.com"}}}]})
    };
    let issuer = "oidc.eks.us-west-2.amazonaws.com/id/ABC";
    assert!(irsa_trust(&trust(issuer, "system:serviceaccount:team-a:app"), &WHO).is_ok());
    let err = irsa_trust(&trust(issuer, "system:serviceaccount:team-a:other"), &WHO)
        .expect_err("other SA");
    assert!(err.contains("system:serviceaccount:team-a:app"), "{err}");
    let err = irsa_trust(
        &trust(
            "oidc.eks.us-west-2.amazonaws.com/id/OLD",
            "system:serviceaccount:team-a:app",
        ),
        &WHO,
    )
    .expect_err("old issuer");
    assert!(err.contains("not this cluster's issuer"), "{err}");
    let pod_identity = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    assert!(
        irsa_trust(&pod_identity, &WHO)
            .expect_err("no OIDC")
            .contains("Federated")
    );
}
