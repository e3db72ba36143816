#!/usr/bin/env bash
# The main job, end to end, on a fresh Linux machine (run as root):
#
#   1. install what is missing and build a local Kubernetes (cached), start it;
#   2. install the CRD and start the operator;
#   3. apply manifests/examples/standalone.yaml and wait until it is Ready;
#   4. show a labelled client pod doing PING/SET/GET over mutual TLS with the
#      generated credentials, an unlabelled pod being refused by the
#      NetworkPolicy, and FLUSHALL being rejected.
#
# The cluster and the operator keep running afterwards so you can look
# around; the script prints how to reach them and how to stop everything.
# The operator runs as a process on this machine with the cluster's admin
# kubeconfig; it reaches the Redis pods over the node's bridge.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
sro_require_root "demo.sh"

namespace=${SRO_DEMO_NAMESPACE:-demo}
name=cache
run_dir=$SRO_RUN/demo
mkdir -p "$run_dir"

step() { printf '\n==> %s\n' "$*"; }

step "Installing dependencies and building the local cluster (cached after the first run)"
"$SRO_HACK/redis-deps.sh"
"$SRO_HACK/python-env.sh"
"$SRO_HACK/deps.sh"
"$SRO_HACK/build-k8s.sh" --tier node
"$SRO_HACK/images.sh" build

step "Starting the node tier"
if ! "$SRO_HACK/cluster.sh" env --tier node >/dev/null 2>&1; then
  "$SRO_HACK/cluster.sh" up --tier node
fi
eval "$("$SRO_HACK/cluster.sh" env --tier node)"
kubectl_bin=$K8S_DIR/bin/kubectl
kubectl() { "$kubectl_bin" --kubeconfig "$KUBECONFIG" "$@"; }

step "Installing the SecureRedis CRD and starting the operator"
kubectl apply --server-side --force-conflicts -f "$SRO_ROOT/crds/secureredis.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/secureredises.secureredis.io >/dev/null
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

if [[ -f $run_dir/operator.pid ]] && kill -0 "$(cat "$run_dir/operator.pid")" 2>/dev/null; then
  echo "operator already running (pid $(cat "$run_dir/operator.pid"))"
else
  nohup "$SRO_ROOT/.venv/bin/secure-redis" run --kubeconfig "$KUBECONFIG" --namespace "$namespace" \
    --resync-interval 10 >"$run_dir/operator.log" 2>&1 &
  echo $! >"$run_dir/operator.pid"
  echo "operator started (pid $!, log $run_dir/operator.log)"
fi

step "Applying manifests/examples/standalone.yaml and waiting for Ready"
kubectl -n "$namespace" apply -f "$SRO_ROOT/manifests/examples/standalone.yaml"
kubectl -n "$namespace" wait "secureredis/$name" --for=condition=Ready --timeout=300s
kubectl -n "$namespace" get "secureredis/$name"

client_pod() {  # name, user Secret, "labelled" or "unlabelled"
  local labels="e2e-client: $1"
  [[ $3 == labelled ]] && labels="$labels, secureredis.io/client-$name: \"true\""
  kubectl -n "$namespace" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels: {$labels}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 999, seccompProfile: {type: RuntimeDefault}}
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: $CLIENT_IMAGE
      imagePullPolicy: IfNotPresent
      command: [sleep, infinity]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: creds, mountPath: /creds, readOnly: true}]
  volumes: [{name: creds, secret: {secretName: $2}}]
EOF
  kubectl -n "$namespace" wait "pod/$1" --for=condition=Ready --timeout=120s >/dev/null
}

redis_cli() {  # pod, redis-cli arguments...; the password stays inside the pod
  local pod=$1
  shift
  kubectl -n "$namespace" exec "$pod" -- sh -c '
    REDISCLI_AUTH="$(cat /creds/password)" && export REDISCLI_AUTH &&
    timeout 8 redis-cli --tls --cacert /creds/ca.crt --cert /creds/tls.crt --key /creds/tls.key \
      -h "$0" -p 6379 --user "$(cat /creds/username)" --no-auth-warning "$@"' \
    "$name.$namespace.svc.cluster.local" "$@"
}

step "A labelled client pod with the app_service credentials"
client_pod demo-client "$name-user-app-service" labelled
echo "+ PING";                  redis_cli demo-client PING
echo "+ SET app:greeting hello"; redis_cli demo-client SET app:greeting hello
echo "+ GET app:greeting";      redis_cli demo-client GET app:greeting
echo "+ FLUSHALL (disabled for every user)"
redis_cli demo-client FLUSHALL || true

step "An unlabelled pod with the same credentials is refused by the NetworkPolicy"
client_pod demo-stranger "$name-user-app-service" unlabelled
if redis_cli demo-stranger PING; then
  sro_die "the unlabelled pod reached Redis; the NetworkPolicy is not enforced"
else
  echo "refused: the NetworkPolicy let no connection through, as expected"
fi

step "Done"
cat <<EOF
The cluster and the operator keep running. Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl_bin -n $namespace get secureredis $name -o yaml
  $kubectl_bin -n $namespace describe secureredis $name
Stop everything with:
  kill \$(cat $run_dir/operator.pid); $SRO_HACK/cluster.sh down --tier node --name node
EOF
