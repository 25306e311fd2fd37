#!/usr/bin/env bash
# Builds the genuine upstream programs the local environment runs, from their Go modules,
# into a cache keyed by version outside the repository. A warm cache makes this a no-op.
#   tests/env/build.sh [etcd|k8s|kwok|csi|actionlint|upstream-provider|gitops-crds|all]
# gitops-crds builds nothing: it copies upstream's CRD files out of their Go modules and prints
# the directory holding them (the only target that writes to stdout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0
log() { printf '[build] %s\n' "$*" >&2; }

build_k8s() {
  local out="$BOOTSTRAP_ENV_CACHE/kubernetes-$K8S_VERSION"
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kube-scheduler ]]; then
    log "kubernetes $K8S_VERSION: cached in $out"; return; fi
  log "kubernetes $K8S_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler (cold: tens of minutes)"
  local work; work=$(mktemp -d)
  local minor patch; minor=$(cut -d. -f2 <<<"$K8S_VERSION"); patch=$(cut -d. -f3 <<<"$K8S_VERSION")
  (
    cd "$work"
    go mod init bootstrap.local/k8s-build >/dev/null 2>&1
    local modfile
    modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    # Every staging module k8s.io/kubernetes replaces with ./staging/... gets its published twin.
    grep -oE 'k8s.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | sort -u > staging.txt
    {
      echo "require k8s.io/kubernetes $K8S_VERSION"
      while read -r m; do echo "replace $m => $m v0.$minor.$patch"; done < staging.txt
    } >> go.mod
    cat > tools.go <<GO
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    mkdir -p "$out.tmp"
    go build -trimpath -ldflags "$ld" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
  )
  rm -rf "$out"; mv "$out.tmp" "$out"; rm -rf "$work"
  log "kubernetes $K8S_VERSION: built into $out"
}

go_install() { # name module version package-in-module binary-name
  # Builds inside a copy of the module's own source, so its go.mod (replaces included)
  # decides every dependency exactly as upstream's release does.
  local name=$1 module=$2 version=$3 pkg=$4 bin=$5
  local out="$BOOTSTRAP_ENV_CACHE/$name-$version"
  if [[ -x $out/$bin ]]; then log "$name $version: cached in $out"; return; fi
  log "$name $version: building $module@$version"
  local src work; work=$(mktemp -d)
  src=$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$src" "$work/src"; chmod -R u+w "$work/src"
  for m in "${GO_REPLACES[@]}"; do (cd "$work/src" && go mod edit -replace "$m"); done
  mkdir -p "$out.tmp"
  (cd "$work/src" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$out.tmp/$bin" "./$pkg")
  rm -rf "$out" "$work"; mv "$out.tmp" "$out"
  log "$name $version: built into $out"
}

build_etcd() {
  # etcd's own main package only calls etcdmain.Main; build the same from the server module.
  local out="$BOOTSTRAP_ENV_CACHE/etcd-$ETCD_VERSION"
  if [[ -x $out/etcd ]]; then log "etcd $ETCD_VERSION: cached in $out"; return; fi
  log "etcd $ETCD_VERSION: building go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init bootstrap.local/etcd >/dev/null 2>&1
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
    go mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go mod tidy >/dev/null 2>&1
    mkdir -p "$out.tmp"
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .
  )
  rm -rf "$out" "$work"; mv "$out.tmp" "$out"
  log "etcd $ETCD_VERSION: built into $out"
}

GO_REPLACES=()
build_kwok() { go_install kwok sigs.k8s.io/kwok "$KWOK_VERSION" cmd/kwok kwok; }
build_csi() {
  # monis.app/mlog (a logging helper) is refused by the module proxy here: use ours.
  GO_REPLACES=("monis.app/mlog=$here/gomod/mlog")
  go_install secrets-store-csi-driver sigs.k8s.io/secrets-store-csi-driver "$CSI_DRIVER_VERSION" cmd/secrets-store-csi-driver secrets-store-csi-driver; }
build_actionlint() { go_install actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" cmd/actionlint actionlint; }
build_upstream_provider() {
  # Not served by the module proxy: built from its source tarball (its README in
  # ../shared/upstream/ says how); absent tarball → skipped, nothing else needs it.
  local name="upstream-aws-provider-$AWS_PROVIDER_VERSION" bin=secrets-store-csi-driver-provider-aws
  local out="$BOOTSTRAP_ENV_CACHE/$name"
  if [[ -x $out/$bin ]]; then log "upstream AWS provider $AWS_PROVIDER_VERSION: cached in $out"; return; fi
  local srcdir=${BOOTSTRAP_UPSTREAM_SRC_DIR:-$here/../../../shared/upstream}
  local tarball="$srcdir/secrets-store-csi-driver-provider-aws-$AWS_PROVIDER_VERSION.tar.gz"
  if [[ ! -f $tarball ]]; then
    log "upstream AWS provider $AWS_PROVIDER_VERSION: skipped, its source $tarball is absent (only the benchmark needs it; set BOOTSTRAP_UPSTREAM_SRC_DIR to the directory holding it)"
    return
  fi
  log "upstream AWS provider $AWS_PROVIDER_VERSION: building from $tarball (cold: about 4 minutes)"
  local work; work=$(mktemp -d)
  tar -xzf "$tarball" -C "$work"
  mkdir -p "$out.tmp"
  (cd "$work/secrets-store-csi-driver-provider-aws-$AWS_PROVIDER_VERSION" &&
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/$bin" .)
  rm -rf "$out" "$work"; mv "$out.tmp" "$out"
  log "upstream AWS provider $AWS_PROVIDER_VERSION: built into $out"
}

gitops_crds() {
  # The CRDs of the Argo CD and Flux objects in examples/gitops, as each project ships them in
  # its own module (Argo CD's zip is about 56 MB: a cold fetch takes seconds). A throwaway
  # module cache keeps only these files, not the modules' sources.
  local out="$BOOTSTRAP_ENV_CACHE/gitops-crds-argocd-$ARGOCD_VERSION-kustomize-$FLUX_KUSTOMIZE_VERSION-source-$FLUX_SOURCE_VERSION"
  local files=(applicationset-crd.yaml kustomize.toolkit.fluxcd.io_kustomizations.yaml
    source.toolkit.fluxcd.io_gitrepositories.yaml)
  local f warm=1
  for f in "${files[@]}"; do [[ -s $out/$f ]] || warm=; done
  if [[ -n $warm ]]; then log "gitops CRDs: cached in $out"; echo "$out"; return; fi
  log "gitops CRDs: fetching argo-cd $ARGOCD_VERSION, kustomize-controller $FLUX_KUSTOMIZE_VERSION, source-controller $FLUX_SOURCE_VERSION from the module proxy"
  local work; work=$(mktemp -d)
  (
    cd "$work"
    export GOMODCACHE="$work/modcache" GOFLAGS=-mod=mod
    module_dir() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
    local argo kustomize src
    argo=$(module_dir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
    kustomize=$(module_dir "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION")
    src=$(module_dir "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION")
    mkdir -p "$work/out"
    cp "$argo/manifests/crds/applicationset-crd.yaml" \
      "$kustomize/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml" \
      "$src/config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml" "$work/out/"
    chmod u+w "$work/out"/*
    go clean -modcache
  )
  rm -rf "$out"; mv "$work/out" "$out"; rm -rf "$work"
  log "gitops CRDs: copied into $out"
  echo "$out"
}

what=${1:-all}
mkdir -p "$BOOTSTRAP_ENV_CACHE"
case $what in
  k8s) build_k8s ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  csi) build_csi ;;
  actionlint) build_actionlint ;;
  upstream-provider) build_upstream_provider ;;
  gitops-crds) gitops_crds ;;
  all) build_etcd; build_k8s; build_kwok; build_csi; build_actionlint; build_upstream_provider; gitops_crds >/dev/null ;;
  *) echo "usage: $0 [etcd|k8s|kwok|csi|actionlint|upstream-provider|gitops-crds|all]" >&2; exit 2 ;;
esac
