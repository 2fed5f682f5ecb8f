#!/usr/bin/env bash
# What `--metrics-out` costs the load (issue 29; goal: under 3%): the same
# runs with and without pushing to a real Prometheus (Debian's, its
# Remote-Write receiver and native histograms on), side by side in
# alternating rounds, against one trivial endpoint on loopback (a
# reference-cluster replica's /healthz):
#
#   1. throughput, closed model, CONNECTIONS users, full recording;
#   2. open model at RATE arrivals/s: the generator's start lateness p50 and
#      p99, arrivals dropped.
#
# The server and Prometheus run on CPU 0 and surge on CPU 1 (taskset), so
# what the pushes cost surge shows as surge's own. Each "with" run's pushes
# are checked: accepted, none failed or dropped.
#
# Usage: bench/metrics_out.sh [CONNECTIONS=50] [SECONDS=10] [ROUNDS=4]
#        (RATE and OPEN_SECONDS size the open runs)
# Needs: prometheus (Debian package), GNU time, taskset, 2 or more CPUs.
# Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-50}
SECONDS_EACH=${2:-10}
ROUNDS=${3:-4}
RATE=${RATE:-2000}
OPEN_SECONDS=${OPEN_SECONDS:-15}
PORT=18080
PROM_PORT=19090
URL="http://127.0.0.1:$PORT"
WRITE="http://127.0.0.1:$PROM_PORT/api/v1/write"

command -v prometheus >/dev/null || { echo "prometheus is missing: apt-get install prometheus" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing (util-linux)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs: the server on one, the generator on another" >&2; exit 2; }
cargo build --release --quiet --bin surge

work=$(mktemp -d)
taskset -c 0 ./target/release/surge sim replica --name bench --port "$PORT" \
    --attachments-dir "$work/att" >/dev/null &
server=$!
printf 'global:\n  scrape_interval: 15s\n' >"$work/prometheus.yml"
taskset -c 0 prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
    --enable-feature=native-histograms >"$work/prometheus.log" 2>&1 &
prom=$!
trap 'kill $server $prom 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    curl -fs "$URL/healthz" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
    sleep 0.2
done

summary_field() {
    python3 - "$work/reports" "$1" <<'PY'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
print(eval(sys.argv[2], {}, {"s": s}))
PY
}
# run_surge with|without ARGS...: on CPU 1; the summary stays in $work/reports.
run_surge() {
    local how=$1
    shift
    local out=()
    [ "$how" = with ] && out=(--metrics-out "prometheus=$WRITE")
    rm -rf "$work/reports"
    taskset -c 1 /usr/bin/time -v -o "$work/time" ./target/release/surge run "$@" --target "$URL" --no-progress \
        --out "$work/reports" "${out[@]}" >/dev/null 2>"$work/err" || true
    if [ "$how" = with ]; then
        local pushed
        pushed=$(summary_field '"%d %d %d" % (s["metrics_out"][0]["pushed"], s["metrics_out"][0]["failed"], s["metrics_out"][0]["dropped"])')
        read -r ok failed dropped <<<"$pushed"
        [ "$ok" -ge 2 ] && [ "$failed" = 0 ] && [ "$dropped" = 0 ] ||
            { echo "the pushes did not all land: $pushed accepted/failed/dropped" >&2; exit 1; }
    fi
}
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
# surge's CPU (user + system) per request completed in the last run, µs.
cpu_per_request() {
    local seconds
    seconds=$(awk -F': ' '/User time|System time/ {t += $2} END {print t}' "$work/time")
    python3 -c "print(round($seconds * 1e6 / $1, 1))"
}

echo "## 1. Throughput: closed model, $CONNECTIONS users, ${SECONDS_EACH}s per run"
echo
echo "| round | without req/s | with req/s | with / without | CPU µs/request without | with | with / without |"
echo "|---|---|---|---|---|---|---|"
ratios=()
cpu_ratios=()
for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so drift hits both alike.
    order=(without with)
    [ $((round % 2)) = 0 ] && order=(with without)
    declare -A rps cpu
    for how in "${order[@]}"; do
        run_surge "$how" bench/trivial.toml --users "$CONNECTIONS" --duration "${SECONDS_EACH}s"
        rps[$how]=$(summary_field 'round(s["overall"]["count"] / s["planned_s"])')
        cpu[$how]=$(cpu_per_request "$(summary_field 's["overall"]["count"]')")
    done
    r=$(ratio "${rps[with]}" "${rps[without]}")
    c=$(ratio "${cpu[with]}" "${cpu[without]}")
    ratios+=("$r")
    cpu_ratios+=("$c")
    echo "| $round | ${rps[without]} | ${rps[with]} | $r | ${cpu[without]} | ${cpu[with]} | $c |"
done
median() { printf '%s\n' "$@" | python3 -c "import sys, statistics; print(f'{statistics.median(float(x) for x in sys.stdin):.3f}')"; }
echo
echo "median with / without: throughput $(median "${ratios[@]}"), surge CPU per request $(median "${cpu_ratios[@]}")"
echo

echo "## 2. Open model: $RATE arrivals/s for ${OPEN_SECONDS}s"
echo
echo "| round | how | arrivals | dropped | completed/s | lateness p50 / p99 ms | pushes |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    order=(without with)
    [ $((round % 2)) = 0 ] && order=(with without)
    for how in "${order[@]}"; do
        run_surge "$how" bench/trivial.toml --rate "$RATE" --duration "${OPEN_SECONDS}s"
        row=$(summary_field '" | ".join(str(x) for x in [
            s["totals"]["arrivals"], s["totals"]["dropped_arrivals"],
            round(s["overall"]["count"] / s["planned_s"]),
            "%.3f / %.3f" % (s["environment"]["lateness"]["p50_ms"], s["environment"]["lateness"]["p99_ms"]),
            (s["metrics_out"][0]["pushed"] if s.get("metrics_out") else "-")])')
        echo "| $round | $how | $row |"
    done
done
echo
echo "planned arrivals: $(python3 -c "print(round($RATE * $OPEN_SECONDS))"); server and Prometheus on CPU 0, surge on CPU 1; machine: $(nproc) CPUs; $(date -u +%Y-%m-%d)"
