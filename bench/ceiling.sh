#!/usr/bin/env bash
# Where one machine ends: how many open-model arrivals per second and how
# many closed-model users (think 1 s) one surge process sustains with full
# recording, against a trivial endpoint on loopback (a reference-cluster
# replica's /healthz). The server shares the machine, so the figures bound
# what a load pod of this size can drive; README "Beyond one machine" turns
# them into a shard count.
#
# Usage: bench/ceiling.sh [RATES="1000 2000 4000 8000"] [USERS="1000 5000"] [SECONDS=10]
# Needs: GNU time. Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${1:-"1000 2000 4000 8000"}
USERS=${2:-"1000 5000"}
SECONDS_EACH=${3:-10}
PORT=18080
URL="http://127.0.0.1:$PORT"
cargo build --release --quiet --bin surge
work=$(mktemp -d)
./target/release/surge sim replica --name bench --port "$PORT" --attachments-dir "$work/att" >/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
summary() { python3 -c 'import json,glob,sys; print(json.dumps(json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0]))))' "$1"; }

echo "Open model, ${SECONDS_EACH}s per rate:"
echo
echo "| arrivals/s planned | arrivals | dropped | completed/s | latency p50 / p99 ms | service p99 ms | surge CPU | peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
for rate in $RATES; do
    rm -rf "$work/reports"
    /usr/bin/time -v -o "$work/time" ./target/release/surge run bench/trivial.toml --target "$URL" \
        --rate "$rate" --duration "${SECONDS_EACH}s" --no-progress --out "$work/reports" >/dev/null || true
    summary "$work/reports" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read()); rate = sys.argv[1]
t, o = s["totals"], s["overall"]
time = open(sys.argv[2]).read()
cpu = [l.split(": ")[1] for l in time.splitlines() if "Percent of CPU" in l][0]
rss = int([l.split(": ")[1] for l in time.splitlines() if "Maximum resident" in l][0]) // 1024
lat, svc = o["latency"], o["service"]
row = [rate, t["arrivals"], t["dropped_arrivals"], "%.0f" % (o["count"] / s["planned_s"]),
       "%.1f / %.1f" % (lat["p50"], lat["p99"]), "%.1f" % svc["p99"], cpu, "%d MB" % rss]
print("| " + " | ".join(str(x) for x in row) + " |")
' "$rate" "$work/time"
done
echo
echo "Closed model, think 1 s, ramp 5 s then ${SECONDS_EACH}s held:"
echo
echo "| users | completed/s | expected (users/s) | latency p99 ms | surge CPU | peak RSS | RSS per user |"
echo "|---|---|---|---|---|---|---|"
for users in $USERS; do
    rm -rf "$work/reports"
    /usr/bin/time -v -o "$work/time" ./target/release/surge run bench/idle-users.toml --target "$URL" \
        --users "$users" --duration "${SECONDS_EACH}s" --no-progress --out "$work/reports" >/dev/null || true
    summary "$work/reports" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read()); users = int(sys.argv[1])
o = s["overall"]
time = open(sys.argv[2]).read()
cpu = [l.split(": ")[1] for l in time.splitlines() if "Percent of CPU" in l][0]
rss = int([l.split(": ")[1] for l in time.splitlines() if "Maximum resident" in l][0])
row = [users, "%.0f" % (o["count"] / s["planned_s"]), users, "%.1f" % o["latency"]["p99"], cpu,
       "%d MB" % (rss // 1024), "%.0f KB" % (rss / users)]
print("| " + " | ".join(str(x) for x in row) + " |")
' "$users" "$work/time"
done
