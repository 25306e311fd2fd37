"""Fault/latency injection and call counting, for our operations and moto's, per protocol."""

from __future__ import annotations

import time

import pytest
import requests
from botocore.exceptions import ClientError

CLUSTER = "bootstrap-test"
ROLE = "arn:aws:iam::123456789012:role/some-role"


def err(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def calls(control) -> dict:
    return requests.get(control + "/calls").json()


def test_operation_names_and_counts(server, control, unique):
    assert requests.post(control + "/calls/reset").status_code == 200
    assert calls(control) == {}
    iam, sts, sm, ssm, eks = (server.client(s) for s in ("iam", "sts", "secretsmanager", "ssm", "eks"))
    name = unique("count")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    sts.get_caller_identity()
    sts.get_caller_identity()
    arn = sm.create_secret(Name=name, SecretString="not-logged")["ARN"]
    sm.describe_secret(SecretId=arn)
    ssm.put_parameter(Name=f"/{name}/p", Value="v", Type="String")
    ssm.get_parameters(Names=[f"/{name}/p"])
    eks.describe_cluster(name=CLUSTER)
    eks.list_pod_identity_associations(clusterName=CLUSTER)
    eks.list_tags_for_resource(resourceArn=f"arn:aws:eks:us-west-2:123456789012:cluster/{CLUSTER}")
    got = calls(control)
    assert got == {
        "iam:CreateRole": 1,
        "sts:GetCallerIdentity": 2,
        "secretsmanager:CreateSecret": 1,
        "secretsmanager:DescribeSecret": 1,
        "ssm:PutParameter": 1,
        "ssm:GetParameters": 1,
        "eks:DescribeCluster": 1,
        "eks:ListPodIdentityAssociations": 1,
        "eks:ListTagsForResource": 1,
    }
    assert requests.delete(control + "/calls").status_code == 200
    assert calls(control) == {}


def test_throttle_rest_json_then_recovers(server, control, unique):
    requests.post(control + "/calls/reset")
    r = requests.post(control + "/faults", json={"operation": "eks:CreatePodIdentityAssociation",
                                                 "kind": "throttle", "count": 2})
    assert r.status_code == 200 and r.json()["faults"][0]["remaining"] == 2
    eks = server.client("eks")
    ns = unique("throttled")
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount="s", roleArn=ROLE)
        assert err(e.value) == ("ThrottlingException", 429)
    eks.create_pod_identity_association(clusterName=CLUSTER, namespace=ns, serviceAccount="s", roleArn=ROLE)
    assert calls(control)["eks:CreatePodIdentityAssociation"] == 3
    assert requests.get(control + "/faults").json()["faults"] == []
    # with SDK retries (standard mode) the throttles are absorbed
    requests.post(control + "/faults", json={"operation": "eks:ListPodIdentityAssociations", "kind": "throttle", "count": 2})
    server.client("eks", retries=3).list_pod_identity_associations(clusterName=CLUSTER, namespace=ns)


def test_throttle_and_error_per_protocol(server, control, unique):
    requests.post(control + "/faults", json=[
        {"operation": "iam:CreateRole", "kind": "throttle"},
        {"operation": "secretsmanager:GetSecretValue", "kind": "error", "count": 1},
        {"operation": "sts:GetCallerIdentity", "kind": "throttle"},
        {"operation": "ssm:GetParameter", "kind": "error"},
    ])
    with pytest.raises(ClientError) as e:
        server.client("iam").create_role(RoleName=unique("r"), AssumeRolePolicyDocument="{}")
    assert err(e.value) == ("Throttling", 400)  # query protocol: XML <Code>Throttling</Code>
    with pytest.raises(ClientError) as e:
        server.client("sts").get_caller_identity()
    assert err(e.value) == ("Throttling", 400)
    with pytest.raises(ClientError) as e:
        server.client("secretsmanager").get_secret_value(SecretId="whatever")
    assert err(e.value) == ("InternalFailure", 500)
    with pytest.raises(ClientError) as e:
        server.client("ssm").get_parameter(Name="/whatever")
    assert err(e.value) == ("InternalFailure", 500)
    # used up: the next calls go through to moto
    with pytest.raises(ClientError) as e:
        server.client("secretsmanager").get_secret_value(SecretId="whatever")
    assert err(e.value)[0] == "ResourceNotFoundException"


def test_unlimited_fault_until_cleared_and_wildcards(server, control):
    requests.post(control + "/faults", json={"operation": "eks:Describe*", "kind": "error", "count": -1})
    eks = server.client("eks")
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            eks.describe_cluster(name=CLUSTER)
        assert err(e.value) == ("InternalFailure", 500)
    eks.list_pod_identity_associations(clusterName=CLUSTER)  # not matched
    assert requests.delete(control + "/faults").json() == {"faults": []}
    assert eks.describe_cluster(name=CLUSTER)["cluster"]["name"] == CLUSTER


def test_delay(server, control):
    requests.post(control + "/faults", json={"operation": "sts:GetCallerIdentity", "kind": "delay",
                                             "delay_ms": 600, "count": 1})
    sts = server.client("sts")
    t = time.time()
    sts.get_caller_identity()
    assert time.time() - t >= 0.6
    t = time.time()
    sts.get_caller_identity()
    assert time.time() - t < 0.6


def test_bad_fault_specs_are_rejected(control):
    for bad in ({"kind": "throttle"}, {"operation": "eks:X", "kind": "explode"},
                {"operation": "eks:X", "kind": "delay"}, {"operation": "eks:X", "kind": "error", "count": 0}):
        r = requests.post(control + "/faults", json=bad)
        assert r.status_code == 400 and r.json()["message"]
    assert requests.get(control + "/faults").json()["faults"] == []
    assert requests.get(control + "/nope").status_code == 404
    assert requests.get(control + "/health").json()["ok"] is True


def test_rate_limit_is_a_token_bucket(server, control, unique):
    requests.delete(control + "/faults")
    r = requests.post(control + "/faults", json={"operation": "sts:GetCallerIdentity", "kind": "rate",
                                                 "per_second": 5, "burst": 3})
    assert r.status_code == 200 and r.json()["faults"][0]["remaining"] == -1
    sts = server.client("sts")
    answers = []
    for _ in range(6):  # back to back: the burst passes, the rest is throttled
        try:
            sts.get_caller_identity()
            answers.append("ok")
        except ClientError as e:
            answers.append(err(e)[0])
    assert answers[:3] == ["ok"] * 3 and "Throttling" in answers[3:], answers
    time.sleep(0.5)  # 2.5 tokens refilled
    sts.get_caller_identity()
    rule = requests.get(control + "/faults").json()["faults"][0]
    assert rule["hits"] == answers.count("Throttling") and rule["kind"] == "rate"
    bad = requests.post(control + "/faults", json={"operation": "x", "kind": "rate"})
    assert bad.status_code == 400 and "per_second" in bad.text
    requests.delete(control + "/faults")


def test_fault_scoped_to_a_region(server, control):
    # A failover test fails the primary region only: calls signed for another region pass.
    r = requests.post(control + "/faults", json={"operation": "secretsmanager:ListSecrets", "kind": "error",
                                                 "count": -1, "region": "us-west-2"})
    assert r.status_code == 200, r.text
    try:
        with pytest.raises(ClientError) as e:
            server.client("secretsmanager", region_name="us-west-2").list_secrets()
        assert err(e.value) == ("InternalFailure", 500)
        server.client("secretsmanager", region_name="us-east-1").list_secrets()
        assert requests.get(control + "/faults").json()["faults"][0]["region"] == "us-west-2"
    finally:
        requests.delete(control + "/faults")
    bad = requests.post(control + "/faults", json={"operation": "x:Y", "kind": "error", "region": 7})
    assert bad.status_code == 400 and "region" in bad.json()["message"]
