"""moto IAM access control (--enforce-iam) and the patches that make resource-scoped policies work.

moto authorizes each action against the resource returned by the response class's
`_determine_resource` (Resource "*" when the class has none). Secrets Manager and SSM have
none in moto 5.2.5, so an ARN-scoped policy would deny even the allowed secret. We add:
- SecretsManagerResponse._determine_resource: the ARN of the request's SecretId (names and
  partial ARNs resolved through the backend); BatchGetSecretValue additionally checks
  secretsmanager:GetSecretValue per secret and reports denied ones in Errors (like AWS).
- SimpleSystemManagerResponse._determine_resource: parameter ARNs (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME);
  GetParameters checks every name (any denied -> AccessDeniedException, like AWS).
- STS AssumeRoleWithWebIdentity/AssumeRoleWithSAML are unsigned in AWS; moto demanded a
  signature (a KeyError and an empty 500): they skip the check here.
- IAMPolicyStatement._check_principal: moto raises TypeError on trust policies whose Principal
  has no "AWS" key (e.g. {"Service": "pods.eks.amazonaws.com"}); treat that as "not this principal".
- IamResponse._determine_resource: a role's ARN (with its path; CreateRole: the Path and
  RoleName asked for) for the actions on a role, a policy's ARN for those on a policy, so
  that a policy scoped to `role/PATH/*` means what it does in AWS (moto: existing roles' only,
  "*" for CreateRole and the rest). The context
  key iam:PermissionsBoundary is the boundary asked for (CreateRole,
  PutRolePermissionsBoundary) or the role's current one (other role writes), as in AWS.
- EKSResponse._determine_resource: the cluster's ARN for /clusters/NAME... (moto: "*").
- IAMRequestBase.check_action_permitted: moto's condition support is a stub (StringEquals only,
  other operators and missing keys pass, no variables, no tags). Identity policies (and a role
  session's session policy) are evaluated by policy.py instead, with the context of
  request_context(): aws:PrincipalTag/<k> (role tags + the session tags eks-auth set), principal
  keys, and for secrets/parameters aws:ResourceTag/<k> and secretsmanager:/ssm: ResourceTag keys.
  Permissions boundaries are honoured (moto ignores them): when the caller's IAM role (for a role
  session: sts AssumeRole or eks-auth AssumeRoleForPodIdentity, the role found from the session)
  or IAM user has one, the effective permissions are the intersection of its identity policies
  and the boundary's default policy version, evaluated with the same context: an explicit Deny
  in the boundary denies, an action it does not Allow is denied (logged as "not allowed by the
  permissions boundary <arn>"), and a boundary whose policy cannot be found or read denies
  everything (fail closed; the reason is logged). Principals without a boundary are unchanged.
  moto's trust check for sts:AssumeRole on a role is kept as it was.
- Users' permissions boundaries, which moto 5.2.5 lacks: CreateUser's PermissionsBoundary,
  PutUserPermissionsBoundary, DeleteUserPermissionsBoundary (the ARN checked as moto checks a
  role's), and PermissionsBoundary in CreateUser/GetUser (not ListUsers), as in AWS.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading

log = logging.getLogger("aws-standin.iam")

# The request body as the client sent it, for the signature check (set per request by app.py).
RAW_BODY = threading.local()

ADMIN_USER = "bootstrap-test-admin"
ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def create_admin(account_id: str, region: str) -> tuple[str, str]:
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    iam = iam_backends[account_id][get_partition(region)]
    if ADMIN_USER not in iam.users:
        iam.create_user(region, ADMIN_USER)
        iam.put_user_policy(ADMIN_USER, "AdministratorAccess", ADMIN_POLICY)
    key = iam.create_access_key(ADMIN_USER)
    return key.access_key_id, key.secret_access_key


def _secret_arn(resp, secret_id: str) -> str:
    s = resp.backend.secrets.get(secret_id) if secret_id else None
    if s is not None:
        return s.arn
    if secret_id and secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{resp.region}:{resp.current_account}:secret:{secret_id or '*'}"


def _param_arn(resp, name: str) -> str:
    if name.startswith("arn:"):
        return name.split(":", 1)[0] and name
    name = name.split(":")[0]  # drop a :version / :label selector
    return f"arn:aws:ssm:{resp.region}:{resp.current_account}:parameter/{name.lstrip('/')}"


def _check_each(self, orig, resources) -> None:
    if isinstance(resources, list):
        if not resources:
            orig(self, "*")
        for r in resources:
            orig(self, r)
    else:
        orig(self, resources)


def _assumed_role(account_id: str, partition: str, access_key_id: str):
    from moto.sts.models import sts_backends

    for r in sts_backends[account_id][partition].assumed_roles:
        if r.access_key_id == access_key_id:
            return r
    return None


def _tag_dict(tags) -> dict[str, str]:
    if isinstance(tags, dict):  # {"k": "v"} or moto's {"k": {"Key": "k", "Value": "v"}}
        return {k: (v.get("Value", "") if isinstance(v, dict) else v) for k, v in tags.items()}
    return {t["Key"]: t.get("Value", "") for t in tags or [] if isinstance(t, dict) and "Key" in t}


def resource_tags(account_id: str, resource: str) -> tuple[str | None, dict[str, str]]:
    """(service, tags) of a Secrets Manager secret or SSM parameter ARN held by moto."""
    if not isinstance(resource, str) or not resource.startswith("arn:"):
        return None, {}
    parts = resource.split(":", 5)
    if len(parts) != 6:
        return None, {}
    service, region, account = parts[2], parts[3], parts[4] or account_id
    try:
        if service == "secretsmanager" and parts[5].startswith("secret:"):
            from moto.secretsmanager.models import secretsmanager_backends

            s = secretsmanager_backends[account][region].secrets.get(resource)
            return service, _tag_dict(getattr(s, "tags", None)) if s is not None else {}
        if service == "ssm" and parts[5].startswith("parameter/"):
            from moto.ssm.models import ssm_backends

            name = parts[5][len("parameter"):]
            store = ssm_backends[account][region]._resource_tags.get("Parameter", {})
            for n in (name, name.lstrip("/")):
                if n in store:
                    return service, _tag_dict(store[n])
            return service, {}
    except Exception as e:  # never fail a request over a tag lookup
        log.debug("tags of %s: %s", resource, e)
    return service, {}


def request_context(req, resource: str) -> "policy.Context":
    """The context keys for an identity-policy check of moto's IAMRequest `req` on `resource`:
    aws:PrincipalTag/<k> (a role session: the role's tags, overridden by the session's tags; a
    user: its tags), aws:PrincipalArn/Account/Type, aws:userid, aws:username, aws:RequestedRegion,
    aws:CurrentTime, aws:EpochTime; for a Secrets Manager secret or SSM parameter:
    aws:ResourceTag/<k> and secretsmanager:ResourceTag/<k> / ssm:resourceTag/<k>."""
    from moto.iam.access_control import AssumedRoleAccessKey
    from moto.utilities.utils import get_partition

    from . import policy

    now = datetime.datetime.now(datetime.timezone.utc)
    ctx = policy.Context({
        "aws:PrincipalAccount": req.account_id,
        "aws:RequestedRegion": req._region,
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
    })
    key = req._access_key
    partition = get_partition(req._region)
    principal_tags: dict[str, str] = {}
    if isinstance(key, AssumedRoleAccessKey):
        assumed = _assumed_role(req.account_id, partition, key._access_key_id)
        try:
            role = req.backend.get_role(key._owner_role_name)
            principal_tags.update(_tag_dict(role.tags))
            ctx.set("aws:PrincipalArn", role.arn)
        except Exception:
            pass
        if assumed is not None:
            principal_tags.update(getattr(assumed, "session_tags", None) or {})
            ctx.set("aws:userid", assumed.user_id)
        ctx.set("aws:PrincipalType", "AssumedRole")
    else:
        name = getattr(key, "_owner_user_name", None)
        if name:
            ctx.set("aws:PrincipalArn", key.arn)
            ctx.set("aws:username", name)
            ctx.set("aws:PrincipalType", "User")
            try:
                user = req.backend.get_user(name)
                ctx.set("aws:userid", user.id)
                principal_tags.update(_tag_dict(req.backend.list_user_tags(name)))
            except Exception:
                pass
    for k, v in principal_tags.items():
        ctx.set(f"aws:PrincipalTag/{k}", v)
    boundary = _permissions_boundary(req)
    if boundary:
        ctx.set("iam:PermissionsBoundary", boundary)
    service, rtags = resource_tags(req.account_id, resource)
    prefix = {"secretsmanager": "secretsmanager:ResourceTag", "ssm": "ssm:resourceTag"}.get(service or "")
    for k, v in rtags.items():
        ctx.set(f"aws:ResourceTag/{k}", v)
        if prefix:
            ctx.set(f"{prefix}/{k}", v)
    return ctx


def _param(req, name: str) -> str | None:
    """A query-protocol parameter of moto's IAMRequest (its data: name -> [values])."""
    v = (getattr(req, "_data", None) or {}).get(name)
    if isinstance(v, list):
        v = v[0] if v else None
    return v if isinstance(v, str) and v else None


def _permissions_boundary(req) -> str | None:
    """iam:PermissionsBoundary for an IAM request on a role: the one asked for, else the role's."""
    if not req._action.startswith("iam:"):
        return None
    if req._action in ("iam:CreateRole", "iam:PutRolePermissionsBoundary"):
        return _param(req, "PermissionsBoundary")
    name = _param(req, "RoleName")
    if not name:
        return None
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    try:
        backend = iam_backends[req.account_id][get_partition(req._region)]
        return backend.get_role(name).permissions_boundary_arn or None
    except Exception:
        return None


class BoundaryUnavailable(Exception):
    """The caller's permissions boundary cannot be established (the request is denied)."""


def _caller_boundary_arn(req) -> str | None:
    """The permissions boundary ARN of the caller of moto's IAMRequest `req`: a role session's
    role's (the role found from the session's record), or an IAM user's; None when it has none.
    Raises BoundaryUnavailable when the role or user cannot be found."""
    from moto.iam.access_control import AssumedRoleAccessKey
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    key = req._access_key
    partition = get_partition(req._region)
    if isinstance(key, AssumedRoleAccessKey):
        assumed = _assumed_role(req.account_id, partition, key._access_key_id)
        role_arn = getattr(assumed, "role_arn", None)
        role = None
        if role_arn:
            account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else req.account_id
            try:
                role = iam_backends[account or req.account_id][partition].get_role_by_arn(role_arn)
            except Exception:
                role = None
        if role is None:
            try:
                role = req.backend.get_role(key._owner_role_name)
            except Exception:
                raise BoundaryUnavailable(f"the session's role {role_arn or key._owner_role_name} "
                                          "was not found") from None
        return getattr(role, "permissions_boundary_arn", None) or None
    name = getattr(key, "_owner_user_name", None)
    if not name:
        return None
    try:
        user = req.backend.get_user(name)
    except Exception:
        raise BoundaryUnavailable(f"the user {name} was not found") from None
    return getattr(user, "permissions_boundary_arn", None) or None


def boundary_document(account_id: str, partition: str, arn: str):
    """The default version's document of the managed policy `arn` (a permissions boundary).
    Raises BoundaryUnavailable when there is no such policy or no readable default version."""
    from moto.iam.models import iam_backends

    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith("policy/"):
        raise BoundaryUnavailable(f"{arn!r} is not a managed policy ARN")
    try:
        managed = iam_backends[account_id][partition].get_policy(arn)
    except Exception:
        raise BoundaryUnavailable(f"the policy {arn} does not exist") from None
    default_id = getattr(managed, "default_version_id", None)
    version = next((v for v in getattr(managed, "versions", None) or [] if v.version_id == default_id), None)
    if version is None or not getattr(version, "document", None):
        raise BoundaryUnavailable(f"the policy {arn} has no default version ({default_id}) with a document")
    try:
        from . import policy

        return policy.load(version.document)
    except Exception as e:
        raise BoundaryUnavailable(f"the default version {default_id} of {arn} is unreadable "
                                  f"({type(e).__name__})") from None


def check_action_permitted(self, resource: str) -> None:
    """IAMRequestBase.check_action_permitted with our evaluator (policy.py) for the caller's
    identity policies, intersected with the caller's permissions boundary (a role session's
    role's or a user's: the default version of that managed policy; an explicit Deny in it
    denies, an action it does not allow is denied, a boundary that cannot be found or read
    denies) and a role session's session policy, then moto's own trust check for sts:AssumeRole
    on a role, as before."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMPolicy
    from moto.utilities.utils import get_partition

    from . import policy

    if self._action == "sts:GetCallerIdentity":  # always allowed, as in moto and AWS
        return
    docs = []
    for p in self._access_key.collect_policies():
        try:
            docs.append(IAMPolicy(p)._policy_json)
        except Exception as e:
            log.warning("unreadable policy skipped: %s", e)
    ctx = request_context(self, resource)
    decision = policy.evaluate(docs, self._action, resource, ctx)
    if decision == policy.DENY:
        self._raise_access_denied()
    permitted = decision == policy.ALLOW
    if permitted:
        boundary, doc = None, None
        try:
            boundary = _caller_boundary_arn(self)
            if boundary:
                doc = boundary_document(self.account_id, get_partition(self._region), boundary)
        except BoundaryUnavailable as e:
            log.warning("IAM: %s on %s denied: the permissions boundary of %s cannot be evaluated: %s",
                        self._action, resource, self._access_key.arn, e)
            self._raise_access_denied()
        if boundary:
            try:
                bdecision = policy.evaluate([doc], self._action, resource, ctx)
            except (ValueError, AttributeError, TypeError) as e:  # a malformed document: fail closed
                log.warning("IAM: %s on %s denied: the permissions boundary %s cannot be evaluated (%s)",
                            self._action, resource, boundary, type(e).__name__)
                bdecision = policy.DENY
            if bdecision != policy.ALLOW:
                log.info("IAM: %s on %s by %s not allowed by the permissions boundary %s (%s; context keys %s)",
                         self._action, resource, self._access_key.arn, boundary,
                         "explicit deny" if bdecision == policy.DENY else "no Allow", ctx.keys())
                self._raise_access_denied()
    if permitted and isinstance(self._access_key, AssumedRoleAccessKey):
        assumed = _assumed_role(self.account_id, get_partition(self._region), self._access_key._access_key_id)
        session_policy = getattr(assumed, "policy", None) if assumed is not None else None
        if session_policy:  # the effective permissions are the intersection
            try:
                permitted = policy.evaluate([session_policy], self._action, resource, ctx) == policy.ALLOW
            except ValueError:
                permitted = False
    if self._is_assuming_role_operation(resource):
        permitted = permitted and self._check_role_trust_relationship(resource)
    if not permitted:
        log.info("IAM: %s on %s not allowed (context keys %s)", self._action, resource, ctx.keys())
        self._raise_access_denied()


def patch_all() -> None:
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.access_control import IAMPolicyStatement, IAMRequest
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.ssm.responses import SimpleSystemManagerResponse as SSMResponse

    # --- Secrets Manager -------------------------------------------------------------------
    def sm_determine_resource(self) -> str:
        try:
            sid = self._get_param("SecretId")
            if sid:
                return _secret_arn(self, sid)
            name = self._get_param("Name")  # CreateSecret
            if name and self._get_action() == "CreateSecret":
                return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{name}-XXXXXX"
        except Exception as e:  # never break the request over this
            log.debug("secretsmanager resource: %s", e)
        return "*"

    SecretsManagerResponse._determine_resource = sm_determine_resource

    orig_batch = SecretsManagerResponse.batch_get_secret_value

    def batch_get_secret_value(self):
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if not enforcing:
            return orig_batch(self)

        caller = {}

        def allowed(arn: str) -> bool:
            req = IAMRequest(
                account_id=self.current_account, method=self.method, path=self.raw_path, data=self.data,
                body=self.raw_body, headers=self.headers, action="GetSecretValue",
            )
            caller["arn"] = req._access_key.arn
            try:
                req.check_action_permitted(arn)
                return True
            except AccessDeniedError:
                return False

        def denied(sid: str) -> dict:  # an entry of Errors, worded like AWS's
            return {
                "SecretId": sid,
                "ErrorCode": "AccessDeniedException",
                "Message": f"User: {caller.get('arn', 'caller')} is not authorized to perform: "
                           f"secretsmanager:GetSecretValue on resource: {sid}",
            }

        ids = self._get_param("SecretIdList", if_none=[])
        denied_errors = []
        if ids:
            keep = []
            for sid in ids:
                if allowed(_secret_arn(self, sid)):
                    keep.append(sid)
                else:
                    denied_errors.append(denied(sid))
            if not keep:
                return json.dumps({"SecretValues": [], "Errors": denied_errors})
            self.body = json.dumps({**json.loads(self.body or "{}"), "SecretIdList": keep})
            self._get_param_cache = None
            if hasattr(self, "params") and isinstance(getattr(self, "params", None), dict):
                self.params["SecretIdList"] = keep
        result = json.loads(orig_batch(self))
        if not ids:  # Filters: drop values the caller may not read
            kept = []
            for v in result.get("SecretValues", []):
                if allowed(v["ARN"]):
                    kept.append(v)
                else:
                    denied_errors.append(denied(v["ARN"]))
            result["SecretValues"] = kept
        result["Errors"] = list(result.get("Errors") or []) + denied_errors
        return json.dumps(result)

    SecretsManagerResponse.batch_get_secret_value = batch_get_secret_value

    # --- IAM ----------------------------------------------------------------------------------
    from moto.iam.responses import IamResponse

    def iam_determine_resource(self):
        try:
            account = self.current_account
            name = self._get_param("RoleName")
            if name:
                if self._get_action() == "CreateRole":
                    return f"arn:aws:iam::{account}:role{self._get_param('Path') or '/'}{name}"
                try:
                    return self.backend.get_role(name).arn
                except Exception:
                    return f"arn:aws:iam::{account}:role/{name}"
            policy_arn = self._get_param("PolicyArn")
            if policy_arn and not self._get_param("UserName"):
                return policy_arn
        except Exception as e:
            log.debug("iam resource: %s", e)
        return "*"

    IamResponse._determine_resource = iam_determine_resource

    # Users' permissions boundaries (moto 5.2.5 has none: CreateUser ignores PermissionsBoundary,
    # Put/DeleteUserPermissionsBoundary are missing, GetUser shows none): kept on the user as
    # permissions_boundary_arn, like moto's roles, and shown by CreateUser/GetUser as in AWS.
    from moto.iam.exceptions import IAMException
    from moto.core.responses import EmptyResult
    from moto.core.serialize import never_return, return_if_not_empty
    from moto.iam.models import User

    def _user_boundary(self):
        arn = getattr(self, "permissions_boundary_arn", None)
        if arn:
            return {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}
        return None

    User.permissions_boundary_arn = None
    User.permissions_boundary = property(_user_boundary)
    IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER.update({
        "CreateUserResponse.User.PermissionsBoundary": return_if_not_empty,
        "GetUserResponse.User.PermissionsBoundary": return_if_not_empty,
        "ListUsersResponse.Users.User.PermissionsBoundary": never_return,
    })

    def _valid_boundary(backend, arn):
        if not backend.policy_arn_regex.match(arn):
            raise IAMException("InvalidParameterValue", f"Value ({arn}) for parameter PermissionsBoundary is invalid.")
        return arn

    orig_create_user = IamResponse.create_user

    def create_user(self):
        arn = self._get_param("PermissionsBoundary")
        if arn:
            _valid_boundary(self.backend, arn)
        result = orig_create_user(self)
        if arn:
            self.backend.get_user(self._get_param("UserName")).permissions_boundary_arn = arn
        return result

    def put_user_permissions_boundary(self):
        user = self.backend.get_user(self._get_param("UserName"))
        user.permissions_boundary_arn = _valid_boundary(self.backend, self._get_param("PermissionsBoundary") or "")
        return EmptyResult()

    def delete_user_permissions_boundary(self):
        self.backend.get_user(self._get_param("UserName")).permissions_boundary_arn = None
        return EmptyResult()

    IamResponse.create_user = create_user
    IamResponse.put_user_permissions_boundary = put_user_permissions_boundary
    IamResponse.delete_user_permissions_boundary = delete_user_permissions_boundary

    # --- EKS (moto's own routes: DescribeCluster, ListClusters, ...) ---------------------------
    # moto authorizes them on "*"; AWS on the cluster's ARN (as app.py does for our routes).
    import re
    from urllib.parse import urlparse

    from moto.eks.responses import EKSResponse

    def eks_determine_resource(self):
        m = re.match(r"^/clusters/([^/]+)", urlparse(self.uri).path or "")
        if m:
            return f"arn:aws:eks:{self.region}:{self.current_account}:cluster/{m.group(1)}"
        return "*"

    EKSResponse._determine_resource = eks_determine_resource

    # --- SSM ----------------------------------------------------------------------------------
    def ssm_determine_resource(self):
        try:
            action = self._get_action()
            if action == "GetParameters" or action == "DeleteParameters":
                return [_param_arn(self, n) for n in (self._get_param("Names") or [])]
            if action == "GetParametersByPath":
                return _param_arn(self, self._get_param("Path") or "/")
            name = self._get_param("Name")
            if name:
                return _param_arn(self, name)
        except Exception as e:
            log.debug("ssm resource: %s", e)
        return "*"

    SSMResponse._determine_resource = ssm_determine_resource
    for cls in (SSMResponse, SecretsManagerResponse):
        orig = cls._authenticate_and_authorize_normal_action

        def checked(self, resource="*", _orig=orig):
            _check_each(self, _orig, resource)

        cls._authenticate_and_authorize_normal_action = checked

    # --- signature check of body-less REST requests -----------------------------------------
    # moto rebuilds the signed request with `data=self._body or self._data`; for a GET with no
    # body (every EKS Describe/List), _data is a dict (the headers) that AWSRequest url-encodes
    # into a body, so the payload hash and the signature never match. Sign the raw body.
    from botocore.awsrequest import AWSRequest
    from moto.iam.access_control import IAMRequestBase

    def _create_aws_request(self):
        signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed_headers, self._headers)
        ctype = next((v for k, v in self._headers.items() if k.lower() == "content-type"), "") or ""
        raw = getattr(RAW_BODY, "value", None)
        if raw:
            data = raw  # the bytes the client signed (see app.py)
        elif self._body or ctype.startswith("application/x-www-form-urlencoded"):
            data = self._body or self._data  # moto's behaviour (query protocols: the form)
        else:
            data = b""
        request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    IAMRequestBase._create_aws_request = _create_aws_request

    # --- identity policies: our evaluator, with principal/resource tags and variables --------
    IAMRequestBase.check_action_permitted = check_action_permitted

    # --- trust policies with only Service principals ---------------------------------------
    orig_check_principal = IAMPolicyStatement._check_principal

    def _check_principal(self, principal):
        expected = self._statement.get("Principal")
        if isinstance(expected, dict) and "AWS" not in expected:
            return False
        return orig_check_principal(self, principal)

    IAMPolicyStatement._check_principal = _check_principal

    # --- STS: the web-identity and SAML calls are unsigned in AWS (the token is the proof) -------
    from moto.core.authorization import ActionAuthenticatorMixin

    orig_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action
    public_sts = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}

    def _authorize(self, iam_request_cls, resource="*"):
        if type(self).__module__.startswith("moto.sts") and self._get_action() in public_sts:
            return None
        return orig_authorize(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize
