"""The IAM policy evaluator (awsstandin/policy.py) on its own: effects, matching, condition
operators, set operators, IfExists, missing keys, policy variables. No server."""

from __future__ import annotations

import pytest

from awsstandin import policy
from awsstandin.policy import ALLOW, DENY, NEUTRAL, Context

SECRET = "arn:aws:secretsmanager:us-west-2:123456789012:secret:team-a/db-AbCdEf"
POD_TAGS = {
    "aws:PrincipalTag/kubernetes-namespace": "team-a",
    "aws:PrincipalTag/kubernetes-pod-name": "web-0",
}


def doc(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(cond=None, action="secretsmanager:GetSecretValue", resource="*", **extra) -> dict:
    st = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if cond is not None:
        st["Condition"] = cond
    return st


def ev(cond, ctx: dict, multi=(), resource=SECRET, action="secretsmanager:GetSecretValue") -> str:
    return policy.evaluate([doc(allow(cond))], action, resource, Context(ctx, multi=multi))


def test_effects_and_explicit_deny_wins():
    ctx = Context()
    assert policy.evaluate([doc(allow())], "secretsmanager:GetSecretValue", SECRET, ctx) == ALLOW
    assert policy.evaluate([doc(allow(action="ssm:GetParameter"))], "secretsmanager:GetSecretValue", SECRET,
                           ctx) == NEUTRAL
    deny = {"Effect": "Deny", "Action": "secretsmanager:*", "Resource": SECRET}
    assert policy.evaluate([doc(allow(), deny)], "secretsmanager:GetSecretValue", SECRET, ctx) == DENY
    assert policy.evaluate([doc(allow()), doc(deny)], "secretsmanager:GetSecretValue", SECRET, ctx) == DENY
    # Statement as a single object, JSON text, URL-encoded JSON
    assert policy.evaluate(['{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}'],
                           "sts:AssumeRole", "*", ctx) == ALLOW
    assert policy.evaluate(["%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%7D%7D"],
                           "x:y", "*", ctx) == ALLOW


def test_action_and_resource_matching():
    ctx = Context()
    st = allow(action=["SecretsManager:Get*", "kms:Decrypt"],
               resource="arn:aws:secretsmanager:*:123456789012:secret:team-a/*")
    assert policy.evaluate([doc(st)], "secretsmanager:GetSecretValue", SECRET, ctx) == ALLOW
    assert policy.evaluate([doc(st)], "secretsmanager:PutSecretValue", SECRET, ctx) == NEUTRAL
    assert policy.evaluate([doc(st)], "secretsmanager:GetSecretValue", SECRET.replace("team-a", "team-b"),
                           ctx) == NEUTRAL
    # a wildcard does not cross ARN segments; ? is one character
    assert policy.evaluate([doc(allow(resource="arn:aws:secretsmanager:*:secret:team-a/*"))],
                           "secretsmanager:GetSecretValue", SECRET, ctx) == NEUTRAL
    assert policy.evaluate([doc(allow(resource=SECRET[:-1] + "?"))], "secretsmanager:GetSecretValue", SECRET,
                           ctx) == ALLOW
    nr = {"Effect": "Allow", "NotAction": "iam:*", "NotResource": SECRET}
    assert policy.evaluate([doc(nr)], "secretsmanager:GetSecretValue", SECRET, ctx) == NEUTRAL
    assert policy.evaluate([doc(nr)], "secretsmanager:GetSecretValue", SECRET + "x", ctx) == ALLOW
    assert policy.evaluate([doc(nr)], "iam:ListRoles", "*", ctx) == NEUTRAL


def test_principal_matching():
    svc = {"Service": "pods.eks.amazonaws.com"}
    ctx = Context()

    def trust(principal):
        return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})

    assert policy.evaluate([trust(svc)], "sts:AssumeRole", "*", ctx, svc) == ALLOW
    assert policy.evaluate([trust({"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]})],
                           "sts:AssumeRole", "*", ctx, svc) == ALLOW
    assert policy.evaluate([trust("*")], "sts:AssumeRole", "*", ctx, svc) == ALLOW
    assert policy.evaluate([trust({"AWS": "*"})], "sts:AssumeRole", "*", ctx, svc) == ALLOW
    assert policy.evaluate([trust({"Service": "ec2.amazonaws.com"})], "sts:AssumeRole", "*", ctx, svc) == NEUTRAL
    assert policy.evaluate([trust({"AWS": "arn:aws:iam::123456789012:root"})], "sts:AssumeRole", "*", ctx,
                           svc) == NEUTRAL
    assert policy.evaluate([doc({"Effect": "Allow", "Action": "sts:AssumeRole"})], "sts:AssumeRole", "*", ctx,
                           svc) == NEUTRAL  # no Principal in a trust statement: nobody


@pytest.mark.parametrize("op, key, values, ctx, expected", [
    ("StringEquals", "aws:PrincipalTag/kubernetes-namespace", "team-a", POD_TAGS, ALLOW),
    ("StringEquals", "aws:PrincipalTag/kubernetes-namespace", ["team-b", "team-a"], POD_TAGS, ALLOW),
    ("StringEquals", "aws:PrincipalTag/kubernetes-namespace", "Team-A", POD_TAGS, NEUTRAL),  # values: case
    ("StringEquals", "AWS:PRINCIPALTAG/Kubernetes-Namespace", "team-a", POD_TAGS, ALLOW),  # keys: no case
    ("StringEquals", "aws:PrincipalTag/missing", "team-a", POD_TAGS, NEUTRAL),
    ("StringNotEquals", "aws:PrincipalTag/kubernetes-namespace", "team-a", POD_TAGS, NEUTRAL),
    ("StringNotEquals", "aws:PrincipalTag/kubernetes-namespace", ["team-b", "team-c"], POD_TAGS, ALLOW),
    ("StringNotEquals", "aws:PrincipalTag/missing", "x", POD_TAGS, ALLOW),  # negated: a missing key holds
    ("StringEqualsIgnoreCase", "aws:PrincipalTag/kubernetes-namespace", "TEAM-A", POD_TAGS, ALLOW),
    ("StringNotEqualsIgnoreCase", "aws:PrincipalTag/kubernetes-namespace", "TEAM-A", POD_TAGS, NEUTRAL),
    ("StringLike", "aws:PrincipalTag/kubernetes-pod-name", "web-*", POD_TAGS, ALLOW),
    ("StringLike", "aws:PrincipalTag/kubernetes-pod-name", "web-?", POD_TAGS, ALLOW),
    ("StringLike", "aws:PrincipalTag/kubernetes-pod-name", "api-*", POD_TAGS, NEUTRAL),
    ("StringNotLike", "aws:PrincipalTag/kubernetes-pod-name", "web-*", POD_TAGS, NEUTRAL),
    ("StringNotLike", "aws:PrincipalTag/kubernetes-pod-name", ["api-*", "db-*"], POD_TAGS, ALLOW),
    ("StringLikeIfExists", "aws:PrincipalTag/missing", "nope", POD_TAGS, ALLOW),
    ("StringEqualsIfExists", "aws:PrincipalTag/kubernetes-namespace", "team-b", POD_TAGS, NEUTRAL),
    ("ArnEquals", "aws:SourceArn", "arn:aws:eks:us-west-2:123456789012:cluster/demo",
     {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/demo"}, ALLOW),
    ("ArnLike", "aws:SourceArn", "arn:aws:eks:*:123456789012:cluster/*",
     {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/demo"}, ALLOW),
    ("ArnLike", "aws:SourceArn", "arn:aws:eks:*:999999999999:cluster/*",
     {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/demo"}, NEUTRAL),
    ("ArnNotEquals", "aws:SourceArn", "arn:aws:eks:us-west-2:123456789012:cluster/other",
     {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/demo"}, ALLOW),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:eks:*:*:cluster/de*",
     {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/demo"}, NEUTRAL),
    ("ArnLike", "aws:SourceArn", "arn:aws:eks:*", {"aws:SourceArn": "not-an-arn"}, NEUTRAL),
    ("Null", "aws:PrincipalTag/missing", "true", POD_TAGS, ALLOW),
    ("Null", "aws:PrincipalTag/missing", "false", POD_TAGS, NEUTRAL),
    ("Null", "aws:PrincipalTag/kubernetes-namespace", "false", POD_TAGS, ALLOW),
    ("Null", "aws:PrincipalTag/kubernetes-namespace", True, POD_TAGS, NEUTRAL),
    ("Bool", "aws:ViaAWSService", "false", {"aws:ViaAWSService": False}, ALLOW),
    ("Bool", "aws:ViaAWSService", True, {"aws:ViaAWSService": "false"}, NEUTRAL),
    ("BoolIfExists", "aws:ViaAWSService", "true", {}, ALLOW),
    ("NumericLessThan", "aws:EpochTime", "2000000000", {"aws:EpochTime": "1700000000"}, ALLOW),
    ("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
     ALLOW),
    ("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:SourceIp": "10.1.2.3"}, ALLOW),
    ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:SourceIp": "10.1.2.3"}, NEUTRAL),
    ("StringEqualsNoSuchOperator", "aws:PrincipalTag/kubernetes-namespace", "team-a", POD_TAGS, NEUTRAL),
])
def test_condition_operators(op, key, values, ctx, expected):
    assert ev({op: {key: values}}, ctx) == expected


TAGKEYS = ["eks-cluster-name", "kubernetes-namespace"]


@pytest.mark.parametrize("op, values, ctx_keys, expected", [
    ("ForAllValues:StringEquals", TAGKEYS + ["kubernetes-pod-name"], TAGKEYS, ALLOW),
    ("ForAllValues:StringEquals", ["eks-cluster-name"], TAGKEYS, NEUTRAL),
    ("ForAllValues:StringEquals", ["x"], None, ALLOW),  # missing key: ForAllValues holds
    ("ForAllValues:StringEquals", ["x"], [], ALLOW),
    ("ForAnyValue:StringEquals", ["kubernetes-namespace"], TAGKEYS, ALLOW),
    ("ForAnyValue:StringEquals", ["x"], TAGKEYS, NEUTRAL),
    ("ForAnyValue:StringEquals", ["x"], None, NEUTRAL),  # missing key: ForAnyValue fails
    ("ForAnyValue:StringLike", ["kubernetes-*"], TAGKEYS, ALLOW),
    ("ForAllValues:StringLike", ["kubernetes-*"], TAGKEYS, NEUTRAL),
    ("ForAnyValue:StringNotEquals", TAGKEYS, TAGKEYS, NEUTRAL),
    ("ForAnyValue:StringNotEquals", ["eks-cluster-name"], TAGKEYS, ALLOW),
    ("ForAllValues:StringNotEquals", ["x", "y"], TAGKEYS, ALLOW),
    ("ForAllValues:StringNotEquals", ["kubernetes-namespace"], TAGKEYS, NEUTRAL),
    ("ForAnyValue:StringEqualsIfExists", ["x"], None, ALLOW),
])
def test_set_operators(op, values, ctx_keys, expected):
    ctx = {} if ctx_keys is None else {"aws:TagKeys": ctx_keys}
    assert ev({op: {"aws:TagKeys": values}}, ctx, multi=["aws:TagKeys"]) == expected


def test_and_across_keys_and_operators_or_across_values():
    ctx = {**POD_TAGS, "aws:SourceAccount": "123456789012"}
    both = {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": ["team-b", "team-a"],
                             "aws:SourceAccount": "123456789012"},
            "StringLike": {"aws:PrincipalTag/kubernetes-pod-name": "web-*"}}
    assert ev(both, ctx) == ALLOW
    both["StringLike"]["aws:PrincipalTag/kubernetes-pod-name"] = "api-*"
    assert ev(both, ctx) == NEUTRAL
    assert ev({"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "team-a",
                                "aws:SourceAccount": "999999999999"}}, ctx) == NEUTRAL


def test_policy_variables():
    ctx = {**POD_TAGS, "secretsmanager:ResourceTag/kubernetes-namespace": "team-a"}
    same_ns = {"StringEquals": {"secretsmanager:ResourceTag/kubernetes-namespace":
                                "${aws:PrincipalTag/kubernetes-namespace}"}}
    assert ev(same_ns, ctx) == ALLOW
    assert ev(same_ns, {**ctx, "secretsmanager:ResourceTag/kubernetes-namespace": "team-b"}) == NEUTRAL
    # a missing variable matches nothing (not even a missing key / an empty value)
    assert ev(same_ns, {"secretsmanager:ResourceTag/kubernetes-namespace": "team-a"}) == NEUTRAL
    assert ev({"StringEquals": {"aws:PrincipalTag/x": "${aws:PrincipalTag/y}"}}, {"aws:PrincipalTag/x": ""}) == NEUTRAL
    # defaults, variables in StringLike are literal, ${*} is a literal *
    assert ev({"StringEquals": {"secretsmanager:ResourceTag/kubernetes-namespace":
                                "${aws:PrincipalTag/none, 'team-a'}"}}, ctx) == ALLOW
    assert ev({"StringLike": {"aws:PrincipalTag/kubernetes-pod-name": "${aws:PrincipalTag/kubernetes-pod-name}"}},
              {"aws:PrincipalTag/kubernetes-pod-name": "w*b"}) == ALLOW
    assert ev({"StringLike": {"aws:PrincipalTag/kubernetes-pod-name": "${*}*"}}, POD_TAGS) == NEUTRAL
    assert ev({"StringLike": {"aws:PrincipalTag/kubernetes-pod-name": "${*}*"}},
              {"aws:PrincipalTag/kubernetes-pod-name": "*web"}) == ALLOW
    # in Resource
    res = "arn:aws:secretsmanager:us-west-2:123456789012:secret:${aws:PrincipalTag/kubernetes-namespace}/*"
    st = allow(resource=res)
    act = "secretsmanager:GetSecretValue"
    assert policy.evaluate([doc(st)], act, SECRET, Context(POD_TAGS)) == ALLOW
    assert policy.evaluate([doc(st)], act, SECRET.replace("team-a", "team-b"), Context(POD_TAGS)) == NEUTRAL
    assert policy.evaluate([doc(st)], act, SECRET, Context()) == NEUTRAL
    # a variable's value is literal in Resource too
    tricky = Context({"aws:PrincipalTag/kubernetes-namespace": "*"})
    assert policy.evaluate([doc(st)], act, SECRET, tricky) == NEUTRAL


def test_unknown_operator_fails_closed():
    bad = {"StringSoundsLike": {"aws:PrincipalTag/kubernetes-namespace": "team-a"}}
    assert ev(bad, POD_TAGS) == NEUTRAL  # an Allow does not apply
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": bad}
    assert policy.evaluate([doc(allow(), deny)], "secretsmanager:GetSecretValue", SECRET, Context(POD_TAGS)) == DENY
    assert ev({"ForSomeValues:StringEquals": {"aws:TagKeys": "x"}}, {}) == NEUTRAL
