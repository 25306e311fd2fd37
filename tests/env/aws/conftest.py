"""Fixtures for the AWS stand-in tests (helpers in standin_testlib.py)."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from standin_testlib import FAKE_CA, FakeApiserver, start_server, stop_server  # noqa: E402

@pytest.fixture(scope="session")
def apiserver():
    a = FakeApiserver()
    yield a
    a.srv.shutdown()


@pytest.fixture(scope="session")
def kubeconfig(apiserver, tmp_path_factory):
    d = tmp_path_factory.mktemp("kube")
    p = d / "kubeconfig"
    p.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": apiserver.url, "certificate-authority-data": FAKE_CA}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "users": [{"name": "admin", "user": {"token": "admin-token"}}],
    }))
    return str(p)


@pytest.fixture(scope="session")
def server(kubeconfig, tmp_path_factory):
    manifests = tmp_path_factory.mktemp("addon-manifests")
    d = manifests / "aws-secrets-store-csi-driver-provider"
    d.mkdir()
    (d / "provider.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: provider-info\n  namespace: kube-system\n"
        "data:\n  version: $ADDON_VERSION\n  cluster: $CLUSTER_NAME\n  region: $REGION\n")
    s = start_server(kubeconfig, tmp_path_factory, "--addon-manifests", str(manifests))
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def enforced(kubeconfig, tmp_path_factory):
    """A second server with --enforce-iam (every call needs keys moto issued)."""
    s = start_server(kubeconfig, tmp_path_factory, "--enforce-iam")
    yield s
    stop_server(s)


@pytest.fixture
def control(server):
    import requests

    base = server.endpoint + "/_bootstrap"
    requests.delete(base + "/faults")
    yield base
    requests.delete(base + "/faults")


@pytest.fixture
def unique():
    counter = {"n": 0}

    def make(prefix: str) -> str:
        counter["n"] += 1
        return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}-{counter['n']}"

    return make


