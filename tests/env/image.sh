#!/usr/bin/env bash
# The local environment's provider image, end to end with real tools: builds it with
# image/build.sh from the release binary (cached: rebuilt only when the binary or the recipe
# changed), pushes it to the environment's registry with skopeo (skipped when the registry
# already serves that digest), pulls it back with skopeo and unpacks it with umoci. Prints the
# unpacked bundle directory (its rootfs/ and the runtime config.json umoci derived from the
# image config); tests/env/image-run.sh runs the provider from it.
#   tests/env/image.sh REGISTRY_HOST:PORT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
STATE=${BOOTSTRAP_ENV_STATE:-$here/state}
LOGS=$STATE/logs
registry=${1:?usage: tests/env/image.sh REGISTRY_HOST:PORT}
say() { printf '[env image] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

"$repo/image/tools.sh" registry
# The image holds the dev build by default: the test suite builds it anyway, and a cold release
# build would add minutes to every CI run on a fresh machine (image/build.sh's own default, and
# the release workflow, use the `provider` profile). BOOTSTRAP_ENV_IMAGE_RELEASE=1 puts the
# shipped build in (`--profile provider`); BOOTSTRAP_ENV_IMAGE_BINARY any other binary.
bin=${BOOTSTRAP_ENV_IMAGE_BINARY:-}
if [[ -z $bin ]]; then
  profile=(--bin aws-csi-provider) out=debug
  [[ -n ${BOOTSTRAP_ENV_IMAGE_RELEASE:-} ]] && profile=(-p aws-csi-provider --profile provider) out=provider
  say "cargo build ${profile[*]}"
  (cd "$repo" && cargo build -q "${profile[@]}" --locked) >"$LOGS/aws-csi-provider-$out-build.log" 2>&1 \
    || die "cargo build ${profile[*]} failed (see $LOGS/aws-csi-provider-$out-build.log)"
  bin=${CARGO_TARGET_DIR:-$repo/target}/$out/aws-csi-provider
fi
[[ -f $bin ]] || die "no provider binary at $bin"
mkdir -p "$STATE/image" && echo "$bin" >"$STATE/image/binary"
tag=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)

layout=$repo/target/image/env/oci
mkdir -p "$(dirname "$layout")" "$LOGS" "$STATE/image"
key=$(cat "$bin" "$repo/image/build.sh" | sha256sum | cut -c1-16)
if [[ ! -f $layout.key || $(cat "$layout.key") != "$key" || ! -f $layout.digest ]]; then
  say "building the image (image/build.sh)"
  "$repo/image/build.sh" --binary "$bin" --out "$layout" --tag "$tag" >"$layout.digest.tmp" 2>"$LOGS/image-build.log" \
    || die "image/build.sh failed: $(tail -n 5 "$LOGS/image-build.log")"
  mv "$layout.digest.tmp" "$layout.digest"
  echo "$key" >"$layout.key"
else
  say "image unchanged since the last build ($(cat "$layout.digest"))"
fi
digest=$(cat "$layout.digest")

ref=$registry/bootstrap/aws-csi-provider:$tag
remote=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref" 2>/dev/null || true)
if [[ $remote != "$digest" ]]; then
  say "pushing $ref"
  skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$ref" >"$LOGS/image-push.log" 2>&1 \
    || die "skopeo copy to $ref failed: $(tail -n 5 "$LOGS/image-push.log")"
  remote=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref")
  [[ $remote == "$digest" ]] || die "the registry serves $remote for $ref, the layout has $digest"
fi

bundle=$STATE/image/${digest#sha256:}
bundle=${bundle:0:$((${#STATE} + 7 + 16))}
if [[ ! -f $bundle/config.json ]]; then
  say "pulling $ref back and unpacking it"
  pulled=$STATE/image/pulled
  rm -rf "$pulled" "$bundle.tmp"
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$pulled:$tag" >"$LOGS/image-pull.log" 2>&1 \
    || die "skopeo copy from $ref failed: $(tail -n 5 "$LOGS/image-pull.log")"
  got=$(skopeo inspect --format '{{.Digest}}' "oci:$pulled:$tag")
  [[ $got == "$digest" ]] || die "pulled $got from $ref, pushed $digest"
  umoci unpack --image "$pulled:$tag" "$bundle.tmp" >/dev/null
  mv "$bundle.tmp" "$bundle"
fi
echo "$ref" >"$STATE/image/reference"
echo "$bundle"
