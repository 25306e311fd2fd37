"""Compiles the environment's .proto files with grpcio-tools on first use and imports them."""
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Where each .proto lives: the provider contract is the project's own (crates/aws-csi-provider/proto/), shared with
# aws-csi-provider; the CSI subset is the environment's.
DIRS = {"provider": os.path.join(HERE, "..", "..", "..", "crates", "aws-csi-provider", "proto"), "csi": HERE}


def load(name):
    out = os.path.join(os.environ.get("BOOTSTRAP_ENV_STATE", os.path.join(HERE, "..", "state")), "gen")
    os.makedirs(out, exist_ok=True)
    src_dir = os.path.abspath(DIRS.get(name, HERE))
    src = os.path.join(src_dir, f"{name}.proto")
    gen = os.path.join(out, f"{name}_pb2.py")
    if not os.path.exists(gen) or os.path.getmtime(gen) < os.path.getmtime(src):
        from grpc_tools import protoc
        rc = protoc.main(["protoc", f"-I{src_dir}", f"--python_out={out}", f"--grpc_python_out={out}", src])
        if rc != 0:
            raise RuntimeError(f"protoc failed on {src}")
    if out not in sys.path:
        sys.path.insert(0, out)
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")
