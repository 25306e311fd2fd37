"""Where aws-csi-provider's resident memory goes, for builds side by side (before/after).

Each binary runs on the host (agent through --pod-identity-endpoint; no namespace needed), one
after the other, through the same steps: idle, one mount, --mounts mounts of new pods (32 at a
time, 10 secrets each), then 11 s idle (its periodic trim). At each step RSS is split, from
/proc/PID/smaps, into the binary's own mapped pages (code and read-only data), the C
libraries', and anonymous memory (heap, stacks, allocator arenas).
    $BOOTSTRAP_ENV_PYTHON bench/provider_memory.py before=/tmp/ours-before after=target/provider/aws-csi-provider
Needs tests/env up (source tests/env/state/env.sh). No secret value is printed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import provider_bench as pb  # noqa: E402


def breakdown(pid, binary):
    """KiB: (total, binary's file pages, other files (libc…), anonymous)."""
    real = os.path.realpath(binary)
    own = files = anon = 0
    path = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not line.startswith(("Rss", "Size")):
                path = head[5] if len(head) > 5 else ""
            elif line.startswith("Rss:"):
                kib = int(head[1])
                if path == real:
                    own += kib
                elif path.startswith("/"):
                    files += kib
                else:
                    anon += kib
    return own + files + anon, own, files, anon


def measure(name, binary, backend, mounts, work, n):
    d = os.path.join(work, name)
    log = os.path.join(work, f"{name}.log")
    p = subprocess.Popen([binary, f"--provider-volume={d}", "--pod-identity-endpoint",
                          pb.env("POD_IDENTITY_ENDPOINT")], env={**os.environ, "RUST_LOG": "info"},
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        pb.wait_for_socket(os.path.join(d, "aws.sock"), p, name, log)
        prov = pb.Provider(name, p, os.path.join(d, "aws.sock"), log)
        rows = [("idle", breakdown(p.pid, binary))]
        backend.check(name, n, prov.mount(backend.attrs(n, "first"), work))
        rows.append(("after 1 mount", breakdown(p.pid, binary)))
        with ThreadPoolExecutor(32) as ex:
            for r in ex.map(lambda k: prov.mount(backend.attrs(n, f"p{k}"), work), range(mounts)):
                backend.check(name, n, r)
        rows.append((f"after {mounts} mounts", breakdown(p.pid, binary)))
        time.sleep(11)
        rows.append(("11 s later", breakdown(p.pid, binary)))
        peak = pb.rss_kib(p.pid)[1]
    finally:
        p.terminate()
        p.wait(timeout=10)
    return rows, peak, os.path.getsize(binary)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="NAME=BINARY")
    ap.add_argument("--mounts", type=int, default=300)
    ap.add_argument("--secrets", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="provider-memory-")
    backend = pb.Backend(a.secrets, work)
    print("| build | binary MiB | step | RSS MiB | its code+rodata | libc etc. | anonymous |")
    print("|---|---|---|---|---|---|---|")
    for spec in a.builds:
        name, _, binary = spec.partition("=")
        rows, peak, size = measure(name, binary, backend, a.mounts, work, a.secrets)
        for step, (total, own, files, anon) in rows:
            print(f"| {name} | {size / 2**20:.1f} | {step} | {total / 1024:.1f} | {own / 1024:.1f} | "
                  f"{files / 1024:.1f} | {anon / 1024:.1f} |")
        print(f"| {name} | | peak (VmHWM) | {peak / 1024:.1f} | | | |")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
