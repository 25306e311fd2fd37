"""eks-auth evaluates the role's trust policy like STS: principal Service pods.eks.amazonaws.com,
actions sts:AssumeRole and (with session tags) sts:TagSession, explicit Deny wins, and conditions on
aws:SourceAccount, aws:SourceArn, aws:RequestTag/<session tag> and aws:TagKeys."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from standin_testlib import Secret, bootstrap_trust, make_token

CLUSTER = "bootstrap-test"
ACCOUNT = "123456789012"
CLUSTER_ARN = f"arn:aws:eks:us-west-2:{ACCOUNT}:cluster/{CLUSTER}"
SVC = {"Service": "pods.eks.amazonaws.com"}
BOTH = ["sts:AssumeRole", "sts:TagSession"]


def err(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def trust(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def world(server, unique):
    iam, eks, auth = server.client("iam"), server.client("eks"), server.client("eks-auth")

    def role(policy: str) -> str:
        return iam.create_role(RoleName=unique("trust"), AssumeRolePolicyDocument=policy)["Role"]["Arn"]

    def associate(ns: str, sa: str, role_arn: str, **kw) -> None:
        eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount=sa,
                                            roleArn=role_arn, **kw)

    def assume(ns: str, sa: str, pod: str = "pod-1"):
        """-> the assumed-role ARN, or (code, status, message) of the error."""
        try:
            out = Secret(auth.assume_role_for_pod_identity(clusterName=CLUSTER, token=make_token(ns, sa, pod=pod)))
        except ClientError as e:
            return (*err(e), e.response["Error"]["Message"])
        assert out["credentials"]["accessKeyId"].startswith("ASIA")
        return out["assumedRoleUser"]["arn"]

    return {"role": role, "associate": associate, "assume": assume, "ns": unique("ns"), "ns2": unique("ns")}


def denied(result, role_arn: str) -> bool:
    """An AccessDeniedException 400 naming the role, and no credentials."""
    return (isinstance(result, tuple) and result[:2] == ("AccessDeniedException", 400)
            and role_arn in result[2])


def test_bootstrap_trust_allows_only_its_namespace_sa_and_cluster(world):
    ns, other_ns = world["ns"], world["ns2"]
    arn = world["role"](bootstrap_trust(ACCOUNT, CLUSTER, ns, "app"))
    world["associate"](ns, "app", arn)
    world["associate"](other_ns, "app", arn)  # another namespace's association naming the same role
    world["associate"](ns, "other-sa", arn)
    got = world["assume"](ns, "app")
    assert isinstance(got, str) and f":assumed-role/{arn.rsplit('/', 1)[1]}/" in got
    for ns_, sa in ((other_ns, "app"), (ns, "other-sa")):
        r = world["assume"](ns_, sa)
        assert denied(r, arn), r
    # the same shape for another cluster or account denies our pods
    for sa2, policy in (("sa-cluster", bootstrap_trust(ACCOUNT, "other-cluster", ns, "sa-cluster")),
                        ("sa-account", bootstrap_trust("999999999999", CLUSTER, ns, "sa-account"))):
        a2 = world["role"](policy)
        world["associate"](ns, sa2, a2)
        r = world["assume"](ns, sa2)
        assert denied(r, a2), r


def test_a_same_named_cluster_in_another_region_is_refused(server, world, unique):
    """bootstrap's trust pins the cluster's ARN: the same cluster name, namespace and service
    account in another region (another ARN) gets no credentials; the pinned cluster does."""
    ns = world["ns"]
    arn = world["role"](bootstrap_trust(ACCOUNT, CLUSTER, ns, "app"))
    world["associate"](ns, "app", arn)
    assert isinstance(world["assume"](ns, "app"), str), "the pinned cluster's pods get in"

    other_region = "eu-west-1"
    keys = {"aws_access_key_id": server.info["access_key_id"],
            "aws_secret_access_key": server.info["secret_access_key"]}
    eks2 = boto3.client("eks", endpoint_url=server.endpoint, region_name=other_region, **keys)
    if CLUSTER not in eks2.list_clusters()["clusters"]:
        eks2.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                            resourcesVpcConfig={"subnetIds": []})
    twin_arn = eks2.describe_cluster(name=CLUSTER)["cluster"]["arn"]
    assert twin_arn != CLUSTER_ARN and twin_arn.endswith(f":cluster/{CLUSTER}")
    eks2.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount="app", roleArn=arn)
    auth2 = boto3.client("eks-auth", endpoint_url=server.endpoint, region_name=other_region, **keys)
    with pytest.raises(ClientError) as e:
        auth2.assume_role_for_pod_identity(clusterName=CLUSTER, token=make_token(ns, "app", pod="pod-1"))
    assert err(e.value) == ("AccessDeniedException", 400), e.value.response
    assert arn in e.value.response["Error"]["Message"]
    # The same trust without the ARN condition (what bootstrap wrote before) lets the twin in.
    loose = json.loads(bootstrap_trust(ACCOUNT, CLUSTER, ns, "loose"))
    del loose["Statement"][0]["Condition"]["StringEquals"]["aws:RequestTag/eks-cluster-arn"]
    loose_arn = world["role"](json.dumps(loose))
    eks2.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount="loose",
                                         roleArn=loose_arn)
    out = auth2.assume_role_for_pod_identity(clusterName=CLUSTER, token=make_token(ns, "loose", pod="pod-1"))
    assert f":assumed-role/{loose_arn.rsplit('/', 1)[1]}/" in out["assumedRoleUser"]["arn"]


def test_explicit_deny_wins(world):
    ns, other_ns = world["ns"], world["ns2"]
    arn = world["role"](trust(
        {"Effect": "Allow", "Principal": SVC, "Action": BOTH},
        {"Effect": "Deny", "Principal": SVC, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": other_ns}}},
    ))
    world["associate"](ns, "app", arn)
    world["associate"](other_ns, "app", arn)
    assert isinstance(world["assume"](ns, "app"), str)
    r = world["assume"](other_ns, "app")
    assert denied(r, arn) and "explicitly denies" in r[2], r
    # a Deny on sts:TagSession alone denies a tagged session, not an untagged one
    arn2 = world["role"](trust({"Effect": "Allow", "Principal": SVC, "Action": "sts:*"},
                               {"Effect": "Deny", "Principal": SVC, "Action": "sts:TagSession"}))
    world["associate"](ns, "tagged", arn2)
    world["associate"](ns, "untagged", arn2, disableSessionTags=True)
    assert denied(world["assume"](ns, "tagged"), arn2)
    assert isinstance(world["assume"](ns, "untagged"), str)


def test_disabled_session_tags_fail_tag_conditions(world):
    ns = world["ns"]
    arn = world["role"](bootstrap_trust(ACCOUNT, CLUSTER, ns, "app"))
    world["associate"](ns, "app", arn, disableSessionTags=True)
    r = world["assume"](ns, "app")
    assert denied(r, arn) and "sts:AssumeRole" in r[2] and "sts:TagSession" not in r[2], r
    # without tags only sts:AssumeRole is needed; aws:SourceAccount/aws:SourceArn are still there
    arn2 = world["role"](trust({"Effect": "Allow", "Principal": SVC, "Action": "sts:AssumeRole",
                                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                              "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
                                              "Null": {"aws:RequestTag/kubernetes-namespace": "true"}}}))
    world["associate"](ns, "untagged", arn2, disableSessionTags=True)
    world["associate"](ns, "tagged", arn2)
    assert isinstance(world["assume"](ns, "untagged"), str)
    assert denied(world["assume"](ns, "tagged"), arn2)  # tagged: needs sts:TagSession, and Null fails


@pytest.mark.parametrize("condition, ok_pod, bad_pod", [
    ({"StringLike": {"aws:RequestTag/kubernetes-pod-name": "web-*"}}, "web-0", "api-0"),
    ({"StringNotLike": {"aws:RequestTag/kubernetes-pod-name": "api-*"}}, "web-0", "api-0"),
    ({"StringNotEquals": {"aws:RequestTag/kubernetes-pod-name": ["api-0", "api-1"]}}, "web-0", "api-1"),
    ({"StringEqualsIgnoreCase": {"AWS:REQUESTTAG/Kubernetes-Pod-Name": "WEB-0"}}, "web-0", "web-1"),
])
def test_pod_name_conditions(world, condition, ok_pod, bad_pod):
    ns = world["ns"]
    arn = world["role"](trust({"Effect": "Allow", "Principal": SVC, "Action": BOTH, "Condition": condition}))
    world["associate"](ns, "app", arn)
    assert isinstance(world["assume"](ns, "app", pod=ok_pod), str)
    assert denied(world["assume"](ns, "app", pod=bad_pod), arn)


def test_set_operators_arn_and_ifexists(world):
    ns = world["ns"]
    keys = ["eks-cluster-arn", "eks-cluster-name", "kubernetes-namespace", "kubernetes-service-account",
            "kubernetes-pod-name", "kubernetes-pod-uid"]
    cases = [
        ({"ForAllValues:StringEquals": {"aws:TagKeys": keys}}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": keys[:-1]}}, False),  # the pod uid tag is there
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": "kubernetes-pod-uid"}}, True),
        ({"ForAnyValue:StringLike": {"aws:TagKeys": "team-*"}}, False),
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:eks:*:{ACCOUNT}:cluster/*"}}, True),
        ({"ArnNotLike": {"aws:SourceArn": f"arn:aws:eks:*:{ACCOUNT}:cluster/*"}}, False),
        ({"ArnEquals": {"aws:RequestTag/eks-cluster-arn": CLUSTER_ARN}}, True),
        ({"StringEqualsIfExists": {"aws:RequestTag/no-such-tag": "x"}}, True),
        ({"StringEquals": {"aws:RequestTag/no-such-tag": "x"}}, False),
        ({"Null": {"aws:RequestTag/kubernetes-pod-uid": "false"}}, True),
        ({"Bool": {"aws:RequestTag/kubernetes-namespace": "true"}}, False),
        # AND across operators and keys, OR across values
        ({"StringEquals": {"aws:RequestTag/kubernetes-namespace": ["nope", ns],
                           "aws:RequestTag/eks-cluster-name": CLUSTER},
          "StringLike": {"aws:RequestTag/kubernetes-service-account": "sa-*"}}, True),
        ({"StringEquals": {"aws:RequestTag/kubernetes-namespace": ns,
                           "aws:RequestTag/kubernetes-service-account": "nope"}}, False),
    ]
    for i, (cond, ok) in enumerate(cases):
        arn = world["role"](trust({"Effect": "Allow", "Principal": SVC, "Action": BOTH, "Condition": cond}))
        world["associate"](ns, f"sa-{i}", arn)
        r = world["assume"](ns, f"sa-{i}")
        assert isinstance(r, str) if ok else denied(r, arn), (cond, r)


def test_principal_and_action_matching(world):
    ns = world["ns"]
    cases = [
        (trust({"Effect": "Allow", "Principal": "*", "Action": "sts:*"}), True),
        (trust({"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]},
                "Action": "sts:*"}), True),
        (trust({"Effect": "Allow", "Principal": SVC, "Action": ["sts:Assume*", "sts:TagSess?on"]}), True),
        (trust({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": BOTH}), False),
        (trust({"Effect": "Allow", "Principal": SVC, "Action": "sts:AssumeRoleWithWebIdentity"},
               {"Effect": "Allow", "Principal": SVC, "Action": "sts:TagSession"}), False),
        (trust({"Effect": "Allow", "Principal": SVC, "NotAction": "iam:*"}), True),
    ]
    for i, (policy, ok) in enumerate(cases):
        arn = world["role"](policy)
        world["associate"](ns, f"p-{i}", arn)
        r = world["assume"](ns, f"p-{i}")
        assert isinstance(r, str) if ok else denied(r, arn), (policy, r)


def test_session_tags_ride_on_the_session(tmp_path):
    """In-process: the assumed-role session moto holds carries the Pod Identity session tags (and
    none with disableSessionTags); the pod name/uid come from the reviewed token."""
    import server as server_mod
    from awsstandin.eksauth import Identity, StaticTokenVerifier
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    args = server_mod.parse_args(["--kubeconfig", str(tmp_path / "none"), "--state-dir", str(tmp_path),
                                  "--cluster", "tags", "--addon-delay", "0"])
    verifier = StaticTokenVerifier({"t1": Identity("ns1", "sa1", "web-0", "uid-0"),
                                    "t2": Identity("ns1", "sa2", "web-1", "uid-1")})
    standin, _ = server_mod.build(args, verifier=verifier)
    role = iam_backends[ACCOUNT]["aws"].create_role(
        "tags-role", bootstrap_trust(ACCOUNT, "tags", "ns1", "sa1"), "/", None, "", [], None)
    eks = standin.eks
    c = eks.cluster("us-west-2", "tags")
    eks._new_association(c, "us-west-2", "ns1", "sa1", role.arn)
    eks._new_association(c, "us-west-2", "ns1", "sa2", role.arn, disable_session_tags=True)
    st, out = standin.call_eks_auth("us-west-2", "tags", "t1")
    assert st == 200, out
    key = out["credentials"]["accessKeyId"]
    session = next(r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.access_key_id == key)
    assert session.session_tags == {
        "eks-cluster-arn": f"arn:aws:eks:us-west-2:{ACCOUNT}:cluster/tags",
        "eks-cluster-name": "tags",
        "kubernetes-namespace": "ns1",
        "kubernetes-service-account": "sa1",
        "kubernetes-pod-name": "web-0",
        "kubernetes-pod-uid": "uid-0",
    }
    st, out = standin.call_eks_auth("us-west-2", "tags", "t2")  # no tags: the tag conditions fail
    assert (st, out["code"]) == (400, "AccessDeniedException")
    assert role.arn in out["message"]


def test_pod_name_and_uid_fall_back_to_the_token_claims():
    """A TokenReview without the pod extras: the (reviewed) token's kubernetes.io claim names the pod."""
    from awsstandin.eksauth import KubeTokenVerifier

    class Kube:
        def token_review(self, token, audiences):
            return {"authenticated": True, "audiences": audiences,
                    "user": {"username": "system:serviceaccount:ns1:sa1"}}

    ident = KubeTokenVerifier(Kube()).verify(make_token("ns1", "sa1", pod="web-7", pod_uid="uid-7"))
    assert (ident.namespace, ident.service_account, ident.pod_name, ident.pod_uid) == ("ns1", "sa1", "web-7", "uid-7")
