"""Runs the upstream AWS provider the way its DaemonSet pod would see the world, on the host.

Upstream's provider cannot be pointed at the stand-in the way ours is: it calls the Pod
Identity agent at the fixed 169.254.170.23, STS at https://sts.<region>.amazonaws.com, and
builds its Kubernetes client from the in-cluster service-account mount. So it runs in a
network namespace of its own (bench/netns.py) where 169.254.170.23:80 reaches the
environment's agent, 127.0.0.1 reaches the stand-in and the apiserver, and a TLS listener on
127.0.0.1:443 (a certificate for sts.<region>.amazonaws.com from a CA given through
SSL_CERT_FILE; /etc/hosts points the name there) reaches the AWS stand-in; and in a mount
namespace that is a slave of the host's (like the chart's HostToContainer mount of kubelet's
pods directory, so the driver's tmpfs mounts are visible) with a token of the DaemonSet's
service account where in-cluster clients look.

    python upstream-run.py --config $STATE/follow.json --service-account NS/NAME [K=V ...] -- BINARY ARGS...

Exits with the provider's exit code; SIGTERM stops it and removes the namespace.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, os.path.join(HERE, "kubelet"))
from kubeapi import Kube  # noqa: E402
from netns import Namespace  # noqa: E402


def service_account_dir(kube, cfg, ns, name, workdir):
    """token, ca.crt and namespace of `ns/name`, as kubelet projects them (token for a day)."""
    tr = kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                      body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 86400}})
    d = os.path.join(workdir, "serviceaccount")
    os.makedirs(d, exist_ok=True)
    old = os.umask(0o077)
    try:
        with open(os.path.join(d, "token"), "w") as f:
            f.write(tr["status"]["token"])
    finally:
        os.umask(old)
    with open(os.path.join(d, "namespace"), "w") as f:
        f.write(ns)
    with open(os.path.join(cfg["state"], "pki", "ca.crt")) as src, open(os.path.join(d, "ca.crt"), "w") as dst:
        dst.write(src.read())
    return d


STS_REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1")


def tls_for(workdir, names):
    """A CA and one server certificate for every name in `names`: (ca, cert, key)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    ca, ca_key, cert, key, csr, ext = (os.path.join(d, n) for n in (
        "ca.crt", "ca.key", "server.crt", "server.key", "server.csr", "ext"))

    def sh(*argv):
        subprocess.run(argv, check=True, capture_output=True)
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
       "-days", "2", "-subj", "/CN=bootstrap-env-upstream-ca")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\nextendedKeyUsage=serverAuth\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
       "-extfile", ext, "-out", cert)
    return ca, cert, key


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--service-account", required=True, help="NAMESPACE/NAME of the DaemonSet's service account")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="K=V ... -- BINARY ARGS...")
    a = ap.parse_args()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    if "--" not in a.rest:
        sys.exit("error: upstream-run.py: expected K=V ... -- BINARY ARGS...")
    cut = a.rest.index("--")
    env_kv, argv = a.rest[:cut], a.rest[cut + 1:]
    with open(a.config) as f:
        cfg = json.load(f)
    aws_port = int(cfg["aws_endpoint"].rsplit(":", 1)[1])
    work = os.path.join(cfg["state"], "upstream")
    os.makedirs(work, exist_ok=True)
    sa_ns, _, sa_name = a.service_account.partition("/")
    sa_dir = service_account_dir(Kube(cfg["kubeconfig"]), cfg, sa_ns, sa_name, work)
    # STS of every region a test may use (primary and failover), one certificate for all.
    regions = sorted({cfg["region"], *STS_REGIONS})
    names = [f"sts.{r}.amazonaws.com" for r in regions] + ["sts.amazonaws.com"]
    ca, cert, key = tls_for(work, names)
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in names))
    forwards = {("169.254.170.23", 80): ("127.0.0.1", cfg["agent_port"]),
                ("127.0.0.1", aws_port): ("127.0.0.1", aws_port),
                ("127.0.0.1", cfg["apiserver_port"]): ("127.0.0.1", cfg["apiserver_port"])}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSL_CERT_FILE": ca,
           "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cfg["apiserver_port"])}
    env.update(kv.split("=", 1) for kv in env_kv)
    q = shlex.quote
    target = "/run/secrets/kubernetes.io/serviceaccount"
    setup = (f"mount -t tmpfs -o size=1m upstream-run /run\nmkdir -p {target}\n"
             f"cp {q(sa_dir)}/token {q(sa_dir)}/ca.crt {q(sa_dir)}/namespace {target}/\n"
             f"mount --bind {q(hosts)} /etc/hosts\nexec {' '.join(q(x) for x in argv)}")
    name = f"bsenv-up-{aws_port}"
    with Namespace(name, work, forwards, python=sys.executable, tls={("127.0.0.1", 443): ("127.0.0.1", aws_port)},
                   tls_files=(cert, key)) as ns:
        # A slave of the host's mounts (the driver's tmpfs mounts appear), private otherwise.
        if stopping:
            sys.exit(0)
        p = subprocess.Popen(["ip", "netns", "exec", ns.name, "unshare", "-m", "--propagation", "slave",
                              "sh", "-ec", setup], env=env)
        ns.procs.append(p)
        signal.signal(signal.SIGTERM, lambda *_: p.terminate())
        if stopping:
            p.terminate()
        code = p.wait()
    sys.exit(code)


if __name__ == "__main__":
    main()
