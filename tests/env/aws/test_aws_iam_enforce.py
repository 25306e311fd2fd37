"""--enforce-iam: moto's IAM access control with ARN-scoped Secrets Manager/SSM policies.
A pod's credentials (token -> agent -> eks-auth -> moto STS) read its own secret and are denied
another one. Secret values are compared, never printed."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError

from standin_testlib import TRUST, Secret, make_token

CLUSTER = "bootstrap-test"


def err(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def setup(enforced):
    """As admin: secrets A and B, parameters P and Q, a role allowed A and P only, an association."""
    enforcing, admin_key_id = enforced.info["enforce_iam"], enforced.info["access_key_id"]
    assert enforcing is True and admin_key_id.startswith("AKIA")
    sm, ssm, iam, eks = (enforced.client(s) for s in ("secretsmanager", "ssm", "iam", "eks"))
    a = sm.create_secret(Name="team-a/db", SecretString="value-a")["ARN"]
    b = sm.create_secret(Name="team-b/db", SecretString="value-b")["ARN"]
    ssm.put_parameter(Name="/team-a/param", Value="pa", Type="SecureString")
    ssm.put_parameter(Name="/team-b/param", Value="pb", Type="SecureString")
    role = iam.create_role(RoleName="team-a-reader", AssumeRolePolicyDocument=TRUST)["Role"]
    iam.put_role_policy(RoleName="team-a-reader", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": [a]},
            {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"],
             "Resource": "arn:aws:ssm:us-west-2:123456789012:parameter/team-a/*"},
        ],
    }))
    eks.create_pod_identity_association(clusterName=CLUSTER, namespace="team-a", serviceAccount="reader",
                                        roleArn=role["Arn"])
    r = requests.get(enforced.agent, headers={"Authorization": make_token("team-a", "reader")})
    assert r.status_code == 200, r.text
    c = Secret(r.json())
    pod = Secret(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                 aws_session_token=c["Token"])
    return {"a": a, "b": b, "pod": pod, "role_arn": role["Arn"]}


def test_unknown_keys_are_rejected(enforced):
    bad = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "x" * 40}
    with pytest.raises(ClientError) as e:
        enforced.client("iam", bad).list_roles()
    assert err(e.value)[0] == "InvalidClientTokenId"
    with pytest.raises(ClientError) as e:
        enforced.client("secretsmanager", bad).list_secrets()
    assert err(e.value)[0] in ("InvalidClientTokenId", "UnrecognizedClientException")
    wrong_secret = Secret(aws_access_key_id=enforced.info["access_key_id"], aws_secret_access_key="y" * 40)
    with pytest.raises(ClientError) as e:
        enforced.client("sts", wrong_secret).get_caller_identity()
    assert err(e.value)[0] == "SignatureDoesNotMatch"


def test_admin_can_do_everything(enforced):
    assert enforced.client("sts").get_caller_identity()["Arn"].endswith(":user/bootstrap-test-admin")
    assert enforced.client("eks").describe_cluster(name=CLUSTER)["cluster"]["status"] == "ACTIVE"


def test_pod_reads_its_secret_and_is_denied_the_other(enforced, setup):
    sm = enforced.client("secretsmanager", setup["pod"])
    assert sm.get_secret_value(SecretId=setup["a"])["SecretString"] == "value-a"
    assert sm.get_secret_value(SecretId="team-a/db")["SecretString"] == "value-a"  # by name
    assert sm.describe_secret(SecretId="team-a/db")["ARN"] == setup["a"]
    for sid in (setup["b"], "team-b/db"):
        with pytest.raises(ClientError) as e:
            sm.get_secret_value(SecretId=sid)
        assert err(e.value)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        sm.list_secrets()
    assert err(e.value)[0] == "AccessDeniedException"

    batch = sm.batch_get_secret_value(SecretIdList=[setup["a"], setup["b"]])
    assert [v["ARN"] for v in batch["SecretValues"]] == [setup["a"]]
    assert batch["SecretValues"][0]["SecretString"] == "value-a"
    assert [(x["SecretId"], x["ErrorCode"]) for x in batch["Errors"]] == [(setup["b"], "AccessDeniedException")]


def test_pod_ssm_parameters_are_scoped(enforced, setup):
    ssm = enforced.client("ssm", setup["pod"])
    got = ssm.get_parameters(Names=["/team-a/param"], WithDecryption=True)["Parameters"]
    assert [(p["Name"], p["Value"]) for p in got] == [("/team-a/param", "pa")]
    assert ssm.get_parameter(Name="/team-a/param", WithDecryption=True)["Parameter"]["Value"] == "pa"
    with pytest.raises(ClientError) as e:
        ssm.get_parameters(Names=["/team-a/param", "/team-b/param"], WithDecryption=True)
    assert err(e.value)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name="/team-b/param")
    assert err(e.value)[0] == "AccessDeniedException"


def test_pod_cannot_use_iam(enforced, setup):
    with pytest.raises(ClientError) as e:
        enforced.client("iam", setup["pod"]).list_roles()
    assert err(e.value)[0] == "AccessDenied"
    arn = enforced.client("sts", setup["pod"]).get_caller_identity()["Arn"]
    assert ":assumed-role/team-a-reader/" in arn


def test_our_eks_routes_are_iam_checked_too(enforced, setup):
    admin = enforced.client("eks")
    assert isinstance(admin.list_pod_identity_associations(clusterName=CLUSTER)["associations"], list)
    assert admin.describe_addon_versions(addonName="eks-pod-identity-agent")["addons"]
    with pytest.raises(ClientError) as e:
        enforced.client("eks", setup["pod"]).list_pod_identity_associations(clusterName=CLUSTER)
    assert err(e.value) == ("AccessDeniedException", 403)
    bad = Secret(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40)
    with pytest.raises(ClientError) as e:
        enforced.client("eks", bad).create_addon(clusterName=CLUSTER, addonName="eks-pod-identity-agent")
    assert err(e.value) == ("UnrecognizedClientException", 403)
    # tags on an association ARN: the path carries an encoded ARN, the signature must still verify
    a = admin.list_pod_identity_associations(clusterName=CLUSTER)["associations"][0]
    assert isinstance(admin.list_tags_for_resource(resourceArn=a["associationArn"])["tags"], dict)
    # the agent path (in-process eks-auth) is unaffected; eks-auth over HTTP needs signed admin keys
    out = Secret(enforced.client("eks-auth").assume_role_for_pod_identity(
        clusterName=CLUSTER, token=make_token("team-a", "reader")))
    assert out["subject"] == {"namespace": "team-a", "serviceAccount": "reader"}


def test_irsa_web_identity_call_is_unsigned_and_its_credentials_are_scoped(enforced, setup):
    """AssumeRoleWithWebIdentity needs no AWS credentials (as in AWS); what it returns acts as the role."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    sts = boto3.client("sts", endpoint_url=enforced.endpoint, region_name="us-west-2",
                       config=Config(signature_version=UNSIGNED))
    token = make_token("team-a", "app", aud=("sts.amazonaws.com",))
    got = sts.assume_role_with_web_identity(RoleArn=setup["role_arn"], RoleSessionName="irsa", WebIdentityToken=token)
    c = got["Credentials"]
    sm = enforced.client("secretsmanager", creds=Secret(aws_access_key_id=c["AccessKeyId"],
                                                         aws_secret_access_key=c["SecretAccessKey"],
                                                         aws_session_token=c["SessionToken"]))
    assert sm.get_secret_value(SecretId=setup["a"])["SecretString"] == "value-a"
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=setup["b"])
    assert err(e.value)[0] == "AccessDeniedException"
