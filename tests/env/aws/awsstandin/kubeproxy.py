"""A fault-injecting TLS proxy in front of kube-apiserver, sharing the stand-in's fault rules.

Every request is counted and matched as the operation "kube:VERB PATH" (VERB is the HTTP method,
or WATCH for a GET with watch=true; PATH without the query), e.g.
"kube:PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/csi-secrets-store-driver". Rules are
the stand-in's (POST /_bootstrap/faults): a "throttle" or "rate" fault answers 429
TooManyRequests with Retry-After: 1, an "error" fault 500 InternalError (or its "status"), both
as a Kubernetes Status object; "delay" adds latency. Anything else is forwarded unchanged.

The proxy serves the apiserver's own certificate (its names include 127.0.0.1) and talks to the
apiserver with the environment's admin client certificate, so a client through it acts as that
admin whatever it presents. One request per connection (answers carry Connection: close), which
keeps watches simple: bytes are piped both ways until either side closes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import socketserver
import ssl
import threading
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("aws-standin.kubeproxy")

MAX_HEAD = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "upgrade", "te"}
REASONS = {429: ("TooManyRequests", "Too Many Requests"), 500: ("InternalError", "Internal Server Error"),
           502: ("InternalError", "Bad Gateway"), 503: ("ServiceUnavailable", "Service Unavailable"),
           504: ("Timeout", "Gateway Timeout")}


def op_name(method: str, target: str) -> str:
    parts = urlsplit(target)
    verb = method.upper()
    if verb == "GET" and parse_qs(parts.query).get("watch", [""])[0] in ("true", "1"):
        verb = "WATCH"
    return f"kube:{verb} {parts.path}"


def status_body(status: int, message: str) -> bytes:
    reason = REASONS.get(status, ("InternalError", "Error"))[0]
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": status}
    if status == 429:
        body["details"] = {"retryAfterSeconds": 1}
    return json.dumps(body).encode()


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        proxy = self.server.proxy
        try:
            client = proxy.server_ctx.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.debug("TLS handshake failed: %s", e)
            return
        try:
            proxy.serve(client)
        except (OSError, ValueError) as e:
            log.debug("connection ended: %s", e)
        finally:
            try:
                client.close()
            except OSError:
                pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: "KubeFaultProxy"


class KubeFaultProxy:
    def __init__(self, host: str, port: int, upstream: str, pki_dir: str, faults) -> None:
        up = urlsplit(upstream)
        if up.scheme != "https" or not up.hostname:
            raise ValueError(f"--kube-proxy-upstream must be an https:// URL, not {upstream!r}")
        self.up_host, self.up_port = up.hostname, up.port or 443
        self.faults = faults
        pki = lambda name: os.path.join(pki_dir, name)  # noqa: E731
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(pki("apiserver.crt"), pki("apiserver.key"))
        self.server_ctx.set_alpn_protocols(["http/1.1"])
        self.client_ctx = ssl.create_default_context(cafile=pki("ca.crt"))
        self.client_ctx.load_cert_chain(pki("admin.crt"), pki("admin.key"))
        self.client_ctx.set_alpn_protocols(["http/1.1"])
        self.srv = _Server((host, port), _Handler)
        self.srv.proxy = self
        self.port = self.srv.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self.srv.serve_forever, name="kube-proxy", daemon=True).start()
        log.info("kube-apiserver fault proxy on https://127.0.0.1:%s -> https://%s:%s",
                 self.port, self.up_host, self.up_port)

    def shutdown(self) -> None:
        self.srv.shutdown()

    # --- one request ---
    def serve(self, client: ssl.SSLSocket) -> None:
        rfile = client.makefile("rb")
        line = rfile.readline(MAX_HEAD)
        if not line:
            return
        method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: list[tuple[str, str]] = []
        size = len(line)
        while True:
            h = rfile.readline(MAX_HEAD)
            size += len(h)
            if size > MAX_HEAD:
                raise ValueError("request head too large")
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        body = self._read_body(rfile, headers)
        op = op_name(method, target)
        decision = self.faults.record(op, "kube")
        self.faults.sleep(decision)
        if decision.failure is not None:
            status, _code, message = decision.failure
            log.info("injected %s into %s", status, op)
            payload = status_body(status, message)
            extra = "Retry-After: 1\r\n" if status == 429 else ""
            text = REASONS.get(status, ("", "Error"))[1]
            client.sendall(
                f"HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
            return
        self._forward(client, rfile, method, target, headers, body)

    @staticmethod
    def _read_body(rfile, headers: list[tuple[str, str]]) -> bytes:
        lower = {k.lower(): v for k, v in headers}
        if "chunked" in lower.get("transfer-encoding", "").lower():
            raw = bytearray()
            while True:
                size_line = rfile.readline(MAX_HEAD)
                raw += size_line
                n = int(size_line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while True:  # trailers, up to the blank line
                        t = rfile.readline(MAX_HEAD)
                        raw += t
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += rfile.read(n + 2)
        n = int(lower.get("content-length", "0") or 0)
        return rfile.read(n) if n else b""

    def _forward(self, client, rfile, method, target, headers, body) -> None:
        raw = socket.create_connection((self.up_host, self.up_port), timeout=30)
        upstream = self.client_ctx.wrap_socket(raw, server_hostname=self.up_host)
        try:
            upstream.settimeout(None)
            head = [f"{method} {target} HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
            head.append("Connection: close")
            upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            # Anything the client sent past the request is already in rfile's buffer; hyper
            # sends nothing more on a connection before its answer, so it is not forwarded.
            self._pipe(client, upstream)
        finally:
            try:
                upstream.close()
            except OSError:
                pass

    @staticmethod
    def _pipe(client: ssl.SSLSocket, upstream: ssl.SSLSocket) -> None:
        """Upstream's answer to the client, until upstream ends or the client goes away."""
        while True:
            if not upstream.pending():
                readable, _, _ = select.select([upstream, client], [], [], 5.0)
                if client in readable and not client.pending():
                    try:
                        if not client.recv(1):  # EOF: the client is gone (a dropped watch)
                            return
                    except (OSError, ssl.SSLError):
                        return
                if upstream not in readable:
                    continue
            data = upstream.recv(65536)
            if not data:
                return
            client.sendall(data)
