#!/usr/bin/env bash
# Starts the local EKS stand-in: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (two fake EKS nodes); moto with the EKS APIs it lacks, eks-auth and
# a Pod Identity agent endpoint; one real secrets-store-csi-driver per fake node, a kubelet
# shim that mounts CSI volumes for their pods, a minimal test provider, a real OCI registry
# (Debian's docker-registry) and the project's aws-csi-provider, run from its image: built
# by image/build.sh, pushed to that registry, pulled back and unpacked (tests/env/image.sh),
# run with no host library (tests/env/image-run.sh). BOOTSTRAP_ENV_PROVIDER=host (or
# BOOTSTRAP_PROVIDER_BIN=PATH) runs a host binary instead, for debugging.
# Idempotent: what already runs is left running.
# Writes tests/env/state/env.sh. Progress goes to stderr, logs to tests/env/state/logs/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/versions.sh"

STATE=${BOOTSTRAP_ENV_STATE:-$here/state}
if (( ${#STATE} > 80 )); then
  echo "error: the state dir path is ${#STATE} bytes; unix socket paths under it would pass the 107-byte limit" >&2
  echo "hint: set BOOTSTRAP_ENV_STATE to a shorter path" >&2
  exit 2
fi
LOGS=$STATE/logs PIDS=$STATE/pids PKI=$STATE/pki
REGION=${BOOTSTRAP_ENV_REGION:-us-west-2}
CLUSTER=${BOOTSTRAP_ENV_CLUSTER:-bootstrap-test}
NODES=(ip-10-0-1-11.${REGION}.compute.internal ip-10-0-2-12.${REGION}.compute.internal)
# BOOTSTRAP_ENV_PORT_OFFSET shifts every port, so that a second environment (say, a fresh
# clone's test run) can run beside a developer's.
o=${BOOTSTRAP_ENV_PORT_OFFSET:-0}
# The ports of one environment span 15000–24000 with gaps down to 7 (15043 vs 15050): offsets
# that are not multiples of 100 make two environments' ports collide (etcd's client port at
# offset N is its peer port at N-10).
[[ $o =~ ^[0-9]+$ ]] && (( o % 100 == 0 )) \
  || { echo "[env] error: BOOTSTRAP_ENV_PORT_OFFSET=$o: use a multiple of 100 (0, 100, 700, ...), so that two environments' ports never collide" >&2; exit 2; }
ETCD_PORT=$((23790 + o)) ETCD_PEER_PORT=$((23800 + o)) APISERVER_PORT=$((16443 + o))
KCM_PORT=$((20257 + o)) SCHED_PORT=$((20259 + o)) AWS_PORT=$((15000 + o)) AGENT_PORT=$((15023 + o))
KUBE_PROXY_PORT=$((15043 + o)) PROVIDER_METRICS_PORT=$((18081 + o)) DRIVER_METRICS_BASE=$((18095 + o)) REGISTRY_PORT=$((15050 + o))
ISSUER="https://oidc.eks.${REGION}.amazonaws.com/id/B007572A9T35T0000000000000000000"
export BOOTSTRAP_ENV_STATE=$STATE
mkdir -p "$LOGS" "$PIDS" "$PKI" "$STATE/providers" "$STATE/kubelet" "$STATE/csi"

t0=$SECONDS
say() { printf '[env %3ds] %s\n' $((SECONDS - t0)) "$*" >&2; }
die() { say "error: $*"; exit 1; }
running() { [[ -f $PIDS/$1.pid ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
start() { # name command... : start in the background unless already running
  local name=$1; shift
  if running "$name"; then say "$name: already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  say "$name: started (pid $!)"
}
wait_for() { # name seconds command... : poll until the command succeeds
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    running "$name" || die "$name exited; last log lines:$(printf '\n  %s' "$(tail -n 15 "$LOGS/$name.log")")"
    ((SECONDS < deadline)) || die "$name not ready after ${secs}s (see $LOGS/$name.log)"
    sleep 0.3
  done
}

# --- toolchain: Python virtualenv and the Go-built upstream programs (both cached) ---
req_hash=$(sha256sum "$here/requirements.txt" | cut -c1-12)
VENV=$BOOTSTRAP_ENV_CACHE/venv-$req_hash
if [[ ! -f $VENV/.complete ]]; then
  say "python: creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$here/requirements.txt"
  touch "$VENV/.complete"
fi
PY=$VENV/bin/python
"$here/build.sh" etcd; "$here/build.sh" k8s; "$here/build.sh" kwok; "$here/build.sh" csi
ETCD=$BOOTSTRAP_ENV_CACHE/etcd-$ETCD_VERSION/etcd
K8S=$BOOTSTRAP_ENV_CACHE/kubernetes-$K8S_VERSION
KWOK=$BOOTSTRAP_ENV_CACHE/kwok-$KWOK_VERSION/kwok
DRIVER=$BOOTSTRAP_ENV_CACHE/secrets-store-csi-driver-$CSI_DRIVER_VERSION/secrets-store-csi-driver

# --- PKI: a CA, the apiserver's serving cert, an admin client cert, the SA signing key ---
if [[ ! -f $PKI/admin.key ]]; then
  say "pki: generating certificates in $PKI"
  (
    cd "$PKI"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=bootstrap-env-ca" -days 3650 -out ca.crt 2>/dev/null
    sign() { # name subject [san]
      openssl genrsa -out "$1.key" 2048 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      local ext; ext=$(mktemp)
      printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' "$4" >"$ext"
      [[ -n $3 ]] && echo "subjectAltName=$3" >>"$ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile "$ext" -out "$1.crt" 2>/dev/null
      rm -f "$ext" "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver" "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1" serverAuth
    sign admin "/O=system:masters/CN=bootstrap-env-admin" "" clientAuth
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
fi
KUBECONFIG_FILE=$STATE/kubeconfig
b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $CLUSTER-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: $CLUSTER
  context: {cluster: $CLUSTER, user: $CLUSTER-admin}
current-context: $CLUSTER
EOF
chmod 600 "$KUBECONFIG_FILE"
# The same identity through the AWS stand-in's fault-injecting proxy of the apiserver (faults on
# "kube:VERB PATH" operations; tests/env/aws/awsstandin/kubeproxy.py).
(umask 077; sed "s#https://127.0.0.1:$APISERVER_PORT#https://127.0.0.1:$KUBE_PROXY_PORT#" \
  "$KUBECONFIG_FILE" >"$STATE/kubeconfig-kube-proxy")

# Like EKS, the apiserver authenticates `k8s-aws-v1.` tokens (the kubeconfig-less path of
# `bootstrap up`) through a webhook: the AWS stand-in verifies their SigV4 signature.
cat >"$STATE/authn-webhook.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: aws-iam-authenticator
  cluster: {server: "http://127.0.0.1:$AWS_PORT/_bootstrap/authenticate"}
users:
- name: kube-apiserver
  user: {}
contexts:
- name: webhook
  context: {cluster: aws-iam-authenticator, user: kube-apiserver}
current-context: webhook
EOF

# --- Kubernetes control plane ---
start etcd "$ETCD" --name env --data-dir "$STATE/etcd" --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "env=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))"
wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$K8S/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
  --service-account-issuer "$ISSUER" --service-account-key-file "$PKI/sa.pub" \
  --service-account-signing-key-file "$PKI/sa.key" --api-audiences "https://kubernetes.default.svc" \
  --authorization-mode RBAC --allow-privileged=true --service-cluster-ip-range 10.96.0.0/16 \
  --enable-priority-and-fairness=false --profiling=false \
  --authentication-token-webhook-config-file "$STATE/authn-webhook.kubeconfig" \
  --authentication-token-webhook-version v1 --authentication-token-webhook-cache-ttl 30s
wait_for kube-apiserver 120 "$PY" "$here/kubelet/cluster.py" --kubeconfig "$KUBECONFIG_FILE" wait --timeout 2

start kube-controller-manager "$K8S/kube-controller-manager" --kubeconfig "$KUBECONFIG_FILE" \
  --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=false --controllers '*,-nodeipam,-cloud-node-lifecycle' \
  --concurrent-daemonset-syncs 5 --profiling=false
start kube-scheduler "$K8S/kube-scheduler" --kubeconfig "$KUBECONFIG_FILE" \
  --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
"$PY" "$here/kubelet/cluster.py" --kubeconfig "$KUBECONFIG_FILE" wait --timeout 60 --service-account

"$PY" "$here/kubelet/cluster.py" --kubeconfig "$KUBECONFIG_FILE" nodes --region "$REGION" "${NODES[@]}"
start kwok "$KWOK" --kubeconfig "$KUBECONFIG_FILE" --config "$here/kwok-stages.yaml" \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --cidr 10.0.128.0/17 \
  --node-lease-duration-seconds 40 --server-address ""
wait_for kwok 60 "$PY" "$here/kubelet/cluster.py" --kubeconfig "$KUBECONFIG_FILE" nodes-ready --timeout 1 "${NODES[@]}"
say "nodes: ${NODES[*]} Ready"

# --- AWS: moto with the missing EKS APIs, eks-auth and the Pod Identity agent ---
if [[ -f $here/aws/server.py ]]; then
  rm -f "$STATE/aws.json.ready"
  start aws "$PY" "$here/aws/server.py" --host 127.0.0.1 --port "$AWS_PORT" --agent-port "$AGENT_PORT" \
    --region "$REGION" --cluster "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --state-dir "$STATE" \
    --kube-proxy-port "$KUBE_PROXY_PORT" --kube-proxy-upstream "https://127.0.0.1:$APISERVER_PORT" \
    --kube-proxy-pki "$PKI" ${BOOTSTRAP_ENV_AWS_ARGS:---enforce-iam}
  wait_for aws 60 test -s "$STATE/aws.json"
else
  say "aws: tests/env/aws/server.py not present, AWS stand-in skipped"
fi

# --- a real OCI registry (CNCF distribution), serving the provider image ---
"$repo/image/tools.sh" registry
REGISTRY=127.0.0.1:$REGISTRY_PORT
mkdir -p "$STATE/registry" "$STATE/image"
cat >"$STATE/registry.yml" <<EOF
version: 0.1
log: {level: warn, fields: {service: registry}}
storage:
  filesystem: {rootdirectory: $STATE/registry}
  delete: {enabled: true}
http:
  addr: $REGISTRY
  headers: {X-Content-Type-Options: [nosniff]}
EOF
start registry docker-registry serve "$STATE/registry.yml"
wait_for registry 30 curl -fsS "http://$REGISTRY/v2/"

PROVIDER_FROM=${BOOTSTRAP_ENV_PROVIDER:-image}
[[ -n ${BOOTSTRAP_PROVIDER_BIN:-} ]] && PROVIDER_FROM=host
[[ $PROVIDER_FROM == image || $PROVIDER_FROM == host ]] \
  || die "BOOTSTRAP_ENV_PROVIDER=$PROVIDER_FROM: expected image (default) or host"
PROVIDER_BIN=${BOOTSTRAP_PROVIDER_BIN:-$repo/target/debug/aws-csi-provider}
with_provider=
if [[ -z ${BOOTSTRAP_ENV_NO_PROVIDER:-} ]] && grep -q 'fn main' "$repo/crates/aws-csi-provider/src/main.rs" 2>/dev/null; then
  with_provider=1
  if [[ $PROVIDER_FROM == image ]]; then
    bundle=$("$here/image.sh" "$REGISTRY") || die "the provider image could not be prepared (see above)"
    say "aws-csi-provider: from image $(cat "$STATE/image/reference"), unpacked in $bundle"
  elif [[ -z ${BOOTSTRAP_PROVIDER_BIN:-} ]]; then
    say "aws-csi-provider: cargo build --bin aws-csi-provider (host binary: BOOTSTRAP_ENV_PROVIDER=host)"
    (cd "$repo" && cargo build -q --bin aws-csi-provider) >"$LOGS/aws-csi-provider-build.log" 2>&1 \
      || die "cargo build --bin aws-csi-provider failed (see $LOGS/aws-csi-provider-build.log)"
  fi
fi

# --- CSI: one real driver per fake node and the AWS provider, running what the cluster's
# DaemonSets say (tests/env/kubelet/follow.py; the environment's defaults without them), the
# kubelet shim that mounts CSI volumes for their pods, and a minimal test provider ---
# Like kubelet's directory on a node, the environment's is a shared mount: the driver's tmpfs
# mounts for pods reach the mount namespace of the upstream provider (HostToContainer in its
# chart), which writes the files itself. (This machine's / is a private mount.)
findmnt -n -M "$STATE/kubelet" >/dev/null 2>&1 || mount --bind "$STATE/kubelet" "$STATE/kubelet"
mount --make-rshared "$STATE/kubelet"
UPSTREAM_BIN=$BOOTSTRAP_ENV_CACHE/upstream-aws-provider-$AWS_PROVIDER_VERSION/secrets-store-csi-driver-provider-aws
node_json=$(printf '"%s",' "${NODES[@]}")
cat >"$STATE/follow.json" <<EOF
{"state": "$STATE", "env_dir": "$here", "kubeconfig": "$KUBECONFIG_FILE", "nodes": [${node_json%,}],
 "region": "$REGION", "aws_endpoint": "http://127.0.0.1:$AWS_PORT",
 "agent_endpoint": "http://127.0.0.1:$AGENT_PORT/v1/credentials", "agent_port": $AGENT_PORT,
 "apiserver_port": $APISERVER_PORT, "python": "$PY",
 "driver_bin": "$DRIVER", "driver_metrics_base": $DRIVER_METRICS_BASE,
 "provider_from": "$PROVIDER_FROM", "bundle": "${bundle:-}", "provider_bin": "$PROVIDER_BIN",
 "provider_metrics": $PROVIDER_METRICS_PORT, "upstream_bin": "$UPSTREAM_BIN"}
EOF
"$PY" "$here/kubelet/follow.py" --config "$STATE/follow.json" once
shim_nodes=()
for i in "${!NODES[@]}"; do
  node=${NODES[$i]}
  # Per-node socket dirs are short: unix socket paths are limited to 107 bytes.
  mkdir -p "$STATE/csi/node$i"
  # Supervised: the driver exits until its CRDs are installed (by `bootstrap up` or a test).
  start "csi-driver-$i" env SUPERVISE_DIR="$STATE/nodes/csi-driver-$i" "$here/supervise.sh" 2 false
  shim_nodes+=(--node "$node=unix://$STATE/csi/node$i/csi.sock")
done
start test-provider "$PY" "$here/kubelet/minimal_provider.py" --provider-volume "$STATE/providers"
wait_for test-provider 30 test -S "$STATE/providers/bootstrap-test.sock"
if [[ -n $with_provider ]]; then
  start aws-csi-provider env SUPERVISE_DIR="$STATE/nodes/aws-csi-provider" "$here/supervise.sh" 2 false
  wait_for aws-csi-provider 30 test -S "$STATE/providers/aws.sock"
fi
start node-follower "$PY" "$here/kubelet/follow.py" --config "$STATE/follow.json"
# kubelet re-publishes volumes of CSIDrivers with requiresRepublish every minute or so; here
# every BOOTSTRAP_ENV_REPUBLISH_SECONDS (2 by default) so that rotation tests stay short.
start kubelet-shim "$PY" "$here/kubelet/shim.py" --kubeconfig "$KUBECONFIG_FILE" \
  --kubelet-dir "$STATE/kubelet" --republish-interval "${BOOTSTRAP_ENV_REPUBLISH_SECONDS:-2}" "${shim_nodes[@]}"

# --- env.sh: everything a test or a person needs to talk to the stand-in ---
aws_key() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], sys.argv[3]))" "$STATE/aws.json" "$1" "$2" 2>/dev/null || echo "$2"; }
cat >"$STATE/env.sh" <<EOF
# Written by tests/env/up.sh: source it to talk to the local EKS stand-in.
export BOOTSTRAP_ENV_STATE='$STATE'
export KUBECONFIG='$KUBECONFIG_FILE'
export AWS_ENDPOINT_URL='http://127.0.0.1:$AWS_PORT'
export AWS_ACCESS_KEY_ID='$(aws_key access_key_id testing)'
export AWS_SECRET_ACCESS_KEY='$(aws_key secret_access_key testing)'
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_REGION='$REGION' AWS_DEFAULT_REGION='$REGION'
export AWS_EC2_METADATA_DISABLED=true
export BOOTSTRAP_TEST_CLUSTER='$CLUSTER'
export BOOTSTRAP_TEST_NODES='${NODES[*]}'
export BOOTSTRAP_ENV_CONTROL='http://127.0.0.1:$AWS_PORT/_bootstrap'
export POD_IDENTITY_ENDPOINT='http://127.0.0.1:$AGENT_PORT/v1/credentials'
export CSI_PROVIDER_DIR='$STATE/providers'
export BOOTSTRAP_ENV_PYTHON='$PY'
export BOOTSTRAP_ENV_REGISTRY='$REGISTRY'
export BOOTSTRAP_ENV_PROVIDER_FROM='$PROVIDER_FROM'
export BOOTSTRAP_ENV_PROVIDER_IMAGE='$(cat "$STATE/image/reference" 2>/dev/null || true)'
export BOOTSTRAP_PROVIDER_IMAGE='$(cat "$STATE/image/reference" 2>/dev/null || true)'
export BOOTSTRAP_ENV_PROVIDER_LAYOUT='$repo/target/image/env/oci'
export BOOTSTRAP_ENV_IAM_ENFORCED='$(aws_key enforce_iam false | tr 'A-Z' 'a-z')'
export BOOTSTRAP_ENV_KUBE_PROXY_KUBECONFIG='$STATE/kubeconfig-kube-proxy'
EOF
say "ready: source $STATE/env.sh"
