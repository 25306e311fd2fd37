"""Helpers for the AWS stand-in tests (imported by conftest.py and the tests).

A fake kube-apiserver (plain HTTP, records requests, answers TokenReviews for JWT-shaped test
tokens) stands in for the real one, so the server under test runs unmodified as a subprocess
with a kubeconfig pointing at it. Test tokens: header.payload."fakesig", payload
{"sub": "system:serviceaccount:NS:SA", "aud": [...], "exp": ...}; other signatures are rejected.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n").decode()


class Secret(dict):
    """A dict holding credentials: usable as **kwargs, shown as redacted by pytest and logs."""

    def __repr__(self) -> str:
        return "<credentials redacted>"

    __str__ = __repr__


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def make_token(namespace: str, sa: str, aud=("pods.eks.amazonaws.com",), exp_in: float = 3600,
               sig: str = "fakesig", pod: str = "pod-1", pod_uid: str = "0000-1111") -> str:
    now = int(time.time())
    payload = {
        "sub": f"system:serviceaccount:{namespace}:{sa}",
        "aud": list(aud),
        "exp": now + int(exp_in),
        "iat": now - 10,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa}, "pod": {"name": pod, "uid": pod_uid}},
    }
    return f"{_b64({'alg': 'RS256', 'kid': 'test'})}.{_b64(payload)}.{sig}"


class FakeApiserver:
    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.srv = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.srv.server_port}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def find(self, method: str, path_part: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["method"] == method and path_part in r["path"]]

    def app(self, environ, start_response):
        req = Request(environ)
        body = req.get_data()
        rec = {"method": req.method, "path": req.path, "args": dict(req.args),
               "content_type": req.headers.get("Content-Type"), "auth": req.headers.get("Authorization")}
        if req.path.endswith("/tokenreviews"):
            review = json.loads(body)
            resp = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "status": self.review(review["spec"])}
            rec["audiences"] = review["spec"].get("audiences")
        else:
            rec["body"] = json.loads(body) if body else None
            resp = rec["body"] or {"kind": "Status", "status": "Success"}
        with self.lock:
            self.requests.append(rec)
        return Response(json.dumps(resp), status=201 if req.method == "POST" else 200,
                        content_type="application/json")(environ, start_response)

    @staticmethod
    def review(spec: dict) -> dict:
        token = spec.get("token", "")
        parts = token.split(".")
        if len(parts) != 3 or parts[2] != "fakesig":
            return {"authenticated": False, "error": "invalid bearer token"}
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        if claims["exp"] < time.time():
            return {"authenticated": False, "error": "token has expired"}
        wanted = spec.get("audiences") or []
        if wanted and not set(wanted) & set(claims["aud"]):
            return {"authenticated": False, "error": "token audiences is invalid for the target audiences"}
        k = claims["kubernetes.io"]
        return {
            "authenticated": True,
            "audiences": [a for a in claims["aud"] if a in wanted] if wanted else claims["aud"],
            "user": {
                "username": claims["sub"],
                "uid": "uid-1",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{k['namespace']}"],
                "extra": {"authentication.kubernetes.io/pod-name": [k["pod"]["name"]],
                          "authentication.kubernetes.io/pod-uid": [k["pod"].get("uid", "0000-1111")]},
            },
        }


class Server:
    def __init__(self, proc, info, state_dir, log_path):
        self.proc, self.info, self.state_dir, self.log_path = proc, info, state_dir, log_path
        self.info = Secret(info)
        self.endpoint = info["endpoint"]
        self.agent = info["agent_endpoint"]

    def client(self, service: str, creds: dict | None = None, retries: int = 1, region_name: str | None = None):
        creds = creds or Secret(aws_access_key_id=self.info["access_key_id"],
                                aws_secret_access_key=self.info["secret_access_key"])
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region_name or self.info["region"],
                            config=Config(retries={"total_max_attempts": retries, "mode": "standard"}), **creds)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()


def start_server(kubeconfig: str, tmp_path_factory, *extra: str) -> Server:
    state = tmp_path_factory.mktemp("state")
    log_path = state / "aws.log"
    cmd = [sys.executable, os.path.join(HERE, "server.py"), "--host", "127.0.0.1", "--port", "0",
           "--agent-port", "0", "--region", "us-west-2", "--cluster", "bootstrap-test",
           "--kubeconfig", kubeconfig, "--state-dir", str(state), "--addon-delay", "1", *extra]
    logf = open(log_path, "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    info_path = state / "aws.json"
    deadline = time.time() + 60
    while not info_path.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("AWS stand-in did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.1)
    return Server(proc, json.loads(info_path.read_text()), state, log_path)


def stop_server(s: Server) -> None:
    s.proc.terminate()
    try:
        s.proc.wait(10)
    except subprocess.TimeoutExpired:
        s.proc.kill()


TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                   "Action": ["sts:AssumeRole", "sts:TagSession"]}],
})


def bootstrap_trust(account: str, cluster: str, namespace: str, sa: str, region: str = "us-west-2") -> str:
    """Exactly the trust policy bootstrap writes for a workload's role (the cluster pinned by
    name and by ARN: a same-named cluster in another region or account has another ARN)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EksPodIdentity", "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {
                "aws:SourceAccount": account,
                "aws:RequestTag/eks-cluster-name": cluster,
                "aws:RequestTag/eks-cluster-arn": f"arn:aws:eks:{region}:{account}:cluster/{cluster}",
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": sa,
            }},
        }],
    })


def agent_credentials(server: "Server", token: str) -> Secret:
    """Credentials for a pod's token from the agent endpoint, as boto3 client kwargs."""
    import requests

    r = requests.get(server.agent, headers={"Authorization": token})
    assert r.status_code == 200, r.text
    c = r.json()
    return Secret(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                  aws_session_token=c["Token"])
