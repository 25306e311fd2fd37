"""The provider's OCI image (and the controller's), checked with real tools: image/build.sh gives the same digest
twice; the environment's registry serves it as linux/amd64 with our labels (skopeo inspect);
pulled back (skopeo) and unpacked (umoci), it runs with no host library; the environment's
aws-csi-provider is the binary inside that image; and build.sh's multi-arch index is served
as an index; image/build.sh --controller makes the controller's image (bootstrap, command
`controller`, nonroot, port 9090) that runs with no host library. Needs the local environment (tests/env/up.sh); skipped without it unless
BOOTSTRAP_REQUIRE_ENV is set, then failed."""

import json
import os
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "image", "build.sh")


@pytest.fixture(scope="module")
def env():
    if not os.environ.get("BOOTSTRAP_ENV_REGISTRY"):
        if os.environ.get("BOOTSTRAP_REQUIRE_ENV"):
            pytest.fail("BOOTSTRAP_REQUIRE_ENV is set but BOOTSTRAP_ENV_REGISTRY is not: source tests/env/state/env.sh")
        pytest.skip("the local environment is not up (run tests/env/up.sh and source tests/env/state/env.sh)")
    return {
        "registry": os.environ["BOOTSTRAP_ENV_REGISTRY"],
        "image": os.environ.get("BOOTSTRAP_ENV_PROVIDER_IMAGE", ""),
        "layout": os.environ["BOOTSTRAP_ENV_PROVIDER_LAYOUT"],
        "state": os.environ["BOOTSTRAP_ENV_STATE"],
        "from": os.environ.get("BOOTSTRAP_ENV_PROVIDER_FROM", "image"),
    }


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def skopeo_inspect(ref, raw=False):
    args = ["skopeo", "inspect", "--tls-verify=false"] + (["--raw"] if raw else []) + [ref]
    return json.loads(run(*args).stdout)


def image_binary():
    # The build tests/env/image.sh put in the image (the dev build unless told otherwise).
    with open(os.path.join(os.environ["BOOTSTRAP_ENV_STATE"], "image", "binary")) as f:
        path = f.read().strip()
    assert os.path.isfile(path), f"{path} is missing: tests/env/up.sh builds it"
    return path


def test_two_builds_give_the_same_digest(env, tmp_path):
    binary = image_binary()
    e = dict(os.environ, SOURCE_DATE_EPOCH="1767225600", IMAGE_REVISION="0123456789abcdef")
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        digests.append(run(BUILD, "--binary", binary, "--out", str(out), "--tag", "t", env=e).stdout.strip())
    assert digests[0].startswith("sha256:") and digests[0] == digests[1], digests
    # Byte-identical layouts, not only the same manifest.
    subprocess.run(["diff", "-r", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    config = config_of(tmp_path / "a", "t")
    assert config["created"] == "2026-01-01T00:00:00Z"
    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == "0123456789abcdef"


def config_of(layout, tag):
    index = json.load(open(os.path.join(layout, "index.json")))
    [desc] = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    manifest = json.load(open(os.path.join(layout, "blobs", "sha256", desc["digest"].split(":")[1])))
    return json.load(open(os.path.join(layout, "blobs", "sha256", manifest["config"]["digest"].split(":")[1])))


def test_registry_serves_linux_amd64_with_our_labels(env):
    assert env["image"], "up.sh did not record the pushed image (BOOTSTRAP_ENV_PROVIDER_IMAGE)"
    info = skopeo_inspect("docker://" + env["image"])
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    labels = info["Labels"]
    assert labels["org.opencontainers.image.title"] == "aws-csi-provider"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    for key in ("version", "created", "revision", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
    # What the registry serves is byte for byte what build.sh made.
    with open(env["layout"] + ".digest") as f:
        assert info["Digest"] == f.read().strip()
    assert any(v.startswith("SSL_CERT_FILE=") for v in info["Env"]), info["Env"]


def test_pulled_image_runs_with_no_host_library(env, tmp_path):
    layout, bundle = tmp_path / "oci", tmp_path / "bundle"
    run("skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + env["image"], f"oci:{layout}:pulled")
    run("umoci", "unpack", "--image", f"{layout}:pulled", str(bundle))
    rootfs = bundle / "rootfs"
    libs = sorted(
        os.path.relpath(os.path.join(d, f), rootfs)
        for d, _, files in os.walk(rootfs)
        for f in files
        if ".so" in f
    )
    assert libs == [
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        "lib/x86_64-linux-gnu/libm.so.6",
        "lib64/ld-linux-x86-64.so.2",
    ], libs
    assert not os.path.exists(rootfs / "bin" / "sh"), "the image must have no shell"
    out = run("env", "-i", "unshare", "--mount", "--pid", "--fork", f"--root={rootfs}",
              "/usr/local/bin/aws-csi-provider", "--version").stdout
    assert out.startswith("aws-csi-provider "), out


def test_environment_provider_is_the_binary_in_the_image(env):
    if env["from"] != "image":
        pytest.skip(f"the environment runs the host binary (BOOTSTRAP_ENV_PROVIDER_FROM={env['from']})")
    # The running program's PID (the supervisor's child; image-run.sh execs all the way).
    with open(os.path.join(env["state"], "nodes", "aws-csi-provider", "pid")) as f:
        pid = f.read().strip()
    digest = open(env["layout"] + ".digest").read().strip().split(":")[1]
    rootfs = os.path.join(env["state"], "image", digest[:16], "rootfs")
    inside = f"/proc/{pid}/root/usr/local/bin/aws-csi-provider"
    # The running process's root is the unpacked image: its executable is the file in there,
    # and every shared object it mapped comes from there too (no host library).
    binary = os.path.join(rootfs, "usr/local/bin/aws-csi-provider")
    assert os.stat(f"/proc/{pid}/root/usr/local/bin/aws-csi-provider").st_ino == os.stat(binary).st_ino
    assert os.readlink(f"/proc/{pid}/exe") == binary
    with open(f"/proc/{pid}/maps") as f:
        mapped = {line.split(maxsplit=5)[5].strip() for line in f if len(line.split(maxsplit=5)) == 6}
    objects = sorted(m for m in mapped if ".so" in m)
    assert objects and all(m.startswith(rootfs + "/") for m in objects), objects
    assert os.path.join(rootfs, "lib/x86_64-linux-gnu/libc.so.6") in objects, objects


def test_multi_arch_index_is_served_as_an_index(env, tmp_path):
    out = tmp_path / "index"
    digest = run(BUILD, "index", "--out", str(out), "--tag", "multi", f"{env['layout']}").stdout.strip()
    ref = f"docker://{env['registry']}/bootstrap/aws-csi-provider:multi-test"
    run("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{out}:multi", ref)
    raw = skopeo_inspect(ref, raw=True)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in raw["manifests"]] == [("linux", "amd64")]
    assert skopeo_inspect(ref)["Digest"] == digest


def bootstrap_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.path.join(target, "debug", "bootstrap")
    assert os.path.isfile(path), f"{path} is missing: cargo build --bins (tests/run.sh does)"
    return path


def test_controller_image_runs_unprivileged_with_no_host_library(env, tmp_path):
    layout, bundle = tmp_path / "controller-oci", tmp_path / "bundle"
    e = dict(os.environ, SOURCE_DATE_EPOCH="1767225600", IMAGE_REVISION="0123456789abcdef")
    digest = run(BUILD, "--controller", "--binary", bootstrap_binary(), "--out", str(layout), "--tag", "t", env=e).stdout.strip()
    assert digest.startswith("sha256:"), digest
    config = config_of(layout, "t")
    c = config["config"]
    # What `up --controller`'s Deployment relies on: bootstrap as the entrypoint (its args
    # start with `controller`), the nonroot user its securityContext asks for, the metrics port.
    assert c["Entrypoint"] == ["/usr/local/bin/bootstrap"], c
    assert c["Cmd"] == ["controller"], c
    assert c["User"] == "65532:65532", c
    assert list(c["ExposedPorts"]) == ["9090/tcp"], c
    assert c["Labels"]["org.opencontainers.image.title"] == "bootstrap", c["Labels"]
    run("umoci", "unpack", "--image", f"{layout}:t", str(bundle))
    rootfs = bundle / "rootfs"
    assert not os.path.exists(rootfs / "bin" / "sh"), "the image must have no shell"
    assert not os.path.exists(rootfs / "usr" / "local" / "bin" / "aws-csi-provider"), "one binary per image"
    out = run("env", "-i", "unshare", "--mount", "--pid", "--fork", f"--root={rootfs}",
              "/usr/local/bin/bootstrap", "--version").stdout
    assert out.startswith("bootstrap "), out
    out = run("env", "-i", "unshare", "--mount", "--pid", "--fork", f"--root={rootfs}",
              "/usr/local/bin/bootstrap", "controller", "--help").stdout
    assert "--permissions-boundary" in out, out
