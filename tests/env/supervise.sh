#!/usr/bin/env bash
# Runs a command and restarts it when it exits, like kubelet restarting a crashed container:
# the CSI driver exits until its CRDs exist (which `bootstrap up` installs), then stays up.
#   supervise.sh DELAY_SECONDS command...
# With SUPERVISE_DIR=DIR (the environment's per-node process dir, see tests/env/follow.py):
#   DIR/argv     when present, the command to run instead (NUL-separated argv), written by the
#                follower from the cluster's DaemonSet; a changed argv restarts at once
#   DIR/pid      the running child's PID (for an image, the program's own: image-run execs)
#   DIR/status   one JSON line: state (running|waiting), restarts since this argv, the last
#                exit code, when the current run started, and the argv's digest
delay=$1; shift
dir=${SUPERVISE_DIR:-}
child= restarts=0 last_exit= applied=
trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT

argv_digest() { if [[ -n $dir && -f $dir/argv ]]; then sha256sum <"$dir/argv" | cut -c1-16; else echo default; fi; }
status() { # state started
  [[ -n $dir ]] || return 0
  printf '{"state":"%s","restarts":%d,"last_exit":%s,"started":%s,"argv":"%s"}\n' \
    "$1" "$restarts" "${last_exit:-null}" "$2" "$applied" >"$dir/status.tmp" && mv "$dir/status.tmp" "$dir/status"
}
while true; do
  digest=$(argv_digest)
  if [[ $digest != "$applied" ]]; then restarts=0 last_exit=; applied=$digest; fi
  cmd=("$@")
  if [[ $digest != default ]]; then mapfile -d '' -t cmd <"$dir/argv"; fi
  echo "[supervise] $(date -u +%FT%TZ) starting: ${cmd[*]}" >&2
  started=$(date +%s)
  "${cmd[@]}" &
  child=$!
  [[ -n $dir ]] && echo "$child" >"$dir/pid"
  status running "$started"
  wait "$child"
  last_exit=$?
  child=
  [[ -n $dir ]] && rm -f "$dir/pid"
  if [[ $(argv_digest) != "$applied" ]]; then
    echo "[supervise] $(date -u +%FT%TZ) exited with $last_exit; the argv changed, restarting now" >&2
    continue
  fi
  restarts=$((restarts + 1))
  echo "[supervise] $(date -u +%FT%TZ) exited with $last_exit; restarting in ${delay}s" >&2
  status waiting "$started"
  sleep "$delay" &
  wait $!
done
