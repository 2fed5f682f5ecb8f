#!/usr/bin/env bash
# cluster.sh — a real three-node MariaDB Galera cluster on loopback, for the
# reference cluster (`surge sim up --galera URL …`) to keep its records in:
#
#   mariadbd n0, n1, n2 (galera-4, wsrep on), each its own data dir and port
#
#   targets/galera/cluster.sh up DIR [--port P] [--sync-wait N]
#                                   start, wait until all three are Synced
#   targets/galera/cluster.sh down DIR   stop what `up` started (by pid)
#   targets/galera/cluster.sh kill DIR NODE
#                                   SIGKILL node NODE's mariadbd, as a node
#                                   failure would; writes DIR/killed
#   targets/galera/cluster.sh sync-wait DIR N
#                                   wsrep_sync_wait = N on every node, for
#                                   connections opened after it
#   targets/galera/cluster.sh pause DIR NODE MS
#                                   hold node NODE's applier for MS ms (it
#                                   leaves flow control first), as a node
#                                   behind a long local lock or a slow disk
#                                   falls behind: commits elsewhere go on, it
#                                   applies them after
#
# Options of `up`:
#   --port P        node i's SQL port is P+i; its group communication P+10+i,
#                   incremental state transfer P+20+i and state transfer
#                   P+30+i (default 13306)
#   --sync-wait N   wsrep_sync_wait on every node, 0..15 (default 0): 0 reads
#                   what the node has applied; 1 makes each read wait until
#                   the node has applied every write the cluster committed
#                   before it
#
# The nodes bootstrap without a state transfer: n0 starts a new cluster and
# makes the `clinic` database and the passwordless user `sim`@127.0.0.1, is
# stopped cleanly, and its data directory is copied to n1 and n2, which then
# join at the same position. Each runs as the `mysql` user when started by
# root. DIR/cluster.env has NODE_PORTS and URLS (mysql://sim@…/clinic).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
NODES=3

die() { echo "galera/cluster.sh: $*" >&2; exit 2; }

as_db=()
if [ "$(id -u)" = 0 ]; then
    id mysql >/dev/null 2>&1 || die "running as root needs the 'mysql' user (apt-get install mariadb-server)"
    as_db=(setpriv --reuid=mysql --regid=mysql --init-groups --)
fi

provider() {
    local p
    for p in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so /usr/lib64/galera-4/libgalera_smm.so; do
        [ -f "$p" ] && { echo "$p"; return; }
    done
    die "the Galera provider (libgalera_smm.so) not found: apt-get install galera-4"
}

node_cnf() { # i
    local i=$1 gcomm="" j
    for ((j = 0; j < NODES; j++)); do gcomm+="${gcomm:+,}127.0.0.1:$((port + 10 + j))"; done
    cat <<CNF
[mysqld]
datadir=$dir/n$i/data
socket=$dir/run/n$i.sock
pid-file=$dir/run/n$i.pid
port=$((port + i))
bind-address=127.0.0.1
skip-name-resolve
log-error=$dir/log/n$i.err
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
max_connections=100
wsrep_on=ON
wsrep_provider=$(provider)
wsrep_cluster_name=surge
wsrep_cluster_address=gcomm://$gcomm
wsrep_node_name=n$i
wsrep_node_address=127.0.0.1:$((port + 10 + i))
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$((port + 10 + i));ist.recv_addr=127.0.0.1:$((port + 20 + i));gcache.size=64M;evs.keepalive_period=PT0.3S;evs.inactive_check_period=PT0.3S;evs.suspect_timeout=PT1S;evs.inactive_timeout=PT3S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$((port + 30 + i))
wsrep_sync_wait=$sync_wait
CNF
}

start_node() { # i [extra mariadbd args]
    local i=$1; shift
    "${as_db[@]}" /usr/sbin/mariadbd --defaults-file="$dir/n$i/my.cnf" "$@" >>"$dir/log/n$i.out" 2>&1 &
    echo "n$i $!" >>"$dir/pids"
}

sql() { # i statement
    mariadb --protocol=socket -S "$dir/run/n$1.sock" -u root -N -B -e "$2"
}

wait_synced() { # i pid
    local i=$1 t=0
    until [ "$(sql "$i" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; do
        kill -0 "$(pid_of "n$i")" 2>/dev/null || die "n$i exited before it was Synced (see $dir/log/n$i.err)"
        [ $t -ge 600 ] && die "n$i was not Synced within 60 s (see $dir/log/n$i.err)"
        sleep 0.1; t=$((t + 1))
    done
}

pid_of() { sed -n "s/^$1 //p" "$dir/pids" | tail -1; }

up() {
    dir=$1; shift
    port=13306 sync_wait=0
    while [ $# -gt 0 ]; do
        case $1 in
        --port) port=${2:-} ;;
        --sync-wait) sync_wait=${2:-} ;;
        *) die "unknown option $1 (see the head of $0)" ;;
        esac
        [ $# -ge 2 ] || die "$1 needs a value"
        shift 2
    done
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65000 ] || die "--port must be 1024..65000, got '$port'"
    [[ $sync_wait =~ ^[0-9]+$ ]] && [ "$sync_wait" -le 15 ] || die "--sync-wait must be 0..15, got '$sync_wait'"
    [ -x /usr/sbin/mariadbd ] || die "mariadbd not found: apt-get install mariadb-server galera-4"
    command -v mariadb-install-db >/dev/null 2>&1 || die "mariadb-install-db not found: apt-get install mariadb-server"
    provider >/dev/null
    [ -e "$dir/pids" ] && die "$dir already holds a cluster (cluster.sh down $dir first)"
    mkdir -p "$dir/log" "$dir/run" "$dir/n0"
    dir=$(cd "$dir" && pwd)
    cd /
    : >"$dir/pids"
    trap 'down "$dir" >/dev/null 2>&1 || true' EXIT
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown mysql "$dir/log" "$dir/run" "$dir/n0"
    node_cnf 0 >"$dir/n0/my.cnf"
    "${as_db[@]}" mariadb-install-db --defaults-file="$dir/n0/my.cnf" --auth-root-authentication-method=socket \
        --skip-test-db >"$dir/log/install.log" 2>&1 || die "mariadb-install-db failed (see $dir/log/install.log)"
    start_node 0 --wsrep-new-cluster
    wait_synced 0
    sql 0 "CREATE DATABASE clinic; CREATE USER 'sim'@'127.0.0.1'; GRANT ALL ON clinic.* TO 'sim'@'127.0.0.1'; GRANT PROCESS ON *.* TO 'sim'@'127.0.0.1'" \
        || die "making the clinic database failed"
    stop_node 0
    for ((i = 1; i < NODES; i++)); do
        mkdir -p "$dir/n$i"
        cp -a "$dir/n0/data" "$dir/n$i/data"
        node_cnf "$i" >"$dir/n$i/my.cnf"
        [ "$(id -u)" = 0 ] && chown -R mysql "$dir/n$i"
        # Only n0 may start the cluster again.
        sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 0/' "$dir/n$i/data/grastate.dat"
    done
    start_node 0 --wsrep-new-cluster
    wait_synced 0
    for ((i = 1; i < NODES; i++)); do start_node "$i"; done
    for ((i = 1; i < NODES; i++)); do wait_synced "$i"; done
    local size
    size=$(sql 0 "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)
    [ "$size" = "$NODES" ] || die "the cluster has $size nodes, not $NODES"
    {
        local ports="" urls=""
        for ((i = 0; i < NODES; i++)); do
            ports+="${ports:+ }$((port + i))"
            urls+="${urls:+ }mysql://sim@127.0.0.1:$((port + i))/clinic"
        done
        echo "NODE_PORTS=\"$ports\""
        echo "URLS=\"$urls\""
        echo "SYNC_WAIT=$sync_wait"
    } >"$dir/cluster.env"
    trap - EXIT
    echo "galera up: $NODES nodes on 127.0.0.1:$port.., wsrep_sync_wait=$sync_wait"
}

stop_node() { # i
    local pid t
    pid=$(pid_of "n$1")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((t = 0; t < 300; t++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    local dir=$1 name pid t
    [ -f "$dir/pids" ] || die "$dir holds no cluster (no $dir/pids)"
    tac "$dir/pids" | while read -r name pid; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((t = 0; t < 300; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$dir/pids"
}

node_arg() { # dir node
    [ -f "$1/pids" ] || die "$1 holds no cluster (no $1/pids)"
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -lt $NODES ] || die "NODE must be 0..$((NODES - 1)), got '$2'"
}

kill_node() { # dir node
    node_arg "$1" "$2"
    dir=$(cd "$1" && pwd)
    local pid; pid=$(pid_of "n$2")
    kill -KILL "$pid" 2>/dev/null || die "n$2 (pid $pid) is not running"
    echo "n$2 $(date +%s.%N)" >"$dir/killed"
    echo "killed n$2 (pid $pid)"
}

# The applier held by FLUSH TABLES WITH READ LOCK, the node first desynced so
# the cluster's flow control does not wait for it.
pause_node() { # dir node ms
    node_arg "$1" "$2"
    [[ ${3:-} =~ ^[0-9]+$ ]] && [ "$3" -le 60000 ] || die "MS must be 0..60000, got '${3:-}'"
    dir=$(cd "$1" && pwd)
    sql "$2" "SET GLOBAL wsrep_desync = ON; FLUSH TABLES WITH READ LOCK; SELECT SLEEP($3 / 1000); UNLOCK TABLES; SET GLOBAL wsrep_desync = OFF" >/dev/null \
        || die "pausing n$2 failed"
}

# wsrep_sync_wait on every live node, for the sessions opened from now on.
set_sync_wait() { # dir n
    [ -f "$1/pids" ] || die "$1 holds no cluster (no $1/pids)"
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -le 15 ] || die "sync-wait must be 0..15, got '$2'"
    dir=$(cd "$1" && pwd)
    local i
    for ((i = 0; i < NODES; i++)); do
        kill -0 "$(pid_of "n$i")" 2>/dev/null || continue
        sql "$i" "SET GLOBAL wsrep_sync_wait = $2" || die "setting wsrep_sync_wait on n$i failed"
    done
    sed -i "s/^SYNC_WAIT=.*/SYNC_WAIT=$2/" "$dir/cluster.env"
}

case ${1:-} in
up) [ $# -ge 2 ] || die "usage: cluster.sh up DIR [options]"; shift; up "$@" ;;
down) [ $# -eq 2 ] || die "usage: cluster.sh down DIR"; down "$2" ;;
kill) [ $# -eq 3 ] || die "usage: cluster.sh kill DIR NODE"; kill_node "$2" "$3" ;;
sync-wait) [ $# -eq 3 ] || die "usage: cluster.sh sync-wait DIR N"; set_sync_wait "$2" "$3" ;;
pause) [ $# -eq 4 ] || die "usage: cluster.sh pause DIR NODE MS"; pause_node "$2" "$3" "$4" ;;
*) die "usage: cluster.sh up DIR [options] | down DIR | kill DIR NODE | pause DIR NODE MS | sync-wait DIR N" ;;
esac
