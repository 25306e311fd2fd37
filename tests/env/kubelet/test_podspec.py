"""podspec.py: a DaemonSet's container becomes the environment's command (no environment needed)."""
import copy

import podspec

CFG = {"state": "/s", "env_dir": "/e", "kubeconfig": "/s/kubeconfig", "nodes": ["n0", "n1"], "region": "us-west-2",
       "aws_endpoint": "http://127.0.0.1:15000", "agent_endpoint": "http://127.0.0.1:15023/v1/credentials",
       "driver_bin": "/c/driver", "driver_metrics_base": 18095, "provider_from": "image", "bundle": "/s/image/b",
       "provider_bin": "/t/aws-csi-provider", "provider_metrics": 18081, "upstream_bin": "/c/upstream",
       "python": "/v/python"}


def split(argv):
    """(env K=V pairs, program, args) of an `env K=V ... PROGRAM ARGS` command."""
    assert argv[0] == "env"
    i = next(i for i, a in enumerate(argv[1:], 1) if "=" not in a)
    return dict(a.split("=", 1) for a in argv[1:i]), argv[i], argv[i + 1:]


def test_default_driver_runs_on_the_node_with_the_environments_paths():
    env, prog, args = split(podspec.argv(podspec.DRIVER, podspec.DEFAULT_DRIVER, CFG, 1))
    assert prog == "/c/driver"
    assert args == ["--endpoint=unix:///s/csi/node1/csi.sock", "--nodeid=n1", "--provider-volume=/s/providers",
                    "--additional-provider-volume-paths=/s/providers-extra", "--metrics-addr=127.0.0.1:18096",
                    "--v=2"]
    assert env["KUBECONFIG"] == "/s/kubeconfig" and env["KUBE_NODE_NAME"] == "n1"


def test_rotation_flags_pass_through_and_split_flags_are_normalised():
    c = copy.deepcopy(podspec.DEFAULT_DRIVER)
    c["args"] += ["--enable-secret-rotation=true", "--rotation-poll-interval=3s", "-v=5", "--endpoint", "x"]
    _, _, args = split(podspec.argv(podspec.DRIVER, c, CFG, 0))
    assert "--enable-secret-rotation=true" in args and "--rotation-poll-interval=3s" in args
    assert "-v=5" in args and "--v=2" not in args, "the DaemonSet's verbosity wins"
    assert args.count("--endpoint=unix:///s/csi/node0/csi.sock") == 2 and "x" not in args


def test_variables_expand_like_kubelet():
    env = {"A": "1"}
    assert podspec.expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_our_provider_from_the_image_keeps_its_flags_and_gets_the_environments_agent():
    c = {"name": "provider", "args": ["--provider-volume=/var/run/secrets-store-csi-providers",
                                      "--metrics-addr=0.0.0.0:8080", "--log-format=json", "--mount-deadline=7s"],
         "env": [{"name": "AWS_REGION", "value": "eu-west-1"}]}
    argv = podspec.argv(podspec.OURS, c, CFG)
    assert argv[:2] == ["/e/image-run.sh", "/s/image/b"]
    assert "/s/providers:/var/run/secrets-store-csi-providers" in argv
    args = argv[argv.index("--") + 1:]
    assert args == ["--provider-volume=/var/run/secrets-store-csi-providers", "--metrics-addr=127.0.0.1:18081",
                    "--log-format=json", "--mount-deadline=7s",
                    "--pod-identity-endpoint=http://127.0.0.1:15023/v1/credentials"]
    assert "AWS_REGION=eu-west-1" in argv, "the DaemonSet's environment wins over the environment's region"
    host = dict(CFG, provider_from="host")
    env, prog, args = split(podspec.argv(podspec.OURS, c, host))
    assert prog == "/t/aws-csi-provider" and args[0] == "--provider-volume=/s/providers"


def test_upstream_runs_in_its_sandbox_with_the_daemonsets_service_account():
    c = {"name": "provider-aws-installer", "args": ["--provider-volume=/var/run/secrets-store-csi-providers"]}
    argv = podspec.argv(podspec.UPSTREAM, c, CFG, service_account="kube-system/csi-secrets-store-provider-aws")
    assert argv[:2] == ["/v/python", "/e/upstream-run.py"]
    assert argv[argv.index("--service-account") + 1] == "kube-system/csi-secrets-store-provider-aws"
    assert argv[argv.index("--") + 1:] == ["/c/upstream", "--provider-volume=/s/providers"]


def test_roles_by_container_name():
    def ds(*names):
        return {"spec": {"template": {"spec": {"containers": [{"name": n} for n in names]}}}}
    assert podspec.role_of(ds("node-driver-registrar", "secrets-store", "liveness-probe")) == podspec.DRIVER
    assert podspec.role_of(ds("provider")) == podspec.OURS
    assert podspec.role_of(ds("provider-aws-installer")) == podspec.UPSTREAM
    assert podspec.role_of(ds("nginx")) is None
