"""Byte forwarder between TCP and unix sockets, for the benchmark's network namespace.

    python forward.py LISTEN=TARGET [LISTEN=TARGET ...]

Each endpoint is tcp:HOST:PORT or unix:PATH; a listener may be tls:HOST:PORT (TLS terminated
with FORWARD_TLS_CERT / FORWARD_TLS_KEY, e.g. a stand-in for sts.<region>.amazonaws.com). Run once inside the namespace (tcp listeners on
169.254.170.23:80 and 127.0.0.1:PORT → unix sockets) and once outside (unix sockets → the
stand-in on 127.0.0.1), so every byte stays on loopback or inside the namespace. Prints
"ready" once every listener is bound; runs until SIGTERM. Connections are capped.
"""
import asyncio
import os
import signal
import ssl
import sys

MAX_CONNECTIONS = 2048
CHUNK = 65536


def parse(spec):
    kind, _, rest = spec.partition(":")
    if kind in ("tcp", "tls"):
        host, _, port = rest.rpartition(":")
        return (kind, host.strip("[]"), int(port))
    if kind == "unix":
        return ("unix", rest, None)
    raise SystemExit(f"error: endpoint {spec!r} is not tcp:HOST:PORT or unix:PATH")


async def pipe(reader, writer):
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - already gone
            pass


async def serve(listen, target, limit):
    async def handle(r1, w1):
        async with limit:
            try:
                if target[0] == "tcp":
                    r2, w2 = await asyncio.open_connection(target[1], target[2])
                else:
                    r2, w2 = await asyncio.open_unix_connection(target[1])
            except OSError:
                w1.close()
                return
            await asyncio.gather(pipe(r1, w2), pipe(r2, w1))

    if listen[0] in ("tcp", "tls"):
        ctx = None
        if listen[0] == "tls":
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(os.environ["FORWARD_TLS_CERT"], os.environ["FORWARD_TLS_KEY"])
        return await asyncio.start_server(handle, listen[1], listen[2], reuse_address=True, ssl=ctx)
    if os.path.exists(listen[1]):
        os.unlink(listen[1])
    return await asyncio.start_unix_server(handle, listen[1])


async def main(specs):
    limit = asyncio.Semaphore(MAX_CONNECTIONS)
    servers = []
    for spec in specs:
        listen, _, target = spec.partition("=")
        servers.append(await serve(parse(listen), parse(target), limit))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1:]))
