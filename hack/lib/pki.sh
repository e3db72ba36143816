# shellcheck shell=bash
# Certificates and kubeconfigs of a local cluster. Source it; do not run it.
# Every key is ECDSA P-256, every certificate lives 30 days (a cluster is
# torn down long before), and every private key file is readable by root only.

# pki_init DIR: create the cluster CA in DIR.
pki_init() {
  local dir=$1
  mkdir -p "$dir"
  chmod 700 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 30 -subj "/CN=secure-redis-operator local CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null \
    || sro_die "openssl could not create the cluster CA in $dir"
  # The service-account signing key is separate from the CA on purpose: a
  # leaked token key must not let anyone mint certificates.
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/sa.key" 2>/dev/null
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  chmod 600 "$dir"/*.key
}

# pki_issue DIR NAME SUBJECT USAGE [SAN]: issue DIR/NAME.crt and DIR/NAME.key
# signed by the cluster CA. USAGE is serverAuth, clientAuth or both
# (comma-separated); SAN is an openssl subjectAltName list.
pki_issue() {
  local dir=$1 name=$2 subject=$3 usage=$4 san=${5:-}
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -z $san ]] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "$subject" 2>/dev/null \
    || sro_die "openssl could not create the key for $name"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 30 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null \
    || sro_die "openssl could not sign the certificate for $name"
  chmod 600 "$dir/$name.key"
  rm -f "$dir/$name.csr" "$ext"
}

# write_kubeconfig FILE SERVER PKI_DIR CLIENT: a kubeconfig for the client
# certificate PKI_DIR/CLIENT.{crt,key}. The certificates are embedded so the
# file stays usable when copied elsewhere on the machine.
write_kubeconfig() {
  local file=$1 server=$2 pki=$3 client=$4
  umask 077
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $client
  user:
    client-certificate-data: $(base64 -w0 "$pki/$client.crt")
    client-key-data: $(base64 -w0 "$pki/$client.key")
contexts:
- name: local
  context:
    cluster: local
    user: $client
current-context: local
KUBECONFIG
  umask 022
}
