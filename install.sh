#!/usr/bin/env sh
# Builds and installs both binaries: `bootstrap` (the CLI) and `aws-csi-provider` (the CSI
# provider daemon), into cargo's bin directory (~/.cargo/bin unless CARGO_INSTALL_ROOT is set).
set -eu

cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed" >&2
    echo "hint: install Rust from https://rustup.rs, then run ./install.sh again" >&2
    exit 1
fi

cargo install --path crates/bootstrap --locked "$@"
# The provider runs on every node: built with the workspace's `provider` profile (fat LTO,
# opt-level "s", stripped), the build its memory figures are measured for (bench/RESULTS.md).
cargo install --path crates/aws-csi-provider --profile provider --locked "$@"

bin_dir="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
echo "installed bootstrap and aws-csi-provider into $bin_dir"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "hint: add $bin_dir to your PATH" >&2 ;;
esac
