# patroni.sh — sourced by cluster.sh: the database as a Patroni HA pair.
#
#   etcd (Patroni's store) ← Patroni pg0, pg1 (each a PostgreSQL it runs)
#     ← HAProxy on PG_PORT, TCP, checking each Patroni's /primary
#     ← pgBouncer ← HAPI (as without --patroni)
#
# Everything runs as the database user, on loopback, in DIR; stopped by the
# pids in DIR/pids. `cluster.sh kill-primary DIR` kills the leader as a node
# failure would (its Patroni, its postmaster and every backend, SIGKILL);
# with `--stall MS` the standby's link to it is cut MS before, as a primary
# cut off from its standby before it died: asynchronous replication then
# loses the commits of those MS, while synchronous commits wait
# unacknowledged. The standby streams from pg0 through a TCP relay of its
# own (pg0's connect_address, an HAProxy); the cut kills the relay, so the
# stream breaks and the standby cannot reconnect. (Stopping the standby's
# WAL receiver would not do: with SIGSTOP the kernel keeps taking the
# stream into its socket buffer, and a receiver ended reconnects at once.)
#
# Uses from cluster.sh: dir, bin, as_db, port, replicas, max_conn, die,
# wait_port.

# Ports after the replicas': pg0, pg1, their REST APIs, etcd client, peer.
patroni_ports() {
    local base=$((port + 3 + replicas))
    pg_ports=("$base" $((base + 1)))
    rest_ports=($((base + 2)) $((base + 3)))
    etcd_port=$((base + 4)) etcd_peer=$((base + 5)) relay_port=$((base + 6))
}

patroni_up() { # async|sync
    local mode=$1 i t
    command -v patroni >/dev/null 2>&1 || die "patroni not found: apt-get install patroni"
    command -v etcd >/dev/null 2>&1 || die "etcd not found: apt-get install etcd-server"
    patroni_ports
    mkdir -p "$dir/patroni" "$dir/etcd"
    chmod 700 "$dir/etcd"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/patroni" "$dir/etcd"
    "${as_db[@]}" etcd --name e0 --data-dir "$dir/etcd/data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "e0=http://127.0.0.1:$etcd_peer" >"$dir/log/etcd.log" 2>&1 &
    echo "etcd $!" >>"$dir/pids"
    wait_port etcd "$etcd_port" $! 30
    local sync=false
    [ "$mode" = sync ] && sync=true
    # pg0 is reached by its standby through the relay.
    local connect=("$relay_port" "${pg_ports[1]}")
    cat >"$dir/haproxy-relay.cfg" <<EOF
global
    maxconn 64
defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
listen relay
    bind 127.0.0.1:$relay_port
    server pg0 127.0.0.1:${pg_ports[0]}
EOF
    local haproxy; haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
    "$haproxy" -f "$dir/haproxy-relay.cfg" -db >"$dir/log/haproxy-relay.log" 2>&1 &
    echo "haproxy-relay $!" >>"$dir/pids"
    wait_port haproxy-relay "$relay_port" $! 30
    for i in 0 1; do
        # ttl 10 s (the leader key's life, so the failover's bound), a loop
        # every second; async may promote a standby up to 16 MB behind.
        cat >"$dir/patroni/pg$i.yml" <<EOF
scope: surge
name: pg$i
restapi:
  listen: 127.0.0.1:${rest_ports[$i]}
  connect_address: 127.0.0.1:${rest_ports[$i]}
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 16777216
    synchronous_mode: $sync
    # Strict: the primary never drops its synchronous standby to keep
    # writing (commits wait instead), so that standby stays the one Patroni
    # may promote. Without it a standby cut off is dropped, commits go on
    # unreplicated, and no member may be promoted: the cluster stays down.
    synchronous_mode_strict: $sync
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: $max_conn
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - auth: trust
    - username: hapi
  pg_hba:
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${pg_ports[$i]}
  connect_address: 127.0.0.1:${connect[$i]}
  data_dir: $dir/patroni/pg$i
  bin_dir: $bin
  pgpass: $dir/run/pgpass$i
  authentication:
    superuser:
      username: hapi
    replication:
      username: hapi
  parameters:
    unix_socket_directories: $dir/run
EOF
    done
    [ "$(id -u)" = 0 ] && chown postgres "$dir/patroni"/*.yml
    # pg0 bootstraps (initdb) and leads; pg1 then clones it.
    "${as_db[@]}" patroni "$dir/patroni/pg0.yml" >"$dir/log/patroni-pg0.log" 2>&1 &
    echo "patroni-pg0 $!" >>"$dir/pids"
    patroni_wait "${rest_ports[0]}" primary 60 pg0
    "${as_db[@]}" patroni "$dir/patroni/pg1.yml" >"$dir/log/patroni-pg1.log" 2>&1 &
    echo "patroni-pg1 $!" >>"$dir/pids"
    patroni_wait "${rest_ports[1]}" replica 120 pg1
    [ "$mode" = sync ] && patroni_wait "${rest_ports[1]}" sync 60 pg1
    # Only now: a strictly synchronous primary commits nothing without its
    # standby.
    "${as_db[@]}" "$bin/createdb" -h 127.0.0.1 -p "${pg_ports[0]}" -U hapi hapi

    # HAProxy for the database: TCP to whichever member's Patroni says it
    # is the primary; sessions on a member marked down are cut, so pgBouncer
    # reconnects to the new primary.
    cat >"$dir/haproxy-db.cfg" <<EOF
global
    maxconn 1024
defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 2s
listen postgres
    bind 127.0.0.1:$pg_port
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
    server pg0 127.0.0.1:${pg_ports[0]} check port ${rest_ports[0]}
    server pg1 127.0.0.1:${pg_ports[1]} check port ${rest_ports[1]}
EOF
    "$haproxy" -f "$dir/haproxy-db.cfg" -db >"$dir/log/haproxy-db.log" 2>&1 &
    echo "haproxy-db $!" >>"$dir/pids"
    wait_port haproxy-db "$pg_port" $! 30
    t=0
    until "${as_db[@]}" "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do
        [ $t -ge 100 ] && die "HAProxy found no primary within 20 s (see $dir/log/haproxy-db.log)"
        sleep 0.2; t=$((t + 1))
    done
}

patroni_wait() { # rest-port endpoint seconds name
    local t=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/$2")" = 200 ]; do
        [ $t -ge $(($3 * 5)) ] && die "$4 is not $2 within $3 s (see $dir/log/patroni-$4.log)"
        sleep 0.2; t=$((t + 1))
    done
}

# The processes whose parent is $1.
children_of() {
    awk -v p="$1" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null
}

kill_primary() { # DIR [--stall MS]
    dir=$1; shift
    local stall=0
    while [ $# -gt 0 ]; do
        case $1 in
        --stall) stall=${2:-}; shift 2 || die "--stall needs a value" ;;
        *) die "unknown option $1 (kill-primary DIR [--stall MS])" ;;
        esac
    done
    [[ $stall =~ ^[0-9]+$ ]] && [ "$stall" -le 60000 ] || die "--stall must be 0..60000 ms, got '$stall'"
    [ -f "$dir/cluster.env" ] || die "$dir holds no cluster"
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
    [ -n "${PATRONI_REST_PORTS:-}" ] || die "$dir is not a --patroni cluster"
    local rest=($PATRONI_REST_PORTS) leader="" other="" i
    for i in 0 1; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${rest[$i]}/primary")" = 200 ]; then
            leader=pg$i other=pg$((1 - i))
        fi
    done
    [ -n "$leader" ] || die "no member answers as the primary"
    local patroni postmaster
    patroni=$(awk -v n="patroni-$leader" '$1 == n { print $2 }' "$dir/pids" | tail -1)
    postmaster=$(head -1 "$dir/patroni/$leader/postmaster.pid")
    local relay=""
    if [ "$stall" -gt 0 ]; then
        [ "$leader" = pg0 ] || die "only pg0's standby streams through the relay that --stall cuts"
        relay=$(awk '$1 == "haproxy-relay" { print $2 }' "$dir/pids" | tail -1)
        kill -KILL "$relay"
        sleep "$(awk -v ms="$stall" 'BEGIN { printf "%.3f", ms / 1000 }')"
    fi
    # The node dies: Patroni, the postmaster and every backend at once.
    kill -KILL "$patroni" "$postmaster" $(children_of "$postmaster") 2>/dev/null || true
    echo "$leader $(date +%s%3N)" >"$dir/killed-primary"
    echo "killed the primary $leader (Patroni $patroni, postmaster $postmaster)${relay:+, $stall ms after cutting $other off}"
}
