#!/usr/bin/env bash
# The load engine's five figures (issue 16), side by side in one run, against
# one trivial endpoint on loopback (a reference-cluster replica's /healthz):
#
#   1. throughput, closed model, 50 connections, full recording: wrk, oha
#      (if installed), bare reqwest (examples/bare_reqwest.rs: surge's HTTP
#      client alone), bare goose (examples/bare_goose.rs), surge;
#   2. memory per idle user (think 1 s): peak RSS at 200 and 5,000 users;
#   3. open model at 2,000 arrivals/s: peak RSS;
#   4. open model start lateness (the generator's own: an arrival handed to a
#      user after its instant), p50 and p99;
#   5. arrivals achieved and dropped.
#
# The server runs on CPU 0 and every generator on CPU 1 (taskset), so the
# lateness is the generator's own and no tool competes with the server for
# its core. Rounds alternate the tools so drift on a shared machine hits
# them alike. With SURGE_BEFORE=/path/to/an/older/surge, that binary runs
# beside the current one in every row: before and after in one table.
#
# Usage: bench/run.sh [CONNECTIONS=50] [SECONDS=10] [ROUNDS=3]
#        (PARTS="throughput memory open" chooses the sections; RATE, OPEN_SECONDS
#        and IDLE_USERS size them)
# Needs: wrk (Debian package), GNU time, taskset, 2 or more CPUs.
# Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-50}
SECONDS_EACH=${2:-10}
ROUNDS=${3:-3}
RATE=${RATE:-2000}
OPEN_SECONDS=${OPEN_SECONDS:-20}
IDLE_USERS=${IDLE_USERS:-"200 5000"}
PARTS=${PARTS:-"throughput memory open"}
want() { [[ " $PARTS " == *" $1 "* ]]; }
PORT=18080
URL="http://127.0.0.1:$PORT"
SERVER_CPU=0
LOAD_CPU=1

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing (util-linux)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs: the server on one, the generator on another" >&2; exit 2; }
cargo build --release --quiet --bin surge --example bare_goose --example bare_reqwest

# The binaries compared: "after" is this tree's; "before" if given.
declare -a NAMES=(surge) BINS=(./target/release/surge)
if [ -n "${SURGE_BEFORE:-}" ]; then
    [ -x "$SURGE_BEFORE" ] || { echo "SURGE_BEFORE=$SURGE_BEFORE is not an executable" >&2; exit 2; }
    NAMES=("surge before" "surge after")
    BINS=("$SURGE_BEFORE" ./target/release/surge)
fi

work=$(mktemp -d)
taskset -c "$SERVER_CPU" ./target/release/surge sim replica --name bench --port "$PORT" \
    --attachments-dir "$work/att" >/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

on_load_cpu() { taskset -c "$LOAD_CPU" "$@"; }
peak_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
summary_field() {
    python3 - "$work/reports" "$1" <<'PY'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
print(eval(sys.argv[2], {}, {"s": s}))
PY
}

run_wrk() {
    on_load_cpu /usr/bin/time -v -o "$work/time" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$URL/healthz" >"$work/out"
    echo "$(awk '/Requests\/sec/ {print $2}' "$work/out") $(peak_kb "$work/time")"
}
run_oha() {
    on_load_cpu /usr/bin/time -v -o "$work/time" oha --no-tui -z "${SECONDS_EACH}s" -c "$CONNECTIONS" "$URL/healthz" >"$work/out"
    echo "$(awk '/Requests\/sec/ {print $2; exit}' "$work/out") $(peak_kb "$work/time")"
}
run_reqwest() {
    on_load_cpu /usr/bin/time -v -o "$work/time" ./target/release/examples/bare_reqwest "$URL/healthz" "$CONNECTIONS" "$SECONDS_EACH" >"$work/out"
    echo "$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' "$work/out") $(peak_kb "$work/time")"
}
run_goose() {
    on_load_cpu /usr/bin/time -v -o "$work/time" ./target/release/examples/bare_goose "$URL" /healthz "$CONNECTIONS" "$SECONDS_EACH" >"$work/out"
    echo "$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' "$work/out") $(peak_kb "$work/time")"
}
# run_surge BINARY ARGS...: runs it on the load CPU; the summary stays in $work/reports.
run_surge() {
    local bin=$1
    shift
    rm -rf "$work/reports"
    on_load_cpu /usr/bin/time -v -o "$work/time" "$bin" run "$@" --target "$URL" --no-progress \
        --out "$work/reports" >/dev/null 2>"$work/err" || true
}

if want throughput; then
echo "## 1. Throughput: closed model, $CONNECTIONS connections, ${SECONDS_EACH}s per tool per round"
echo
header="| round | wrk req/s"
sep="|---|---"
have_oha=false
if command -v oha >/dev/null; then have_oha=true; header+=" | oha req/s"; sep+="|---"; fi
header+=" | bare reqwest req/s | bare goose req/s"
sep+="|---|---"
for name in "${NAMES[@]}"; do header+=" | $name req/s | $name / wrk"; sep+="|---|---"; done
echo "$header |"
echo "$sep|"
for round in $(seq "$ROUNDS"); do
    read -r w _ <<<"$(run_wrk)"
    row="| $round | $w"
    if $have_oha; then read -r o _ <<<"$(run_oha)"; row+=" | $o"; fi
    read -r q _ <<<"$(run_reqwest)"
    read -r g _ <<<"$(run_goose)"
    row+=" | $q | $g"
    for bin in "${BINS[@]}"; do
        run_surge "$bin" bench/trivial.toml --users "$CONNECTIONS" --duration "${SECONDS_EACH}s"
        s=$(summary_field 's["overall"]["count"] / s["planned_s"]')
        row+=" | $(printf '%.0f' "$s") | $(python3 -c "print(f'{$s / $w:.2f}')")"
    done
    echo "$row |"
done
echo

fi

if want memory; then
echo "## 2. Memory per idle user: closed model, think 1 s, ramp 5 s, hold ${SECONDS_EACH}s"
echo
echo "| binary | users | requests/s (of users/s) | peak RSS MB |"
echo "|---|---|---|---|"
declare -A rss
for i in "${!BINS[@]}"; do
    for users in $IDLE_USERS; do
        run_surge "${BINS[$i]}" bench/idle-users.toml --users "$users" --duration "${SECONDS_EACH}s"
        rss[$i,$users]=$(peak_kb "$work/time")
        rate=$(summary_field 'round(s["overall"]["count"] / s["planned_s"])')
        echo "| ${NAMES[$i]} | $users | $rate | $(( ${rss[$i,$users]} / 1024 )) |"
    done
done
echo
read -r low high <<<"$(echo $IDLE_USERS | awk '{print $1, $NF}')"
for i in "${!BINS[@]}"; do
    per=$(( (${rss[$i,$high]} - ${rss[$i,$low]}) * 1024 / (high - low) ))
    echo "- ${NAMES[$i]}: $(( per / 1024 )) KB per user ((RSS at $high − RSS at $low) / $(( high - low )))"
done
echo

fi

if want open; then
echo "## 3–5. Open model: $RATE arrivals/s for ${OPEN_SECONDS}s"
echo
echo "| binary | arrivals | dropped | completed/s | lateness p50 / p99 / max ms | latency p99 ms | service p99 ms | surge CPU | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for i in "${!BINS[@]}"; do
    run_surge "${BINS[$i]}" bench/trivial.toml --rate "$RATE" --duration "${OPEN_SECONDS}s"
    cpu=$(awk -F': ' '/Percent of CPU/ {print $2}' "$work/time")
    row=$(summary_field '" | ".join(str(x) for x in [
        s["totals"]["arrivals"], s["totals"]["dropped_arrivals"],
        round(s["overall"]["count"] / s["planned_s"]),
        "%.2f / %.2f / %.1f" % (s["environment"]["lateness"]["p50_ms"], s["environment"]["lateness"]["p99_ms"], s["environment"]["lateness"]["max_ms"]),
        "%.1f" % s["overall"]["latency"]["p99"], "%.1f" % s["overall"]["service"]["p99"]])')
    echo "| ${NAMES[$i]} | $row | $cpu | $(( $(peak_kb "$work/time") / 1024 )) |"
done
echo
echo "planned arrivals: $(python3 -c "print(round($RATE * $OPEN_SECONDS))")"
fi
echo "server on CPU $SERVER_CPU, generators on CPU $LOAD_CPU; machine: $(nproc) CPUs; $(date -u +%Y-%m-%d)"
