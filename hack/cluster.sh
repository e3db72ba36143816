#!/usr/bin/env bash
# Start and stop a local Kubernetes cluster built by hack/build-k8s.sh.
#
#   cluster.sh up   [--tier control-plane|node] [--name NAME]
#   cluster.sh down [--tier control-plane|node] [--name NAME]
#   cluster.sh env  [--tier control-plane|node] [--name NAME]
#
# control-plane: etcd, kube-apiserver and kube-controller-manager on
#   127.0.0.1 with free ports. Enough for the operator's integration tests:
#   CRDs, admission, RBAC, garbage collection, namespaces, StatefulSets
#   (whose pods stay Pending, since nothing runs them).
# node: the control plane plus kube-scheduler, containerd, a kubelet
#   registered as node "sro-node", the CNI bridge "sro0" with pods in
#   10.244.0.0/24, kube-proxy (iptables) for Services in 10.96.0.0/24,
#   CoreDNS at 10.96.0.10 for cluster.local, and kube-router enforcing
#   NetworkPolicy. Only one node tier can run at a time.
#
# Every server listens on 127.0.0.1, except those pods must reach, which
# listen on the bridge address 10.244.0.1 (the node's address): the kubelet
# and a relay to the API server. Pods have routes to the pod and Service
# ranges only, and CoreDNS forwards nothing outside cluster.local.
#
# `up` first installs the Debian packages and builds what is not cached
# (hack/deps.sh, hack/build-k8s.sh); SRO_NO_BUILD=1 skips that.
#
# NAME (default: the tier) names the state directory $SRO_RUN/NAME, so
# several control-plane tiers can run side by side. `up` prints how to use
# the cluster; `env` prints the same shell assignments again.

# The whole script is one block, so bash parses it completely before
# running it: editing the file while it runs cannot change a running call.
{
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$SRO_HACK/lib/pki.sh"
source "$SRO_HACK/lib/proc.sh"

POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
BRIDGE=sro0
NODE_NAME=sro-node

usage() {
  sed -n '2,/^# The whole script/p' "$0" | sed '$d' >&2
  exit 2
}

action=${1:-}
[[ $action == up || $action == down || $action == env ]] || usage
shift
tier=node
name=
while (($#)); do
  case $1 in
    --tier) tier=${2:?--tier needs control-plane or node}; shift 2 ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    -h|--help) usage ;;
    *) sro_die "cluster.sh: unknown argument '$1'; see cluster.sh --help" ;;
  esac
done
[[ $tier == control-plane || $tier == node ]] || sro_die "--tier must be control-plane or node, not '$tier'"
name=${name:-$tier}
[[ $name =~ ^[a-zA-Z0-9._-]+$ ]] || sro_die "--name may contain only letters, digits, '.', '_' and '-'"
state=$SRO_RUN/$name

kubectl_bin=$K8S_DIR/bin/kubectl
kubectl() {
  "$kubectl_bin" --kubeconfig "$state/admin.kubeconfig" "$@"
}

binary_path() {
  local component=$1 assets
  assets=$(sro_envtest_assets)
  if [[ $tier == control-plane && -n $assets && ($component == etcd || $component == kube-apiserver) ]]; then
    printf '%s/%s\n' "$assets" "$component"
  elif [[ $component == etcd ]]; then
    printf '%s/bin/etcd\n' "$ETCD_DIR"
  else
    printf '%s/bin/%s\n' "$K8S_DIR" "$component"
  fi
}

check_binaries() {
  local component
  local components=(etcd kube-apiserver kube-controller-manager kubectl)
  [[ $tier == control-plane ]] || components+=(kube-scheduler kubelet kube-proxy)
  for component in "${components[@]}"; do
    [[ -x $(binary_path "$component") ]] \
      || sro_die "$(binary_path "$component") is missing; run hack/build-k8s.sh --tier $tier first"
  done
  if [[ $tier == node ]]; then
    [[ -x $KUBE_ROUTER_DIR/bin/kube-router ]] || sro_die "kube-router is missing; run hack/build-k8s.sh first"
    local tool
    for tool in containerd containerd-shim-runc-v2 runc ctr iptables ipset socat; do
      command -v "$tool" >/dev/null || sro_die "$tool is not installed; run hack/deps.sh"
    done
    [[ -x /usr/lib/cni/bridge ]] || sro_die "the CNI plugins are missing in /usr/lib/cni; run hack/deps.sh"
  fi
}

write_env_file() {
  {
    echo "SRO_TIER=$tier"
    echo "SRO_CLUSTER_NAME=$name"
    echo "SRO_STATE_DIR=$state"
    echo "KUBECONFIG=$state/admin.kubeconfig"
    echo "SRO_API_SERVER=https://127.0.0.1:$api_port"
    if [[ $tier == node ]]; then
      echo "SRO_CONTAINERD_SOCKET=$state/containerd/containerd.sock"
      echo "SRO_NODE_NAME=$NODE_NAME"
    fi
  } >"$state/cluster.env"
}

print_usage() {
  cat <<USAGE
The $tier tier "$name" is running. Use it with:

  export KUBECONFIG=$state/admin.kubeconfig
  $kubectl_bin get nodes,pods -A

The kubeconfig authenticates as a cluster admin (group system:masters).
kubectl is $kubectl_bin. Logs: $state/logs/. Stop with:

  $SRO_HACK/cluster.sh down --tier $tier --name $name
USAGE
}

# ---------------------------------------------------------------- control plane

make_pki() {
  local pki=$state/pki
  pki_init "$pki"
  local api_sans="IP:127.0.0.1,DNS:localhost,IP:$KUBERNETES_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default"
  api_sans+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  [[ $tier == control-plane ]] || api_sans+=",IP:$NODE_IP"
  pki_issue "$pki" apiserver "/CN=kube-apiserver" serverAuth "$api_sans"
  pki_issue "$pki" etcd-server "/CN=etcd" serverAuth "IP:127.0.0.1,DNS:localhost"
  pki_issue "$pki" apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
  pki_issue "$pki" admin "/O=system:masters/CN=sro-admin" clientAuth
  pki_issue "$pki" controller-manager "/CN=system:kube-controller-manager" clientAuth
  if [[ $tier == node ]]; then
    pki_issue "$pki" scheduler "/CN=system:kube-scheduler" clientAuth
    pki_issue "$pki" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    pki_issue "$pki" kubelet-server "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
    pki_issue "$pki" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    pki_issue "$pki" kube-proxy "/CN=system:kube-proxy" clientAuth
    pki_issue "$pki" kube-router "/CN=sro:kube-router" clientAuth
  fi
}

start_etcd() {
  local client_port peer_port
  client_port=$(free_port)
  peer_port=$(free_port)
  mkdir -p "$state/etcd"
  chmod 700 "$state/etcd"
  # The peer URL is plain HTTP on loopback: a single member never has peers,
  # but etcd needs the listener.
  start_process etcd "$(binary_path etcd)" \
    --name "$name" --data-dir "$state/etcd" \
    --listen-client-urls "https://127.0.0.1:$client_port" \
    --advertise-client-urls "https://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "$name=http://127.0.0.1:$peer_port" \
    --cert-file "$state/pki/etcd-server.crt" --key-file "$state/pki/etcd-server.key" \
    --client-cert-auth --trusted-ca-file "$state/pki/ca.crt" \
    --listen-metrics-urls "" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  etcd_url=https://127.0.0.1:$client_port
}

etcd_healthy() {
  curl -fsS --cacert "$state/pki/ca.crt" --cert "$state/pki/apiserver-etcd-client.crt" \
    --key "$state/pki/apiserver-etcd-client.key" "$etcd_url/health"
}

apiserver_ready() {
  curl -fsS --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz"
}

start_apiserver() {
  local pki=$state/pki advertise=127.0.0.1
  api_port=$(free_port)
  local flags=(
    --bind-address 127.0.0.1 --secure-port "$api_port"
    --etcd-servers "$etcd_url" --etcd-cafile "$pki/ca.crt"
    --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key"
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
    --client-ca-file "$pki/ca.crt"
    --service-cluster-ip-range "$SERVICE_CIDR"
    --service-account-issuer https://kubernetes.default.svc.cluster.local
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key"
    --allow-privileged=true --profiling=false --anonymous-auth=false
    --cert-dir "$state/apiserver"
  )
  if [[ $tier == node ]]; then
    # Pods reach the API server through the kubernetes Service, which points
    # at the advertised address; a relay on the bridge forwards it to loopback.
    advertise=$NODE_IP
    flags+=(
      --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction
      --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$pki/apiserver-kubelet-client.key"
      --kubelet-certificate-authority "$pki/ca.crt"
      --kubelet-preferred-address-types InternalIP
    )
  else
    flags+=(--authorization-mode RBAC)
  fi
  start_process kube-apiserver "$(binary_path kube-apiserver)" --advertise-address "$advertise" "${flags[@]}"
}

start_controller_manager() {
  local pki=$state/pki port
  port=$(free_port)
  write_kubeconfig "$state/controller-manager.kubeconfig" "https://127.0.0.1:$api_port" "$pki" controller-manager
  # Each controller acts with its own ServiceAccount, so RBAC mistakes in
  # the operator's manifests show up here as they would in a real cluster.
  start_process kube-controller-manager "$(binary_path kube-controller-manager)" \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port" --cert-dir "$state/controller-manager" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --controllers '*' \
    --concurrent-gc-syncs 5 --profiling=false
}

default_service_account_exists() {
  kubectl -n default get serviceaccount default
}

up_control_plane() {
  make_pki
  start_etcd
  wait_until etcd 30 etcd_healthy
  start_apiserver
  wait_until kube-apiserver 90 apiserver_ready
  write_kubeconfig "$state/admin.kubeconfig" "https://127.0.0.1:$api_port" "$state/pki" admin
  start_controller_manager
  # The default ServiceAccount appears once the controllers run, and pods
  # cannot be created in a namespace before it exists.
  wait_until kube-controller-manager 60 default_service_account_exists
}

# ---------------------------------------------------------------- node

source "$SRO_HACK/lib/node.sh"

# ---------------------------------------------------------------- main

# live_node_tier: print the name of the node tier whose API server runs, if any.
live_node_tier() {
  local env_file other
  for env_file in "$SRO_RUN"/*/cluster.env; do
    [[ -f $env_file ]] && grep -q '^SRO_TIER=node$' "$env_file" || continue
    other=$(basename "$(dirname "$env_file")")
    if (state=$SRO_RUN/$other && process_alive kube-apiserver); then
      echo "$other"
      return 0
    fi
  done
  return 1
}

cluster_running() {
  [[ -f $state/cluster.env ]] && process_alive kube-apiserver
}

do_up() {
  sro_require_root "cluster.sh up"
  # One command on a fresh machine: install, build and start. Both steps
  # return within a second when everything is already in place.
  if [[ ${SRO_NO_BUILD:-0} != 1 ]]; then
    "$SRO_HACK/deps.sh"
    "$SRO_HACK/build-k8s.sh" --tier "$tier"
  fi
  check_binaries
  if cluster_running; then
    sro_log "the $tier tier \"$name\" is already running"
    print_usage
    return
  fi
  if [[ -d $state ]]; then
    sro_log "cleaning up what a previous run of \"$name\" left behind"
    do_down
  fi
  if [[ $tier == node ]]; then
    node_preflight
  fi
  mkdir -p "$state"
  chmod 700 "$state"
  echo "$tier" >"$state/tier"
  local start=$SECONDS
  # A failed start leaves nothing running behind it.
  trap 'on_failed_up' EXIT
  if [[ $tier == node ]]; then
    node_network_up
  fi
  up_control_plane
  if [[ $tier == node ]]; then
    up_node
  fi
  trap - EXIT
  write_env_file
  sro_log "the $tier tier \"$name\" started in $((SECONDS - start)) s"
  print_usage
}

on_failed_up() {
  if [[ ${SRO_KEEP_FAILED:-0} == 1 ]]; then
    sro_log "start-up failed; SRO_KEEP_FAILED=1 leaves it running for inspection: $state"
    return
  fi
  sro_log "start-up failed; stopping what was started (logs are kept in $SRO_CACHE/logs/$name-last)"
  do_down
}

do_down() {
  # The tier that was started decides what to stop, whatever --tier says.
  if [[ -f $state/tier ]]; then
    tier=$(<"$state/tier")
  fi
  if [[ $tier == node && ! -d $state ]] && live_node_tier >/dev/null; then
    sro_log "nothing to stop: $state does not exist, and the bridge belongs to the running node tier \"$(live_node_tier)\""
    return 0
  fi
  if [[ $tier == node ]]; then
    # Runs even without a state directory: a crashed run can leave the
    # bridge and iptables chains behind after its state is gone.
    down_node
  fi
  [[ -d $state ]] || { sro_log "nothing else to stop: $state does not exist"; return 0; }
  # The cluster is thrown away, so its control plane stops all at once.
  # kube-apiserver 1.35 can spend 20 s stopping its ServiceCIDR allocator,
  # hence the short grace period before SIGKILL.
  stop_process kube-controller-manager &
  stop_process kube-apiserver 3 &
  stop_process etcd &
  wait
  # Keep the logs of the last run for post-mortems; the rest is throwaway.
  rm -rf "$SRO_CACHE/logs/$name-last"
  mkdir -p "$SRO_CACHE/logs"
  [[ ! -d $state/logs ]] || cp -r "$state/logs" "$SRO_CACHE/logs/$name-last"
  rm -rf "$state"
  sro_log "the $tier tier \"$name\" is stopped"
}

do_env() {
  cluster_running || sro_die "the $tier tier \"$name\" is not running; start it with hack/cluster.sh up --tier $tier --name $name"
  sed 's/^/export /' "$state/cluster.env"
}

# up and down of one cluster name never overlap, even from two test runs.
if [[ $action != env ]]; then
  mkdir -p "$SRO_RUN"
  exec 7>"$SRO_RUN/.$name.lock"
  if ! flock -n 7; then
    sro_log "another cluster.sh is starting or stopping \"$name\"; waiting for it"
    flock 7
  fi
fi

case $action in
  up) do_up ;;
  down) sro_require_root "cluster.sh down"; do_down ;;
  env) do_env ;;
esac
exit
}
