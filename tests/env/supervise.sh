#!/usr/bin/env bash
# Runs a command and restarts it when it exits, like kubelet restarting a crashed container:
# the CSI driver exits until its CRDs exist (which `bootstrap up` installs), then stays up.
#   supervise.sh DELAY_SECONDS command...
delay=$1; shift
child=
trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
while true; do
  "$@" &
  child=$!
  wait "$child"
  echo "[supervise] $(date -u +%FT%TZ) exited with $?; restarting in ${delay}s" >&2
  sleep "$delay" &
  wait $!
done
