"""The backend floor of a mount: the ⌈n/20⌉ BatchGetSecretValue calls it cannot avoid, made
directly (cached credentials, kept-alive connections, the chunks of one mount in parallel).

Run inside the benchmark's namespace, so that it takes the providers' path to the stand-in:
    python floor.py --endpoint URL --region R --mounts M --concurrency C ID [ID ...]
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. Prints a
JSON list of per-mount latencies in ms. Never prints a secret value.
"""
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

BATCH = 20
local = threading.local()


def call(endpoint, region, creds, ids):
    url = urllib.parse.urlparse(endpoint)
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"SecretIdList": ids})
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.BatchGetSecretValue"})
    SigV4Auth(creds, "secretsmanager", region).add_auth(req)
    conn.request("POST", "/", body=body, headers=dict(req.headers))
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"error: BatchGetSecretValue answered {resp.status}")
    got = len(json.loads(data).get("SecretValues", []))
    if got != len(ids):
        raise SystemExit(f"error: BatchGetSecretValue returned {got} of {len(ids)} secrets")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--mounts", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("ids", nargs="+")
    a = ap.parse_args()
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                        os.environ.get("AWS_SESSION_TOKEN"))
    chunks = [a.ids[i:i + BATCH] for i in range(0, len(a.ids), BATCH)]
    calls = ThreadPoolExecutor(a.concurrency * len(chunks))

    def mount(_):
        t = time.perf_counter()
        for f in [calls.submit(call, a.endpoint, a.region, creds, c) for c in chunks]:
            f.result()
        return (time.perf_counter() - t) * 1000

    mount(0)  # warm the connections
    with ThreadPoolExecutor(a.concurrency) as pool:
        print(json.dumps(list(pool.map(mount, range(a.mounts)))))


if __name__ == "__main__":
    main()
