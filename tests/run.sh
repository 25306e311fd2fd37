#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (Python venv, the
# Go-built upstream programs, both Rust binaries, the provider image), starts the local EKS
# stand-in, runs the style checks, actionlint on the workflows, the Python tests of the
# stand-in and of the provider image, every Rust test against it, then the acceptance suite
# (tests/acceptance/run.sh), and stops the environment even when tests fail. Exit code 0 only
# when everything passed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
say() { printf '[run] %s\n' "$*" >&2; }
command -v cargo >/dev/null || { say "error: cargo not found; install Rust (rustup) first"; exit 2; }
command -v go >/dev/null || { say "error: go not found; install Go >= 1.25 first"; exit 2; }

tests/env/down.sh --purge >/dev/null 2>&1 || true
trap 'tests/env/down.sh >/dev/null 2>&1 || true' EXIT

t0=$SECONDS
# The binaries first, with the features the environment's `cargo build --bin` resolves (test
# targets unify dev-dependency features, so building them first would force a rebuild).
say "building the Rust binaries"
cargo build --bins --locked
say "building the upstream AWS provider (the rotation tests run it beside ours; cached)"
tests/env/build.sh upstream-provider
say "starting the local environment"
tests/env/up.sh
# shellcheck disable=SC1091
. tests/env/state/env.sh
export BOOTSTRAP_REQUIRE_ENV=1

status=0
say "style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all -- --check || status=1
cargo clippy --all-targets --locked -- -D warnings || status=1
say "lint: actionlint (shellcheck on its scripts) on .github/workflows"
. tests/env/versions.sh
{ image/tools.sh lint && tests/env/build.sh actionlint \
    && "$BOOTSTRAP_ENV_CACHE/actionlint-$ACTIONLINT_VERSION/actionlint"; } || status=1
say "python tests of the AWS stand-in and of the provider image"
"$BOOTSTRAP_ENV_PYTHON" -m pytest -q tests/env || status=1
say "rust tests (unit, component, and flows against the environment)"
cargo test --all-targets --locked --no-fail-fast -- --test-threads 2 || status=1
if [[ -n ${BOOTSTRAP_FAULTS:-} ]]; then
    # The fault matrix is #[ignore]d (about 40 minutes): it runs only when asked for.
    say "fault matrix (BOOTSTRAP_FAULTS=$BOOTSTRAP_FAULTS): crates/bootstrap/tests/faults_env.rs"
    cargo test -p bootstrap --test faults_env --locked -- --ignored --nocapture || status=1
fi
say "acceptance: the life of a platform team on the stand-in (tests/acceptance/run.sh)"
tests/acceptance/run.sh || status=1
say "done in $((SECONDS - t0))s: $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
