# standby.sh — sourced by cluster.sh: a streaming standby of the primary.
#
#   PostgreSQL (primary) → streaming → PostgreSQL hot standby ← reader HAPI
#
# `cluster.sh up DIR --standby sync|async [--standby-delay MS]` starts it;
# `cluster.sh standby DIR sync|async [--standby-delay MS]` switches a running
# cluster's standby between the two without a restart: synchronous_commit
# and synchronous_standby_names on the primary, recovery_min_apply_delay on
# the standby (in DIR/pg-standby/surge-standby.conf, so a reload takes it),
# each waited for until PostgreSQL itself reports it.
#
# Uses from cluster.sh: dir, bin, as_db, die, wait_port.

# Checks a mode and a delay as `up` and `standby` take them.
standby_check() { # mode delay_ms
    case $1 in async | sync) ;; *) die "the standby must be async or sync, got '$1'" ;; esac
    [[ $2 =~ ^[0-9]+$ ]] || die "--standby-delay must be a whole number, got '$2'"
    [ "$2" -le 60000 ] || die "--standby-delay must be 0..60000 ms, got $2"
    if [ "$2" -gt 0 ] && [ "$1" != async ]; then
        die "--standby-delay needs async (a synchronous standby's delay would hold every commit)"
    fi
}

# A base backup of the primary (-R: it starts as a standby streaming from
# it, initdb's pg_hba trusting replication on loopback), named `standby` to
# the primary, holding back no row a query of its own still reads
# (hot_standby_feedback); then `standby_mode`.
standby_up() { # pg_port standby_port max_conn mode delay_ms
    local pg_port=$1 standby_port=$2 max_conn=$3 t=0
    mkdir -m 700 "$dir/pg-standby"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pg-standby"
    "${as_db[@]}" "$bin/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U hapi -D "$dir/pg-standby" -R -X stream \
        >"$dir/log/pg_basebackup.log" 2>&1 || die "pg_basebackup failed (see $dir/log/pg_basebackup.log)"
    # The replay delay lives in a file of its own, so `standby` can change it
    # with a reload (a -c setting would outrank any file).
    echo "include_if_exists = 'surge-standby.conf'" >>"$dir/pg-standby/postgresql.conf"
    "${as_db[@]}" "$bin/postgres" -D "$dir/pg-standby" -p "$standby_port" -k "$dir/run" \
        -c listen_addresses=127.0.0.1 -c max_connections="$max_conn" \
        -c cluster_name=standby -c hot_standby_feedback=on \
        -c "primary_conninfo=host=127.0.0.1 port=$pg_port user=hapi application_name=standby" \
        >"$dir/log/postgres-standby.log" 2>&1 &
    echo "postgres-standby $!" >>"$dir/pids"
    wait_port postgres-standby "$standby_port" $! 60
    until [ "$(standby_sql "$pg_port" "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'")" = 1 ]; do
        [ $t -ge 300 ] && die "the standby is not streaming from the primary within 60 s (see $dir/log/postgres-standby.log)"
        sleep 0.2; t=$((t + 1))
    done
    standby_mode "$pg_port" "$standby_port" "$4" "$5"
}

standby_sql() { # port sql
    "${as_db[@]}" "$bin/psql" -At -h 127.0.0.1 -p "$1" -U hapi -d hapi -v ON_ERROR_STOP=1 -c "$2"
}

# sync: a commit returns once the standby has replayed it
# (synchronous_commit = remote_apply); async: it is not waited for, and the
# standby replays each commit delay_ms after it was made.
standby_mode() { # pg_port standby_port mode delay_ms
    local pg_port=$1 standby_port=$2 mode=$3 delay=$4 names="" commit=on state t=0
    standby_check "$mode" "$delay"
    [ "$mode" = sync ] && names=standby commit=remote_apply
    echo "recovery_min_apply_delay = '${delay}ms'" >"$dir/pg-standby/surge-standby.conf"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pg-standby/surge-standby.conf"
    standby_sql "$standby_port" "SELECT pg_reload_conf()" >/dev/null \
        || die "the standby did not reload its configuration"
    until [ "$(standby_sql "$standby_port" "SHOW recovery_min_apply_delay")" = "$(standby_delay_shown "$delay")" ]; do
        [ $t -ge 100 ] && die "the standby did not take recovery_min_apply_delay = ${delay}ms within 20 s"
        sleep 0.2; t=$((t + 1))
    done
    {
        standby_sql "$pg_port" "ALTER SYSTEM SET synchronous_standby_names = '$names'" &&
            standby_sql "$pg_port" "ALTER SYSTEM SET synchronous_commit = '$commit'" &&
            standby_sql "$pg_port" "SELECT pg_reload_conf()"
    } >"$dir/log/standby-mode.log" 2>&1 || die "making the standby $mode failed (see $dir/log/standby-mode.log)"
    t=0
    until state=$(standby_sql "$pg_port" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'") \
        && [ "$state" = "$mode" ]; do
        [ $t -ge 100 ] && die "the primary did not take the standby as $mode within 20 s (sync_state '$state')"
        sleep 0.2; t=$((t + 1))
    done
}

# How PostgreSQL shows a delay of `ms` milliseconds (SHOW picks the unit).
standby_delay_shown() { # ms
    local ms=$1
    if [ "$ms" = 0 ]; then echo 0
    elif [ $((ms % 60000)) = 0 ]; then echo "$((ms / 60000))min"
    elif [ $((ms % 1000)) = 0 ]; then echo "$((ms / 1000))s"
    else echo "${ms}ms"
    fi
}

# `cluster.sh standby DIR sync|async [--standby-delay MS]`.
standby_switch() {
    dir=$1; shift
    local mode=${1:-} delay=0
    shift || true
    while [ $# -gt 0 ]; do
        case $1 in
        --standby-delay) [ $# -ge 2 ] || die "--standby-delay needs a value"; delay=$2; shift 2 ;;
        *) die "unknown option $1 (usage: cluster.sh standby DIR sync|async [--standby-delay MS])" ;;
        esac
    done
    standby_check "$mode" "$delay"
    [ -f "$dir/cluster.env" ] || die "$dir holds no cluster (no $dir/cluster.env)"
    dir=$(cd "$dir" && pwd)
    local pg_port standby_port
    pg_port=$(sed -n 's/^PG_PORT=//p' "$dir/cluster.env")
    standby_port=$(sed -n 's/^STANDBY_PORT=//p' "$dir/cluster.env")
    [ -n "$standby_port" ] || die "$dir's cluster has no standby (start it with --standby)"
    bin=$(pg_bin)
    cd /
    standby_mode "$pg_port" "$standby_port" "$mode" "$delay"
    sed -i -e "s/^STANDBY=.*/STANDBY=$mode/" -e "s/^STANDBY_DELAY_MS=.*/STANDBY_DELAY_MS=$delay/" "$dir/cluster.env"
    if [ "$delay" -gt 0 ]; then echo "standby: $mode, replaying each commit $delay ms late"; else echo "standby: $mode"; fi
}
