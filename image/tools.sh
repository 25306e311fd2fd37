#!/usr/bin/env bash
# Installs the Debian tools the image scripts and the local environment's registry need
# (umoci, skopeo, docker-registry, binutils, jq), idempotently: nothing happens when they are
# present. Needs root (apt-get); runs `apt-get update` only when an install fails without it.
#   image/tools.sh [build|push|registry|lint|all]
#     build: umoci binutils jq; push: umoci jq skopeo; registry: build + skopeo docker-registry;
#     lint: shellcheck (actionlint checks the workflows' scripts with it); all: everything
set -euo pipefail
log() { printf '[image tools] %s\n' "$*" >&2; }

what=${1:-all}
case $what in
  build) want=(umoci binutils jq) ;;
  push) want=(umoci jq skopeo) ;;
  registry) want=(umoci binutils jq skopeo docker-registry) ;;
  lint) want=(shellcheck) ;;
  all) want=(umoci binutils jq skopeo docker-registry shellcheck) ;;
  *) echo "usage: $0 [build|push|registry|lint|all]" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
  log "error: missing Debian packages: ${missing[*]}"
  log "hint: sudo apt-get install -y ${missing[*]} (or run this script as root)"
  exit 2
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101: the docker-registry package must not start its own service on :5000.
policy=/usr/sbin/policy-rc.d
own_policy=
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; own_policy=1; fi
trap '[[ -n $own_policy ]] && rm -f "$policy"' EXIT
install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
if ! install 2>/dev/null; then
  log "apt-get install failed; running apt-get update first"
  apt-get update -q >/dev/null
  install
fi
log "installed ${missing[*]}"
