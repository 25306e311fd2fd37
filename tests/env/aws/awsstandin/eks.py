"""EKS APIs moto 5.2.5 lacks: add-ons, add-on versions, Pod Identity associations, add-on
updates (DescribeUpdate for them) and tags on add-on/association ARNs.

State lives on moto's Cluster objects (attributes prefixed `_standin_`), so it shares moto's
lifetime: it goes with the cluster and with a moto reset. Field names follow botocore's
eks service-2.json (the model the AWS SDKs are generated from).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets as pyrandom
import string
import threading
import time
import uuid
from string import Template

import yaml
from moto.eks.models import eks_backends

from .kube import KubeWorker
from .protocol import Operation, error_response, json_response

log = logging.getLogger("aws-standin.eks")

POD_IDENTITY_AGENT = "eks-pod-identity-agent"
SECRETS_PROVIDER = "aws-secrets-store-csi-driver-provider"
ECR_ACCOUNT = "602401143452"


def _versions(spec: list[tuple[str, str, str]]) -> list[dict]:
    """(version, oldest k8s, newest k8s) newest first; the first version compatible with a
    Kubernetes version is that version's default."""
    out = []
    for ver, lo, hi in spec:
        lo_m, hi_m = int(lo.split(".")[1]), int(hi.split(".")[1])
        out.append({"addonVersion": ver, "k8s": [f"1.{m}" for m in range(hi_m, lo_m - 1, -1)]})
    return out


# A realistic catalog (versions and compatibility ranges modelled on EKS; not authoritative).
ADDON_CATALOG: dict[str, dict] = {
    POD_IDENTITY_AGENT: {
        "type": "security",
        "publisher": "eks",
        "owner": "aws",
        "defaultNamespace": "kube-system",
        "computeTypes": ["ec2", "hybrid"],
        "versions": _versions(
            [
                ("v1.3.10-eksbuild.2", "1.28", "1.35"),
                ("v1.3.9-eksbuild.3", "1.28", "1.35"),
                ("v1.3.8-eksbuild.2", "1.27", "1.34"),
                ("v1.3.7-eksbuild.2", "1.26", "1.33"),
                ("v1.3.5-eksbuild.2", "1.25", "1.33"),
                ("v1.3.4-eksbuild.1", "1.25", "1.32"),
            ]
        ),
    },
    SECRETS_PROVIDER: {
        "type": "security",
        "publisher": "eks",
        "owner": "aws",
        "defaultNamespace": "kube-system",
        "computeTypes": ["ec2", "hybrid"],
        "versions": _versions(
            [
                ("v2.1.1-eksbuild.1", "1.30", "1.35"),
                ("v2.1.0-eksbuild.1", "1.30", "1.35"),
                ("v2.0.0-eksbuild.1", "1.29", "1.34"),
                ("v1.0.1-eksbuild.1", "1.29", "1.33"),
            ]
        ),
    },
}

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_association_id() -> str:
    return "a-" + "".join(pyrandom.choice(_ID_ALPHABET) for _ in range(17))


def default_version(addon_name: str, k8s_version: str) -> str | None:
    for v in ADDON_CATALOG.get(addon_name, {}).get("versions", []):
        if k8s_version in v["k8s"]:
            return v["addonVersion"]
    return None


def pod_identity_agent_objects(cluster: str, region: str, version: str) -> list[dict]:
    labels = {
        "app.kubernetes.io/name": POD_IDENTITY_AGENT,
        "app.kubernetes.io/instance": POD_IDENTITY_AGENT,
    }
    image = f"{ECR_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/eks/eks-pod-identity-agent:{version}"
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": POD_IDENTITY_AGENT, "namespace": "kube-system", "labels": dict(labels)},
            "spec": {
                "selector": {"matchLabels": dict(labels)},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "hostNetwork": True,
                        "priorityClassName": "system-node-critical",
                        "terminationGracePeriodSeconds": 30,
                        "tolerations": [{"operator": "Exists"}],
                        "affinity": {
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                                                {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate", "hybrid", "auto"]},
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                        "containers": [
                            {
                                "name": POD_IDENTITY_AGENT,
                                "image": image,
                                "imagePullPolicy": "Always",
                                "command": ["/go-runner", "/eks-pod-identity-agent", "server"],
                                "args": [
                                    "--port", "80",
                                    "--cluster-name", cluster,
                                    "--probe-port", "2703",
                                ],
                                "env": [{"name": "AWS_REGION", "value": region}],
                                "ports": [
                                    {"containerPort": 80, "name": "proxy", "protocol": "TCP"},
                                    {"containerPort": 2703, "name": "probes-port", "protocol": "TCP"},
                                ],
                                "resources": {"requests": {"cpu": "25m", "memory": "20Mi"}},
                                "securityContext": {"capabilities": {"add": ["CAP_NET_BIND_SERVICE"]}},
                                "livenessProbe": {
                                    "httpGet": {"host": "localhost", "path": "/healthz", "port": "probes-port", "scheme": "HTTP"},
                                    "initialDelaySeconds": 30,
                                    "timeoutSeconds": 10,
                                },
                                "readinessProbe": {
                                    "httpGet": {"host": "localhost", "path": "/readyz", "port": "probes-port", "scheme": "HTTP"},
                                    "initialDelaySeconds": 1,
                                    "timeoutSeconds": 10,
                                },
                            }
                        ],
                    },
                },
            },
        }
    ]


class EksError(Exception):
    def __init__(self, status: int, code: str, message: str, **fields):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = {k: v for k, v in fields.items() if v is not None}


def not_found(message: str, **fields) -> EksError:
    return EksError(404, "ResourceNotFoundException", message, **fields)


def invalid_param(message: str, **fields) -> EksError:
    return EksError(400, "InvalidParameterException", message, **fields)


def _now() -> float:
    return round(time.time(), 3)


def _encode_token(n: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": n}).encode()).decode()


def _decode_token(tok: str | None) -> int:
    if not tok:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(tok.encode()))["i"])
    except Exception:
        raise EksError(400, "InvalidRequestException", "The nextToken is invalid.") from None


def _max_results(query: dict) -> int:
    raw = query.get("maxResults", [None])[0]
    if raw is None:
        return 100
    try:
        n = int(raw)
    except ValueError:
        raise invalid_param("maxResults must be an integer") from None
    if not 1 <= n <= 100:
        raise invalid_param("maxResults must be between 1 and 100")
    return n


ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")

ROUTES = [
    ("GET", re.compile(r"^/addons/supported-versions/?$"), "DescribeAddonVersions"),
    ("GET", re.compile(r"^/addons/configuration-schemas/?$"), "DescribeAddonConfiguration"),
    ("POST", re.compile(r"^/clusters/([^/]+)/addons/?$"), "CreateAddon"),
    ("GET", re.compile(r"^/clusters/([^/]+)/addons/?$"), "ListAddons"),
    ("GET", re.compile(r"^/clusters/([^/]+)/addons/([^/]+)/?$"), "DescribeAddon"),
    ("POST", re.compile(r"^/clusters/([^/]+)/addons/([^/]+)/update/?$"), "UpdateAddon"),
    ("DELETE", re.compile(r"^/clusters/([^/]+)/addons/([^/]+)/?$"), "DeleteAddon"),
    ("POST", re.compile(r"^/clusters/([^/]+)/pod-identity-associations/?$"), "CreatePodIdentityAssociation"),
    ("GET", re.compile(r"^/clusters/([^/]+)/pod-identity-associations/?$"), "ListPodIdentityAssociations"),
    ("GET", re.compile(r"^/clusters/([^/]+)/pod-identity-associations/([^/]+)/?$"), "DescribePodIdentityAssociation"),
    ("POST", re.compile(r"^/clusters/([^/]+)/pod-identity-associations/([^/]+)/?$"), "UpdatePodIdentityAssociation"),
    ("DELETE", re.compile(r"^/clusters/([^/]+)/pod-identity-associations/([^/]+)/?$"), "DeletePodIdentityAssociation"),
    ("GET", re.compile(r"^/clusters/([^/]+)/updates/([^/]+)/?$"), "DescribeUpdate"),
]
TAGS_PATH = re.compile(r"^/tags/(.+)$")
OUR_ARN = re.compile(r"^arn:aws[a-z-]*:eks:([^:]+):(\d{12}):(addon|podidentityassociation)/([^/]+)/")


class EksExtension:
    def __init__(
        self,
        account_id: str,
        addon_delay: float,
        worker: KubeWorker,
        manifests_dir: str | None = None,
    ):
        self.account_id = account_id
        self.addon_delay = addon_delay
        self.worker = worker
        self.manifests_dir = manifests_dir
        self.lock = threading.RLock()

    # --- routing -------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[str, tuple] | None:
        for m, rx, action in ROUTES:
            if m == method:
                mt = rx.match(path)
                if mt:
                    return action, mt.groups()
        mt = TAGS_PATH.match(path)
        if mt and OUR_ARN.match(mt.group(1)):
            return {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}.get(
                method, "ListTagsForResource"
            ), (mt.group(1),)
        return None

    def handle(self, op: Operation, method: str, path: str, query: dict, body: bytes, region: str):
        """Returns (status, headers, body) or None when the request is moto's business."""
        r = self.route(method, path)
        if r is None:
            return None
        action, args = r
        if action == "DescribeUpdate" and not self._is_our_update(region, args[0], args[1], query):
            return None
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            return error_response(op, 400, "InvalidParameterException", "The request body is not valid JSON.")
        try:
            with self.lock:
                status, out = getattr(self, "_" + action)(region, *args, query=query, body=payload)
            return json_response(status, out)
        except EksError as e:
            return error_response(op, e.status, e.code, e.message, e.fields)

    # --- helpers ----------------------------------------------------------------------------
    def cluster(self, region: str, name: str):
        c = eks_backends[self.account_id][region].clusters.get(name)
        if c is None:
            raise not_found(f"No cluster found for name: {name}.", clusterName=name)
        for attr in ("_standin_addons", "_standin_assocs", "_standin_updates"):
            if not hasattr(c, attr):
                setattr(c, attr, {})
        if not hasattr(c, "_standin_seq"):
            c._standin_seq = 0
        self._advance(c)
        return c

    def _advance(self, c) -> None:
        now = time.time()
        for name in list(c._standin_addons):
            a = c._standin_addons[name]
            if a["_until"] is not None and now >= a["_until"]:
                if a["status"] == "DELETING":
                    del c._standin_addons[name]
                    continue
                a["status"] = "ACTIVE"
                a["_until"] = None
        for u in c._standin_updates.values():
            if u["status"] == "InProgress" and now >= u["_until"]:
                u["status"] = "Successful"

    def _objects(self, cluster, region: str, addon_name: str, version: str) -> list[dict]:
        if addon_name == POD_IDENTITY_AGENT:
            return pod_identity_agent_objects(cluster.name, region, version)
        if self.manifests_dir:
            d = os.path.join(self.manifests_dir, addon_name)
            if os.path.isdir(d):
                objs = []
                for f in sorted(os.listdir(d)):
                    if f.endswith((".yaml", ".yml")):
                        with open(os.path.join(d, f)) as fh:
                            text = Template(fh.read()).safe_substitute(
                                ADDON_VERSION=version, REGION=region, CLUSTER_NAME=cluster.name
                            )
                        objs += [o for o in yaml.safe_load_all(text) if o]
                return objs
        return []

    def _apply_addon(self, cluster, region: str, a: dict) -> None:
        objs = self._objects(cluster, region, a["addonName"], a["addonVersion"])
        if not objs:
            log.info("add-on %s: no Kubernetes objects to apply", a["addonName"])
            return

        def run(kube, objs=objs):
            for o in objs:
                kube.apply(o)

        self.worker.submit(f"apply add-on {a['addonName']} {a['addonVersion']} to the cluster", run)

    def _delete_addon_objects(self, cluster, region: str, a: dict) -> None:
        objs = self._objects(cluster, region, a["addonName"], a["addonVersion"])
        if not objs:
            return

        def run(kube, objs=objs):
            for o in reversed(objs):
                kube.delete(o)

        self.worker.submit(f"delete add-on {a['addonName']} objects from the cluster", run)

    @staticmethod
    def _addon_view(a: dict) -> dict:
        return {k: v for k, v in a.items() if not k.startswith("_") and v is not None}

    @staticmethod
    def _assoc_view(a: dict) -> dict:
        return {k: v for k, v in a.items() if not k.startswith("_") and v is not None}

    def _addon(self, c, name: str) -> dict:
        a = c._standin_addons.get(name)
        if a is None:
            raise not_found(f"No addon: {name} found in cluster: {c.name}", clusterName=c.name, addonName=name)
        return a

    def _check_version(self, c, addon_name: str, version: str | None) -> str:
        cat = ADDON_CATALOG.get(addon_name)
        if cat is None:
            raise invalid_param(f"Addon {addon_name} specified is not supported", clusterName=c.name, addonName=addon_name)
        if version is None:
            v = default_version(addon_name, c.version)
            if v is None:
                raise invalid_param(
                    f"Addon {addon_name} has no version compatible with Kubernetes {c.version}",
                    clusterName=c.name, addonName=addon_name,
                )
            return v
        for v in cat["versions"]:
            if v["addonVersion"] == version:
                if c.version not in v["k8s"]:
                    raise invalid_param(
                        f"Addon version {version} is not compatible with cluster version {c.version}",
                        clusterName=c.name, addonName=addon_name,
                    )
                return version
        raise invalid_param(
            f"Addon version specified is not supported: {version} for {addon_name}",
            clusterName=c.name, addonName=addon_name,
        )

    @staticmethod
    def _check_config(values) -> None:
        if values is None:
            return
        if not isinstance(values, str):
            raise invalid_param("configurationValues must be a string")
        try:
            parsed = yaml.safe_load(values) if values.strip() else {}
        except yaml.YAMLError:
            raise invalid_param("ConfigurationValue provided in request is not supported: invalid JSON or YAML") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise invalid_param("ConfigurationValue provided in request is not supported: not an object")

    def _new_association(self, c, region, namespace, sa, role_arn, tags=None, owner=None,
                         disable_session_tags=False, target_role_arn=None, policy=None) -> dict:
        aid = new_association_id()
        now = _now()
        c._standin_seq += 1
        a = {
            "clusterName": c.name,
            "namespace": namespace,
            "serviceAccount": sa,
            "roleArn": role_arn,
            "associationArn": f"arn:aws:eks:{region}:{self.account_id}:podidentityassociation/{c.name}/{aid}",
            "associationId": aid,
            "tags": dict(tags or {}),
            "createdAt": now,
            "modifiedAt": now,
            "ownerArn": owner,
            "disableSessionTags": bool(disable_session_tags),
            "targetRoleArn": target_role_arn,
            "externalId": str(uuid.uuid4()) if target_role_arn else None,
            "policy": policy,
            "_seq": c._standin_seq,
        }
        c._standin_assocs[aid] = a
        return a

    def cluster_exists(self, region: str, name: str) -> bool:
        return name in eks_backends[self.account_id][region].clusters

    def cluster_arn(self, region: str, name: str) -> str:
        c = eks_backends[self.account_id][region].clusters.get(name)
        return c.arn if c is not None else f"arn:aws:eks:{region}:{self.account_id}:cluster/{name}"

    def association_for(self, region: str, cluster_name: str, namespace: str, sa: str) -> dict | None:
        with self.lock:
            c = self.cluster(region, cluster_name)
            for a in c._standin_assocs.values():
                if a["namespace"] == namespace and a["serviceAccount"] == sa:
                    return dict(a)
        return None

    def _is_our_update(self, region, cluster_name, update_id, query) -> bool:
        with self.lock:
            c = eks_backends[self.account_id][region].clusters.get(cluster_name)
            return bool(query.get("addonName")) or (
                c is not None and update_id in getattr(c, "_standin_updates", {})
            )

    # --- add-on versions ----------------------------------------------------------------------
    def _DescribeAddonVersions(self, region, query, body):
        k8s = query.get("kubernetesVersion", [None])[0]
        name = query.get("addonName", [None])[0]
        types = set(query.get("types", []))
        publishers = set(query.get("publishers", []))
        owners = set(query.get("owners", []))
        items = []
        for addon_name, cat in sorted(ADDON_CATALOG.items()):
            if name and addon_name != name:
                continue
            if (types and cat["type"] not in types) or (publishers and cat["publisher"] not in publishers) or (
                owners and cat["owner"] not in owners
            ):
                continue
            versions = []
            for v in cat["versions"]:
                ks = [k for k in v["k8s"] if k8s is None or k == k8s]
                if not ks:
                    continue
                versions.append(
                    {
                        "addonVersion": v["addonVersion"],
                        "architecture": ["amd64", "arm64"],
                        "computeTypes": list(cat["computeTypes"]),
                        "compatibilities": [
                            {
                                "clusterVersion": k,
                                "platformVersions": ["*"],
                                "defaultVersion": default_version(addon_name, k) == v["addonVersion"],
                            }
                            for k in ks
                        ],
                        "requiresConfiguration": False,
                        "requiresIamPermissions": False,
                    }
                )
            if versions:
                items.append(
                    {
                        "addonName": addon_name,
                        "type": cat["type"],
                        "addonVersions": versions,
                        "publisher": cat["publisher"],
                        "owner": cat["owner"],
                        "marketplaceInformation": None,
                        "defaultNamespace": cat["defaultNamespace"],
                    }
                )
        items = [{k: v for k, v in i.items() if v is not None} for i in items]
        start = _decode_token(query.get("nextToken", [None])[0])
        n = _max_results(query)
        out = {"addons": items[start : start + n]}
        if start + n < len(items):
            out["nextToken"] = _encode_token(start + n)
        return 200, out

    def _DescribeAddonConfiguration(self, region, query, body):
        name = query.get("addonName", [None])[0]
        version = query.get("addonVersion", [None])[0]
        cat = ADDON_CATALOG.get(name or "")
        if cat is None or not any(v["addonVersion"] == version for v in cat["versions"]):
            raise not_found(f"Addon {name} version {version} not found", addonName=name)
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": True,
            "properties": {
                "agent": {"type": "object", "properties": {"additionalArgs": {"type": "object"}}},
                "resources": {"type": "object"},
                "tolerations": {"type": "array"},
            },
        }
        return 200, {"addonName": name, "addonVersion": version, "configurationSchema": json.dumps(schema),
                     "podIdentityConfiguration": []}

    # --- add-ons ----------------------------------------------------------------------------
    def _CreateAddon(self, region, cluster_name, query, body):
        c = self.cluster(region, cluster_name)
        name = body.get("addonName")
        if not name:
            raise invalid_param("addonName is required", clusterName=cluster_name)
        if name in c._standin_addons:
            raise EksError(409, "ResourceInUseException", "Addon already exists.", clusterName=c.name, addonName=name)
        version = self._check_version(c, name, body.get("addonVersion"))
        self._check_config(body.get("configurationValues"))
        sa_role = body.get("serviceAccountRoleArn")
        if sa_role is not None and not ROLE_ARN.match(sa_role):
            raise invalid_param(f"Invalid serviceAccountRoleArn: {sa_role}", clusterName=c.name, addonName=name)
        pias = body.get("podIdentityAssociations") or []
        for p in pias:
            if not p.get("serviceAccount") or not ROLE_ARN.match(p.get("roleArn") or ""):
                raise invalid_param("podIdentityAssociations need serviceAccount and a valid roleArn",
                                    clusterName=c.name, addonName=name)
        ns = (body.get("namespaceConfig") or {}).get("namespace") or ADDON_CATALOG[name]["defaultNamespace"]
        for p in pias:
            for other in c._standin_assocs.values():
                if other["namespace"] == ns and other["serviceAccount"] == p["serviceAccount"]:
                    raise EksError(409, "ResourceInUseException",
                                   f"Service account {p['serviceAccount']} in namespace {ns} already has a Pod Identity association",
                                   clusterName=c.name, addonName=name)
        now = _now()
        arn = f"arn:aws:eks:{region}:{self.account_id}:addon/{c.name}/{name}/{uuid.uuid4()}"
        assoc_arns = [
            self._new_association(c, region, ns, p["serviceAccount"], p["roleArn"], owner=arn)["associationArn"]
            for p in pias
        ]
        a = {
            "addonName": name,
            "clusterName": c.name,
            "status": "CREATING",
            "addonVersion": version,
            "health": {"issues": []},
            "addonArn": arn,
            "createdAt": now,
            "modifiedAt": now,
            "serviceAccountRoleArn": sa_role,
            "tags": dict(body.get("tags") or {}),
            "configurationValues": body.get("configurationValues"),
            "podIdentityAssociations": assoc_arns,
            "namespaceConfig": {"namespace": ns} if body.get("namespaceConfig") else None,
            "_until": time.time() + self.addon_delay,
            "_resolve": body.get("resolveConflicts"),
        }
        c._standin_addons[name] = a
        self._apply_addon(c, region, a)
        log.info("CreateAddon %s %s on %s: CREATING for %ss", name, version, c.name, self.addon_delay)
        return 200, {"addon": self._addon_view(a)}

    def _DescribeAddon(self, region, cluster_name, addon_name, query, body):
        c = self.cluster(region, cluster_name)
        return 200, {"addon": self._addon_view(self._addon(c, addon_name))}

    def _ListAddons(self, region, cluster_name, query, body):
        c = self.cluster(region, cluster_name)
        names = sorted(c._standin_addons)
        start = _decode_token(query.get("nextToken", [None])[0])
        n = _max_results(query)
        out = {"addons": names[start : start + n]}
        if start + n < len(names):
            out["nextToken"] = _encode_token(start + n)
        return 200, out

    def _UpdateAddon(self, region, cluster_name, addon_name, query, body):
        c = self.cluster(region, cluster_name)
        a = self._addon(c, addon_name)
        if a["status"] in ("CREATING", "DELETING", "UPDATING"):
            raise EksError(409, "ResourceInUseException",
                           f"Addon {addon_name} is in {a['status']} state and cannot be updated now",
                           clusterName=c.name, addonName=addon_name)
        params = []
        changed_objects = False
        if body.get("addonVersion") is not None:
            v = self._check_version(c, addon_name, body["addonVersion"])
            params.append({"type": "AddonVersion", "value": v})
            changed_objects = changed_objects or v != a["addonVersion"]
            a["addonVersion"] = v
        if body.get("serviceAccountRoleArn") is not None:
            params.append({"type": "ServiceAccountRoleArn", "value": body["serviceAccountRoleArn"]})
            a["serviceAccountRoleArn"] = body["serviceAccountRoleArn"] or None
        if body.get("configurationValues") is not None:
            self._check_config(body["configurationValues"])
            params.append({"type": "ConfigurationValues", "value": body["configurationValues"]})
            a["configurationValues"] = body["configurationValues"] or None
            changed_objects = True
        if body.get("resolveConflicts") is not None:
            params.append({"type": "ResolveConflicts", "value": body["resolveConflicts"]})
        if body.get("podIdentityAssociations") is not None:
            ns = (a.get("namespaceConfig") or {}).get("namespace") or ADDON_CATALOG[addon_name]["defaultNamespace"]
            for arn in a["podIdentityAssociations"]:
                c._standin_assocs.pop(arn.rsplit("/", 1)[-1], None)
            a["podIdentityAssociations"] = [
                self._new_association(c, region, ns, p["serviceAccount"], p["roleArn"], owner=a["addonArn"])[
                    "associationArn"
                ]
                for p in body["podIdentityAssociations"]
            ]
            params.append({"type": "PodIdentityAssociations", "value": json.dumps(body["podIdentityAssociations"])})
        now = _now()
        a["status"] = "UPDATING"
        a["modifiedAt"] = now
        a["_until"] = time.time() + self.addon_delay
        uid = str(uuid.uuid4())
        u = {
            "id": uid,
            "status": "InProgress",
            "type": "AddonUpdate",
            "params": params,
            "createdAt": now,
            "errors": [],
            "_until": time.time() + self.addon_delay,
            "_addon": addon_name,
        }
        c._standin_updates[uid] = u
        if changed_objects:
            self._apply_addon(c, region, a)
        return 200, {"update": {k: v for k, v in u.items() if not k.startswith("_")}}

    def _DescribeUpdate(self, region, cluster_name, update_id, query, body):
        c = self.cluster(region, cluster_name)
        u = c._standin_updates.get(update_id)
        want = query.get("addonName", [None])[0]
        if u is None or (want and u["_addon"] != want):
            raise not_found(f"No update found for ID: {update_id}", clusterName=c.name, addonName=want)
        return 200, {"update": {k: v for k, v in u.items() if not k.startswith("_")}}

    def _DeleteAddon(self, region, cluster_name, addon_name, query, body):
        c = self.cluster(region, cluster_name)
        a = self._addon(c, addon_name)
        preserve = query.get("preserve", ["false"])[0].lower() == "true"
        if a["status"] != "DELETING":
            a["status"] = "DELETING"
            a["modifiedAt"] = _now()
            a["_until"] = time.time() + self.addon_delay
            for arn in a["podIdentityAssociations"]:
                c._standin_assocs.pop(arn.rsplit("/", 1)[-1], None)
            if not preserve:
                self._delete_addon_objects(c, region, a)
        return 200, {"addon": self._addon_view(a)}

    # --- Pod Identity associations -------------------------------------------------------------
    def _CreatePodIdentityAssociation(self, region, cluster_name, query, body):
        c = self.cluster(region, cluster_name)
        ns, sa, role = body.get("namespace"), body.get("serviceAccount"), body.get("roleArn")
        for k, v in (("namespace", ns), ("serviceAccount", sa), ("roleArn", role)):
            if not v or not isinstance(v, str):
                raise invalid_param(f"{k} is required", clusterName=c.name)
        if not ROLE_ARN.match(role):
            raise invalid_param(f"Invalid roleArn: {role}", clusterName=c.name)
        target = body.get("targetRoleArn")
        if target is not None and not ROLE_ARN.match(target):
            raise invalid_param(f"Invalid targetRoleArn: {target}", clusterName=c.name)
        dst = body.get("disableSessionTags")
        if body.get("policy") is not None and not dst:
            raise invalid_param("A session policy requires disableSessionTags to be true", clusterName=c.name)
        token = body.get("clientRequestToken")
        for other in c._standin_assocs.values():
            if other["namespace"] == ns and other["serviceAccount"] == sa:
                if token and other.get("_token") == token and other["roleArn"] == role:
                    return 200, {"association": self._assoc_view(other)}  # idempotent retry
                raise EksError(
                    409, "ResourceInUseException",
                    f"Association already exists: {other['associationId']} "
                    f"(namespace {ns}, service account {sa})",
                    clusterName=c.name,
                )
        a = self._new_association(c, region, ns, sa, role, tags=body.get("tags"),
                                  disable_session_tags=dst, target_role_arn=target, policy=body.get("policy"))
        a["_token"] = token
        log.info("CreatePodIdentityAssociation %s on %s for %s/%s", a["associationId"], c.name, ns, sa)
        return 200, {"association": self._assoc_view(a)}

    def _assoc(self, c, aid: str) -> dict:
        a = c._standin_assocs.get(aid)
        if a is None:
            raise not_found(f"No Pod Identity Association found for id: {aid}", clusterName=c.name)
        return a

    def _DescribePodIdentityAssociation(self, region, cluster_name, aid, query, body):
        c = self.cluster(region, cluster_name)
        return 200, {"association": self._assoc_view(self._assoc(c, aid))}

    def _ListPodIdentityAssociations(self, region, cluster_name, query, body):
        c = self.cluster(region, cluster_name)
        ns = query.get("namespace", [None])[0]
        sa = query.get("serviceAccount", [None])[0]
        start = _decode_token(query.get("nextToken", [None])[0])
        n = _max_results(query)
        items = sorted(
            (a for a in c._standin_assocs.values()
             if (ns is None or a["namespace"] == ns) and (sa is None or a["serviceAccount"] == sa)
             and a["_seq"] >= start),
            key=lambda a: a["_seq"],
        )
        page = items[:n]
        out = {
            "associations": [
                {k: a[k] for k in ("clusterName", "namespace", "serviceAccount", "associationArn",
                                   "associationId", "ownerArn") if a.get(k) is not None}
                for a in page
            ]
        }
        if len(items) > n:
            out["nextToken"] = _encode_token(items[n]["_seq"])
        return 200, out

    def _UpdatePodIdentityAssociation(self, region, cluster_name, aid, query, body):
        c = self.cluster(region, cluster_name)
        a = self._assoc(c, aid)
        if body.get("roleArn") is not None:
            if not ROLE_ARN.match(body["roleArn"]):
                raise invalid_param(f"Invalid roleArn: {body['roleArn']}", clusterName=c.name)
            a["roleArn"] = body["roleArn"]
        if body.get("disableSessionTags") is not None:
            a["disableSessionTags"] = bool(body["disableSessionTags"])
        if "targetRoleArn" in body:
            t = body["targetRoleArn"] or None
            if t is not None and not ROLE_ARN.match(t):
                raise invalid_param(f"Invalid targetRoleArn: {t}", clusterName=c.name)
            a["targetRoleArn"] = t
            a["externalId"] = (a.get("externalId") or str(uuid.uuid4())) if t else None
        if "policy" in body:
            a["policy"] = body["policy"] or None
        if a.get("policy") and not a["disableSessionTags"]:
            raise invalid_param("A session policy requires disableSessionTags to be true", clusterName=c.name)
        a["modifiedAt"] = _now()
        return 200, {"association": self._assoc_view(a)}

    def _DeletePodIdentityAssociation(self, region, cluster_name, aid, query, body):
        c = self.cluster(region, cluster_name)
        a = self._assoc(c, aid)
        if a.get("ownerArn"):
            raise EksError(400, "InvalidRequestException",
                           f"Association {aid} is owned by {a['ownerArn']} and can only be changed through it",
                           clusterName=c.name)
        del c._standin_assocs[aid]
        return 200, {"association": self._assoc_view(a)}

    # --- tags on our ARNs -----------------------------------------------------------------------
    def _tagged(self, arn: str) -> dict:
        m = OUR_ARN.match(arn)
        region, kind, cluster_name = m.group(1), m.group(3), m.group(4)
        try:
            c = self.cluster(region, cluster_name)
        except EksError:
            raise EksError(404, "NotFoundException", "Resource was not found") from None
        if kind == "addon":
            for a in c._standin_addons.values():
                if a["addonArn"] == arn:
                    return a
        else:
            a = c._standin_assocs.get(arn.rsplit("/", 1)[-1])
            if a is not None and a["associationArn"] == arn:
                return a
        raise EksError(404, "NotFoundException", "Resource was not found")

    def _ListTagsForResource(self, region, arn, query, body):
        return 200, {"tags": dict(self._tagged(arn)["tags"])}

    def _TagResource(self, region, arn, query, body):
        tags = body.get("tags")
        if not isinstance(tags, dict) or not tags:
            raise EksError(400, "BadRequestException", "tags must be a non-empty map")
        self._tagged(arn)["tags"].update(tags)
        return 200, {}

    def _UntagResource(self, region, arn, query, body):
        t = self._tagged(arn)["tags"]
        for k in query.get("tagKeys", []):
            t.pop(k, None)
        return 200, {}
