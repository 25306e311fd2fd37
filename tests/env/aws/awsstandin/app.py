"""The WSGI application: control API, call counting and faults for every operation, our EKS and
eks-auth routes, and moto (DomainDispatcherApplication, sharing its in-process backends)."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from . import eks_token, iam, protocol
from .agent import Agent
from .eks import EksExtension
from .eksauth import EksAuth, EksAuthError, TokenVerifier
from .faults import FaultsAndCalls
from .iam import ADMIN_USER
from .kube import KubeWorker

log = logging.getLogger("aws-standin")

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def _status_line(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Status')}"


class StandIn:
    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        cluster: str,
        addon_delay: float,
        verifier: TokenVerifier,
        worker: KubeWorker,
        manifests_dir: str | None = None,
    ):
        self.account_id = account_id
        self.region = region
        self.cluster = cluster
        self.faults = FaultsAndCalls()
        self.worker = worker
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.eks = EksExtension(account_id, addon_delay, worker, manifests_dir)
        self.eks_auth = EksAuth(self.eks, account_id, verifier)
        self.agent = Agent(self, cluster, region)
        self.kube = worker.client
        self._endpoint_set = False

    # --- eks-auth, shared by the HTTP route and the agent ---------------------------------------
    def call_eks_auth(self, region: str, cluster: str, token: str | None, count: bool = True):
        """-> (status, payload); payload is the response or {"code","message"}."""
        if count:
            d = self.faults.record("eks-auth:AssumeRoleForPodIdentity", "rest-json")
            self.faults.sleep(d)
            if d.failure:
                st, code, msg = d.failure
                return st, {"code": code, "message": msg}
        try:
            return 200, self.eks_auth.assume(region, cluster, token)
        except EksAuthError as e:
            log.info("AssumeRoleForPodIdentity on %s: %s", cluster, e.code)
            return e.status, {"code": e.code, "message": e.message}

    def refresh_cluster_endpoint(self) -> None:
        """Point DescribeCluster at the local apiserver once its kubeconfig exists."""
        if self._endpoint_set or self.kube is None:
            return
        try:
            info = self.kube.cluster_info()
        except Exception:
            return
        from moto.eks.models import eks_backends

        c = eks_backends[self.account_id][self.region].clusters.get(self.cluster)
        if c is not None:
            c.endpoint = info.server
            if info.ca_data:
                c.certificate_authority = {"data": info.ca_data}
            self._endpoint_set = True
            log.info("cluster %s: endpoint now %s", self.cluster, info.server)

    # --- WSGI -----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/_bootstrap/"):
            return self._control(environ, start_response, path)
        body = self._read_body(environ)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self.moto(environ, start_response)

        started = time.time()
        op = protocol.identify(environ, body)
        _, scope_region, _ = protocol.credential_scope(environ)
        region = scope_region or self.region
        decision = self.faults.record(op.name, op.protocol, region)
        self.faults.sleep(decision)
        if decision.failure:
            st, code, msg = decision.failure
            resp = protocol.error_response(op, st, code, msg)
            log.info("%s -> %s %s (injected)", op.name, st, code)
            return self._send(start_response, resp)

        method = environ.get("REQUEST_METHOD", "GET")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        resp = None
        m = protocol.EKS_AUTH_PATH.match(path)
        ours = (m and method == "POST" and op.service in ("eks-auth", "eks", "unknown")) or (
            op.service in ("eks", "unknown") and self.eks.route(method, path) is not None)
        if ours:
            denied = self._authorize(environ, op, body, region, path)
            if denied is not None:
                log.info("%s -> %s %s (IAM)", op.name, denied[0], dict(denied[1]).get("x-amzn-ErrorType"))
                return self._send(start_response, denied)
        if m and method == "POST" and op.service in ("eks-auth", "eks", "unknown"):
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                payload = {}
            token = payload.get("token") if isinstance(payload, dict) else None
            st, out = self.call_eks_auth(region, m.group(1), token, count=False)
            resp = protocol.json_response(200, out) if st == 200 else protocol.error_response(
                op, st, out["code"], out["message"])
        if resp is None and op.service in ("eks", "unknown"):
            resp = self.eks.handle(op, method, path, query, body, region)
        if resp is not None:
            log.info("%s -> %s (%.0f ms)", op.name, resp[0], (time.time() - started) * 1000)
            return self._send(start_response, resp)

        if op.name == "eks:DescribeCluster":
            self.refresh_cluster_endpoint()
        captured = {}

        def sr(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        # moto rebuilds a form body from its parsed fields ('+' for spaces) before checking the
        # signature; SDKs that encode spaces as %20 then fail. Let the check see the bytes sent.
        iam.RAW_BODY.value = body
        try:
            chunks = self.moto(environ, sr)
        finally:
            iam.RAW_BODY.value = None
        try:
            body_out = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        code = int(captured["status"].split(" ")[0])
        if code >= 400 and op.protocol in ("json", "rest-json") and body_out.lstrip().startswith(b"<"):
            resp = self._json_error_from_xml(op, code, body_out)
            log.info("%s -> %s (moto, error converted to JSON, %.0f ms)", op.name, code, (time.time() - started) * 1000)
            return self._send(start_response, resp)
        if code >= 400 and op.protocol == "query" and b"<ErrorResponse><Errors><Error>" in body_out:
            # moto's access-control errors wrap <Error> in <Errors> (EC2's shape); IAM and STS
            # answer <ErrorResponse><Error>…</Error><RequestId/></ErrorResponse>, the only shape
            # the Rust SDK reads a code from.
            body_out = (body_out.replace(b"<ErrorResponse><Errors><Error>", b"<ErrorResponse><Error>")
                        .replace(b"</Error></Errors></ErrorResponse>",
                                 b"</Error><RequestId>" + uuid.uuid4().hex.encode() + b"</RequestId></ErrorResponse>"))
        log.info("%s -> %s (moto, %.0f ms)", op.name, code, (time.time() - started) * 1000)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body_out))))
        start_response(captured["status"], headers)
        return [body_out]

    # moto renders IAM access-control errors as XML even for JSON protocols, which SDKs for
    # JSON services cannot parse; answer them the way those services do.
    _JSON_AUTH_CODES = {
        "AccessDenied": "AccessDeniedException",
        "InvalidClientTokenId": "UnrecognizedClientException",
        "SignatureDoesNotMatch": "InvalidSignatureException",
    }

    def _json_error_from_xml(self, op, status: int, body: bytes):
        import re as _re

        text = body.decode("utf-8", "replace")
        m = _re.search(r"<Code>([^<]+)</Code>", text)
        msg = _re.search(r"<Message>([^<]*)</Message>", text)
        code = m.group(1) if m else "AccessDeniedException"
        code = self._JSON_AUTH_CODES.get(code, code)
        return protocol.error_response(op, status, code, msg.group(1) if msg else code)

    def _authorize(self, environ, op, body: bytes, region: str, path: str):
        """With --enforce-iam, check our own routes the way moto checks its own: a valid SigV4
        signature from keys moto issued, and an identity policy allowing service:Action on the
        cluster's ARN (Resource "*" for calls not about one cluster). None = allowed."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return None
        from moto.iam.access_control import IAMRequest
        from werkzeug.datastructures import EnvironHeaders
        from werkzeug.exceptions import HTTPException

        import re as _re

        headers = EnvironHeaders(environ)
        if "Authorization" not in headers:
            return protocol.error_response(op, 403, "MissingAuthenticationTokenException",
                                           "Missing Authentication Token")
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or path
        mc = _re.match(r"^/clusters/([^/]+)", path)
        resource = f"arn:aws:eks:{region}:{self.account_id}:cluster/{mc.group(1)}" if mc else "*"
        try:
            req = IAMRequest(account_id=self.account_id, method=environ.get("REQUEST_METHOD", "GET"),
                             path=raw, data={}, body=body, headers=headers, action=op.action)
            req.check_signature()
            req.check_action_permitted(resource)
        except HTTPException as e:
            kind = getattr(e, "error_type", "AccessDenied")
            code = self._JSON_AUTH_CODES.get(kind, kind)
            return protocol.error_response(op, 403, code, getattr(e, "message", None) or code)
        return None

    @staticmethod
    def _read_body(environ) -> bytes:
        stream = environ.get("wsgi.input")
        if stream is None:
            return b""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 0:
            body = stream.read(length)
        elif environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = stream.read()
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    @staticmethod
    def _send(start_response, resp):
        status, headers, body = resp
        headers = list(headers) + [("Content-Length", str(len(body)))]
        start_response(_status_line(status), headers)
        return [body]

    # --- control API ----------------------------------------------------------------------------
    def _control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD", "GET")
        body = self._read_body(environ)

        def reply(code, obj):
            return self._send(start_response, (code, [("Content-Type", "application/json")],
                                               json.dumps(obj).encode()))

        try:
            if path == "/_bootstrap/faults":
                if method == "POST":
                    spec = json.loads(body or b"null")
                    specs = spec if isinstance(spec, list) else [spec]
                    if not all(isinstance(s, dict) for s in specs) or not specs:
                        raise ValueError("expected a fault object or a list of them")
                    for s in specs:
                        self.faults.add(s)
                    log.info("faults added: %s", [(s.get("operation"), s.get("kind"), s.get("count", 1)) for s in specs])
                    return reply(200, {"faults": self.faults.rules()})
                if method == "DELETE":
                    self.faults.clear()
                    log.info("faults cleared")
                    return reply(200, {"faults": []})
                if method == "GET":
                    return reply(200, {"faults": self.faults.rules()})
            elif path == "/_bootstrap/calls":
                if method == "GET":
                    return reply(200, self.faults.calls())
                if method == "DELETE":
                    self.faults.reset_calls()
                    return reply(200, {})
            elif path == "/_bootstrap/calls/reset" and method == "POST":
                self.faults.reset_calls()
                return reply(200, {})
            elif path == "/_bootstrap/agent/cache" and method == "DELETE":
                self.agent.clear_cache()
                return reply(200, {})
            elif path == "/_bootstrap/kube/wait" and method == "POST":
                return reply(200, {"idle": self.worker.wait_idle(30.0)})
            elif path == "/_bootstrap/authenticate" and method == "POST":
                # The kube-apiserver's token webhook (EKS-style k8s-aws-v1 tokens).
                review = json.loads(body or b"{}")
                token = ((review.get("spec") or {}).get("token")) or ""
                status = eks_token.authenticate(token, self.cluster, self.account_id, self.region, {ADMIN_USER})
                return reply(200, {"apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"),
                                   "kind": "TokenReview", "status": status})
            elif path == "/_bootstrap/addon-delay" and method == "POST":
                # How long new add-ons stay CREATING (benchmarks against the critical path).
                seconds = float(json.loads(body or b"{}").get("seconds", 3.0))
                self.eks.addon_delay = max(0.0, seconds)
                log.info("add-on delay set to %ss", self.eks.addon_delay)
                return reply(200, {"seconds": self.eks.addon_delay})
            elif path == "/_bootstrap/health" and method == "GET":
                return reply(200, {"ok": True, "cluster": self.cluster, "region": self.region})
            else:
                return reply(404, {"message": f"no control endpoint {method} {path}"})
            return reply(405, {"message": f"{method} not allowed on {path}"})
        except (ValueError, TypeError) as e:
            return reply(400, {"message": str(e)})
