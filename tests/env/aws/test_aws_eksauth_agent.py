"""eks-auth AssumeRoleForPodIdentity (token review -> association -> trust check -> moto STS
credentials) and the Pod Identity agent endpoint. Tokens are reviewed by the fake apiserver
(conftest) over the kubeconfig, as the real apiserver would; one test injects a verifier instead."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
import requests
from botocore.exceptions import ClientError

from standin_testlib import TRUST, Secret, make_token

CLUSTER = "bootstrap-test"


def err(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def pod_role(server, unique):
    """A namespace/SA with an association to a role that trusts pods.eks.amazonaws.com."""
    iam, eks = server.client("iam"), server.client("eks")
    name = unique("pod-role")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]
    ns, sa = unique("ns"), "app"
    assoc = eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount=sa,
                                                roleArn=role["Arn"])["association"]
    return {"role": role, "ns": ns, "sa": sa, "assoc": assoc}


def creds_of(resp_creds: dict) -> Secret:
    return Secret(aws_access_key_id=resp_creds["accessKeyId"], aws_secret_access_key=resp_creds["secretAccessKey"],
                  aws_session_token=resp_creds["sessionToken"])


def test_assume_role_for_pod_identity(server, apiserver, pod_role):
    auth = server.client("eks-auth")
    token = make_token(pod_role["ns"], pod_role["sa"])
    out = Secret(auth.assume_role_for_pod_identity(clusterName=CLUSTER, token=token))
    assert out["subject"] == {"namespace": pod_role["ns"], "serviceAccount": pod_role["sa"]}
    assert out["audience"] == "pods.eks.amazonaws.com"
    assert out["podIdentityAssociation"] == {"associationArn": pod_role["assoc"]["associationArn"],
                                             "associationId": pod_role["assoc"]["associationId"]}
    role_name = pod_role["role"]["RoleName"]
    assert re.match(rf"^arn:aws:sts::123456789012:assumed-role/{role_name}/eks-{CLUSTER}-", out["assumedRoleUser"]["arn"])
    assert out["assumedRoleUser"]["assumeRoleId"].startswith(pod_role["role"]["RoleId"] + ":")
    c = Secret(out["credentials"])
    assert c["accessKeyId"].startswith("ASIA")
    remaining = (c["expiration"] - datetime.now(timezone.utc)).total_seconds()
    assert 5 * 3600 < remaining <= 6 * 3600 + 5
    # moto accepts the credentials as that role
    ident = server.client("sts", creds_of(c)).get_caller_identity()
    assert ident["Arn"] == out["assumedRoleUser"]["arn"]
    # the token was reviewed with the Pod Identity audience
    assert apiserver.find("POST", "/tokenreviews")[-1]["audiences"] == ["pods.eks.amazonaws.com"]


def test_assume_role_for_pod_identity_errors(server, pod_role, unique):
    auth, iam, eks = server.client("eks-auth"), server.client("iam"), server.client("eks")
    ns, sa = pod_role["ns"], pod_role["sa"]

    def code(token, cluster=CLUSTER):
        with pytest.raises(ClientError) as e:
            auth.assume_role_for_pod_identity(clusterName=cluster, token=token)
        return err(e.value)

    assert code(make_token(ns, sa, sig="forged")) == ("InvalidTokenException", 400)
    assert code(make_token(ns, sa, aud=("sts.amazonaws.com",))) == ("InvalidTokenException", 400)
    assert code(make_token(ns, sa, exp_in=-60)) == ("ExpiredTokenException", 400)
    assert code(make_token(ns, sa), cluster="no-such-cluster") == ("ResourceNotFoundException", 404)
    assert code(make_token(ns, "no-association")) == ("ResourceNotFoundException", 404)

    def assoc_to(role_arn, sa_name, **kw):
        eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount=sa_name,
                                            roleArn=role_arn, **kw)

    assoc_to("arn:aws:iam::123456789012:role/does-not-exist", "ghost")
    assert code(make_token(ns, "ghost")) == ("AccessDeniedException", 400)

    ec2_trust = TRUST.replace("pods.eks.amazonaws.com", "ec2.amazonaws.com")
    r = iam.create_role(RoleName=unique("ec2-role"), AssumeRolePolicyDocument=ec2_trust)["Role"]
    assoc_to(r["Arn"], "wrong-trust")
    assert code(make_token(ns, "wrong-trust")) == ("AccessDeniedException", 400)

    no_tag = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    r = iam.create_role(RoleName=unique("no-tag"), AssumeRolePolicyDocument=no_tag)["Role"]
    assoc_to(r["Arn"], "no-tag-session")
    assert code(make_token(ns, "no-tag-session")) == ("AccessDeniedException", 400)
    assoc_to(r["Arn"], "tags-disabled", disableSessionTags=True)
    ok = Secret(auth.assume_role_for_pod_identity(clusterName=CLUSTER, token=make_token(ns, "tags-disabled")))
    assert ok["subject"]["serviceAccount"] == "tags-disabled"


def test_token_verifier_is_injectable(tmp_path):
    """The eks-auth logic with a static verifier, in-process, no apiserver at all."""
    import server as server_mod
    from awsstandin.eksauth import Identity, StaticTokenVerifier
    from werkzeug.test import Client

    args = server_mod.parse_args(["--kubeconfig", str(tmp_path / "none"), "--state-dir", str(tmp_path),
                                  "--cluster", "inproc", "--addon-delay", "0"])
    verifier = StaticTokenVerifier({"tok-good": Identity("ns1", "sa1", "pod-a")}, expired={"tok-old"})
    standin, _ = server_mod.build(args, verifier=verifier)
    from moto.iam.models import iam_backends

    role = iam_backends["123456789012"]["aws"].create_role(
        "inproc-role", TRUST, "/", None, "", [], None)
    st, _ = standin.call_eks_auth("us-west-2", "inproc", "tok-good")
    assert st == 404  # no association yet
    c = Client(standin)
    hdr = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-west-2/eks/aws4_request, "
                            "SignedHeaders=host, Signature=x"}
    r = c.post("/clusters/inproc/pod-identity-associations", headers=hdr,
               json={"namespace": "ns1", "serviceAccount": "sa1", "roleArn": role.arn})
    assert r.status_code == 200, r.data
    st, out = standin.call_eks_auth("us-west-2", "inproc", "tok-good")
    out = Secret(out)
    assert st == 200 and out["subject"] == {"namespace": "ns1", "serviceAccount": "sa1"}
    assert "/eks-inproc-pod-a-" in out["assumedRoleUser"]["arn"]
    assert standin.call_eks_auth("us-west-2", "inproc", "tok-old")[1]["code"] == "ExpiredTokenException"
    assert standin.call_eks_auth("us-west-2", "inproc", "tok-unknown")[1]["code"] == "InvalidTokenException"


# --- the agent endpoint -----------------------------------------------------------------------


def calls(control) -> dict:
    return requests.get(control + "/calls").json()


def test_agent_answers_like_the_real_agent(server, control, pod_role):
    token = make_token(pod_role["ns"], pod_role["sa"])
    requests.delete(control + "/agent/cache")
    before = calls(control).get("eks-auth:AssumeRoleForPodIdentity", 0)
    r = requests.get(server.agent, headers={"Authorization": token})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = Secret(r.json())
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}
    assert body["AccountId"] == "123456789012"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["Expiration"])
    exp = datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert exp > datetime.now(timezone.utc)
    ident = server.client("sts", Secret(aws_access_key_id=body["AccessKeyId"],
                                        aws_secret_access_key=body["SecretAccessKey"],
                                        aws_session_token=body["Token"])).get_caller_identity()
    assert f"assumed-role/{pod_role['role']['RoleName']}/" in ident["Arn"]

    # cached per token: a second call does not reach eks-auth and returns the same credentials
    again = Secret(requests.get(server.agent, headers={"Authorization": token}).json())
    assert again["AccessKeyId"] == body["AccessKeyId"]
    assert calls(control)["eks-auth:AssumeRoleForPodIdentity"] == before + 1
    assert calls(control)["eks-pod-identity-agent:GetCredentials"] >= 2


def test_agent_errors(server, control, pod_role):
    ns, sa = pod_role["ns"], pod_role["sa"]

    def get(headers):
        r = requests.get(server.agent, headers=headers)
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.status_code, r.text

    st, text = get({})
    assert st == 400 and "cannot be empty" in text
    st, text = get({"Authorization": "not-a-jwt"})
    assert st == 400 and "cannot be parsed" in text
    st, text = get({"Authorization": make_token(ns, sa, exp_in=-30)})
    assert st == 400 and "expired" in text
    st, text = get({"Authorization": make_token(ns, sa, sig="forged")})
    assert st == 400 and "(InvalidTokenException)" in text
    st, text = get({"Authorization": make_token(ns, "nobody")})
    assert st == 404 and "(ResourceNotFoundException)" in text
    assert requests.post(server.agent, headers={"Authorization": make_token(ns, sa)}).status_code == 405
    assert requests.get(server.agent.replace("/v1/credentials", "/v2/x")).status_code == 404

    # faults on eks-auth reach the agent's caller like the real agent's pass-through
    requests.delete(control + "/agent/cache")
    requests.post(control + "/faults", json={"operation": "eks-auth:AssumeRoleForPodIdentity", "kind": "throttle"})
    st, text = get({"Authorization": make_token(ns, sa, pod="other")})
    assert st == 429 and "(ThrottlingException)" in text
    requests.post(control + "/faults", json={"operation": "eks-auth:AssumeRoleForPodIdentity", "kind": "error"})
    st, text = get({"Authorization": make_token(ns, sa, pod="third")})
    assert st == 500 and "fault: server" in text
    t4 = make_token(ns, sa, pod="fourth")
    r = requests.get(server.agent, headers={"Authorization": t4})
    assert r.status_code == 200
    # no credential material and no token in the server's log
    log = server.log()
    got = Secret(r.json())
    leaked = any(x in log for x in (got["SecretAccessKey"], got["Token"], t4.split(".")[1]))
    assert not leaked, "credential material or a token found in the server log"
