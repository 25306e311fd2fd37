"""The EKS Pod Identity agent endpoint: GET /v1/credentials, header `Authorization: <token>`.

Like aws/eks-pod-identity-agent: the token must be present and parse as a JWT whose basic
claims (exp, nbf) hold, else 400; then eks-auth AssumeRoleForPodIdentity for the agent's
cluster (in-process, counted and fault-injectable as "eks-auth:AssumeRoleForPodIdentity");
an eks-auth error is answered with its HTTP status and "[request-id]: (Code): message, fault:
client|server" as text/plain. Success: {"AccessKeyId","SecretAccessKey","Token","AccountId",
"Expiration"} (RFC 3339). Credentials are cached per token until 15 minutes before they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from datetime import datetime, timezone

log = logging.getLogger("aws-standin.agent")

REFRESH_BEFORE_S = 15 * 60
MAX_CACHE = 2000


def _b64json(seg: str) -> dict:
    pad = "=" * (-len(seg) % 4)
    return json.loads(base64.urlsafe_b64decode(seg + pad))


def basic_claims_error(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3:
        return "Service account token cannot be parsed: token is malformed: token contains an invalid number of segments"
    try:
        _b64json(parts[0])
        claims = _b64json(parts[1])
        if not isinstance(claims, dict):
            raise ValueError
    except Exception:
        return "Service account token cannot be parsed: token is malformed: could not JSON decode a segment"
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, (int, float)) and now > exp:
        return "Service account token failed basic claim validations: token has invalid claims: token is expired"
    if isinstance(nbf, (int, float)) and now < nbf:
        return "Service account token failed basic claim validations: token has invalid claims: token is not valid yet"
    return None


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Agent:
    def __init__(self, standin, cluster: str, region: str):
        self.standin = standin
        self.cluster = cluster
        self.region = region
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict]] = {}

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _respond(self, start_response, status: int, body: bytes, ctype: str):
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def _text(self, start_response, status: int, msg: str):
        return self._respond(start_response, status, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != "/v1/credentials":
            return self._text(start_response, 404, "404 page not found")
        if environ.get("REQUEST_METHOD") != "GET":
            return self._text(start_response, 405, "Method Not Allowed")
        started = time.time()
        status = self._serve(environ)
        code, body, ctype = status
        log.info("agent GET /v1/credentials -> %s (%.0f ms)", code, (time.time() - started) * 1000)
        return self._respond(start_response, code, body, ctype)

    def _serve(self, environ) -> tuple[int, bytes, str]:
        text = "text/plain; charset=utf-8"
        decision = self.standin.faults.record("eks-pod-identity-agent:GetCredentials", "rest-json")
        self.standin.faults.sleep(decision)
        if decision.failure:
            st, c, m = decision.failure
            return st, f"({c}): {m}\n".encode(), text
        token = environ.get("HTTP_AUTHORIZATION", "").strip()
        if not token:
            return 400, b"Service account token cannot be empty\n", text
        err = basic_claims_error(token)
        if err:
            return 400, (err + "\n").encode(), text
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] - now > REFRESH_BEFORE_S:
                return 200, json.dumps(hit[1]).encode(), "application/json"
        st, payload = self.standin.call_eks_auth(self.region, self.cluster, token)
        if st != 200:
            fault = "server" if st >= 500 else "client"
            msg = f"[{uuid.uuid4()}]: ({payload['code']}): {payload['message']}, fault: {fault}\n"
            return st, msg.encode(), text
        c = payload["credentials"]
        out = {
            "AccessKeyId": c["accessKeyId"],
            "SecretAccessKey": c["secretAccessKey"],
            "Token": c["sessionToken"],
            "AccountId": payload["assumedRoleUser"]["arn"].split(":")[4],
            "Expiration": rfc3339(c["expiration"]),
        }
        with self._lock:
            if len(self._cache) >= MAX_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (c["expiration"], out)
        return 200, json.dumps(out).encode(), "application/json"
