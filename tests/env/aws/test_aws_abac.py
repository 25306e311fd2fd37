"""--enforce-iam with ABAC: the session tags eks-auth puts on a Pod Identity session are
aws:PrincipalTag/<key> in identity-policy conditions and variables, a secret's tags are
secretsmanager:ResourceTag/<key> and aws:ResourceTag/<key>, and BatchGetSecretValue reports the
secrets a caller may not read in Errors. Secret values are compared, never printed."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from standin_testlib import agent_credentials, bootstrap_trust, make_token

CLUSTER = "bootstrap-test"
ACCOUNT = "123456789012"
SVC = {"Service": "pods.eks.amazonaws.com"}
ABAC = {  # the policy of the brief: a pod reads the secrets tagged with its namespace and cluster
    "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
    "Condition": {"StringEquals": {
        "secretsmanager:ResourceTag/kubernetes-namespace": "${aws:PrincipalTag/kubernetes-namespace}",
        "secretsmanager:ResourceTag/eks-cluster-name": "${aws:PrincipalTag/eks-cluster-name}",
    }},
}
BATCH = {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def tags(ns: str | None, cluster: str | None = CLUSTER) -> list[dict]:
    out = []
    if ns is not None:
        out.append({"Key": "kubernetes-namespace", "Value": ns})
    if cluster is not None:
        out.append({"Key": "eks-cluster-name", "Value": cluster})
    return out


def can_read(sm, secret_id: str) -> bool:
    try:
        sm.get_secret_value(SecretId=secret_id)
        return True
    except ClientError as e:
        assert code(e) == "AccessDeniedException", code(e)
        return False


@pytest.fixture(scope="module")
def abac(enforced):
    """Namespaces A and B (service account app) share one role with the ABAC policy; secrets
    tagged A, B, A-of-another-cluster, untagged."""
    import os

    u = f"abac{os.getpid()}"
    a, b = f"{u}-a", f"{u}-b"
    sm, iam, eks = (enforced.client(s) for s in ("secretsmanager", "iam", "eks"))
    secrets = {
        "a": sm.create_secret(Name=f"{u}/a", SecretString="value-a", Tags=tags(a))["ARN"],
        "b": sm.create_secret(Name=f"{u}/b", SecretString="value-b", Tags=tags(b))["ARN"],
        "a_other_cluster": sm.create_secret(Name=f"{u}/c", SecretString="value-c", Tags=tags(a, "other"))["ARN"],
        "untagged": sm.create_secret(Name=f"{u}/d", SecretString="value-d")["ARN"],
    }
    trust = json.loads(bootstrap_trust(ACCOUNT, CLUSTER, a, "app"))
    trust["Statement"][0]["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-namespace"] = [a, b]
    role = iam.create_role(RoleName=f"{u}-reader", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="abac", PolicyDocument=policy(ABAC, BATCH))
    for ns in (a, b):
        eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount="app",
                                            roleArn=role["Arn"])
    pods = {ns: enforced.client("secretsmanager", agent_credentials(enforced, make_token(ns, "app", pod=f"{ns}-0")))
            for ns in (a, b)}
    return {"u": u, "a": a, "b": b, "secrets": secrets, "pods": pods, "role": role}


def test_abac_read_follows_the_namespace_tag(enforced, abac):
    s, pa, pb = abac["secrets"], abac["pods"][abac["a"]], abac["pods"][abac["b"]]
    assert pa.get_secret_value(SecretId=s["a"])["SecretString"] == "value-a"
    assert pa.get_secret_value(SecretId=f"{abac['u']}/a")["SecretString"] == "value-a"  # by name
    assert [can_read(pa, s[k]) for k in ("b", "a_other_cluster", "untagged")] == [False, False, False]
    assert pb.get_secret_value(SecretId=s["b"])["SecretString"] == "value-b"
    assert [can_read(pb, s[k]) for k in ("a", "a_other_cluster", "untagged")] == [False, False, False]
    # the tags are read from moto's backend at each call: retagging moves access
    admin = enforced.client("secretsmanager")
    admin.tag_resource(SecretId=s["untagged"], Tags=tags(abac["b"]))
    try:
        assert can_read(pb, s["untagged"]) and not can_read(pa, s["untagged"])
    finally:
        admin.untag_resource(SecretId=s["untagged"], TagKeys=["kubernetes-namespace", "eks-cluster-name"])
    assert not can_read(pb, s["untagged"])


def test_batch_get_secret_value_reports_denied_secrets_in_errors(enforced, abac):
    s, pa = abac["secrets"], abac["pods"][abac["a"]]
    out = pa.batch_get_secret_value(SecretIdList=[s["a"], s["b"], s["untagged"]])
    assert [(v["ARN"], v["SecretString"]) for v in out["SecretValues"]] == [(s["a"], "value-a")]
    errors = sorted((e["SecretId"], e["ErrorCode"]) for e in out["Errors"])
    assert errors == sorted([(s["b"], "AccessDeniedException"), (s["untagged"], "AccessDeniedException")])
    assert all("secretsmanager:GetSecretValue" in e["Message"] for e in out["Errors"])
    # with Filters: the matching secrets it may not read come back in Errors by ARN
    out = pa.batch_get_secret_value(Filters=[{"Key": "name", "Values": [f"{abac['u']}/"]}])
    assert [v["ARN"] for v in out["SecretValues"]] == [s["a"]]
    assert sorted(e["SecretId"] for e in out["Errors"]) == sorted([s["b"], s["a_other_cluster"], s["untagged"]])


def test_batch_needs_its_own_permission_and_grants_no_read(enforced, abac, unique):
    iam, eks = enforced.client("iam"), enforced.client("eks")
    s, a = abac["secrets"], abac["a"]
    for sa, statements in (("nobatch", [ABAC]), ("onlybatch", [BATCH])):
        r = iam.create_role(RoleName=unique(sa), AssumeRolePolicyDocument=bootstrap_trust(ACCOUNT, CLUSTER, a, sa))
        iam.put_role_policy(RoleName=r["Role"]["RoleName"], PolicyName="p", PolicyDocument=policy(*statements))
        eks.create_pod_identity_association(clusterName=CLUSTER, namespace=a, serviceAccount=sa,
                                            roleArn=r["Role"]["Arn"])
    nobatch = enforced.client("secretsmanager", agent_credentials(enforced, make_token(a, "nobatch")))
    with pytest.raises(ClientError) as e:
        nobatch.batch_get_secret_value(SecretIdList=[s["a"]])
    assert code(e.value) == "AccessDeniedException"
    assert nobatch.get_secret_value(SecretId=s["a"])["SecretString"] == "value-a"
    onlybatch = enforced.client("secretsmanager", agent_credentials(enforced, make_token(a, "onlybatch")))
    out = onlybatch.batch_get_secret_value(SecretIdList=[s["a"], s["b"]])
    assert out["SecretValues"] == []
    assert sorted(e["SecretId"] for e in out["Errors"]) == sorted([s["a"], s["b"]])


def test_pod_name_condition_distinguishes_pods(enforced, abac, unique):
    iam, eks = enforced.client("iam"), enforced.client("eks")
    s, a = abac["secrets"], abac["a"]
    r = iam.create_role(RoleName=unique("podname"), AssumeRolePolicyDocument=bootstrap_trust(ACCOUNT, CLUSTER, a, "web"))
    iam.put_role_policy(RoleName=r["Role"]["RoleName"], PolicyName="p", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [s["a"], s["b"]],
         "Condition": {"StringLike": {"aws:PrincipalTag/kubernetes-pod-name": "web-*"}}},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": s["b"],
         "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-pod-name": "web-1"}}},
    ))
    eks.create_pod_identity_association(clusterName=CLUSTER, namespace=a, serviceAccount="web",
                                        roleArn=r["Role"]["Arn"])

    def pod(name):
        return enforced.client("secretsmanager", agent_credentials(enforced, make_token(a, "web", pod=name)))

    web0, web1, other = pod("web-0"), pod("web-1"), pod("api-0")
    assert (can_read(web0, s["a"]), can_read(web0, s["b"])) == (True, True)
    assert (can_read(web1, s["a"]), can_read(web1, s["b"])) == (True, False)  # explicit Deny wins
    assert (can_read(other, s["a"]), can_read(other, s["b"])) == (False, False)


def test_policy_variables_in_resource_and_resource_tag_keys(enforced, abac, unique):
    iam, eks = enforced.client("iam"), enforced.client("eks")
    admin_sm, admin_ssm = enforced.client("secretsmanager"), enforced.client("ssm")
    a, b = abac["a"], abac["b"]
    mine = admin_sm.create_secret(Name=f"{a}/own", SecretString="own")["ARN"]
    theirs = admin_sm.create_secret(Name=f"{b}/own", SecretString="theirs")["ARN"]
    admin_ssm.put_parameter(Name=f"/{abac['u']}/pa", Value="pa", Type="SecureString", Tags=tags(a))
    admin_ssm.put_parameter(Name=f"/{abac['u']}/pb", Value="pb", Type="SecureString", Tags=tags(b))
    r = iam.create_role(RoleName=unique("vars"), AssumeRolePolicyDocument=bootstrap_trust(ACCOUNT, CLUSTER, a, "vars"))
    iam.put_role_policy(RoleName=r["Role"]["RoleName"], PolicyName="p", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": f"arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:${{aws:PrincipalTag/kubernetes-namespace}}/*"},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/kubernetes-namespace": "${aws:PrincipalTag/kubernetes-namespace}"}}},
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*",
         "Condition": {"StringEquals": {"ssm:resourceTag/kubernetes-namespace": "${aws:PrincipalTag/kubernetes-namespace}"}}},
    ))
    eks.create_pod_identity_association(clusterName=CLUSTER, namespace=a, serviceAccount="vars",
                                        roleArn=r["Role"]["Arn"])
    creds = agent_credentials(enforced, make_token(a, "vars"))
    sm, ssm = enforced.client("secretsmanager", creds), enforced.client("ssm", creds)
    assert sm.get_secret_value(SecretId=mine)["SecretString"] == "own"  # ${...} in Resource
    assert not can_read(sm, theirs)
    s = abac["secrets"]
    assert (can_read(sm, s["a"]), can_read(sm, s["a_other_cluster"]), can_read(sm, s["b"])) == (True, True, False)
    assert ssm.get_parameter(Name=f"/{abac['u']}/pa", WithDecryption=True)["Parameter"]["Value"] == "pa"
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name=f"/{abac['u']}/pb", WithDecryption=True)
    assert code(e.value) == "AccessDeniedException"


def test_a_session_without_tags_matches_no_tag_variable(enforced, abac, unique):
    """disableSessionTags: no aws:PrincipalTag at all, so ${aws:PrincipalTag/...} matches nothing;
    the association's session policy narrows the role's permissions."""
    iam, eks = enforced.client("iam"), enforced.client("eks")
    s, a = abac["secrets"], abac["a"]
    trust = policy({"Effect": "Allow", "Principal": SVC, "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}})
    r = iam.create_role(RoleName=unique("notags"), AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=r["Role"]["RoleName"], PolicyName="p", PolicyDocument=policy(
        ABAC, {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [s["b"], s["untagged"]]}))
    arn = r["Role"]["Arn"]
    eks.create_pod_identity_association(clusterName=CLUSTER, namespace=a, serviceAccount="notags", roleArn=arn,
                                        disableSessionTags=True)
    eks.create_pod_identity_association(
        clusterName=CLUSTER, namespace=a, serviceAccount="narrowed", roleArn=arn, disableSessionTags=True,
        policy=policy({"Effect": "Allow", "Action": "secretsmanager:*", "Resource": s["untagged"]}))
    plain = enforced.client("secretsmanager", agent_credentials(enforced, make_token(a, "notags")))
    assert not can_read(plain, s["a"])  # the ABAC statement has nothing to compare with
    assert can_read(plain, s["b"]) and can_read(plain, s["untagged"])
    narrowed = enforced.client("secretsmanager", agent_credentials(enforced, make_token(a, "narrowed")))
    assert (can_read(narrowed, s["b"]), can_read(narrowed, s["untagged"])) == (False, True)
