#!/usr/bin/env bash
# cluster.sh — a real Kubernetes control plane on loopback, for surge's
# Kubernetes tests: etcd, kube-apiserver and kube-controller-manager of one
# pinned release (go.mod), built from their Go modules once and cached;
# and the metrics-server of one release (metrics-server/go.mod), which the
# CPU autoscaling tests start as a process.
#
#   targets/kubernetes/cluster.sh build          build (or find) the binaries;
#                                                prints their folder
#   targets/kubernetes/cluster.sh up DIR [--port P]
#                                                start them, wait for /readyz
#   targets/kubernetes/cluster.sh down DIR       stop what `up` started (by pid)
#   targets/kubernetes/cluster.sh restart-apiserver DIR
#                                                stop the API server and start
#                                                it again (its watches end)
#
# `up` binds everything to 127.0.0.1: the API server's secure port P (default
# 16443), etcd's client port P+1 and peer port P+2, the controller manager's
# secure port P+3. RBAC is on, and the aggregation layer (APIServices reach
# their pods directly: no kube-proxy here); the controller manager runs the default
# controllers (job, replicaset, deployment, endpointslice, disruption,
# horizontal-pod-autoscaler among them). DIR receives the certificates, the
# data, the logs (DIR/log), the pids (DIR/pids), an admin kubeconfig
# (DIR/admin.kubeconfig) and DIR/cluster.env (the ports and paths).
#
# The binaries go to $SURGE_KUBE_CACHE (default ~/.cache/surge/kubernetes),
# in a folder named by the release, and are reused while that folder holds
# all three. The first build takes minutes of CPU (see the README).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
release="v1.34.4-etcd-v3.6.4"
cache="${SURGE_KUBE_CACHE:-$HOME/.cache/surge/kubernetes}/$release"
binaries=(etcd kube-apiserver kube-controller-manager)
# Its own module: its Kubernetes libraries need not agree with the pins above.
metrics_server_release="v0.8.0"

# The folder `up` is starting, so that a failed start stops what it started.
starting=""

die() {
    echo "cluster.sh: $*" >&2
    [ -z "$starting" ] || down "$starting" 2>/dev/null || true
    exit 2
}

# Go from PATH, or where its official tarball installs it.
go_bin() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [ -x /usr/local/go/bin/go ]; then
        echo /usr/local/go/bin/go
    else
        die "Go is not installed: the control plane builds from Go modules (Go 1.24 or newer)"
    fi
}

built() {
    local b
    for b in "${binaries[@]}"; do
        [ -x "$cache/$b" ] || return 1
    done
}

build() {
    if built; then
        build_metrics_server
        echo "$cache"
        return
    fi
    local go
    go=$(go_bin)
    mkdir -p "$cache"
    local started log
    started=$(date +%s)
    log="$cache/build.log"
    echo "cluster.sh: building the control plane ($release) into $cache; the first build takes minutes" >&2
    (
        cd "$here"
        # -trimpath: the binaries do not depend on where the modules were.
        "$go" build -trimpath -buildvcs=false -o "$cache/etcd.new" ./cmd/etcd &&
            "$go" build -trimpath -buildvcs=false -o "$cache/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver &&
            "$go" build -trimpath -buildvcs=false -o "$cache/kube-controller-manager.new" k8s.io/kubernetes/cmd/kube-controller-manager
    ) >"$log" 2>&1 || die "the build failed; its output is in $log"
    local b
    for b in "${binaries[@]}"; do
        mv "$cache/$b.new" "$cache/$b"
    done
    echo "built in $(($(date +%s) - started)) s" >>"$log"
    echo "cluster.sh: built in $(($(date +%s) - started)) s" >&2
    build_metrics_server
    echo "$cache"
}

# metrics-server, into the same folder as metrics-server-$release, once.
build_metrics_server() {
    local binary="$cache/metrics-server-$metrics_server_release"
    [ -x "$binary" ] && return
    local go started log="$cache/build-metrics-server.log"
    go=$(go_bin)
    mkdir -p "$cache"
    started=$(date +%s)
    echo "cluster.sh: building metrics-server $metrics_server_release into $cache" >&2
    (
        cd "$here/metrics-server"
        "$go" build -trimpath -buildvcs=false -o "$binary.new" sigs.k8s.io/metrics-server/cmd/metrics-server
    ) >"$log" 2>&1 || die "the metrics-server build failed; its output is in $log"
    mv "$binary.new" "$binary"
    echo "cluster.sh: metrics-server built in $(($(date +%s) - started)) s" >&2
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A CA, and certificates it signs: the API server's serving certificate,
# clients for the admin (system:masters), the controller manager and the
# aggregation layer's proxy, a serving certificate for aggregated API
# servers, and the service-account signing key.
certificates() {
    local dir=$1 pki=$1/pki
    command -v openssl >/dev/null 2>&1 || die "openssl is not installed: apt-get install openssl"
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=surge-test-ca" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    sign() { # name subject [san]
        local name=$1 subject=$2 san=${3:-}
        openssl req -newkey rsa:2048 -nodes -subj "$subject" \
            -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
        if [ -n "$san" ]; then
            printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >"$pki/$name.ext"
        else
            printf 'extendedKeyUsage=clientAuth\n' >"$pki/$name.ext"
        fi
        openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
            -CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
    }
    sign apiserver "/CN=kube-apiserver" \
        "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=surge-admin"
    sign controller-manager "/CN=system:kube-controller-manager"
    # The aggregation layer: the client the API server proxies as, and a
    # serving certificate for the aggregated API servers tests run as pods
    # (their Services' names).
    sign front-proxy-client "/CN=front-proxy-client"
    sign aggregated "/CN=aggregated-apiserver" \
        "DNS:custom-metrics.clinic.svc,DNS:custom-metrics.kube-system.svc,DNS:metrics-server.kube-system.svc"
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # file user port
    local file=$1 user=$2 port=$3 pki
    pki="$(dirname "$file")/pki"
    cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: surge-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: surge-test
  context:
    cluster: surge-test
    user: $user
current-context: surge-test
KUBECONFIG
}

wait_ready() { # dir port seconds
    local dir=$1 port=$2 limit=$3 i
    for ((i = 0; i < limit * 5; i++)); do
        if curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
            "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            return 0
        fi
        local name
        for name in etcd kube-apiserver; do
            kill -0 "$(cat "$dir/pids/$name")" 2>/dev/null || die "$name exited; see $dir/log/$name.log"
        done
        sleep 0.2
    done
    die "the API server was not ready within $limit s; see $dir/log/kube-apiserver.log"
}

start_apiserver() { # dir port bin
    local dir=$1 port=$2 bin=$3
    "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$((port + 1))" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
        --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
        --client-ca-file "$dir/pki/ca.crt" \
        --service-account-key-file "$dir/pki/sa.pub" \
        --service-account-signing-key-file "$dir/pki/sa.key" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-cluster-ip-range 10.96.0.0/16 \
        --authorization-mode Node,RBAC \
        --enable-priority-and-fairness=false \
        --requestheader-client-ca-file "$dir/pki/ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User \
        --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$dir/pki/front-proxy-client.crt" \
        --proxy-client-key-file "$dir/pki/front-proxy-client.key" \
        --enable-aggregator-routing=true \
        ${SURGE_KUBE_APISERVER_ARGS:-} \
        >>"$dir/log/kube-apiserver.log" 2>&1 &
    echo $! >"$dir/pids/kube-apiserver"
    wait_ready "$dir" "$port" 60
}

up() {
    local dir=$1
    shift
    local port=16443
    while [ $# -gt 0 ]; do
        case $1 in
        --port) port=$2; shift 2 ;;
        *) die "unknown option $1 (expected --port P)" ;;
        esac
    done
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65530 ] ||
        die "--port $port: expected 1024 to 65530"
    local p
    for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)); do
        port_free "$p" || die "port $p on 127.0.0.1 is in use (choose another --port)"
    done
    command -v curl >/dev/null 2>&1 || die "curl is not installed: apt-get install curl"
    local bin
    bin=$(build)
    mkdir -p "$dir/log" "$dir/pids" "$dir/etcd"
    dir=$(cd "$dir" && pwd)
    starting=$dir
    certificates "$dir"
    kubeconfig "$dir/admin.kubeconfig" admin "$port"
    kubeconfig "$dir/controller-manager.kubeconfig" controller-manager "$port"

    "$bin/etcd" --name surge-test --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$((port + 1))" \
        --advertise-client-urls "http://127.0.0.1:$((port + 1))" \
        --listen-peer-urls "http://127.0.0.1:$((port + 2))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((port + 2))" \
        --initial-cluster "surge-test=http://127.0.0.1:$((port + 2))" \
        --listen-metrics-urls "" \
        >"$dir/log/etcd.log" 2>&1 &
    echo $! >"$dir/pids/etcd"

    start_apiserver "$dir" "$port" "$bin"

    "$bin/kube-controller-manager" \
        --kubeconfig "$dir/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port $((port + 3)) \
        --root-ca-file "$dir/pki/ca.crt" \
        --service-account-private-key-file "$dir/pki/sa.key" \
        --use-service-account-credentials \
        --cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key" \
        --leader-elect=false \
        --controllers '*' \
        >"$dir/log/kube-controller-manager.log" 2>&1 &
    echo $! >"$dir/pids/kube-controller-manager"
    sleep 1
    kill -0 "$(cat "$dir/pids/kube-controller-manager")" 2>/dev/null ||
        die "kube-controller-manager exited; see $dir/log/kube-controller-manager.log"

    cat >"$dir/cluster.env" <<ENV
SURGE_KUBE_PORT=$port
SURGE_KUBE_SERVER=https://127.0.0.1:$port
SURGE_KUBECONFIG=$dir/admin.kubeconfig
SURGE_KUBE_CA=$dir/pki/ca.crt
SURGE_METRICS_SERVER=$bin/metrics-server-$metrics_server_release
ENV
    starting=""
    echo "cluster.sh: control plane up: https://127.0.0.1:$port (kubeconfig $dir/admin.kubeconfig)"
}

stop() { # dir name: SIGTERM, SIGKILL after 5 s
    local dir=$1 name=$2 pid
    [ -f "$dir/pids/$name" ] || return 0
    pid=$(cat "$dir/pids/$name")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pids/$name"
}

down() {
    local dir=$1 name
    [ -d "$dir/pids" ] || die "$dir holds no pids (was it started with up?)"
    for name in kube-controller-manager kube-apiserver etcd; do
        stop "$dir" "$name"
    done
}

# An API server restart (an upgrade, a failover): every watch it served
# ends, and clients must resume without losing an event.
restart_apiserver() {
    local dir=$1 port bin
    [ -f "$dir/cluster.env" ] || die "$dir holds no cluster.env (was it started with up?)"
    port=$(sed -n 's/^SURGE_KUBE_PORT=//p' "$dir/cluster.env")
    bin=$(build)
    stop "$dir" kube-apiserver
    start_apiserver "$dir" "$port" "$bin"
    echo "cluster.sh: API server restarted on https://127.0.0.1:$port"
}

case ${1:-} in
build) build ;;
up) [ $# -ge 2 ] || die "usage: cluster.sh up DIR [--port P]"; up "${@:2}" ;;
down) [ $# -eq 2 ] || die "usage: cluster.sh down DIR"; down "$2" ;;
restart-apiserver) [ $# -eq 2 ] || die "usage: cluster.sh restart-apiserver DIR"; restart_apiserver "$2" ;;
*) die "usage: cluster.sh build | up DIR [--port P] | down DIR | restart-apiserver DIR" ;;
esac
