"""Makes the environment's per-node processes run what the cluster's DaemonSets say.

The environment runs one secrets-store-csi-driver per fake node and one AWS provider, each
under tests/env/supervise.sh with a process dir `$STATE/nodes/<name>/` (argv, pid, status).
This loop reads the DaemonSets bootstrap manages (label app.kubernetes.io/managed-by=bootstrap):
the driver's (container `secrets-store`), ours (container `provider`) and upstream's provider
(container `provider-aws-installer`), newest first, turns their pod template into each
process's command (podspec.py) and, when it differs from what runs, writes the new argv and
stops the running child so that its supervisor starts the new one at once. Without such a
DaemonSet a process runs the environment's defaults.

Like kubelet, it reports a process that keeps exiting on the DaemonSet's pods on the node: the
container's state becomes `waiting` with reason CrashLoopBackOff, its restartCount grows and
the pod is not Ready (annotation csi.bootstrap.test/crashloop keeps kwok from flipping it back).

    python follow.py --config $STATE/follow.json [once]
"""
import argparse
import datetime
import json
import logging
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podspec  # noqa: E402
from kubeapi import Kube, KubeError  # noqa: E402

CRASHLOOP_ANNOTATION = "csi.bootstrap.test/crashloop"
# A run shorter than this that ended counts as a crash (kubelet resets its back-off after 10 min;
# the environment's processes either fail at once or run for the whole test).
SHORT_RUN_SECONDS = 10
log = logging.getLogger("follow")


def newest(dss, roles):
    found = [d for d in dss if podspec.role_of(d) in roles]
    found.sort(key=lambda d: (d["metadata"].get("creationTimestamp", ""), d["metadata"]["name"]))
    return found[-1] if found else None


class Follower:
    def __init__(self, kube, cfg):
        self.kube, self.cfg = kube, cfg
        self.reported = {}  # pod uid -> (crashlooping, restarts)

    def proc_dir(self, name):
        d = os.path.join(self.cfg["state"], "nodes", name)
        os.makedirs(d, exist_ok=True)
        return d

    def desired(self, dss):
        """(process name, argv, DaemonSet or None, node index or None) for every process."""
        out = []
        driver = newest(dss, {podspec.DRIVER})
        container = podspec.container_of(driver, podspec.DRIVER) if driver else podspec.DEFAULT_DRIVER
        for i in range(len(self.cfg["nodes"])):
            out.append((f"csi-driver-{i}", podspec.argv(podspec.DRIVER, container, self.cfg, i), driver, i))
        provider = newest(dss, {podspec.OURS, podspec.UPSTREAM})
        role = podspec.role_of(provider) if provider else podspec.OURS
        if role == podspec.UPSTREAM and not os.path.exists(self.cfg["upstream_bin"]):
            # Shown on the pods as a crash loop; the argv says why in the provider's log.
            argv = ["sh", "-c", f"echo 'the upstream provider binary {self.cfg['upstream_bin']} is not built: "
                                "run tests/env/build.sh upstream-provider' >&2; exit 1"]
        else:
            container = podspec.container_of(provider, role) if provider else podspec.DEFAULT_PROVIDER
            sa = "kube-system/default"
            if provider:
                spec = provider["spec"]["template"]["spec"]
                sa = f"{provider['metadata']['namespace']}/{spec.get('serviceAccountName') or 'default'}"
            argv = podspec.argv(role, container, self.cfg, service_account=sa)
        out.append(("aws-csi-provider", argv, provider, None))
        return out

    def apply(self, name, argv):
        d = self.proc_dir(name)
        data = "".join(a + "\0" for a in argv).encode()
        path = os.path.join(d, "argv")
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    return False
        except FileNotFoundError:
            pass
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        try:
            with open(os.path.join(d, "pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        log.info("%s: now runs %s", name, " ".join(argv))
        return True

    def status(self, name):
        try:
            with open(os.path.join(self.cfg["state"], "nodes", name, "status")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def report(self, ds, name, node_index):
        """Mirrors process `name`'s restarts and crash loop on `ds`'s pods (on its node)."""
        st = self.status(name)
        if st is None:
            return
        crash = st["restarts"] > 0 and (st["state"] == "waiting" or time.time() - st["started"] < SHORT_RUN_SECONDS)
        ns = ds["metadata"]["namespace"]
        selector = ",".join(f"{k}={v}" for k, v in ds["spec"]["selector"].get("matchLabels", {}).items())
        nodes = self.cfg["nodes"] if node_index is None else [self.cfg["nodes"][node_index]]
        container = podspec.CONTAINERS[podspec.role_of(ds)]
        for node in nodes:
            pods = self.kube.get(f"/api/v1/namespaces/{ns}/pods", params={
                "labelSelector": selector, "fieldSelector": f"spec.nodeName={node}"})["items"]
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
                    continue  # kwok has not started it yet
                key = (crash, st["restarts"])
                if self.reported.get(pod["metadata"]["uid"], (False, 0)) == key:
                    continue
                self.patch_pod(pod, container, crash, st)
                self.reported[pod["metadata"]["uid"]] = key

    def patch_pod(self, pod, container, crash, st):
        meta = pod["metadata"]
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = datetime.datetime.fromtimestamp(st["started"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        statuses = []
        for c in pod["spec"]["containers"]:
            s = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": now}}}
            if c["name"] == container:
                s["restartCount"] = st["restarts"]
                if st.get("last_exit") is not None:
                    s["lastState"] = {"terminated": {"exitCode": st["last_exit"], "reason": "Error",
                                                     "startedAt": started, "finishedAt": now}}
                if crash:
                    s.update(ready=False, started=False, state={"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {container} in pod "
                                   f"{meta['name']}_{meta['namespace']}({meta['uid']})"}})
                else:
                    s["state"] = {"running": {"startedAt": started}}
            statuses.append(s)
        ready = "False" if crash else "True"
        conditions = [c for c in (pod.get("status") or {}).get("conditions") or []
                      if c.get("type") not in ("Ready", "ContainersReady")]
        conditions += [{"type": t, "status": ready, "lastTransitionTime": now} for t in ("Ready", "ContainersReady")]
        try:
            self.kube.request("PATCH", base, content_type="application/merge-patch+json", body={
                "metadata": {"annotations": {CRASHLOOP_ANNOTATION: "true" if crash else None}}})
            self.kube.request("PATCH", base + "/status", content_type="application/merge-patch+json",
                              body={"status": {"containerStatuses": statuses, "conditions": conditions}})
            log.info("pod %s/%s: %s (restarts %d)", meta["namespace"], meta["name"],
                     "CrashLoopBackOff" if crash else "running", st["restarts"])
        except KubeError as e:
            log.warning("could not report on pod %s/%s: %s", meta["namespace"], meta["name"], e)

    def sync(self, report=True):
        dss = self.kube.get("/apis/apps/v1/daemonsets", params={"labelSelector": podspec.MANAGED})["items"]
        for name, argv, ds, node_index in self.desired(dss):
            self.apply(name, argv)
            if report and ds is not None:
                self.report(ds, name, node_index)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the environment's follow.json (written by up.sh)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("what", nargs="?", default="run", choices=["run", "once"],
                    help="once: write every process's argv for the cluster as it is, then exit")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with open(args.config) as f:
        cfg = json.load(f)
    follower = Follower(Kube(cfg["kubeconfig"]), cfg)
    if args.what == "once":
        follower.sync(report=False)
        return
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    log.info("following the DaemonSets labelled %s", podspec.MANAGED)
    while not stop:
        try:
            follower.sync()
        except Exception as e:  # keep following; the next round retries
            log.warning("follow failed: %s", e)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
