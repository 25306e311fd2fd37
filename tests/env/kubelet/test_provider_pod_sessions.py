"""The environment's aws-csi-provider hands each pod its own Pod Identity session.

Pod Identity sessions carry the pod's name and uid as session tags; a policy conditioned on
aws:PrincipalTag/kubernetes-pod-name must see the pod that mounts, so one pod's cached session
must never serve another pod of the same service account. Real pods, pod-bound tokens from the
real apiserver, the stand-in's agent and eks-auth, moto with --enforce-iam, the provider's gRPC
socket (Python grpc, no :authority override). Secret values are compared, never printed.
"""
import json
import os
import sys
import uuid

import boto3
import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kubeapi import Kube  # noqa: E402
from protos import load  # noqa: E402

REQUIRED = ("KUBECONFIG", "CSI_PROVIDER_DIR", "BOOTSTRAP_TEST_CLUSTER", "AWS_ENDPOINT_URL")


def env_or_skip():
    missing = [k for k in REQUIRED if not os.environ.get(k)]
    if missing:
        if os.environ.get("BOOTSTRAP_REQUIRE_ENV") == "1":
            pytest.fail(f"BOOTSTRAP_REQUIRE_ENV=1 but {missing} unset: source tests/env/state/env.sh")
        pytest.skip("tests/env is not up (source tests/env/state/env.sh)")
    if os.environ.get("BOOTSTRAP_ENV_IAM_ENFORCED") != "true":
        pytest.skip("the stand-in runs without --enforce-iam: policies are not evaluated")


def trust(account, cluster, ns, sa):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {"aws:SourceAccount": account,
                                       "aws:RequestTag/eks-cluster-name": cluster,
                                       "aws:RequestTag/kubernetes-namespace": ns,
                                       "aws:RequestTag/kubernetes-service-account": sa}}}]})


def test_a_pod_name_policy_sees_each_pod():
    env_or_skip()
    region, cluster = os.environ.get("AWS_REGION", "us-west-2"), os.environ["BOOTSTRAP_TEST_CLUSTER"]
    ns = "podsess-" + uuid.uuid4().hex[:8]
    canary = "canary-" + uuid.uuid4().hex
    sm, iam, eks, sts = (boto3.client(s, region_name=region) for s in ("secretsmanager", "iam", "eks", "sts"))
    account = sts.get_caller_identity()["Account"]
    arns = [sm.create_secret(Name=f"{ns}/s{i}", SecretString=f"{canary}-{i}")["ARN"] for i in range(2)]
    role = iam.create_role(RoleName=ns, AssumeRolePolicyDocument=trust(account, cluster, ns, "app"))["Role"]
    iam.put_role_policy(RoleName=ns, PolicyName="web-0-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arns,
             "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-pod-name": "web-0"}}},
            {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}))
    eks.create_pod_identity_association(clusterName=cluster, namespace=ns, serviceAccount="app",
                                        roleArn=role["Arn"])
    kube = Kube(os.environ["KUBECONFIG"])
    kube.apply(f"/api/v1/namespaces/{ns}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.apply(f"/api/v1/namespaces/{ns}/serviceaccounts/app",
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}})
    node = os.environ.get("BOOTSTRAP_TEST_NODES", "").split()[:1]
    pb, pb_grpc = load("provider")
    channel = grpc.insecure_channel("unix:" + os.path.join(os.environ["CSI_PROVIDER_DIR"], "aws.sock"))
    stub = pb_grpc.CSIDriverProviderStub(channel)
    objects = "".join(f"- {{objectName: '{a}', objectType: secretsmanager, objectAlias: s{i}}}\n"
                      for i, a in enumerate(arns))

    def mount(pod):
        spec = {"serviceAccountName": "app", "containers": [{"name": "c", "image": "busybox"}]}
        if node:
            spec["nodeName"] = node[0]
        obj = kube.apply(f"/api/v1/namespaces/{ns}/pods/{pod}",
                         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
                          "spec": spec})
        uid = obj["metadata"]["uid"]
        tr = kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/app/token", body={"spec": {
            "audiences": ["pods.eks.amazonaws.com"], "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}}})
        tokens = {"pods.eks.amazonaws.com": {"token": tr["status"]["token"],
                                             "expirationTimestamp": tr["status"]["expirationTimestamp"]}}
        attrs = {"csi.storage.k8s.io/pod.name": pod, "csi.storage.k8s.io/pod.namespace": ns,
                 "csi.storage.k8s.io/pod.uid": uid, "csi.storage.k8s.io/serviceAccount.name": "app",
                 "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
                 "usePodIdentity": "true", "region": region, "objects": objects}
        return stub.Mount(pb.MountRequest(attributes=json.dumps(attrs), secrets="{}", permission="420",
                                          target_path=f"/tmp/{ns}/{pod}"), timeout=30)

    try:
        first = mount("web-0")
        assert sorted(f.path for f in first.files) == ["s0", "s1"]
        assert all(f.contents == f"{canary}-{f.path[1:]}".encode() for f in first.files)
        # Same service account, another pod: its own session, which the policy refuses. A cache
        # keyed by service account would hand it web-0's session and mount the secrets.
        with pytest.raises(grpc.RpcError) as denied:
            mount("web-1")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, denied.value.code()
        assert canary not in (denied.value.details() or "")
        # web-0 still mounts (its session was not dropped by web-1's failure).
        assert len(mount("web-0").files) == 2
    finally:
        channel.close()
        for a in arns:
            sm.delete_secret(SecretId=a, ForceDeleteWithoutRecovery=True)
        kube.request("DELETE", f"/api/v1/namespaces/{ns}", ok404=True)
    log = os.path.join(os.environ.get("BOOTSTRAP_ENV_STATE", ""), "logs", "aws-csi-provider.log")
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            assert canary not in f.read(), "a secret value reached the provider log"
