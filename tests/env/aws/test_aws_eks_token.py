"""The apiserver's token webhook: EKS-style `k8s-aws-v1.` tokens made the way `aws eks
get-token` makes them (a presigned sts:GetCallerIdentity that signs x-k8s-aws-id) are
verified against moto's keys; tampered, foreign-cluster, unknown-key and expired tokens are
refused, and only the cluster creator (the admin user) is system:masters."""

from __future__ import annotations

import base64
import datetime

import boto3
import pytest
import requests

from awsstandin import eks_token

CLUSTER = "bootstrap-test"


def get_token(endpoint: str, creds: dict, cluster: str = CLUSTER, expires: int = 60) -> str:
    sts = boto3.client("sts", region_name="us-west-2", endpoint_url=endpoint, **creds)

    def add_cluster_header(request, **_):
        request.headers["x-k8s-aws-id"] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=expires, HttpMethod="GET")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def review(control: str, token: str) -> dict:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    r = requests.post(control + "/authenticate", json=body, timeout=10)
    assert r.status_code == 200
    assert r.json()["kind"] == "TokenReview"
    return r.json()["status"]


@pytest.fixture(scope="module")
def admin(server):
    """Keys of the environment's admin user (made here: this server runs without --enforce-iam)."""
    iam = server.client("iam")
    try:
        iam.create_user(UserName="bootstrap-test-admin")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    key = iam.create_access_key(UserName="bootstrap-test-admin")["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def test_admin_token_is_authenticated_as_cluster_admin(server, control, admin):
    st = review(control, get_token(server.endpoint, admin))
    assert st["authenticated"] is True
    assert st["user"]["username"].endswith(":user/bootstrap-test-admin")
    assert st["user"]["groups"] == ["system:masters"]


def test_other_user_is_authenticated_without_groups(server, control, unique):
    iam = server.client("iam")
    name = unique("dev")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    st = review(control, get_token(server.endpoint, {"aws_access_key_id": key["AccessKeyId"],
                                                     "aws_secret_access_key": key["SecretAccessKey"]}))
    assert st["authenticated"] is True
    assert st["user"]["username"].endswith(f":user/{name}")
    assert st["user"]["groups"] == []


def test_token_for_another_cluster_is_refused(server, control, admin):
    st = review(control, get_token(server.endpoint, admin, cluster="someone-elses"))
    assert st["authenticated"] is False
    assert "signature does not match" in st["error"]


def test_tampered_unknown_and_malformed_tokens_are_refused(server, control, admin):
    good = get_token(server.endpoint, admin)
    url = base64.urlsafe_b64decode(good[len("k8s-aws-v1."):] + "==").decode()
    tampered = "k8s-aws-v1." + base64.urlsafe_b64encode(url.replace("X-Amz-Expires=60", "X-Amz-Expires=900").encode()).decode()
    assert review(control, tampered)["authenticated"] is False
    unknown = get_token(server.endpoint, {"aws_access_key_id": "AKIAUNKNOWNUNKNOWN00", "aws_secret_access_key": "x" * 40})
    assert "unknown" in review(control, unknown)["error"]
    assert review(control, "k8s-aws-v1.!!!")["authenticated"] is False
    assert "not a k8s-aws-v1 token" in review(control, "Bearer-ish")["error"]


def test_expired_token_is_refused(server, admin):
    token = get_token(server.endpoint, admin, expires=60)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=2)
    st = eks_token.authenticate(token, CLUSTER, server.info["account_id"], "us-west-2", {"bootstrap-test-admin"}, now=later)
    assert st == {"authenticated": False, "error": "the token has expired"}
