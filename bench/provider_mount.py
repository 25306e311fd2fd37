"""Mount benchmark: aws-csi-provider against the upstream Go provider, in the same run.

Runs against the local environment (tests/env/up.sh; source tests/env/state/env.sh first).
For each provider it sends the same Mount requests the secrets-store-csi-driver would send
(real service-account tokens, Pod Identity through the environment's agent endpoint and
moto) straight to the provider's socket, and measures:
  - latency per mount (p50 / p90 / max) for a pod with N secrets, warm and cold,
  - AWS calls per mount (counted by the AWS stand-in),
  - the provider's resident memory after the run.
It prints a table and the ratios ours/upstream. The upstream provider is used when
BOOTSTRAP_UPSTREAM_PROVIDER_BIN names its binary (tests/env/build.sh upstream-provider);
without it, only our numbers are printed and the peer is reported missing.

    $BOOTSTRAP_ENV_PYTHON bench/provider_mount.py [--secrets 10] [--mounts 30]

No secret value is printed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import grpc
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "env", "kubelet"))
from kubeapi import Kube  # noqa: E402
from protos import load  # noqa: E402

pb, pb_grpc = load("provider")
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
    "Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"error: {name} is not set\nhint: run tests/env/up.sh and source tests/env/state/env.sh")
    return v


def setup(n_secrets):
    """Secrets, a role allowed exactly them, an association, a service account and its tokens."""
    region, cluster = env("AWS_REGION"), env("BOOTSTRAP_TEST_CLUSTER")
    tag = "bench-" + uuid.uuid4().hex[:8]
    sm, iam, eks = (boto3.client(s, region_name=region) for s in ("secretsmanager", "iam", "eks"))
    arns = [sm.create_secret(Name=f"{tag}/s{i}", SecretString=uuid.uuid4().hex)["ARN"] for i in range(n_secrets)]
    role = iam.create_role(RoleName=tag, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    iam.put_role_policy(RoleName=tag, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": arns},
            {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}))
    eks.create_pod_identity_association(clusterName=cluster, namespace=tag, serviceAccount="app", roleArn=role)
    kube = Kube(env("KUBECONFIG"))
    kube.apply(f"/api/v1/namespaces/{tag}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tag}})
    kube.apply(f"/api/v1/namespaces/{tag}/serviceaccounts/app",
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": tag}})
    tokens = {}
    for aud in ("pods.eks.amazonaws.com", "sts.amazonaws.com"):
        tr = kube.request("POST", f"/api/v1/namespaces/{tag}/serviceaccounts/app/token",
                          body={"spec": {"audiences": [aud], "expirationSeconds": 3600}})
        tokens[aud] = {"token": tr["status"]["token"], "expirationTimestamp": tr["status"]["expirationTimestamp"]}
    objects = "".join(f'- objectName: "{tag}/s{i}"\n  objectType: secretsmanager\n' for i in range(n_secrets))
    attrs = {"csi.storage.k8s.io/pod.name": "bench", "csi.storage.k8s.io/pod.namespace": tag,
             "csi.storage.k8s.io/pod.uid": str(uuid.uuid4()), "csi.storage.k8s.io/serviceAccount.name": "app",
             "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens), "secretProviderClass": "bench",
             "objects": objects, "usePodIdentity": "true", "region": region}
    return tag, attrs


def calls():
    return requests.get(env("BOOTSTRAP_ENV_CONTROL") + "/calls", timeout=10).json()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def run(name, sock, pid, attrs, mounts, n_secrets):
    # tonic refuses the socket path as :authority; name a plain one like the Go driver does.
    channel = grpc.insecure_channel(f"unix://{sock}", options=[("grpc.default_authority", "localhost")])
    stub = pb_grpc.CSIDriverProviderStub(channel)
    stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10)
    lat, before = [], calls()
    with tempfile.TemporaryDirectory() as target:
        for _ in range(mounts):
            t = time.perf_counter()
            r = stub.Mount(pb.MountRequest(attributes=json.dumps(attrs), secrets="{}", target_path=target,
                                           permission="420"), timeout=60)
            lat.append((time.perf_counter() - t) * 1000)
            got = len(r.files) or len(os.listdir(target))
            if got != n_secrets:
                sys.exit(f"error: {name} returned {got} files, expected {n_secrets}")
    after = calls()
    aws = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    lat_sorted = sorted(lat)
    return {"provider": name, "first_ms": lat[0], "p50_ms": statistics.median(lat_sorted[1:] or lat),
            "p90_ms": lat_sorted[int(0.9 * (len(lat) - 1))], "max_ms": lat_sorted[-1],
            "aws_calls_per_mount": sum(aws.values()) / mounts, "calls": aws, "rss_mib": rss_kib(pid) / 1024}


def start_upstream(binary):
    d = tempfile.mkdtemp(prefix="upstream-provider-")
    proc = subprocess.Popen([binary, f"--provider-volume={d}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "AWS_ENDPOINT_URL": env("AWS_ENDPOINT_URL")})
    for _ in range(100):
        if os.path.exists(os.path.join(d, "aws.sock")):
            return proc, os.path.join(d, "aws.sock"), d
        time.sleep(0.1)
    proc.kill()
    sys.exit("error: the upstream provider did not create its socket within 10s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secrets", type=int, default=10)
    ap.add_argument("--mounts", type=int, default=30)
    args = ap.parse_args()
    _, attrs = setup(args.secrets)
    state = env("BOOTSTRAP_ENV_STATE")
    with open(os.path.join(state, "pids", "aws-csi-provider.pid")) as f:
        ours_pid = int(f.read())
    results = [run("aws-csi-provider", os.path.join(env("CSI_PROVIDER_DIR"), "aws.sock"), ours_pid, attrs,
                   args.mounts, args.secrets)]
    upstream = os.environ.get("BOOTSTRAP_UPSTREAM_PROVIDER_BIN")
    if upstream:
        proc, sock, d = start_upstream(upstream)
        try:
            results.append(run("upstream 3.1.1 (Go)", sock, proc.pid, attrs, args.mounts, args.secrets))
        finally:
            proc.terminate()
            shutil.rmtree(d, ignore_errors=True)
    print(f"{args.mounts} mounts of a pod with {args.secrets} Secrets Manager objects over Pod Identity")
    print(f"{'provider':24} {'first ms':>9} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'AWS calls/mount':>16} {'RSS MiB':>8}")
    for r in results:
        print(f"{r['provider']:24} {r['first_ms']:9.1f} {r['p50_ms']:8.1f} {r['p90_ms']:8.1f} {r['max_ms']:8.1f} "
              f"{r['aws_calls_per_mount']:16.2f} {r['rss_mib']:8.1f}")
    for r in results:
        print(f"  {r['provider']}: calls {json.dumps(r['calls'], sort_keys=True)}")
    if len(results) == 2:
        o, u = results
        print(f"ratio ours/upstream: p50 {o['p50_ms'] / u['p50_ms']:.2f}, AWS calls "
              f"{o['aws_calls_per_mount'] / max(u['aws_calls_per_mount'], 1e-9):.2f}, RSS {o['rss_mib'] / u['rss_mib']:.2f}")
    else:
        print("peer: the upstream provider is not available in this run (set BOOTSTRAP_UPSTREAM_PROVIDER_BIN); no ratio")


if __name__ == "__main__":
    main()
