"""The kubelet shim's re-publish (requiresRepublish), against a fake apiserver and a fake CSI
node: the cadence, a fresh TokenRequest per re-publish, a failed re-publish as an event with the
mount kept, none without requiresRepublish, and unpublish when the pod goes. No environment
needed (the CSI stubs are replaced)."""
import grpc
import pytest

import shim as shim_mod


class FakeKube:
    def __init__(self, republish=True):
        self.pods = []
        self.csidriver = {"spec": {"podInfoOnMount": True, "requiresRepublish": republish,
                                   "tokenRequests": [{"audience": "pods.eks.amazonaws.com"}]}}
        self.tokens = 0
        self.events = []

    def get(self, path, params=None, ok404=False):
        if path.startswith("/apis/storage.k8s.io"):
            return self.csidriver
        return {"items": list(self.pods)}

    def request(self, method, path, body=None, content_type=None, params=None, ok404=False):
        if path.endswith("/token"):
            self.tokens += 1
            return {"status": {"token": f"token-{self.tokens}", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
        if path.endswith("/events"):
            self.events.append(body)
        return {}


class FakeError(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNKNOWN

    def details(self):
        return "provider said no"


class FakeNode:
    def __init__(self):
        self.published, self.unpublished, self.fail = [], [], False

    def NodePublishVolume(self, req, timeout=None):
        if self.fail:
            raise FakeError()
        self.published.append(dict(req.volume_context))

    def NodeUnpublishVolume(self, req, timeout=None):
        self.unpublished.append(req.target_path)


def pod():
    return {"metadata": {"name": "a", "namespace": "ns", "uid": "u1", "annotations": {}},
            "spec": {"nodeName": "n0", "serviceAccountName": "app", "volumes": [
                {"name": "secrets", "csi": {"driver": shim_mod.DRIVER, "readOnly": True,
                                            "volumeAttributes": {"secretProviderClass": "x"}}}]}}


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(shim_mod.time, "monotonic", lambda: now[0])
    return now


def make(tmp_path, kube):
    s = shim_mod.Shim(kube, str(tmp_path), {"n0": "unix:///nonexistent.sock"}, republish_interval=2.0)
    node = FakeNode()
    s.stubs = {"n0": node}
    return s, node


def test_republishes_on_its_cadence_with_a_fresh_token_each_time(tmp_path, clock):
    kube = FakeKube()
    kube.pods = [pod()]
    s, node = make(tmp_path, kube)
    s.sync()
    assert len(node.published) == 1
    clock[0] += 1.0
    s.sync()
    assert len(node.published) == 1, "not before the interval"
    clock[0] += 1.5
    s.sync()
    clock[0] += 2.5
    s.sync()
    assert len(node.published) == 3
    tokens = [p["csi.storage.k8s.io/serviceAccount.tokens"] for p in node.published]
    assert len(set(tokens)) == 3, "each publish carries a new TokenRequest's token"
    assert kube.tokens == 3


def test_a_failed_republish_is_an_event_and_the_mount_stays(tmp_path, clock):
    kube = FakeKube()
    kube.pods = [pod()]
    s, node = make(tmp_path, kube)
    s.sync()
    node.fail = True
    clock[0] += 3
    s.sync()
    assert ("u1", "secrets") in s.mounted and not node.unpublished
    assert [e["reason"] for e in kube.events] == ["FailedMount"]
    assert "provider said no" in kube.events[0]["message"]
    node.fail = False
    clock[0] += 3
    s.sync()
    assert len(node.published) == 2, "the next period re-publishes again"


def test_no_republish_without_requires_republish_and_unpublish_when_the_pod_goes(tmp_path, clock):
    kube = FakeKube(republish=False)
    kube.pods = [pod()]
    s, node = make(tmp_path, kube)
    s.sync()
    for _ in range(3):
        clock[0] += 5
        s.sync()
    assert len(node.published) == 1
    kube.pods = []
    s.sync()
    assert len(node.unpublished) == 1 and not s.mounted


class DriverLikeNode(FakeNode):
    """Creates the target dir before failing, as the driver does (MkdirAll, then the
    SecretProviderClass lookup)."""

    def __init__(self, code):
        super().__init__()
        self.code = code

    def NodePublishVolume(self, req, timeout=None):
        import os
        os.makedirs(req.target_path, exist_ok=True)
        if self.fail:
            err = FakeError()
            err.code = lambda: self.code
            raise err
        self.published.append(dict(req.volume_context))


@pytest.mark.parametrize("code,removed", [(grpc.StatusCode.UNKNOWN, True), (grpc.StatusCode.INTERNAL, True),
                                          (grpc.StatusCode.UNAVAILABLE, False),
                                          (grpc.StatusCode.DEADLINE_EXCEEDED, False)])
def test_a_first_publish_that_failed_for_good_removes_the_target_dir_like_kubelet(tmp_path, clock, code, removed):
    import os
    kube = FakeKube()
    kube.pods = [pod()]
    s, _ = make(tmp_path, kube)
    node = DriverLikeNode(code)
    node.fail = True
    s.stubs = {"n0": node}
    s.sync()
    target = s._target("u1", "secrets")
    assert os.path.isdir(target) is not removed
    assert os.path.isdir(os.path.dirname(target)) is not removed
    assert [e["reason"] for e in kube.events] == ["FailedMount"]
    node.fail = False
    clock[0] += 5
    s.sync()
    assert ("u1", "secrets") in s.mounted and len(node.published) == 1
