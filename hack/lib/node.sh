# shellcheck shell=bash
# The node tier of hack/cluster.sh: network, containerd, kubelet, kube-proxy,
# kube-scheduler, kube-router and CoreDNS. Sourced by cluster.sh, which
# defines $state, the address constants and the control-plane functions.

# node_preflight: refuse to start next to another node tier or on a host
# where the bridge name or the pod range is already taken.
node_preflight() {
  local other other_name
  for other in "$SRO_RUN"/*/cluster.env; do
    [[ -f $other ]] && grep -q '^SRO_TIER=node$' "$other" || continue
    other_name=$(basename "$(dirname "$other")")
    if (state=$SRO_RUN/$other_name && process_alive kube-apiserver); then
      sro_die "a node tier already runs ($SRO_RUN/$other_name); stop it with hack/cluster.sh down --tier node --name $other_name"
    fi
    # Its processes are gone (a reboot, or a CI run after a session):
    # clean up what it left before taking over the bridge.
    sro_log "cleaning up the node tier \"$other_name\" whose processes are gone"
    "$SRO_HACK/cluster.sh" down --tier node --name "$other_name"
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    sro_log "removing the interface $BRIDGE and the iptables chains that a crashed node tier left"
    (state=$SRO_RUN/.none && down_node)
  fi
  if ip route show to match "$NODE_IP" | grep -qv '^default'; then
    sro_die "$POD_CIDR overlaps a route on this host ($(ip route show to match "$NODE_IP" | grep -v '^default' | head -n1)); the node tier needs that range"
  fi
}

# node_network_up: the bridge exists before any pod, because the kubelet and
# the API server relay bind to its address. Services (DNAT) and NetworkPolicy
# (iptables) act on traffic between pods on the bridge, so forwarding and
# bridge netfilter are switched on. down restores the previous values.
node_network_up() {
  mkdir -p "$state"
  {
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "bridge_nf_call_iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 1)"
  } >"$state/sysctl.saved"
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] \
    || sro_die "bridge netfilter is missing (/proc/sys/net/bridge); load it with: modprobe br_netfilter"
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

write_cni_config() {
  mkdir -p "$state/cni/net.d" "$state/cni/ipam"
  # Routes cover the pod and Service ranges only: a pod has no route to any
  # other address, and nothing is masqueraded.
  cat >"$state/cni/net.d/10-sro.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "sro-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$state/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    }
  ]
}
CNI
}

start_containerd() {
  local dir=$state/containerd restrict_oom=false
  mkdir -p "$dir" "$SRO_CACHE/containerd-root"
  # Pod sandboxes get oom_score_adj -998, and lowering a score needs
  # CAP_SYS_RESOURCE. Some sandboxed VMs and containers drop it even for
  # root, and then runc fails every sandbox with "can't get final child's
  # PID from pipe". With restrict_oom_score_adj, containerd clamps the
  # scores to its own instead.
  local score
  score=$(cat /proc/self/oom_score_adj)
  if ! bash -c "echo $((score - 1)) >/proc/self/oom_score_adj" 2>/dev/null; then
    restrict_oom=true
    sro_log "containerd: this host cannot lower oom_score_adj (no CAP_SYS_RESOURCE); pods keep the daemon's score"
  fi
  # The root (images, snapshots) is cached so a warm start skips the image
  # import; the state (sockets, running tasks) belongs to this run.
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$SRO_CACHE/containerd-root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
TOML
  start_process containerd containerd --config "$dir/config.toml"
  wait_until containerd 30 ctr --address "$dir/containerd.sock" version
}

start_kubelet() {
  local pki=$state/pki dir=$state/kubelet healthz_port
  healthz_port=$(free_port)
  mkdir -p "$dir/root"
  write_kubeconfig "$state/kubelet.kubeconfig" "https://127.0.0.1:$api_port" "$pki" kubelet
  # failCgroupV1: this host runs cgroup v1, which kubelet 1.35 refuses by
  # default. cgroupDriver: containerd 1.6 cannot report its driver over CRI.
  # resolvConf "": pods with dnsPolicy Default get no upstream resolver, so
  # nothing in the cluster sends DNS queries off this machine.
  # The image GC threshold of 100 % keeps the locally built images, which
  # no registry could restore.
  cat >"$dir/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $pki/kubelet-server.crt
tlsPrivateKeyFile: $pki/kubelet-server.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS:
- $DNS_SERVICE_IP
resolvConf: ""
podCIDR: $POD_CIDR
maxPods: 110
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
failSwapOn: false
YAML
  echo "$healthz_port" >"$dir/healthz-port"
  start_process kubelet "$(binary_path kubelet)" \
    --config "$dir/config.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$dir/root" --cert-dir "$dir/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
}

node_ready() {
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

start_kube_proxy() {
  local healthz_port metrics_port
  healthz_port=$(free_port)
  metrics_port=$(free_port)
  write_kubeconfig "$state/kube-proxy.kubeconfig" "https://127.0.0.1:$api_port" "$state/pki" kube-proxy
  # maxPerCore 0 leaves the host's conntrack table size alone. NodePorts
  # accept connections on the node address only.
  cat >"$state/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $state/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$healthz_port
metricsBindAddress: 127.0.0.1:$metrics_port
clusterCIDR: $POD_CIDR
nodePortAddresses:
- $NODE_IP/32
conntrack:
  maxPerCore: 0
iptables:
  syncPeriod: 30s
  minSyncPeriod: 0s
YAML
  start_process kube-proxy "$(binary_path kube-proxy)" --config "$state/kube-proxy.yaml"
  kube_proxy_healthz=http://127.0.0.1:$healthz_port/healthz
}

kube_proxy_synced() {
  curl -fsS "$kube_proxy_healthz"
}

start_scheduler() {
  local port
  port=$(free_port)
  write_kubeconfig "$state/scheduler.kubeconfig" "https://127.0.0.1:$api_port" "$state/pki" scheduler
  start_process kube-scheduler "$(binary_path kube-scheduler)" \
    --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port" --leader-elect=false --profiling=false
}

start_kube_router() {
  write_kubeconfig "$state/kube-router.kubeconfig" "https://127.0.0.1:$api_port" "$state/pki" kube-router
  # Firewall only: routing is the bridge's job and Services are kube-proxy's.
  # Health and metrics listeners are off so it opens no port at all.
  start_process kube-router "$KUBE_ROUTER_DIR/bin/kube-router" \
    --kubeconfig "$state/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --health-port 0 --metrics-port 0 --iptables-sync-period 30s -v 1
}

start_api_relay() {
  # Pods reach the API server at the kubernetes Service, which kube-proxy
  # sends to NODE_IP:api_port; the API server itself stays on loopback.
  start_process api-relay socat \
    "TCP-LISTEN:$api_port,bind=$NODE_IP,reuseaddr,fork" "TCP:127.0.0.1:$api_port"
}

apply_addons() {
  sed -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
    "$SRO_HACK/manifests/addons.yaml" | kubectl apply -f - >/dev/null
}

coredns_ready() {
  [[ $(kubectl -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}') == 1 ]]
}

up_node() {
  write_cni_config
  start_api_relay
  start_scheduler
  start_containerd
  remove_stale_containers
  "$SRO_HACK/images.sh" import "$state/containerd/containerd.sock"
  start_kubelet
  wait_until kubelet 90 node_ready
  start_kube_proxy
  wait_until kube-proxy 60 kube_proxy_synced
  apply_addons
  start_kube_router
  wait_until kube-router 120 coredns_ready
}

# ---------------------------------------------------------------- teardown

# sandbox_netns_paths: the network namespaces of this containerd's pod
# sandboxes, read from the containers' OCI specs.
sandbox_netns_paths() {
  local socket=$state/containerd/containerd.sock id
  [[ -S $socket ]] || return 0
  for id in $(ctr --address "$socket" -n k8s.io containers list -q 2>/dev/null); do
    ctr --address "$socket" -n k8s.io containers info "$id" 2>/dev/null \
      | jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty'
  done | sort -u
}

kill_containers() {
  local socket=$state/containerd/containerd.sock id
  [[ -S $socket ]] && process_alive containerd || return 0
  for id in $(ctr --address "$socket" -n k8s.io tasks list -q 2>/dev/null); do
    ctr --address "$socket" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 1
  for id in $(ctr --address "$socket" -n k8s.io containers list -q 2>/dev/null); do
    ctr --address "$socket" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    ctr --address "$socket" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
  done
}

# remove_stale_containers: delete the containers that a run which ended
# without `down` (a reboot, a killed CI job) left in the cached containerd
# root, and their network namespaces, before the kubelet would trip over them.
remove_stale_containers() {
  local netns_paths path
  netns_paths=$(sandbox_netns_paths)
  [[ -n $(ctr --address "$state/containerd/containerd.sock" -n k8s.io containers list -q) ]] || return 0
  sro_log "containerd: removing containers left by an earlier run"
  kill_containers
  for path in $netns_paths; do
    umount "$path" 2>/dev/null || true
    rm -f "$path"
  done
}

# unmount_under DIR: unmount everything mounted below DIR, deepest first.
unmount_under() {
  local dir=$1 mount_point
  awk -v prefix="$dir/" 'index($2, prefix) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r mount_point; do
    umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null || true
  done
}

# remove_kube_iptables: drop every iptables chain named KUBE-* and every rule
# that jumps to one, in all tables, then the ipsets kube-router made. The
# kubelet, kube-proxy and kube-router name all their chains that way, and
# kube-router's own --cleanup-config leaves its chains behind. This assumes
# no other Kubernetes node runs on this host, which node_preflight checks
# for the node tier; other rules are restored unchanged.
remove_kube_iptables() {
  local table rules
  for table in filter nat mangle raw; do
    rules=$(iptables-save -t "$table" 2>/dev/null) || continue
    grep -q 'KUBE-' <<<"$rules" || continue
    grep -v 'KUBE-' <<<"$rules" | iptables-restore -T "$table" \
      || sro_log "could not remove the KUBE-* chains from the $table table; check with: iptables-save -t $table"
  done
  local set
  for set in $(ipset list -n 2>/dev/null | grep '^KUBE-' || true); do
    ipset destroy "$set" 2>/dev/null || true
  done
}

down_node() {
  # The cluster is thrown away, so pods are killed rather than deleted
  # through the API: that takes a second instead of half a minute. The
  # bridge plugin adds no iptables rules and the IPAM state lives in $state,
  # so skipping CNI's DEL leaves only the network namespaces, removed below.
  local netns_paths path
  netns_paths=$(sandbox_netns_paths)
  stop_process kubelet 5
  kill_containers
  stop_process kube-router
  stop_process kube-proxy
  stop_process kube-scheduler
  stop_process api-relay
  stop_process containerd 15

  # The containerd-shim of a killed task exits once its container is gone.
  # The netns mounts of sandboxes that CNI never released are removed here.
  for path in $netns_paths; do
    umount "$path" 2>/dev/null || true
    rm -f "$path"
  done
  unmount_under "$state"
  unmount_under "$SRO_CACHE/containerd-root"

  if [[ -x $(binary_path kube-proxy) ]]; then
    "$(binary_path kube-proxy)" --cleanup >/dev/null 2>&1 || true
  fi
  remove_kube_iptables

  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"
  fi
  if [[ -f $state/sysctl.saved ]]; then
    local ip_forward bridge_nf_call_iptables
    # shellcheck disable=SC1091
    source "$state/sysctl.saved"
    echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
    echo "$bridge_nf_call_iptables" >/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || true
  fi
}
