"""EKS: DescribeCluster facts, add-ons (lifecycle, versions, tags, cluster objects) and Pod Identity
associations (filters, pagination, 404, 409, tags), through boto3 (same model as the Rust SDK)."""

from __future__ import annotations

import re
import time

import pytest
import requests
from botocore.exceptions import ClientError

from standin_testlib import FAKE_CA

CLUSTER = "bootstrap-test"
AGENT = "eks-pod-identity-agent"
ROLE = "arn:aws:iam::123456789012:role/some-role"


def err(e: ClientError) -> tuple[str, int]:
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def wait_status(eks, cluster, addon, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            st = eks.describe_addon(clusterName=cluster, addonName=addon)["addon"]["status"]
        except ClientError as e:
            st = err(e)[0]
        if st == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{addon} never reached {want} (last {st})")


def new_cluster(server, name):
    eks = server.client("eks")
    eks.create_cluster(name=name, version="1.34", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    return eks


def test_describe_cluster_reports_local_apiserver(server, apiserver):
    c = server.client("eks").describe_cluster(name=CLUSTER)["cluster"]
    assert c["endpoint"] == apiserver.url
    assert c["certificateAuthority"]["data"] == FAKE_CA
    assert c["status"] == "ACTIVE"
    assert c["version"] == "1.34"
    assert re.match(r"^eks\.\d+$", c["platformVersion"])


def test_addon_versions(server):
    eks = server.client("eks")
    addons = eks.describe_addon_versions(addonName=AGENT, kubernetesVersion="1.34")["addons"]
    assert [a["addonName"] for a in addons] == [AGENT]
    a = addons[0]
    assert a["owner"] == "aws" and a["publisher"] == "eks" and a["type"]
    versions = [v["addonVersion"] for v in a["addonVersions"]]
    assert versions[0] == "v1.3.10-eksbuild.2" and len(versions) >= 3
    assert "v1.3.7-eksbuild.2" not in versions  # not compatible with 1.34
    defaults = [v["addonVersion"] for v in a["addonVersions"]
                if any(c["defaultVersion"] and c["clusterVersion"] == "1.34" for c in v["compatibilities"])]
    assert defaults == ["v1.3.10-eksbuild.2"]
    assert all(c["clusterVersion"] == "1.34" for v in a["addonVersions"] for c in v["compatibilities"])

    prov = eks.describe_addon_versions(addonName="aws-secrets-store-csi-driver-provider")["addons"]
    assert prov and prov[0]["addonVersions"]
    older = eks.describe_addon_versions(addonName=AGENT, kubernetesVersion="1.33")["addons"][0]
    assert "v1.3.7-eksbuild.2" in [v["addonVersion"] for v in older["addonVersions"]]
    assert eks.describe_addon_versions(addonName="no-such-addon")["addons"] == []
    everything = eks.describe_addon_versions(kubernetesVersion="1.34", maxResults=1)
    assert len(everything["addons"]) == 1 and everything.get("nextToken")
    rest = eks.describe_addon_versions(kubernetesVersion="1.34", maxResults=1, nextToken=everything["nextToken"])
    assert rest["addons"][0]["addonName"] != everything["addons"][0]["addonName"]


def test_addon_lifecycle_applies_and_deletes_the_daemonset(server, apiserver, control, unique):
    cluster = unique("addons")
    eks = new_cluster(server, cluster)
    created = eks.create_addon(clusterName=cluster, addonName=AGENT, tags={"owner": "test"})["addon"]
    assert created["status"] == "CREATING"
    assert created["addonVersion"] == "v1.3.10-eksbuild.2"
    assert re.match(rf"^arn:aws:eks:us-west-2:123456789012:addon/{cluster}/{AGENT}/[0-9a-f-]{{36}}$", created["addonArn"])
    assert created["tags"] == {"owner": "test"}

    with pytest.raises(ClientError) as e:
        eks.create_addon(clusterName=cluster, addonName=AGENT)
    assert err(e.value) == ("ResourceInUseException", 409)

    assert eks.list_addons(clusterName=cluster)["addons"] == [AGENT]
    wait_status(eks, cluster, AGENT, "ACTIVE")

    assert requests.post(control + "/kube/wait").json()["idle"]
    applied = [r for r in apiserver.find("PATCH", "/daemonsets/eks-pod-identity-agent")
               if cluster in str(r["body"])]
    assert applied, "the add-on's DaemonSet was not applied"
    r = applied[-1]
    assert r["path"] == "/apis/apps/v1/namespaces/kube-system/daemonsets/eks-pod-identity-agent"
    assert r["content_type"] == "application/apply-patch+yaml"
    assert r["args"]["fieldManager"] == "eks" and r["auth"] == "Bearer admin-token"
    ds = r["body"]
    assert ds["metadata"]["labels"]["app.kubernetes.io/name"] == AGENT
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["containers"][0]["image"] == (
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/eks-pod-identity-agent:v1.3.10-eksbuild.2")

    # tags through TagResource/UntagResource/ListTagsForResource on the add-on ARN
    eks.tag_resource(resourceArn=created["addonArn"], tags={"team": "a"})
    eks.untag_resource(resourceArn=created["addonArn"], tagKeys=["owner"])
    assert eks.list_tags_for_resource(resourceArn=created["addonArn"])["tags"] == {"team": "a"}
    assert eks.describe_addon(clusterName=cluster, addonName=AGENT)["addon"]["tags"] == {"team": "a"}

    # update: UPDATING, DescribeUpdate InProgress -> Successful, new image applied
    upd = eks.update_addon(clusterName=cluster, addonName=AGENT, addonVersion="v1.3.9-eksbuild.3")["update"]
    assert upd["type"] == "AddonUpdate" and upd["status"] == "InProgress"
    assert {"type": "AddonVersion", "value": "v1.3.9-eksbuild.3"} in upd["params"]
    assert eks.describe_addon(clusterName=cluster, addonName=AGENT)["addon"]["status"] == "UPDATING"
    wait_status(eks, cluster, AGENT, "ACTIVE")
    assert eks.describe_update(name=cluster, updateId=upd["id"], addonName=AGENT)["update"]["status"] == "Successful"
    requests.post(control + "/kube/wait")
    images = [r["body"]["spec"]["template"]["spec"]["containers"][0]["image"]
              for r in apiserver.find("PATCH", "/daemonsets/eks-pod-identity-agent") if cluster in str(r["body"])]
    assert images[-1].endswith(":v1.3.9-eksbuild.3")

    # delete: DELETING, then gone; the DaemonSet is deleted from the cluster
    before = len(apiserver.find("DELETE", "/daemonsets/eks-pod-identity-agent"))
    assert eks.delete_addon(clusterName=cluster, addonName=AGENT)["addon"]["status"] == "DELETING"
    assert eks.describe_addon(clusterName=cluster, addonName=AGENT)["addon"]["status"] == "DELETING"
    wait_status(eks, cluster, AGENT, "ResourceNotFoundException")
    assert eks.list_addons(clusterName=cluster)["addons"] == []
    requests.post(control + "/kube/wait")
    assert len(apiserver.find("DELETE", "/daemonsets/eks-pod-identity-agent")) == before + 1
    with pytest.raises(ClientError) as e:
        eks.list_tags_for_resource(resourceArn=created["addonArn"])
    assert err(e.value) == ("NotFoundException", 404)


def test_addon_errors(server, unique):
    eks = server.client("eks")
    with pytest.raises(ClientError) as e:
        eks.create_addon(clusterName="no-such-cluster", addonName=AGENT)
    assert err(e.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        eks.describe_addon(clusterName=CLUSTER, addonName="vpc-cni")
    assert err(e.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        eks.delete_addon(clusterName=CLUSTER, addonName="vpc-cni")
    assert err(e.value) == ("ResourceNotFoundException", 404)
    cluster = unique("addon-errors")
    eks = new_cluster(server, cluster)
    with pytest.raises(ClientError) as e:
        eks.create_addon(clusterName=cluster, addonName=AGENT, addonVersion="v1.3.7-eksbuild.2")
    assert err(e.value) == ("InvalidParameterException", 400)
    with pytest.raises(ClientError) as e:
        eks.create_addon(clusterName=cluster, addonName=AGENT, configurationValues="[1, 2")
    assert err(e.value) == ("InvalidParameterException", 400)
    a = eks.create_addon(clusterName=cluster, addonName=AGENT, addonVersion="v1.3.8-eksbuild.2",
                         configurationValues='{"agent":{"additionalArgs":{"-b":"169.254.170.23"}}}')["addon"]
    assert a["addonVersion"] == "v1.3.8-eksbuild.2"
    assert "169.254.170.23" in a["configurationValues"]
    with pytest.raises(ClientError) as e:  # still CREATING
        eks.update_addon(clusterName=cluster, addonName=AGENT, addonVersion="v1.3.9-eksbuild.3")
    assert err(e.value) == ("ResourceInUseException", 409)


def test_addon_with_pod_identity_associations(server, unique):
    cluster = unique("addon-pia")
    eks = new_cluster(server, cluster)
    a = eks.create_addon(clusterName=cluster, addonName="aws-secrets-store-csi-driver-provider",
                         podIdentityAssociations=[{"serviceAccount": "provider-sa", "roleArn": ROLE}])["addon"]
    assert len(a["podIdentityAssociations"]) == 1
    lst = eks.list_pod_identity_associations(clusterName=cluster)["associations"]
    assert [(x["namespace"], x["serviceAccount"], x["ownerArn"]) for x in lst] == [
        ("kube-system", "provider-sa", a["addonArn"])]
    with pytest.raises(ClientError) as e:  # owned by the add-on
        eks.delete_pod_identity_association(clusterName=cluster, associationId=lst[0]["associationId"])
    assert err(e.value) == ("InvalidRequestException", 400)
    eks.delete_addon(clusterName=cluster, addonName="aws-secrets-store-csi-driver-provider")
    assert eks.list_pod_identity_associations(clusterName=cluster)["associations"] == []


def test_addon_manifests_dir(server, apiserver, control, unique):
    cluster = unique("manifests")
    eks = new_cluster(server, cluster)
    eks.create_addon(clusterName=cluster, addonName="aws-secrets-store-csi-driver-provider",
                     addonVersion="v2.1.0-eksbuild.1")
    requests.post(control + "/kube/wait")
    cms = [r["body"] for r in apiserver.find("PATCH", "/namespaces/kube-system/configmaps/provider-info")
           if r["body"]["data"]["cluster"] == cluster]
    assert cms and cms[-1]["data"] == {"version": "v2.1.0-eksbuild.1", "cluster": cluster, "region": "us-west-2"}
    deletes = len(apiserver.find("DELETE", "/configmaps/provider-info"))
    eks.delete_addon(clusterName=cluster, addonName="aws-secrets-store-csi-driver-provider", preserve=True)
    requests.post(control + "/kube/wait")
    assert len(apiserver.find("DELETE", "/configmaps/provider-info")) == deletes  # preserve keeps the objects


def test_pod_identity_associations(server, unique):
    cluster = unique("pia")
    eks = new_cluster(server, cluster)
    made = []
    for ns, sa in [("team-a", "app"), ("team-a", "worker"), ("team-b", "app"), ("team-c", "app"), ("team-c", "x")]:
        made.append(eks.create_pod_identity_association(
            clusterName=cluster, namespace=ns, serviceAccount=sa, roleArn=ROLE, tags={"ns": ns})["association"])
    a = made[0]
    assert re.match(r"^a-[a-z0-9]{17}$", a["associationId"])
    assert a["associationArn"] == (
        f"arn:aws:eks:us-west-2:123456789012:podidentityassociation/{cluster}/{a['associationId']}")
    assert "ownerArn" not in a
    assert a["tags"] == {"ns": "team-a"} and a["disableSessionTags"] is False
    assert len({m["associationId"] for m in made}) == 5

    with pytest.raises(ClientError) as e:
        eks.create_pod_identity_association(clusterName=cluster, namespace="team-a", serviceAccount="app",
                                            roleArn="arn:aws:iam::123456789012:role/other")
    assert err(e.value) == ("ResourceInUseException", 409)

    def ids(**kw):
        return [x["associationId"] for x in eks.list_pod_identity_associations(clusterName=cluster, **kw)["associations"]]

    assert ids(namespace="team-a") == [made[0]["associationId"], made[1]["associationId"]]
    assert ids(serviceAccount="app") == [made[i]["associationId"] for i in (0, 2, 3)]
    assert ids(namespace="team-c", serviceAccount="x") == [made[4]["associationId"]]
    assert ids(namespace="nobody") == []

    pages, token = [], None
    while True:
        kw = {"maxResults": 2} | ({"nextToken": token} if token else {})
        page = eks.list_pod_identity_associations(clusterName=cluster, **kw)
        pages.append([x["associationId"] for x in page["associations"]])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [m["associationId"] for m in made]
    paginator = eks.get_paginator("list_pod_identity_associations")
    assert sum(len(p["associations"]) for p in paginator.paginate(clusterName=cluster, PaginationConfig={"PageSize": 3})) == 5

    d = eks.describe_pod_identity_association(clusterName=cluster, associationId=a["associationId"])["association"]
    assert d["roleArn"] == ROLE and d["namespace"] == "team-a"
    u = eks.update_pod_identity_association(clusterName=cluster, associationId=a["associationId"],
                                            roleArn="arn:aws:iam::123456789012:role/new-role")["association"]
    assert u["roleArn"].endswith("/new-role") and u["modifiedAt"] >= u["createdAt"]
    eks.tag_resource(resourceArn=a["associationArn"], tags={"k": "v"})
    assert eks.list_tags_for_resource(resourceArn=a["associationArn"])["tags"] == {"ns": "team-a", "k": "v"}

    deleted = eks.delete_pod_identity_association(clusterName=cluster, associationId=a["associationId"])
    assert deleted["association"]["associationId"] == a["associationId"]
    for call in (eks.describe_pod_identity_association, eks.delete_pod_identity_association):
        with pytest.raises(ClientError) as e:
            call(clusterName=cluster, associationId=a["associationId"])
        assert err(e.value) == ("ResourceNotFoundException", 404)
    # the service account is free again
    eks.create_pod_identity_association(clusterName=cluster, namespace="team-a", serviceAccount="app", roleArn=ROLE)

    for kw in ({"clusterName": "no-such-cluster"},):
        with pytest.raises(ClientError) as e:
            eks.list_pod_identity_associations(**kw)
        assert err(e.value) == ("ResourceNotFoundException", 404)
        with pytest.raises(ClientError) as e:
            eks.create_pod_identity_association(namespace="n", serviceAccount="s", roleArn=ROLE, **kw)
        assert err(e.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        eks.create_pod_identity_association(clusterName=cluster, namespace="n", serviceAccount="s", roleArn="not-an-arn")
    assert err(e.value) == ("InvalidParameterException", 400)


def test_association_client_request_token_is_idempotent(server, unique):
    cluster = unique("pia-idem")
    eks = new_cluster(server, cluster)
    kw = dict(clusterName=cluster, namespace="n", serviceAccount="s", roleArn=ROLE, clientRequestToken="tok-1")
    first = eks.create_pod_identity_association(**kw)["association"]
    again = eks.create_pod_identity_association(**kw)["association"]
    assert first["associationId"] == again["associationId"]
    assert len(eks.list_pod_identity_associations(clusterName=cluster)["associations"]) == 1


def test_addon_delay_is_set_at_run_time(server, control, unique):
    cluster = unique("addon-delay")
    eks = new_cluster(server, cluster)
    original = requests.post(control + "/addon-delay", json={"seconds": 1.5}).json()["seconds"]
    assert original == 1.5
    try:
        started = time.time()
        eks.create_addon(clusterName=cluster, addonName=AGENT)
        assert eks.describe_addon(clusterName=cluster, addonName=AGENT)["addon"]["status"] == "CREATING"
        wait_status(eks, cluster, AGENT, "ACTIVE", timeout=10)
        assert time.time() - started >= 1.4, "ACTIVE only after the delay set at run time"
    finally:
        requests.post(control + "/addon-delay", json={"seconds": 3})
