#!/usr/bin/env python3
"""`bootstrap up` against its critical path, and `onboard` of many teams under throttling.

Runs against the local environment (tests/env/up.sh, then this script; it reads
tests/env/state/env.sh). With latencies injected in the stand-in — a new add-on stays CREATING
for --addon-delay seconds, every IAM call takes --iam-ms, every Pod Identity association call
--assoc-ms, every secret lookup --secret-ms — it measures:

  1. a fresh `up` (the agent add-on absent, a new namespace): wall time ÷ the longest chain of
     injected latencies through up's dependency graph;
  2. the no-op re-run: wall time, AWS calls counted at the stand-in, and its write calls (0);
  3. `onboard` of --teams teams without faults, then with IAM and EKS throttling injected
     (a number of throttled answers), then under a rate limit (--rate calls/s for IAM and for
     associations, a token bucket in the stand-in): wall time, peak RSS, failures, calls
     counted; the rate-limited run against calls needed ÷ allowed rate.

Writes a Markdown table to --out (default bench/up.md) and prints it. Not a test: CI does not
run it. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_sh() -> dict[str, str]:
    """What tests/env/state/env.sh exports (sourced by bash, so any shell syntax works)."""
    path = os.path.join(REPO, "tests", "env", "state", "env.sh")
    out = subprocess.run(["bash", "-c", f"set -a; . '{path}'; env -0"], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def control(env: dict, path: str, method: str = "GET", body=None):
    base = env.get("BOOTSTRAP_ENV_CONTROL", "http://127.0.0.1:15000/_bootstrap")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
    return json.loads(text) if text else {}


def boto(env: dict, service: str):
    import boto3  # the environment's virtualenv has it

    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-west-2"),
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def run(cmd: list[str], env: dict) -> tuple[float, int, dict, str]:
    """Runs a command; returns (seconds, exit code, JSON stdout or {}, stderr)."""
    full = dict(os.environ, **env)
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=full, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        doc = {}
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:])
    return seconds, p.returncode, doc, p.stderr


def calls(env: dict) -> tuple[int, int]:
    counted = control(env, "/calls")
    writes = [k for k in counted if re.match(r"^[a-z-]+:(Create|Put|Update|Delete|Tag|Untag|Attach)", k)]
    return sum(counted.values()), sum(counted[k] for k in writes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=None, help="the bootstrap binary (default: target/release, else debug)")
    ap.add_argument("--addon-delay", type=float, default=20.0)
    ap.add_argument("--iam-ms", type=int, default=300)
    ap.add_argument("--assoc-ms", type=int, default=1000)
    ap.add_argument("--secret-ms", type=int, default=200)
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--throttles", type=int, default=150, help="throttled answers injected per service")
    ap.add_argument("--rate", type=float, default=20.0,
                    help="the rate-limited run: IAM and Pod Identity association calls allowed per second each")
    ap.add_argument("--out", default=os.path.join(HERE, "up.md"))
    args = ap.parse_args()
    binary = args.bin or next((p for p in (os.path.join(REPO, "target", "release", "bootstrap"),
                                           os.path.join(REPO, "target", "debug", "bootstrap")) if os.path.exists(p)), None)
    if not binary:
        print("build bootstrap first: cargo build --release -p bootstrap", file=sys.stderr)
        return 2
    env = env_sh()
    cluster = env["BOOTSTRAP_TEST_CLUSTER"]
    tag = f"bench{int(time.time()) % 100000}"
    eks = boto(env, "eks")

    # 1. A fresh up: no agent add-on, a new namespace, latencies injected.
    try:
        eks.delete_addon(clusterName=cluster, addonName="eks-pod-identity-agent")
        while True:
            eks.describe_addon(clusterName=cluster, addonName="eks-pod-identity-agent")
            time.sleep(0.5)
    except eks.exceptions.ResourceNotFoundException:
        pass
    control(env, "/faults", "DELETE")
    control(env, "/addon-delay", "POST", {"seconds": args.addon_delay})
    control(env, "/faults", "POST", [
        {"operation": "iam:*", "kind": "delay", "count": -1, "delay_ms": args.iam_ms},
        {"operation": "eks:*PodIdentityAssociation*", "kind": "delay", "count": -1, "delay_ms": args.assoc_ms},
        {"operation": "secretsmanager:DescribeSecret", "kind": "delay", "count": -1, "delay_ms": args.secret_ms},
    ])
    up = [binary, "up", "--cluster", cluster, "--namespace", f"{tag}-up", "--service-account", "app",
          "--create-demo-secret", "--output", "json", "-q", "--timeout", "5m"]
    try:
        control(env, "/calls/reset", "POST")
        fresh_s, rc, doc, _ = run(up, env)
        fresh_calls, fresh_writes = calls(env)
        assert rc == 0 and doc.get("verified"), f"fresh up failed (exit {rc})"
        control(env, "/calls/reset", "POST")
        noop_s, rc, doc2, _ = run(up, env)
        noop_calls, noop_writes = calls(env)
        assert rc == 0, "re-run failed"
    finally:
        control(env, "/faults", "DELETE")
        control(env, "/addon-delay", "POST", {"seconds": 3})
    # The longest chain of injected latency: the plan's reads (secret lookup, then the role,
    # association and add-on reads side by side), then the add-on wait beside role → association.
    s, i, a = args.secret_ms / 1000, args.iam_ms / 1000, args.assoc_ms / 1000
    plan_reads = s + max(i, a)
    critical = plan_reads + max(args.addon_delay, 2 * i + a)

    # 3. onboard N teams, clean then throttled.
    sm = boto(env, "secretsmanager")
    sm.create_secret(Name=f"{tag}/shared", SecretString="bench")
    results = []
    per_op = {}
    for label, faults in (("clean", []), ("throttled", [
            {"operation": "iam:*", "kind": "throttle", "count": args.throttles},
            {"operation": "eks:*PodIdentityAssociation*", "kind": "throttle", "count": args.throttles}]),
            (f"rate-limited ({args.rate:g}/s IAM, {args.rate:g}/s associations)", [
            {"operation": "iam:*", "kind": "rate", "per_second": args.rate},
            {"operation": "eks:*PodIdentityAssociation*", "kind": "rate", "per_second": args.rate}])):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(f"cluster: {cluster}\nteams:\n")
            for n in range(args.teams):
                short = label.split()[0]
                f.write(f"  - name: {short}{n}\n    namespace: {tag}-{short}-{n}\n    serviceAccount: app\n"
                        f"    secrets: [{{name: {tag}/shared}}]\n")
            path = f.name
        control(env, "/faults", "DELETE")
        if faults:
            control(env, "/faults", "POST", faults)
        control(env, "/calls/reset", "POST")
        secs, rc, doc, err = run(["/usr/bin/time", "-f", "%M", binary, "onboard", "-f", path, "--output", "json", "-q",
                                "--concurrency", "32"], env)
        total, _ = calls(env)
        per_op[label] = control(env, "/calls")
        hits = sum(r.get("hits", 0) for r in control(env, "/faults").get("faults", []))
        control(env, "/faults", "DELETE")
        failed = (doc.get("totals") or {}).get("failed", "?")
        for team in doc.get("teams", []):
            if team.get("status") == "failed":
                print(f"{label}: team {team.get('name')} failed: {team.get('error')}", file=sys.stderr)
        peak = next((int(x) for x in reversed(err.split()) if x.isdigit()), 0)
        results.append((label, secs, rc, failed, total, hits, peak))
        os.unlink(path)

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# `bootstrap up` and `onboard` against their bounds",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{os.cpu_count()} cores, {platform.platform()}, binary `{os.path.relpath(binary, REPO)}`.",
        "",
        f"Command: `python3 bench/up_bench.py --addon-delay {args.addon_delay:g} --iam-ms {args.iam_ms} "
        f"--assoc-ms {args.assoc_ms} --secret-ms {args.secret_ms} --teams {args.teams} --throttles {args.throttles} "
        f"--rate {args.rate:g}` "
        "(the local environment up).",
        "",
        "| run | wall (s) | bound (s) | ratio | AWS calls | write calls |",
        "|---|---:|---:|---:|---:|---:|",
        f"| fresh `up` (add-on CREATING {args.addon_delay:g} s, IAM {args.iam_ms} ms/call, association "
        f"{args.assoc_ms} ms/call, secret lookup {args.secret_ms} ms) | {fresh_s:.1f} | {critical:.1f} "
        f"(injected critical path) | {fresh_s / critical:.2f} | {fresh_calls} | {fresh_writes} |",
        f"| no-op re-run, same latencies | {noop_s:.1f} | {plan_reads:.1f} (its reads) | {noop_s / plan_reads:.2f} "
        f"| {noop_calls} | {noop_writes} |",
        "",
        f"| `onboard` of {args.teams} teams (concurrency 32) | wall (s) | exit | failed teams | AWS calls | throttles answered | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, secs, rc, failed, total, hits, peak in results:
        lines.append(f"| {label} | {secs:.1f} | {rc} | {failed} | {total} | {hits} | {peak / 1024:.1f} |")
    clean, throttled, limited = results[0][1], results[1][1], results[2][1]
    # The rate-limited run's lower bound: the calls the clean run needed of each limited API,
    # divided by the rate that API allows.
    needed_iam = sum(v for k, v in per_op["clean"].items() if k.startswith("iam:"))
    needed_assoc = sum(v for k, v in per_op["clean"].items() if "PodIdentityAssociation" in k)
    bound = max(needed_iam, needed_assoc) / args.rate
    lines += ["", f"Throttled ÷ clean wall time: {throttled / clean:.2f} (a fixed number of throttled answers).",
              "", f"Rate-limited: the clean run needed {needed_iam} IAM and {needed_assoc} association calls; at "
              f"{args.rate:g} calls/s each the lower bound is {bound:.1f} s; measured {limited:.1f} s, "
              f"**{limited / bound:.2f}× the bound** (calls made {results[2][4]}, throttled answers {results[2][5]})."]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
