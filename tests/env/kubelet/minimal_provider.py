"""A minimal Secrets Store CSI provider for testing the environment itself.

Serves `<dir>/bootstrap-test.sock`. A SecretProviderClass with `provider: bootstrap-test`
and a parameter `files` holding a JSON object {"name": "contents"} gets those files back,
mode 0644, each with object version "1". It proves the driver and the kubelet shim work
without depending on the project's real provider.
"""
import argparse
import json
import os
import signal
import sys
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from protos import load  # noqa: E402

pb, pb_grpc = load("provider")


class Provider(pb_grpc.CSIDriverProviderServicer):
    def Version(self, request, context):
        return pb.VersionResponse(version="v1alpha1", runtime_name="bootstrap-test-provider", runtime_version="0.1.0")

    def Mount(self, request, context):
        attrs = json.loads(request.attributes)
        files = json.loads(attrs.get("files", "{}"))
        if "csi.storage.k8s.io/serviceAccount.tokens" not in attrs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no service account tokens in the mount attributes")
        out = [pb.File(path=k, mode=0o644, contents=v.encode()) for k, v in sorted(files.items())]
        versions = [pb.ObjectVersion(id=k, version="1") for k in sorted(files)]
        return pb.MountResponse(files=out, object_version=versions)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider-volume", required=True)
    args = ap.parse_args()
    sock = os.path.join(args.provider_volume, "bootstrap-test.sock")
    if os.path.exists(sock):
        os.remove(sock)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CSIDriverProviderServicer_to_server(Provider(), server)
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(1))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
