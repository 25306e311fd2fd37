#!/usr/bin/env bash
# Runs an unpacked image (a umoci bundle: rootfs/ + config.json) the way a container runtime
# runs a pod's container, with no container engine: a private mount namespace, the root
# filesystem read-only, /proc and a minimal /dev, the given host paths bind-mounted (like
# hostPath volumes), chroot into it, and exec the image's entrypoint with the image's
# environment plus the given variables, and the given arguments in place of the image's Cmd
# (like a pod's `args`). Nothing from the host's /usr or /lib is visible to the program.
# The PID stays the same through every exec, so the caller's PID file names the program.
#   tests/env/image-run.sh BUNDLE [--mount SRC:DST[:ro]]... [--env K=V]... -- ARGS...
# Needs root (mount namespaces, chroot).
set -euo pipefail
bundle=${1:?usage: image-run.sh BUNDLE [--mount SRC:DST[:ro]]... [--env K=V]... -- ARGS...}
shift
mounts=() envs=()
while (($#)); do
  case $1 in
    --mount) mounts+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "image-run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
root=$bundle/rootfs
[[ -f $bundle/config.json && -d $root ]] || { echo "image-run.sh: $bundle is not an unpacked image (no config.json, rootfs/)" >&2; exit 2; }
((EUID == 0)) || { echo "image-run.sh: needs root (mount namespace, chroot)" >&2; exit 2; }

# What the image config says (umoci derived config.json from it): entrypoint, env, user.
entrypoint=$(jq -r '.process.args[0]' "$bundle/config.json")
mapfile -t image_env < <(jq -r '.process.env[]' "$bundle/config.json")
user=$(jq -r '"\(.process.user.uid):\(.process.user.gid)"' "$bundle/config.json")
[[ $(jq -r '.process.cwd // "/"' "$bundle/config.json") == / ]] || { echo "image-run.sh: only WorkingDir / is supported" >&2; exit 2; }

# Mount points a runtime would create; made in this unpacked copy, before it turns read-only.
mkdir -p "$root/proc" "$root/dev"
for m in "${mounts[@]}"; do
  IFS=: read -r src dst _ <<<"$m"
  if [[ -d $src ]]; then mkdir -p "$root$dst"; else mkdir -p "$(dirname "$root$dst")"; touch "$root$dst"; fi
done

# Runs inside the new mount namespace (private propagation: nothing leaks to the host) with
# host tools named by absolute path (the environment is already the image's), then
# `exec chroot` leaves the host filesystem behind.
mount=$(command -v mount) chroot=$(command -v chroot) touch=$(command -v touch)
script='
set -e
root=$1 user=$2; shift 2
"$MOUNT" --bind "$root" "$root"
"$MOUNT" -t proc proc "$root/proc"
"$MOUNT" -t tmpfs -o mode=0755,nosuid,size=64k tmpfs "$root/dev"
for d in null zero random urandom; do "$TOUCH" "$root/dev/$d"; "$MOUNT" --bind "/dev/$d" "$root/dev/$d"; done
while [ "$1" != "--" ]; do
  src=${1%%:*} rest=${1#*:}
  dst=${rest%%:*} opt=${rest#"$dst"}
  "$MOUNT" --bind "$src" "$root$dst"
  if [ "$opt" = ":ro" ]; then "$MOUNT" -o remount,bind,ro "$root$dst"; fi
  shift
done
shift
"$MOUNT" -o remount,bind,ro "$root"
CHROOT=$CHROOT_BIN; unset MOUNT TOUCH CHROOT_BIN
exec "$CHROOT" --userspec="$user" "$root" "$@"
'
exec unshare --mount --propagation private -- /usr/bin/env -i "${image_env[@]}" "${envs[@]}" \
  MOUNT="$mount" TOUCH="$touch" CHROOT_BIN="$chroot" \
  /bin/sh -c "$script" image-run "$root" "$user" "${mounts[@]}" -- "$entrypoint" "$@"
