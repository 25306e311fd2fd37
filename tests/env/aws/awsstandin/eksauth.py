"""eks-auth AssumeRoleForPodIdentity.

token -> TokenReview (audience pods.eks.amazonaws.com) -> namespace/service account -> the
cluster's Pod Identity association -> the role must exist in moto IAM and trust
pods.eks.amazonaws.com -> credentials from moto's STS backend (so moto accepts them as that role).

Error codes and HTTP statuses follow botocore's eks-auth model (which the SDKs are generated
from): InvalidTokenException/ExpiredTokenException/AccessDeniedException/InvalidParameterException
400, ResourceNotFoundException 404, ThrottlingException 429, InternalServerException 500.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timezone
from urllib.parse import unquote

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

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
        return identity_from_review(status, self.audience)


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


def _as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def trust_allows(policy_doc: str, actions: list[str]) -> bool:
    """Does an Allow statement for Service pods.eks.amazonaws.com cover every action?
    (No Deny statement may cover it.)"""
    try:
        doc = json.loads(unquote(policy_doc) if policy_doc.lstrip().startswith("%") else policy_doc)
    except ValueError:
        return False
    covered = {a: False for a in actions}
    for st in _as_list(doc.get("Statement", [])):
        principal = st.get("Principal") or {}
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        if principal != "*" and SERVICE_PRINCIPAL not in services:
            continue
        for a in actions:
            if any(fnmatch.fnmatchcase(a.lower(), p.lower()) for p in _as_list(st.get("Action", []))):
                if st.get("Effect") == "Deny":
                    return False
                if st.get("Effect") == "Allow" and not st.get("Condition"):
                    covered[a] = True
    return all(covered.values())


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
        actions = ["sts:AssumeRole"] + ([] if assoc.get("disableSessionTags") else ["sts:TagSession"])
        if not trust_allows(role.assume_role_policy_document, actions):
            raise EksAuthError(
                400, "AccessDeniedException",
                f"The trust policy of role {role_arn} does not allow {SERVICE_PRINCIPAL} to perform {' and '.join(actions)}",
            )
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
