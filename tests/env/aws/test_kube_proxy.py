"""The fault-injecting proxy of kube-apiserver (awsstandin/kubeproxy.py), against a TLS upstream
that asks for a client certificate: forwarding, operation names, injected 500/429 answers as
Kubernetes Status objects, and a dropped watch closing its upstream connection."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from awsstandin.faults import FaultsAndCalls
from awsstandin.kubeproxy import KubeFaultProxy, op_name


def _write_pki(d) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(name, key, issuer_name, issuer_key, ca=False, san=None, usage=None):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def save(name, c, key):
        (d / f"{name}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            (d / f"{name}.key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = cert("test-ca", ca_key, ca_name, ca_key, ca=True)
    save("ca", ca, None)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    save("apiserver", cert("kube-apiserver", srv_key, ca_name, ca_key,
                           san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                           usage=ExtendedKeyUsageOID.SERVER_AUTH), srv_key)
    adm_key = ec.generate_private_key(ec.SECP256R1())
    save("admin", cert("bootstrap-env-admin", adm_key, ca_name, ca_key,
                       usage=ExtendedKeyUsageOID.CLIENT_AUTH), adm_key)


class Upstream:
    """A TLS apiserver stand-in that requires a client certificate; records what it is sent."""

    def __init__(self, pki) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self.ctx.load_verify_locations(pki / "ca.crt")
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[dict] = []
        self.watch_closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with tls:
            f = tls.makefile("rb")
            method, target, _ = f.readline().decode().split(" ", 2)
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            body = f.read(int(headers.get("content-length", 0) or 0))
            peer = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
            self.seen.append({"method": method, "target": target, "body": body, "cn": peer,
                              "connection": headers.get("connection")})
            if "watch=true" in target:
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                event = json.dumps({"type": "ADDED", "object": {"kind": "Pod"}}).encode() + b"\n"
                try:
                    while True:
                        tls.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                        time.sleep(0.05)
                except OSError:
                    self.watch_closed.set()
                return
            answer = json.dumps({"method": method, "length": len(body)}).encode()
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n%s" % (len(answer), answer))


@pytest.fixture
def proxied(tmp_path):
    _write_pki(tmp_path)
    up = Upstream(tmp_path)
    faults = FaultsAndCalls()
    proxy = KubeFaultProxy("127.0.0.1", 0, f"https://127.0.0.1:{up.port}", str(tmp_path), faults)
    proxy.start()
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    yield up, faults, lambda: http.client.HTTPSConnection("127.0.0.1", proxy.port, context=ctx, timeout=10)
    proxy.shutdown()


def test_operation_names():
    assert op_name("GET", "/api/v1/namespaces/a/pods?limit=500") == "kube:GET /api/v1/namespaces/a/pods"
    assert op_name("GET", "/api/v1/namespaces/a/pods?watch=true&resourceVersion=1") == \
        "kube:WATCH /api/v1/namespaces/a/pods"
    assert op_name("patch", "/apis/apps/v1/daemonsets/x?fieldManager=bootstrap") == \
        "kube:PATCH /apis/apps/v1/daemonsets/x"


def test_forwards_with_the_admin_identity_and_counts(proxied):
    up, faults, connect = proxied
    c = connect()
    body = json.dumps({"apiVersion": "v1", "kind": "ServiceAccount"}).encode()
    c.request("PATCH", "/api/v1/namespaces/team/serviceaccounts/app?fieldManager=bootstrap&force=true",
              body=body, headers={"Content-Type": "application/apply-patch+yaml", "Connection": "keep-alive"})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"method": "PATCH", "length": len(body)}
    seen = up.seen[-1]
    assert seen["body"] == body and seen["cn"] == "bootstrap-env-admin"
    assert seen["target"].endswith("?fieldManager=bootstrap&force=true")
    assert seen["connection"] == "close", "hop-by-hop headers are replaced"
    assert faults.calls() == {"kube:PATCH /api/v1/namespaces/team/serviceaccounts/app": 1}


def test_injects_500_and_429_as_status_objects_without_forwarding(proxied):
    up, faults, connect = proxied
    faults.add({"operation": "kube:PATCH /api/v1/namespaces/*", "kind": "error", "count": 1})
    faults.add({"operation": "kube:DELETE *", "kind": "throttle", "count": 1})
    before = len(up.seen)

    c = connect()
    c.request("PATCH", "/api/v1/namespaces/team", body=b"{}")
    r = c.getresponse()
    status = json.loads(r.read())
    assert r.status == 500 and status["kind"] == "Status" and status["reason"] == "InternalError"
    assert status["code"] == 500 and "injected" in status["message"]

    c = connect()
    c.request("DELETE", "/api/v1/namespaces/team")
    r = c.getresponse()
    status = json.loads(r.read())
    assert r.status == 429 and r.getheader("Retry-After") == "1"
    assert status["reason"] == "TooManyRequests" and status["details"] == {"retryAfterSeconds": 1}
    assert len(up.seen) == before, "a faulted request never reaches the apiserver"

    c = connect()  # the rules are used up: through again
    c.request("DELETE", "/api/v1/namespaces/team")
    assert c.getresponse().status == 200 and len(up.seen) == before + 1


def test_a_dropped_watch_closes_its_upstream_connection(proxied):
    up, faults, connect = proxied
    c = connect()
    c.request("GET", "/api/v1/namespaces/team/pods?watch=true")
    r = c.getresponse()
    assert r.status == 200
    assert json.loads(r.read1(4096).splitlines()[0])["type"] == "ADDED"
    r.close()  # the connection went to the response (Connection: close)
    c.close()
    assert up.watch_closed.wait(10), "the proxy kept the upstream watch open after the client left"
    assert faults.calls() == {"kube:WATCH /api/v1/namespaces/team/pods": 1}
