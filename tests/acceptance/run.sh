#!/usr/bin/env bash
# The acceptance suite: the life of a platform team on the cluster the environment points at
# (crates/bootstrap/tests/acceptance.rs): `up` with rotation and sync, a team onboarded and
# mounting, an IRSA workload migrated, doctor clean, a rotation observed, `down` leaving
# nothing bootstrap owns.
#
#   the local stand-in:  tests/env/up.sh && . tests/env/state/env.sh && tests/acceptance/run.sh
#   a real account:      BOOTSTRAP_ACCEPTANCE_REAL=1 BOOTSTRAP_ACCEPTANCE_CLUSTER=acc-east \
#                        BOOTSTRAP_ACCEPTANCE_PREFIX=acc BOOTSTRAP_PROVIDER_IMAGE=REF tests/acceptance/run.sh
#
# It refuses a cluster whose name does not start with the prefix (it ends with `bootstrap down`,
# which deletes everything bootstrap owns on that cluster), names what it creates itself
# `<prefix>-acc-*`, and runs `down` plus the removal of its own objects on every exit, failure
# and interruption included. Exit codes: 0 passed, 2 refused (nothing ran), other: failed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
say() { printf '[acceptance] %s\n' "$*" >&2; }
refuse() { say "error: $*"; exit 2; }

if [[ ${BOOTSTRAP_ACCEPTANCE_REAL:-0} == 1 ]]; then
  cluster=${BOOTSTRAP_ACCEPTANCE_CLUSTER:-}
  prefix=${BOOTSTRAP_ACCEPTANCE_PREFIX:-}
  [[ -n $cluster ]] || refuse "BOOTSTRAP_ACCEPTANCE_CLUSTER is not set: name the EKS cluster to run against"
  [[ -n $prefix ]] || refuse "BOOTSTRAP_ACCEPTANCE_PREFIX is not set: the suite runs only on a cluster whose name starts with it, and names what it creates with it"
  mode="real account"
else
  [[ -n ${BOOTSTRAP_ENV_STATE:-} && -n ${BOOTSTRAP_TEST_CLUSTER:-} ]] \
    || refuse "the local stand-in is not up: run tests/env/up.sh and source tests/env/state/env.sh (or set BOOTSTRAP_ACCEPTANCE_REAL=1 for a real account)"
  cluster=${BOOTSTRAP_ACCEPTANCE_CLUSTER:-$BOOTSTRAP_TEST_CLUSTER}
  prefix=${BOOTSTRAP_ACCEPTANCE_PREFIX:-$cluster}
  mode="local stand-in"
fi
[[ ${#prefix} -le 40 && $prefix =~ ^[a-z0-9][a-z0-9-]*$ ]] \
  || refuse "prefix '$prefix' must be 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit"
[[ $cluster == "$prefix"* ]] \
  || refuse "refusing to run against cluster '$cluster': its name does not start with the prefix '$prefix' (the suite ends with \`bootstrap down\`, which deletes everything bootstrap owns on the cluster)"

export BOOTSTRAP_ACCEPTANCE=1 BOOTSTRAP_ACCEPTANCE_CLUSTER=$cluster BOOTSTRAP_ACCEPTANCE_PREFIX=$prefix
cd "$repo"
say "building the suite and bootstrap"
cargo test --locked -p bootstrap --test acceptance --no-run

cleanup() {
  say "cleanup: bootstrap down, then the suite's own objects (${prefix}-acc-*)"
  BOOTSTRAP_ACCEPTANCE_STEP=cleanup cargo test --locked -q -p bootstrap --test acceptance \
    -- --exact cleanup --nocapture --test-threads 1
}
finish() {
  local status=$?
  trap - EXIT INT TERM
  cleanup || { say "error: cleanup failed: look for ${prefix}-acc-* objects and run bootstrap down --cluster $cluster"; [[ $status == 0 ]] && status=1; }
  say "$([[ $status == 0 ]] && echo passed || echo FAILED) on the $mode (cluster $cluster)"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "running on the $mode: cluster $cluster, prefix $prefix"
cargo test --locked -p bootstrap --test acceptance \
  -- --exact life_of_a_platform_team --nocapture --test-threads 1
