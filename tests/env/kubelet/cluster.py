"""Cluster chores for up.sh: wait for the apiserver, register the fake EKS nodes.

    python cluster.py --kubeconfig K wait [--timeout S] [--service-account]
    python cluster.py --kubeconfig K nodes --region R NAME[=zone] ...
    python cluster.py --kubeconfig K nodes-ready [--timeout S] NAME ...
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubeapi import Kube, KubeError  # noqa: E402


def wait(kube, timeout, service_account):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = kube.session.get(kube.server + "/readyz", timeout=5, verify=kube.ca)
            if r.status_code == 200:
                # The default service account appears once the controller-manager runs.
                if not service_account or kube.get("/api/v1/namespaces/default/serviceaccounts/default", ok404=True):
                    return
                last = "default service account not created yet"
            else:
                last = r.text.strip().splitlines()[-1:] or r.status_code
        except Exception as e:  # noqa: BLE001 - report the last cause on timeout
            last = e
        time.sleep(0.5)
    sys.exit(f"the apiserver at {kube.server} was not ready after {timeout}s: {last}")


def nodes(kube, region, specs, nodegroup):
    for i, spec in enumerate(specs):
        name, _, zone = spec.partition("=")
        zone = zone or f"{region}{'abc'[i % 3]}"
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone,
                    "failure-domain.beta.kubernetes.io/region": region,
                    "node.kubernetes.io/instance-type": "m5.large",
                    "eks.amazonaws.com/nodegroup": nodegroup, "eks.amazonaws.com/capacityType": "ON_DEMAND",
                    "eks.amazonaws.com/nodegroup-image": "ami-0bootstraptest0000",
                    "type": "kwok",
                },
            },
            "spec": {"providerID": f"aws:///{zone}/i-0{i:016x}"},
        }
        kube.apply(f"/api/v1/nodes/{name}", node)
        print(f"node {name} registered ({zone})", file=sys.stderr)


def nodes_ready(kube, names, timeout):
    deadline = time.monotonic() + timeout
    pending = set(names)
    while time.monotonic() < deadline:
        for name in list(pending):
            node = kube.get(f"/api/v1/nodes/{name}", ok404=True) or {}
            conds = (node.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                pending.discard(name)
        if not pending:
            return
        time.sleep(0.3)
    sys.exit(f"nodes not Ready after {timeout}s: {', '.join(sorted(pending))} (is kwok running?)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--timeout", type=float, default=120)
    w.add_argument("--service-account", action="store_true", help="also wait for default/default")
    n = sub.add_parser("nodes")
    n.add_argument("--region", required=True)
    n.add_argument("--nodegroup", default="bootstrap-test-ng")
    n.add_argument("names", nargs="+")
    r = sub.add_parser("nodes-ready")
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("names", nargs="+")
    args = ap.parse_args()
    kube = Kube(args.kubeconfig)
    try:
        if args.cmd == "wait":
            wait(kube, args.timeout, args.service_account)
        elif args.cmd == "nodes-ready":
            nodes_ready(kube, args.names, args.timeout)
        else:
            nodes(kube, args.region, args.names, args.nodegroup)
    except KubeError as e:
        sys.exit(f"cluster.py {args.cmd}: {e}")


if __name__ == "__main__":
    main()
