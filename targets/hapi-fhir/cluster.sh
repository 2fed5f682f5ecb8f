#!/usr/bin/env bash
# cluster.sh — a real HAPI FHIR cluster on loopback, for surge to test:
#
#   PostgreSQL (private data dir and port) ← pgBouncer (transaction pooling)
#     ← N HAPI FHIR JPA replicas (JVMs, HikariCP) ← HAProxy (round robin)
#
#   with --standby, also: a streaming standby of that PostgreSQL ← a reader
#     HAPI on it, to which HAProxy sends every read by id and every search
#
#   targets/hapi-fhir/cluster.sh up DIR [options]   start, wait until every
#                                                  replica answers /fhir/metadata
#   targets/hapi-fhir/cluster.sh down DIR           stop what `up` started (by pid)
#   targets/hapi-fhir/cluster.sh build              build the app (mvn package)
#   targets/hapi-fhir/cluster.sh standby DIR sync|async [--standby-delay MS]
#                                                  with --standby: switch the
#                                                  running standby (standby.sh)
#   targets/hapi-fhir/cluster.sh kill-primary DIR [--stall MS]
#                                                  with --patroni: kill the
#                                                  database's primary node
#                                                  (patroni.sh says how)
#
# Options of `up`:
#   --replicas N        HAPI replicas (default 3)
#   --pool N            HikariCP maximum-pool-size per replica (default 5)
#   --bouncer-pool N    pgBouncer default_pool_size (default 20)
#   --max-connections N PostgreSQL max_connections (default 30)
#   --binary db|fs      Binary storage: the database (shared by every replica)
#                       or a folder per replica (HAPI's filesystem storage:
#                       an upload is only on the replica that took it)
#   --port P            HAProxy's port; the others follow it: P+1 PostgreSQL,
#                       P+2 pgBouncer, P+3+i replica ri; with --standby,
#                       P+3+N the standby and P+4+N the reader (default 18080)
#   --heap SIZE         each JVM's -Xmx (default 512m; 256m runs out on the
#                       first $validate)
#   --db-delay MS       every write of a resource waits MS milliseconds inside
#                       PostgreSQL (a trigger calling pg_sleep on HAPI's
#                       resource table), holding its connection as a database
#                       across a network or under other load does; default 0.
#                       On a 2-core machine HAPI's own CPU otherwise bounds
#                       the load before the pools do.
#   --standby async|sync
#                       a hot standby (pg_basebackup -R, streaming) and one
#                       more HAPI, the reader, on it: HAProxy sends GET
#                       /fhir/{type}/{id} and GET /fhir/{type}?… there, the
#                       rest to the replicas, as a read datasource on a
#                       replica does. HAPI reads by id in read-write
#                       transactions and pages searches through HFJ_SEARCH,
#                       so the reader is a HAPI of its own: no paging
#                       provider (searches answer whole, in one read-only
#                       transaction), no schema update, no scheduled jobs, a
#                       read-only pool. sync: synchronous_commit=remote_apply
#                       (a write is replayed on the standby before it is
#                       acknowledged); async: it is not waited for.
#   --patroni async|sync
#                       the database as a Patroni pair over etcd, HAProxy on
#                       P+1 sending to the primary (see patroni.sh); sync is
#                       Patroni's synchronous_mode. Not with --standby.
#   --standby-delay MS  async only: the standby replays each commit MS later
#                       (recovery_min_apply_delay), so lag is visible; 0..60000
#   --seed DIR | --no-seed
#                       load every *.json transaction Bundle in DIR through
#                       the first replica (default fixtures/fhir/seed: 3,000
#                       Patients in six transaction Bundles)
#
# DIR receives everything: data, configs, logs (DIR/log), pids (DIR/pids),
# DIR/cluster.env (the ports, for scripts and tests) and DIR/replicas (one
# file per replica: pid=, url=, ready_at_ms=). Each replica's JVM runs under a
# supervisor that restarts it when it dies, as a ReplicaSet would (start-up
# times in DIR/log/supervisor.log), so `surge run --chaos kill-pod@20s
# --chaos-backend local --replica-dir DIR/replicas` kills a real JVM. Everything binds to
# 127.0.0.1. Maven's local repository (~/.m2) is reused between runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jar="$here/target/surge-hapi-fhir.jar"

die() { echo "cluster.sh: $*" >&2; exit 2; }

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] && { echo "$d"; return; }
    done
    die "PostgreSQL not found (/usr/lib/postgresql/*/bin/postgres): apt-get install postgresql"
}

# PostgreSQL and pgBouncer refuse to run as root; as root they run as the
# Debian `postgres` user. setpriv execs (no process in between) and the
# servers are started as plain commands, not through a function, so the pid
# recorded is the server's own.
as_db=()
if [ "$(id -u)" = 0 ]; then
    as_db=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

build() {
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found: install Maven 3.8+ and Java 17"
    command -v java >/dev/null 2>&1 || die "java not found: install Java 17"
    # Rebuild only when a source is newer than the jar.
    if [ -f "$jar" ] && [ -z "$(find "$here/pom.xml" "$here/src" -newer "$jar" -print -quit)" ]; then
        return
    fi
    echo "cluster.sh: building the HAPI FHIR app (mvn package; the first build downloads ~300 MB)" >&2
    # -B: no progress bars; a network failure ends Maven with an error rather
    # than a hang: connect and read timeouts of 30 s.
    if ! mvn -B -q -f "$here/pom.xml" -DskipTests \
        -Dmaven.wagon.http.connectionTimeout=30000 -Dmaven.wagon.http.readTimeout=30000 \
        package >"$here/target-build.log" 2>&1; then
        tail -30 "$here/target-build.log" >&2
        die "mvn package failed (whole log: $here/target-build.log)"
    fi
    [ -f "$jar" ] || die "mvn package made no $jar"
}

wait_port() { # name port pid-of-process seconds
    local name=$1 port=$2 pid=$3 limit=$4 t=0
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on $port (see $dir/log/$name.log)"
        [ $t -ge $((limit * 10)) ] && die "$name did not listen on $port within ${limit}s (see $dir/log/$name.log)"
        sleep 0.1; t=$((t + 1))
    done
}

up() {
    dir=$1; shift
    local replicas=3 pool=5 bouncer_pool=20 max_conn=30 binary=db port=18080 heap=512m
    local seed="$here/../../fixtures/fhir/seed" db_delay=0 standby="" standby_delay=0 patroni=""
    while [ $# -gt 0 ]; do
        case $1 in
        --replicas) replicas=$2 ;;
        --pool) pool=$2 ;;
        --bouncer-pool) bouncer_pool=$2 ;;
        --max-connections) max_conn=$2 ;;
        --binary) binary=$2 ;;
        --port) port=$2 ;;
        --heap) heap=$2 ;;
        --seed) seed=$2 ;;
        --db-delay) db_delay=$2 ;;
        --standby) standby=$2 ;;
        --standby-delay) standby_delay=$2 ;;
        --patroni) patroni=$2 ;;
        --no-seed) seed=""; shift; continue ;;
        *) die "unknown option $1 (see the head of $0)" ;;
        esac
        [ $# -ge 2 ] || die "$1 needs a value"
        shift 2
    done
    for n in replicas pool bouncer_pool max_conn port db_delay standby_delay; do
        [[ ${!n} =~ ^[0-9]+$ ]] || die "--${n//_/-} must be a whole number, got '${!n}'"
    done
    [ "$replicas" -ge 1 ] && [ "$replicas" -le 8 ] || die "--replicas must be 1..8, got $replicas"
    [ "$pool" -ge 1 ] && [ "$pool" -le 100 ] || die "--pool must be 1..100, got $pool"
    [ "$port" -ge 1024 ] && [ "$port" -le 65000 ] || die "--port must be 1024..65000, got $port"
    [ "$db_delay" -le 1000 ] || die "--db-delay must be 0..1000 ms, got $db_delay"
    case $binary in db | fs) ;; *) die "--binary must be db or fs, got '$binary'" ;; esac
    [ -z "$standby" ] || standby_check "$standby" "$standby_delay"
    [ -n "$standby" ] || [ "$standby_delay" = 0 ] || die "--standby-delay needs --standby async"
    case $patroni in "" | async | sync) ;; *) die "--patroni must be async or sync, got '$patroni'" ;; esac
    if [ -n "$standby" ] && [ "$binary" = fs ]; then
        die "--standby reads Binary content from the database's standby: it needs --binary db"
    fi
    if [ -n "$patroni" ] && [ -n "$standby" ]; then
        die "--patroni and --standby are two database tiers: give one"
    fi
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || die "haproxy not found: apt-get install haproxy"
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || die "pgbouncer not found: apt-get install pgbouncer"
    local bin; bin=$(pg_bin)
    if [ ${#as_db[@]} -gt 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (apt-get install postgresql)"
    fi
    build

    [ -e "$dir/pids" ] && die "$dir already holds a cluster (cluster.sh down $dir first)"
    mkdir -p "$dir/log" "$dir/run"
    dir=$(cd "$dir" && pwd)
    if [ ${#as_db[@]} -gt 0 ]; then
        # The database servers run as `postgres`, who must reach DIR.
        local up_dir=$dir
        while [ "$up_dir" != / ]; do
            up_dir=$(dirname "$up_dir")
            setpriv --reuid=postgres --regid=postgres --init-groups -- test -x "$up_dir" \
                || die "the postgres user cannot enter $up_dir (mode $(stat -c %a "$up_dir")): put DIR where it can, e.g. under /tmp, or chmod o+x $up_dir"
        done
    fi
    # The database servers may not enter the caller's working directory.
    cd /
    : >"$dir/pids"
    # Whatever fails from here on, stop what was started.
    trap 'down "$dir" >/dev/null 2>&1 || true' EXIT
    local pg_port=$((port + 1)) bouncer_port=$((port + 2))
    chmod 755 "$dir"
    mkdir -m 700 "$dir/pg"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir/log" "$dir/run" "$dir/pg"; fi

    if [ -n "$patroni" ]; then
        patroni_up "$patroni"
    else
        # PostgreSQL: its own data dir, port and socket dir; trust on loopback.
        "${as_db[@]}" "$bin/initdb" -D "$dir/pg" -U hapi --auth=trust -E UTF8 >"$dir/log/initdb.log" 2>&1 \
            || die "initdb failed (see $dir/log/initdb.log)"
        "${as_db[@]}" "$bin/postgres" -D "$dir/pg" -p "$pg_port" -k "$dir/run" \
            -c listen_addresses=127.0.0.1 -c max_connections="$max_conn" >"$dir/log/postgres.log" 2>&1 &
        echo "postgres $!" >>"$dir/pids"
        wait_port postgres "$pg_port" $! 60
        until "${as_db[@]}" "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do sleep 0.2; done
        "${as_db[@]}" "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U hapi hapi

        local standby_port=$((port + 3 + replicas)) reader_port=$((port + 4 + replicas))
        if [ -n "$standby" ]; then
            standby_up "$pg_port" "$standby_port" "$max_conn" "$standby" "$standby_delay"
        fi
    fi

    # pgBouncer, transaction pooling: the JDBC URL turns server-side prepared
    # statements off (prepareThreshold=0) because pgBouncer 1.18 cannot carry
    # them across server connections.
    echo '"hapi" ""' >"$dir/run/users.txt"
    cat >"$dir/run/pgbouncer.ini" <<EOF
[databases]
hapi = host=127.0.0.1 port=$pg_port dbname=hapi user=hapi
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/run/users.txt
admin_users = hapi
stats_users = hapi
pool_mode = transaction
# After a failover, reconnect within a second, not pgBouncer's default 15 s.
server_login_retry = 1
default_pool_size = $bouncer_pool
# Open the server connections before the load comes, so a client waits only
# when all of them are busy, not while one is being opened.
min_pool_size = $bouncer_pool
max_client_conn = 200
logfile = $dir/log/pgbouncer.log
pidfile =
EOF
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir/run"
    "${as_db[@]}" pgbouncer "$dir/run/pgbouncer.ini" >>"$dir/log/pgbouncer.out" 2>&1 &
    echo "pgbouncer $!" >>"$dir/pids"
    wait_port pgbouncer "$bouncer_port" $! 30

    # The schema is created once, by the first replica, before the others start.
    local ports=() i
    for ((i = 0; i < replicas; i++)); do ports+=($((port + 3 + i))); done
    # Each replica runs under a supervisor of its own that restarts its JVM
    # whenever it exits, as a ReplicaSet would, and keeps DIR/replicas/rI
    # (pid=, url=, and ready_at_ms= once /fhir/metadata answers) for
    # `surge run --chaos-backend local --replica-dir DIR/replicas`.
    mkdir -p "$dir/replicas"
    start_replica() {
        mkdir -p "$dir/binaries/r$1"
        supervise "r$1" "${ports[$1]}" \
            --surge.binary-directory="$dir/binaries/r$1" \
            --spring.datasource.url="jdbc:postgresql://127.0.0.1:$bouncer_port/hapi?prepareThreshold=0" \
            >>"$dir/log/supervisor.log" 2>&1 </dev/null &
        echo "r$1 $!" >>"$dir/pids"
    }
    # The reader: HAPI on the standby, straight to it (a standby takes no
    # writes to pool), its pool read-only.
    start_reader() {
        supervise reader "$reader_port" \
            --surge.reader=true \
            --spring.datasource.url="jdbc:postgresql://127.0.0.1:$standby_port/hapi" \
            --spring.datasource.hikari.read-only=true \
            >>"$dir/log/supervisor.log" 2>&1 </dev/null &
        echo "reader $!" >>"$dir/pids"
    }
    supervise() { # name port java-arguments...
        local name=$1 p=$2 child="" launched ready_ms backoff=1 ever_ready="" system=()
        shift 2
        # HAPI's scheduled jobs (search expiry, reindexing) write.
        [ "$name" = reader ] && system=(-Dscheduling_disabled=true)
        trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 0' TERM
        while :; do
            launched=$(date +%s%3N)
            java -Xmx"$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k "${system[@]}" \
                -jar "$jar" \
                --server.address=127.0.0.1 --server.port="$p" \
                --surge.replica-name="$name" \
                --surge.binary-storage="$binary" \
                --spring.datasource.username=hapi \
                --spring.datasource.hikari.maximum-pool-size="$pool" \
                "$@" >>"$dir/log/$name.log" 2>&1 &
            child=$!
            publish "$name" "pid=$child" "url=http://127.0.0.1:$p"
            until curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$p/fhir/metadata"; do
                alive "$child" || break
                sleep 0.2
            done
            if alive "$child"; then
                ready_ms=$(date +%s%3N)
                publish "$name" "pid=$child" "url=http://127.0.0.1:$p" "ready_at_ms=$ready_ms"
                echo "$name pid $child ready $((ready_ms - launched)) ms after launch" >>"$dir/log/supervisor.log"
                ever_ready=1 backoff=1
            fi
            wait "$child" || true
            if [ -z "$ever_ready" ]; then
                # The first start failed: `up` reports it; no crash loop.
                echo "$name pid $child exited before it ever served" >>"$dir/log/supervisor.log"
                : >"$dir/replicas/.$name.failed"
                exit 1
            fi
            echo "$name pid $child exited; restarting in ${backoff}s" >>"$dir/log/supervisor.log"
            sleep "$backoff"
            backoff=$((backoff < 16 ? backoff * 2 : 30))
        done
    }
    # A replica file is replaced whole, so a reader never sees half of one.
    publish() {
        local name=$1; shift
        printf '%s\n' "$@" >"$dir/replicas/.$name.tmp"
        mv -f "$dir/replicas/.$name.tmp" "$dir/replicas/$name"
    }
    # Alive and not a zombie (a killed child stays one until its supervisor
    # reaps it).
    alive() {
        local state
        state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]
    }
    wait_metadata() { # name
        local name=$1 t=0
        until grep -q '^ready_at_ms=' "$dir/replicas/$name" 2>/dev/null; do
            if [ -e "$dir/replicas/.$name.failed" ]; then
                tail -20 "$dir/log/$name.log" >&2
                die "$name exited while starting (see $dir/log/$name.log)"
            fi
            [ $t -ge 1500 ] && die "$name did not answer /fhir/metadata within 300 s (see $dir/log/$name.log)"
            sleep 0.2; t=$((t + 1))
        done
    }
    start_replica 0
    wait_metadata r0
    if [ -n "$seed" ]; then
        local bundle n=0
        [ -d "$seed" ] || die "--seed $seed is not a folder"
        for bundle in "$seed"/*.json; do
            [ -f "$bundle" ] || die "--seed $seed holds no *.json Bundle"
            local code
            code=$(curl -s -o "$dir/log/seed.out" -w "%{http_code}" --max-time 300 \
                -H "Content-Type: application/fhir+json" --data-binary "@$bundle" \
                "http://127.0.0.1:${ports[0]}/fhir") || code=000
            [ "$code" = 200 ] || die "seeding $bundle answered $code (see $dir/log/seed.out)"
            n=$((n + 1))
        done
        echo "cluster.sh: seeded $n Bundle(s) from $seed" >&2
    fi
    if [ "$db_delay" -gt 0 ]; then
        # After the first replica made the schema (and after seeding, which
        # need not wait).
        "${as_db[@]}" "$bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U hapi -d hapi -v ON_ERROR_STOP=1 \
            -c "CREATE FUNCTION surge_db_delay() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep($db_delay / 1000.0); RETURN NEW; END \$\$" \
            -c "CREATE TRIGGER surge_db_delay AFTER INSERT OR UPDATE ON hfj_resource FOR EACH ROW EXECUTE FUNCTION surge_db_delay()" \
            >"$dir/log/db-delay.log" 2>&1 || die "installing --db-delay failed (see $dir/log/db-delay.log)"
    fi
    for ((i = 1; i < replicas; i++)); do start_replica "$i"; done
    if [ -n "$standby" ]; then
        # The reader makes no schema: it starts once the standby has
        # replayed all r0 wrote by now, the whole schema (after
        # --standby-delay).
        local lsn
        lsn=$("${as_db[@]}" "$bin/psql" -At -h 127.0.0.1 -p "$pg_port" -U hapi -d hapi -c "SELECT pg_current_wal_lsn()")
        t=0
        until [ "$("${as_db[@]}" "$bin/psql" -At -h 127.0.0.1 -p "$standby_port" -U hapi -d hapi \
            -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do
            [ $t -ge $((600 + standby_delay / 100)) ] && die "the standby has not replayed the HAPI schema $((60 + standby_delay / 1000)) s after r0 made it"
            sleep 0.1; t=$((t + 1))
        done
        start_reader
    fi
    for ((i = 1; i < replicas; i++)); do wait_metadata "r$i"; done
    [ -n "$standby" ] && wait_metadata reader
    # A fresh JVM's first $validate loads the R4 StructureDefinitions (2-5 s
    # here); one per replica now, so a test measures the server, not its
    # first request.
    local warm="$here/../../fixtures/fhir/patient-valid.json"
    for ((i = 0; i < replicas; i++)); do
        curl -s -o /dev/null --max-time 120 -H "Content-Type: application/fhir+json" \
            --data-binary "@$warm" "http://127.0.0.1:${ports[$i]}/fhir/Patient/\$validate" \
            || die "replica r$i did not answer its warm-up \$validate (see $dir/log/r$i.log)"
    done

    # HAProxy in front, round robin, naming the replica that served each answer.
    {
        echo "global"
        echo "    maxconn 4096"
        echo "defaults"
        echo "    mode http"
        echo "    timeout connect 5s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        # A check answered slowly by a busy JVM is not a dead replica (the
        # default check timeout is the 1 s interval); a refused one still is.
        echo "    timeout check 5s"
        echo "frontend fhir"
        echo "    bind 127.0.0.1:$port"
        if [ -n "$standby" ]; then
            # Reads by id and searches (the path without its query) go to
            # the reader; metadata, operations and every write do not.
            echo "    acl read method GET HEAD"
            echo "    acl by_id_or_search path_reg ^/fhir/[A-Z][A-Za-z]*(/[A-Za-z0-9.-]{1,64})?\$"
            echo "    use_backend reader if read by_id_or_search"
        fi
        echo "    default_backend replicas"
        if [ -n "$standby" ]; then
            echo "backend reader"
            echo "    option httpchk GET /fhir/metadata"
            echo "    http-response set-header X-Served-By %s"
            echo "    server reader 127.0.0.1:$reader_port check inter 1s fall 2 rise 2"
        fi
        echo "backend replicas"
        echo "    balance roundrobin"
        # A request whose connection is refused (its replica just died) goes
        # to another replica: only requests already in flight are lost, as
        # behind a Kubernetes Service. Checks every second take a dead
        # replica out and a restarted one back in.
        echo "    retries 3"
        echo "    option redispatch 1"
        echo "    option httpchk GET /fhir/metadata"
        echo "    http-response set-header X-Served-By %s"
        for ((i = 0; i < replicas; i++)); do
            echo "    server r$i 127.0.0.1:${ports[$i]} check inter 1s fall 2 rise 2"
        done
    } >"$dir/haproxy.cfg"
    local haproxy; haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
    "$haproxy" -f "$dir/haproxy.cfg" -db >"$dir/log/haproxy.log" 2>&1 &
    echo "haproxy $!" >>"$dir/pids"
    wait_port haproxy "$port" $! 30

    {
        echo "HAPROXY_PORT=$port"
        echo "PG_PORT=$pg_port"
        echo "BOUNCER_PORT=$bouncer_port"
        echo "REPLICA_PORTS=\"${ports[*]}\""
        echo "REPLICAS=$replicas"
        echo "POOL=$pool"
        echo "BOUNCER_POOL=$bouncer_pool"
        echo "BINARY=$binary"
        echo "DB_DELAY_MS=$db_delay"
        if [ -n "$patroni" ]; then
            echo "PATRONI=$patroni"
            echo "PATRONI_PG_PORTS=\"${pg_ports[*]}\""
            echo "PATRONI_REST_PORTS=\"${rest_ports[*]}\""
        fi
        if [ -n "$standby" ]; then
            echo "STANDBY=$standby"
            echo "STANDBY_DELAY_MS=$standby_delay"
            echo "STANDBY_PORT=$standby_port"
            echo "READER_PORT=$reader_port"
        fi
    } >"$dir/cluster.env"
    trap - EXIT
    echo "cluster up: http://127.0.0.1:$port/fhir (replicas ${ports[*]}, pgBouncer $bouncer_port, PostgreSQL $pg_port${standby:+, $standby standby $standby_port, reader $reader_port})"
}

down() {
    local dir=$1 name pid t file
    [ -f "$dir/pids" ] || die "$dir holds no cluster (no $dir/pids)"
    # Newest first: HAProxy, the replicas' and reader's supervisors (each
    # stops its JVM), pgBouncer, the standby, PostgreSQL.
    tac "$dir/pids" | while read -r name pid; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((t = 0; t < 150; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        # A JVM whose supervisor had to be killed is stopped by its own pid.
        file="$dir/replicas/$name"
        if [ -f "$file" ]; then
            pid=$(sed -n 's/^pid=//p' "$file")
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        fi
        # So is a PostgreSQL whose Patroni had to be killed.
        file="$dir/patroni/${name#patroni-}/postmaster.pid"
        if [[ $name == patroni-* ]] && [ -f "$file" ]; then
            pid=$(head -1 "$file")
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$dir/pids"
}

# shellcheck source=patroni.sh
. "$here/patroni.sh"
# shellcheck source=standby.sh
. "$here/standby.sh"

case ${1:-} in
kill-primary) [ $# -ge 2 ] || die "usage: cluster.sh kill-primary DIR [--stall MS]"; shift; kill_primary "$@" ;;
standby) [ $# -ge 3 ] || die "usage: cluster.sh standby DIR sync|async [--standby-delay MS]"; shift; standby_switch "$@" ;;
up) [ $# -ge 2 ] || die "usage: cluster.sh up DIR [options]"; shift; up "$@" ;;
down) [ $# -eq 2 ] || die "usage: cluster.sh down DIR"; down "$2" ;;
build) build ;;
*) die "usage: cluster.sh up DIR [options] | down DIR | build | kill-primary DIR [--stall MS] | standby DIR sync|async [--standby-delay MS]" ;;
esac
