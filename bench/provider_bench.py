"""Provider benchmark: aws-csi-provider against the upstream Go provider 3.1.1, interleaved in
one run, same requests, same backend (the local stand-in of tests/env), over Pod Identity.

Both providers run inside a network namespace this script creates (bench/netns.py), where the
Pod Identity agent's hard-coded 169.254.170.23 is local and forwarders reach the stand-in over
unix sockets; neither is given an endpoint override for the agent. Measured:
  - mount latency p50/p99 for N secrets, sequential and C concurrent, each pod new (its own
    credential exchange), beside the floor: ⌈N/20⌉ BatchGetSecretValue timed directly;
  - remount latency (the driver's rotation poll, nothing changed) of one pod;
  - resident memory idle, at peak (VmHWM) and after --long mounts; threads;
  - AWS calls per mount, counted by the stand-in.
Needs root, tests/env up (source tests/env/state/env.sh) and both binaries:
    $BOOTSTRAP_ENV_PYTHON bench/provider_bench.py --ours target/provider/aws-csi-provider \\
        --upstream ~/.cache/bootstrap-env/upstream-aws-provider-3.1.1/secrets-store-csi-driver-provider-aws
--smoke runs tiny sizes (seconds). Prints markdown tables; --json FILE keeps the raw figures.
No secret value is printed: files are checked against canaries, then dropped.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import grpc
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "env", "kubelet"))
from kubeapi import Kube  # noqa: E402
from netns import (Namespace, hosts_setup, in_cluster_setup, make_tls, rss_kib, threads,  # noqa: E402
                   wait_for_socket)
from protos import load  # noqa: E402

pb, pb_grpc = load("provider")
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
    "Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"error: {name} is not set\nhint: run tests/env/up.sh and source tests/env/state/env.sh")
    return v


class Backend:
    """Secrets (with canary values), a role allowed exactly them, an association, tokens."""

    def __init__(self, n_max, workdir):
        self.region, cluster = env("AWS_REGION"), env("BOOTSTRAP_TEST_CLUSTER")
        self.tag = tag = "bench-" + uuid.uuid4().hex[:8]
        self.canary = "canary-" + uuid.uuid4().hex
        sm, iam, eks = (boto3.client(s, region_name=self.region) for s in ("secretsmanager", "iam", "eks"))
        self.names = [f"{tag}/s{i}" for i in range(n_max)]
        self.arns = [sm.create_secret(Name=n, SecretString=f"{self.canary}-{i}")["ARN"]
                     for i, n in enumerate(self.names)]
        role = iam.create_role(RoleName=tag, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        iam.put_role_policy(RoleName=tag, PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                 "Resource": self.arns},
                {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}))
        eks.create_pod_identity_association(clusterName=cluster, namespace=tag, serviceAccount="app", roleArn=role)
        kube = Kube(env("KUBECONFIG"))
        kube.apply(f"/api/v1/namespaces/{tag}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tag}})
        kube.apply(f"/api/v1/namespaces/{tag}/serviceaccounts/app",
                   {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                       "name": "app", "namespace": tag, "annotations": {"eks.amazonaws.com/role-arn": role}}})
        self.tokens = {}
        for aud in ("pods.eks.amazonaws.com", "sts.amazonaws.com"):
            tr = kube.request("POST", f"/api/v1/namespaces/{tag}/serviceaccounts/app/token",
                              body={"spec": {"audiences": [aud], "expirationSeconds": 7200}})
            self.tokens[aud] = {"token": tr["status"]["token"],
                                "expirationTimestamp": tr["status"]["expirationTimestamp"]}
        # What upstream's rest.InClusterConfig() reads: a token of a service account allowed what
        # its chart's ClusterRole allows (IRSA reads the pod's service account).
        sa, rbac = "/api/v1/namespaces/kube-system/serviceaccounts", "/apis/rbac.authorization.k8s.io/v1"
        kube.apply(f"{sa}/bench-provider", {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": "bench-provider", "namespace": "kube-system"}})
        kube.apply(f"{rbac}/clusterroles/bench-provider", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "bench-provider"},
            "rules": [{"apiGroups": [""], "resources": ["serviceaccounts", "pods", "nodes"], "verbs": ["get"]}]})
        kube.apply(f"{rbac}/clusterrolebindings/bench-provider", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "bench-provider"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-provider"},
            "subjects": [{"kind": "ServiceAccount", "name": "bench-provider", "namespace": "kube-system"}]})
        tr = kube.request("POST", f"{sa}/bench-provider/token", body={"spec": {"expirationSeconds": 7200}})
        self.sa_dir = os.path.join(workdir, "serviceaccount")
        os.makedirs(self.sa_dir)
        with open(os.path.join(self.sa_dir, "token"), "w") as f:
            f.write(tr["status"]["token"])
        with open(os.path.join(self.sa_dir, "namespace"), "w") as f:
            f.write("kube-system")
        pki = os.path.join(env("BOOTSTRAP_ENV_STATE"), "pki", "ca.crt")
        with open(pki) as src, open(os.path.join(self.sa_dir, "ca.crt"), "w") as dst:
            dst.write(src.read())

    def attrs(self, n, pod, auth="pod_identity"):
        objects = "".join(f'- objectName: "{name}"\n  objectType: secretsmanager\n' for name in self.names[:n])
        return json.dumps({"usePodIdentity": "true" if auth == "pod_identity" else "",
            "csi.storage.k8s.io/pod.name": pod, "csi.storage.k8s.io/pod.namespace": self.tag,
            "csi.storage.k8s.io/pod.uid": str(uuid.uuid4()), "csi.storage.k8s.io/serviceAccount.name": "app",
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(self.tokens), "secretProviderClass": "bench",
            "objects": objects, "region": self.region})

    def check(self, who, n, resp):
        """Every file present with its canary; nothing printed about values."""
        if len(resp.files) != n:
            raise SystemExit(f"error: {who} returned {len(resp.files)} files, expected {n}")
        for f in resp.files:
            i = int(f.path.rsplit("s", 1)[-1])
            if f.contents != f"{self.canary}-{i}".encode():
                raise SystemExit(f"error: {who} returned wrong contents for {f.path}")

    def agent_credentials(self):
        r = requests.get(env("POD_IDENTITY_ENDPOINT"), timeout=10,
                         headers={"Authorization": self.tokens["pods.eks.amazonaws.com"]["token"]})
        r.raise_for_status()
        return r.json()


def calls():
    return requests.get(env("BOOTSTRAP_ENV_CONTROL") + "/calls", timeout=10).json()


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


class Provider:
    def __init__(self, name, proc, sock, log):
        self.name, self.proc, self.pid, self.log = name, proc, proc.pid, log
        self.channel = grpc.insecure_channel(f"unix:{sock}")  # no :authority override
        self.stub = pb_grpc.CSIDriverProviderStub(self.channel)
        self.stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10)
        self.idle_rss = rss_kib(self.pid)[0]

    def mount(self, attrs, target, versions=()):
        return self.stub.Mount(pb.MountRequest(attributes=attrs, secrets="{}", target_path=target,
                                               permission="420", current_object_version=list(versions)), timeout=60)


def start_providers(ns, args, workdir, backend, tls):
    """Both providers inside `ns`. For IRSA both resolve sts.<region>.amazonaws.com to the
    namespace's TLS stand-in (hosts file, CA through SSL_CERT_FILE): upstream's STS client
    cannot be pointed elsewhere, and ours is given the same endpoint so both take one path."""
    ca, hosts = tls
    sts = f"https://sts.{backend.region}.amazonaws.com"
    base = {"PATH": os.environ["PATH"], "AWS_REGION": backend.region, "AWS_ENDPOINT_URL": env("AWS_ENDPOINT_URL"),
            "AWS_EC2_METADATA_DISABLED": "true", "SSL_CERT_FILE": ca}
    out = []
    d = os.path.join(workdir, "ours")
    log = os.path.join(workdir, "ours.log")
    ours_env = {**base, "RUST_LOG": "info", "KUBECONFIG": env("KUBECONFIG"), "AWS_ENDPOINT_URL_STS": sts}
    p = ns.spawn([args.ours, f"--provider-volume={d}"], ours_env, log, setup=hosts_setup(hosts))
    wait_for_socket(os.path.join(d, "aws.sock"), p, "aws-csi-provider", log)
    out.append(Provider("ours", p, os.path.join(d, "aws.sock"), log))
    if args.upstream:
        d = os.path.join(workdir, "upstream")
        os.makedirs(d)
        log = os.path.join(workdir, "upstream.log")
        kenv = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(args.apiserver_port)}
        p = ns.spawn([args.upstream, f"--provider-volume={d}", "--driver-writes-secrets"], {**base, **kenv}, log,
                     setup=in_cluster_setup(backend.sa_dir, hosts))
        wait_for_socket(os.path.join(d, "aws.sock"), p, "upstream provider", log)
        out.append(Provider("upstream", p, os.path.join(d, "aws.sock"), log))
    return out


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def mount_block(prov, backend, n, mounts, conc, target, auth="pod_identity"):
    """`mounts` new pods, `conc` at a time; latencies in ms and the stand-in's call delta."""
    before = calls()

    def one(k):
        attrs = backend.attrs(n, f"bench-{k}", auth)
        t = time.perf_counter()
        resp = prov.mount(attrs, target)
        ms = (time.perf_counter() - t) * 1000
        backend.check(prov.name, n, resp)
        return ms

    with ThreadPoolExecutor(conc) as pool:
        lat = list(pool.map(one, range(mounts)))
    return lat, delta(before, calls())


def floor_block(ns, backend, creds, n, mounts, conc):
    env_ = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"], "AWS_SESSION_TOKEN": creds["Token"]}
    out = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, os.path.join(HERE, "floor.py"),
                          "--endpoint", env("AWS_ENDPOINT_URL"), "--region", backend.region,
                          "--mounts", str(mounts), "--concurrency", str(conc), *backend.arns[:n]],
                         env=env_, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"error: the floor run failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def remount_block(prov, backend, n, remounts, workdir):
    """One pod mounted once (files written like the driver does), then rotation polls."""
    target = tempfile.mkdtemp(prefix=f"remount-{prov.name}-", dir=workdir)
    attrs = backend.attrs(n, "bench-remount")
    first = prov.mount(attrs, target)
    for f in first.files:
        with open(os.path.join(target, f.path), "wb") as fh:
            fh.write(f.contents)
    versions = list(first.object_version)
    before, lat = calls(), []
    for _ in range(remounts):
        t = time.perf_counter()
        resp = prov.mount(attrs, target, versions)
        lat.append((time.perf_counter() - t) * 1000)
        backend.check(prov.name, n, resp)
    return lat, delta(before, calls())


def summarize(lat):
    return {"n": len(lat), "p50": statistics.median(lat), "p99": pct(lat, 0.99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--upstream", help="the upstream binary; without it only ours is measured")
    ap.add_argument("--secrets", default="1,10,50")
    ap.add_argument("--irsa-secrets", default="10", help="sizes also measured over IRSA ('' for none)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    ap.add_argument("--seq-mounts", type=int, default=30, help="sequential mounts per provider per round")
    ap.add_argument("--conc-mounts", type=int, default=128, help="concurrent mounts per provider per round")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--remounts", type=int, default=30)
    ap.add_argument("--long", type=int, default=10000, help="mounts (1 secret, concurrent) for memory growth")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a check that it all works")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    if a.smoke:
        a.secrets, a.rounds, a.seq_mounts, a.conc_mounts, a.concurrency, a.remounts, a.long = "1,3", 1, 3, 8, 4, 3, 20
        a.irsa_secrets = "3"
    sizes = [int(x) for x in a.secrets.split(",")]
    irsa_sizes = [int(x) for x in a.irsa_secrets.split(",") if x]
    o = int(os.environ.get("BOOTSTRAP_ENV_PORT_OFFSET", "0"))
    aws_port = int(env("AWS_ENDPOINT_URL").rsplit(":", 1)[1])
    agent_port = int(env("POD_IDENTITY_ENDPOINT").split(":")[2].split("/")[0])
    a.apiserver_port = 16443 + o
    work = tempfile.mkdtemp(prefix="provider-bench-")
    backend = Backend(max(sizes + irsa_sizes), work)
    ca, cert, key = make_tls(work, f"sts.{backend.region}.amazonaws.com")
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write(f"127.0.0.1 localhost\n::1 localhost\n127.0.0.1 sts.{backend.region}.amazonaws.com\n")
    forwards = {("169.254.170.23", 80): ("127.0.0.1", agent_port), ("127.0.0.1", aws_port): ("127.0.0.1", aws_port),
                ("127.0.0.1", a.apiserver_port): ("127.0.0.1", a.apiserver_port)}
    results = {"cases": [], "remount": [], "memory": {}, "config": vars(a)}
    tls = {("127.0.0.1", 443): ("127.0.0.1", aws_port)}
    with Namespace(f"bench{os.getpid()}", work, forwards, tls=tls, tls_files=(cert, key)) as ns:
        provs = start_providers(ns, a, work, backend, (ca, hosts))
        creds = backend.agent_credentials()
        target = os.path.join(work, "target")
        os.makedirs(target)
        cases = [(n, "pod_identity") for n in sizes] + [(n, "irsa") for n in irsa_sizes]
        for n, auth in cases:
            for mode, mounts, conc in (("sequential", a.seq_mounts, 1), (f"{a.concurrency} concurrent", a.conc_mounts,
                                                                         a.concurrency)):
                case = {"secrets": n, "auth": auth, "mode": mode, "lat": {}, "calls": {}, "mounts": {}}
                for r in range(a.rounds):
                    order = provs if r % 2 == 0 else provs[::-1]
                    for p in order:
                        lat, d = mount_block(p, backend, n, mounts, conc, target, auth)
                        case["lat"].setdefault(p.name, []).extend(lat)
                        for k, v in d.items():
                            case["calls"].setdefault(p.name, {}).setdefault(k, 0)
                            case["calls"][p.name][k] += v
                        case["mounts"][p.name] = case["mounts"].get(p.name, 0) + mounts
                    case["lat"].setdefault("floor", []).extend(floor_block(ns, backend, creds, n, mounts, conc))
                results["cases"].append(case)
                print(f"  done: {n} secrets, {auth}, {mode}", file=sys.stderr)
        for n in sizes:
            for p in provs:
                lat, d = remount_block(p, backend, n, a.remounts, work)
                results["remount"].append({"secrets": n, "provider": p.name, **summarize(lat),
                                           "calls_per_remount": {k: v / a.remounts for k, v in d.items()}})
        for p in provs:
            results["memory"][p.name] = {"idle_kib": p.idle_rss, "threads": threads(p.pid)}
        # Memory growth: --long mounts of new pods, in steps, interleaved.
        step = max(1, a.long // 5)
        done = 0
        while done < a.long:
            k = min(step, a.long - done)
            for p in provs:
                mount_block(p, backend, 1, k, a.concurrency, target)
                rss, hwm = rss_kib(p.pid)
                results["memory"][p.name].setdefault("rss_after_kib", []).append([done + k, rss])
                results["memory"][p.name]["peak_kib"] = hwm
            done += k
        time.sleep(12)  # idle long enough for ours' periodic trim and Go's scavenger to run
        for p in provs:
            results["memory"][p.name]["threads_after"] = threads(p.pid)
            results["memory"][p.name]["settled_kib"] = rss_kib(p.pid)[0]
        for p in provs:
            with open(p.log, errors="replace") as f:
                if backend.canary in f.read():
                    raise SystemExit(f"error: a secret value reached the {p.name} log")
    shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    print(report(results, [p.name for p in provs]))


def report(res, names):
    from report import render
    return render(res, names)


if __name__ == "__main__":
    main()
