"""A small Kubernetes REST client driven by a kubeconfig file.

Supports what the stand-in needs: server-side apply of a few kinds, delete, and TokenReview.
Client credentials: client-certificate(-data)/client-key(-data) or a bearer token. The kubeconfig
is (re)read when its mtime changes, so it may appear after the AWS server started.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass

import requests
import yaml

log = logging.getLogger("aws-standin.kube")

# kind -> (api prefix, plural, namespaced)
KINDS = {
    "Namespace": ("api/v1", "namespaces", False),
    "ServiceAccount": ("api/v1", "serviceaccounts", True),
    "ConfigMap": ("api/v1", "configmaps", True),
    "Service": ("api/v1", "services", True),
    "DaemonSet": ("apis/apps/v1", "daemonsets", True),
    "Deployment": ("apis/apps/v1", "deployments", True),
    "ClusterRole": ("apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "CSIDriver": ("apis/storage.k8s.io/v1", "csidrivers", False),
    "CustomResourceDefinition": ("apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}


@dataclass
class ClusterInfo:
    server: str
    ca_data: str | None  # base64, as in the kubeconfig


class KubeError(Exception):
    pass


class KubeClient:
    def __init__(self, kubeconfig: str, field_manager: str = "eks", timeout: float = 10.0):
        self.path = kubeconfig
        self.field_manager = field_manager
        self.timeout = timeout
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._session: requests.Session | None = None
        self._info: ClusterInfo | None = None
        self._tmpdir = tempfile.mkdtemp(prefix="aws-standin-kube-")
        os.chmod(self._tmpdir, 0o700)
        atexit.register(shutil.rmtree, self._tmpdir, True)

    # --- kubeconfig ---
    def _load(self) -> tuple[requests.Session, ClusterInfo]:
        with self._lock:
            try:
                mtime = os.stat(self.path).st_mtime
            except OSError as e:
                raise KubeError(f"kubeconfig {self.path} not readable: {e.strerror}") from None
            if self._session is not None and mtime == self._mtime:
                return self._session, self._info  # type: ignore[return-value]
            with open(self.path) as f:
                cfg = yaml.safe_load(f) or {}
            base = os.path.dirname(os.path.abspath(self.path))
            ctx_name = cfg.get("current-context")
            contexts = {c["name"]: c.get("context", {}) for c in cfg.get("contexts") or []}
            clusters = {c["name"]: c.get("cluster", {}) for c in cfg.get("clusters") or []}
            users = {u["name"]: u.get("user", {}) for u in cfg.get("users") or []}
            ctx = contexts.get(ctx_name) or (next(iter(contexts.values())) if contexts else {})
            cluster = clusters.get(ctx.get("cluster")) or (
                next(iter(clusters.values())) if clusters else None
            )
            if not cluster or not cluster.get("server"):
                raise KubeError(f"kubeconfig {self.path} has no cluster server")
            user = users.get(ctx.get("user")) or (next(iter(users.values())) if users else {})

            s = requests.Session()
            s.trust_env = False  # never go through a proxy to the local apiserver
            if cluster.get("insecure-skip-tls-verify"):
                s.verify = False
            elif cluster.get("certificate-authority-data"):
                s.verify = self._write("ca.crt", base64.b64decode(cluster["certificate-authority-data"]))
            elif cluster.get("certificate-authority"):
                s.verify = os.path.join(base, cluster["certificate-authority"])
            crt = self._material(user, "client-certificate", base, "client.crt")
            key = self._material(user, "client-key", base, "client.key")
            if crt and key:
                s.cert = (crt, key)
            if user.get("token"):
                s.headers["Authorization"] = "Bearer " + user["token"]
            ca_data = cluster.get("certificate-authority-data")
            if not ca_data and cluster.get("certificate-authority"):
                with open(os.path.join(base, cluster["certificate-authority"]), "rb") as f:
                    ca_data = base64.b64encode(f.read()).decode()
            self._session = s
            self._info = ClusterInfo(cluster["server"].rstrip("/"), ca_data)
            self._mtime = mtime
            return s, self._info

    def _material(self, user: dict, key: str, base: str, fname: str) -> str | None:
        if user.get(key + "-data"):
            return self._write(fname, base64.b64decode(user[key + "-data"]))
        if user.get(key):
            return os.path.join(base, user[key])
        return None

    def _write(self, name: str, data: bytes) -> str:
        p = os.path.join(self._tmpdir, name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return p

    def cluster_info(self) -> ClusterInfo:
        return self._load()[1]

    # --- REST ---
    def request(self, method: str, path: str, **kw) -> requests.Response:
        s, info = self._load()
        try:
            return s.request(method, info.server + path, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise KubeError(f"{method} {path}: {type(e).__name__}") from None

    @staticmethod
    def object_path(obj: dict) -> str:
        kind = obj.get("kind")
        if kind not in KINDS:
            raise KubeError(f"kind {kind!r} not supported by the stand-in's client")
        prefix, plural, namespaced = KINDS[kind]
        meta = obj.get("metadata", {})
        ns = f"/namespaces/{meta.get('namespace', 'default')}" if namespaced else ""
        return f"/{prefix}{ns}/{plural}/{meta['name']}"

    def apply(self, obj: dict) -> None:
        path = self.object_path(obj)
        r = self.request(
            "PATCH",
            path,
            params={"fieldManager": self.field_manager, "force": "true"},
            data=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if r.status_code >= 300:
            raise KubeError(f"apply {path}: HTTP {r.status_code}: {_status_message(r)}")

    def delete(self, obj: dict) -> bool:
        path = self.object_path(obj)
        r = self.request("DELETE", path, params={"propagationPolicy": "Background"})
        if r.status_code == 404:
            return False
        if r.status_code >= 300:
            raise KubeError(f"delete {path}: HTTP {r.status_code}: {_status_message(r)}")
        return True

    def token_review(self, token: str, audiences: list[str]) -> dict:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        r = self.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", json=body)
        if r.status_code >= 300:
            raise KubeError(f"TokenReview: HTTP {r.status_code}: {_status_message(r)}")
        return r.json().get("status", {})


def _status_message(r: requests.Response) -> str:
    try:
        return str(r.json().get("message", ""))[:300]
    except ValueError:
        return r.text[:300]


def read_cluster_info(kubeconfig: str) -> ClusterInfo:
    return KubeClient(kubeconfig).cluster_info()


class KubeWorker:
    """Runs cluster mutations (apply/delete) in order on one background thread, best effort."""

    def __init__(self, client: KubeClient | None):
        self.client = client
        self._cv = threading.Condition()
        self._queue: list = []
        self._busy = False
        self._t = threading.Thread(target=self._run, name="kube-worker", daemon=True)
        self._t.start()

    def submit(self, what: str, fn) -> None:
        with self._cv:
            self._queue.append((what, fn))
            self._cv.notify()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._queue)
                what, fn = self._queue.pop(0)
                self._busy = True
            try:
                if self.client is None:
                    log.warning("%s skipped: no kubeconfig", what)
                else:
                    fn(self.client)
                    log.info("%s done", what)
            except Exception as e:  # best effort: never fail the AWS call
                log.warning("%s failed (the AWS answer is unaffected): %s", what, e)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
