"""--enforce-iam on IAM itself: a policy scoped to `role/PATH/*` with an iam:PermissionsBoundary
condition (the shape of `bootstrap controller --print-iam-policy`) lets its holder create and
change roles only under the path and only with the boundary, as in AWS."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from standin_testlib import TRUST

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
