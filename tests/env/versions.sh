# Pinned versions of everything the local environment builds or installs.
# Sourced by build.sh, up.sh and run.sh; bump a version here and the cache key changes.
K8S_VERSION=v1.34.4
KWOK_VERSION=v0.7.0
CSI_DRIVER_VERSION=v1.6.0
MOTO_VERSION=5.2.5
ETCD_VERSION=v3.6.6
# actionlint checks .github/workflows in tests/run.sh.
ACTIONLINT_VERSION=v1.7.12
# The upstream Go AWS provider (the benchmark peer): the module proxy does not serve it, so it
# builds from its unmodified source tarball in ../shared/upstream/ beside the repository
# (BOOTSTRAP_UPSTREAM_SRC_DIR overrides the directory); its dependencies come from the proxy.
AWS_PROVIDER_VERSION=3.1.1
# The Argo CD and Flux CRDs the GitOps examples are applied against (controller_env), read from
# these modules' own files (build.sh gitops-crds). Newer releases need Go >= 1.27.
ARGOCD_VERSION=v3.5.7
FLUX_KUSTOMIZE_VERSION=v1.9.6
FLUX_SOURCE_VERSION=v1.9.6
BOOTSTRAP_ENV_CACHE=${BOOTSTRAP_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootstrap-env}
