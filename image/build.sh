#!/usr/bin/env bash
# Builds an OCI image layout without a container engine: the aws-csi-provider binary (default)
# or, with --controller, the bootstrap binary as the controller `up --controller` deploys;
# plus a distroless-like runtime taken from Debian's own packages (the C library's loader and
# the libraries the binary links, libgcc, the CA bundle, os-release), assembled with umoci.
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: the last commit's time), files
# are owned by 0:0 and the tar is written in sorted order, so the same inputs (binary, .deb
# files, version, revision, epoch) give the same manifest digest.
#
#   image/build.sh [--controller] [--binary PATH] [--out DIR] [--tag TAG]
#       one image for the binary's architecture; prints the manifest digest on stdout.
#       Without --binary: cargo build -p aws-csi-provider --profile provider (the build
#       bench/RESULTS.md measures), then that binary; with --controller, the same for
#       bootstrap (entrypoint `bootstrap`, command `controller`, user nonroot 65532, port 9090;
#       default --out target/image/controller-oci). A second image, not the provider's with two
#       binaries: the provider's image is pulled on every node, the controller's by two pods.
#   image/build.sh index --out DIR --tag TAG LAYOUT[:TAG]...
#       a multi-architecture image index over per-architecture layouts built as above.
#
# Environment: SOURCE_DATE_EPOCH, IMAGE_REVISION (default: git HEAD), IMAGE_SOURCE (the
# org.opencontainers.image.source label, omitted when unset), IMAGE_DEBS_DIR (use exactly the
# .deb files there, no apt; default: download the candidates into a cache with apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $1"; [[ -n ${2:-} ]] && log "hint: $2"; exit 1; }
umask 022
work=""
trap '[[ -z $work ]] || rm -rf "$work"' EXIT
export LC_ALL=C TZ=UTC

PACKAGES=(libc6 libgcc-s1 gcc-12-base ca-certificates base-files)
# What differs between the two images (select_image sets them).
NAME=aws-csi-provider
BIN_PATH=/usr/local/bin/$NAME
DESCRIPTION="Secrets Store CSI Driver provider for AWS Secrets Manager and SSM Parameter Store"
DEFAULT_OUT=$repo/target/image/oci
select_image() { # provider | controller
  case $1 in
    provider) ;;
    controller)
      NAME=bootstrap
      BIN_PATH=/usr/local/bin/$NAME
      DESCRIPTION="bootstrap controller: teams onboard themselves to EKS Pod Identity and the Secrets Store CSI Driver"
      DEFAULT_OUT=$repo/target/image/controller-oci ;;
  esac
  KIND=$1
}
KIND=provider

need_tools() {
  local missing=()
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) && return
  "$here/tools.sh" build || die "missing tools: ${missing[*]}" "run image/tools.sh as root"
}

workspace_version() {
  sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1
}

elf_arch() { # the Debian/OCI architecture of an ELF file
  case $(readelf -h "$1" | sed -n 's/^ *Machine: *//p') in
    *X86-64*) echo amd64 ;;
    *AArch64*) echo arm64 ;;
    *) die "$1: unsupported ELF machine '$(readelf -h "$1" | sed -n 's/^ *Machine: *//p')'" "build for x86_64 or aarch64 Linux" ;;
  esac
}

# --- the Debian packages: downloaded once per version into a cache, or taken as given ---
fetch_debs() { # arch -> prints the directory holding one .deb per package
  local arch=$1 dir
  if [[ -n ${IMAGE_DEBS_DIR:-} ]]; then
    dir=$IMAGE_DEBS_DIR
    for p in "${PACKAGES[@]}"; do
      compgen -G "$dir/${p}_*_*.deb" >/dev/null \
        || die "IMAGE_DEBS_DIR=$dir has no ${p}_*.deb" "put one .deb per package there (${PACKAGES[*]}) or unset IMAGE_DEBS_DIR"
    done
    echo "$dir"; return
  fi
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/bootstrap-image/debs-$arch
  mkdir -p "$dir"
  local host_arch; host_arch=$(dpkg --print-architecture)
  local qual=""
  [[ $arch == "$host_arch" ]] || qual=":$arch"
  for p in "${PACKAGES[@]}"; do
    local v
    v=$(apt-cache show --no-all-versions "$p$qual" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
    [[ -n $v ]] || die "apt knows no candidate for $p$qual" \
      "run apt-get update (for another architecture: dpkg --add-architecture $arch && apt-get update, or build on a $arch machine)"
    local file="${p}_${v//:/%3a}_"
    if compgen -G "$dir/$file*.deb" >/dev/null; then continue; fi
    log "downloading $p $v ($arch)"
    (cd "$dir" && apt-get download -q "$p$qual=$v" >/dev/null 2>"$dir/.apt.log") \
      || die "apt-get download $p$qual=$v failed: $(tail -n 3 "$dir/.apt.log")" "check the Debian mirror in /etc/apt/sources.list"
  done
  echo "$dir"
}

deb_for() { # dir package -> the newest .deb of that package in dir
  local f
  f=$(ls "$1/${2}"_*_*.deb 2>/dev/null | sort -V | tail -1)
  [[ -n $f ]] || die "no .deb for $2 in $1"
  echo "$f"
}

# --- the root filesystem ---
copy_from_deb() { # debroot relpath root : copy a file or symlink chain with its parents
  local debroot=$1 rel=${2#/} root=$3 hops=0
  while :; do
    [[ -e $debroot/$rel || -L $debroot/$rel ]] || die "$rel is not in the extracted packages"
    (cd "$debroot" && cp -a --parents "$rel" "$root/")
    [[ -L $debroot/$rel ]] || return 0
    local target; target=$(readlink "$debroot/$rel")
    if [[ $target == /* ]]; then rel=${target#/}; else rel=$(dirname "$rel")/$target; fi
    rel=$(realpath -m -s --relative-to=/ "/$rel")
    ((++hops < 10)) || die "symlink loop at $rel"
  done
}

needed_libs() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
interpreter() { readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p'; }

stage_rootfs() { # binary debs_dir root arch
  local binary=$1 debs=$2 root=$3 arch=$4 work; work=$(dirname "$(dirname "$root")")/debs
  mkdir -p "$root" "$work"
  for p in "${PACKAGES[@]}"; do
    local deb; deb=$(deb_for "$debs" "$p")
    local deb_arch; deb_arch=$(dpkg-deb -f "$deb" Architecture)
    [[ $deb_arch == "$arch" || $deb_arch == all ]] || die "$deb is for $deb_arch, the binary for $arch"
    dpkg-deb -x "$deb" "$work/$p"
    mkdir -p "$root/var/lib/dpkg/status.d"
    # What distroless images carry so that scanners (syft, trivy) see the packages.
    { dpkg-deb -f "$deb"; echo "Status: install ok installed"; } >"$root/var/lib/dpkg/status.d/$p"
    local doc="$work/$p/usr/share/doc/$p/copyright"
    [[ -f $doc ]] && install -D -m 0644 "$doc" "$root/usr/share/doc/$p/copyright"
  done
  local merged=$work/all
  mkdir -p "$merged"
  for p in libc6 libgcc-s1; do cp -a "$work/$p/." "$merged/"; done

  # The loader and every library the binary needs, transitively: nothing else from libc6.
  local interp; interp=$(interpreter "$binary")
  [[ -n $interp ]] || die "$binary has no program interpreter" "build a dynamically linked glibc binary (the default)"
  copy_from_deb "$merged" "$interp" "$root"
  local -A seen=()
  local queue=("$binary")
  while ((${#queue[@]})); do
    local elf=${queue[0]}; queue=("${queue[@]:1}")
    for lib in $(needed_libs "$elf"); do
      [[ -n ${seen[$lib]:-} ]] && continue
      seen[$lib]=1
      local found; found=$(cd "$merged" && find . \( -type f -o -type l \) -name "$lib" | sort | head -1)
      [[ -n $found ]] || die "$binary needs $lib, which none of ${PACKAGES[*]} ships" "link only against glibc, libm and libgcc_s"
      copy_from_deb "$merged" "$found" "$root"
      queue+=("$(realpath "$merged/$found")")
    done
  done

  # CA bundle: what update-ca-certificates would write, from the package's certificates.
  mkdir -p "$root/etc/ssl/certs"
  find "$work/ca-certificates/usr/share/ca-certificates/mozilla" -name '*.crt' | sort | while read -r c; do
    sed -e '$a\' "$c"
  done >"$root/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0644 "$work/base-files/usr/lib/os-release" "$root/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$root/etc/os-release"

  # Users like distroless: root, nonroot (65532) and nobody; no shell anywhere.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  mkdir -p "$root/tmp" "$root/root" "$root/home/nonroot" "$root/usr/local/bin"
  install -m 0755 "$binary" "$root$BIN_PATH"
  strip --strip-all "$root$BIN_PATH" 2>/dev/null || log "warning: strip cannot handle $arch binaries here; kept unstripped"

  # Normalise what the archive records: modes, owners, times.
  find "$root" -type d -exec chmod 0755 {} +
  chmod 1777 "$root/tmp"; chmod 0700 "$root/root"
  if ((EUID == 0)); then
    chown -hR 0:0 "$root"; chown 65532:65532 "$root/home/nonroot"
  fi
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

build_one() {
  local binary="" out="" tag=""
  while (($#)); do
    case $1 in
      --controller) select_image controller; shift ;;
      --binary) binary=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --tag) tag=$2; shift 2 ;;
      *) die "unknown argument $1" "see the usage at the top of image/build.sh" ;;
    esac
  done
  out=${out:-$DEFAULT_OUT}
  need_tools umoci readelf strip jq dpkg-deb
  if [[ -z $binary ]]; then
    log "cargo build -p $NAME --profile provider"
    (cd "$repo" && cargo build -q -p "$NAME" --profile provider --locked) \
      || die "cargo build -p $NAME --profile provider failed"
    binary=${CARGO_TARGET_DIR:-$repo/target}/provider/$NAME
  fi
  [[ -f $binary ]] || die "no binary at $binary" "cargo build -p $NAME --profile provider, or pass --binary"
  local version; version=$(workspace_version)
  tag=${tag:-$version}
  local arch; arch=$(elf_arch "$binary")
  : "${SOURCE_DATE_EPOCH:=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}"
  local revision=${IMAGE_REVISION-$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)}
  local created; created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  local debs; debs=$(fetch_debs "$arch")

  work=$(mktemp -d "${TMPDIR:-/tmp}/image-build.XXXXXX")

  local labels=(
    "org.opencontainers.image.title=$NAME"
    "org.opencontainers.image.description=$DESCRIPTION"
    "org.opencontainers.image.version=$version"
    "org.opencontainers.image.created=$created"
    "org.opencontainers.image.licenses=Apache-2.0"
  )
  [[ -n $revision ]] && labels+=("org.opencontainers.image.revision=$revision")
  [[ -n ${IMAGE_SOURCE:-} ]] && labels+=("org.opencontainers.image.source=$IMAGE_SOURCE")
  local config_args=()
  for l in "${labels[@]}"; do config_args+=(--config.label "$l" --manifest.annotation "$l"); done
  local pkgs; pkgs=$(for p in "${PACKAGES[@]}"; do printf '%s=%s ' "$p" "$(dpkg-deb -f "$(deb_for "$debs" "$p")" Version)"; done)

  local layout=$work/oci rootless=()
  ((EUID == 0)) || rootless=(--rootless)
  # unpack + repack rather than `umoci insert`: Debian's umoci 0.4.7 writes a truncated tar
  # (no end-of-archive blocks) on insert.
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack "${rootless[@]}" --image "$layout:$tag" "$work/bundle" >/dev/null
  stage_rootfs "$binary" "$debs" "$work/bundle/rootfs" "$arch"
  umoci repack --image "$layout:$tag" \
    --history.created "$created" --history.created_by "image/build.sh: $NAME $version + ${pkgs% }" \
    "$work/bundle"
  local run_args
  if [[ $KIND == controller ]]; then
    # The controller needs no host path and no privilege: the image's nonroot user, its
    # metrics port; the Deployment passes `controller --cluster ...`.
    run_args=(--config.user 65532:65532 --config.cmd controller --config.exposedports 9090/tcp)
  else
    # The DaemonSet runs the provider as root (runAsUser 0, all capabilities dropped, read-only
    # root filesystem): it creates its socket in the root-owned host directory it mounts.
    run_args=(--config.user 0:0
      --config.cmd --provider-volume=/var/run/secrets-store-csi-providers --config.cmd --metrics-addr=0.0.0.0:8081
      --config.exposedports 8081/tcp)
  fi
  umoci config --image "$layout:$tag" --no-history --created "$created" --os linux --architecture "$arch" \
    --config.workingdir / \
    --config.entrypoint "$BIN_PATH" \
    "${run_args[@]}" \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    "${config_args[@]}"
  umoci gc --layout "$layout"

  mkdir -p "$(dirname "$out")"
  rm -rf "$out.tmp"; mv "$layout" "$out.tmp"; rm -rf "$out"; mv "$out.tmp" "$out"
  local digest; digest=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$out/index.json")
  log "built $out:$tag ($arch, $(du -sh "$out" | cut -f1), ${pkgs% }) $digest"
  echo "$digest"
}

build_index() {
  local out="" tag="" inputs=()
  while (($#)); do
    case $1 in
      --out) out=$2; shift 2 ;;
      --tag) tag=$2; shift 2 ;;
      -*) die "unknown argument $1" "see the usage at the top of image/build.sh" ;;
      *) inputs+=("$1"); shift ;;
    esac
  done
  [[ -n $out && -n $tag && ${#inputs[@]} -gt 0 ]] || die "index needs --out, --tag and at least one layout"
  need_tools umoci jq
  work=$(mktemp -d "${TMPDIR:-/tmp}/image-index.XXXXXX")
  local layout=$work/oci entries=()
  umoci init --layout "$layout"
  for input in "${inputs[@]}"; do
    local dir=${input%%:*} itag=${input#*:}
    [[ $input == *:* ]] || itag=""
    [[ -f $dir/index.json ]] || die "$dir is not an OCI layout (no index.json)" "build it with image/build.sh --out $dir"
    local desc
    if [[ -n $itag ]]; then
      desc=$(jq -c --arg t "$itag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' "$dir/index.json")
    else
      desc=$(jq -c '.manifests[0]' "$dir/index.json")
    fi
    [[ -n $desc && $desc != null ]] || die "$input: no such image in $dir/index.json"
    local mdigest; mdigest=$(jq -r .digest <<<"$desc")
    local manifest=$dir/blobs/sha256/${mdigest#sha256:}
    local cdigest; cdigest=$(jq -r .config.digest "$manifest")
    local platform; platform=$(jq -c '{architecture, os} + (if .variant then {variant} else {} end)' "$dir/blobs/sha256/${cdigest#sha256:}")
    # Content-addressed blobs: copying them keeps every digest.
    cp -n "$dir"/blobs/sha256/* "$layout/blobs/sha256/"
    entries+=("$(jq -c --argjson p "$platform" '{mediaType, digest, size, platform: $p}' <<<"$desc")")
  done
  local first_manifest; first_manifest=$(jq -r .digest <<<"${entries[0]}")
  local annotations; annotations=$(jq -c '.annotations // {}' "$layout/blobs/sha256/${first_manifest#sha256:}")
  local index; index=$(printf '%s\n' "${entries[@]}" | jq -cS -s --argjson a "$annotations" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: (. | sort_by(.platform.architecture)), annotations: $a}')
  local digest; digest=sha256:$(printf '%s' "$index" | sha256sum | cut -d' ' -f1)
  printf '%s' "$index" >"$layout/blobs/sha256/${digest#sha256:}"
  local size; size=$(printf '%s' "$index" | wc -c)
  jq -cS --arg d "$digest" --argjson s "$size" --arg t "$tag" \
    '.manifests = [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $t}}]' \
    "$layout/index.json" >"$work/index.json"
  mv "$work/index.json" "$layout/index.json"
  umoci gc --layout "$layout"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out.tmp"; mv "$layout" "$out.tmp"; rm -rf "$out"; mv "$out.tmp" "$out"
  log "built index $out:$tag over ${#entries[@]} image(s) $digest"
  echo "$digest"
}

case ${1:-} in
  index) shift; build_index "$@" ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) build_one "$@" ;;
esac
