"""Turns a DaemonSet's pod template into the command the environment runs on one node.

What a real node would run from the template's container (its `args`, its `env` with `$(VAR)`
expansion and `fieldRef: spec.nodeName`), with what only makes sense inside a container
rewritten to the environment's equivalents: the CSI endpoint and the providers directories
(hostPath volumes) become the environment's state directories, metrics addresses its ports,
the Pod Identity agent address its agent, and the image reference the environment's build of
that program (our provider: the image in the environment's registry, unpacked and run by
image-run.sh, or the host binary; the upstream provider: the binary `build.sh
upstream-provider` made; the driver: the binary `build.sh csi` made). Every other argument
and environment variable passes through unchanged: rotation flags, log format, deadlines.

Pure functions of (template, node, environment config): tests/env/kubelet/test_podspec.py.
"""
import re

DRIVER, OURS, UPSTREAM = "driver", "aws-csi-provider", "upstream-provider"
# The container each role's DaemonSet runs (the names bootstrap's templates and upstream's
# charts use).
CONTAINERS = {DRIVER: "secrets-store", OURS: "provider", UPSTREAM: "provider-aws-installer"}
MANAGED = "app.kubernetes.io/managed-by=bootstrap"
PROVIDERS_IN_CONTAINER = "/var/run/secrets-store-csi-providers"

# What the environment runs when the cluster has no DaemonSet for a role: the arguments of
# bootstrap's default driver template, and the provider's own defaults.
DEFAULT_DRIVER = {"name": "secrets-store", "args": [
    "--endpoint=$(CSI_ENDPOINT)", "--nodeid=$(KUBE_NODE_NAME)",
    f"--provider-volume={PROVIDERS_IN_CONTAINER}",
    "--additional-provider-volume-paths=/etc/kubernetes/secrets-store-csi-providers",
    "--metrics-addr=:8095"],
    "env": [{"name": "CSI_ENDPOINT", "value": "unix:///csi/csi.sock"},
            {"name": "KUBE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
DEFAULT_PROVIDER = {"name": "provider", "args": [f"--provider-volume={PROVIDERS_IN_CONTAINER}"]}


def role_of(ds):
    """The role a DaemonSet plays in the environment (by its containers), or None."""
    names = {c.get("name") for c in ds["spec"]["template"]["spec"].get("containers") or []}
    for role, container in CONTAINERS.items():
        if container in names:
            return role
    return None


def container_of(ds, role):
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c.get("name") == CONTAINERS[role])


def container_env(container, node):
    """The container's environment as kubelet computes it (literal values, `$(VAR)` references
    to earlier variables, the node name); other sources (secrets, config maps) are skipped."""
    out = {}
    for e in container.get("env") or []:
        if "value" in e:
            out[e["name"]] = expand(e["value"], out)
        elif ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "spec.nodeName":
            out[e["name"]] = node
    return out


def expand(value, env):
    """kubelet's `$(VAR)` expansion: known variables replaced, `$$` escapes, unknown kept."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def rewrite(args, rules):
    """`args` with each flag in `rules` (name → function of its value, returning the new value)
    rewritten and normalised to `--name=value`; `--name value` and `-name` forms are read too.
    Flags named in `rules` that the args lack are appended (rule called with None) when the
    rule returns a value for None."""
    out, seen, i = [], set(), 0
    while i < len(args):
        a = args[i]
        m = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9-]*)(?:=(.*))?$", a, re.S)
        if m and m.group(1) in rules:
            name, value = m.group(1), m.group(2)
            if value is None and i + 1 < len(args):
                value, i = args[i + 1], i + 1
            seen.add(name)
            new = rules[name](value)
            if new is not None:
                out.append(f"--{name}={new}")
        else:
            out.append(a)
        i += 1
    for name, rule in rules.items():
        if name not in seen and (new := rule(None)) is not None:
            out.append(f"--{name}={new}")
    return out


def driver_argv(container, node, index, cfg):
    """The driver process for node number `index`."""
    env = container_env(container, node)
    args = [expand(a, env) for a in container.get("args") or []]
    args = rewrite(args, {
        "endpoint": lambda _: f"unix://{cfg['state']}/csi/node{index}/csi.sock",
        "nodeid": lambda _: node,
        "provider-volume": lambda _: f"{cfg['state']}/providers",
        "additional-provider-volume-paths": lambda _: f"{cfg['state']}/providers-extra",
        "metrics-addr": lambda _: f"127.0.0.1:{cfg['driver_metrics_base'] + index}",
    })
    if not any(re.match(r"^--?v(=|$)", a) for a in args):
        args.append("--v=2")  # the environment's logs say what the driver did
    env["KUBECONFIG"] = cfg["kubeconfig"]
    return ["env", *[f"{k}={v}" for k, v in env.items()], cfg["driver_bin"], *args]


def _provider_env(container, cfg):
    env = {"AWS_REGION": cfg["region"], "RUST_LOG": "info"}
    env.update(container_env(container, cfg["nodes"][0]))
    # The node's view of AWS is the stand-in's.
    env.update({"AWS_ENDPOINT_URL": cfg["aws_endpoint"], "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def provider_argv(container, cfg):
    """Our provider: one process serving every node (the nodes share the providers directory)."""
    image = cfg["provider_from"] == "image"
    args = [expand(a, container_env(container, cfg["nodes"][0])) for a in container.get("args") or []]
    args = rewrite(args, {
        "provider-volume": lambda _: PROVIDERS_IN_CONTAINER if image else f"{cfg['state']}/providers",
        "metrics-addr": lambda _: f"127.0.0.1:{cfg['provider_metrics']}",
        "pod-identity-endpoint": lambda _: cfg["agent_endpoint"],
    })
    env = _provider_env(container, cfg)
    if image:
        env["KUBECONFIG"] = "/etc/bootstrap-env/kubeconfig"
        run = [f"{cfg['env_dir']}/image-run.sh", cfg["bundle"],
               "--mount", f"{cfg['state']}/providers:{PROVIDERS_IN_CONTAINER}",
               "--mount", f"{cfg['kubeconfig']}:/etc/bootstrap-env/kubeconfig:ro"]
        for k, v in env.items():
            run += ["--env", f"{k}={v}"]
        return [*run, "--", *args]
    env["KUBECONFIG"] = cfg["kubeconfig"]
    return ["env", *[f"{k}={v}" for k, v in env.items()], cfg["provider_bin"], *args]


def upstream_argv(container, cfg, service_account):
    """The upstream provider, in the sandbox tests/env/upstream-run.py makes for it (a network
    namespace where the Pod Identity agent's fixed address and STS's host name reach the
    stand-in, and the DaemonSet's service account where in-cluster clients look)."""
    args = [expand(a, container_env(container, cfg["nodes"][0])) for a in container.get("args") or []]
    args = rewrite(args, {"provider-volume": lambda _: f"{cfg['state']}/providers"})
    env = _provider_env(container, cfg)
    env.pop("RUST_LOG", None)
    return [cfg["python"], f"{cfg['env_dir']}/upstream-run.py", "--config", f"{cfg['state']}/follow.json",
            "--service-account", service_account, *[f"{k}={v}" for k, v in env.items()], "--",
            cfg["upstream_bin"], *args]


def argv(role, container, cfg, node_index=0, service_account="kube-system/default"):
    if role == DRIVER:
        return driver_argv(container, cfg["nodes"][node_index], node_index, cfg)
    if role == OURS:
        return provider_argv(container, cfg)
    return upstream_argv(container, cfg, service_account)
