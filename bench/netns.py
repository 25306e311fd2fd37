"""A network namespace for the benchmark, where 169.254.170.23 (the Pod Identity agent's
hard-coded address) is local, with forwarders to the local stand-in over unix sockets.

Both providers run inside it, each under `unshare -m` (a private mount namespace) so that
upstream's `rest.InClusterConfig()` finds a service-account token, `ca.crt` and `namespace` at
/var/run/secrets/kubernetes.io/serviceaccount without touching the host. Needs root.
"""
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT_ADDR = "169.254.170.23"


def sh(*argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Namespace:
    """`forwards` maps (inside host, inside port) → (outside host, outside port)."""

    def __init__(self, name, workdir, forwards, python=sys.executable):
        self.name, self.dir, self.forwards, self.python = name, workdir, forwards, python
        self.procs = []

    def __enter__(self):
        if os.geteuid() != 0:
            raise SystemExit("error: the benchmark needs root (ip netns, unshare -m)\n"
                             "hint: run it as root, like tests/run.sh")
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        sh("ip", "-n", self.name, "addr", "add", f"{AGENT_ADDR}/32", "dev", "lo")
        inner, outer = [], []
        for i, ((ih, ip), (oh, op)) in enumerate(self.forwards.items()):
            sock = os.path.join(self.dir, f"fwd{i}.sock")
            inner.append(f"tcp:{ih}:{ip}=unix:{sock}")
            outer.append(f"unix:{sock}=tcp:{oh}:{op}")
        fwd = os.path.join(HERE, "forward.py")
        self._start_forwarder([self.python, fwd, *outer], "outside")
        self._start_forwarder(["ip", "netns", "exec", self.name, self.python, fwd, *inner], "inside")
        return self

    def _start_forwarder(self, argv, where):
        log = open(os.path.join(self.dir, f"forward-{where}.log"), "w")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        self.procs.append(p)
        if (p.stdout.readline() or "").strip() != "ready":
            raise RuntimeError(f"the {where} forwarder did not start (see {log.name})")

    def spawn(self, argv, env, log_path, setup=""):
        """Starts `argv` inside the namespace and a private mount namespace; `setup` is shell run
        first (mounts). The returned process's pid is the program's (exec all the way)."""
        script = f"{setup}\nexec {' '.join(shlex.quote(a) for a in argv)}"
        log = open(log_path, "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.name, "unshare", "-m", "--propagation", "private",
                              "sh", "-ec", script], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def in_cluster_setup(sa_dir):
    """Shell that gives the program a service-account directory where in-cluster clients look,
    on a tmpfs over /run (/var/run links there) private to its mount namespace."""
    target = "/run/secrets/kubernetes.io/serviceaccount"
    return (f"mount -t tmpfs -o size=1m bench-run /run\nmkdir -p {target}\n"
            f"cp {shlex.quote(sa_dir)}/token {shlex.quote(sa_dir)}/ca.crt {shlex.quote(sa_dir)}/namespace {target}/")


def wait_for_socket(path, proc, what, log_path, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = open(log_path, errors="replace").read()[-2000:]
    raise RuntimeError(f"{what} did not create {path} (exit {proc.poll()}); log tail:\n{tail}")


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out["VmRSS"], out["VmHWM"]


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def cleanup_dir(d):
    shutil.rmtree(d, ignore_errors=True)
