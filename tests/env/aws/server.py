#!/usr/bin/env python3
"""The AWS half of the local EKS stand-in: moto 5.2.5 plus the EKS/eks-auth APIs it lacks, a Pod
Identity agent endpoint, fault injection and call counting. See README.md next to this file.

python tests/env/aws/server.py --host 127.0.0.1 --port 15000 --agent-port 15023 \
    --region us-west-2 --cluster bootstrap-test --kubeconfig PATH --state-dir DIR \
    [--addon-delay 3] [--enforce-iam] [--cluster-version 1.34] [--addon-manifests DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

log = logging.getLogger("aws-standin")

DEFAULT_ACCOUNT = "123456789012"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=15000)
    p.add_argument("--agent-port", type=int, default=15023)
    p.add_argument("--region", default="us-west-2")
    p.add_argument("--cluster", default="bootstrap-test")
    p.add_argument("--cluster-version", default="1.34", help="Kubernetes version DescribeCluster reports")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--addon-delay", type=float, default=3.0,
                   help="seconds an add-on stays CREATING/UPDATING/DELETING (default 3)")
    p.add_argument("--enforce-iam", action="store_true",
                   help="turn on moto's IAM access control; use the admin keys from aws.json")
    p.add_argument("--addon-manifests", default=None,
                   help="DIR/<addonName>/*.yaml applied when that add-on is created (besides the "
                        "built-in eks-pod-identity-agent DaemonSet); $ADDON_VERSION $REGION $CLUSTER_NAME substituted")
    p.add_argument("--kube-proxy-port", type=int, default=None,
                   help="also serve a fault-injecting proxy of kube-apiserver on this port (faults on "
                        "operations \"kube:VERB PATH\"; see awsstandin/kubeproxy.py)")
    p.add_argument("--kube-proxy-upstream", default=None, help="the apiserver URL the proxy forwards to")
    p.add_argument("--kube-proxy-pki", default=None,
                   help="DIR with ca.crt, apiserver.crt/.key (served) and admin.crt/.key (used upstream)")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("--host must be a loopback address")
    if a.kube_proxy_port is not None and not (a.kube_proxy_upstream and a.kube_proxy_pki):
        p.error("--kube-proxy-port needs --kube-proxy-upstream and --kube-proxy-pki")
    return a


def _setup_cluster(args, account_id: str, kube) -> bool:
    from moto.eks.models import eks_backends

    backend = eks_backends[account_id][args.region]
    if args.cluster not in backend.clusters:
        backend.create_cluster(
            name=args.cluster,
            role_arn=f"arn:aws:iam::{account_id}:role/{args.cluster}-cluster-role",
            resources_vpc_config={
                "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                "securityGroupIds": ["sg-0a1b2c3d4e5f60001"],
                "endpointPublicAccess": True,
                "endpointPrivateAccess": True,
                "publicAccessCidrs": ["0.0.0.0/0"],
            },
            version=args.cluster_version,
        )
    c = backend.clusters[args.cluster]
    c.status = "ACTIVE"
    c.platformVersion = "eks.7"
    c.version = args.cluster_version
    try:
        info = kube.cluster_info() if kube else None
    except Exception as e:
        info = None
        log.warning("kubeconfig %s not usable yet (%s): DescribeCluster keeps moto's made-up endpoint and CA",
                    args.kubeconfig, e)
    if info:
        c.endpoint = info.server
        if info.ca_data:
            c.certificate_authority = {"data": info.ca_data}
        log.info("cluster %s: endpoint %s, version %s", args.cluster, info.server, args.cluster_version)
    try:
        backend.create_nodegroup(
            cluster_name=args.cluster,
            node_role=f"arn:aws:iam::{account_id}:role/{args.cluster}-node-role",
            nodegroup_name=f"{args.cluster}-ng",
            subnets=["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            scaling_config={"minSize": 2, "maxSize": 2, "desiredSize": 2},
            instance_types=["m5.large"],
            ami_type="AL2023_x86_64_STANDARD",
            version=args.cluster_version,
        )
    except Exception as e:
        log.debug("node group not created: %s", e)
    return info is not None


def build(args, verifier=None, kube=None):
    """Import moto (after the env is set), set up state, and return (standin, admin_keys)."""
    if args.enforce_iam:
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

    from awsstandin import iam as iam_mod
    from awsstandin.app import StandIn
    from awsstandin.eksauth import KubeTokenVerifier
    from awsstandin.kube import KubeClient, KubeWorker

    account_id = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT)
    if kube is None:
        kube = KubeClient(args.kubeconfig)
    endpoint_set = _setup_cluster(args, account_id, kube)
    keys = ("test", "test")
    if args.enforce_iam:
        iam_mod.patch_all()
        keys = iam_mod.create_admin(account_id, args.region)
        log.info("IAM enforcement on: every call needs keys moto issued (admin user %s)", iam_mod.ADMIN_USER)
    standin = StandIn(
        account_id=account_id,
        region=args.region,
        cluster=args.cluster,
        addon_delay=args.addon_delay,
        verifier=verifier or KubeTokenVerifier(kube),
        worker=KubeWorker(kube),
        manifests_dir=args.addon_manifests,
    )
    standin._endpoint_set = endpoint_set
    return standin, keys


def main(argv=None, verifier=None, kube=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    path = os.path.join(args.state_dir, "aws.json")
    if os.path.exists(path):  # stale, from a run that did not exit cleanly
        os.remove(path)
    standin, (akid, secret) = build(args, verifier, kube)

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    main_srv = make_server(args.host, args.port, standin, threaded=True, request_handler=MotoRequestHandler)
    agent_srv = make_server(args.host, args.agent_port, standin.agent, threaded=True)
    port, agent_port = main_srv.server_port, agent_srv.server_port
    kube_proxy = None
    if args.kube_proxy_port is not None:
        from awsstandin.kubeproxy import KubeFaultProxy

        kube_proxy = KubeFaultProxy(args.host, args.kube_proxy_port, args.kube_proxy_upstream,
                                    args.kube_proxy_pki, standin.faults)

    os.makedirs(args.state_dir, exist_ok=True)
    info = {
        "endpoint": f"http://{args.host}:{port}",
        "agent_endpoint": f"http://{args.host}:{agent_port}/v1/credentials",
        "control_endpoint": f"http://{args.host}:{port}/_bootstrap",
        "region": args.region,
        "cluster": args.cluster,
        "account_id": standin.account_id,
        "access_key_id": akid,
        "secret_access_key": secret,
        "enforce_iam": bool(args.enforce_iam),
        "pid": os.getpid(),
    }
    if kube_proxy is not None:
        info["kube_proxy_endpoint"] = f"https://{args.host}:{kube_proxy.port}"

    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, path)

    t = threading.Thread(target=agent_srv.serve_forever, name="agent", daemon=True)
    t.start()
    if kube_proxy is not None:
        kube_proxy.start()

    def stop(signum, frame):
        log.info("signal %s: stopping", signum)
        threading.Thread(target=main_srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("ready: AWS on %s, Pod Identity agent on %s, cluster %s in %s (state %s)",
             info["endpoint"], info["agent_endpoint"], args.cluster, args.region, path)
    try:
        main_srv.serve_forever()
    finally:
        agent_srv.shutdown()
        if kube_proxy is not None:
            kube_proxy.shutdown()
        try:
            os.remove(path)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
