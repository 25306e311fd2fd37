#!/usr/bin/env bash
# Stops everything tests/env/up.sh started, by PID, and unmounts what the CSI driver mounted.
#   tests/env/down.sh [--purge]   --purge also deletes the state (etcd data, PKI, logs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
STATE=${BOOTSTRAP_ENV_STATE:-$here/state}
PIDS=$STATE/pids
say() { printf '[env down] %s\n' "$*" >&2; }

# Stop in reverse dependency order: the shim and providers first, etcd last.
order=(kubelet-shim node-follower aws-csi-provider test-provider registry csi-driver-0 csi-driver-1 aws kwok
       kube-scheduler kube-controller-manager kube-apiserver etcd)
extra=()
for f in "$PIDS"/*.pid; do
  [[ -e $f ]] || continue
  n=$(basename "$f" .pid)
  [[ " ${order[*]} " == *" $n "* ]] || extra+=("$n")
done
for name in "${extra[@]}" "${order[@]}"; do
  f=$PIDS/$name.pid
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; say "$name: killed (pid $pid)"
    else say "$name: stopped (pid $pid)"; fi
  fi
  rm -f "$f"
done

# tmpfs mounts the drivers made for pods that were never unpublished.
if [[ -d $STATE/kubelet ]]; then
  grep " $STATE/kubelet/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null && say "unmounted $m"
  done
  # up.sh made the kubelet dir a shared bind mount of itself (like kubelet's).
  findmnt -n -M "$STATE/kubelet" >/dev/null 2>&1 && umount "$STATE/kubelet" 2>/dev/null
fi
if [[ ${1:-} == --purge ]]; then
  rm -rf "$STATE" && say "state removed: $STATE"
fi
