#!/usr/bin/env python3
"""`bootstrap controller`: 500 TeamSecrets objects applied at once, with and without a rate limit.

Runs against the local environment (tests/env/up.sh, then this script; it reads
tests/env/state/env.sh). It installs the platform and the controller's CRDs with
`bootstrap up --controller` (the Deployment's pods are kwok's: nothing runs in them), then runs
`bootstrap controller` as a host process with the environment's administrator credentials
(AWS keys and kubeconfig of env.sh), confined to the boundary `up --controller` made, without
leader election, and measures:

  1. no fault: --objects TeamSecrets objects (--namespaces namespaces, `verify: false`: a
     verification pod would measure the kubelet shim, not the controller) applied at once by
     --apply-threads threads; wall time until every one is Ready=True for its generation, the
     AWS calls counted at the stand-in per operation, the controller's peak RSS (VmHWM), RSS at
     the end, CPU seconds (utime + stime) and its /metrics;
  2. resync: a new controller process finds the converged objects; the calls and time until it
     has reconciled them all and its queue is empty;
  3. deletion without fault: every object deleted (per-namespace deletecollection), the
     controller's finalizer removes the roles, associations and SecretProviderClasses;
  4. the same apply and deletion under a rate limit (a token bucket in the stand-in, --rate
     calls/s, burst --rate, for IAM and for Pod Identity association calls, set before the
     objects are applied): wall time against the bound = max over the limited groups of the
     calls that group needed (counted less throttled answers) ÷ the rate;
  5. what is left: roles under the controller's path, associations and SecretProviderClasses
     in the bench namespaces (all must be none).

Writes Markdown to --out and JSON to --json, and prints the Markdown. Not a test: CI does not
run it. Every request goes to 127.0.0.1. No secret value is read or printed.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GROUP = "/apis/bootstrap.podid/v1alpha1"
LABEL = "bench.bootstrap.podid/run"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# The environment's exports and the stand-in's control API, as up_bench reads them.
from up_bench import control, env_sh  # noqa: E402  (bench/ is the script's directory)


def boto(env: dict, service: str):
    import boto3  # the environment's virtualenv has it

    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-west-2"),
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


class Kube:
    """The apiserver over HTTPS with the kubeconfig's client certificate (kubectl is not here)."""

    def __init__(self, kubeconfig: str):
        import yaml

        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        self.base = cluster["server"]
        self.dir = tempfile.mkdtemp(prefix="ctl-bench-")
        paths = {}
        for key, name in (("certificate-authority-data", "ca"), ("client-certificate-data", "crt"),
                          ("client-key-data", "key")):
            paths[name] = os.path.join(self.dir, name)
            with open(paths[name], "wb") as f:
                os.chmod(paths[name], 0o600)
                f.write(base64.b64decode(user.get(key) or cluster.get(key)))
        self.cert, self.ca = (paths["crt"], paths["key"]), paths["ca"]
        self.local = threading.local()

    def session(self):
        import requests

        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
        return s

    def req(self, method: str, path: str, body=None, ok=(200, 201, 202), params=None):
        # verify/cert per request: a session's are overridden by REQUESTS_CA_BUNDLE.
        r = self.session().request(method, self.base + path, json=body, params=params, timeout=60,
                                   verify=self.ca, cert=self.cert)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}


class Controller:
    """`bootstrap controller` as a host process; /proc counters and its /metrics."""

    def __init__(self, binary: str, env: dict, cluster: str, boundary: str, concurrency: int, port: int, log: str):
        self.port = port
        self.log = open(log, "a")
        self.log.write(f"\n=== start {datetime.datetime.now():%H:%M:%S}\n")
        self.log.flush()
        cmd = [binary, "controller", "--cluster", cluster, "--permissions-boundary", boundary,
               "--no-leader-election", "--concurrency", str(concurrency), "--resync", "30m",
               "--metrics-addr", f"127.0.0.1:{port}"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, **env, BOOTSTRAP_LOG="info"), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.metrics()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the controller did not start (see {log})")
                time.sleep(0.3)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return {m.group(1).removeprefix("bootstrap_controller_"): float(m.group(2))
                for m in re.finditer(r"^(\w+) ([0-9.e+-]+)$", text, re.M)}

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def mem(self) -> dict[str, float]:
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "Threads"):
                    out[k] = int(v.split()[0]) / (1024 if k != "Threads" else 1)
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def objects(args, run: str) -> list[dict]:
    out = []
    for i in range(args.objects):
        ns = f"{args.prefix}-{i % args.namespaces}"
        sa = f"app{i // args.namespaces}"
        out.append({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
            "metadata": {"name": sa, "namespace": ns, "labels": {LABEL: run}},
            "spec": {"serviceAccount": sa, "verify": False,
                     "secrets": [{"name": f"{args.prefix}/s{i % args.secrets}", "alias": "db"}]},
        })
    return out


def ready(obj: dict) -> bool:
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def list_objects(kube: Kube) -> list[dict]:
    return kube.req("GET", f"{GROUP}/teamsecrets", params={"labelSelector": LABEL})["items"]


def group_of(op: str) -> str | None:
    if op.startswith("iam:"):
        return "iam"
    if op.startswith("eks:") and "PodIdentityAssociation" in op:
        return "association"
    return None


def summarize_calls(counted: dict, faults: list[dict]) -> dict:
    """Calls per group; `needed` = counted less the throttled answers of the group's rule."""
    groups = {"iam": 0, "association": 0, "other": 0}
    for op, n in counted.items():
        groups[group_of(op) or "other"] += n
    hits = {"iam": 0, "association": 0}
    for f in faults:
        if f["kind"] == "rate":
            hits["iam" if f["operation"].startswith("iam:") else "association"] += f["hits"]
    return {"total": sum(counted.values()), "groups": groups, "throttled": hits,
            "needed": {g: groups[g] - hits[g] for g in hits}, "per_op": counted}


def phase(name: str, kube: Kube, env: dict, ctl: Controller, act, done, rate: float | None, timeout: float) -> dict:
    """Resets the stand-in's counters, runs act(), polls done(items) until true; measures."""
    control(env, "/calls/reset", "POST")
    cpu0, t0 = ctl.cpu(), time.monotonic()
    applied_s = act()
    polls = 0
    while True:
        items = list_objects(kube)
        polls += 1
        if done(items, ctl):
            break
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{name}: not done after {timeout:.0f} s: "
                             f"{sum(ready(o) for o in items)}/{len(items)} ready; metrics {ctl.metrics()}")
        if ctl.proc.poll() is not None:
            raise SystemExit(f"{name}: the controller exited ({ctl.proc.returncode})")
        time.sleep(1.0)
    wall = time.monotonic() - t0
    cpu = ctl.cpu() - cpu0
    counted = control(env, "/calls")
    faults = control(env, "/faults").get("faults", [])
    calls = summarize_calls(counted, faults)
    bound = max(calls["needed"].values()) / rate if rate else None
    out = {"name": name, "wall_s": wall, "apply_s": applied_s, "cpu_s": cpu, "cores": cpu / wall,
           "mem": ctl.mem(), "metrics": ctl.metrics(), "calls": calls, "rate": rate, "bound_s": bound,
           "ratio": wall / bound if bound else None, "polls": polls}
    print(f"[bench] {name}: {wall:.1f} s, {calls['total']} calls, groups {calls['groups']}, "
          f"throttled {calls['throttled']}, bound {bound}, cpu {cpu:.1f} s, mem {out['mem']}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the bootstrap binary")
    ap.add_argument("--objects", type=int, default=500)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--secrets", type=int, default=4, help="secrets made in Secrets Manager, shared by the objects")
    ap.add_argument("--concurrency", type=int, default=16, help="the controller's --concurrency")
    ap.add_argument("--rate", type=float, default=15.0, help="IAM and association calls/s allowed (each)")
    ap.add_argument("--apply-threads", type=int, default=16)
    ap.add_argument("--metrics-port", type=int, default=19880)
    ap.add_argument("--prefix", default="benchctl")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: resync,clean,rate")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per phase")
    ap.add_argument("--out", default=os.path.join(HERE, "controller.md"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--log", default="/tmp/controller-bench.log", help="the controllers' logs")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    env = env_sh()
    cluster = env["BOOTSTRAP_TEST_CLUSTER"]
    kube = Kube(env["KUBECONFIG"])
    account = boto(env, "sts").get_caller_identity()["Account"]
    boundary = f"arn:aws:iam::{account}:policy/bootstrap-{cluster}-controller-boundary"
    binary = os.path.abspath(args.bin)
    control(env, "/faults", "DELETE")

    # Setup: the platform and the controller's CRDs, secrets, the allowance, the namespaces.
    t0 = time.monotonic()
    p = subprocess.run([binary, "up", "--cluster", cluster, "--create-demo-secret", "-q", "--controller",
                        "--controller-image", "localhost/bootstrap-controller:bench"],
                       env=dict(os.environ, **env), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-3000:])
        return 1
    print(f"[bench] up --controller: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    sm = boto(env, "secretsmanager")
    for i in range(args.secrets):
        try:
            sm.create_secret(Name=f"{args.prefix}/s{i}", SecretString="bench-value")
        except sm.exceptions.ResourceExistsException:
            pass
    allowance = {"apiVersion": "bootstrap.podid/v1alpha1", "kind": "SecretAllowance",
                 "metadata": {"name": f"{args.prefix}-allowance"},
                 "spec": {"namespaces": [f"{args.prefix}-*"], "secrets": [f"{args.prefix}/*"]}}
    kube.req("POST", f"{GROUP}/secretallowances", allowance, ok=(201, 409))
    for n in range(args.namespaces):
        kube.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": f"{args.prefix}-{n}"}}, ok=(201, 409))

    def apply(run: str):
        def go():
            t = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.apply_threads) as pool:
                list(pool.map(lambda o: kube.req(
                    "POST", f"{GROUP}/namespaces/{o['metadata']['namespace']}/teamsecrets", o), objects(args, run)))
            return time.monotonic() - t
        return go

    def delete():
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.apply_threads) as pool:
            list(pool.map(lambda n: kube.req("DELETE", f"{GROUP}/namespaces/{args.prefix}-{n}/teamsecrets",
                                             params={"labelSelector": LABEL}), range(args.namespaces)))
        return time.monotonic() - t

    def all_ready(items, ctl):
        return len(items) == args.objects and all(ready(o) for o in items)

    def settled(items, ctl):  # the new process reconciled each object once and has nothing queued
        m = ctl.metrics()
        return m["reconciles_total"] >= args.objects and m["queue_depth"] == 0 and m["reconciles_in_flight"] == 0

    def gone(items, ctl):
        return not items

    def start():
        return Controller(binary, env, cluster, boundary, args.concurrency, args.metrics_port, args.log)

    results = []
    limits = [{"operation": "iam:*", "kind": "rate", "per_second": args.rate, "burst": args.rate},
              {"operation": "eks:*PodIdentityAssociation*", "kind": "rate", "per_second": args.rate,
               "burst": args.rate}]
    if "clean" not in skip:
        ctl = start()
        try:
            results.append(phase("apply, no fault", kube, env, ctl, apply("clean"), all_ready, None, args.timeout))
            if "resync" not in skip:
                ctl.stop()
                ctl = start()  # startup reconciles every object: the cost of a resync
                results.append(phase("resync of converged objects (new process)", kube, env, ctl,
                                     lambda: 0.0, settled, None, args.timeout))
            results.append(phase("delete, no fault", kube, env, ctl, delete, gone, None, args.timeout))
        finally:
            ctl.stop()
    if "rate" not in skip:
        ctl = start()
        try:
            control(env, "/faults", "POST", limits)
            results.append(phase(f"apply, rate {args.rate:g}/s", kube, env, ctl, apply("rate"), all_ready,
                                 args.rate, args.timeout))
            control(env, "/faults", "DELETE")
            control(env, "/faults", "POST", limits)  # fresh buckets, zero hits
            results.append(phase(f"delete, rate {args.rate:g}/s", kube, env, ctl, delete, gone, args.rate,
                                 args.timeout))
        finally:
            control(env, "/faults", "DELETE")
            ctl.stop()

    # What is left of the objects: roles under the path, associations, SecretProviderClasses.
    iam = boto(env, "iam")
    roles = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate(PathPrefix="/bootstrap-controller/")
             for r in page["Roles"]]
    eks = boto(env, "eks")
    assocs = [a for page in eks.get_paginator("list_pod_identity_associations").paginate(clusterName=cluster)
              for a in page["associations"] if a["namespace"].startswith(f"{args.prefix}-")]
    spcs = [s["metadata"]["name"] for s in kube.req("GET", "/apis/secrets-store.csi.x-k8s.io/v1/secretproviderclasses")["items"]
            if s["metadata"]["namespace"].startswith(f"{args.prefix}-")]
    left = {"roles under /bootstrap-controller/": len(roles), "associations": len(assocs),
            "SecretProviderClasses": len(spcs)}
    print(f"[bench] left: {left}", file=sys.stderr)
    for n in range(args.namespaces):
        kube.req("DELETE", f"/api/v1/namespaces/{args.prefix}-{n}", ok=(200, 202, 404))
    kube.req("DELETE", f"{GROUP}/secretallowances/{args.prefix}-allowance", ok=(200, 202, 404))

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{os.cpu_count()} cores ({cpu}), {platform.platform()}, load average at the end "
        f"{os.getloadavg()[0]:.1f}, binary `{binary}`.",
        "",
        f"Command: `$BOOTSTRAP_ENV_PYTHON bench/controller_bench.py --bin {args.bin} --objects {args.objects} "
        f"--namespaces {args.namespaces} --secrets {args.secrets} --concurrency {args.concurrency} "
        f"--rate {args.rate:g}` (controller: `{' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(ctl.cmd))}`).",
        "",
        "| run | wall (s) | AWS calls | IAM | associations | other | throttled | bound (s) | ratio | "
        "peak RSS (MiB) | RSS at end (MiB) | CPU (s) | cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r["calls"]
        thr = c["throttled"]["iam"] + c["throttled"]["association"]
        bound = "" if r["bound_s"] is None else f"{r['bound_s']:.1f}"
        ratio = "" if r["ratio"] is None else f"**{r['ratio']:.2f}**"
        lines.append(
            f"| {r['name']} | {r['wall_s']:.1f} | {c['total']} | {c['groups']['iam']} | {c['groups']['association']} "
            f"| {c['groups']['other']} | {thr} | {bound} | {ratio} | {r['mem']['VmHWM']:.1f} "
            f"| {r['mem']['VmRSS']:.1f} | {r['cpu_s']:.1f} | {r['cores']:.2f} |")
    lines += ["", "| run | reconciles | errors | in flight | queue depth | AWS calls (controller) | threads | apply (s) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        m = r["metrics"]
        lines.append(f"| {r['name']} | {m.get('reconciles_total', 0):.0f} | {m.get('reconcile_errors_total', 0):.0f} "
                     f"| {m.get('reconciles_in_flight', 0):.0f} | {m.get('queue_depth', 0):.0f} "
                     f"| {m.get('aws_calls_total', 0):.0f} | {r['mem'].get('Threads', 0):.0f} | {r['apply_s']:.1f} |")
    lines += ["", "Calls per operation (counted at the stand-in, throttled answers included):", "",
              "| operation | " + " | ".join(r["name"] for r in results) + " |",
              "|---|" + "---:|" * len(results)]
    ops = sorted({op for r in results for op in r["calls"]["per_op"]})
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(str(r["calls"]["per_op"].get(op, "")) for r in results) + " |")
    lines += ["", "Left after the deletions: " + ", ".join(f"{k} {v}" for k, v in left.items()) + "."]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "left": left}, f, indent=1)
    print(text)
    return 0 if not any(left.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
