"""Name every request "service:Action" and render AWS-style errors for its protocol.

service: the SigV4 credential scope's service (the IAM action prefix: eks, iam, sts, ...).
action:  X-Amz-Target (JSON protocols), the Action parameter (query protocols), or, for REST
         protocols, the botocore operation whose HTTP method and requestUri match the request.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

import botocore.loaders

# Signing name -> botocore service name, where they differ.
_SIGNING_TO_SERVICE = {
    "eks-auth": "eks-auth",
    "execute-api": "apigateway",
    "monitoring": "cloudwatch",
    "email": "ses",
    "states": "stepfunctions",
    "tagging": "resourcegroupstaggingapi",
}

EKS_AUTH_PATH = re.compile(r"^/clusters/([^/]+)/assume-role-for-pod-identity/?$")


@dataclass
class Operation:
    service: str
    action: str
    protocol: str  # "json" | "rest-json" | "query" | "rest-xml" | "ec2" | "unknown"

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


_loader = botocore.loaders.Loader()
_models_lock = threading.Lock()
_models: dict[str, dict | None] = {}
_rest_routes: dict[str, list] = {}


def _model(service: str) -> dict | None:
    with _models_lock:
        if service not in _models:
            name = _SIGNING_TO_SERVICE.get(service, service)
            try:
                _models[service] = _loader.load_service_model(name, "service-2")
            except Exception:  # unknown to botocore
                _models[service] = None
        return _models[service]


def service_protocol(service: str) -> str:
    model = _model(service)
    if not model:
        return "unknown"
    return model["metadata"].get("protocol", "unknown")


def _compile_rest_routes(service: str) -> list:
    with _models_lock:
        if service in _rest_routes:
            return _rest_routes[service]
    model = _model(service)
    routes = []
    if model:
        for op_name, op in model["operations"].items():
            http = op.get("http", {})
            uri = http.get("requestUri", "/")
            path, _, query = uri.partition("?")
            literal = 0
            pattern = ""
            for part in re.split(r"(\{[^}]+\})", path):
                if part.startswith("{") and part.endswith("}"):
                    pattern += "(.+)" if part.endswith("+}") else "([^/]+)"
                else:
                    pattern += re.escape(part)
                    literal += len(part)
            required_query = [q.split("=")[0] for q in query.split("&") if q]
            routes.append(
                (
                    http.get("method", "POST"),
                    re.compile("^" + pattern.rstrip("/") + "/?$"),
                    required_query,
                    literal + 10 * len(required_query),
                    op_name,
                )
            )
    with _models_lock:
        _rest_routes[service] = routes
    return routes


def rest_action(service: str, method: str, path: str, query: dict) -> str | None:
    best = None
    for m, rx, required_query, score, op_name in _compile_rest_routes(service):
        if m != method or not rx.match(path):
            continue
        if any(q not in query for q in required_query):
            continue
        if best is None or score > best[0]:
            best = (score, op_name)
    return best[1] if best else None


def credential_scope(environ: dict) -> tuple[str | None, str | None, str | None]:
    """(access_key_id, region, service) from a SigV4 Authorization header or presigned query."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=([^,\s]+)", auth)
    scope = m.group(1) if m else None
    if scope is None:
        q = parse_qs(environ.get("QUERY_STRING", ""))
        if "X-Amz-Credential" in q:
            scope = q["X-Amz-Credential"][0]
    if not scope:
        return None, None, None
    parts = unquote(scope).split("/")
    if len(parts) != 5:
        return None, None, None
    return parts[0], parts[2], parts[3].lower()


def identify(environ: dict, body: bytes) -> Operation:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    _, _, service = credential_scope(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")

    if service is None:
        if method == "POST" and EKS_AUTH_PATH.match(path):
            service = "eks-auth"
        elif target:
            prefix = target.split(".", 1)[0].lower()
            service = {"secretsmanager": "secretsmanager", "amazonssm": "ssm"}.get(prefix, prefix)
        else:
            service = "unknown"

    if target:
        return Operation(service, target.rsplit(".", 1)[-1], "json")

    ctype = environ.get("CONTENT_TYPE", "")
    action = None
    if "Action" in query:
        action = query["Action"][0]
    elif ctype.startswith("application/x-www-form-urlencoded") and body:
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            action = form["Action"][0]
    if action:
        proto = service_protocol(service)
        return Operation(service, action, proto if proto in ("query", "ec2") else "query")

    proto = service_protocol(service)
    if proto.startswith("rest"):
        raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).split("?", 1)[0]
        if raw.startswith("http://") or raw.startswith("https://"):
            raw = "/" + raw.split("/", 3)[-1]
        act = rest_action(service, method, raw, query) or rest_action(service, method, path, query)
        if act:
            return Operation(service, act, proto)
    return Operation(service, f"{method} {path}", proto if proto != "unknown" else "rest-json")


# --- error rendering ---------------------------------------------------------------------

_JSON_CT = {"json": "application/x-amz-json-1.1", "rest-json": "application/json"}


def error_response(
    op: Operation, status: int, code: str, message: str, extra: dict | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    if op.protocol in ("query", "ec2", "rest-xml"):
        sender = "Sender" if status < 500 else "Receiver"
        if op.protocol == "rest-xml":
            body = (
                f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                f"<Message>{_xml_escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
            )
        elif op.protocol == "ec2":
            body = (
                f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{_xml_escape(message)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            )
        else:
            body = (
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>"
                f"<Type>{sender}</Type><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        return status, headers, body.encode()
    payload = {"__type": code, "message": message}
    if extra:
        payload.update(extra)
    headers = [
        ("Content-Type", _JSON_CT.get(op.protocol, "application/json")),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", request_id),
    ]
    return status, headers, json.dumps(payload).encode()


def json_response(status: int, payload: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return status, headers, json.dumps(payload).encode()


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
