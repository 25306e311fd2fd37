"""EKS-style cluster authentication: a TokenReview webhook for `k8s-aws-v1.` tokens.

The local kube-apiserver sends bearer tokens it does not know to this webhook, as EKS's
aws-iam-authenticator receives them. A token is `k8s-aws-v1.` + base64url(no padding) of an
STS GetCallerIdentity URL presigned with SigV4 over the headers `host` and
`x-k8s-aws-id: <cluster>`. The webhook checks the URL's shape, expiry and cluster, finds the
access key in moto (an IAM user's key, or temporary credentials from an assumed role),
recomputes the SigV4 signature with its secret and compares. A valid token authenticates as
the caller's ARN; the environment's admin user (the "cluster creator") is mapped to
system:masters, like an EKS cluster-admin access entry; anyone else has no groups.
"""
import base64
import datetime
import hashlib
import hmac
import logging
import urllib.parse

log = logging.getLogger("aws-standin.eks-token")

PREFIX = "k8s-aws-v1."
MAX_EXPIRES = 15 * 60
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class TokenError(Exception):
    pass


def _decode(token: str) -> urllib.parse.SplitResult:
    if not token.startswith(PREFIX):
        raise TokenError("not a k8s-aws-v1 token")
    raw = token[len(PREFIX):]
    try:
        url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError(f"token is not base64url: {e}") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise TokenError("token does not hold a URL")
    return parts


def _quote(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


def _signature(secret: str, method: str, host: str, path: str, params, signed_headers, headers, payload_hash):
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params))
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    canonical = "\n".join([method, path or "/", query, canonical_headers, ";".join(signed_headers), payload_hash])
    p = dict(params)
    date, scope = p["X-Amz-Date"], p["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _lookup_key(account_id: str, region: str, access_key_id: str, session_token):
    """(secret, arn) of a moto access key, or raise TokenError."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMUserAccessKey
    from moto.utilities.utils import get_partition

    partition = get_partition(region)
    headers = {"X-Amz-Security-Token": session_token} if session_token else {}
    for kind in (IAMUserAccessKey, AssumedRoleAccessKey):
        try:
            key = kind(account_id, partition, access_key_id, headers if kind is IAMUserAccessKey else {"X-Amz-Security-Token": session_token or ""})
            return key._secret_access_key, key.arn
        except Exception:  # noqa: BLE001 - moto raises its own types for "not this kind"
            continue
    raise TokenError("the access key in the token is unknown or its session token does not match")


def authenticate(token: str, cluster: str, account_id: str, region: str, admins: set, now=None):
    """Returns the TokenReview status for `token` (never raises)."""
    try:
        parts = _decode(token)
        params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        p = dict(params)
        if p.get("Action") != "GetCallerIdentity":
            raise TokenError("the presigned request is not sts:GetCallerIdentity")
        if p.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise TokenError("the presigned request is not signed with AWS4-HMAC-SHA256")
        for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"):
            if k not in p:
                raise TokenError(f"the presigned request lacks {k}")
        signed = p["X-Amz-SignedHeaders"].split(";")
        if "x-k8s-aws-id" not in signed or "host" not in signed:
            raise TokenError("the token must sign the headers host and x-k8s-aws-id")
        signed_at = datetime.datetime.strptime(p["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        expires = min(int(p["X-Amz-Expires"]), MAX_EXPIRES)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        if now > signed_at + datetime.timedelta(seconds=expires):
            raise TokenError("the token has expired")
        if signed_at - now > datetime.timedelta(minutes=5):
            raise TokenError("the token is dated in the future")
        access_key = p["X-Amz-Credential"].split("/", 1)[0]
        secret, arn = _lookup_key(account_id, region, access_key, p.get("X-Amz-Security-Token"))
        headers = {"host": parts.netloc, "x-k8s-aws-id": cluster}
        unsigned = [(k, v) for k, v in params if k != "X-Amz-Signature"]
        want = p["X-Amz-Signature"]
        # SDKs presign with either the empty body's hash or UNSIGNED-PAYLOAD.
        if not any(
            hmac.compare_digest(_signature(secret, "GET", parts.netloc, parts.path, unsigned, signed, headers, h), want)
            for h in (EMPTY_SHA256, "UNSIGNED-PAYLOAD")
        ):
            raise TokenError(f"the signature does not match (is the token for cluster {cluster}?)")
    except TokenError as e:
        log.info("token rejected: %s", e)
        return {"authenticated": False, "error": str(e)}
    except (ValueError, KeyError) as e:
        log.info("token rejected: malformed: %s", e)
        return {"authenticated": False, "error": f"malformed token: {e}"}
    name = arn.rsplit("/", 1)[-1] if ":user/" in arn else arn.split("/")[-2] if ":assumed-role/" in arn else arn
    is_admin = arn in admins or name in admins
    log.info("token accepted for %s%s", arn, " (cluster admin)" if is_admin else "")
    return {
        "authenticated": True,
        "user": {
            "username": arn,
            "uid": f"aws-iam-authenticator:{account_id}:{access_key}",
            "groups": ["system:masters"] if is_admin else [],
            "extra": {"arn": [arn], "accessKeyId": [access_key]},
        },
    }
