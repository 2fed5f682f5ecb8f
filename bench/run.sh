#!/usr/bin/env bash
# Throughput and peak memory of surge's load engine, side by side with wrk and
# bare goose, against one trivial endpoint on loopback (a reference-cluster
# replica's /healthz). All three use the same number of connections; rounds
# alternate the tools so drift on a shared machine hits them alike.
#
# Usage: bench/run.sh [CONNECTIONS=50] [SECONDS=10] [ROUNDS=3]
# Needs: wrk (Debian package), GNU time. Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-50}
SECONDS_EACH=${2:-10}
ROUNDS=${3:-3}
PORT=18080
URL="http://127.0.0.1:$PORT"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
cargo build --release --quiet --bin surge --example bare_goose

work=$(mktemp -d)
./target/release/surge sim replica --name bench --port "$PORT" --attachments-dir "$work/att" >/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Peak resident memory (kB) from GNU time's report.
peak_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

run_wrk() {
    /usr/bin/time -v -o "$work/time" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$URL/healthz" >"$work/out"
    echo "$(awk '/Requests\/sec/ {print $2}' "$work/out") $(peak_kb "$work/time")"
}
run_goose() {
    /usr/bin/time -v -o "$work/time" ./target/release/examples/bare_goose "$URL" /healthz "$CONNECTIONS" "$SECONDS_EACH" >"$work/out"
    echo "$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' "$work/out") $(peak_kb "$work/time")"
}
run_surge() {
    rm -rf "$work/reports"
    /usr/bin/time -v -o "$work/time" ./target/release/surge run bench/trivial.toml --target "$URL" \
        --users "$CONNECTIONS" --duration "${SECONDS_EACH}s" --no-progress --out "$work/reports" >/dev/null
    local rps
    rps=$(python3 -c 'import json,glob,sys; s=json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0])); print(round(s["overall"]["count"]/s["planned_s"]))' "$work/reports")
    echo "$rps $(peak_kb "$work/time")"
}

echo "| round | wrk req/s | bare goose req/s | surge req/s | goose/wrk | surge/goose | peak RSS wrk / goose / surge (MB) |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    read -r w wm <<<"$(run_wrk)"
    read -r g gm <<<"$(run_goose)"
    read -r s sm <<<"$(run_surge)"
    python3 - "$round" "$w" "$g" "$s" "$wm" "$gm" "$sm" <<'PY'
import sys
r, w, g, s, wm, gm, sm = sys.argv[1:]
w, g, s = float(w), float(g), float(s)
mb = lambda k: f"{int(k)/1024:.0f}"
print(f"| {r} | {w:.0f} | {g:.0f} | {s:.0f} | {g/w:.2f} | {s/g:.2f} | {mb(wm)} / {mb(gm)} / {mb(sm)} |")
PY
done
echo
echo "connections: $CONNECTIONS, seconds per tool per round: $SECONDS_EACH, machine: $(nproc) cores"
