"""eks-auth AssumeRoleForPodIdentity.

token -> TokenReview (audience pods.eks.amazonaws.com) -> namespace/service account -> the
cluster's Pod Identity association -> the role must exist in moto IAM and its trust policy must
allow pods.eks.amazonaws.com sts:AssumeRole and (with session tags) sts:TagSession, evaluated like
STS (policy.py) with the context aws:SourceAccount, aws:SourceArn (the cluster ARN),
aws:RequestTag/<tag> and aws:TagKeys of the session tags Pod Identity sets -> credentials from
moto's STS backend (so moto accepts them as that role), carrying those session tags.

Error codes and HTTP statuses follow botocore's eks-auth model (which the SDKs are generated
from): InvalidTokenException/ExpiredTokenException/AccessDeniedException/InvalidParameterException
400, ResourceNotFoundException 404, ThrottlingException 429, InternalServerException 500.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timezone

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

from . import policy
from .kube import KubeClient, KubeError

log = logging.getLogger("aws-standin.eks-auth")

AUDIENCE = "pods.eks.amazonaws.com"
SERVICE_PRINCIPAL = "pods.eks.amazonaws.com"
CREDENTIAL_SECONDS = 6 * 3600  # Pod Identity credentials last 6 hours


class EksAuthError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Identity:
    namespace: str
    service_account: str
    pod_name: str | None = None
    pod_uid: str | None = None


class TokenVerifier:
    def verify(self, token: str) -> Identity:  # pragma: no cover - interface
        raise NotImplementedError


class KubeTokenVerifier(TokenVerifier):
    """Validates a service-account token with a TokenReview against the cluster's apiserver."""

    def __init__(self, kube: KubeClient | None, audience: str = AUDIENCE):
        self.kube = kube
        self.audience = audience

    def verify(self, token: str) -> Identity:
        if self.kube is None:
            raise EksAuthError(500, "InternalServerException", "The stand-in has no kubeconfig to review tokens with")
        try:
            status = self.kube.token_review(token, [self.audience])
        except KubeError as e:
            log.warning("TokenReview failed: %s", e)
            raise EksAuthError(500, "InternalServerException", "Could not review the token with the cluster") from None
        ident = identity_from_review(status, self.audience)
        if ident.pod_name is None or ident.pod_uid is None:  # an apiserver without pod extras
            name, uid = pod_from_token(token)
            ident.pod_name = ident.pod_name or name
            ident.pod_uid = ident.pod_uid or uid
        return ident


def identity_from_review(status: dict, audience: str = AUDIENCE) -> Identity:
    if not status.get("authenticated"):
        err = str(status.get("error", ""))
        if "expired" in err.lower():
            raise EksAuthError(400, "ExpiredTokenException", "The provided token has expired")
        raise EksAuthError(400, "InvalidTokenException", "The provided token is invalid")
    if status.get("audiences") is not None and audience not in status["audiences"]:
        raise EksAuthError(400, "InvalidTokenException", f"The token's audience is not {audience}")
    user = status.get("user") or {}
    m = re.match(r"^system:serviceaccount:([^:]+):([^:]+)$", user.get("username", ""))
    if not m:
        raise EksAuthError(400, "InvalidTokenException", "The token is not a service account token")
    extra = user.get("extra") or {}

    def first(k):
        v = extra.get(k)
        return v[0] if isinstance(v, list) and v else None

    return Identity(m.group(1), m.group(2), first("authentication.kubernetes.io/pod-name"),
                    first("authentication.kubernetes.io/pod-uid"))


class StaticTokenVerifier(TokenVerifier):
    """For tests: a fixed token -> Identity table; unknown tokens are invalid."""

    def __init__(self, table: dict[str, Identity] | None = None, expired: set[str] | None = None):
        self.table = dict(table or {})
        self.expired = set(expired or ())

    def verify(self, token: str) -> Identity:
        if token in self.expired:
            raise EksAuthError(400, "ExpiredTokenException", "The provided token has expired")
        if token not in self.table:
            raise EksAuthError(400, "InvalidTokenException", "The provided token is invalid")
        return self.table[token]


def pod_from_token(token: str) -> tuple[str | None, str | None]:
    """The pod name and uid of a pod-bound service-account token (its `kubernetes.io.pod`
    claim), read without verification: only used after the token was reviewed."""
    try:
        seg = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
        pod = (claims.get("kubernetes.io") or {}).get("pod") or {}
        return pod.get("name"), pod.get("uid")
    except Exception:
        return None, None


def session_tags(cluster_arn: str, cluster_name: str, ident: Identity) -> dict[str, str]:
    """The session tags EKS Pod Identity sets (REFERENCE §4); pod tags only for pod-bound tokens."""
    tags = {
        "eks-cluster-arn": cluster_arn,
        "eks-cluster-name": cluster_name,
        "kubernetes-namespace": ident.namespace,
        "kubernetes-service-account": ident.service_account,
        "kubernetes-pod-name": ident.pod_name,
        "kubernetes-pod-uid": ident.pod_uid,
    }
    return {k: v for k, v in tags.items() if v}


def trust_context(account_id: str, cluster_arn: str, tags: dict[str, str] | None) -> policy.Context:
    """What STS sees when EKS Auth assumes the role: aws:SourceAccount/aws:SourceArn, and with
    session tags aws:RequestTag/<key> and aws:TagKeys."""
    ctx = policy.Context({"aws:SourceAccount": account_id, "aws:SourceArn": cluster_arn}, multi=["aws:TagKeys"])
    if tags:
        for k, v in tags.items():
            ctx.set(f"aws:RequestTag/{k}", v)
        ctx.set("aws:TagKeys", list(tags))
    return ctx


def trust_decision(policy_doc: str, role_arn: str, actions: list[str], ctx: policy.Context) -> tuple[bool, str | None]:
    """Evaluate the role's trust policy like STS for principal Service pods.eks.amazonaws.com:
    every action must be allowed and none explicitly denied. -> (allowed, explicitly denied action)."""
    try:
        doc = policy.load(policy_doc)
    except ValueError:
        return False, None
    principal = {"Service": SERVICE_PRINCIPAL}
    ok = True
    for a in actions:
        d = policy.evaluate([doc], a, role_arn, ctx, principal)
        if d == policy.DENY:
            return False, a
        ok = ok and d == policy.ALLOW
    return ok, None


class EksAuth:
    def __init__(self, eks, account_id: str, verifier: TokenVerifier):
        self.eks = eks
        self.account_id = account_id
        self.verifier = verifier

    def assume(self, region: str, cluster_name: str, token: str | None) -> dict:
        if not token or not isinstance(token, str):
            raise EksAuthError(400, "InvalidParameterException", "token is required")
        if not self.eks.cluster_exists(region, cluster_name):
            raise EksAuthError(404, "ResourceNotFoundException", f"No cluster found for name: {cluster_name}.")
        ident = self.verifier.verify(token)
        assoc = self.eks.association_for(region, cluster_name, ident.namespace, ident.service_account)
        if assoc is None:
            raise EksAuthError(
                404, "ResourceNotFoundException",
                f"No Pod Identity Association exists for service account {ident.service_account} "
                f"in namespace {ident.namespace} of cluster {cluster_name}",
            )
        role_arn = assoc["roleArn"]
        partition = get_partition(region)
        iam = iam_backends[self.account_id][partition]
        try:
            role = iam.get_role_by_arn(role_arn)
        except Exception:
            raise EksAuthError(400, "AccessDeniedException", f"Role {role_arn} does not exist or cannot be assumed") from None
        cluster_arn = self.eks.cluster_arn(region, cluster_name)
        tags = None if assoc.get("disableSessionTags") else session_tags(cluster_arn, cluster_name, ident)
        actions = ["sts:AssumeRole"] + ([] if tags is None else ["sts:TagSession"])
        ctx = trust_context(self.account_id, cluster_arn, tags)
        allowed, denied_by = trust_decision(role.assume_role_policy_document, role_arn, actions, ctx)
        if not allowed:
            log.info("AssumeRoleForPodIdentity %s/%s on %s: trust of %s denies (context keys %s)",
                     ident.namespace, ident.service_account, cluster_name, role_arn, ctx.keys())
            if denied_by:
                msg = (f"The trust policy of role {role_arn} explicitly denies {SERVICE_PRINCIPAL} "
                       f"{denied_by}")
            else:
                msg = (f"The trust policy of role {role_arn} does not allow {SERVICE_PRINCIPAL} to perform "
                       f"{' and '.join(actions)}")
            raise EksAuthError(400, "AccessDeniedException", msg)
        final_arn = assoc.get("targetRoleArn") or role_arn
        session = f"eks-{cluster_name}-{ident.pod_name or ident.service_account}-{uuid.uuid4()}"[:64]
        sts = sts_backends[self.account_id][partition]
        assumed = sts.assume_role(
            region_name=region,
            role_session_name=session,
            role_arn=final_arn,
            policy=assoc.get("policy") or "",
            duration=CREDENTIAL_SECONDS,
            external_id=assoc.get("externalId") or "",
        )
        # moto's AssumedRole has no tags: carry them here; iam.py reads them as aws:PrincipalTag/*
        assumed.session_tags = dict(tags or {})
        log.info("AssumeRoleForPodIdentity %s/%s on %s -> %s", ident.namespace, ident.service_account,
                 cluster_name, final_arn)
        return {
            "subject": {"namespace": ident.namespace, "serviceAccount": ident.service_account},
            "audience": AUDIENCE,
            "podIdentityAssociation": {
                "associationArn": assoc["associationArn"],
                "associationId": assoc["associationId"],
            },
            "assumedRoleUser": {"arn": assumed.arn, "assumeRoleId": assumed.user_id},
            "credentials": {
                "sessionToken": assumed.session_token,
                "secretAccessKey": assumed.secret_access_key,
                "accessKeyId": assumed.access_key_id,
                "expiration": assumed.expiration.replace(tzinfo=timezone.utc).timestamp(),
            },
        }
