"""Plays kubelet's CSI role for pods bound to the environment's fake (kwok) nodes.

For every pod on a managed node with a `secrets-store.csi.k8s.io` volume it calls the node's
real secrets-store-csi-driver over its socket with what kubelet would send: NodePublishVolume
with the pod's volume attributes, pod info when the CSIDriver object asks for it
(`podInfoOnMount`), and service-account tokens for each audience in the CSIDriver's
`tokenRequests` (obtained through TokenRequest). It marks the pod mounted with an annotation
that the environment's kwok stages wait for before making the pod Ready, reports failures as
pod events (reason FailedMount), removes the target dir after a publish that failed for good
(kubelet's removeMountDir), retries with backoff, and calls NodeUnpublishVolume when
the pod is gone.

Like kubelet's volume manager, it re-publishes the mounted volumes of a CSIDriver with
`requiresRepublish: true` periodically (kubelet: every sync of the pod, about a minute; here
`--republish-interval`, short in tests), each time with fresh service-account tokens (a new
TokenRequest per audience). A failed re-publish becomes a pod event and the mount stays, as
with kubelet. The mounted files stay readable at the target path (DIR/pods/<uid>/volumes/
kubernetes.io~csi/<volume>/mount).

    python shim.py --kubeconfig K --kubelet-dir DIR [--republish-interval S] --node NAME=unix:///path/csi.sock ...
"""
import argparse
import datetime
import hashlib
import json
import logging
import os
import signal
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubeapi import Kube, KubeError  # noqa: E402
from protos import load  # noqa: E402

DRIVER = "secrets-store.csi.k8s.io"
MOUNTED_ANNOTATION = "csi.bootstrap.test/mounted"
log = logging.getLogger("kubelet-shim")


# gRPC codes after which kubelet knows the operation is not in progress (isFinalError).
NOT_FINAL = {grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}


def final_error(err):
    return err.code() not in NOT_FINAL


def volume_id(pod_uid, volume):
    return "csi-" + hashlib.sha256(f"{pod_uid}/{volume}".encode()).hexdigest()


class Shim:
    def __init__(self, kube, kubelet_dir, nodes, republish_interval=60.0):
        self.kube = kube
        self.republish_interval = republish_interval
        self.next_republish = {}  # (uid, volume) -> monotonic time of the next re-publish
        self.kubelet_dir = kubelet_dir
        self.csi_pb2, self.csi_grpc = load("csi")
        self.stubs = {name: self.csi_grpc.NodeStub(grpc.insecure_channel(sock)) for name, sock in nodes.items()}
        self.mounted = {}  # (uid, volume) -> record
        self.failures = {}  # (uid, volume) -> (attempts, next_try)
        self._recover()

    def _target(self, uid, volume):
        return os.path.join(self.kubelet_dir, "pods", uid, "volumes", "kubernetes.io~csi", volume, "mount")

    def _recover(self):
        """Re-learn mounts made before a restart from the records next to them."""
        root = os.path.join(self.kubelet_dir, "pods")
        for uid in os.listdir(root) if os.path.isdir(root) else []:
            vols = os.path.join(root, uid, "volumes", "kubernetes.io~csi")
            for vol in os.listdir(vols) if os.path.isdir(vols) else []:
                rec = os.path.join(vols, vol, "vol_data.json")
                if os.path.exists(rec):
                    with open(rec) as f:
                        self.mounted[(uid, vol)] = json.load(f)

    def tokens(self, pod, csidriver):
        out = {}
        sa = pod["spec"].get("serviceAccountName", "default")
        ns = pod["metadata"]["namespace"]
        for req in (csidriver["spec"].get("tokenRequests") or []):
            spec = {"audiences": [req["audience"]] if req.get("audience") else [],
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                       "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
            if req.get("expirationSeconds"):
                spec["expirationSeconds"] = req["expirationSeconds"]
            tr = self.kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                                   body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
            out[req.get("audience", "")] = {"token": tr["status"]["token"],
                                            "expirationTimestamp": tr["status"]["expirationTimestamp"]}
        return out

    def publish(self, node, pod, vol, csidriver):
        meta = pod["metadata"]
        uid = meta["uid"]
        ctx = dict(vol["csi"].get("volumeAttributes") or {})
        ctx["csi.storage.k8s.io/ephemeral"] = "true"
        if csidriver["spec"].get("podInfoOnMount"):
            ctx.update({
                "csi.storage.k8s.io/pod.name": meta["name"],
                "csi.storage.k8s.io/pod.namespace": meta["namespace"],
                "csi.storage.k8s.io/pod.uid": uid,
                "csi.storage.k8s.io/serviceAccount.name": pod["spec"].get("serviceAccountName", "default"),
            })
        if csidriver["spec"].get("tokenRequests"):
            ctx["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(self.tokens(pod, csidriver))
        target = self._target(uid, vol["name"])
        # Like kubelet (1.20+): the volume's dir, not the target, which the driver creates. A
        # fresh target dir would read as just-rotated content to a driver with rotation on
        # (its minimum cache age is the target's mtime), and the first mount would be skipped.
        os.makedirs(os.path.dirname(target), exist_ok=True)
        pb = self.csi_pb2
        cap = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(),
                                  access_mode=pb.VolumeCapability.AccessMode(mode=1))
        vid = volume_id(uid, vol["name"])
        self.stubs[node].NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=vid, target_path=target, volume_capability=cap,
            readonly=bool(vol["csi"].get("readOnly", False)), volume_context=ctx), timeout=120)
        record = {"node": node, "volume_id": vid, "target": target, "pod": f"{meta['namespace']}/{meta['name']}"}
        with open(os.path.join(os.path.dirname(target), "vol_data.json"), "w") as f:
            json.dump(record, f)
        return record

    def _remove_mount_dir(self, uid, volume):
        """kubelet's removeMountDir after a NodePublishVolume that failed for good: the target
        dir the driver created goes (unless something is mounted on it), with the volume's dir.
        Kept, it would read to a driver with rotation on as content written just now (its
        minimum cache age is the target's mtime), and the retry would be skipped as a success
        with nothing mounted and no SecretProviderClassPodStatus."""
        target = self._target(uid, volume)
        if os.path.ismount(target):
            return
        for path in (target, os.path.join(os.path.dirname(target), "vol_data.json"), os.path.dirname(target)):
            try:
                os.rmdir(path) if os.path.isdir(path) else os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove %s after a failed publish: %s", path, e)

    def unpublish(self, key, record):
        stub = self.stubs.get(record["node"])
        if stub is not None:
            stub.NodeUnpublishVolume(self.csi_pb2.NodeUnpublishVolumeRequest(
                volume_id=record["volume_id"], target_path=record["target"]), timeout=60)
        try:
            os.remove(os.path.join(os.path.dirname(record["target"]), "vol_data.json"))
            os.rmdir(os.path.dirname(record["target"]))
        except OSError:
            pass
        log.info("unpublished %s volume %s", record["pod"], key[1])

    def event(self, pod, reason, message, kind="Warning"):
        meta = pod["metadata"]
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": meta["name"] + ".", "namespace": meta["namespace"]},
                "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "reason": reason, "message": message[:1024], "type": kind,
                "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1}
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
        except KubeError as e:
            log.warning("could not record event on %s: %s", meta["name"], e)

    def sync(self):
        csidriver = self.kube.get(f"/apis/storage.k8s.io/v1/csidrivers/{DRIVER}", ok404=True)
        live = set()
        for node in self.stubs:
            pods = self.kube.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"})["items"]
            for pod in pods:
                meta = pod["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                vols = [v for v in pod["spec"].get("volumes") or [] if (v.get("csi") or {}).get("driver") == DRIVER]
                all_ok = bool(vols)
                for vol in vols:
                    key = (meta["uid"], vol["name"])
                    live.add(key)
                    if key in self.mounted:
                        self._maybe_republish(node, pod, vol, key, csidriver)
                        continue
                    all_ok = False
                    attempts, next_try = self.failures.get(key, (0, 0))
                    if time.monotonic() < next_try:
                        continue
                    if csidriver is None:
                        err = f"driver name {DRIVER} not found in the list of registered CSI drivers"
                        self._failed(pod, vol, key, attempts, err)
                        continue
                    try:
                        self.mounted[key] = self.publish(node, pod, vol, csidriver)
                        self.next_republish[key] = time.monotonic() + self.republish_interval
                        self.failures.pop(key, None)
                        log.info("published %s/%s volume %s on %s", meta["namespace"], meta["name"], vol["name"], node)
                    except (grpc.RpcError, KubeError) as e:
                        detail = f"rpc error: code = {e.code().name} desc = {e.details()}" if isinstance(e, grpc.RpcError) else str(e)
                        if isinstance(e, grpc.RpcError) and final_error(e):
                            self._remove_mount_dir(meta["uid"], vol["name"])
                        self._failed(pod, vol, key, attempts, detail)
                if vols and all(((meta["uid"], v["name"]) in self.mounted) for v in vols):
                    if (meta.get("annotations") or {}).get(MOUNTED_ANNOTATION) != "true":
                        self.kube.request("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                          body={"metadata": {"annotations": {MOUNTED_ANNOTATION: "true"}}},
                                          content_type="application/merge-patch+json")
        for key in [k for k in self.mounted if k not in live]:
            try:
                self.unpublish(key, self.mounted.pop(key))
            except grpc.RpcError as e:
                log.warning("unpublish of %s failed: %s", key, e.details())
        for key in [k for k in self.failures if k not in live]:
            self.failures.pop(key)
        for key in [k for k in self.next_republish if k not in live]:
            self.next_republish.pop(key)

    def _maybe_republish(self, node, pod, vol, key, csidriver):
        """kubelet's periodic NodePublishVolume of a mounted volume (requiresRepublish)."""
        if csidriver is None or not csidriver["spec"].get("requiresRepublish"):
            self.next_republish.pop(key, None)
            return
        now = time.monotonic()
        due = self.next_republish.setdefault(key, now + self.republish_interval)
        if now < due:
            return
        self.next_republish[key] = now + self.republish_interval
        meta = pod["metadata"]
        try:
            self.publish(node, pod, vol, csidriver)
            log.info("re-published %s/%s volume %s", meta["namespace"], meta["name"], vol["name"])
        except (grpc.RpcError, KubeError) as e:
            detail = f"rpc error: code = {e.code().name} desc = {e.details()}" if isinstance(e, grpc.RpcError) else str(e)
            msg = f'MountVolume.SetUp failed for volume "{vol["name"]}" : {detail}'
            log.warning("%s/%s: re-publish: %s", meta["namespace"], meta["name"], msg)
            self.event(pod, "FailedMount", msg)

    def _failed(self, pod, vol, key, attempts, detail):
        delay = min(2 ** attempts, 16)
        self.failures[key] = (attempts + 1, time.monotonic() + delay)
        msg = f'MountVolume.SetUp failed for volume "{vol["name"]}" : {detail}'
        log.warning("%s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], msg)
        self.event(pod, "FailedMount", msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--kubelet-dir", required=True)
    ap.add_argument("--node", action="append", required=True, help="NAME=unix:///path/to/csi.sock")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--republish-interval", type=float, default=60.0,
                    help="seconds between re-publishes of volumes whose CSIDriver has requiresRepublish")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    nodes = dict(n.split("=", 1) for n in args.node)
    shim = Shim(Kube(args.kubeconfig), args.kubelet_dir, nodes, args.republish_interval)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    log.info("managing CSI volumes on nodes %s", ", ".join(nodes))
    while not stop:
        try:
            shim.sync()
        except Exception as e:  # keep going like kubelet does; the next sync retries
            log.warning("sync failed: %s", e)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
