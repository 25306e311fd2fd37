"""--enforce-iam on IAM itself: a policy scoped to `role/PATH/*` with an iam:PermissionsBoundary
condition (the shape of `bootstrap controller --print-iam-policy`) lets its holder create and
change roles only under the path and only with the boundary, as in AWS.
A boundary also limits what the roles and users that carry it may do (their sessions too): the
intersection of their identity policies and the boundary."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from standin_testlib import TRUST, Secret, agent_credentials, make_token

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def confined(enforced):
    """A user allowed role writes under /confined-<run>/ only with the boundary."""
    run = uuid.uuid4().hex[:8]
    iam = enforced.client("iam")
    boundary = iam.create_policy(PolicyName=f"boundary-{run}", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    }))["Policy"]["Arn"]
    path = f"/confined-{run}/"
    roles = f"arn:aws:iam::{ACCOUNT}:role{path}*"
    bounded = {"StringEquals": {"iam:PermissionsBoundary": boundary}}
    user = f"confined-{run}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"],
             "Resource": roles, "Condition": bounded},
            {"Effect": "Allow", "Action": "iam:GetRole", "Resource": roles},
        ],
    }))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    return {"iam": enforced.client("iam", creds), "admin": iam, "boundary": boundary, "path": path, "run": run}


def denied(call) -> None:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == "AccessDenied", e.value.response


def test_create_role_needs_the_boundary_and_the_path(confined):
    iam, b, path, run = confined["iam"], confined["boundary"], confined["path"], confined["run"]
    denied(lambda: iam.create_role(RoleName=f"nb-{run}", Path=path, AssumeRolePolicyDocument=TRUST))
    denied(lambda: iam.create_role(RoleName=f"root-{run}", PermissionsBoundary=b, AssumeRolePolicyDocument=TRUST))
    other = confined["admin"].create_policy(PolicyName=f"other-{run}", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    denied(lambda: iam.create_role(RoleName=f"ob-{run}", Path=path, PermissionsBoundary=other,
                                   AssumeRolePolicyDocument=TRUST))
    role = iam.create_role(RoleName=f"ok-{run}", Path=path, PermissionsBoundary=b,
                           AssumeRolePolicyDocument=TRUST)["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role{path}ok-{run}"
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == b


def test_role_writes_need_the_role_to_carry_the_boundary(confined):
    iam, admin, b, path, run = (confined[k] for k in ("iam", "admin", "boundary", "path", "run"))
    doc = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    # Under the path but made without the boundary (by someone else): out of reach.
    admin.create_role(RoleName=f"unbounded-{run}", Path=path, AssumeRolePolicyDocument=TRUST)
    denied(lambda: iam.put_role_policy(RoleName=f"unbounded-{run}", PolicyName="p", PolicyDocument=doc))
    # Bounded but outside the path: out of reach.
    admin.create_role(RoleName=f"elsewhere-{run}", PermissionsBoundary=b, AssumeRolePolicyDocument=TRUST)
    denied(lambda: iam.put_role_policy(RoleName=f"elsewhere-{run}", PolicyName="p", PolicyDocument=doc))
    iam.create_role(RoleName=f"mine-{run}", Path=path, PermissionsBoundary=b, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=f"mine-{run}", PolicyName="p", PolicyDocument=doc)
    assert iam.get_role(RoleName=f"mine-{run}")["Role"]["Path"] == path


# --- a boundary limits what its role's sessions and its user may do ---------------------------
# The effective permissions are the intersection of the identity policies and the boundary's
# default version: an explicit Deny in it denies, what it does not allow is denied.

def read_policy(*secrets: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": list(secrets)}]})


def sm_denied(call) -> None:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == "AccessDeniedException", e.value.response


def session_creds(c: dict) -> Secret:
    return Secret(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                  aws_session_token=c.get("SessionToken") or c["Token"])


@pytest.fixture(scope="module")
def bounded(enforced):
    """Secrets one and two; a user allowed to assume any role (the roles trust it by ARN)."""
    run = uuid.uuid4().hex[:8]
    iam, sm = enforced.client("iam"), enforced.client("secretsmanager")
    one = sm.create_secret(Name=f"pb-{run}/one", SecretString="value-one")["ARN"]
    two = sm.create_secret(Name=f"pb-{run}/two", SecretString="value-two")["ARN"]
    user = iam.create_user(UserName=f"pb-caller-{run}")["User"]
    iam.put_user_policy(UserName=user["UserName"], PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
    caller = Secret(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}]})
    return {"iam": iam, "one": one, "two": two, "caller": caller, "trust": trust, "run": run}


def boundary_policy(b, name: str, statements: list) -> str:
    return b["iam"].create_policy(PolicyName=f"{name}-{b['run']}", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))["Policy"]["Arn"]


def role_session(enforced, b, name: str, boundary: str | None = None):
    """A role allowed GetSecretValue on both secrets (with `boundary`), assumed by the caller:
    a Secrets Manager client with the session's credentials."""
    iam, role = b["iam"], f"{name}-{b['run']}"
    extra = {"PermissionsBoundary": boundary} if boundary else {}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=b["trust"], **extra)["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=read_policy(b["one"], b["two"]))
    got = enforced.client("sts", b["caller"]).assume_role(RoleArn=arn, RoleSessionName="pb")
    return enforced.client("secretsmanager", session_creds(got["Credentials"]))


def test_a_session_of_a_bounded_role_gets_the_intersection(enforced, bounded):
    b = bounded
    only_one = boundary_policy(b, "only-one", [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": b["one"]}])
    sm = role_session(enforced, b, "pb-intersect", only_one)
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
    # an action the identity policy does not allow stays denied whatever the boundary says
    sm_denied(lambda: sm.describe_secret(SecretId=b["one"]))
    assert f"not allowed by the permissions boundary {only_one}" in enforced.log()


def test_an_explicit_deny_in_the_boundary_wins(enforced, bounded):
    b = bounded
    deny_two = boundary_policy(b, "deny-two", [
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": b["two"]}])
    sm = role_session(enforced, b, "pb-deny", deny_two)
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
    assert f"not allowed by the permissions boundary {deny_two} (explicit deny" in enforced.log()


def test_a_boundary_that_cannot_be_found_denies_everything(enforced, bounded):
    b = bounded
    gone = boundary_policy(b, "gone", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    deleted = role_session(enforced, b, "pb-deleted", gone)
    assert deleted.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    b["iam"].delete_policy(PolicyArn=gone)
    sm_denied(lambda: deleted.get_secret_value(SecretId=b["one"]))
    never = f"arn:aws:iam::{ACCOUNT}:policy/never-existed-{b['run']}"
    missing = role_session(enforced, b, "pb-missing", never)
    sm_denied(lambda: missing.get_secret_value(SecretId=b["one"]))
    log = enforced.log()
    assert f"the policy {gone} does not exist" in log and f"the policy {never} does not exist" in log


def test_a_role_without_a_boundary_is_unchanged(enforced, bounded):
    b = bounded
    iam, role = b["iam"], f"pb-none-{b['run']}"
    sm = role_session(enforced, b, "pb-none")
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    assert sm.get_secret_value(SecretId=b["two"])["SecretString"] == "value-two"
    # the same session once the role has a boundary (checked on every request, as in AWS) ...
    only_one = boundary_policy(b, "later", [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": b["one"]}])
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=only_one)
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
    # ... and once it is removed again
    iam.delete_role_permissions_boundary(RoleName=role)
    assert sm.get_secret_value(SecretId=b["two"])["SecretString"] == "value-two"


def test_a_user_with_a_boundary_is_limited_too(enforced, bounded):
    b = bounded
    iam, name = b["iam"], f"pb-user-{b['run']}"
    only_one = boundary_policy(b, "user-only-one", [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": b["one"]}])
    created = iam.create_user(UserName=name, PermissionsBoundary=only_one)["User"]
    assert created["PermissionsBoundary"]["PermissionsBoundaryArn"] == only_one
    assert iam.get_user(UserName=name)["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": only_one}
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=read_policy(b["one"], b["two"]))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    sm = enforced.client("secretsmanager", Secret(aws_access_key_id=key["AccessKeyId"],
                                                  aws_secret_access_key=key["SecretAccessKey"]))
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
    assert f"not allowed by the permissions boundary {only_one}" in enforced.log()
    iam.delete_user_permissions_boundary(UserName=name)
    assert "PermissionsBoundary" not in iam.get_user(UserName=name)["User"]
    assert sm.get_secret_value(SecretId=b["two"])["SecretString"] == "value-two"
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=only_one)
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
    with pytest.raises(ClientError) as e:
        iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary="arn:aws:s3:::not-a-policy-arn")
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_a_pod_identity_session_of_a_bounded_role_is_limited(enforced, bounded):
    """eks-auth AssumeRoleForPodIdentity sessions (through the agent) are bounded the same way."""
    b = bounded
    iam, role, ns = b["iam"], f"pb-pod-{b['run']}", f"pb-{b['run']}"
    only_one = boundary_policy(b, "pod-only-one", [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": b["one"]}])
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST, PermissionsBoundary=only_one)["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=read_policy(b["one"], b["two"]))
    enforced.client("eks").create_pod_identity_association(
        clusterName="bootstrap-test", namespace=ns, serviceAccount="reader", roleArn=arn)
    sm = enforced.client("secretsmanager", agent_credentials(enforced, make_token(ns, "reader")))
    assert sm.get_secret_value(SecretId=b["one"])["SecretString"] == "value-one"
    sm_denied(lambda: sm.get_secret_value(SecretId=b["two"]))
