"""A minimal Kubernetes REST client for the environment's helpers, built from a kubeconfig.

Supports what the local environment writes: one cluster with embedded CA data and a user with
an embedded client certificate and key (or a bearer token).
"""
import base64
import json
import os
import tempfile

import requests
import yaml


class KubeError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self._dir = tempfile.mkdtemp(prefix="kubeapi-")
        self.session = requests.Session()
        # Passed on every request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        self.ca = self._file("ca.crt", cluster, "certificate-authority")
        self.session.verify = self.ca
        if "client-certificate-data" in user or "client-certificate" in user:
            self.session.cert = (
                self._file("client.crt", user, "client-certificate"),
                self._file("client.key", user, "client-key"),
            )
        if "token" in user:
            self.session.headers["Authorization"] = f"Bearer {user['token']}"

    def _file(self, name, section, key):
        if key in section:
            return section[key]
        path = os.path.join(self._dir, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(section[f"{key}-data"]))
        os.chmod(path, 0o600)
        return path

    def request(self, method, path, body=None, content_type="application/json", params=None, ok404=False):
        headers = {"Content-Type": content_type} if body is not None else {}
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        r = self.session.request(method, self.server + path, data=data, headers=headers, params=params,
                                 timeout=30, verify=self.ca)
        if r.status_code == 404 and ok404:
            return None
        if r.status_code >= 300:
            try:
                msg = r.json().get("message", r.text)
            except ValueError:
                msg = r.text
            raise KubeError(r.status_code, f"{method} {path}: {msg}")
        return r.json() if r.content else {}

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def apply(self, path, obj, manager="bootstrap-env"):
        """Server-side apply `obj` at its object path."""
        return self.request(
            "PATCH", path, body=obj, content_type="application/apply-patch+yaml",
            params={"fieldManager": manager, "force": "true"},
        )
