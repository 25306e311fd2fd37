"""A network namespace for the benchmark, where 169.254.170.23 (the Pod Identity agent's
hard-coded address) is local, with forwarders to the local stand-in over unix sockets.

Both providers run inside it, each under `unshare -m` (a private mount namespace) so that
upstream's `rest.InClusterConfig()` finds a service-account token, `ca.crt` and `namespace` at
/var/run/secrets/kubernetes.io/serviceaccount without touching the host. Needs root.
"""
import os
import shlex
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
    """`forwards` maps (inside host, inside port) → (outside host, outside port); `tls` the same
    for listeners that terminate TLS with `tls_files` = (cert, key)."""

    def __init__(self, name, workdir, forwards, python=sys.executable, tls=None, tls_files=None):
        self.name, self.dir, self.forwards, self.python = name, workdir, forwards, python
        self.tls, self.tls_files = tls or {}, tls_files
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
        every = [("tcp", k, v) for k, v in self.forwards.items()] + [("tls", k, v) for k, v in self.tls.items()]
        for i, (kind, (ih, ip), (oh, op)) in enumerate(every):
            sock = os.path.join(self.dir, f"fwd{i}.sock")
            inner.append(f"{kind}:{ih}:{ip}=unix:{sock}")
            outer.append(f"unix:{sock}=tcp:{oh}:{op}")
        fwd = os.path.join(HERE, "forward.py")
        tls_env = {}
        if self.tls_files:
            tls_env = {"FORWARD_TLS_CERT": self.tls_files[0], "FORWARD_TLS_KEY": self.tls_files[1]}
        self._start_forwarder([self.python, fwd, *outer], "outside")
        self._start_forwarder(["ip", "netns", "exec", self.name, self.python, fwd, *inner], "inside", tls_env)
        return self

    def _start_forwarder(self, argv, where, extra_env=None):
        log = open(os.path.join(self.dir, f"forward-{where}.log"), "w")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True,
                             env={**os.environ, **(extra_env or {})})
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


def in_cluster_setup(sa_dir, hosts=None):
    """Shell that gives the program a service-account directory where in-cluster clients look,
    on a tmpfs over /run (/var/run links there) private to its mount namespace, and `hosts`
    bind-mounted over /etc/hosts."""
    target = "/run/secrets/kubernetes.io/serviceaccount"
    q = shlex.quote
    script = (f"mount -t tmpfs -o size=1m bench-run /run\nmkdir -p {target}\n"
              f"cp {q(sa_dir)}/token {q(sa_dir)}/ca.crt {q(sa_dir)}/namespace {target}/")
    if hosts:
        script += f"\nmount --bind {q(hosts)} /etc/hosts"
    return script


def hosts_setup(hosts):
    return f"mount --bind {shlex.quote(hosts)} /etc/hosts"


def make_tls(workdir, hostname):
    """A CA and a server certificate for `hostname` (openssl); returns (ca, cert, key)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    ca, ca_key, cert, key = (os.path.join(d, n) for n in ("ca.crt", "ca.key", "server.crt", "server.key"))
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
       "-days", "2", "-subj", "/CN=provider-bench-ca")
    csr = os.path.join(d, "server.csr")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={hostname}")
    ext = os.path.join(d, "ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{hostname}\nextendedKeyUsage=serverAuth\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
       "-extfile", ext, "-out", cert)
    return ca, cert, key


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

